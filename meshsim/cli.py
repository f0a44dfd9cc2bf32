"""The `meshsim` command: parse, call the package, render. No logic lives here."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from meshsim import __version__
from meshsim.cli_paths import output_path
from meshsim.engines.des import TimeStandsStill
from meshsim.engines.vector import TooManyCalls
from meshsim.loader import (
    InputError,
    dump_yaml,
    load_profile,
    load_scenario,
    read_source,
    resolve_profile_path,
    validate_source,
)
from meshsim.render import print_run
from meshsim.results import RunResult, WriteError, result_files, write_atomically
from meshsim.run import ENGINES, choose_engine, simulate
from meshsim.scenario import MODES, Mode, Scenario
from meshsim.signals import exit_stopped, sigterm_unwinds

__all__ = ["main"]

BAD_INPUT = 2


class _LazyProgress:
    """A progress bar that appears only once a run has taken more than a couple of seconds.
    Modes running side by side call it from their own threads."""

    def __init__(self, console: Console, modes: list[str], after_s: float = 2.0):
        self.console, self.modes, self.after_s = console, modes, after_s
        self.started = time.monotonic()
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __call__(self, mode: str, fraction: float) -> None:
        with self.lock:
            self._update(mode, fraction)

    def _update(self, mode: str, fraction: float) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < self.after_s:
                return
            self.bar = Progress(
                TextColumn("{task.description:>16}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.tasks = {m: self.bar.add_task(m, total=1.0) for m in self.modes}
        self.bar.update(self.tasks[mode], completed=fraction)

    def stop(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.stop()


def _fail(err: InputError) -> None:
    click.echo(str(err), err=True)
    sys.exit(BAD_INPUT)


class _Commands(click.Group):
    """meshsim's commands: results that could not be written (a full disk, a folder in the
    way) end the command with what happened, not a traceback; nothing was written. Ctrl-C,
    SIGTERM and SIGHUP unwind every command through its `finally` blocks (files being
    written are put back as they were) and end it with code 130."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # reading the arguments (and --help, --version) is not a command's invoke: click
        # would make Ctrl-C there "Aborted!", exit 1
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as err:
            exit_stopped(err)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with sigterm_unwinds():
                return super().invoke(ctx)
        except WriteError as err:
            click.echo(str(err), err=True)
            sys.exit(1)
        except KeyboardInterrupt as err:
            exit_stopped(err)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="meshsim")
def main() -> None:
    """Simulate what a service mesh costs a cluster: no mesh, sidecars, ambient, waypoints."""


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(MODES),
    help="Mode to run (repeatable); default: the scenario's modes.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=None, help="Override the scenario's seed."
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="auto",
    show_default=True,
    help="des: exact, per event; vector: numpy, for large scenarios; auto: picks by size.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    callback=output_path(folder=True),
    help="Write the results files (JSON, CSV, histograms) into this folder.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON summary on stdout.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Modes simulated at once (vector engine; each mode is its own run). Default: one "
    "per core for scenarios of up to 20 M queue visits per mode, else 1.",
)
def run(
    file: Path,
    modes: tuple[Mode, ...],
    seed: int | None,
    engine: str,
    out_dir: Path | None,
    as_json: bool,
    jobs: int | None,
) -> None:
    """Simulate FILE in each mesh mode and compare them."""
    try:
        scenario, profile = load_scenario(file)
    except InputError as err:
        _fail(err)
    chosen = list(modes) or list(scenario.mesh.modes)
    stderr = Console(stderr=True)
    if engine == "auto":  # with --json, the summary's "engine" says which was picked
        engine, why = choose_engine(scenario, chosen)
        if not as_json:
            stderr.print(f"engine auto: picked {engine} ({why})", highlight=False)
    progress = _LazyProgress(stderr, list(chosen))
    try:
        result = simulate(
            scenario, profile, modes=chosen, seed=seed, engine=engine, progress=progress, jobs=jobs
        )
    except (TooManyCalls, TimeStandsStill) as err:
        click.echo(f"{file}: {err}", err=True)
        sys.exit(BAD_INPUT)
    finally:
        progress.stop()
    if out_dir is not None:
        files: dict[Path, str | bytes] = {out_dir / n: t for n, t in result_files(result).items()}
        files[out_dir / f"{result.file_stem()}-scenario.yaml"] = _as_run(scenario, file, result)
        for path in write_atomically(files):
            stderr.print(f"wrote {path}", highlight=False)
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2))
    else:
        print_run(result, Console())


