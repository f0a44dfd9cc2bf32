"""Cold caches (profile: app.cold_cpu_us and each proxy's cpu.cold_cpu_us): a burst of a
component (an app pod, a proxy) that ran nothing for a gap g costs
cold_cpu_us x (1 - exp(-(g / host.wake_up_idle_ms) ^ host.wake_up_shape)) more CPU. Both
engines track each component's last burst."""

from __future__ import annotations

from typing import Any

import pytest

from meshsim.calibrate.fit import FitPoint, FitResult, fit_profile
from meshsim.calibrate.params import get_value, with_values
from meshsim.loader import load_profile
from meshsim.profile import Profile
from meshsim.run import simulate

from .builders import (
    ISTIO,
    client_and_one_pod,
    one_pod_every_period,
    scenario_of,
    steady_burst_s,
    zero_cost_profile,
)

CPU_MS = 0.2
COLD_US = 400.0
IDLE_MS = 10.0
SHAPE = 3.0


def _cold(**more: float) -> Profile:
    return with_values(
        zero_cost_profile(),
        {"app.cold_cpu_us": COLD_US, "host.wake_up_idle_ms": IDLE_MS,
         "host.wake_up_shape": SHAPE, **more},
    )  # fmt: skip


def _two_pods(rate_rps: float, modes: list[str]) -> dict[str, Any]:
    return one_pod_every_period(rate_rps, modes, CPU_MS)


def _steady_burst_s(period_s: float) -> float:
    """Each request's app burst in the steady state: its cold part depends on the gap the
    previous burst left."""
    return steady_burst_s(period_s, CPU_MS * 1e-3, COLD_US * 1e-6, IDLE_MS * 1e-3, SHAPE)


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_an_apps_burst_costs_more_the_longer_it_was_idle(engine: str) -> None:
    # no costs but the app's CPU: each request's burst on node-2 finds the app idle for the
    # period less the last burst; the cold part is CPU (accounted to the app) and holds the
    # core, so it is also latency
    for rate in (25.0, 100.0, 200.0):
        run = simulate(scenario_of(_two_pods(rate, ["none"])), _cold(), seed=2, engine=engine)
        burst_s = _steady_burst_s(1 / rate)
        none = run.modes["none"]
        assert none.latency_ms.mean == pytest.approx(burst_s * 1e3, rel=1e-6), rate
        (app,) = [c for c in none.components if c.name.startswith("app")]
        assert app.cpu_cores == pytest.approx(rate * burst_s, rel=0.01), rate
    # at 25 requests per second the gap (about 40 ms) is four time scales: all of it
    assert _steady_burst_s(1 / 25) == pytest.approx((CPU_MS + COLD_US / 1000) * 1e-3, rel=1e-9)


def _chain(modes: list[str]) -> dict[str, Any]:
    """front (node-2) calls back (node-2) at once: back runs right after front's burst."""
    doc = _two_pods(25.0, modes)
    doc["workloads"] = [
        {"name": "front", "placement": {"nodes": ["node-2"]}, "calls": [{"to": "back"}],
         "cpu_time": {"dist": "constant", "value_ms": CPU_MS}},
        {"name": "back", "placement": {"nodes": ["node-2"]},
         "cpu_time": {"dist": "constant", "value_ms": CPU_MS}},
    ]  # fmt: skip
    doc["traffic"]["entry"] = "front"
    return doc


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_each_component_pays_for_its_own_idle_gap(engine: str) -> None:
    # 40 ms between requests: front's burst and back's each find their own pod idle since
    # the last request and pay it all, though front ran on the node just before back, and
    # each pod's sidecar just before it
    profile = _cold(**{"sidecar.cpu.per_request_us.inbound": 100.0})
    rate = 25.0
    run = simulate(scenario_of(_chain(["none", "sidecar"])), profile, seed=2, engine=engine)
    for mode in ("none", "sidecar"):
        cpu = {c.name: c.cpu_cores / rate * 1e6 for c in run.modes[mode].components}
        for pod in ("front-0", "back-0"):
            assert cpu[pod] == pytest.approx(CPU_MS * 1e3 + COLD_US, rel=0.01), (mode, pod)


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_a_proxy_pays_for_its_own_idle_gap(engine: str) -> None:
    # the sidecars' inbound passes (100 us each) on a node idle 40 ms between requests: the
    # load generator's sidecar on node-1 gets the response pass only (its request pass
    # carries no inbound cost); each sidecar's first burst of a request pays the cold part
    profile = _cold(**{
        "app.cold_cpu_us": 0.0,
        "sidecar.cpu.per_request_us.inbound": 100.0,
        "sidecar.cpu.cold_cpu_us": 300.0,
    })  # fmt: skip
    rate = 25.0
    run = simulate(scenario_of(_two_pods(rate, ["sidecar"])), profile, seed=2, engine=engine)
    cpu = {c.name: c.cpu_cores / rate * 1e6 for c in run.modes["sidecar"].components}
    (app_sidecar,) = [v for k, v in cpu.items() if k.startswith("app") and "sidecar" in k]
    assert app_sidecar == pytest.approx(100.0 + 300.0, rel=0.01)


