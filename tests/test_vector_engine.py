"""The vector engine's own contract: determinism per seed, windows, and `--engine auto`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from meshsim.cli import main
from meshsim.engines import des, vector
from meshsim.engines.des import TimeStandsStill
from meshsim.engines.des import simulate_mode as simulate_des
from meshsim.loader import load_scenario
from meshsim.profile import Profile
from meshsim.results import ModeResult
from meshsim.run import AUTO_VECTOR_VISITS, choose_engine, simulate
from meshsim.scenario import MODES, Scenario
from meshsim.topology import build_topology

from .builders import (
    ROOT,
    base_scenario,
    closed_loop_app,
    scenario_of,
    write_yaml,
    zero_cost_profile,
)


def shop(duration_s: float = 6.0) -> tuple[Scenario, Profile]:
    scenario, profile = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    traffic = scenario.traffic.model_copy(update={"duration_s": duration_s, "warmup_s": 1.0})
    return scenario.model_copy(update={"traffic": traffic}), profile


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_gives_identical_results(mode: str) -> None:
    scenario, profile = shop()
    topology = build_topology(scenario)
    first = vector.simulate_mode(scenario, profile, topology, mode, seed=3)  # type: ignore[arg-type]
    again = vector.simulate_mode(scenario, profile, topology, mode, seed=3)  # type: ignore[arg-type]
    other = vector.simulate_mode(scenario, profile, topology, mode, seed=4)  # type: ignore[arg-type]
    assert first.model_dump() == again.model_dump()
    assert first.latency_ms != other.latency_ms


def test_windows_carry_queues_and_pools_across_their_boundaries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many short windows give the figures one long window gives: the requests in flight
    at a window's end are carried into the next (only the random draws differ)."""
    scenario, profile = shop(duration_s=20.0)
    topology = build_topology(scenario)
    whole = vector.simulate_mode(scenario, profile, topology, "sidecar", seed=1)
    stats = vector.VectorStats()
    monkeypatch.setattr(vector, "_VISITS_PER_WINDOW", 10_000)
    split = vector.simulate_mode(scenario, profile, topology, "sidecar", seed=1, stats=stats)
    assert stats.windows >= 10
    assert split.requests == whole.requests  # the same arrivals, whatever the windows
    assert split.cpu_cores.total == pytest.approx(whole.cpu_cores.total, rel=0.01)
    assert split.latency_ms.mean == pytest.approx(whole.latency_ms.mean, rel=0.02)
    assert split.connections_open == pytest.approx(whole.connections_open, rel=0.05)


@pytest.mark.parametrize(("mode", "load"), [("sidecar", 12.0), ("ambient-waypoint", 8.0)])
def test_short_windows_near_saturation_agree_with_one_window(
    monkeypatch: pytest.MonkeyPatch, mode: str, load: float
) -> None:
    """Near saturation, where a queue's busy periods outlast a short window, a run in
    about two hundred windows gives the one-window figures: the calls in flight at a
    window's end go on in the next in their queues' order. (When each window ran its
    calls to completion, a server stayed busy into the next window until the last time
    the window before used it, gaps included: here the mean came out 5-12% high and the
    p99 7-50%.) Averaged over three seeds, as only the random draws differ."""
    scenario, profile = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    traffic = scenario.traffic
    assert traffic.open_loop is not None
    faster = traffic.open_loop.model_copy(update={"rate_rps": traffic.open_loop.rate_rps * load})
    traffic = traffic.model_copy(update={"open_loop": faster, "duration_s": 20.0, "warmup_s": 1.0})
    scenario = scenario.model_copy(update={"traffic": traffic})
    topology = build_topology(scenario)
    whole, split = [], []
    for seed in (1, 2, 3):
        whole.append(vector.simulate_mode(scenario, profile, topology, mode, seed=seed))  # type: ignore[arg-type]
        with monkeypatch.context() as patch:
            patch.setattr(vector, "_VISITS_PER_WINDOW", 10_000)
            stats = vector.VectorStats()
            split.append(
                vector.simulate_mode(scenario, profile, topology, mode, seed=seed, stats=stats)  # type: ignore[arg-type]
            )
        assert stats.windows >= 150
        assert split[-1].requests == whole[-1].requests
        assert split[-1].errors == whole[-1].errors == 0

    def ratio(figure: Callable[[ModeResult], float]) -> float:
        return float(np.mean([figure(s) / figure(w) for s, w in zip(split, whole, strict=True)]))

    assert ratio(lambda r: r.latency_ms.mean) == pytest.approx(1.0, abs=0.02)
    assert ratio(lambda r: r.latency_ms.p50) == pytest.approx(1.0, abs=0.02)
    assert ratio(lambda r: r.latency_ms.p90) == pytest.approx(1.0, abs=0.04)
    assert ratio(lambda r: r.latency_ms.p99) == pytest.approx(1.0, abs=0.08)
    assert ratio(lambda r: r.cpu_cores.total) == pytest.approx(1.0, abs=0.01)
    assert ratio(lambda r: r.connections_open) == pytest.approx(1.0, abs=0.03)