def _as_run(scenario: Scenario, file: Path, result: RunResult) -> str:
    """The scenario as it was simulated (its seed and modes as run, its profile by path),
    kept with the results: `meshsim report` describes the run from it, and `meshsim run`
    of it simulates the same system again (a scenario file edited since, or another of the
    same name, would describe another)."""
    doc = scenario.model_dump(mode="json", exclude_none=True)
    profile = resolve_profile_path(scenario.profile, file)
    assert profile is not None  # load_scenario found it
    doc["profile"] = str(profile.resolve())
    doc["seed"] = result.seed
    doc["mesh"]["modes"] = list(result.modes)
    header = (
        f"# {scenario.name} as simulated into this folder from {file} ({result.engine} "
        f"engine, seed {result.seed}).\n"
    )
    return header + dump_yaml(doc)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check FILES: scenarios (and the profiles they name), profiles, sweep files and
    calibration grids, each told by its keys; exit 2 if any is bad."""
    failed = False
    for file in files:
        try:
            click.echo(f"{file}: ok ({_validated(file)})")
        except (InputError, ValueError) as err:
            click.echo(str(err), err=True)
            failed = True
    if failed:
        sys.exit(BAD_INPUT)


_PROFILE_KEYS = {"app", "sidecar", "ztunnel", "waypoint"}


def _validated(file: Path) -> str:
    """Check one file as what its keys say it is; what it holds, in a few words."""
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        doc = None  # the scenario loader says what is wrong, at its line
    keys = set(doc) if isinstance(doc, dict) else set()
    if "workloads" not in keys and ("grid" in keys or "points" in keys):
        if "scenario" in keys:
            from meshsim.sweep import load_sweep

            sweep = load_sweep(file)
            return f"sweep {sweep.spec.name}: {len(sweep.points)} points of {sweep.scenario_name}"
        from meshsim.calibrate.grid import CalibrationGrid, load_grid

        scenario_file = file.resolve().parent.parent / file.name  # grids/X.yaml: X.yaml
        if not scenario_file.is_file():  # its form only: its values need a scenario
            grid = validate_source(read_source(file), CalibrationGrid)
            return (
                f"calibration grid {grid.name}; no {scenario_file} to try its values on: "
                "meshsim calibrate SCENARIO --grid FILE --no-measure checks them"
            )
        plan = load_grid(file, scenario_file)
        return (
            f"calibration grid {plan.grid.name}: {len(plan.settings)} settings of {scenario_file}"
        )
    if "workloads" not in keys and keys & _PROFILE_KEYS:
        profile = load_profile(file)
        return f"profile {profile.name}"
    scenario, profile = load_scenario(file)
    return f"{len(scenario.workloads)} workloads, profile {profile.name}"


@main.command()
def schema() -> None:
    """Print the scenario JSON Schema (point your editor's YAML plugin at it)."""
    doc = Scenario.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "meshsim scenario"
    click.echo(json.dumps(doc, indent=2))


from meshsim.studies_cli import plot, report, sweep  # noqa: E402

main.add_command(plot)
main.add_command(report)
main.add_command(sweep)

from meshsim.testbed.commands import measure, testbed  # noqa: E402

main.add_command(measure)
main.add_command(testbed)

from meshsim.calibrate.cli import calibrate, compare  # noqa: E402

main.add_command(compare)
main.add_command(calibrate)
