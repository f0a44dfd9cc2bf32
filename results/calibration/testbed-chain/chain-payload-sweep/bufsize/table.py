"""HAProxy's buffer and the chain's 32 KiB step: per run, the p50 with no mesh and with
sidecars, the sidecars' p50 over no mesh and their CPU; then the median of each setting.

    python results/calibration/testbed-chain/chain-payload-sweep/bufsize/table.py
"""

from __future__ import annotations

import statistics
from pathlib import Path

from meshsim.results import load_run

HERE = Path(__file__).parent


def main() -> None:
    print(
        "| run | HAProxy bufsize | p50 no mesh / sidecar (ms) | sidecar p99 (ms) "
        "| sidecar over no mesh, p50 (ms) | sidecars' CPU (millicores) |"
    )
    print("|---|---|---|---|---|---|")
    runs = [f for f in HERE.iterdir() if f.is_dir()]
    by_setting: dict[str, list[tuple[float, float]]] = {}
    for folder in sorted(runs, key=lambda f: int(f.name.rsplit("-", 1)[1])):
        setting = folder.name.rsplit("-", 1)[0]
        run = load_run(next(folder.glob("testbed-chain-seed*.json")))
        none, side = run.modes["none"].latency_ms, run.modes["sidecar"].latency_ms
        cores = sum(c.cpu_cores for c in run.modes["sidecar"].components if c.kind == "sidecar")
        over = side.p50 - none.p50
        by_setting.setdefault(setting, []).append((over, cores * 1e3))
        size = "64 KiB" if setting == "bufsize-64k" else "16 KiB (default)"
        print(
            f"| {folder.name.rsplit('-', 1)[1]} | {size} | {none.p50:.2f} / {side.p50:.2f} "
            f"| {side.p99:.2f} | {over:+.2f} | {cores * 1e3:.0f} |"
        )
    print()
    for setting, rows in by_setting.items():
        overs = [o for o, _ in rows]
        print(
            f"{setting}: {len(rows)} runs, sidecar over no mesh median "
            f"{statistics.median(overs):+.2f} ms ({min(overs):+.2f} to {max(overs):+.2f}), "
            "sidecars' CPU median "
            f"{statistics.median(c for _, c in rows):.0f} millicores"
        )


if __name__ == "__main__":
    main()
