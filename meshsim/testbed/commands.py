"""`meshsim measure` and `meshsim testbed cleanup`: parse, call the testbed, render."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from meshsim.calibrate.dataset import BACKGROUND_CAP, measured_network, saturated_nodes
from meshsim.cli_paths import output_path
from meshsim.loader import (
    InputError,
    dump_yaml,
    load_scenario,
    read_source,
    resolve_profile_path,
)
from meshsim.profile import Profile
from meshsim.render import print_run
from meshsim.results import RunResult, WriteError, result_files, write_atomically
from meshsim.scenario import MODES, Mode, Scenario
from meshsim.signals import exit_interrupted

__all__ = ["measure", "testbed"]

BACKENDS = ("local", "kind")
FAILED = 1
BAD_INPUT = 2


# The profile fitted to the local testbed (HAProxy proxies, aiohttp apps on this kind of
# host): what the scenario as measured there is simulated with, unless its own profile was
# fitted to measurements too.
LOCAL_PROFILE = "local-haproxy"


def measured_scenario(scenario: Scenario, profile_path: Path, run: RunResult, why: str = "") -> str:
    """The scenario as it was measured: the testbed's link delays, the modes measured, and
    a profile by path (`why` says why, when it is not the scenario's own), so that
    `meshsim run` of this file simulates the very system that was measured."""
    doc = measured_network(scenario, run).model_dump(mode="json", exclude_none=True)
    doc["profile"] = str(profile_path.resolve())
    if run.modes:  # those measured, not every mode the scenario lists
        doc.setdefault("mesh", {})["modes"] = list(run.modes)
    if run.network is not None:  # to the nanosecond, for the eye
        network = doc["cluster"]["network"]
        doc["cluster"]["network"] = {k: round(v, 6) for k, v in network.items()}
    header = (
        f"# {scenario.name} as measured by {run.engine}: link delays are half the\n"
        "# round trips measured when the testbed came up, background_cores the other work\n"
        "# found on each node's cores (the mean over the modes; each mode's is in the\n"
        "# results). Simulate it with `meshsim run`.\n"
    )
    if why:
        header += "".join(f"# {line}\n" for line in why.splitlines())
    return header + dump_yaml(doc)


def as_measured_profile(
    scenario: Scenario, profile: Profile, file: Path, backend: str
) -> tuple[Path, str]:
    """The profile the scenario as measured names, and why when it is not its own: on the
    local testbed, a profile not fitted to measurements (the Istio profile prices Envoy,
    not HAProxy) gives way to the local testbed's calibrated one, where there is one."""
    own = resolve_profile_path(scenario.profile, file)
    assert own is not None  # load_scenario found it
    if backend != "local" or profile.held_out is not None:
        return own, ""
    local = resolve_profile_path(LOCAL_PROFILE, file)
    if local is None:
        return own, ""
    return local, (
        f"profile: {LOCAL_PROFILE}, fitted to this testbed's measurements; the scenario's\n"
        f"own, {scenario.profile}, was not fitted to measurements (it prices Envoy's costs,\n"
        "not the testbed's HAProxy proxies)."
    )


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(BACKENDS), default="local", show_default=True)
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(MODES),
    help="Mode to measure (repeatable); default: the scenario's modes.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=None, help="Override the scenario's seed."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    callback=output_path(folder=True),
    help="Write the results files, and the scenario as measured, into this folder.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary on stdout.")
