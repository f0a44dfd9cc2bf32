"""Other work on the nodes' cores (`cluster.background_cores`): what a testbed measures of
it, and what it costs a request in both engines."""

from __future__ import annotations

import os
from typing import Any

import pytest

from meshsim.calibrate.dataset import (
    BACKGROUND_CAP,
    measured_background,
    measured_network,
    saturated_nodes,
)
from meshsim.calibrate.params import with_values
from meshsim.checks import check_scenario
from meshsim.results import RunResult
from meshsim.run import simulate
from meshsim.testbed.runner import background_cores, host_busy_s
from meshsim.topology import resolve_nodes

from .builders import client_and_one_pod, scenario_of, zero_cost_profile

WAIT_US = 2000.0
REQUESTS = 4000


def _two_pods(background: dict[str, float], modes: list[str]) -> dict[str, Any]:
    """A load generator on node-1 calling one pod on node-2, nothing but the pure delays."""
    return client_and_one_pod(
        modes, traffic={"duration_s": REQUESTS / 100 + 1}, background_cores=background
    )


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_each_wake_up_waits_for_the_background_share_of_its_core(engine: str) -> None:
    # no CPU, no queue: a request's latency is its waits alone. The app is woken once (no
    # calls); in sidecar mode each of the two sidecars twice (request, response). A wake-up
    # finds its core taken with the node's background share and then waits WAIT_US on
    # average: the mean latency is the sum of share x WAIT_US over the wake-ups.
    profile = with_values(zero_cost_profile(), {"host.preempted_wait_us": WAIT_US})
    shares = {"node-1": 0.5 / 2, "node-2": 1.2 / 2}
    scenario = scenario_of(_two_pods({"node-1": 0.5, "node-2": 1.2}, ["none", "sidecar"]))
    run = simulate(scenario, profile, seed=4, engine=engine)
    wait_ms = WAIT_US / 1000
    expected = {
        "none": shares["node-2"] * wait_ms,
        "sidecar": (3 * shares["node-2"] + 2 * shares["node-1"]) * wait_ms,
    }
    for mode, mean_ms in expected.items():
        assert run.modes[mode].latency_ms.mean == pytest.approx(mean_ms, rel=0.06), mode


def test_without_background_nothing_is_drawn_for_it() -> None:
    scenario = scenario_of(_two_pods({}, ["none", "sidecar"]))
    profile = zero_cost_profile()
    other = with_values(profile, {"host.preempted_wait_us": 5000.0})
    for engine in ("des", "vector"):
        a = simulate(scenario, profile, seed=4, engine=engine)
        b = simulate(scenario, other, seed=4, engine=engine)
        assert a.modes == b.modes


def test_background_must_name_a_node_and_leave_it_a_core() -> None:
    scenario = scenario_of(_two_pods({"node-3": 0.1, "node-2": 2.0}, ["none"]))
    assert check_scenario(scenario) == [
        (
            ("cluster", "background_cores", "node-3"),
            "unknown node 'node-3' (did you mean 'node-2'?); expected one of: node-1, node-2",
        ),
        (
            ("cluster", "background_cores", "node-2"),
            "2 cores of background leave none of node-2's 2 to the scenario",
        ),
    ]


STAT = """cpu  500 0 100 9000 0 0 0 0 0 0
cpu0 300 20 50 4000 7 5 3 2 0 0
cpu1 200 0 50 5000 0 0 0 0 0 0
intr 12345
"""


def test_host_busy_time_is_every_cores_non_idle_time() -> None:
    tick = os.sysconf("SC_CLK_TCK")  # /proc/stat counts in these
    assert host_busy_s(STAT) == {
        0: pytest.approx((300 + 20 + 50 + 5 + 3 + 2) / tick),  # all but idle and iowait
        1: pytest.approx((200 + 50) / tick),
    }


def test_background_is_the_cores_busy_time_less_the_modelled_components() -> None:
    busy = {0: 0.9, 1: 0.4}
    # pinned: node 0 on core 0, node 1 on core 1; node 1's components exceed the core's
    # count by rounding: never below 0
    assert background_cores(busy, {0: [0], 1: [1]}, {0: 0.5, 1: 0.45}) == {
        0: pytest.approx(0.4),
        1: 0.0,
    }
    # not pinned: both nodes on both cores share each core's time
    assert background_cores(busy, {0: [0, 1], 1: [0, 1]}, {0: 0.3, 1: 0.2}) == {
        0: pytest.approx(0.35),
        1: pytest.approx(0.45),
    }


def _measured(backgrounds: dict[str, dict[str, float]]) -> RunResult:
    scenario = scenario_of(_two_pods({}, list(backgrounds)))
    run = simulate(scenario, zero_cost_profile(), seed=1, engine="vector")
    modes = {
        m: r.model_copy(update={"background_cores": backgrounds[m]}) for m, r in run.modes.items()
    }
    return run.model_copy(update={"kind": "measured", "modes": modes})


def test_each_modes_window_is_simulated_with_its_own_background() -> None:
    run = _measured({"none": {"node-1": 0.2, "node-2": 0.1}, "sidecar": {"node-1": 0.4}})
    scenario = scenario_of(_two_pods({}, ["none", "sidecar"]))
    assert measured_network(scenario, run, "sidecar").cluster.background_cores == {"node-1": 0.4}
    assert measured_background(run) == {"node-1": pytest.approx(0.3), "node-2": 0.05}
    assert measured_network(scenario, run).cluster.background_cores == measured_background(run)


@pytest.mark.parametrize("engine", ["des", "vector"])
def test_the_other_work_slows_a_burst_by_the_share_that_competes(engine: str) -> None:
    # one 1 ms burst per request every 10 ms (no queue), on a node whose one core is 60%
    # taken, half of which competes with the burst: it runs at 70% speed, 1/0.7 ms; the
    # app's CPU is still 1 ms a request
    changes = {"host.preempted_wait_us": 0.0, "host.contention": 0.5}
    profile = with_values(zero_cost_profile(), changes)
    doc = _two_pods({"node-2": 0.6}, ["none"])
    doc["cluster"]["cores_per_node"] = 1
    doc["workloads"][0]["cpu_time"] = 1.0
    doc["traffic"]["open_loop"]["arrivals"] = "constant"
    run = simulate(scenario_of(doc), profile, seed=4, engine=engine)
    result = run.modes["none"]
    assert result.latency_ms.p50 == pytest.approx(1.0 / (1 - 0.5 * 0.6))
    (app,) = [c for c in result.components if c.kind == "app"]
    assert app.cpu_cores == pytest.approx(100 * 1e-3, rel=0.01)


def test_a_node_saturated_by_other_work_is_taken_as_nearly_full_not_as_invalid() -> None:
    """A loaded host measured other work of 1.00001 cores on a 1-core node: the scenario as
    measured said that leaves the apps nothing and was refused. It is capped below the
    node's cores, and the node is named as saturated."""
    scenario = scenario_of(_two_pods({}, ["none"]))
    cores = {n.name: n.cores for n in resolve_nodes(scenario)}
    run = _measured({"none": {"node-1": cores["node-1"] + 1e-5, "node-2": 0.1}})
    as_measured = measured_network(scenario, run)
    assert as_measured.cluster.background_cores == {
        "node-1": BACKGROUND_CAP * cores["node-1"],
        "node-2": 0.1,
    }
    assert check_scenario(as_measured) == []
    assert saturated_nodes(scenario, run) == {"node-1": cores["node-1"] + 1e-5}
