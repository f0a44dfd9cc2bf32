"""The echo app's CPU a request and p50 over the six runs with the cores left to idle (odd
runs) and the six with them kept awake (even runs)."""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def main() -> None:
    for tag, runs in (
        ("cores left to idle", range(1, 13, 2)),
        ("cores kept awake", range(2, 13, 2)),
    ):
        cpu, p50 = [], []
        for i in runs:
            summary = next((HERE / "runs" / f"{i:02d}").glob("*-seed*.json"))
            mode = json.loads(summary.read_text())["modes"]["none"]
            echo = next(c for c in mode["components"] if c["name"] == "echo-0")
            cpu.append(echo["cpu_cores"] / mode["throughput_rps"] * 1e6)
            p50.append(mode["latency_ms"]["p50"])
        c, p = np.array(cpu), np.array(p50)
        values = np.round(c).astype(int).tolist()
        sd = c.std(ddof=1) / c.mean()
        print(f"{tag}: echo CPU a request (us) {values}, mean {c.mean():.0f}, sd {sd:.1%}")
        print(f"    p50 mean {p.mean():.3f} ms, sd {p.std(ddof=1) / p.mean():.1%}")


if __name__ == "__main__":
    main()
