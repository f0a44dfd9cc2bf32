"""Fit one profile to the fitted settings of several calibration datasets at once, then
predict every dataset's held-out settings with it (README.md next to this file). The split
is each dataset's own (the grid's seed): no held-out setting of any dataset is fitted.
Run from the repository root:

    python results/calibration/testbed-chain/pooled/pool_fit.py OUT_DIR DATASET_DIR...

Each DATASET_DIR is a calibration's --out folder (with dataset/). Writes OUT_DIR/report.txt
(estimates; in-sample and held-out summaries over all datasets, then held-out per dataset)
and OUT_DIR/profile.yaml.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from meshsim.calibrate import calibration as cal
from meshsim.calibrate.compare import summarize, summary_lines
from meshsim.calibrate.fit import fit_profile
from meshsim.calibrate.grid import Setting, load_grid, split
from meshsim.loader import load_scenario
from meshsim.results import RunResult

SCENARIO = Path("scenarios/testbed-chain.yaml")
GRID = Path("scenarios/grids/testbed-chain.yaml")


def _refuse(folder: Path) -> Callable[[Setting], RunResult]:
    """measure_grid's measure for a dataset that must be complete: it measures nothing."""

    def measure(setting: Setting) -> RunResult:
        raise SystemExit(f"{folder}: {setting.label} is not in its dataset")

    return measure


def main() -> None:
    out, folders = Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]]
    _, prior = load_scenario(SCENARIO)
    plan = load_grid(GRID, SCENARIO)
    fit_settings, held_out = split(plan.settings, plan.grid.holdout)
    runs = {f: cal.measure_grid(plan, f / "dataset", _refuse(f)) for f in folders}
    points = [p for f in folders for p in cal.fit_points(fit_settings, runs[f])]
    fixed = plan.grid.fixed
    fit = fit_profile(
        points, cal.with_fixed(prior, fixed), engine="vector", say=print, fixed=set(fixed)
    )
    in_rows = {f: cal.predict(fit_settings, runs[f], fit.profile, "vector") for f in folders}
    held_rows = {f: cal.predict(held_out, runs[f], fit.profile, "vector") for f in folders}
    names = ", ".join(str(f) for f in folders)
    note = f"pooled over {len(folders)} datasets ({names}); each split as its grid says"
    result = cal.Calibration(
        fit_settings,
        held_out,
        fit,
        [r for f in folders for r in in_rows[f]],
        [r for f in folders for r in held_rows[f]],
        note,
        dict(fixed),
    )
    lines = [cal.report_text(result), "held-out settings, per dataset:"]
    for f in folders:
        lines += ["", f"  {f}:", *summary_lines(summarize(held_rows[f]))]
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.txt").write_text("\n".join(lines) + "\n")
    doc = cal.fitted_profile_doc(result, prior, f"the datasets of {names}", "pooled-testbed-chain")
    (out / "profile.yaml").write_text(cal.profile_yaml(doc, f"Pooled fit: {note}."))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
