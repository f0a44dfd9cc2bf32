"""The `plot`, `report` and `sweep` commands: parse, call the package, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from meshsim.cli_paths import output_path
from meshsim.loader import InputError
from meshsim.run import ENGINES
from meshsim.signals import exit_interrupted

__all__ = ["plot", "report", "sweep"]

BAD_INPUT = 2
POINTS_FAILED = 1

_paths = click.argument(
    "results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)


def _inputs(results: tuple[Path, ...]) -> object:
    from meshsim.plots import load_inputs

    try:
        inputs = load_inputs(results)
    except (ValueError, InputError) as err:
        click.echo(str(err), err=True)
        sys.exit(BAD_INPUT)
    if not (inputs.runs or inputs.sweeps or inputs.calibrations or inputs.fits):
        click.echo(
            "no run, sweep or calibration results found in: " + " ".join(map(str, results)),
            err=True,
        )
        sys.exit(BAD_INPUT)
    return inputs


@click.command()
@_paths
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    callback=output_path(folder=True),
    help="Folder for the charts (PNG and SVG).",
)
def plot(results: tuple[Path, ...], out_dir: Path) -> None:
    """Draw charts of RESULTS: run summaries, results folders, sweep folders, calibrations."""
    from meshsim.plots import (
        Inputs,
        chart_files,
        charts_for,
        missing_histograms,
        sweep_chart_gap,
    )
    from meshsim.results import write_atomically

    inputs = _inputs(results)
    assert isinstance(inputs, Inputs)
    for run in inputs.runs:
        missing = missing_histograms(run)
        if missing:
            click.echo(
                f"note: {inputs.stem(run)}: no latency histogram beside its summary JSON for "
                f"{', '.join(missing)}: no latency CDF of those modes, no whiskers on their "
                "percentile bars",
                err=True,
            )
    charts = charts_for(inputs)
    if not charts:
        gaps = [gap for table in inputs.sweeps if (gap := sweep_chart_gap(table)) is not None]
        click.echo(f"nothing to draw: {'; '.join(gaps) or 'no mode to compare'}", err=True)
        sys.exit(BAD_INPUT)
    # every chart drawn first, then all written at once: all or none
    files: dict[Path, str | bytes] = {}
    for chart in charts:
        files.update(chart_files(chart, out_dir))
    for path in write_atomically(files):
        click.echo(f"wrote {path}")


@click.command()
@_paths
@click.option(
    "-o",
    "--out",
    "out_file",
    required=True,
    type=click.Path(path_type=Path),
    callback=output_path(folder=False),
    help="The HTML file to write.",
)
def report(results: tuple[Path, ...], out_file: Path) -> None:
    """Write one self-contained HTML page about RESULTS (charts embedded)."""
    from meshsim.plots import Inputs
    from meshsim.report import build_report
    from meshsim.results import write_atomically

    if out_file.is_file() and not _is_html(out_file):  # a result, a table, a scenario...
        click.echo(
            f"{out_file} exists and is not an HTML page: report writes over an earlier "
            "report only; give -o another file",
            err=True,
        )
        sys.exit(BAD_INPUT)
    inputs = _inputs(results)
    assert isinstance(inputs, Inputs)
    near = [p if p.is_dir() else p.parent for p in results]
    write_atomically({out_file: build_report(inputs, near)})
    click.echo(f"wrote {out_file}")


def _is_html(path: Path) -> bool:
    with path.open("rb") as fh:
        start = fh.read(64).lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    callback=output_path(folder=True),
    help="Folder for the points and the table; rerunning into it skips finished points.",
)
@click.option(
    "--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True
)
@click.option(
    "--scheduler",
    default=None,
    help="Address of a Dask scheduler (with --executor dask); default: a LocalCluster.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes; default: one per core.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help="Override the sweep file's engine (points run with another engine are rerun).",
)
def sweep(
    file: Path,
    out_dir: Path,
    executor: str,
    scheduler: str | None,
    workers: int | None,
    engine: str | None,
) -> None:
    """Run every point of the sweep FILE and gather one table (sweep.csv)."""
    from meshsim.sweep import PointOutcome, SchedulerError, load_sweep, run_sweep, with_engine

    if scheduler is not None and executor != "dask":
        click.echo("--scheduler needs --executor dask", err=True)
        sys.exit(BAD_INPUT)
    try:
        plan = load_sweep(file)
    except InputError as err:
        click.echo(str(err), err=True)
        sys.exit(BAD_INPUT)
    if engine is not None:
        plan = with_engine(plan, engine)
    stderr = Console(stderr=True)
    bar = Progress(
        TextColumn(f"{plan.spec.name:>16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
    )
    task = bar.add_task(plan.spec.name, total=len(plan.points))

    def progress(done: int, total: int, outcome: PointOutcome | None) -> None:
        bar.update(task, completed=done)
        if outcome is not None and outcome.error is not None:
            bar.console.print(f"[red]failed[/red] {outcome.point.params}: {outcome.error}")

    try:
        with bar:
            summary = run_sweep(
                plan,
                out_dir,
                executor="dask" if executor == "dask" else "local",
                workers=workers,
                scheduler=scheduler,
                progress=progress,
            )
    except SchedulerError as err:
        click.echo(f"meshsim sweep: {err}; the points finished are kept in {out_dir}", err=True)
        sys.exit(BAD_INPUT)
    except KeyboardInterrupt:
        done = int(bar.tasks[0].completed)
        exit_interrupted(
            f"interrupted: {done} of {len(plan.points)} points finished and kept in {out_dir}; "
            "run the same command again to finish the rest"
        )
    stderr.print(
        f"{summary.total} points: {summary.skipped} already finished, {summary.ran} run, "
        f"{len(summary.failed)} failed; table {summary.table}",
        highlight=False,
        soft_wrap=True,  # a path is not broken across lines
    )
    for outcome in summary.failed:
        click.echo(f"failed: {outcome.point.params} (seed {outcome.point.seed}): {outcome.error}")
    if summary.failed:
        sys.exit(POINTS_FAILED)