@click.option("--no-pin", is_flag=True, help="Do not pin each node to its own host cores (cpuset).")
@click.option("--dry-run", is_flag=True, help="kind: print every command and manifest, run none.")
@click.option("--cluster", default=None, help="kind: use this existing kind cluster.")
@click.option("--keep", is_flag=True, help="kind: leave the cluster this run creates.")
def measure(
    file: Path,
    backend: str,
    modes: tuple[Mode, ...],
    seed: int | None,
    out_dir: Path | None,
    as_json: bool,
    no_pin: bool,
    dry_run: bool,
    cluster: str | None,
    keep: bool,
) -> None:
    """Stand FILE up for real (network namespaces, HAProxy, mTLS, Locust) and measure it.

    Needs root, Linux, HAProxy, iproute2 and iptables (scripts/install-system-deps).
    Everything it creates is named with the run's id and removed when it ends.
    With --backend kind: a kind cluster running Istio (needs docker, kind, kubectl and
    istioctl; see the README's "Measuring on kind")."""
    from meshsim.testbed.system import TestbedError, missing_packages, packages_hint

    missing = missing_packages()  # before anything imports them
    if missing:
        click.echo(f"meshsim measure: {packages_hint(missing)}", err=True)
        sys.exit(FAILED)
    from meshsim.kind import KindError, KindRun, kind_plan, measure_kind
    from meshsim.testbed.runner import measure_local

    try:
        scenario, profile = load_scenario(file)
    except InputError as err:
        click.echo(str(err), err=True)
        sys.exit(BAD_INPUT)
    if backend == "local":  # what the testbed cannot stand up, named at its line
        from meshsim.testbed.network import testbed_limits
        from meshsim.topology import build_topology

        limits = testbed_limits(build_topology(scenario))
        if limits:
            source = read_source(file)
            click.echo(str(InputError([source.problem(p, m) for p, m in limits])), err=True)
            sys.exit(BAD_INPUT)
    stderr = Console(stderr=True, highlight=False)
    if (dry_run or cluster or keep) and backend != "kind":
        click.echo(
            "meshsim measure: --dry-run, --cluster, --keep: only with --backend kind", err=True
        )
        sys.exit(BAD_INPUT)
    if dry_run:
        try:
            run = KindRun.new(
                scenario, profile, modes=list(modes) or None, seed=seed, cluster=cluster
            )
        except KindError as err:
            click.echo(f"meshsim measure: {err}", err=True)
            sys.exit(FAILED)
        click.echo(kind_plan(run, keep=keep), nl=False)
        return

    def started(run_id: str) -> None:
        stderr.print(
            f"testbed run {run_id} (pid {os.getpid()}); if it is killed, remove what is left "
            f"with: meshsim testbed cleanup --run {run_id}"
        )

    try:
        if backend == "kind":
            result = measure_kind(
                scenario,
                profile,
                modes=list(modes) or None,
                seed=seed,
                say=lambda line: stderr.print(f"[dim]{line}[/dim]"),
                cluster=cluster,
                keep=keep,
            )
        else:
            result = measure_local(
                scenario,
                profile,
                modes=list(modes) or None,
                seed=seed,
                say=lambda line: stderr.print(f"[dim]{line}[/dim]"),
                on_start=started,
                pin_cpus=not no_pin,
            )
    except (TestbedError, KindError) as err:
        click.echo(f"meshsim measure: {err}", err=True)
        sys.exit(FAILED)
    except KeyboardInterrupt:
        exit_interrupted("meshsim measure: interrupted; the testbed was removed")
    for node, busy in saturated_nodes(scenario, result).items():
        stderr.print(
            f"warning: other work took {busy:.2f} of {node}'s cores in a measurement window: "
            "the host was saturated, and the figures are the host's as much as the "
            f"scenario's (the as-measured scenario takes it as {BACKGROUND_CAP:g} of them)"
        )
    unwritten: WriteError | None = None
    if out_dir is not None:
        profile_path, why = as_measured_profile(scenario, profile, file, backend)
        as_measured = out_dir / f"{result.file_stem()}-as-measured.yaml"
        files: dict[Path, str | bytes] = {
            out_dir / name: text for name, text in result_files(result).items()
        }
        files[as_measured] = measured_scenario(scenario, profile_path, result, why)
        try:
            for path in write_atomically(files):  # the measured run and its scenario together
                note = f" (simulate it: meshsim run {path})" if path == as_measured else ""
                stderr.print(f"wrote {path}{note}")
        except WriteError as err:  # minutes of measuring: printed below, not thrown away
            unwritten = err
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2))
    else:
        print_run(result, Console())
    if unwritten is not None:
        click.echo(f"meshsim measure: {unwritten}; the measured run is printed above", err=True)
        sys.exit(FAILED)


