"""Turn results into text: one place for tables, so commands stay thin."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from meshsim.results import RunResult
from meshsim.run import compare

__all__ = ["print_run"]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.1f}%"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def print_run(run: RunResult, console: Console) -> None:
    modes = list(run.modes)
    table = Table(
        caption="Savings are against sidecar mode (mesh = everything but the apps); "
        "latency overheads are against no mesh.",
        title=f"{run.scenario} · profile {run.profile} · engine {run.engine} · seed {run.seed}",
    )
    table.add_column("figure")
    for mode in modes:
        table.add_column(mode, justify="right")

    def row(label: str, values: list[str]) -> None:
        table.add_row(label, *values)

    r = [run.modes[m] for m in modes]
    row("requests (errors)", [f"{x.requests} ({x.errors})" for x in r])
    row("throughput rps", [f"{x.throughput_rps:.1f}" for x in r])
    for p in ("p50", "p90", "p99", "p999"):
        row(f"latency {p} ms", [f"{getattr(x.latency_ms, p):.3f}" for x in r])
    for part in ("total", "app", "sidecar", "ztunnel", "waypoint"):
        row(f"CPU {part} cores", [f"{getattr(x.cpu_cores, part):.3f}" for x in r])
    for part in ("total", "app", "sidecar", "ztunnel", "waypoint"):
        row(f"memory {part} MiB", [f"{getattr(x.memory_mib, part):.1f}" for x in r])
    row("handshakes /s", [f"{x.handshakes_per_s:.2f}" for x in r])
    row("connections open", [f"{x.connections_open:.1f}" for x in r])
    row(
        "proxies s/z/w",
        [f"{x.proxies.sidecar}/{x.proxies.ztunnel}/{x.proxies.waypoint}" for x in r],
    )
    row("USD / month", [f"{x.cost_usd_month:,.2f}" for x in r])
    table.add_section()
    cmp = [compare(run, m) for m in modes]
    row("CPU saving", [_pct(c.cpu_saving) for c in cmp])
    row("memory saving", [_pct(c.memory_saving) for c in cmp])
    row("mesh CPU saving", [_pct(c.mesh_cpu_saving) for c in cmp])
    row("mesh memory saving", [_pct(c.mesh_memory_saving) for c in cmp])
    row("cost saving", [_pct(c.cost_saving) for c in cmp])
    row("p50 overhead ms", [_ms(c.p50_overhead_ms) for c in cmp])
    row("p99 overhead ms", [_ms(c.p99_overhead_ms) for c in cmp])
    console.print(table)
