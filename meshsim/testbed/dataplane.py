"""What runs where in one mode: apps, HAProxy configs and interception rules.

Built from the same Topology the simulator uses (`Topology.proxies`), so a measured run
stands up exactly the pods and proxies that were modelled (DESIGN.md sections 2 and 5):

- none: app -> app, plain HTTP to the pod's address.
- sidecar: one HAProxy per pod (L7). istio-init-like iptables in the pod send the app's
  outbound calls to the sidecar's outbound listener and inbound calls to its TLS
  listener; sidecars speak mTLS to each other.
- ambient: one HAProxy per node in the ztunnel role (L4). The node's iptables redirect
  its pods' outbound calls to it; the destination pod travels in the TLS SNI (as HBONE
  carries it in CONNECT); a same-node call is handed to the pod directly.
- ambient-waypoint: the source ztunnel sends to the destination service's waypoint (an
  L7 HAProxy in its own namespace), which sends on to the destination node's ztunnel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from meshsim.profile import Profile
from meshsim.scenario import Mode, Scenario
from meshsim.testbed.certs import identity_dns_name
from meshsim.testbed.network import NetworkPlan
from meshsim.topology import CLIENT, Pod, Proxy, Topology

__all__ = [
    "APP_PORT",
    "HBONE_PORT",
    "INBOUND_PORT",
    "OUTBOUND_PORT",
    "PROXY_UID",
    "Dataplane",
    "ProxySpec",
    "plan_dataplane",
    "waypoint_hosts",
]

APP_PORT = 8080
OUTBOUND_PORT = 15001  # Istio's outbound capture port
INBOUND_PORT = 15006  # Istio's inbound capture port
HBONE_PORT = 15008
PROXY_UID = 1337  # istio-proxy's uid: its own traffic is not intercepted
ZTUNNEL_IDENTITY = "spiffe://cluster.local/ns/istio-system/sa/ztunnel"
# the original destination (SO_ORIGINAL_DST after the iptables redirect) picks the backend
ROUTE_BY_DST = "  use_backend to_%[dst]"
ROUTE_BY_SNI = "  use_backend pod_%[ssl_fc_sni,field(1,.)]"  # the pod named by the SNI


@dataclass(frozen=True)
class ProxySpec:
    proxy: Proxy
    netns: str
    identity: str
    tls_frontends: tuple[str, ...]  # frontends that terminate mTLS
    config: str = ""


@dataclass
class Dataplane:
    mode: Mode
    proxies: list[ProxySpec]
    iptables: dict[str, list[list[str]]] = field(default_factory=dict)  # netns -> rules
    identities: dict[str, str] = field(default_factory=dict)  # cert stem -> identity


def waypoint_hosts(
    topology: Topology, scenario: Scenario, profile: Profile
) -> list[tuple[str, int]]:
    """(name, node) of each waypoint ambient-waypoint mode deploys: each gets a namespace."""
    return [
        (p.name, p.node) for p in topology.proxies("ambient-waypoint", scenario, profile)
        if p.kind == "waypoint"
    ]  # fmt: skip


def waypoint_identity(topology: Topology, proxy: Proxy, scope: str) -> str:
    namespace = proxy.key if scope == "namespace" else topology.namespaces[proxy.key]
    return f"spiffe://cluster.local/ns/{namespace}/sa/waypoint"


def load_users(scenario: Scenario) -> int:
    """Locust users: the closed loop's, or enough paced users to hold an open-loop rate."""
    traffic = scenario.traffic
    if traffic.closed_loop is not None:
        return traffic.closed_loop.users
    assert traffic.open_loop is not None
    # Each paced user sends at most ~20 requests per second, so a slow response delays
    # only its own next arrival; 2 at least, so one slow response never stalls the load.
    return max(2, min(64, math.ceil(traffic.open_loop.rate_rps / 20)))


