"""Waking idle nodes (profile: host.wake_up_us, wake_up_idle_ms, wake_up_shape): a burst
on a node whose cores have all been idle for a gap first waits for its core to wake, the
longer idle the longer the wait. Both engines track each node's idle gap."""

from __future__ import annotations

import math

import pytest

from meshsim.calibrate.params import with_values
from meshsim.costs import wake_up_s
from meshsim.loader import load_profile
from meshsim.run import simulate

from .builders import (
    ISTIO,
    one_pod_every_period,
    scenario_of,
    steady_burst_s,
    zero_cost_profile,
)

CPU_MS = 0.2
WAKE_US = 1000.0
IDLE_MS = 10.0


def test_the_wait_grows_with_the_idle_gap_to_its_full_size() -> None:
    assert wake_up_s(0.0, 1e-3, 0.01, 1.0) == 0.0
    assert wake_up_s(-1.0, 1e-3, 0.01, 1.0) == 0.0
    assert wake_up_s(0.01, 0.0, 0.01, 1.0) == 0.0
    assert wake_up_s(0.01, 1e-3, 0.01, 1.0) == pytest.approx(1e-3 * (1 - math.exp(-1)))
    # a larger shape: less below the time scale, more above it (a sharper threshold)
    assert wake_up_s(0.005, 1e-3, 0.01, 3.0) < wake_up_s(0.005, 1e-3, 0.01, 1.0)
    assert wake_up_s(0.02, 1e-3, 0.01, 3.0) > wake_up_s(0.02, 1e-3, 0.01, 1.0)
    assert wake_up_s(1.0, 1e-3, 0.01, 1.0) == pytest.approx(1e-3)


def _two_pods(rate_rps: float, modes: list[str]) -> dict[str, object]:
    return one_pod_every_period(rate_rps, modes, CPU_MS)


def _steady_latency_s(period_s: float, shape: float) -> float:
    """The latency of each request in the steady state: the app's burst after the wake-up."""
    return steady_burst_s(period_s, CPU_MS * 1e-3, WAKE_US * 1e-6, IDLE_MS * 1e-3, shape)


@pytest.mark.parametrize("engine", ["des", "vector"])
@pytest.mark.parametrize("shape", [1.0, 3.0])
def test_each_request_waits_for_the_node_its_gap_left_idle(engine: str, shape: float) -> None:
    # no costs but the app's CPU: node-1 runs nothing (the load generator is awake as it
    # sends), node-2 runs one burst per request, woken after the gap the last one left
    profile = with_values(
        zero_cost_profile(),
        {"host.wake_up_us": WAKE_US, "host.wake_up_idle_ms": IDLE_MS, "host.wake_up_shape": shape},
    )
    for rate in (50.0, 100.0, 200.0):
        run = simulate(scenario_of(_two_pods(rate, ["none"])), profile, seed=2, engine=engine)
        expected_ms = _steady_latency_s(1 / rate, shape) * 1e3
        latency = run.modes["none"].latency_ms
        assert latency.mean == pytest.approx(expected_ms, rel=1e-6), rate
        # what the wake-up takes is no CPU of the app's
        cpu = run.modes["none"].components
        app = next(c for c in cpu if c.name.startswith("app"))
        assert app.cpu_cores == pytest.approx(rate * CPU_MS * 1e-3, rel=0.01), rate


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_the_load_generators_node_is_awake_as_it_sends(engine: str) -> None:
    # a sidecar pass on the load generator's node right as the request is sent: no wait
    # there, only on node-2 (the app's burst; the sidecars' inbound passes cost nothing)
    profile = with_values(
        zero_cost_profile(),
        {
            "host.wake_up_us": WAKE_US,
            "host.wake_up_idle_ms": IDLE_MS,
            "host.wake_up_shape": 8.0,  # a threshold: the response's short gap costs nothing
            "sidecar.cpu.per_request_us.outbound": 100.0,
        },
    )
    run = simulate(scenario_of(_two_pods(20.0, ["sidecar"])), profile, seed=2, engine=engine)
    # node-2 idle about 49 ms of the 50 ms period: asleep (shape 8); node-1 awake
    expected_ms = CPU_MS + 0.05 + 0.05 + WAKE_US / 1000
    assert run.modes["sidecar"].latency_ms.mean == pytest.approx(expected_ms, rel=1e-3)


def test_the_sourced_profile_has_no_wake_up() -> None:
    profile = load_profile(ISTIO)
    assert profile.host.wake_up_us.value == 0.0
