"""Turn results into text: one place for tables, so commands stay thin."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from meshsim.profile import HeldOut
from meshsim.results import COMPONENT_CLASSES, QUANTILES, ModeResult, RunResult
from meshsim.run import compare

__all__ = [
    "MARK",
    "NOISE_NOTE",
    "NOISY",
    "PERCENTILE_NOISE_NOTE",
    "held_out_brief",
    "held_out_lines",
    "percentile_cell",
    "print_run",
]

# A percentile whose standard error from sampling is above this share of it is marked
NOISY = 0.05
MARK = "†"
_PERCENTILE_NOISE = f"the percentile's standard error from sampling is over {NOISY:.0%} of it"
_CAVEAT = (
    "(distribution-free, from the run's latency histogram; consecutive requests are not "
    "independent, so the true noise is larger). A longer run (traffic.duration_s) pins it down."
)
NOISE_NOTE = (
    f"{MARK} sampling noise: {_PERCENTILE_NOISE}, or the overhead is within twice that of its "
    f"two percentiles {_CAVEAT}"
)
PERCENTILE_NOISE_NOTE = f"{MARK} sampling noise: {_PERCENTILE_NOISE} {_CAVEAT}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f}%"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _noise_ms(result: ModeResult, p: str) -> float:
    """The standard error of a latency percentile from sampling, in ms (inf where the run
    has too few requests to say)."""
    noise = result.percentile_sampling_error_ms(p)
    return math.inf if noise is None else noise


def percentile_cell(result: ModeResult, p: str) -> str:
    """A latency percentile to three decimals, marked where sampling cannot pin it down."""
    value = getattr(result.latency_ms, p)
    if not math.isfinite(value):  # no request completed
        return NOT_KNOWN
    noisy = not _noise_ms(result, p) <= NOISY * value
    return f"{value:.3f}{MARK if noisy else ''}"


NOT_KNOWN = "—"  # a figure the run does not have (NaN: not measured, or no request done)


def figure_cell(value: float, spec: str) -> str:
    """A figure formatted, or NOT_KNOWN where the run does not have it (a kind run's
    handshakes and connections)."""
    return format(value, spec) if math.isfinite(value) else NOT_KNOWN


def overhead_cell(run: RunResult, mode: str, p: str) -> str:
    """Latency percentile `p`'s overhead against no mesh in ms, marked where it is within
    twice the combined sampling error of the two percentiles it is the difference of."""
    overhead = getattr(compare(run, mode), f"{p}_overhead_ms")
    if overhead is None or mode == "none":
        return _ms(overhead)
    noise = math.hypot(_noise_ms(run.modes[mode], p), _noise_ms(run.modes["none"], p))
    return f"{overhead:+.3f}{MARK if not abs(overhead) > 2 * noise else ''}"


def profile_shown(run: RunResult, between: str = " ") -> str:
    """The profile a run's figures come from: a simulated run's; a measurement uses none
    (its `profile` names the scenario's, which nothing of it was computed with)."""
    return f"profile{between}{run.profile}" if run.kind == "simulated" else "no profile (measured)"


def print_run(run: RunResult, console: Console) -> None:
    modes = list(run.modes)
    table = Table(
        caption="Savings are against sidecar mode (mesh = everything but the apps); "
        "latency overheads are against no mesh.",
        title=f"{run.scenario} · {profile_shown(run)} · engine {run.engine} · seed {run.seed}",
    )
    table.add_column("figure")
    for mode in modes:
        table.add_column(mode, justify="right")

    marked = False

    def row(label: str, values: list[str]) -> None:
        nonlocal marked
        marked = marked or any(MARK in v for v in values)
        table.add_row(label, *values)

    r = [run.modes[m] for m in modes]
    row("requests (errors)", [f"{x.requests} ({x.errors})" for x in r])
    row("throughput rps", [f"{x.throughput_rps:.1f}" for x in r])
    for p in QUANTILES:
        row(f"latency {p} ms", [percentile_cell(x, p) for x in r])
    for part in ("total", *COMPONENT_CLASSES):
        row(f"CPU {part} cores", [f"{getattr(x.cpu_cores, part):.3f}" for x in r])
    for part in ("total", *COMPONENT_CLASSES):
        row(f"memory {part} MiB", [f"{getattr(x.memory_mib, part):.1f}" for x in r])
    row("handshakes /s", [figure_cell(x.handshakes_per_s, ".2f") for x in r])
    row("connections open", [figure_cell(x.connections_open, ".1f") for x in r])
    row(
        "proxies s/z/w",
        [f"{x.proxies.sidecar}/{x.proxies.ztunnel}/{x.proxies.waypoint}" for x in r],
    )
    row("USD / month", [f"{x.cost_usd_month:,.2f}" for x in r])
    table.add_section()
    # savings against sidecar mode; its own column is the baseline (as in the HTML report)
    cmp = [compare(run, m) if m != "sidecar" else None for m in modes]
    for label, name in (("CPU saving", "cpu_saving"), ("memory saving", "memory_saving"),
                        ("mesh CPU saving", "mesh_cpu_saving"),
                        ("mesh memory saving", "mesh_memory_saving"),
                        ("cost saving", "cost_saving")):  # fmt: skip
        row(label, [_pct(getattr(c, name)) if c is not None else NOT_KNOWN for c in cmp])
    row("p50 overhead ms", [overhead_cell(run, m, "p50") for m in modes])
    row("p99 overhead ms", [overhead_cell(run, m, "p99") for m in modes])
    console.print(table)
    if marked:
        console.print(NOISE_NOTE, highlight=False, markup=False, soft_wrap=True)
    if run.kind == "simulated":
        for line in held_out_lines(run.profile, run.profile_held_out):
            console.print(line, highlight=False, markup=False, soft_wrap=True)


def _errors(held: HeldOut, figures: list[tuple[str, str]]) -> str:
    return ", ".join(
        f"{label} {e.median * 100:.1f}% ({e.worst * 100:.1f}%)"
        for figure, label in figures
        if (e := held.errors.get(figure)) is not None
    )


def held_out_brief(held: HeldOut | None) -> str:
    """The profile's held-out error in a line, for a chart's caption."""
    if held is None:
        return "no held-out error recorded with this run"
    figures = [("p50", "p50"), ("p99", "p99"), ("cpu", "CPU"), ("memory", "memory")]
    errors = _errors(held, figures)
    return f"the profile's error on settings held out of its fit, median (worst): {errors}"


def held_out_lines(profile: str, held: HeldOut | None) -> list[str]:
    """What a simulated run's figures are worth: the profile's error on measured settings
    held out of its fit, or that it has none."""
    if held is None:
        return [
            f"Profile {profile}: no held-out error recorded with this run (meshsim calibrate "
            "writes one into the profiles it fits; a run made with such a profile carries "
            "it): how far its figures are from measurements is not stated; each of the "
            "profile's numbers names its source."
        ]
    lines = [
        f"Profile {profile}, on measured settings held out of its fit ({held.table}), "
        "median |error| (worst): "
        + "; ".join(
            part
            for part in (
                _errors(held, [("p50", "latency p50"), ("p90", "p90"), ("p99", "p99")]),
                _errors(held, [("cpu", "CPU per component")]),
                _errors(held, [("memory", "memory per component")]),
            )
            if part
        )
        + "."
    ]
    kinds = COMPONENT_CLASSES
    for figure in ("cpu", "memory"):
        by_kind = _errors(held, [(f"{figure}/{k}", k) for k in kinds])
        if by_kind:
            lines.append(f"  {'CPU' if figure == 'cpu' else 'memory'} by kind: {by_kind}.")
    return lines
