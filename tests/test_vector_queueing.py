"""The vector engine against queueing theory's closed forms (long runs: the engine is fast)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from meshsim.engines.vector import simulate_mode
from meshsim.profile import Profile
from meshsim.results import ModeResult
from meshsim.topology import build_topology

from . import builders
from .builders import (
    base_scenario,
    closed_loop_app,
    erlang_c_sojourn,
    in_flight_profile,
    scenario_of,
    zero_cost_profile,
)

SEEDS = (1, 2, 3)


def run(doc: dict[str, Any], seed: int, profile: Profile | None = None) -> ModeResult:
    scenario = scenario_of(doc)
    return simulate_mode(
        scenario, profile or zero_cost_profile(), build_topology(scenario), "none", seed=seed
    )


def mean_latency_s(doc: dict[str, Any]) -> float:
    return float(np.mean([run(doc, seed).latency_ms.mean for seed in SEEDS])) / 1e3


def single_app(
    service_time: dict[str, Any], concurrency: int | None, rate: float, duration: float = 2000.0
) -> dict[str, Any]:
    return builders.single_app(service_time, concurrency, rate, duration, warmup=50)


def test_mm1_mean_sojourn_matches_closed_form() -> None:
    lam, mu = 50.0, 100.0
    doc = single_app({"dist": "exponential", "mean_ms": 1e3 / mu}, concurrency=1, rate=lam)
    assert mean_latency_s(doc) == pytest.approx(1 / (mu - lam), rel=0.02)


def test_mm1_sojourn_is_exponential() -> None:
    """M/M/1 sojourn times are exponential with rate mu - lambda: check the percentiles."""
    lam, mu = 60.0, 100.0
    doc = single_app({"dist": "exponential", "mean_ms": 1e3 / mu}, concurrency=1, rate=lam)
    latency = run(doc, seed=4).latency_ms
    for q, got in ((0.5, latency.p50), (0.9, latency.p90), (0.99, latency.p99)):
        assert got / 1e3 == pytest.approx(-math.log(1 - q) / (mu - lam), rel=0.04), q


def test_mmc_app_slots_match_erlang_c() -> None:
    lam, mu, c = 240.0, 100.0, 3
    doc = single_app({"dist": "exponential", "mean_ms": 1e3 / mu}, concurrency=c, rate=lam)
    assert mean_latency_s(doc) == pytest.approx(erlang_c_sojourn(lam, mu, c), rel=0.02)


def test_node_cores_are_the_servers_of_an_mmc_queue() -> None:
    lam, mu, c = 240.0, 100.0, 3
    doc = base_scenario(
        workloads=[{"name": "app", "cpu_time": {"dist": "exponential", "mean_ms": 1e3 / mu}}],
        traffic={
            "entry": "app",
            "open_loop": {"rate_rps": lam},
            "duration_s": 1000,
            "warmup_s": 50,
        },
    )
    doc["cluster"]["cores_per_node"] = c
    assert mean_latency_s(doc) == pytest.approx(erlang_c_sojourn(lam, mu, c), rel=0.02)


def test_md1_mean_sojourn_matches_pollaczek_khinchine() -> None:
    lam, service = 60.0, 0.01
    rho = lam * service
    doc = single_app({"dist": "constant", "value_ms": service * 1e3}, concurrency=1, rate=lam)
    expected = service + rho * service / (2 * (1 - rho))
    assert mean_latency_s(doc) == pytest.approx(expected, rel=0.02)


def test_jackson_tandem_sojourn_is_the_sum_of_mm1_sojourns() -> None:
    """Four services in a chain, each alone on a one-core node: a tandem of M/M/1 queues."""
    lam = 40.0
    means_ms = (10.0, 15.0, 8.0, 20.0)
    names = ("a", "b", "c", "d")
    workloads = []
    for i, (name, mean_ms) in enumerate(zip(names, means_ms, strict=True)):
        workload: dict[str, Any] = {
            "name": name,
            "placement": {"nodes": [f"node-{i + 1}"]},
            "cpu_time": {"dist": "exponential", "mean_ms": mean_ms},
        }
        if i + 1 < len(names):
            workload["calls"] = [{"to": names[i + 1]}]
        workloads.append(workload)
    doc = base_scenario(
        workloads=workloads,
        traffic={"entry": "a", "open_loop": {"rate_rps": lam}, "duration_s": 1000, "warmup_s": 50},
    )
    doc["cluster"]["nodes"] = 4
    doc["cluster"]["cores_per_node"] = 1
    expected = sum(1 / (1e3 / m - lam) for m in means_ms)
    assert mean_latency_s(doc) == pytest.approx(expected, rel=0.03)


def test_littles_law_in_flight_equals_throughput_times_latency() -> None:
    lam, mu = 50.0, 100.0
    doc = single_app({"dist": "exponential", "mean_ms": 1e3 / mu}, concurrency=1, rate=lam)
    doc["workloads"][0]["memory_mib"] = 0
    result = run(doc, seed=5, profile=in_flight_profile())
    in_flight = result.memory_mib.app  # 1 MiB per request in flight
    assert in_flight == pytest.approx(
        result.throughput_rps * result.latency_ms.mean / 1e3, rel=0.01
    )


def test_closed_loop_obeys_the_response_time_law_and_mean_value_analysis() -> None:
    """N users with think time Z: throughput X = N / (R + Z), and R as MVA computes it."""
    users, think_s = 20, 0.1
    doc = closed_loop_app(users, think_s, duration=600)
    result = run(doc, seed=2)
    response_s = result.latency_ms.mean / 1e3
    assert result.throughput_rps == pytest.approx(users / (response_s + think_s), rel=0.02)
    assert 0.4 < result.throughput_rps * 0.004 < 0.9  # the server is loaded, not idle
    # exact mean value analysis of this closed network (one FIFO server, N users, think Z)
    queue = 0.0
    for n in range(1, users + 1):
        mva_response_s = 0.004 * (1 + queue)
        queue = n / (mva_response_s + think_s) * mva_response_s
    assert response_s == pytest.approx(mva_response_s, rel=0.03)
