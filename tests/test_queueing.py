"""The DES engine against queueing theory's closed forms (several seeds, warm-up cut)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from meshsim.engines import simulate_des
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

SEEDS = (1, 2, 3, 4)


def mean_latency_s(doc: dict[str, Any]) -> float:
    """Mean sojourn over several seeds, each run with its own warm-up cut."""
    scenario = scenario_of(doc)
    profile = zero_cost_profile()
    topology = build_topology(scenario)
    means = []
    for seed in SEEDS:
        result = simulate_des(scenario, profile, topology, "none", seed=seed)
        means.append(result.latency_ms.mean / 1e3)
    return float(np.mean(means))


def single_app(
    service_time: dict[str, Any], concurrency: int | None, rate: float, duration: float = 400.0
) -> dict[str, Any]:
    return builders.single_app(service_time, concurrency, rate, duration, warmup=20)


def test_mm1_mean_sojourn_matches_closed_form() -> None:
    lam, mu = 50.0, 100.0
    doc = single_app({"dist": "exponential", "mean_ms": 1e3 / mu}, concurrency=1, rate=lam)
    assert mean_latency_s(doc) == pytest.approx(1 / (mu - lam), rel=0.03)


def test_mmc_mean_sojourn_matches_erlang_c() -> None:
    lam, mu, c = 240.0, 100.0, 3
    doc = single_app(
        {"dist": "exponential", "mean_ms": 1e3 / mu}, concurrency=c, rate=lam, duration=200
    )
    assert mean_latency_s(doc) == pytest.approx(erlang_c_sojourn(lam, mu, c), rel=0.03)


def test_node_cores_are_the_servers_of_an_mmc_queue() -> None:
    """With CPU work and no concurrency limit, a node's cores form an M/M/c queue."""
    lam, mu, c = 240.0, 100.0, 3
    doc = base_scenario(
        workloads=[{"name": "app", "cpu_time": {"dist": "exponential", "mean_ms": 1e3 / mu}}],
        traffic={"entry": "app", "open_loop": {"rate_rps": lam}, "duration_s": 200, "warmup_s": 20},
    )
    doc["cluster"]["cores_per_node"] = c
    assert mean_latency_s(doc) == pytest.approx(erlang_c_sojourn(lam, mu, c), rel=0.03)


def test_md1_mean_sojourn_matches_pollaczek_khinchine() -> None:
    lam, service = 60.0, 0.01
    rho = lam * service
    doc = single_app({"dist": "constant", "value_ms": service * 1e3}, concurrency=1, rate=lam)
    expected = service + rho * service / (2 * (1 - rho))
    assert mean_latency_s(doc) == pytest.approx(expected, rel=0.03)


def test_littles_law_in_flight_equals_throughput_times_latency() -> None:
    """In-flight requests (integrated over time for memory) = throughput x mean latency."""
    lam, mu = 50.0, 100.0
    doc = single_app(
        {"dist": "exponential", "mean_ms": 1e3 / mu}, concurrency=1, rate=lam, duration=200
    )
    doc["workloads"][0]["memory_mib"] = 0
    scenario = scenario_of(doc)
    result = simulate_des(scenario, in_flight_profile(), build_topology(scenario), "none", seed=5)
    in_flight = result.memory_mib.app  # 1 MiB per request in flight
    assert in_flight == pytest.approx(
        result.throughput_rps * result.latency_ms.mean / 1e3, rel=0.02
    )


def test_closed_loop_obeys_the_interactive_response_time_law() -> None:
    """N users with think time Z: throughput X = N / (R + Z), R the mean response time."""
    users, think_s = 20, 0.1
    doc = closed_loop_app(users, think_s, duration=120)
    scenario = scenario_of(doc)
    result = simulate_des(scenario, zero_cost_profile(), build_topology(scenario), "none", seed=2)
    response_s = result.latency_ms.mean / 1e3
    assert result.throughput_rps == pytest.approx(users / (response_s + think_s), rel=0.03)
    assert 0.4 < result.throughput_rps * 0.004 < 0.9  # the server is loaded, not idle