class _Builder:
    def __init__(
        self, scenario: Scenario, profile: Profile, topology: Topology, net: NetworkPlan,
        mode: Mode, run_dir: str,
    ):  # fmt: skip
        self.scenario, self.topology, self.net, self.mode = scenario, topology, net, mode
        self.run_dir = run_dir
        self.idle_s = max(1, int(scenario.mesh.pool.idle_timeout_s))
        self.max_reuse = scenario.mesh.pool.max_requests_per_connection
        self.proxies = topology.proxies(mode, scenario, profile)
        self.pod_by_name = {p.name: p for p in topology.pods}
        self.workloads = {w.name: w for w in scenario.workloads}
        scope = scenario.mesh.waypoint_scope
        self.waypoint_for: dict[str, Proxy] = {}  # service -> its waypoint
        for proxy in self.proxies:
            if proxy.kind == "waypoint":
                for svc in topology.services_behind(proxy, scope):
                    self.waypoint_for[svc] = proxy

    # ---- shared pieces --------------------------------------------------------------

    def ip(self, pod: Pod) -> str:
        return self.net.hosts[pod.name].ip

    def sock(self, proxy: Proxy) -> str:
        return f"{self.run_dir}/{proxy.name}.sock"

    def cert(self, stem: str) -> str:
        return f"{self.run_dir}/certs/{stem}.pem"

    @property
    def ca(self) -> str:
        return f"{self.run_dir}/certs/ca.pem"

    def header(self, proxy: Proxy, mode: Literal["http", "tcp"]) -> list[str]:
        return [
            "global",
            f"  nbthread {proxy.workers}",
            f"  uid {PROXY_UID}",
            f"  gid {PROXY_UID}",
            f"  stats socket {self.sock(proxy)} mode 600 level admin",
            "  ssl-server-verify required",
            "  maxconn 4096",
            # Envoy buffers up to 1 MiB a connection by default
            # (per_connection_buffer_limit_bytes); HAProxy's 16 KiB would relay a 32 KiB
            # body in pieces the mesh does not cut (results/calibration/testbed-chain/
            # chain-payload-sweep/bufsize/: 1.6 ms of the chain's p50 at 32 KiB)
            "  tune.bufsize 65536",
            "defaults",
            f"  mode {mode}",
            "  timeout connect 3s",
            f"  timeout client {max(self.idle_s, 30)}s",
            f"  timeout server {max(self.idle_s, 30)}s",
            f"  timeout http-keep-alive {self.idle_s}s",
            *(["  http-reuse always"] if mode == "http" else []),
        ]

    def tls_server(self, address: str, own_cert: str, peer_identity: str, sni: str = "") -> str:
        """A server line that originates mTLS and checks the peer's identity. With `sni`
        (a destination pod), the SNI is 'POD.<peer's name>': HAProxy checks the peer's
        certificate against the SNI when one is sent, so both ends see the same name."""
        peer = identity_dns_name(peer_identity)
        parts = [
            f"  server s {address} ssl crt {self.cert(own_cert)} ca-file {self.ca}",
            f"verify required pool-purge-delay {self.idle_s}s",
            f"sni str({sni}.{peer})" if sni else f"verifyhost {peer}",
        ]
        if self.max_reuse is not None:
            parts.append(f"max-reuse {self.max_reuse}")
        return " ".join(parts)

    def tls_bind(self, port: int, own_cert: str) -> str:
        return f"  bind :{port} ssl crt {self.cert(own_cert)} ca-file {self.ca} verify required"

    def callees(self, pod: Pod) -> list[Pod]:
        """Pods this pod may call: the entry's for the load generator, else its calls'."""
        if pod.workload == CLIENT:
            services = [self.scenario.traffic.entry]
        else:
            services = [c.to for c in self.workloads[pod.workload].calls]
        seen = dict.fromkeys(i for s in services for i in self.topology.services[s])
        return [self.topology.pods[i] for i in seen]

    def app_pods(self) -> list[Pod]:
        return [p for p in self.topology.pods if p.workload != CLIENT]

    # ---- modes ------------------------------------------------------------------------

    def build(self) -> Dataplane:
        plane = Dataplane(self.mode, [])
        for proxy in self.proxies:
            if proxy.kind == "sidecar":
                plane.proxies.append(self.sidecar(proxy, plane))
            elif proxy.kind == "ztunnel":
                plane.proxies.append(self.ztunnel(proxy, plane))
            else:
                plane.proxies.append(self.waypoint(proxy, plane))
        return plane

    def sidecar(self, proxy: Proxy, plane: Dataplane) -> ProxySpec:
        pod = self.pod_by_name[proxy.key]
        ns = self.net.hosts[pod.name].netns
        stem = f"pod-{pod.name}"
        plane.identities[stem] = pod.identity
        lines = self.header(proxy, "http")
        lines += ["frontend outbound", f"  bind 127.0.0.1:{OUTBOUND_PORT}", ROUTE_BY_DST]
        for dst in self.callees(pod):
            lines += [
                f"backend to_{self.ip(dst)}",
                self.tls_server(f"{self.ip(dst)}:{APP_PORT}", stem, dst.identity),
            ]
        rules = [
            # istio-init: the app's outbound calls go to the sidecar, except the sidecar's own
            ["-t", "nat", "-A", "OUTPUT", "-p", "tcp", "!", "-d", "127.0.0.0/8",
             "--dport", str(APP_PORT), "-m", "owner", "!", "--uid-owner", str(PROXY_UID),
             "-j", "REDIRECT", "--to-ports", str(OUTBOUND_PORT)],
        ]  # fmt: skip
        frontends: tuple[str, ...] = ()
        if pod.workload != CLIENT:
            lines += [
                "frontend inbound",
                self.tls_bind(INBOUND_PORT, stem),
                "  default_backend app",
                "backend app",
                f"  server app 127.0.0.1:{APP_PORT} pool-purge-delay {self.idle_s}s",
            ]
            rules.append(
                ["-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", str(APP_PORT),
                 "-j", "REDIRECT", "--to-ports", str(INBOUND_PORT)]
            )  # fmt: skip
            frontends = ("inbound",)
        plane.iptables[ns] = rules
        return ProxySpec(proxy, ns, pod.identity, frontends, "\n".join(lines) + "\n")

    def ztunnel(self, proxy: Proxy, plane: Dataplane) -> ProxySpec:
        node = self.net.nodes[proxy.node]
        stem = f"ztunnel-{node.name}"
        plane.identities[stem] = ZTUNNEL_IDENTITY
        lines = self.header(proxy, "tcp")
        lines += ["frontend outbound", f"  bind :{OUTBOUND_PORT}", ROUTE_BY_DST]
        local = []
        for dst in self.app_pods():
            lines.append(f"backend to_{self.ip(dst)}")
            waypoint = self.waypoint_for.get(dst.workload)
            if waypoint is not None:
                host = self.net.hosts[waypoint.name]
                peer = waypoint_identity(self.topology, waypoint, self.scenario.mesh.waypoint_scope)
                address = f"{host.ip}:{HBONE_PORT}"
                lines.append(self.tls_server(address, stem, peer, sni=dst.name))
            elif dst.node == proxy.node:  # one box, both roles: no network hop, no TLS
                lines.append(f"  server s {self.ip(dst)}:{APP_PORT}")
            else:
                remote = self.net.nodes[dst.node].fabric_ip
                address = f"{remote}:{HBONE_PORT}"
                lines.append(self.tls_server(address, stem, ZTUNNEL_IDENTITY, sni=dst.name))
            if dst.node == proxy.node:
                local.append(dst)
        lines += ["frontend inbound", self.tls_bind(HBONE_PORT, stem), ROUTE_BY_SNI]
        for dst in local:
            lines += [f"backend pod_{dst.name}", f"  server s {self.ip(dst)}:{APP_PORT}"]
        plane.iptables[node.netns] = [
            # the node redirects its pods' calls to its ztunnel (ztunnel's in-pod capture)
            ["-t", "nat", "-A", "PREROUTING", "-i", "h+", "-p", "tcp", "--dport", str(APP_PORT),
             "-j", "REDIRECT", "--to-ports", str(OUTBOUND_PORT)],
        ]  # fmt: skip
        return ProxySpec(proxy, node.netns, ZTUNNEL_IDENTITY, ("inbound",), "\n".join(lines) + "\n")

    def waypoint(self, proxy: Proxy, plane: Dataplane) -> ProxySpec:
        host = self.net.hosts[proxy.name]
        identity = waypoint_identity(self.topology, proxy, self.scenario.mesh.waypoint_scope)
        stem = proxy.name
        plane.identities[stem] = identity
        lines = self.header(proxy, "http")
        lines += ["frontend inbound", self.tls_bind(HBONE_PORT, stem), ROUTE_BY_SNI]
        for svc, wp in self.waypoint_for.items():
            if wp is not proxy:
                continue
            for i in self.topology.services[svc]:
                dst = self.topology.pods[i]
                address = f"{self.net.nodes[dst.node].fabric_ip}:{HBONE_PORT}"
                lines += [
                    f"backend pod_{dst.name}",
                    self.tls_server(address, stem, ZTUNNEL_IDENTITY, sni=dst.name),
                ]
        return ProxySpec(proxy, host.netns, identity, ("inbound",), "\n".join(lines) + "\n")

    # ---- apps and load ----------------------------------------------------------------

    def app_config(self, pod: Pod, seed: int) -> dict[str, Any]:
        workload = self.workloads[pod.workload]
        callees = {
            c.to: [self.ip(self.topology.pods[i]) for i in self.topology.services[c.to]]
            for c in workload.calls
        }
        return {
            "pod": pod.name,
            "seed": seed,
            "port": APP_PORT,
            "idle_timeout_s": self.idle_s,
            "workload": workload.model_dump(mode="json"),
            "callees": callees,
        }

    def load_targets(self) -> list[str]:
        """The entry service's pods, as the load generator calls them."""
        return [f"http://{self.ip(p)}:{APP_PORT}/" for p in self.callees(self.topology.client)]


@dataclass(frozen=True)
class ModePlan:
    dataplane: Dataplane
    apps: dict[str, dict[str, Any]]  # pod name -> app config
    targets: list[str]  # what the load generator calls


def plan_dataplane(
    scenario: Scenario, profile: Profile, topology: Topology, net: NetworkPlan, mode: Mode,
    run_dir: str, seed: int,
) -> ModePlan:  # fmt: skip
    builder = _Builder(scenario, profile, topology, net, mode, run_dir)
    apps = {p.name: builder.app_config(p, seed) for p in builder.app_pods()}
    return ModePlan(builder.build(), apps, builder.load_targets())
