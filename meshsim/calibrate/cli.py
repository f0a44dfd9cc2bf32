"""The `compare` and `calibrate` commands: parse, call the calibration package, print."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from meshsim.calibrate.compare import (
    HOST_CPU,
    FigureSummary,
    compare_runs,
    host_cpu_summary,
    print_errors,
    print_summary,
    summarize,
    unmatched_components,
)
from meshsim.calibrate.grid import Setting
from meshsim.cli_paths import output_path
from meshsim.loader import InputError, load_run_file, read_source
from meshsim.profile import Profile
from meshsim.results import RunResult, finite_or_null, write_atomically

__all__ = ["calibrate", "compare"]

BAD_INPUT = 2
FAILED = 1
RETRIES = 2  # more attempts at a setting whose run was voided


def _load(path: Path) -> RunResult:
    try:
        return load_run_file(path)
    except InputError as err:
        click.echo(f"{err}\n{path}: not a run result (summary JSON)", err=True)
        sys.exit(BAD_INPUT)


def _summary_doc(s: FigureSummary) -> dict[str, object]:
    worst = s.worst.error if s.worst else None
    return {"count": s.count, "median_abs_error": s.median_abs_error, "worst_error": worst}


@click.command()
@click.argument("measured", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("simulated", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the rows and summary as JSON.")
def compare(measured: Path, simulated: Path, as_json: bool) -> None:
    """Error of SIMULATED against MEASURED, per mode and figure (two run summary JSONs)."""
    meas, sim = _load(measured), _load(simulated)
    if meas.scenario != sim.scenario:
        click.echo(
            f"note: {measured} is a run of {meas.scenario}, {simulated} of {sim.scenario}: "
            "the errors below compare different scenarios",
            err=True,
        )
    if meas.kind == "simulated" and sim.kind == "measured":
        click.echo(
            f"note: {measured} is a simulated run and {simulated} a measured one: the "
            "arguments look swapped (MEASURED comes first); errors below are relative to "
            f"{measured}",
            err=True,
        )
    elif meas.kind != "measured" or sim.kind != "simulated":
        click.echo(
            f"note: comparing a {meas.kind} run ({measured}) with a {sim.kind} one "
            f"({simulated}): errors below are relative to {measured}",
            err=True,
        )
    rows = compare_runs(meas, sim)
    if not rows:
        click.echo(f"{measured} and {simulated} have no mode in common", err=True)
        sys.exit(BAD_INPUT)
    summaries = summarize(rows)
    host = host_cpu_summary(rows)
    if as_json:
        doc = {
            "rows": [
                {
                    "mode": r.mode,
                    "figure": r.figure,
                    "component": r.component,
                    "measured": r.measured,
                    "simulated": r.simulated,
                    "error": r.error,
                }
                for r in rows
            ],
            "summary": {s.figure: _summary_doc(s) for s in summaries},
        }
        if host is not None:
            doc["host_cpu"] = _summary_doc(host)
        click.echo(json.dumps(finite_or_null(doc), indent=2))
        return
    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough that no name is cut
        console = Console(width=200)

    def what(run: RunResult) -> str:  # a measurement uses no profile (render.profile_shown)
        profile = f", profile {run.profile}" if run.kind == "simulated" else ""
        return f"{run.scenario} ({run.kind}, {run.engine}{profile})"

    title = f"{what(meas)} against {what(sim)}"
    print_errors(rows, console, title=title)
    print_summary(summaries, console)
    if host is not None:
        console.print(HOST_CPU, highlight=False, soft_wrap=True)
        print_summary([host], console)
    missing = unmatched_components(meas, sim)
    if missing:
        console.print("in one run only (not compared): " + ", ".join(missing), highlight=False)


def _default_grid(scenario_file: Path) -> Path | None:
    candidate = scenario_file.parent / "grids" / scenario_file.name
    return candidate if candidate.is_file() else None


def _repo_relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


@click.command()
@click.argument(
    "scenario_file",
    metavar="SCENARIO",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--backend",
    type=click.Choice(["local", "kind"]),
    default="local",
    show_default=True,
    help="Where to measure: this machine's testbed, or a kind cluster running Istio.",
)
@click.option("--cluster", default=None, help="kind: measure on this existing kind cluster (kept).")
@click.option("--keep", is_flag=True, help="kind: leave the cluster the calibration creates.")
@click.option(
    "--grid",
    "grid_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The grid to measure; default: grids/<scenario file name> next to SCENARIO.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    callback=output_path(folder=True),
    help="Folder for the dataset, profile and error tables; default results/calibration/<name>.",
)
@click.option("--engine", type=click.Choice(["vector", "des"]), default="vector", show_default=True)
@click.option(
    "--profile-out",
    type=click.Path(path_type=Path),
    callback=output_path(folder=False),
    help="Also write the fitted profile here (e.g. profiles/local-haproxy.yaml).",
)
@click.option("--name", "profile_name", default=None, help="Name of the fitted profile.")
@click.option(
    "--no-measure", is_flag=True, help="Fit the dataset already in --out; measure nothing."
)
def calibrate(
    scenario_file: Path,
    backend: str,
    cluster: str | None,
    keep: bool,
    grid_file: Path | None,
    out_dir: Path | None,
    engine: str,
    profile_out: Path | None,
    profile_name: str | None,
    no_measure: bool,
) -> None:
    """Measure SCENARIO over a grid, fit a profile on part of it, print the error on the rest."""
    from meshsim.calibrate import calibration as cal
    from meshsim.calibrate.grid import load_grid
    from meshsim.kind import ENGINE as KIND
    from meshsim.kind import KindError
    from meshsim.loader import InputError, load_scenario
    from meshsim.testbed.runner import ENGINE as LOCAL
    from meshsim.testbed.system import TestbedError

    if (cluster or keep) and backend != "kind":
        click.echo("meshsim calibrate: --cluster, --keep: only with --backend kind", err=True)
        sys.exit(BAD_INPUT)
    console = Console(stderr=True)

    def say(text: str) -> None:
        console.print(text, highlight=False)

    try:
        scenario, prior = load_scenario(scenario_file)
        grid_file = grid_file or _default_grid(scenario_file)
        plan = load_grid(grid_file, scenario_file)
        # before measuring for 20 minutes: what the grid sets must be numbers of the profile
        cal.with_fixed(prior, plan.grid.fixed)
    except (InputError, ValueError) as err:
        click.echo(str(err), err=True)
        sys.exit(BAD_INPUT)
    except KeyError as err:
        click.echo(f"{grid_file}: fixed: {err.args[0]}", err=True)
        sys.exit(BAD_INPUT)
    out_dir = out_dir or Path("results") / "calibration" / scenario.name
    dataset = out_dir / "dataset"
    say(f"grid {plan.grid.name}: {len(plan.settings)} settings; dataset {dataset}")
    manifest_file = dataset / "manifest.json"
    host = cal.host_facts()
    held_manifest: dict[str, Any] = {}
    if no_measure:  # the facts of the host and the software that measured it
        try:
            held_manifest = _read_manifest(manifest_file)
        except InputError as err:
            click.echo(str(err), err=True)
            sys.exit(BAD_INPUT)
        host = held_manifest.get("host", host)
    if backend == "kind" and not no_measure:
        try:  # what the kind backend would refuse, before a cluster is made
            _check_kind_settings(prior, plan.settings, cluster)
        except KindError as err:
            click.echo(f"meshsim calibrate: {err}", err=True)
            sys.exit(BAD_INPUT)
    if backend == "local" and not no_measure:  # what the testbed cannot stand up, up front
        from meshsim.testbed.network import testbed_limits
        from meshsim.topology import build_topology

        for setting in plan.settings:
            for _, why in testbed_limits(build_topology(setting.scenario)):
                click.echo(f"meshsim calibrate: setting {setting.label}: {why}", err=True)
                sys.exit(BAD_INPUT)
    software = None
    try:
        with ExitStack() as cluster_in_use:  # a kind cluster lives while the grid is measured
            measure: cal.Measure | None = None  # --no-measure: the dataset's runs only
            if backend == "kind" and not no_measure:
                measure = _measure_on_kind(prior, plan.settings, cluster, keep, cluster_in_use, say)
            elif not no_measure:
                measure = _measure_with(prior, say)
            engine_of = None if no_measure else {"local": LOCAL, "kind": KIND}[backend]
            runs = cal.measure_grid(plan, dataset, measure, say, engine=engine_of)
    except (cal.MixedDataset, cal.NotInDataset) as err:
        click.echo(f"meshsim calibrate: {err}", err=True)
        sys.exit(BAD_INPUT)
    except InputError as err:  # a run of the dataset that does not read back
        click.echo(
            f"{err}\nmeshsim calibrate: the dataset's run above does not read back; remove its "
            "folder to measure that setting again",
            err=True,
        )
        sys.exit(BAD_INPUT)
    except (KindError, TestbedError) as err:
        click.echo(
            f"meshsim calibrate: {err}\nthe settings measured so far are kept in {dataset}: "
            "the same command goes on from there",
            err=True,
        )
        sys.exit(FAILED)
    if no_measure and held_manifest:
        software = held_manifest.get("software")
    elif backend == "kind":
        from meshsim.kind import kind_software

        software = kind_software()
    ref = _repo_relative(manifest_file)
    doc_manifest = cal.manifest(plan, scenario_file, dataset, runs, host, software)
    cal.write_manifest(manifest_file, doc_manifest)
    name = profile_name or f"calibrated-{scenario.name}"
    result = cal.run_calibration(plan, runs, prior, engine=engine, say=say)
    doc = cal.fitted_profile_doc(result, prior, ref, name, _repo_relative(out_dir / "heldout.csv"))
    header = (
        f"Fitted by `meshsim calibrate {scenario_file}` ({engine} engine) to the measured\n"
        f"runs of {ref}.\n{result.split_note}\n"
        "Parameters the data could not pin down keep the prior's value and say so."
    )
    profiles = [out_dir / "profile.yaml", *([profile_out] if profile_out else [])]
    try:  # what will be written reads back as a valid profile, before anything is replaced
        text = cal.fitted_profile_text(doc, header, str(profiles[-1]))
    except InputError as err:
        raise click.ClickException(
            f"the fitted profile does not read back; nothing written:\n{err}"
        ) from None
    report = cal.report_text(result)
    outputs: dict[Path, str | bytes] = dict.fromkeys(profiles, text)
    outputs[out_dir / "heldout.csv"] = cal.rows_csv(result.held_out_rows)
    outputs[out_dir / "insample.csv"] = cal.rows_csv(result.in_sample)
    outputs[out_dir / "report.txt"] = report
    write_atomically(outputs)  # all of them, or none: a profile never beside another's table
    for path in profiles:
        say(f"wrote {path}")
    out = Console()
    if result.held_out_rows:
        print_errors(result.held_out_rows, out, title="held-out settings: measured vs simulated")
    out.print(report, highlight=False, markup=False, soft_wrap=True)


def _check_kind_settings(prior: Profile, settings: Sequence[Setting], cluster: str | None) -> None:
    """Every setting the kind backend would refuse (too many nodes or pods, a window too
    short for the kubelet's counters), found before a cluster is made: KindError."""
    from meshsim.kind import KindError, KindRun

    for s in settings:
        try:
            KindRun.new(s.scenario, prior, modes=s.modes, seed=s.seed, cluster=cluster)
        except KindError as err:
            raise KindError(f"setting {s.label}: {err}") from None


def _measure_on_kind(
    prior: Profile,
    settings: Sequence[Setting],
    cluster: str | None,
    keep: bool,
    stack: ExitStack,
    say: Callable[[str], None],
) -> Callable[[Setting], RunResult]:
    """Measure settings on one kind cluster: `cluster` (set up at its first setting, left
    in place), or one made for the grid when the first setting needs measuring, as large
    as its largest scenario, deleted when `stack` closes (unless `keep`)."""
    from meshsim.kind import measure_kind, shared_cluster

    state: dict[str, Any] = {"name": cluster, "setup": cluster is not None}

    def measure(setting: Setting) -> RunResult:
        if state["name"] is None:
            scenarios = [s.scenario for s in settings]
            state["name"] = stack.enter_context(shared_cluster(scenarios, say=say, keep=keep))
        setup, state["setup"] = state["setup"], False
        return measure_kind(
            setting.scenario,
            prior,
            modes=list(setting.modes),
            seed=setting.seed,
            say=say,
            cluster=state["name"],
            setup=setup,
        )

    return measure


def _read_manifest(path: Path) -> dict[str, Any]:
    """A dataset's manifest.json ({} if it has none); InputError naming the file, line and
    field when it does not read."""
    if not path.is_file():
        return {}
    source = read_source(path)
    if not isinstance(source.data, dict):
        raise InputError([source.problem((), "expected a dataset manifest: an object")])
    for key in ("host", "software"):
        if not isinstance(source.data.get(key, {}), dict):
            raise InputError([source.problem((key,), "expected an object")])
    return source.data


def _measure_with(prior: Profile, say: Callable[[str], None]) -> Callable[[Setting], RunResult]:
    def measure(setting: Setting) -> RunResult:
        from meshsim.testbed.system import TestbedError, missing_packages, packages_hint

        missing = missing_packages()
        if missing:  # not worth a retry
            raise click.ClickException(packages_hint(missing))
        from meshsim.testbed.runner import measure_local

        modes = list(setting.modes)

        def attempt() -> RunResult:
            return measure_local(setting.scenario, prior, modes=modes, seed=setting.seed, say=say)

        for left in range(RETRIES, 0, -1):
            try:
                return attempt()
            except TestbedError as err:
                # a shared host: a stray kill or a starved process voids a run; try again
                first = str(err).splitlines()[0]
                say(f"{setting.label}: {first}; measuring it again ({left} more tries)")
        return attempt()

    return measure
