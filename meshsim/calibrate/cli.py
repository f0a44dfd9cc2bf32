"""The `compare` and `calibrate` commands: parse, call the calibration package, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from pydantic import ValidationError
from rich.console import Console

from meshsim.calibrate.compare import (
    FigureSummary,
    compare_runs,
    print_errors,
    print_summary,
    summarize,
    unmatched_components,
)
from meshsim.results import RunResult, load_run

__all__ = ["compare"]

BAD_INPUT = 2


def _load(path: Path) -> RunResult:
    try:
        return load_run(path)
    except (OSError, ValueError, KeyError, ValidationError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        click.echo(f"{path}: not a run result (summary JSON): {first}", err=True)
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
    rows = compare_runs(meas, sim)
    if not rows:
        click.echo(f"{measured} and {simulated} have no mode in common", err=True)
        sys.exit(BAD_INPUT)
    summaries = summarize(rows)
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
        click.echo(json.dumps(doc, indent=2))
        return
    console = Console()
    title = (
        f"{meas.scenario} ({meas.kind}, {meas.engine}) against "
        f"{sim.scenario} ({sim.kind}, {sim.engine}, profile {sim.profile})"
    )
    print_errors(rows, console, title=title)
    print_summary(summaries, console)
    missing = unmatched_components(meas, sim)
    if missing:
        console.print("in one run only (not compared): " + ", ".join(missing), highlight=False)
