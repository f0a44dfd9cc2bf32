"""Shared builders: scenarios and profiles written as plain dicts, as a user would write YAML."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from meshsim.calibrate.params import zero_cost
from meshsim.costs import wake_up_s
from meshsim.loader import dump_yaml, load_profile
from meshsim.profile import Profile
from meshsim.scenario import Scenario

ROOT = Path(__file__).resolve().parent.parent
ISTIO = ROOT / "profiles" / "istio-1.24.yaml"
# The local testbed's calibrated app-stack and testbed terms as fitted once (the 16 KiB
# reference, a record that does not change): the engine-agreement tests use fixed values
# rather than whatever the latest calibration wrote to profiles/local-haproxy.yaml. With
# the 64 KiB reference's values three of them failed on the edge of sampling: the steadied
# chain at 200/s puts about 1% (wake-up test, ambient) or 10% (cold-cache test,
# ambient-waypoint) of its requests in a separate slow cluster and the p99 / p90 sits on
# its edge (vector 7.2-8.0 ms against DES 8.0-8.1 over six seeds of 2,000 requests; p90 7.7
# against 7.9-8.5 over four seeds of 5,000); the stall test's pools, seed 3, vector 5.62
# connections against DES 5.90, where seeds 4-7 agree within 1.1%. The means agree within
# 0.5-1%, vector lower: recorded on the calibration issue.
TESTBED_PROFILE = (
    ROOT / "results" / "calibration" / "testbed-chain" / "reference-buffer-16k" / "profile.yaml"
)


def base_scenario(**overrides: Any) -> dict[str, Any]:
    """A one-service scenario with no network delay; tests change what they study."""
    doc: dict[str, Any] = {
        "name": "test",
        "profile": "istio-1.24",
        "seed": 1,
        "price": {"vcpu_hour_usd": 0.03, "gib_hour_usd": 0.004, "source": "test"},
        "cluster": {
            "nodes": 1,
            "cores_per_node": 4,
            "memory_gib_per_node": 16,
            "network": {"same_node_ms": 0, "cross_node_ms": 0, "cross_zone_ms": 0},
        },
        "workloads": [{"name": "app"}],
        "traffic": {
            "entry": "app",
            "open_loop": {"rate_rps": 50},
            "duration_s": 10,
            "warmup_s": 1,
        },
        "mesh": {"modes": ["none"]},
    }
    doc.update(overrides)
    return doc


def client_and_one_pod(
    modes: list[str],
    *,
    app: dict[str, Any] | None = None,
    traffic: dict[str, Any] | None = None,
    cores_per_node: int = 2,
    network_ms: tuple[float, float] = (0, 0),
    **cluster: Any,
) -> dict[str, Any]:
    """The testbed's two-pod shape: the load generator on node-1 calling one app on node-2.
    `app` adds to the app's workload (name 'app'), `traffic` to the traffic (100 requests/s,
    4 s, 1 s warm-up), `cluster` to the cluster; network_ms: same node, across nodes."""
    same, cross = network_ms
    return base_scenario(
        cluster={
            "nodes": 2,
            "cores_per_node": cores_per_node,
            "memory_gib_per_node": 4,
            "network": {"same_node_ms": same, "cross_node_ms": cross, "cross_zone_ms": cross},
            **cluster,
        },
        workloads=[{"name": "app", "placement": {"nodes": ["node-2"]}, **(app or {})}],
        traffic={
            "entry": (app or {}).get("name", "app"),
            "open_loop": {"rate_rps": 100},
            "duration_s": 4,
            "warmup_s": 1,
            "client": {"node": "node-1"},
            **(traffic or {}),
        },
        mesh={"modes": modes},
    )


def one_pod_every_period(rate_rps: float, modes: list[str], cpu_ms: float) -> dict[str, Any]:
    """The load generator on node-1 calling one app on node-2 (one core each), constant
    arrivals, the app's CPU constant: every request finds node-2 and the app idle for the
    same gap."""
    return client_and_one_pod(
        modes,
        cores_per_node=1,
        app={"cpu_time": {"dist": "constant", "value_ms": cpu_ms}},
        traffic={"open_loop": {"rate_rps": rate_rps, "arrivals": "constant"}, "duration_s": 6},
    )


def steady_burst_s(
    period_s: float, cpu_s: float, size_s: float, idle_s: float, shape: float
) -> float:
    """The app's burst in the steady state of one_pod_every_period, when it grows with the
    gap the previous burst left by wake_up_s (a wake-up wait or a cold-cache cost):
    g = T - cpu - w(g), solved by bisection (the right side falls as g grows)."""
    lo, hi = 0.0, period_s
    for _ in range(200):
        gap = (lo + hi) / 2
        if gap < period_s - cpu_s - wake_up_s(gap, size_s, idle_s, shape):
            lo = gap
        else:
            hi = gap
    return cpu_s + wake_up_s(gap, size_s, idle_s, shape)


def scenario_of(doc: dict[str, Any]) -> Scenario:
    return Scenario.model_validate(doc)


def zero_cost_profile() -> Profile:
    """The Istio profile with every cost zeroed: only what the scenario says takes time."""
    return zero_cost(load_profile(ISTIO), workers=2, source="test: zero cost")


def write_yaml(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(dump_yaml(doc))  # as meshsim writes YAML: it reads back the same
    return path


def erlang_c_sojourn(lam: float, mu: float, c: int) -> float:
    """Mean time in an M/M/c system (Erlang C waiting probability)."""
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam) + 1 / mu


def single_app(
    service_time: dict[str, Any],
    concurrency: int | None,
    rate: float,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    """One app behind Poisson arrivals: an M/G/c queue when the profile costs nothing."""
    workload: dict[str, Any] = {"name": "app", "service_time": service_time}
    if concurrency:
        workload["concurrency"] = concurrency
    return base_scenario(
        workloads=[workload],
        traffic={
            "entry": "app",
            "open_loop": {"rate_rps": rate},
            "duration_s": duration,
            "warmup_s": warmup,
        },
    )


def closed_loop_app(users: int, think_s: float, duration: float) -> dict[str, Any]:
    """Locust-like users in front of one FIFO server of 4 ms exponential service."""
    return base_scenario(
        workloads=[
            {"name": "app", "concurrency": 1, "service_time": {"dist": "exponential", "mean_ms": 4}}
        ],
        traffic={
            "entry": "app",
            "closed_loop": {
                "users": users,
                "think_time": {"dist": "exponential", "mean_ms": think_s * 1e3},
            },
            "duration_s": duration,
            "warmup_s": 10,
        },
    )


def in_flight_profile() -> Profile:
    """Costs nothing, but counts 1 MiB of app memory per request in flight (Little's law)."""
    raw = zero_cost_profile().model_dump()
    raw["app"]["per_inflight_kib"] = {"value": 1024, "source": "test: 1 MiB per request"}
    return Profile.model_validate(raw)
