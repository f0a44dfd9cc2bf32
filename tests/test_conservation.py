"""CPU accounted by the DES engine equals the cost model's demand, component by component."""

from __future__ import annotations

from typing import Any

import pytest

from meshsim.calibrate.params import with_values
from meshsim.engines import simulate_des
from meshsim.profile import Profile
from meshsim.run import simulate
from meshsim.scenario import Mode, Scenario
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
    # the client end of a call costs other than its server end, so the two are told apart
    raw["app"]["per_call_us"] = {"value": 45, "source": "test"}
    # and a sidecar pays more at each end of a link that crosses nodes
    raw["sidecar"]["cpu"]["cross_node_us"] = {"value": 70, "source": "test"}
    return Profile.model_validate(raw)


def same_node_hops(scenario: Scenario) -> list[bool]:
    """loadgen -> front, front -> back: whether each stays on one node."""
    topology = build_topology(scenario)
    node = {pod.workload: pod.node for pod in topology.pods}
    return [topology.client.node == node["front"], node["front"] == node["back"]]


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
    same_node: list[bool],
) -> dict[str, float]:
    """The cost model written out by hand for the chain, independently of the engine."""
    app = profile.app

    def app_end(req: int, resp: int, per_us: float = app.per_request_us.value) -> float:
        return (per_us + app.per_kib_us.value * (req + resp) / KIB) * US

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
    client_end = app_end(*hops[1], per_us=app.per_call_us.value)
    out["app"] = requests * (0.2e-3 + app_end(*hops[0]) + client_end + 0.1e-3 + app_end(*hops[1]))
    for (req, resp), local in zip(hops, same_node, strict=True):
        if mode == "sidecar":
            cross = 0.0 if local else 2 * profile.sidecar.cpu.cross_node_us.value * US
            out["sidecar"] += requests * (
                box("sidecar", "outbound", req, resp) + box("sidecar", "inbound", req, resp) + cross
            )
        elif mode in ("ambient", "ambient-waypoint"):
            # in ambient, a ztunnel hands a same-node call straight to the pod: one pass
            one_pass = local and mode == "ambient"
            inbound = 0.0 if one_pass else box("ztunnel", "inbound", req, resp)
            out["ztunnel"] += requests * (box("ztunnel", "outbound", req, resp) + inbound)
            if mode == "ambient-waypoint":
                out["waypoint"] += requests * box("waypoint", "through", req, resp)
    for kind, count in proxies.items():
        cost = profile.proxy(kind)
        out[kind] += count * cost.idle_millicores.value / 1000 * duration
    if handshakes:
        hs_kind = {"sidecar": "sidecar", "ambient": "ztunnel"}.get(mode)
        if hs_kind is not None:  # both ends of every connection are the same kind of proxy
            hs = profile.proxy(hs_kind).cpu.handshake_us
            out[hs_kind] += handshakes * (hs.client.value + hs.server.value) * US
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
        profile,
        mode,
        result.requests,
        handshakes,
        result.proxies.model_dump(),
        duration,
        same_node_hops(scenario),
    )
    if mode == "ambient":  # the load generator and the front share a node: one pass there
        assert same_node_hops(scenario) == [True, False]
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
        profile,
        "ambient-waypoint",
        result.requests,
        0,
        result.proxies.model_dump(),
        duration,
        same_node_hops(scenario),
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


def test_both_engines_charge_the_same_cpu_in_every_mode() -> None:
    # every per-call term non-zero: client and server ends, cross-node links of each kind,
    # the same-node ztunnel pass of ambient mode; no queueing changes what is charged
    profile = with_values(
        deterministic_profile(),
        {"ztunnel.cpu.cross_node_us": 40.0, "waypoint.cpu.cross_node_us": 30.0},
    )
    doc = chain()
    doc["mesh"]["modes"] = ["none", "sidecar", "ambient", "ambient-waypoint"]
    scenario = scenario_of(doc)
    des, vector = (simulate(scenario, profile, seed=3, engine=e) for e in ("des", "vector"))
    for mode, result in des.modes.items():
        cpu = {c.name: c.cpu_cores for c in result.components}
        assert {c.name: c.cpu_cores for c in vector.modes[mode].components} == pytest.approx(
            cpu, rel=1e-9
        ), mode
