"""Placement as a scheduler would do it: spread, pack, explicit nodes, and what does not fit."""

from __future__ import annotations

from typing import Any

import pytest

from meshsim.loader import load_profile
from meshsim.topology import PlacementError, build_topology

from .builders import ISTIO, base_scenario, scenario_of


def nodes_of(workloads: list[dict[str, Any]], nodes: int = 3, cores: int = 1) -> list[int]:
    doc = base_scenario(workloads=workloads)
    doc["cluster"].update(nodes=nodes, cores_per_node=cores)
    topology = build_topology(scenario_of(doc))
    return [pod.node for pod in topology.pods[1:]]  # pods[0] is the load generator


def test_spread_goes_round_the_nodes() -> None:
    assert nodes_of([{"name": "app", "replicas": 7}]) == [0, 1, 2, 0, 1, 2, 0]


def test_spread_prefers_the_node_with_most_free_cpu_among_the_least_used() -> None:
    placed = nodes_of([{"name": "big", "cpu_millicores": 600},
                       {"name": "app", "replicas": 3}])  # fmt: skip
    assert placed == [0, 1, 2, 0]


def test_pack_fills_a_node_before_the_next() -> None:
    placed = nodes_of([{"name": "app", "replicas": 5, "placement": "pack",
                        "cpu_millicores": 400}])  # fmt: skip
    assert placed == [0, 0, 1, 1, 2]


def test_explicit_nodes_are_used_round_robin() -> None:
    placed = nodes_of([{"name": "app", "replicas": 3,
                        "placement": {"nodes": ["node-3", "node-1"]}}])  # fmt: skip
    assert placed == [2, 0, 2]


def test_replicas_that_do_not_fit_are_refused() -> None:
    with pytest.raises(PlacementError, match="cannot place replica 4 of 4 of 'app'"):
        nodes_of([{"name": "app", "replicas": 4, "cpu_millicores": 1000}])


def test_sidecar_workers_come_from_the_workload_then_the_mesh_then_the_profile() -> None:
    doc = base_scenario(
        workloads=[
            {"name": "front", "replicas": 2, "sidecar_concurrency": 8, "calls": [{"to": "back"}]},
            {"name": "back"},
        ]
    )
    doc["traffic"].update(entry="front", client={"sidecar_concurrency": 64})
    doc["mesh"] = {"modes": ["sidecar"]}
    profile = load_profile(ISTIO)
    scenario = scenario_of(doc)
    sidecars = build_topology(scenario).proxies("sidecar", scenario, profile)
    assert [(p.name, p.workers) for p in sidecars] == [
        ("loadgen-0.sidecar", 64),
        ("front-0.sidecar", 8),
        ("front-1.sidecar", 8),
        ("back-0.sidecar", int(profile.sidecar.workers.value)),
    ]
    doc["mesh"]["sidecar_concurrency"] = 3
    scenario = scenario_of(doc)
    sidecars = build_topology(scenario).proxies("sidecar", scenario, profile)
    assert [p.workers for p in sidecars] == [64, 8, 8, 3]
