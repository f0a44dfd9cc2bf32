"""Each run's echo CPU a request and p50 beside the mean of the probes run before and after
it, and their correlations over the twelve runs."""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def main() -> None:
    probes = [json.loads(line) for line in (HERE / "probes.jsonl").read_text().splitlines()]
    rows = []
    for i in range(12):
        summary = next((HERE / "runs" / f"{i + 1:02d}").glob("*-seed*.json"))
        mode = json.loads(summary.read_text())["modes"]["none"]
        echo = next(c for c in mode["components"] if c["name"] == "echo-0")
        before, after = probes[2 * i], probes[2 * i + 1]
        row = {
            "echo_us": echo["cpu_cores"] / mode["throughput_rps"] * 1e6,
            "p50": mode["latency_ms"]["p50"],
        }
        row |= {k: (before[k] + after[k]) / 2 for k in before if k != "at"}
        rows.append(row)
    keys = list(rows[0])
    for row in rows:
        print("  ".join(f"{k}={row[k]:.2f}" for k in keys))
    table = np.array([[row[k] for k in keys] for row in rows])
    for j, name in enumerate(("echo_us", "p50")):
        corr = {
            k: round(float(np.corrcoef(table[:, j], table[:, m])[0, 1]), 2)
            for m, k in enumerate(keys)
        }
        print(f"correlation with {name}:", corr)


if __name__ == "__main__":
    main()