def test_a_closed_loop_in_short_windows_obeys_mean_value_analysis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A closed loop's users whose request is in flight at a window's end send their next
    one in the next window (after their think time): in 400 windows of 1.5 s, N users with
    think time Z still give X = N / (R + Z), and R as exact mean value analysis computes it."""
    users, think_s = 20, 0.1
    scenario = scenario_of(closed_loop_app(users, think_s, duration=600))
    monkeypatch.setattr(vector, "_VISITS_PER_WINDOW", 300)
    stats = vector.VectorStats()
    result = vector.simulate_mode(
        scenario, zero_cost_profile(), build_topology(scenario), "none", seed=2, stats=stats
    )
    assert stats.windows >= 400  # more where the users' room runs short (_closed_span)
    assert result.errors == 0
    response_s = result.latency_ms.mean / 1e3
    assert result.throughput_rps == pytest.approx(users / (response_s + think_s), rel=0.01)
    queue = 0.0
    for n in range(1, users + 1):
        mva_response_s = 0.004 * (1 + queue)
        queue = n / (mva_response_s + think_s) * mva_response_s
    assert response_s == pytest.approx(mva_response_s, rel=0.03)


@pytest.mark.parametrize("cycle_guess_s", [None, 0.1])
def test_users_who_never_think_keep_the_server_busy_in_bounded_windows(
    cycle_guess_s: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users with no think time: room for their requests is made a window at a time, and
    before the first request returns no latency is known to size it by. The windows are
    kept to what fits (not 5 users x duration / 1 us candidates: the run once took 24 GB),
    and a user who has made every request there was room for ends its window where its
    next starts, so none is lost or run out of order: the one server is never idle, X = 1/S
    and R = N S (S = 4 ms)."""
    users = 5
    doc = closed_loop_app(users, 0.0, duration=60)
    doc["traffic"]["closed_loop"]["think_time"] = {"dist": "constant", "value_ms": 0}
    scenario = scenario_of(doc)
    stats = vector.VectorStats()
    if cycle_guess_s is not None:  # room made for a fifth of the requests users make
        monkeypatch.setattr(vector._VectorRun, "_closed_cycle", lambda self: cycle_guess_s)
    result = vector.simulate_mode(
        scenario, zero_cost_profile(), build_topology(scenario), "none", seed=4, stats=stats
    )
    if cycle_guess_s is not None:
        assert stats.windows_cut >= 3
    assert result.errors == 0
    assert result.throughput_rps == pytest.approx(1 / 0.004, rel=0.02)
    assert result.latency_ms.mean == pytest.approx(users * 4.0, rel=0.02)
    des = simulate_des(scenario, zero_cost_profile(), build_topology(scenario), "none", seed=4)
    assert result.requests == pytest.approx(des.requests, rel=0.02)


def test_forgetting_pools_without_connections_changes_no_figure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pools whose connections all closed are dropped between windows (memory stays flat
    however many pools a long run touches); a pool used again starts afresh, as it would."""
    scenario, profile = shop(duration_s=20.0)
    mesh = scenario.mesh.model_copy(
        update={"pool": scenario.mesh.pool.model_copy(update={"idle_timeout_s": 0.2})}
    )
    scenario = scenario.model_copy(update={"mesh": mesh})
    topology = build_topology(scenario)
    monkeypatch.setattr(vector, "_VISITS_PER_WINDOW", 10_000)
    kept_stats, forgot_stats = vector.VectorStats(), vector.VectorStats()
    monkeypatch.setattr(vector, "_FORGET_POOLS_FROM", 10**9)
    kept = vector.simulate_mode(scenario, profile, topology, "sidecar", seed=1, stats=kept_stats)
    monkeypatch.setattr(vector, "_FORGET_POOLS_FROM", 0)
    forgot = vector.simulate_mode(
        scenario, profile, topology, "sidecar", seed=1, stats=forgot_stats
    )
    assert kept_stats.pools_forgotten == 0
    assert forgot_stats.pools_forgotten > 5
    assert forgot.handshakes_per_s > 0
    # the same run; only connection time is summed in another order
    assert forgot.latency_ms == kept.latency_ms
    assert forgot.handshakes_per_s == kept.handshakes_per_s
    assert forgot.connections_open == pytest.approx(kept.connections_open, rel=1e-12)
    for a, b in zip(forgot.components, kept.components, strict=True):
        assert (a.name, a.cpu_cores, a.handshakes) == (b.name, b.cpu_cores, b.handshakes)
        assert a.connections_open == pytest.approx(b.connections_open, rel=1e-12)
        assert a.memory_mib == pytest.approx(b.memory_mib, rel=1e-12)


def test_pools_and_connections_outgrowing_their_reservation_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pool and connection records live in reserved address space; a run that outgrows it
    is copied into a larger one, and where none can be reserved (no mmap flags, or a
    kernel that refuses to overcommit) they are plain arrays that grow as they fill."""
    scenario, profile = shop(duration_s=4.0)
    topology = build_topology(scenario)
    monkeypatch.setattr(vector, "_VISITS_PER_WINDOW", 2_000)  # grown while in use
    reserved = vector.simulate_mode(scenario, profile, topology, "sidecar", seed=2)
    grown: list[int] = []
    reserve = vector._reserve

    def counting(
        dtype: np.dtype, n: int, keep: np.ndarray | None = None, need: int | None = None
    ) -> np.ndarray:
        if keep is not None:
            grown.append(keep.shape[0])
        return reserve(dtype, n, keep, need)

    monkeypatch.setattr(vector, "_reserve", counting)
    monkeypatch.setattr(vector, "_POOLS_RESERVED", 3)
    monkeypatch.setattr(vector, "_CONNS_RESERVED", 5)
    outgrown = vector.simulate_mode(scenario, profile, topology, "sidecar", seed=2)
    assert outgrown.model_dump() == reserved.model_dump()
    assert len(grown) >= 2

    class NoFlags:  # mmap as Windows has it: no MAP_PRIVATE
        pass

    grown.clear()
    monkeypatch.setattr(vector, "mmap", NoFlags)
    monkeypatch.setattr(vector, "_PLAIN_RECORDS", 4)
    plain = vector.simulate_mode(scenario, profile, topology, "sidecar", seed=2)
    assert plain.model_dump() == reserved.model_dump()
    assert len(grown) >= 2


