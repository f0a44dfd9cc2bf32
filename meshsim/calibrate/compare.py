"""Measured against simulated: the error of every figure, and its median and worst case.

One table serves `meshsim compare` (any two runs) and the held-out check of a
calibration (many points). A figure is a latency percentile, the throughput, or the
CPU or memory of one component (app pod or proxy, matched by name; the load
generator is left out, as the simulator does not model its cost). The relative
error is (simulated - measured) / measured.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from rich.console import Console
from rich.table import Table

from meshsim.results import LatencyHistogram, ModeResult, RunResult

__all__ = [
    "BOUNDS",
    "FIGURES",
    "HOST_CPU",
    "ErrorRow",
    "FigureSummary",
    "compare_modes",
    "compare_runs",
    "host_cpu_summary",
    "host_referenced_cpu",
    "print_errors",
    "print_summary",
    "summarize",
]

FIGURES = ("p50", "p90", "p99", "throughput", "cpu", "memory")
# The calibration issue's acceptance bounds on the median relative error of held-out runs.
BOUNDS = {"p50": 0.10, "p99": 0.20, "cpu": 0.10, "memory": 0.15}
_KIND_ORDER = ["app", "sidecar", "ztunnel", "waypoint", "loadgen"]
_UNITS = {"p50": "ms", "p90": "ms", "p99": "ms", "throughput": "rps", "cpu": "cores"}


@dataclass(frozen=True)
class ErrorRow:
    """One figure of one mode (of one point): measured, simulated and their error."""

    point: str
    mode: str
    figure: str
    component: str  # "" for latency and throughput
    measured: float
    simulated: float
    kind: str = ""  # the component's kind (app, sidecar, ztunnel, waypoint)
    # A latency percentile's own sampling error: its standard error relative to itself,
    # from the measured run's latencies (None for other figures or without a histogram).
    sampling: float | None = None

    @property
    def error(self) -> float | None:
        """Relative error; None where it is undefined (a zero or missing measurement)."""
        if not self.measured > 0 or math.isnan(self.simulated):
            return None
        return (self.simulated - self.measured) / self.measured


@dataclass(frozen=True)
class FigureSummary:
    figure: str
    count: int
    median_abs_error: float | None
    worst: ErrorRow | None  # the row with the largest absolute error
    median_sampling: float | None = None  # the measured figures' own sampling error

    @property
    def bound(self) -> float | None:
        return BOUNDS.get(self.figure.split("/")[0])

    @property
    def within_bound(self) -> bool | None:
        if self.bound is None or self.median_abs_error is None:
            return None
        return self.median_abs_error <= self.bound


def compare_modes(
    measured: ModeResult, simulated: ModeResult, *, point: str = "", mode: str = ""
) -> list[ErrorRow]:
    """Rows for one mode: latency percentiles, throughput, then CPU and memory by component."""
    rows = [
        ErrorRow(
            point, mode, p, "", getattr(measured.latency_ms, p), getattr(simulated.latency_ms, p),
            sampling=measured.histogram.quantile_sampling_error(q),
        )
        for p, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
    ]  # fmt: skip
    rows.append(
        ErrorRow(point, mode, "throughput", "", measured.throughput_rps, simulated.throughput_rps)
    )
    sim_by_name = {c.name: c for c in simulated.components}
    for figure, attr in (("cpu", "cpu_cores"), ("memory", "memory_mib")):
        for meas in measured.components:
            sim = sim_by_name.get(meas.name)
            if meas.kind == "loadgen" or sim is None:
                continue
            rows.append(
                ErrorRow(
                    point,
                    mode,
                    figure,
                    meas.name,
                    getattr(meas, attr),
                    getattr(sim, attr),
                    meas.kind,
                )
            )
    return rows


def compare_runs(measured: RunResult, simulated: RunResult, *, point: str = "") -> list[ErrorRow]:
    """Rows for every mode both runs have, in the measured run's order."""
    rows: list[ErrorRow] = []
    for mode, result in measured.modes.items():
        if mode in simulated.modes:
            rows += compare_modes(result, simulated.modes[mode], point=point, mode=mode)
    return rows


def unmatched_components(measured: RunResult, simulated: RunResult) -> list[str]:
    """Components (mode/name) one run has and the other lacks: a topology mismatch."""
    out = []
    for mode, result in measured.modes.items():
        if mode not in simulated.modes:
            continue
        a = {c.name for c in result.components if c.kind != "loadgen"}
        b = {c.name for c in simulated.modes[mode].components if c.kind != "loadgen"}
        out += [f"{mode}/{name}" for name in sorted(a ^ b)]
    return out


