"""The testbed's network: a namespace per node and per pod (and waypoint), joined by veths.

Layout (DESIGN.md section 5): pods attach to their node by a routed veth (the node side
of every pod link carries the node's gateway address, like Calico), nodes attach to a
bridge in a 'fabric' namespace. Every packet between pods, on one node or across nodes,
is routed through a node namespace, so the node's iptables see it (ambient interception
relies on that). Addresses are private and exist only inside these namespaces.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshsim.testbed.names import RunNames
from meshsim.testbed.system import TestbedError, env_without_proxies, in_netns, sh
from meshsim.topology import Node, Topology

__all__ = ["Host", "NetworkPlan", "NodeNet", "build_network", "own_targets", "plan_network"]

FABRIC_BRIDGE = "br0"
MAX_HOSTS_PER_NODE = 250
MAX_NODES = 250


@dataclass(frozen=True)
class NodeNet:
    index: int
    name: str
    netns: str
    fabric_ip: str
    gateway_ip: str  # every pod's default gateway: the node end of each pod link
    pod_cidr: str


@dataclass(frozen=True)
class Host:
    """A namespace attached to a node: a pod, or a waypoint."""

    name: str
    netns: str
    node: int
    ip: str
    node_veth: str  # the link's name inside the node namespace


@dataclass(frozen=True)
class NetworkPlan:
    fabric_netns: str
    nodes: tuple[NodeNet, ...]
    hosts: dict[str, Host]

    def namespaces(self) -> list[str]:
        return [self.fabric_netns, *(n.netns for n in self.nodes), *self.host_namespaces()]

    def host_namespaces(self) -> list[str]:
        return [h.netns for h in self.hosts.values()]


def testbed_limits(topology: Topology) -> list[tuple[tuple[str, ...], str]]:
    """What the local testbed cannot stand up, as (scenario path, why), for an error that
    names the scenario's line before anything is built."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if len(topology.nodes) > MAX_NODES:
        problems.append(
            (("cluster", "nodes"), f"the local testbed takes at most {MAX_NODES} nodes, and "
             f"this scenario uses {len(topology.nodes)}: simulate it with meshsim run")
        )  # fmt: skip
    per_node = [0] * (max((n.index for n in topology.nodes), default=-1) + 1)
    for pod in topology.pods:
        per_node[pod.node] += 1
    for node in topology.nodes:
        if per_node[node.index] > MAX_HOSTS_PER_NODE:
            problems.append(
                (("workloads",), f"node {node.name} would hold {per_node[node.index]} pods; "
                 f"the local testbed takes at most {MAX_HOSTS_PER_NODE} on a node")
            )  # fmt: skip
    return problems


def plan_network(
    names: RunNames, topology: Topology, extra_hosts: Iterable[tuple[str, int]] = ()
) -> NetworkPlan:
    """Addresses for every node in use, every pod, and extra hosts (name, node) such as
    waypoints: node i gets 10.(i+1).0.0/24, gateway .1; the fabric is 10.255.0.0/24."""
    if len(topology.nodes) > MAX_NODES:
        raise TestbedError(f"the local testbed supports at most {MAX_NODES} nodes")
    nodes = tuple(_node_net(names, node) for node in topology.nodes)
    wanted = [(pod.name, f"pod-{pod.name}", pod.node) for pod in topology.pods]
    wanted += [(name, f"wp-{name.removeprefix('waypoint-')}", node) for name, node in extra_hosts]
    per_node = [0] * len(nodes)
    hosts: dict[str, Host] = {}
    for name, role, node in wanted:
        k = per_node[node]
        if k >= MAX_HOSTS_PER_NODE:
            raise TestbedError(f"node {nodes[node].name}: more than {MAX_HOSTS_PER_NODE} pods")
        per_node[node] += 1
        hosts[name] = Host(name, names.netns(role), node, f"10.{node + 1}.0.{k + 2}", f"h{k}")
    return NetworkPlan(names.netns("fabric"), nodes, hosts)


def _node_net(names: RunNames, node: Node) -> NodeNet:
    i = node.index
    return NodeNet(
        i,
        node.name,
        names.netns(f"node-{node.name}"),
        f"10.255.0.{i + 1}",
        f"10.{i + 1}.0.1",
        f"10.{i + 1}.0.0/24",
    )


def _ip_batch(ns: str, lines: list[str]) -> None:
    sh(["ip", "-n", ns, "-batch", "-"], input_text="\n".join(lines) + "\n")


