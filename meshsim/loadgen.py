"""The Locust load both testbeds run: its configuration, its command line, and what it
recorded, cut to the measurement window.

The local testbed runs `meshsim/testbed/locustfile.py` in a network namespace, the kind
backend runs the same file in a pod; both hand it the same JSON configuration (named by
MESHSIM_LOAD_CONFIG) and read back the same records: one row per request, (start epoch
seconds, latency ms, ok), written as a .npy array when Locust quits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from meshsim.scenario import Scenario
from meshsim.testbed.dataplane import load_users

__all__ = ["first_arrival_s", "load_config", "locust_argv", "window_latencies"]

# Locust stops itself at duration_s (the locustfile does); this only bounds a stuck run.
STUCK_MARGIN_S = 30
# Locust starts all users at once (`locust_argv`: 10 x users a second, so within 0.1 s);
# the paced users' schedules begin after that, so that none starts late
SPAWN_S = 0.15


def first_arrival_s(
    index: int, users: int, rate_rps: float, arrivals: str, rng: np.random.Generator
) -> float:
    """When paced user `index` (of `users`, together sending `rate_rps`) sends first, after
    the schedules begin. Each user then sends every users / rate_rps seconds (constant
    arrivals) or after exponential gaps of that mean (Poisson). Constant: user i at
    i / rate_rps, so the users' arrivals together come evenly spaced at the scenario's
    rate, the stream both engines simulate (random phases would bunch them: five users at
    100/s with seeded phases sent two requests at the same instant and then none for
    37 ms). Poisson: a random phase within one gap (merged, the users' streams are Poisson
    at any phases)."""
    if arrivals == "constant":
        return index / rate_rps
    return float(rng.uniform(0, users / rate_rps))


def load_config(
    scenario: Scenario, *, seed: int, targets: list[str], out: str, started_file: str
) -> dict[str, Any]:
    """The locustfile's configuration: who to call, how hard, and where to write."""
    traffic = scenario.traffic
    expected = traffic.open_loop.rate_rps * traffic.duration_s if traffic.open_loop else math.inf
    return {
        "seed": seed,
        "targets": targets,
        "request_bytes": traffic.request_bytes,
        "response_bytes": traffic.response_bytes,
        "traffic": traffic.model_dump(mode="json"),
        "users": load_users(scenario),
        # a bound on the request count: twice what the scenario asks for
        "max_requests": int(min(2 * expected, 1_000_000)),
        "out": out,
        "started_file": started_file,
    }


def locust_argv(python: str, locustfile: str, users: int, duration_s: float) -> list[str]:
    """Headless Locust with all users started at once; the locustfile ends the run."""
    return [
        python, "-m", "locust", "-f", locustfile, "--headless",
        "-u", str(users), "-r", str(10 * users),
        "-t", f"{math.ceil(duration_s) + STUCK_MARGIN_S}s", "--stop-timeout", "5",
        "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip


def window_latencies(records: np.ndarray, t0: float, window_s: float) -> tuple[np.ndarray, int]:
    """Latencies (seconds) of the successful requests sent inside [t0, t0 + window_s), and
    how many requests sent inside it failed."""
    rows = np.asarray(records, dtype=np.float64).reshape(-1, 3)
    starts, latency_ms, ok = rows[:, 0], rows[:, 1], rows[:, 2] > 0.5
    inside = (starts >= t0) & (starts < t0 + window_s)
    return latency_ms[inside & ok] / 1000.0, int((inside & ~ok).sum())
