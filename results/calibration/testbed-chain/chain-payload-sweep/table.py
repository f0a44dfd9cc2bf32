"""The chain's payload sweep: p50 and p99 with no mesh and with sidecars, the sidecars' p50
over no mesh, and each mode's CPU, from every measured folder's summary.

    python results/calibration/testbed-chain/chain-payload-sweep/table.py
"""

from __future__ import annotations

from pathlib import Path

from meshsim.results import load_run

HERE = Path(__file__).parent


def main() -> None:
    print(
        "| rate (/s) | body | run | no mesh p50 / p99 (ms) | sidecar p50 / p99 (ms) "
        "| sidecar over no mesh, p50 | CPU no mesh / sidecar (millicores) |"
    )
    print("|---|---|---|---|---|---|---|")
    folders = [f for f in HERE.iterdir() if f.is_dir() and f.name.startswith("cs-")]

    def key(folder: Path) -> tuple[int, int, str]:
        _, rate, size, *rest = folder.name.split("-")
        return int(rate), int(size), "-".join(rest)

    for folder in sorted(folders, key=key):
        rate, size, repeat = key(folder)
        run = load_run(next(folder.glob("testbed-chain-seed*.json")))
        none, side = run.modes["none"], run.modes["sidecar"]
        print(
            f"| {rate} | {size / 1024:g} KiB | {repeat or 'first'} "
            f"| {none.latency_ms.p50:.2f} / {none.latency_ms.p99:.2f} "
            f"| {side.latency_ms.p50:.2f} / {side.latency_ms.p99:.2f} "
            f"| {side.latency_ms.p50 - none.latency_ms.p50:+.2f} "
            f"| {none.cpu_cores.total * 1e3:.0f} / {side.cpu_cores.total * 1e3:.0f} |"
        )


if __name__ == "__main__":
    main()
