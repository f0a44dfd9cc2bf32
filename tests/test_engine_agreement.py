"""The vector engine agrees with the DES engine, the reference, on the same scenarios.

Both engines run the same model event for event (the vector engine's compiled event loop
follows every call through the same steps, queues and pools as the simpy processes) and
draw the same entry arrivals (the DES engine's stream), but every other draw (pods picked,
CPU multipliers, app times, calls made) comes from each engine's own streams, so two short
runs of the full scenarios differ by sampling noise well above the tolerances (CPU per
class varies by 1.5 to 2.5 % between seeds over a bundled scenario's duration). The
default suite therefore checks the issue's tolerances on *steadied* copies of every
bundled scenario and of random small scenarios: app times at their means and every call
made. What is left random (which pod, which worker, each proxy pass's CPU) varies little
from run to run, and the engines must then agree closely. With MESHSIM_LONG_AGREEMENT=1 the
same tolerances are checked on the unmodified bundled scenarios over long runs (minutes),
and connections and handshakes on their means over several seeds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meshsim.distributions import Constant, Distribution, Lognormal
from meshsim.engines.des import simulate_mode as simulate_des
from meshsim.engines.vector import simulate_mode as simulate_vector
from meshsim.loader import load_profile, load_scenario
from meshsim.profile import Profile
from meshsim.results import ModeResult
from meshsim.scenario import Mode, OpenLoop, Placement, Scenario
from meshsim.topology import build_topology

from .builders import ROOT, TESTBED_PROFILE

# The tolerances: relative differences vector vs DES.
LATENCY = {"mean": 0.03, "p50": 0.03, "p90": 0.03, "p99": 0.05}
# The 99th percentile of a few thousand requests rests on a few dozen of them: between
# seeds it moves by 3 to 4 % on either engine. Short runs hold it to 10 %, long runs to 5 %.
QUICK_P99 = 0.10
CPU_MEMORY = 0.01
CONNECTIONS = 0.02
# How many connections a pool needs is set by the few moments its requests overlap most,
# and handshakes (after idle timeouts) are rare events, so both vary between runs of a
# few thousand requests by more than 2 % even when nothing else does. Short runs are held
# to 10 % (plus one connection, and plus three standard deviations of the handshake
# count's Poisson noise); the long runs below to the 2 %.
QUICK_CONNECTIONS = 0.10

TOO_LARGE_FOR_DES = {"large-cluster"}
BUNDLED = sorted(p for p in (ROOT / "scenarios").glob("*.yaml") if p.stem not in TOO_LARGE_FOR_DES)
ENTRY_REQUESTS = 4000  # per steadied run: enough that the few random choices left average out


SMOOTHING_CV = 0.25


def _smooth(mean_ms: float) -> Distribution:
    if mean_ms <= 0:
        return Constant(value_ms=0)
    return Lognormal(dist="lognormal", mean_ms=mean_ms, cv=SMOOTHING_CV)


def steadied(scenario: Scenario, entry_requests: int = ENTRY_REQUESTS) -> Scenario:
    """CPU times at their means, off-CPU times narrowly spread around their means (enough to
    smooth the latency distribution, whose percentiles would otherwise jump between the few
    values a run of constant times takes), every call made; shortened to about this many
    requests."""
    workloads = [
        w.model_copy(
            update={
                "service_time": _smooth(w.service_time.expected_ms()),
                "cpu_time": Constant(value_ms=w.cpu_time.expected_ms()),
                "calls": [c.model_copy(update={"probability": 1.0}) for c in w.calls],
            }
        )
        for w in scenario.workloads
    ]
    traffic = scenario.traffic
    if traffic.open_loop is not None:
        rate = traffic.open_loop.rate_rps
    else:
        assert traffic.closed_loop is not None
        rate = traffic.closed_loop.users / max(traffic.closed_loop.think_time.mean_s, 1e-3)
    warmup = min(traffic.warmup_s, 2.0)
    duration = warmup + entry_requests / rate
    return scenario.model_copy(
        update={
            "workloads": workloads,
            "traffic": traffic.model_copy(update={"duration_s": duration, "warmup_s": warmup}),
        }
    )


def steady_profile(profile: Profile) -> Profile:
    """No pass-to-pass CPU variability (cv 0): each proxy pass costs its mean."""
    doc = profile.model_dump()
    for kind in ("sidecar", "ztunnel", "waypoint"):
        doc[kind]["cpu"]["cv"] = {"value": 0.0, "source": "test: steadied"}
    return Profile.model_validate(doc)


def steady_testbed_doc() -> dict[str, Any]:
    """The local testbed's profile (tests/builders.py: TESTBED_PROFILE) steadied for
    agreement tests, as a document to change: no pass-to-pass proxy CPU variability and the
    app's visit latency in a narrow spread around its mean (SMOOTHING_CV): its fitted cv
    puts a run's mean at the mercy of a few draws in either engine."""
    doc = steady_profile(load_profile(TESTBED_PROFILE)).model_dump()
    doc["app"]["visit_latency_cv"] = {"value": SMOOTHING_CV, "source": "test: steadied"}
    return doc


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a)


