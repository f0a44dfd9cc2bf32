"""How far the same setting and mode moves from one dataset to another: for every run that
all the given datasets measured (setting, mode), the relative standard deviation of its p50,
p90 and p99 across them; printed as the median over the runs, next to the median of each
run's own sampling error.

    python results/calibration/testbed-chain/day-to-day/spread.py \\
        results/calibration/testbed-chain/reference-buffer-16k \\
        results/calibration/testbed-chain/2026-11-26 \\
        results/calibration/testbed-chain/2026-11-27-pm
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

FIGURES = ("p50", "p90", "p99")


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]]
    measured: dict[tuple[str, str, str], dict[Path, float]] = defaultdict(dict)
    sampling: dict[str, list[float]] = defaultdict(list)
    for folder in folders:
        for name in ("insample.csv", "heldout.csv"):
            with (folder / name).open() as f:
                for row in csv.DictReader(f):
                    if row["figure"] not in FIGURES:
                        continue
                    measured[(row["point"], row["mode"], row["figure"])][folder] = float(
                        row["measured"]
                    )
                    if row["sampling_error"]:
                        sampling[row["figure"]].append(float(row["sampling_error"]))
    for figure in FIGURES:
        spreads = [
            np.std(list(v.values()), ddof=1) / np.mean(list(v.values()))
            for k, v in measured.items()
            if k[2] == figure and len(v) == len(folders)
        ]
        print(
            f"{figure}: {len(spreads)} runs, relative sd across datasets: median "
            f"{np.median(spreads):.3f}, mean {np.mean(spreads):.3f}; each run's own sampling "
            f"error, median {np.median(sampling[figure]):.3f}"
        )


if __name__ == "__main__":
    main()