def test_auto_picks_the_vector_engine_for_large_scenarios_only() -> None:
    small = scenario_of(base_scenario())
    assert choose_engine(small, ["none"])[0] == "des"
    large_doc = base_scenario()
    large_doc["traffic"]["open_loop"]["rate_rps"] = AUTO_VECTOR_VISITS  # a million per second
    large = scenario_of(large_doc)
    engine, why = choose_engine(large, ["none"])
    assert engine == "vector"
    assert "queue visits" in why


def test_simulate_records_the_engine_auto_picked() -> None:
    scenario, profile = shop(duration_s=2.0)
    run = simulate(scenario, profile, modes=["ambient"], engine="auto")
    assert run.engine == "des"
    assert simulate(scenario, profile, modes=["ambient"], engine="vector").engine == "vector"


def test_cli_says_which_engine_auto_picked(tmp_path: Path) -> None:
    doc = base_scenario(name="tiny")
    doc["profile"] = str(ROOT / "profiles" / "istio-1.24.yaml")
    doc["traffic"]["duration_s"] = 2
    path = write_yaml(tmp_path / "tiny.yaml", doc)
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 0, result.output
    assert "engine auto: picked des (about" in result.output


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_a_closed_loop_in_which_time_never_passes_is_refused(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users who never think, in front of requests that cost nothing: no simulated time
    ever passes. Both engines say so (the DES engine used to loop at one instant forever)."""
    doc = base_scenario(
        workloads=[{"name": "app", "cpu_time": 0}],
        traffic={"entry": "app", "closed_loop": {"users": 2, "think_time": 0},
                 "duration_s": 2, "warmup_s": 1},
    )  # fmt: skip
    monkeypatch.setattr(des, "STILL_REQUESTS", 1000)  # a million takes tens of seconds
    with pytest.raises(TimeStandsStill, match="never let simulated time pass"):
        simulate(scenario_of(doc), zero_cost_profile(), engine=engine)


def test_percentiles_past_the_raw_latencies_reach_beyond_100_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past _RAW_LATENCIES the percentiles come from a fine histogram, which stopped at
    100 s: a run of 80 s requests (p99 about 150 s) read its p99 as 100 s."""
    doc = base_scenario(
        cluster={"nodes": 1, "cores_per_node": 8, "memory_gib_per_node": 16,
                 "max_pods_per_node": 500,
                 "network": {"same_node_ms": 0, "cross_node_ms": 0, "cross_zone_ms": 0}},
        workloads=[{"name": "batch", "replicas": 200, "cpu_millicores": 10, "memory_mib": 10,
                    "service_time": {"dist": "lognormal", "mean_ms": 80_000, "cv": 0.3}}],
        traffic={"entry": "batch", "open_loop": {"rate_rps": 100}, "duration_s": 121,
                 "warmup_s": 1},
    )  # fmt: skip
    scenario = scenario_of(doc)
    exact = simulate(scenario, zero_cost_profile(), engine="vector").modes["none"].latency_ms
    monkeypatch.setattr(vector, "_RAW_LATENCIES", 100)
    binned = simulate(scenario, zero_cost_profile(), engine="vector").modes["none"].latency_ms
    assert exact.p99 > 120_000  # well past 100 s
    for p in ("p50", "p90", "p99"):
        assert getattr(binned, p) == pytest.approx(getattr(exact, p), rel=2e-3), p