def disagreements(
    vec: ModeResult, des: ModeResult, quick: bool, connections: bool = True
) -> list[str]:
    """Every figure outside the tolerances, as readable lines (empty: they agree)."""
    out = []
    for figure, tol in LATENCY.items():
        if quick and figure == "p99":
            tol = QUICK_P99
        a, b = getattr(vec.latency_ms, figure), getattr(des.latency_ms, figure)
        if relative(a, b) > tol:
            out.append(f"latency {figure}: vector {a:.4f} ms, DES {b:.4f} ms (tolerance {tol:.0%})")
    for part in ("app", "sidecar", "ztunnel", "waypoint", "total"):
        for figure in ("cpu_cores", "memory_mib"):
            a, b = getattr(getattr(vec, figure), part), getattr(getattr(des, figure), part)
            if relative(a, b) > CPU_MEMORY:
                out.append(f"{figure} {part}: vector {a:.5f}, DES {b:.5f} (tolerance 1%)")
    if not connections:
        return out
    tol = QUICK_CONNECTIONS if quick else CONNECTIONS
    a, b = vec.connections_open, des.connections_open
    # a pool's connections are whole: one more or less is within any tolerance
    if abs(a - b) > tol * b + (1.0 if quick else 0.0):
        out.append(f"connections_open: vector {a:.3f}, DES {b:.3f} (tolerance {tol:.0%})")
    a, b = vec.handshakes_per_s * vec.window_s, des.handshakes_per_s * des.window_s
    # handshakes are rare events: a short run's count carries Poisson noise of sqrt(count)
    noise = 3 * (a + b) ** 0.5 if quick else 0.0
    if abs(a - b) > max(tol * b, noise):
        out.append(f"handshakes: vector {a:.0f}, DES {b:.0f} (tolerance {tol:.0%})")
    # same arrivals; Poisson arrivals, sums of gaps added in another order, may differ by
    # one at the end (constant ones fall at k gaps in both engines)
    if abs(vec.requests - des.requests) > 1:
        out.append(f"requests: vector {vec.requests}, DES {des.requests}")
    return out


def compare(
    scenario: Scenario, profile: Profile, seed: int, quick: bool = True, connections: bool = True
) -> dict[str, list[str]]:
    topology = build_topology(scenario)
    found: dict[str, list[str]] = {}
    for mode in scenario.mesh.modes:
        vec = simulate_vector(scenario, profile, topology, mode, seed=seed)
        des = simulate_des(scenario, profile, topology, mode, seed=seed)
        problems = disagreements(vec, des, quick, connections)
        if problems:
            found[mode] = problems
    return found


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_engines_agree_on_steadied_bundled_scenario(path: Path) -> None:
    scenario, profile = load_scenario(path)
    assert compare(steadied(scenario), steady_profile(profile), scenario.seed) == {}


