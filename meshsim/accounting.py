"""From what an engine counted inside the measurement window to a ModeResult.

Engines differ in how they simulate; what they count is the same, per component index
(the topology's pods first, then the mode's proxies): CPU seconds, request-seconds in
flight, connection-seconds and handshakes, all inside the window. This module turns
those tallies into figures once, so every engine reports them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from meshsim.costs import KIB, proxy_memory_mib, usd_per_month
from meshsim.profile import Profile
from meshsim.results import (
    COMPONENT_CLASSES,
    ByComponent,
    ComponentUsage,
    LatencyHistogram,
    LatencyMs,
    ModeResult,
    ProxyCounts,
    latency_summary,
)
from meshsim.scenario import Scenario
from meshsim.topology import PROXY_KINDS, Proxy, Topology

__all__ = ["WindowTally", "component_usages", "mode_result"]


@dataclass(frozen=True)
class WindowTally:
    """Per-component counts inside the window; index = pod index, then pods + proxy index."""

    cpu_s: Sequence[float] | np.ndarray
    in_flight_s: Sequence[float] | np.ndarray
    connection_s: Sequence[float] | np.ndarray
    handshakes: Sequence[int] | np.ndarray


def component_usages(
    scenario: Scenario,
    profile: Profile,
    topology: Topology,
    proxies: Sequence[Proxy],
    tally: WindowTally,
    window_s: float,
) -> list[ComponentUsage]:
    """Each app pod and proxy's CPU, memory, handshakes and connections over the window."""
    nodes = topology.nodes
    app = profile.app
    workloads = {w.name: w for w in scenario.workloads}
    out = []
    for pod in topology.pods:
        i = pod.index
        workload = workloads.get(pod.workload)
        conns, in_flight = tally.connection_s[i] / window_s, tally.in_flight_s[i] / window_s
        kind: Literal["app", "loadgen"] = "app" if workload else "loadgen"
        memory = 0.0
        if workload is not None:
            kib = app.per_connection_kib.value * conns + app.per_inflight_kib.value * in_flight
            memory = workload.memory_mib + kib / KIB
        out.append(
            ComponentUsage(
                name=pod.name,
                kind=kind,
                node=nodes[pod.node].name,
                # the load generator's own CPU is not part of the cluster's bill
                cpu_cores=float(tally.cpu_s[i]) / window_s + app.idle_millicores.value / 1000.0
                if workload
                else 0.0,
                memory_mib=float(memory),
                handshakes=int(tally.handshakes[i]),
                connections_open=float(conns),
            )
        )
    n_pods = len(topology.pods)
    # a sidecar serves what its pod serves: the load generator's serves nothing
    client_pod = topology.client.name
    for proxy in proxies:
        i = n_pods + proxy.index
        cost = profile.proxy(proxy.kind)
        conns, in_flight = tally.connection_s[i] / window_s, tally.in_flight_s[i] / window_s
        out.append(
            ComponentUsage(
                name=proxy.name,
                kind=proxy.kind,
                node=nodes[proxy.node].name,
                cpu_cores=float(tally.cpu_s[i]) / window_s + cost.idle_millicores.value / 1000.0,
                memory_mib=proxy_memory_mib(
                    cost,
                    proxy,
                    float(conns),
                    float(in_flight),
                    serving=not (proxy.kind == "sidecar" and proxy.key == client_pod),
                ),
                handshakes=int(tally.handshakes[i]),
                connections_open=float(conns),
            )
        )
    return out


def mode_result(
    scenario: Scenario,
    proxies: Sequence[Proxy],
    usages: list[ComponentUsage],
    *,
    latencies_s: np.ndarray | None = None,
    latency: tuple[LatencyMs, int] | None = None,
    unfinished: int,
    window_s: float,
    tls_handshakes: int,
    connection_seconds: float,
    histogram: LatencyHistogram | None = None,
) -> ModeResult:
    """The figures of one mode: latency of the window's requests, sums by component class.

    Latency comes either as the window's latencies (`latencies_s`) or, from an engine that
    keeps only a histogram, as its summary and the count of completed requests (`latency`)
    together with that `histogram`."""
    if latencies_s is not None:
        summary, completed = latency_summary(latencies_s), len(latencies_s)
        histogram = histogram or LatencyHistogram.from_latencies_s(latencies_s)
    elif latency is not None and histogram is not None:
        summary, completed = latency
    else:
        raise ValueError("give latencies_s, or latency together with histogram")
    cpu = {k: sum(u.cpu_cores for u in usages if u.kind == k) for k in COMPONENT_CLASSES}
    mem = {k: sum(u.memory_mib for u in usages if u.kind == k) for k in COMPONENT_CLASSES}
    cpu_cores, memory = ByComponent.from_parts(cpu), ByComponent.from_parts(mem)
    counts = {k: sum(1 for p in proxies if p.kind == k) for k in PROXY_KINDS}
    return ModeResult(
        requests=completed + unfinished,
        errors=unfinished,
        throughput_rps=completed / window_s,
        latency_ms=summary,
        cpu_cores=cpu_cores,
        memory_mib=memory,
        handshakes_per_s=tls_handshakes / window_s,
        connections_open=connection_seconds / window_s,
        proxies=ProxyCounts(**counts),
        cost_usd_month=usd_per_month(scenario.price, cpu_cores.total, memory.total),
        window_s=window_s,
        components=usages,
        histogram=histogram,
    )
