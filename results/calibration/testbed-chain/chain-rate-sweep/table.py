"""The chain's rate sweep: per rate and run, p50 and p99 with no mesh and with sidecars,
and the CPU per request of the apps, the load generator and the sidecars; then the
reference profile's figures for the same runs (sim-RATE/, from simulate.sh).

    python results/calibration/testbed-chain/chain-rate-sweep/table.py
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from meshsim.results import load_run

HERE = Path(__file__).parent
APPS = ("frontend-0", "backend-0", "store-0")


def per_request_us(folder: Path, mode: str, rate: float) -> dict[str, float]:
    """CPU per request (µs) of the apps, the load generator and the sidecars in one mode."""
    with next(folder.glob("*-components.csv")).open(encoding="utf-8") as f:
        cores = {r["name"]: float(r["cpu_cores"]) for r in csv.DictReader(f) if r["mode"] == mode}
    sidecars = sum(v for k, v in cores.items() if k.endswith(".sidecar"))
    return {
        "apps": sum(cores[a] for a in APPS) / rate * 1e6,
        "loadgen": cores["loadgen-0"] / rate * 1e6,
        "sidecars": sidecars / rate * 1e6,
    }


def figures(folder: Path, rate: int) -> tuple[Any, Any, dict[str, float], dict[str, float]]:
    """A run's latencies (no mesh, sidecar) and CPU per request (no mesh, sidecar)."""
    run = load_run(next(folder.glob("testbed-chain-seed*.json")))
    return (
        run.modes["none"].latency_ms,
        run.modes["sidecar"].latency_ms,
        per_request_us(folder, "none", rate),
        per_request_us(folder, "sidecar", rate),
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