def random_scenario(rng: np.random.Generator, index: int) -> dict[str, Any]:
    """A small random cluster, call graph (a DAG), payloads and load; CPU times constant."""
    n_nodes = int(rng.integers(1, 4))
    n_services = int(rng.integers(1, 5))
    names = [f"svc-{i}" for i in range(n_services)]
    workloads = []
    for i, name in enumerate(names):
        calls = [
            {
                "to": names[j],
                "request_bytes": int(rng.integers(0, 4096)),
                "response_bytes": int(rng.integers(0, 8192)),
                "count": int(rng.integers(1, 3)),
            }
            for j in range(i + 1, n_services)
            if rng.random() < 0.5
        ]
        workload: dict[str, Any] = {
            "name": name,
            "namespace": ["ns-a", "ns-b"][int(rng.integers(0, 2))],
            "replicas": int(rng.integers(1, 4)),
            "cpu_time": {"dist": "constant", "value_ms": round(float(rng.uniform(0.05, 0.5)), 3)},
            "service_time": {
                "dist": "lognormal",
                "mean_ms": round(float(rng.uniform(0.1, 1.0)), 3),
                "cv": SMOOTHING_CV,
            },
            "fanout": ["sequential", "parallel"][int(rng.integers(0, 2))],
            "calls": calls,
        }
        if rng.random() < 0.3:
            workload["concurrency"] = int(rng.integers(2, 8))
        workloads.append(workload)
    rate = float(rng.choice([50, 100, 200]))
    doc: dict[str, Any] = {
        "name": f"random-{index}",
        "profile": "istio-1.24",
        "seed": index,
        "price": {"vcpu_hour_usd": 0.03, "gib_hour_usd": 0.004, "source": "test"},
        "cluster": {
            "nodes": n_nodes,
            "cores_per_node": int(rng.integers(2, 9)),
            "memory_gib_per_node": 16,
            "zones": ["zone-a", "zone-b"],
            "network": {"same_node_ms": 0.02, "cross_node_ms": 0.1, "cross_zone_ms": 0.3},
        },
        "workloads": workloads,
        "traffic": {
            "entry": names[0],
            "request_bytes": int(rng.integers(0, 2048)),
            "response_bytes": int(rng.integers(0, 16384)),
            "open_loop": {
                "rate_rps": rate,
                "arrivals": ["poisson", "constant"][int(rng.integers(0, 2))],
            },
            "duration_s": 1 + ENTRY_REQUESTS / rate,
            "warmup_s": 1,
        },
        "mesh": {
            "waypoint_scope": ["namespace", "service"][int(rng.integers(0, 2))],
            "pool": {"idle_timeout_s": float(rng.choice([1, 5, 3600]))},
        },
    }
    # sidecars of their own worker threads (drawn last: the draws above stay as they were)
    for workload in workloads:
        if rng.random() < 0.5:
            workload["sidecar_concurrency"] = int(rng.integers(1, 5))
    doc["traffic"]["client"] = {"sidecar_concurrency": int(rng.integers(1, 5))}
    return doc


@pytest.mark.parametrize("index", range(4))
def test_engines_agree_on_random_small_scenario(index: int, istio_profile: Profile) -> None:
    doc = random_scenario(np.random.default_rng(1000 + index), index)
    scenario = Scenario.model_validate(doc)
    assert compare(scenario, steady_profile(istio_profile), seed=index) == {}


LONG = os.environ.get("MESHSIM_LONG_AGREEMENT") == "1"
LONG_ENTRY_REQUESTS = 60_000


@pytest.mark.skipif(not LONG, reason="long runs: set MESHSIM_LONG_AGREEMENT=1")
@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_engines_agree_on_bundled_scenario_over_a_long_run(path: Path) -> None:
    scenario, profile = load_scenario(path)
    traffic = scenario.traffic
    rate = traffic.open_loop.rate_rps if traffic.open_loop else 100.0
    long = scenario.model_copy(
        update={
            "traffic": traffic.model_copy(
                update={"duration_s": traffic.warmup_s + LONG_ENTRY_REQUESTS / rate}
            )
        }
    )
    # connections and handshakes: over seeds (test below), not over run length
    assert compare(long, profile, scenario.seed, quick=False, connections=False) == {}


SEEDS = 20
SEED_ENTRY_REQUESTS = 2_000


def _mean_and_error(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.shape[0]))


@pytest.mark.skipif(not LONG, reason="long runs: set MESHSIM_LONG_AGREEMENT=1")
@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_connections_and_handshakes_agree_on_average_over_seeds(path: Path) -> None:
    """How many connections a pool holds is set by the busiest moments its requests ever
    overlap (pools rarely shed connections: idle timeouts are long), and an extreme does not
    average out as a run gets longer; between seeds it moves by 3 % on either engine. So the
    engines' means over seeds are compared: within the issue's 2 %, or within three
    standard errors of the difference where the seeds' spread cannot resolve 2 %."""
    scenario, profile = load_scenario(path)
    scenario = steadied(scenario, SEED_ENTRY_REQUESTS)
    topology = build_topology(scenario)
    problems = []
    for mode in scenario.mesh.modes:
        runs: dict[str, dict[str, list[float]]] = {
            e: {"connections": [], "handshakes": []} for e in ("vector", "des")
        }
        for seed in range(1, SEEDS + 1):
            for name, simulate in (("vector", simulate_vector), ("des", simulate_des)):
                r = simulate(scenario, profile, topology, mode, seed=seed)
                runs[name]["connections"].append(r.connections_open)
                runs[name]["handshakes"].append(r.handshakes_per_s * r.window_s)
        for figure in ("connections", "handshakes"):
            (a, ea), (b, eb) = (_mean_and_error(runs[e][figure]) for e in ("vector", "des"))
            bound = max(CONNECTIONS * b, 3 * float(np.hypot(ea, eb)))
            if abs(a - b) > bound:
                problems.append(f"{mode} {figure}: vector {a:.2f}, DES {b:.2f} (bound {bound:.2f})")
    assert problems == []