def host_referenced_cpu(rows: Iterable[ErrorRow]) -> list[ErrorRow]:
    """The CPU rows of every mesh mode, each setting's simulated figures scaled by how its
    no-mesh run's apps measured against their simulation (the median ratio): what is left
    when the host's speed of that minute, which the setting's modes share (measured within
    a minute or two of each other), is taken from the no-mesh run. Settings without a
    no-mesh run are left out. Not the calibration issue's figure, which is absolute."""
    by_point: dict[str, list[ErrorRow]] = {}
    for r in rows:
        if r.figure == "cpu" and r.error is not None:
            by_point.setdefault(r.point, []).append(r)
    out = []
    for point_rows in by_point.values():
        ratios = [
            r.measured / r.simulated
            for r in point_rows
            if r.mode == "none" and r.kind == "app" and r.simulated > 0
        ]
        if not ratios:
            continue
        host = statistics.median(ratios)
        out += [replace(r, simulated=r.simulated * host) for r in point_rows if r.mode != "none"]
    return out


HOST_CPU = (
    "CPU of the mesh modes, each setting's scaled by its no-mesh run's apps (measured / "
    "simulated: the host's speed of that minute; not the bound's figure):"
)


def host_cpu_summary(rows: Iterable[ErrorRow]) -> FigureSummary | None:
    """The summary of `host_referenced_cpu(rows)` as figure 'host cpu' (no bound); None
    where no setting has a no-mesh run to reference its host by."""
    (cpu,) = [s for s in summarize(host_referenced_cpu(rows)) if s.figure == "cpu"]
    return None if cpu.median_abs_error is None else replace(cpu, figure="host cpu")


def summarize(rows: Iterable[ErrorRow], *, by_kind: bool = False) -> list[FigureSummary]:
    """Median and worst absolute relative error per figure (rows without an error skipped);
    `by_kind` adds CPU and memory per component kind (as 'cpu/app', 'memory/sidecar'...)."""
    rows = list(rows)
    out = []
    figures: list[tuple[str, str, str | None]] = [(f, f, None) for f in FIGURES]
    if by_kind:
        kinds = sorted({r.kind for r in rows if r.kind}, key=_KIND_ORDER.index)
        figures += [(f"{f}/{k}", f, k) for f in ("cpu", "memory") for k in kinds]
    for name, figure, kind in figures:
        mine = [
            r
            for r in rows
            if r.figure == figure and (kind is None or r.kind == kind) and r.error is not None
        ]
        errors = [abs(r.error) for r in mine if r.error is not None]
        worst = max(mine, key=lambda r: abs(r.error or 0.0)) if mine else None
        sampling = [r.sampling for r in mine if r.sampling is not None]
        out.append(
            FigureSummary(
                name,
                len(mine),
                statistics.median(errors) if errors else None,
                worst,
                statistics.median(sampling) if sampling else None,
            )
        )
    return out


def _value(figure: str, value: float) -> str:
    if math.isnan(value):
        return "—"
    if figure in ("p50", "p90", "p99"):
        return f"{value:.3f}"
    if figure == "cpu":
        return f"{value:.4f}"
    return f"{value:.1f}"


def _err(error: float | None) -> str:
    return "—" if error is None else f"{error * 100:+.1f}%"


def print_errors(rows: Sequence[ErrorRow], console: Console, *, title: str) -> None:
    table = Table(title=title, caption="error = (simulated - measured) / measured")
    with_points = any(r.point for r in rows)
    if with_points:
        table.add_column("point")
    for name in ("mode", "figure", "component"):
        table.add_column(name)
    for name in ("measured", "simulated", "error"):
        table.add_column(name, justify="right")
    for row in rows:
        unit = _UNITS.get(row.figure, "MiB")
        cells = [
            row.mode,
            f"{row.figure} ({unit})",
            row.component,
            _value(row.figure, row.measured),
            _value(row.figure, row.simulated),
            _err(row.error),
        ]
        table.add_row(*([row.point] if with_points else []), *cells)
    console.print(table)


def summary_lines(summaries: Sequence[FigureSummary]) -> list[str]:
    """One line per figure: median and worst error, and the bound where one applies."""
    lines = []
    for s in summaries:
        if s.median_abs_error is None or s.worst is None:
            lines.append(f"{s.figure:>10}: no comparable figures")
            continue
        w = s.worst
        where = " ".join(x for x in (w.point, w.mode, w.component) if x)
        bound = ""
        if s.bound is not None:
            verdict = "within" if s.within_bound else "OVER"
            bound = f"  [{verdict} the {s.bound * 100:.0f}% bound on the median]"
        noise = ""
        if s.median_sampling is not None and math.isinf(s.median_sampling):
            noise = (
                "; its own sampling error unbounded (median): too few requests lie beyond "
                "the percentile"
            )
        elif s.median_sampling is not None and s.median_sampling >= 0.0005:
            noise = f"; its own sampling error ±{s.median_sampling * 100:.1f}% (median)"
        elif s.median_sampling is not None:  # its order statistics share a histogram bin
            width = 10 ** (1 / LatencyHistogram.BINS_PER_DECADE) - 1
            noise = (
                f"; its own sampling error below the histogram's resolution (bins "
                f"{width * 100:.1f}% wide)"
            )
        lines.append(
            f"{s.figure:>10}: median |error| {s.median_abs_error * 100:.1f}% over {s.count}, "
            f"worst {_err(w.error)} ({where}){noise}{bound}"
        )
    return lines


def print_summary(summaries: Sequence[FigureSummary], console: Console) -> None:
    for line in summary_lines(summaries):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
