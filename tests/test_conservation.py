"""CPU accounted by the DES engine equals the cost model's demand, component by component."""

from __future__ import annotations

from typing import Any

import pytest

from meshsim.engines import simulate_des
from meshsim.profile import Profile
from meshsim.scenario import Mode
from meshsim.topology import build_topology

from .builders import ISTIO, base_scenario, scenario_of

KIB = 1024
US = 1e-6


def deterministic_profile() -> Profile:
    """The Istio profile with per-pass variability removed, so demand is exactly known."""
    from meshsim.loader import load_profile

    raw = load_profile(ISTIO).model_dump()
    for kind in ("sidecar", "ztunnel", "waypoint"):
        raw[kind]["cpu"]["cv"] = {"value": 0, "source": "test"}
    return Profile.model_validate(raw)


def chain() -> dict[str, Any]:
    """loadgen -> front -> back on two nodes, constant arrivals that end well inside the run."""
    doc = base_scenario(
        workloads=[
            {
                "name": "front",
                "cpu_time": 0.2,
                "placement": {"nodes": ["node-1"]},
                "calls": [{"to": "back", "request_bytes": 2048, "response_bytes": 4096}],
            },
            {
                "name": "back",
                "namespace": "data",
                "cpu_time": 0.1,
                "placement": {"nodes": ["node-2"]},
            },
        ],
        traffic={
            "entry": "front",
            "request_bytes": 1024,
            "response_bytes": 8192,
            "open_loop": {"rate_rps": 40, "arrivals": "constant"},
            "duration_s": 5,
            "warmup_s": 0,
        },
    )
    doc["cluster"]["nodes"] = 2
    doc["cluster"]["network"] = {"same_node_ms": 0.02, "cross_node_ms": 0.1, "cross_zone_ms": 0.5}
    return doc


def expected_cpu_s(
    profile: Profile,
    mode: Mode,
    requests: int,
    handshakes: int,
    proxies: dict[str, int],
    duration: float,
) -> dict[str, float]:
    """The cost model written out by hand for the chain, independently of the engine."""
    app = profile.app

    def app_end(req: int, resp: int) -> float:
        return (app.per_request_us.value + app.per_kib_us.value * (req + resp) / KIB) * US

    def box(kind: str, role: str, req: int, resp: int) -> float:
        cost = profile.proxy(kind)
        per = cost.cpu.per_request_us
        base = {
            "outbound": per.outbound.value,
            "inbound": per.inbound.value,
            "through": per.outbound.value + per.inbound.value,
        }[role]
        return (base + cost.cpu.per_kib_us.value * (req + resp) / KIB) * US

    hops = [(1024, 8192), (2048, 4096)]  # loadgen -> front, front -> back
    out = {"app": 0.0, "sidecar": 0.0, "ztunnel": 0.0, "waypoint": 0.0}
    # front: its CPU, the server end of the entry call and the client end of its call; back.
    out["app"] = requests * (
        0.2e-3 + app_end(*hops[0]) + app_end(*hops[1]) + 0.1e-3 + app_end(*hops[1])
    )
    for req, resp in hops:
        if mode == "sidecar":
            out["sidecar"] += requests * (
                box("sidecar", "outbound", req, resp) + box("sidecar", "inbound", req, resp)
            )
        elif mode in ("ambient", "ambient-waypoint"):
            out["ztunnel"] += requests * (
                box("ztunnel", "outbound", req, resp) + box("ztunnel", "inbound", req, resp)
            )
            if mode == "ambient-waypoint":
                out["waypoint"] += requests * box("waypoint", "through", req, resp)
    for kind, count in proxies.items():
        cost = profile.proxy(kind)
        out[kind] += count * cost.idle_millicores.value / 1000 * duration
    if handshakes:
        kind = {"sidecar": "sidecar", "ambient": "ztunnel"}.get(mode)
        if kind is not None:  # both ends of every connection are the same kind of proxy
            hs = profile.proxy(kind).cpu.handshake_us
            out[kind] += handshakes * (hs.client.value + hs.server.value) * US
    return out


@pytest.mark.parametrize("mode", ["none", "sidecar", "ambient"])
def test_cpu_accounted_equals_cost_model_demand(mode: Mode) -> None:
    scenario = scenario_of(chain())
    profile = deterministic_profile()
    result = simulate_des(scenario, profile, build_topology(scenario), mode, seed=3)
    assert result.errors == 0
    duration = scenario.traffic.duration_s
    handshakes = round(result.handshakes_per_s * duration)
    expected = expected_cpu_s(
        profile, mode, result.requests, handshakes, result.proxies.model_dump(), duration
    )
    for kind, seconds in expected.items():
        assert getattr(result.cpu_cores, kind) * duration == pytest.approx(
            seconds, rel=1e-9, abs=1e-12
        )
    assert result.requests == 199  # arrivals every 25 ms in [0, 5 s)


def test_cpu_conserved_with_waypoint() -> None:
    scenario = scenario_of(chain())
    profile = deterministic_profile()
    result = simulate_des(scenario, profile, build_topology(scenario), "ambient-waypoint", seed=3)
    duration = scenario.traffic.duration_s
    expected = expected_cpu_s(
        profile, "ambient-waypoint", result.requests, 0, result.proxies.model_dump(), duration
    )
    # Handshakes mix ztunnel and waypoint ends here: add them from the per-component counts.
    for usage in result.components:
        if usage.kind in ("ztunnel", "waypoint"):
            hs = profile.proxy(usage.kind).cpu.handshake_us
            # each end of a connection did one side; an end's side depends on direction, and
            # client and server costs are equal in this profile
            assert hs.client.value == hs.server.value
            expected[usage.kind] += usage.handshakes * hs.client.value * US
    for kind, seconds in expected.items():
        assert getattr(result.cpu_cores, kind) * duration == pytest.approx(seconds, rel=1e-9)