def test_engines_agree_with_the_calibrated_app_stack_terms() -> None:
    """The local testbed's fitted profile uses the app-stack and testbed terms (idle CPU,
    latency per app visit, client-end CPU of calls, cross-node CPU, memory of serving
    mTLS): both engines charge them alike. Its visit latency is steadied like the app
    times (narrow spread around its mean)."""
    scenario, _ = load_scenario(ROOT / "scenarios" / "testbed-chain.yaml")
    doc = steady_testbed_doc()
    assert doc["app"]["visit_latency_us"]["value"] > 0
    assert doc["app"]["per_call_us"]["value"] != doc["app"]["per_request_us"]["value"]
    assert doc["sidecar"]["cpu"]["cross_node_us"]["value"] > 0
    profile = Profile.model_validate(doc)
    assert compare(steadied(scenario), profile, scenario.seed) == {}


def test_engines_agree_with_background_work_on_the_nodes() -> None:
    """A measured run's other work on the nodes' cores (each wake-up of an app or a proxy
    pass may wait for it) is charged alike by both engines."""
    scenario, _ = load_scenario(ROOT / "scenarios" / "testbed-chain.yaml")
    cluster = scenario.cluster.model_copy(
        update={"background_cores": {"node-1": 0.3, "node-2": 0.5}}
    )
    busy = steadied(scenario).model_copy(update={"cluster": cluster})
    doc = steady_testbed_doc()
    profile = Profile.model_validate(doc)
    assert compare(busy, profile, scenario.seed) == {}


def _agree_at_low_and_high_load(scenario: Scenario, profile: Profile) -> None:
    """The engines agree at 50 requests per second (long idle gaps) and at 200 (short)."""
    for rate in (50, 200):
        assert scenario.traffic.open_loop is not None
        loop = scenario.traffic.open_loop.model_copy(update={"rate_rps": rate})
        traffic = scenario.traffic.model_copy(update={"open_loop": loop})
        at_rate = scenario.model_copy(update={"traffic": traffic})
        assert compare(steadied(at_rate, 2000), profile, scenario.seed) == {}, rate


def test_engines_agree_with_idle_nodes_waking_up() -> None:
    """A burst on a node idle for a while first wakes its core (host.wake_up_*): both
    engines track each node's idle gap and charge the same wait, at two loads (long gaps
    at 50 rps, short ones at 200)."""
    scenario, _ = load_scenario(ROOT / "scenarios" / "testbed-chain.yaml")
    doc = steady_testbed_doc()
    doc["host"]["wake_up_us"] = {"value": 600.0, "source": "test"}
    doc["host"]["wake_up_idle_ms"] = {"value": 8.0, "source": "test"}
    doc["host"]["wake_up_shape"] = {"value": 2.0, "source": "test"}
    profile = Profile.model_validate(doc)
    _agree_at_low_and_high_load(scenario, profile)


def test_engines_agree_with_cold_caches_paid_after_the_burst() -> None:
    """Cold-cache CPU (cold_cpu_us), part of it spent after the burst while the request
    goes on (cold_deferred_fraction): the apps' on their node's core, a proxy's on its core
    with its worker held. Both engines charge it alike, at a low load (every burst cold)
    and a high one (the deferred bursts queue with the requests' own)."""
    scenario, _ = load_scenario(ROOT / "scenarios" / "testbed-chain.yaml")
    doc = steady_testbed_doc()
    doc["app"]["cold_cpu_us"] = {"value": 400.0, "source": "test"}
    doc["app"]["cold_deferred_fraction"] = {"value": 0.7, "source": "test"}
    for kind in ("sidecar", "ztunnel", "waypoint"):
        doc[kind]["cpu"]["cold_cpu_us"] = {"value": 150.0, "source": "test"}
        doc[kind]["cpu"]["cold_deferred_fraction"] = {"value": 0.5, "source": "test"}
    doc["host"]["wake_up_idle_ms"] = {"value": 8.0, "source": "test"}
    doc["host"]["wake_up_shape"] = {"value": 2.0, "source": "test"}
    profile = Profile.model_validate(doc)
    _agree_at_low_and_high_load(scenario, profile)


