"""Measure the reference grid's settings in another order, into a dataset that
`meshsim calibrate --no-measure` then fits as it would any (README.md next to this file).
Why: calibrate measures the settings in the grid's order (the chain's first, lowest load
first), so a drift of the host over the 20 minutes would look like a difference between
the shapes and loads. Run from the repository root, as root:

    python results/calibration/testbed-chain/order/measure_in_order.py OUT_DIR reversed

then `meshsim calibrate scenarios/testbed-chain.yaml --out OUT_DIR --no-measure`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from meshsim.calibrate import calibration as cal
from meshsim.calibrate.cli import _measure_with
from meshsim.calibrate.grid import load_grid
from meshsim.loader import load_scenario

SCENARIO = Path("scenarios/testbed-chain.yaml")
GRID = Path("scenarios/grids/testbed-chain.yaml")


def main() -> None:
    out, order = Path(sys.argv[1]), sys.argv[2]
    _, prior = load_scenario(SCENARIO)
    plan = load_grid(GRID, SCENARIO)
    settings = list(plan.settings)
    if order == "reversed":
        settings.reverse()
    else:
        raise SystemExit(f"order: expected 'reversed', got {order!r}")
    plan = dataclasses.replace(plan, settings=tuple(settings))
    cal.measure_grid(plan, out / "dataset", _measure_with(prior, False, print), print)


if __name__ == "__main__":
    main()