def _sysctl(ns: str, settings: dict[str, str]) -> None:
    sh(in_netns(ns, ["sysctl", "-qw", *(f"{k}={v}" for k, v in settings.items())]))


def build_network(plan: NetworkPlan) -> None:
    """Create every namespace and link of the plan (the caller removes them on exit)."""
    for ns in plan.namespaces():
        sh(["ip", "netns", "add", ns])
    fabric = [
        f"link add {FABRIC_BRIDGE} type bridge",
        f"link set {FABRIC_BRIDGE} up",
        "link set lo up",
    ]
    _ip_batch(plan.fabric_netns, fabric)
    for node in plan.nodes:
        sh(
            [
                "ip", "link", "add", "fabric0", "netns", node.netns,
                "type", "veth", "peer", "name", f"n{node.index}", "netns", plan.fabric_netns,
            ]
        )  # fmt: skip
        _ip_batch(plan.fabric_netns, [f"link set n{node.index} master {FABRIC_BRIDGE} up"])
        lines = [
            "link set lo up",
            f"addr add {node.fabric_ip}/24 dev fabric0",
            "link set fabric0 up",
        ]
        lines += [
            f"route add {other.pod_cidr} via {other.fabric_ip}"
            for other in plan.nodes
            if other.index != node.index
        ]
        _ip_batch(node.netns, lines)
        _sysctl(
            node.netns,
            {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
             "net.ipv4.conf.default.rp_filter": "0"},
        )  # fmt: skip
    for host in plan.hosts.values():
        node = plan.nodes[host.node]
        sh(
            [
                "ip", "link", "add", host.node_veth, "netns", node.netns,
                "type", "veth", "peer", "name", "eth0", "netns", host.netns,
            ]
        )  # fmt: skip
        _ip_batch(
            node.netns,
            [
                f"addr add {node.gateway_ip}/32 dev {host.node_veth}",
                f"link set {host.node_veth} up",
                f"route add {host.ip}/32 dev {host.node_veth}",
            ],
        )
        _ip_batch(
            host.netns,
            [
                "link set lo up",
                f"addr add {host.ip}/32 dev eth0",
                "link set eth0 up",
                f"route add {node.gateway_ip} dev eth0 scope link",
                f"route add default via {node.gateway_ip} dev eth0",
            ],
        )


def _probe_rtt(server: Host, client: Host, probes: int) -> list[float]:
    """Round trips (microseconds) of UDP probes from `client` to an echo in `server`."""
    import json
    import subprocess
    import sys

    echo = subprocess.Popen(
        in_netns(
            server.netns,
            [sys.executable, "-m", "meshsim.testbed.probes", "echo", server.ip, "9999", "15"],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env_without_proxies(),
    )
    try:
        assert echo.stdout is not None
        if echo.stdout.readline().strip() != "ready":
            raise TestbedError(f"the echo probe in {server.netns} did not start")
        rtt = [sys.executable, "-m", "meshsim.testbed.probes", "rtt", server.ip, "9999"]
        out = sh(in_netns(client.netns, [*rtt, str(probes)]))
    finally:
        echo.kill()
        echo.wait()
    samples: list[float] = json.loads(out)
    if not samples:
        raise TestbedError(f"no UDP probe from {client.name} to {server.name} came back")
    return samples


def measure_links(
    plan: NetworkPlan, probes: int = 200
) -> list[tuple[str, Host, Host, list[float]]]:
    """Measure one same-node and one cross-node pod pair (netem cannot inject delay on these
    kernels, so the real delay is measured and handed to the simulator instead)."""
    by_node: dict[int, list[Host]] = {}
    for host in plan.hosts.values():
        by_node.setdefault(host.node, []).append(host)
    links = []
    same = next((hosts for hosts in by_node.values() if len(hosts) >= 2), None)
    if same is not None:
        links.append(("same_node", same[0], same[1], _probe_rtt(same[1], same[0], probes)))
    nodes = sorted(by_node)
    if len(nodes) >= 2:
        a, b = by_node[nodes[0]][0], by_node[nodes[1]][0]
        links.append(("cross_node", a, b, _probe_rtt(b, a, probes)))
    return links


def own_targets(targets: Sequence[str], net: NetworkPlan) -> list[str]:
    """The load's target URLs, each an address this run created (a pod's or a waypoint's
    namespace): TestbedError for any other. Traffic goes nowhere else."""
    created = {host.ip for host in net.hosts.values()}
    for url in targets:
        address = urllib.parse.urlsplit(url).hostname
        if address not in created:
            raise TestbedError(
                f"refusing to send traffic to {url}: {address} is not an address this run created"
            )
    return list(targets)
