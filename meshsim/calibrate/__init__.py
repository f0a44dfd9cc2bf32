"""Calibration: measure a grid, fit a profile to it, and check it on held-out runs."""

from __future__ import annotations

from meshsim.calibrate.compare import ErrorRow, compare_runs, summarize
from meshsim.calibrate.fit import Estimate, FitPoint, FitResult, fit_profile

__all__ = [
    "ErrorRow",
    "Estimate",
    "FitPoint",
    "FitResult",
    "compare_runs",
    "fit_profile",
    "summarize",
]
