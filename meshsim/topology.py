"""Where everything runs: nodes, pods (placed as a scheduler would), and each mode's proxies.

Engines and testbeds share this, so a measured run stands up exactly the pods and
proxies the simulator modelled.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Literal

from meshsim.profile import Profile
from meshsim.scenario import Mode, Placement, Scenario

__all__ = [
    "CLIENT",
    "Node",
    "PlacementError",
    "Pod",
    "Proxy",
    "ProxyKind",
    "Topology",
    "build_topology",
]

ProxyKind = Literal["sidecar", "ztunnel", "waypoint"]
PROXY_KINDS: tuple[ProxyKind, ...] = ("sidecar", "ztunnel", "waypoint")
CLIENT = "loadgen"  # workload name of the load generator's pod


@dataclass(frozen=True)
class Node:
    index: int
    name: str
    zone: str
    cores: int
    memory_gib: float


@dataclass(frozen=True)
class Pod:
    index: int
    name: str
    workload: str  # CLIENT for the load generator
    namespace: str
    identity: str
    node: int


@dataclass(frozen=True)
class Proxy:
    index: int
    name: str
    kind: ProxyKind
    node: int
    workers: int
    scope_services: int
    scope_endpoints: int
    key: str  # what it serves: a pod name, a node name, a namespace or a service


class PlacementError(ValueError):
    def __init__(self, workload_index: int, message: str):
        self.workload_index = workload_index
        super().__init__(message)


@dataclass(frozen=True)
class Topology:
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]  # pods[0] is the load generator
    services: dict[str, tuple[int, ...]]  # service -> pod indices
    namespaces: dict[str, str]  # service -> namespace

    @property
    def client(self) -> Pod:
        return self.pods[0]

    def nodes_in_use(self) -> list[int]:
        return sorted({pod.node for pod in self.pods})

    def waypoint_key(self, service: str, scope: str) -> str:
        return self.namespaces[service] if scope == "namespace" else service

    def services_behind(self, waypoint: Proxy, scope: str) -> list[str]:
        """The services a waypoint fronts (its namespace's, or its one service)."""
        return [s for s in self.services if self.waypoint_key(s, scope) == waypoint.key]

    def proxies(self, mode: Mode, scenario: Scenario, profile: Profile) -> list[Proxy]:
        """The proxies a mode deploys, in a stable order."""
        mesh = scenario.mesh
        n_services = len(self.services)
        n_endpoints = len(self.pods) - 1
        out: list[Proxy] = []

        def add(
            kind: ProxyKind, name: str, node: int, workers: int | None, svc: int, ep: int, key: str
        ) -> None:
            count = workers if workers is not None else int(profile.proxy(kind).workers.value)
            out.append(Proxy(len(out), name, kind, node, count, svc, ep, key))

        if mode == "sidecar":
            own = {w.name: w.sidecar_concurrency for w in scenario.workloads}
            own[CLIENT] = scenario.traffic.client.sidecar_concurrency
            for pod in self.pods:
                workers = own[pod.workload]
                add(
                    "sidecar",
                    f"{pod.name}.sidecar",
                    pod.node,
                    workers if workers is not None else mesh.sidecar_concurrency,
                    n_services,
                    n_endpoints,
                    pod.name,
                )
        if mode in ("ambient", "ambient-waypoint"):
            for node in self.nodes_in_use():
                name = self.nodes[node].name
                add(
                    "ztunnel",
                    f"ztunnel-{name}",
                    node,
                    mesh.ztunnel_workers,
                    n_services,
                    n_endpoints + 1,
                    name,
                )
        if mode == "ambient-waypoint":
            for key, node in self._waypoint_nodes_for(mesh.waypoint_scope).items():
                fronted = [
                    s for s in self.services if self.waypoint_key(s, mesh.waypoint_scope) == key
                ]
                endpoints = sum(len(self.services[s]) for s in fronted)
                add(
                    "waypoint",
                    f"waypoint-{key}",
                    node,
                    mesh.waypoint_concurrency,
                    len(fronted),
                    endpoints,
                    key,
                )
        return out

    def _waypoint_nodes_for(self, scope: str) -> dict[str, int]:
        """Waypoints go, one by one, to the node with the fewest pods (ties: lowest index)."""
        load = [0] * len(self.nodes)
        for pod in self.pods:
            load[pod.node] += 1
        keys: list[str] = []
        for service in self.services:
            key = self.waypoint_key(service, scope)
            if key not in keys:
                keys.append(key)
        placed: dict[str, int] = {}
        for key in keys:
            node = min(range(len(self.nodes)), key=lambda i: (load[i], i))
            placed[key] = node
            load[node] += 1
        return placed


def resolve_nodes(scenario: Scenario) -> tuple[Node, ...]:
    cluster = scenario.cluster
    if isinstance(cluster.nodes, int):
        return tuple(
            Node(
                i,
                f"node-{i + 1}",
                cluster.zones[i % len(cluster.zones)],
                cluster.cores_per_node,
                cluster.memory_gib_per_node,
            )
            for i in range(cluster.nodes)
        )
    return tuple(
        Node(
            i,
            spec.name,
            spec.zone or cluster.zones[0],
            spec.cores or cluster.cores_per_node,
            spec.memory_gib or cluster.memory_gib_per_node,
        )
        for i, spec in enumerate(cluster.nodes)
    )


def node_cores(scenario: Scenario) -> dict[str, int]:
    """Each node's cores, by node name."""
    return {n.name: n.cores for n in resolve_nodes(scenario)}


def build_topology(scenario: Scenario) -> Topology:
    """Place every replica on a node, checking CPU and memory requests and pod limits."""
    nodes = resolve_nodes(scenario)
    by_name = {n.name: n.index for n in nodes}
    free_mcpu = [n.cores * 1000 for n in nodes]
    free_mib = [n.memory_gib * 1024 for n in nodes]
    free_pods = [scenario.cluster.max_pods_per_node] * len(nodes)
    client = scenario.traffic.client
    client_node = by_name.get(client.node, 0) if client.node else 0
    pods = [Pod(0, "loadgen-0", CLIENT, client.namespace, client.identity, client_node)]
    free_pods[client_node] -= 1
    services: dict[str, tuple[int, ...]] = {}
    namespaces: dict[str, str] = {}
    for w_index, workload in enumerate(scenario.workloads):
        mine = [0] * len(nodes)
        indices: list[int] = []

        def fits(
            node: int, cpu: int = workload.cpu_millicores, mem: float = workload.memory_mib
        ) -> bool:
            return free_mcpu[node] >= cpu and free_mib[node] >= mem and free_pods[node] > 0

        # Within one workload a node's free resources only shrink, so a node that does not
        # fit stays out: spread keeps a heap of (own replicas, -free CPU, index), pack a cursor.
        spread = [(0, -free_mcpu[i], i) for i in range(len(nodes))]
        heapq.heapify(spread)
        cursor = 0
        allowed = (
            [by_name[n] for n in workload.placement.nodes if n in by_name]
            if isinstance(workload.placement, Placement)
            else []
        )
        for replica in range(workload.replicas):
            if isinstance(workload.placement, Placement):
                target = allowed[replica % len(allowed)] if allowed else 0
                candidates = [target] if fits(target) else []
            elif workload.placement == "pack":
                while cursor < len(nodes) and not fits(cursor):
                    cursor += 1
                candidates = [cursor] if cursor < len(nodes) else []
            else:
                while spread and not fits(spread[0][2]):
                    heapq.heappop(spread)
                candidates = [heapq.heappop(spread)[2]] if spread else []
            if not candidates:
                raise PlacementError(
                    w_index,
                    f"cannot place replica {replica + 1} of {workload.replicas} of "
                    f"'{workload.name}': no allowed node has {workload.cpu_millicores} "
                    f"millicores, {workload.memory_mib:g} MiB and a pod slot free",
                )
            node = candidates[0]
            free_mcpu[node] -= workload.cpu_millicores
            free_mib[node] -= workload.memory_mib
            free_pods[node] -= 1
            mine[node] += 1
            if workload.placement == "spread":
                heapq.heappush(spread, (mine[node], -free_mcpu[node], node))
            pod = Pod(
                len(pods),
                f"{workload.name}-{replica}",
                workload.name,
                workload.namespace,
                workload.identity,
                node,
            )
            pods.append(pod)
            indices.append(pod.index)
        services[workload.name] = tuple(indices)
        namespaces[workload.name] = workload.namespace
    return Topology(tuple(nodes), tuple(pods), services, namespaces)