@click.group()
def testbed() -> None:
    """Look after local testbed runs."""


@testbed.command()
@click.option("--run", "run_ids", multiple=True, help="A run id (repeatable); default: stale runs.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Also runs whose process is still alive (with --run: that run, even so).",
)
@click.option("--backend", type=click.Choice(BACKENDS), default="local", show_default=True)
def cleanup(run_ids: tuple[str, ...], everything: bool, backend: str) -> None:
    """Remove every namespace, process, cgroup and file a testbed run left behind.

    With --backend kind: delete the kind cluster of a run (meshsim-<run id>), or with --all
    every one meshsim created; without either, list them."""
    from meshsim.testbed.cleanup import cleanup_run, find_runs, run_is_live, run_owner
    from meshsim.testbed.names import RunNames

    targets = list(run_ids)
    for run_id in targets:
        try:
            RunNames(run_id)
        except ValueError as err:
            click.echo(f"meshsim testbed cleanup: {err}", err=True)
            sys.exit(BAD_INPUT)
    if backend == "kind":
        from meshsim.kind import KindError, cleanup_kind, kind_clusters
        from meshsim.kind.cluster import CLUSTER_PREFIX

        try:
            if not targets and not everything:  # which of them is in use cannot be told
                found = kind_clusters(say=click.echo)
                click.echo(
                    "kind clusters of meshsim: "
                    + (", ".join(found) or "none")
                    + ("; delete one with --run ID, or all of them (a run still going, or "
                       "one kept with --keep, among them) with --all" if found else "")
                )  # fmt: skip
                return
            deleted = cleanup_kind(say=click.echo, run_ids=targets or None)
        except KindError as err:
            click.echo(f"meshsim testbed cleanup: {err}", err=True)
            sys.exit(FAILED)
        for missing in sorted(set(targets) - {d.removeprefix(CLUSTER_PREFIX) for d in deleted}):
            click.echo(f"run {missing}: no kind cluster of it")
        if not deleted and not targets:
            click.echo("no kind cluster of meshsim to delete")
        return

    refused: list[str] = []
    if targets:  # a run id of which nothing is left (or a typo) is said, not counted as zeros
        left = set(find_runs())
        for missing in [r for r in targets if r not in left]:
            runs = ", ".join(sorted(left)) or "none"
            click.echo(f"run {missing}: nothing of it is left (runs with leftovers: {runs})")
        targets = [r for r in targets if r in left]
        owners = {r: run_owner(r) for r in targets} if not everything else {}
        for run_id, pid in owners.items():
            if pid is not None:  # its own teardown is the clean one; killing it voids it
                click.echo(
                    f"run {run_id}: its meshsim process (pid {pid}) is still running; stop it "
                    f"(Ctrl-C, or kill {pid}: it removes its testbed itself), or remove it "
                    f"anyway with --run {run_id} --all",
                    err=True,
                )
        refused = [r for r, pid in owners.items() if pid is not None]
        targets = [r for r in targets if r not in refused]
        if not targets:
            if refused:
                sys.exit(FAILED)
            return
    if not targets:
        targets = [r for r in find_runs() if everything or not run_is_live(r)]
        for live in sorted(set(find_runs()) - set(targets)):
            click.echo(f"run {live}: its meshsim process is still running; left alone (--all)")
    if not targets:
        click.echo("nothing to clean up")
    for run_id in targets:
        try:
            click.echo(str(cleanup_run(run_id)))
        except ValueError as err:
            click.echo(f"meshsim testbed cleanup: {err}", err=True)
            sys.exit(BAD_INPUT)
    if refused:
        sys.exit(FAILED)