@pytest.mark.parametrize("engine", ["des", "vector"])
@pytest.mark.parametrize("later", [0.5, 1.0])
def test_cold_cpu_left_for_after_the_burst_is_cpu_but_not_latency(
    engine: str, later: float
) -> None:
    # cold_deferred_fraction: that share of the cold part runs after the app's burst, the
    # core still the app's but the request gone on. At 25 and 100 requests per second the
    # core is free when the next request comes, so the steady state is the same as without
    # deferral (the two bursts run back to back) and the latency loses the deferred share
    for rate in (25.0, 100.0):
        profile = _cold(**{"app.cold_deferred_fraction": later})
        run = simulate(scenario_of(_two_pods(rate, ["none"])), profile, seed=2, engine=engine)
        burst_s = _steady_burst_s(1 / rate)
        cold_s = burst_s - CPU_MS * 1e-3
        none = run.modes["none"]
        on_path_s = CPU_MS * 1e-3 + (1 - later) * cold_s
        assert none.latency_ms.mean == pytest.approx(on_path_s * 1e3, rel=1e-6), rate
        (app,) = [c for c in none.components if c.name.startswith("app")]
        assert app.cpu_cores == pytest.approx(rate * burst_s, rel=0.01), rate


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_a_proxys_cold_cpu_left_for_later_adds_no_latency_when_nothing_waits(engine: str) -> None:
    # the sidecar's cold part all after its pass, its worker held meanwhile: with two cores
    # a node and the app busy 1 ms, the deferred 300 us end before the response pass needs
    # the worker again, so the latency is the same as with no cold cost at all; each
    # sidecar still pays it as CPU, once a request (its first pass finds it cold)
    warm = {"app.cold_cpu_us": 0.0, "sidecar.cpu.per_request_us.inbound": 100.0}
    cold = {**warm, "sidecar.cpu.cold_cpu_us": 300.0, "sidecar.cpu.cold_deferred_fraction": 1.0}
    rate = 25.0
    doc = client_and_one_pod(
        ["sidecar"],
        app={"cpu_time": {"dist": "constant", "value_ms": 1.0}},
        traffic={"open_loop": {"rate_rps": rate, "arrivals": "constant"}, "duration_s": 6},
    )
    runs = [simulate(scenario_of(doc), _cold(**p), seed=2, engine=engine) for p in (warm, cold)]
    latency = [r.modes["sidecar"].latency_ms.mean for r in runs]
    assert latency[1] == pytest.approx(latency[0], rel=1e-9)
    cpu = {c.name: c.cpu_cores / rate * 1e6 for c in runs[1].modes["sidecar"].components}
    (app_sidecar,) = [v for k, v in cpu.items() if k.startswith("app") and "sidecar" in k]
    assert app_sidecar == pytest.approx(100.0 + 300.0, rel=0.01)


def test_the_sourced_profile_has_no_cold_cost() -> None:
    profile = load_profile(ISTIO)
    assert profile.app.cold_cpu_us.value == 0.0
    for kind in ("sidecar", "ztunnel", "waypoint"):
        assert profile.proxy(kind).cpu.cold_cpu_us.value == 0.0


def _fit_cpu(
    truth: Profile, prior: Profile, rates: tuple[int, ...], duration_s: float = 6
) -> FitResult:
    """The CPU stage fitted to the two-pod shape simulated with `truth` at these loads (no
    mesh; another seed than the fit's, so the fit sees noise)."""
    points = []
    for rate in rates:
        doc = _two_pods(float(rate), ["none"])
        doc["traffic"]["duration_s"] = duration_s
        scenario = scenario_of(doc)
        measured = simulate(scenario, truth, seed=99, engine="vector")
        points.append(FitPoint(f"rate={rate}", "none", scenario, measured.modes["none"], 1))
    return fit_profile(points, prior, engine="vector", stages=("cpu",))


def test_the_cold_cost_is_fitted_from_load_levels(istio_profile: Profile) -> None:
    # the two-pod shape at 25, 100 and 200 requests per second (gaps 40, 10 and 5 ms,
    # against a 15.5 ms time scale): CPU per request falls with the load; a constant cost
    # per request and an idle cost cannot make it fall this way
    truth = with_values(
        istio_profile,
        {"app.per_request_us": 400.0, "app.idle_millicores": 1.0, "app.cold_cpu_us": 350.0},
    )
    fit = _fit_cpu(truth, istio_profile, (25, 100, 200), duration_s=8)
    assert get_value(fit.profile, "app.cold_cpu_us") == pytest.approx(350.0, rel=0.1)
    assert get_value(fit.profile, "app.per_request_us") == pytest.approx(400.0, rel=0.1)


def test_two_load_levels_cannot_tell_cold_caches_from_idle_cpu(istio_profile: Profile) -> None:
    # at 50/s (20 ms gaps) the cold cost is nearly all there, at 200/s nearly none: over two
    # load levels it adds what an idle CPU adds, and the idle CPU, the plainer term, is kept
    truth = with_values(istio_profile, {"app.per_request_us": 400.0, "app.idle_millicores": 5.0})
    fit = _fit_cpu(truth, istio_profile, (50, 200))
    (cold,) = [e for e in fit.estimates() if e.parameter.path == "app.cold_cpu_us"]
    assert (cold.status, cold.kept_prior) == ("not identifiable", True)
    assert cold.note.startswith("its effect is a combination of app.idle_millicores")
    assert get_value(fit.profile, "app.idle_millicores") == pytest.approx(5.0, rel=0.1)
