"""The chain's rate sweep: per rate and run, p50 and p99 with no mesh and with sidecars,
and the CPU per request of the apps, the load generator and the sidecars; then the
reference profile's figures for the same runs (sim-RATE/, from simulate.sh).

    python results/calibration/testbed-chain/chain-rate-sweep/table.py
"""

from __future__ import annotations

from pathlib import Path

from meshsim.results import LatencyMs, ModeResult, load_run

HERE = Path(__file__).parent


def per_request_us(mode: ModeResult, rate: float) -> dict[str, float]:
    """CPU per request (µs) of the apps, the load generator and the sidecars in one mode."""

    def of(kind: str) -> float:
        return sum(c.cpu_cores for c in mode.components if c.kind == kind) / rate * 1e6

    return {"apps": of("app"), "loadgen": of("loadgen"), "sidecars": of("sidecar")}


def figures(
    folder: Path, rate: int
) -> tuple[LatencyMs, LatencyMs, dict[str, float], dict[str, float]]:
    """A run's latencies (no mesh, sidecar) and CPU per request (no mesh, sidecar)."""
    run = load_run(next(folder.glob("testbed-chain-seed*.json")))
    none, side = run.modes["none"], run.modes["sidecar"]
    return (
        none.latency_ms,
        side.latency_ms,
        per_request_us(none, rate),
        per_request_us(side, rate),
    )


def main() -> None:
    print(
        "| rate (/s) | run | p50 no mesh / sidecar (ms) | p99 no mesh / sidecar (ms) "
        "| apps, no mesh (µs a request) | load generator, no mesh | apps, sidecar | sidecars |"
    )
    print("|---|---|---|---|---|---|---|---|")
    folders = [f for f in HERE.iterdir() if f.is_dir() and f.name.startswith("rs-")]

    def key(folder: Path) -> tuple[int, str]:
        _, rate, *rest = folder.name.split("-")
        return int(rate), "-".join(rest)

    for folder in sorted(folders, key=key):
        rate, repeat = key(folder)
        none, side, cpu_none, cpu_side = figures(folder, rate)
        print(
            f"| {rate} | {repeat or 'first'} | {none.p50:.2f} / {side.p50:.2f} "
            f"| {none.p99:.2f} / {side.p99:.2f} | {cpu_none['apps']:.0f} "
            f"| {cpu_none['loadgen']:.0f} | {cpu_side['apps']:.0f} | {cpu_side['sidecars']:.0f} |"
        )
    print()
    print(
        "| rate (/s) | model p50 no mesh / sidecar (ms) | model apps, no mesh (µs a request) "
        "| model apps, sidecar | model sidecars |"
    )
    print("|---|---|---|---|---|")
    simulated = [key(f) for f in folders if not key(f)[1] and (HERE / f"sim-{key(f)[0]}").is_dir()]
    for rate, _ in sorted(simulated):
        none, side, cpu_none, cpu_side = figures(HERE / f"sim-{rate}", rate)
        print(
            f"| {rate} | {none.p50:.2f} / {side.p50:.2f} | {cpu_none['apps']:.0f} "
            f"| {cpu_side['apps']:.0f} | {cpu_side['sidecars']:.0f} |"
        )


if __name__ == "__main__":
    main()
