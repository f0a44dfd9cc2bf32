"""The cost model's arithmetic, shared by every engine: CPU per pass, memory, money.

Its numbers are a profile's (`meshsim/profile.py`; profiles/README.md says where each
comes from). Each box a request crosses does a request pass and a response
pass on one worker; the `deferred_fraction` of its per-request CPU (telemetry) runs on
the same worker after the response has left, off the latency path but not off the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from meshsim.profile import Profile, ProxyCost
from meshsim.results import HOURS_PER_MONTH
from meshsim.scenario import Price, Scenario
from meshsim.topology import Node, Proxy

__all__ = [
    "PassCost",
    "Role",
    "background_shares",
    "cold_cpu",
    "pass_cost",
    "preempted_wait_s",
    "proxy_memory_mib",
    "usd_per_month",
    "wake_up_s",
]

Role = Literal["outbound", "inbound", "through"]
US = 1e-6
KIB = 1024.0


@dataclass(frozen=True)
class PassCost:
    """Mean CPU seconds of one box crossing, before per-pass variability."""

    request_s: float
    response_s: float
    deferred_s: float

    @property
    def total_s(self) -> float:
        return self.request_s + self.response_s + self.deferred_s


def per_request_us(cost: ProxyCost, role: Role) -> float:
    per = cost.cpu.per_request_us
    if role == "through":  # a waypoint terminates and originates
        return per.outbound.value + per.inbound.value
    return per.outbound.value if role == "outbound" else per.inbound.value


def pass_cost(cost: ProxyCost, role: Role, request_bytes: int, response_bytes: int) -> PassCost:
    base = per_request_us(cost, role) * US
    deferred = cost.cpu.deferred_fraction.value
    per_kib = cost.cpu.per_kib_us.value * US / KIB
    on_path_half = base * (1.0 - deferred) / 2.0
    return PassCost(
        request_s=on_path_half + per_kib * request_bytes,
        response_s=on_path_half + per_kib * response_bytes,
        deferred_s=base * deferred,
    )


def app_call_cpu_s(
    profile: Profile, request_bytes: int, response_bytes: int, *, client: bool = False
) -> float:
    """Kernel and HTTP-stack CPU at one end of a plain call: the server end (the app
    visited) or the client end (the app making the call)."""
    app = profile.app
    per_call = app.per_call_us.value if client else app.per_request_us.value
    return (per_call + app.per_kib_us.value * (request_bytes + response_bytes) / KIB) * US


def proxy_memory_mib(
    cost: ProxyCost, proxy: Proxy, connections: float, inflight: float, *, serving: bool = True
) -> float:
    """Base, configuration scope, connections, requests in flight, and the memory of
    accepting mTLS where the proxy serves inbound traffic."""
    mem = cost.memory
    kib = (
        mem.per_service_kib.value * proxy.scope_services
        + mem.per_endpoint_kib.value * proxy.scope_endpoints
        + mem.per_connection_kib.value * connections
        + mem.per_inflight_kib.value * inflight
    )
    return mem.base_mib.value + (mem.serving_mib.value if serving else 0.0) + kib / KIB


def usd_per_month(price: Price, cpu_cores: float, memory_mib: float) -> float:
    per_hour = cpu_cores * price.vcpu_hour_usd + memory_mib / KIB * price.gib_hour_usd
    return per_hour * HOURS_PER_MONTH


def background_shares(scenario: Scenario, nodes: tuple[Node, ...]) -> list[float]:
    """The share of each node's cores that other work takes (`cluster.background_cores`)."""
    busy = scenario.cluster.background_cores
    return [busy.get(n.name, 0.0) / n.cores for n in nodes]


def preempted_wait_s(
    rng: np.random.Generator, share: float | np.ndarray, mean_s: float, n: int
) -> np.ndarray:
    """What n wake-ups on a node wait for its other work: each finds a core taken with the
    probability `share` and then waits for the rest of that work's slice, exponential with
    mean `mean_s` (Poisson arrivals see the time average: PASTA)."""
    taken = rng.random(n) < share
    return np.where(taken, rng.exponential(mean_s, n), 0.0)


def wake_up_s(gap_s: float, wake_s: float, idle_s: float, shape: float) -> float:
    """The wait of a burst on a node whose cores have all been idle for gap_s: a core left
    idle drops into deep sleep after a time with scale idle_s and this shape (Weibull), and
    waking it from there takes wake_s: the expected wait is wake_s x P(asleep by gap_s).
    Both engines call this (the vector engine compiled), so they agree exactly."""
    if wake_s <= 0.0 or gap_s <= 0.0:
        return 0.0
    return wake_s * -math.expm1(-((gap_s / idle_s) ** shape))


def cold_cpu(
    profile: Profile, n_pods: int, proxies: tuple[Proxy, ...] | list[Proxy]
) -> tuple[list[float], list[float]]:
    """Each component's cold-cache CPU at full size (seconds) and the share of it spent
    after the burst, once the request has gone on (`cold_deferred_fraction`); pods first,
    then proxies in order: a burst of component k idle for a gap g since its last burst
    ended costs wake_up_s(g, size[k], idle, shape) more CPU."""
    app = profile.app
    costs = [profile.proxy(p.kind).cpu for p in proxies]
    size = [app.cold_cpu_us.value * US] * n_pods + [c.cold_cpu_us.value * US for c in costs]
    later = [app.cold_deferred_fraction.value] * n_pods + [
        c.cold_deferred_fraction.value for c in costs
    ]
    return size, later
