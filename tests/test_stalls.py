"""The host's stalls (host.stall_probability, host.stall_us): each wake-up (an app woken by
a request or by a call's response; each proxy pass) is held up, with that probability, for
an exponential time with that mean, on any node, whatever the node's other work."""

from __future__ import annotations

import math
from typing import Any

import pytest

from meshsim.calibrate.params import with_values
from meshsim.loader import load_scenario
from meshsim.profile import Profile
from meshsim.run import simulate

from .builders import ROOT, client_and_one_pod, scenario_of, zero_cost_profile
from .test_engine_agreement import disagreements, steady_testbed_doc

P, STALL_MS = 0.2, 2.0
REQUESTS = 50_000


def _stalling(probability: float = P, stall_ms: float = STALL_MS) -> Profile:
    return with_values(
        zero_cost_profile(),
        {"host.stall_probability": probability, "host.stall_us": stall_ms * 1e3},
    )


def _two_pods(modes: list[str]) -> dict[str, Any]:
    """A load generator on node-1 calling one pod on node-2 that takes 1 ms; no CPU."""
    return client_and_one_pod(
        modes, app={"service_time": 1.0}, traffic={"duration_s": REQUESTS / 100 + 1}
    )


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_one_wake_up_gives_the_mixture_of_no_stall_and_an_exponential_one(engine: str) -> None:
    # no mesh: the app is woken once per request. Latency is 1 ms, plus with probability P
    # an exponential with mean STALL_MS: P(latency <= 1 + x) = 1 - P exp(-x / STALL_MS)
    run = simulate(scenario_of(_two_pods(["none"])), _stalling(), seed=5, engine=engine)
    latency = run.modes["none"].latency_ms
    assert latency.mean == pytest.approx(1.0 + P * STALL_MS, rel=0.02)
    assert latency.p50 == pytest.approx(1.0, rel=1e-9)  # most requests are not held up
    for q, got in ((0.9, latency.p90), (0.99, latency.p99)):
        want = 1.0 + STALL_MS * math.log(P / (1 - q))
        assert got == pytest.approx(want, rel=0.04), q


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_every_proxy_pass_is_a_wake_up_that_may_stall(engine: str) -> None:
    # sidecar mode: the app's wake-up and two passes through each of the two sidecars
    run = simulate(scenario_of(_two_pods(["sidecar"])), _stalling(), seed=5, engine=engine)
    latency = run.modes["sidecar"].latency_ms
    assert latency.mean == pytest.approx(1.0 + 5 * P * STALL_MS, rel=0.02)
    # a request without any stall takes 1 ms: (1 - P) ** 5 = 33% of them
    assert latency.p50 > 1.0 + 0.1 * STALL_MS


def test_without_a_probability_nothing_is_drawn() -> None:
    scenario = scenario_of(_two_pods(["none", "sidecar"]))
    for engine in ("des", "vector"):
        a = simulate(scenario, zero_cost_profile(), seed=4, engine=engine)
        b = simulate(scenario, _stalling(probability=0.0, stall_ms=5.0), seed=4, engine=engine)
        assert a.modes == b.modes, engine


def test_the_engines_agree_with_stalls_in_every_mode() -> None:
    # the testbed chain: apps woken by requests and by their calls' responses, every kind of
    # proxy. Steadied (CPU at its means, a narrow app tail) and stalls short enough for the
    # p99 of 20,000 requests to be sampled to about 1% (with 3 ms stalls it moved by up to
    # 8% from seed to seed)
    scenario, _ = load_scenario(ROOT / "scenarios" / "testbed-chain.yaml")
    doc = steady_testbed_doc()
    doc["host"]["stall_probability"] = {"value": 0.05, "source": "test"}
    doc["host"]["stall_us"] = {"value": 1000.0, "source": "test"}
    profile = Profile.model_validate(doc)
    traffic = scenario.traffic.model_copy(update={"duration_s": 200.0, "warmup_s": 2.0})
    scenario = scenario.model_copy(update={"traffic": traffic})
    des = simulate(scenario, profile, seed=3, engine="des")
    vector = simulate(scenario, profile, seed=3, engine="vector")
    for mode, got in vector.modes.items():
        want = des.modes[mode]
        assert disagreements(got, want, quick=False) == [], mode
        # the mean is what the stalls add most to: held tighter than the shared tolerance
        assert got.latency_ms.mean == pytest.approx(want.latency_ms.mean, rel=0.02), mode