def _one_random_time(name: str, rate_rps: float, node: int) -> Scenario:
    """A bundled testbed scenario steadied at a constant arrival rate, with every time in it
    constant but one workload's service time (lognormal), and every call made to one pod
    (each workload's on the first of its nodes, node 0, or the last, -1)."""
    scenario, _ = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    loop = OpenLoop(rate_rps=rate_rps, arrivals="constant")
    traffic = scenario.traffic.model_copy(update={"open_loop": loop})
    workloads = []
    for w in scenario.workloads:
        placement = w.placement
        if isinstance(placement, Placement):
            placement = placement.model_copy(update={"nodes": [placement.nodes[node]]})
        calls = [c.model_copy(update={"count": 1}) for c in w.calls]
        workloads.append(
            w.model_copy(update={"replicas": 1, "placement": placement, "calls": calls})
        )
    one = scenario.model_copy(update={"traffic": traffic, "workloads": workloads})
    return steadied(one, 2000)


EVERY_MODE: tuple[Mode, ...] = ("none", "sidecar", "ambient", "ambient-waypoint")


@pytest.mark.parametrize(
    ("name", "rate_rps", "node", "modes", "app_stack"),
    [
        ("testbed-chain", 200, -1, EVERY_MODE, True),
        ("testbed-fanout", 250, -1, EVERY_MODE, True),
        # every pod on node-1 but the catalog, the apps' own latency and cold caches left out
        # (the ties are then exact); node-1 runs out of CPU with sidecars at this rate, the
        # requests reach the reviews pod out of order, and the draws can no longer be handed
        # to both engines in one order
        ("testbed-fanout", 250, 0, ("none", "ambient", "ambient-waypoint"), False),
    ],
)
def test_engines_take_the_same_path_given_the_same_draws(
    name: str,
    rate_rps: float,
    node: int,
    modes: tuple[Mode, ...],
    app_stack: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The two engines are one model: with one workload's service time the only random
    draw left (lognormal, handed to both engines from one fixed sequence, in the order the
    requests reach it), every request takes the same time in both, so the latency figures
    and the CPU agree to rounding, not to a tolerance; on the chain (one call after the
    other, waypoints, wake-ups, cold caches) and on the fan-out (three calls at once).
    Ties of one instant are common here (zero delays between a ztunnel and its pods,
    constant costs), and until 28 Nov 2026 the engines broke them differently: the DES
    engine passed a released server on and granted an idle one an event later than the
    vector engine, which woke the calls waiting on a connection's handshake latest first
    and ran a step due after no delay behind the instant's grants. The chain's mean latency
    in ambient-waypoint mode came out 1.3% apart, the fan-out's in ambient mode (at 250/s)
    8% (its reviews pod on node-2) and 3.5% (on node-1, beside the gateway)."""
    sequence = np.random.default_rng(7).lognormal(0.0, 0.25, 20_000)
    sequence /= sequence.mean()
    cursor = [0]

    def from_the_sequence(self: Lognormal, rng: np.random.Generator, size: int) -> np.ndarray:
        start = cursor[0]
        cursor[0] += size
        out: np.ndarray = sequence[start : start + size] * self.mean_ms
        return out

    monkeypatch.setattr(Lognormal, "sample_ms", from_the_sequence)
    scenario = _one_random_time(name, rate_rps, node)
    random = [w.name for w in scenario.workloads if not isinstance(w.service_time, Constant)]
    assert len(random) == 1  # every other time of the scenario is constant
    doc = steady_testbed_doc()
    doc["app"]["visit_latency_cv"] = {"value": 0.0, "source": "test: no draws"}
    doc["host"]["preempted_wait_us"] = {"value": 0.0, "source": "test: no draws"}
    if app_stack:
        doc["host"]["wake_up_us"] = {"value": 400.0, "source": "test"}  # idle nodes wake, too
        assert doc["app"]["cold_cpu_us"]["value"] > 0  # and caches go cold
    else:
        for term in ("cold_cpu_us", "visit_latency_us", "visit_latency_floor_us"):
            doc["app"][term] = {"value": 0.0, "source": "test: the plain app"}
    profile = Profile.model_validate(doc)
    topology = build_topology(scenario)
    for mode in modes:
        cursor[0] = 0
        vec = simulate_vector(scenario, profile, topology, mode, seed=1)
        cursor[0] = 0
        des = simulate_des(scenario, profile, topology, mode, seed=1)
        assert vec.requests == des.requests, mode
        for figure in ("mean", "p50", "p90", "p99"):
            a, b = getattr(vec.latency_ms, figure), getattr(des.latency_ms, figure)
            assert a == pytest.approx(b, rel=1e-9), (mode, figure)
        assert vec.cpu_cores.total == pytest.approx(des.cpu_cores.total, rel=1e-9), mode
