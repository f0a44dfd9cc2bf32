"""Refit the reference dataset with the latency stage started from its usual point times a
factor (README.md next to this file). Run from the repository root:

    python results/calibration/testbed-chain/fit-starts/refit_from_start.py 0.7 OUT_DIR

OUT_DIR must hold a copy of results/calibration/testbed-chain/reference-buffer-16k/dataset.
"""

from __future__ import annotations

import sys

import meshsim.calibrate.fit as fit
from meshsim.calibrate.params import Parameter
from meshsim.cli import main


def run() -> None:
    factor, out = float(sys.argv[1]), sys.argv[2]
    usual = fit._start

    def scaled(p: Parameter, prior: float) -> float:
        value = usual(p, prior)
        return min(value * factor, p.upper * 0.99) if p.stage == "latency" else value

    fit._start = scaled
    sys.argv = [
        "meshsim", "calibrate", "scenarios/testbed-chain.yaml", "--backend", "local",
        "--no-measure", "--out", out,
    ]  # fmt: skip
    main()


if __name__ == "__main__":
    run()
