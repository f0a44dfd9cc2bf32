"""The app-stack terms of the profile, in both engines, against their closed forms.

A constant visit latency shifts every request's latency by exactly that per app visited;
a lognormal one gives the lognormal's quantiles; idle CPU adds exactly its millicores to
every app pod; memory of serving mTLS is paid by every proxy but the load generator's
sidecar. A profile with these terms at zero draws exactly as one without them.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from scipy import stats

from meshsim.profile import Profile
from meshsim.results import ModeResult
from meshsim.run import simulate
from meshsim.scenario import Mode

from .builders import base_scenario, scenario_of, single_app, zero_cost_profile

ENGINES = ("des", "vector")


def app_stack(visit_us: float, cv: float = 0.0, idle: float = 0.0) -> Profile:
    raw = zero_cost_profile().model_dump()
    raw["app"]["visit_latency_us"] = {"value": visit_us, "source": "test"}
    raw["app"]["visit_latency_cv"] = {"value": cv, "source": "test"}
    raw["app"]["idle_millicores"] = {"value": idle, "source": "test"}
    return Profile.model_validate(raw)


def two_hop_chain() -> dict[str, Any]:
    """loadgen -> front -> back, constant service times and arrivals far apart: no queueing."""
    return base_scenario(
        workloads=[
            {"name": "front", "service_time": 0.5, "calls": [{"to": "back"}]},
            {"name": "back", "service_time": 0.25},
        ],
        traffic={
            "entry": "front",
            "open_loop": {"rate_rps": 20, "arrivals": "constant"},
            "duration_s": 20,
            "warmup_s": 1,
        },
        mesh={"modes": ["none", "sidecar"]},
    )


def run(doc: dict[str, Any], profile: Profile, engine: str, mode: Mode = "none") -> ModeResult:
    return simulate(scenario_of(doc), profile, modes=[mode], seed=3, engine=engine).modes[mode]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_constant_visit_latency_shifts_every_percentile_by_it_per_app_visited(
    engine: str,
) -> None:
    doc = two_hop_chain()
    before = run(doc, app_stack(0.0), engine).latency_ms
    after = run(doc, app_stack(1500.0), engine).latency_ms
    assert before.p50 == pytest.approx(0.75, rel=1e-3)
    # two apps visited: 2 x 1.5 ms on every request
    for p in ("mean", "p50", "p90", "p99"):
        assert getattr(after, p) - getattr(before, p) == pytest.approx(3.0, rel=2e-3), p


@pytest.mark.parametrize("engine", ENGINES)
def test_the_fixed_part_of_a_visit_latency_shifts_every_percentile_by_it_per_app_visited(
    engine: str,
) -> None:
    doc = two_hop_chain()
    spread = app_stack(1000.0, cv=0.8)
    raw = spread.model_dump()
    raw["app"]["visit_latency_floor_us"] = {"value": 400.0, "source": "test"}
    floored = Profile.model_validate(raw)
    before = run(doc, spread, engine).latency_ms
    after = run(doc, floored, engine).latency_ms
    # the same draws, two apps visited: 2 x 0.4 ms more on every request
    for p in ("mean", "p50", "p90", "p99"):
        assert getattr(after, p) - getattr(before, p) == pytest.approx(0.8, rel=1e-6), p


@pytest.mark.parametrize("engine", ENGINES)
def test_a_lognormal_visit_latency_has_the_lognormal_quantiles(engine: str) -> None:
    mean_ms, cv = 2.0, 1.5
    doc = single_app({"dist": "constant", "value_ms": 1.0}, None, 100.0, 300.0, 5.0)
    latency = run(doc, app_stack(mean_ms * 1e3, cv), engine).latency_ms
    sigma = math.sqrt(math.log1p(cv * cv))
    mu = math.log(mean_ms) - sigma * sigma / 2
    assert latency.mean == pytest.approx(1.0 + mean_ms, rel=0.03)
    for q, got in ((0.5, latency.p50), (0.9, latency.p90), (0.99, latency.p99)):
        want = 1.0 + math.exp(mu + sigma * float(stats.norm.ppf(q)))
        assert got == pytest.approx(want, rel=0.04), q


@pytest.mark.parametrize("engine", ENGINES)
def test_idle_cpu_adds_exactly_its_millicores_to_every_app_pod(engine: str) -> None:
    doc = two_hop_chain()
    before = run(doc, app_stack(0.0), engine, "sidecar")
    after = run(doc, app_stack(0.0, idle=7.0), engine, "sidecar")
    cpu_before = {c.name: c.cpu_cores for c in before.components}
    cpu_after = {c.name: c.cpu_cores for c in after.components}
    shift = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
    assert shift == pytest.approx(
        {"loadgen-0": 0.0, "front-0": 0.007, "back-0": 0.007, "loadgen-0.sidecar": 0.0,
         "front-0.sidecar": 0.0, "back-0.sidecar": 0.0}, abs=1e-12
    )  # fmt: skip
    assert after.cpu_cores.app - before.cpu_cores.app == pytest.approx(0.014, abs=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_serving_memory_is_paid_by_every_proxy_but_the_load_generators_sidecar(
    engine: str,
) -> None:
    raw = zero_cost_profile().model_dump()
    for kind in ("sidecar", "ztunnel", "waypoint"):
        raw[kind]["memory"]["serving_mib"] = {"value": 4.5, "source": "test"}
    profile = Profile.model_validate(raw)
    doc = two_hop_chain()
    memory = {c.name: c.memory_mib for c in run(doc, profile, engine, "sidecar").components}
    assert {k: v for k, v in memory.items() if k.endswith(".sidecar")} == {
        "loadgen-0.sidecar": 0.0,
        "front-0.sidecar": 4.5,
        "back-0.sidecar": 4.5,
    }
    doc["mesh"]["modes"] = ["ambient-waypoint"]
    waypoint = run(doc, profile, engine, "ambient-waypoint")
    memory = {c.name: c.memory_mib for c in waypoint.components}
    assert {k: v for k, v in memory.items() if "-0" not in k} == {
        "ztunnel-node-1": 4.5,
        "waypoint-default": 4.5,
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_app_stack_terms_at_zero_change_nothing(engine: str) -> None:
    """The Istio profile's zero app-stack terms draw no random number: same run, same figures."""
    doc = two_hop_chain()
    doc["workloads"][0]["service_time"] = {"dist": "exponential", "mean_ms": 0.5}
    base = zero_cost_profile()
    raw = base.model_dump()
    raw["app"]["visit_latency_cv"] = {"value": 2.0, "source": "test: a spread with no mean"}
    same = Profile.model_validate(raw)
    assert run(doc, base, engine).latency_ms == run(doc, same, engine).latency_ms


@pytest.mark.parametrize("engine", ENGINES)
def test_hop_latency_per_kib_adds_it_per_kib_carried_on_every_pass(engine: str) -> None:
    doc = two_hop_chain()
    doc["traffic"]["request_bytes"], doc["traffic"]["response_bytes"] = 2048, 8192
    doc["workloads"][0]["calls"][0].update(request_bytes=1024, response_bytes=4096)
    raw = zero_cost_profile().model_dump()
    raw["sidecar"]["hop_latency_per_kib_us"] = {"value": 50.0, "source": "test"}
    before = run(doc, zero_cost_profile(), engine, "sidecar").latency_ms
    after = run(doc, Profile.model_validate(raw), engine, "sidecar").latency_ms
    # each call crosses two sidecars both ways: 2 x (2 + 8) KiB + 2 x (1 + 4) KiB = 30 KiB
    for p in ("mean", "p50", "p99"):
        assert getattr(after, p) - getattr(before, p) == pytest.approx(1.5, rel=2e-3), p
