"""Fit the cold caches' and the wake-up's idle curves to the even-phase sweep (this folder):
the echo app's CPU a request, c = base + C (1 - exp(-(g / tau) ^ k)), and the no-mesh
p50 the same way, g the period less the app's burst (its CPU a request). Run from the
repository root:

    python results/calibration/testbed-chain/even-phases/fit.py
"""

from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from table import figures  # this folder's

HERE = Path(__file__).parent
RATES = (25, 50, 70, 100, 200)
SHAPES = (1.0, 2.0, 3.0)


def points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Idle gap (ms), echo CPU a request (µs) and p50 (ms) of each of the ten runs."""
    p50, cpu = np.array([figures(HERE / f"tp-{rate}-256-{p}") for rate in RATES for p in "ab"]).T
    period_ms = np.repeat([1000.0 / rate for rate in RATES], 2)
    return period_ms - cpu / 1000.0, cpu, p50


def curve(x: np.ndarray, g: np.ndarray, shape: float | None = None) -> np.ndarray:
    base, size, tau = x[:3]
    k = x[3] if shape is None else shape
    return base + size * -np.expm1(-((g / tau) ** k))


def fit(g: np.ndarray, y: np.ndarray, start: list[float], shape: float | None) -> np.ndarray:
    """Least squares (base, size, time scale[, shape]); with `shape` that one is held."""
    lower, upper = [0.0, 0.0, 0.5, 0.5], [np.inf, np.inf, 100.0, 10.0]
    n = 4 if shape is None else 3
    res = least_squares(lambda x: curve(x, g, shape) - y, start[:n], bounds=(lower[:n], upper[:n]))
    return np.append(res.x, np.sqrt(np.mean(res.fun**2)))


def main() -> None:
    g, cpu, p50 = points()
    for name, y, start, unit in (
        ("echo CPU a request", cpu, [600.0, 400.0, 10.0, 2.0], "us"),
        ("p50", p50, [1.0, 0.7, 10.0, 2.0], "ms"),
    ):
        x = fit(g, y, start, None)
        print(
            f"{name}: base {x[0]:.3g} {unit}, size {x[1]:.3g} {unit}, time scale "
            f"{x[2]:.2f} ms, shape {x[3]:.2f} (rms {x[4]:.3g} {unit})"
        )
        for shape in SHAPES:
            z = fit(g, y, start, shape)
            print(
                f"   shape held at {shape:g}: base {z[0]:.3g}, size {z[1]:.3g}, time scale "
                f"{z[2]:.2f} ms (rms {z[3]:.3g} {unit})"
            )


if __name__ == "__main__":
    main()
