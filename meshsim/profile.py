"""The cost profile: every data-plane cost parameter, each with the source it came from.

DESIGN.md section 3. Engines read costs only from here; no cost constant lives in code.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from meshsim.distributions import MAX_CV

__all__ = [
    "AppCost",
    "CpuCost",
    "Directional",
    "Fraction",
    "HeldOut",
    "HeldOutError",
    "HostCost",
    "MemoryCost",
    "Profile",
    "ProxyCost",
    "RoundTrips",
    "Sourced",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)


class Sourced(_Model):
    """A number and where it comes from (a URL, a derivation, or a calibration dataset)."""

    value: float = Field(ge=0)
    source: str = Field(min_length=3, pattern=r"\S")  # blank is no source

    def __float__(self) -> float:
        return self.value


class Fraction(Sourced):
    """A sourced share: between 0 and 1."""

    value: float = Field(ge=0, le=1)


class RoundTrips(Sourced):
    """A sourced count of round trips to open an mTLS connection: at least one (the client's
    hello reaches the server and its answer comes back; the engines charge that one's two
    delays around the server's handshake CPU)."""

    value: float = Field(ge=1)


class Spread(Sourced):
    """A sourced coefficient of variation (sd / mean), within the bound the scenario's
    distributions have (meshsim.distributions.MAX_CV)."""

    value: float = Field(ge=0, le=MAX_CV)


class Workers(Sourced):
    """A sourced count of worker threads: a whole number, at least one."""

    value: float = Field(ge=1, le=4096, multiple_of=1)


class Directional(_Model):
    """A cost that differs on the client (outbound) and server (inbound) side."""

    outbound: Sourced
    inbound: Sourced


class Handshake(_Model):
    client: Sourced
    server: Sourced


def _no_cold_cost(kind: str) -> Sourced:
    return Sourced(
        value=0,
        source=f"default: no cold-cache cost; a {kind} burst costs the same however long "
        f"the {kind} has been idle",
    )


_COLD_DESCRIPTION = (
    "More CPU for a burst of a component (an app pod, a proxy) that has run nothing for a "
    "while: its code and data are read back into the core's caches. It grows with the gap g "
    "since its last burst ended as the wake-up does: cold_cpu_us x (1 - exp(-(g / "
    "host.wake_up_idle_ms) ^ host.wake_up_shape)) (profiles/README.md#cold-caches)."
)


def _cold_on_the_path(kind: str) -> Fraction:
    return Fraction(
        value=0,
        source=f"default: the {kind}'s cold-cache CPU is all spent before the request goes on",
    )


_COLD_DEFERRED_DESCRIPTION = (
    "Share of the cold-cache CPU (cold_cpu_us) spent after the burst that found the caches "
    "cold, once the request has gone on: it still takes the node's core (and a proxy's "
    "worker) but adds no latency of its own (profiles/README.md#cold-caches)."
)


class CpuCost(_Model):
    per_request_us: Directional = Field(
        description="CPU per request through the box, request and response passes together."
    )
    per_kib_us: Sourced = Field(description="CPU per KiB of request or response payload.")
    deferred_fraction: Fraction = Field(
        description="Share of per-request CPU spent after the response is sent (telemetry)."
    )
    cv: Spread = Field(description="Coefficient of variation of one pass's CPU time.")
    handshake_us: Handshake = Field(description="CPU for one new mTLS connection, each side.")
    cross_node_us: Sourced = Field(
        description="More CPU per request at each end of a link between two proxies on "
        "different nodes (the packets' path through the node network), request and "
        "response passes together."
    )
    cold_cpu_us: Sourced = Field(default=_no_cold_cost("proxy"), description=_COLD_DESCRIPTION)
    cold_deferred_fraction: Fraction = Field(
        default=_cold_on_the_path("proxy"), description=_COLD_DEFERRED_DESCRIPTION
    )


class MemoryCost(_Model):
    base_mib: Sourced
    per_service_kib: Sourced = Field(description="Per service in the proxy's configuration.")
    per_endpoint_kib: Sourced = Field(description="Per endpoint (pod) in its configuration.")
    per_connection_kib: Sourced
    per_inflight_kib: Sourced = Field(description="Per request in flight through the proxy.")
    serving_mib: Sourced = Field(
        description="Memory of accepting mTLS (TLS server context, session cache), paid by a "
        "proxy that serves inbound traffic: every proxy but the sidecar of a pod that serves "
        "nothing (the load generator's)."
    )


class ProxyCost(_Model):
    """Costs of one data-plane component kind (sidecar, ztunnel, waypoint)."""

    workers: Workers = Field(description="Default worker threads (Envoy concurrency).")
    worker_model: Literal["pinned", "shared"] = Field(
        description="pinned: each connection stays on one worker (Envoy); "
        "shared: work-stealing runtime (ztunnel on tokio)."
    )
    protocol: Literal["http1", "http2"] = Field(
        description="Upstream connections: http1 carries one request at a time, "
        "http2 (HBONE) multiplexes streams."
    )
    cpu: CpuCost
    hop_latency_us: Sourced = Field(
        description="Latency added per pass outside CPU: interception, socket copies."
    )
    hop_latency_per_kib_us: Sourced = Field(
        description="Latency added per pass per KiB of the payload it carries, outside CPU: "
        "buffers handed from process to process, each waiting to be scheduled."
    )
    handshake_round_trips: RoundTrips = Field(
        description="Round trips to open one mTLS connection (at least 1)."
    )
    memory: MemoryCost
    idle_millicores: Sourced = Field(description="CPU used with no traffic (xDS, stats).")


class AppCost(_Model):
    """The baseline every mode pays: the app's networking stack, no mesh."""

    per_request_us: Sourced = Field(
        description="Kernel + HTTP stack CPU per request at its server end (the app it visits)."
    )
    per_call_us: Sourced = Field(
        description="Kernel + HTTP stack CPU per call at its client end (the app making it)."
    )
    per_kib_us: Sourced
    per_connection_kib: Sourced
    per_inflight_kib: Sourced
    connect_round_trips: Sourced = Field(description="Round trips to open a plain TCP connection.")
    idle_millicores: Sourced = Field(
        description="CPU of one app pod with no traffic (its runtime: event loop, timers)."
    )
    cold_cpu_us: Sourced = Field(default=_no_cold_cost("app"), description=_COLD_DESCRIPTION)
    cold_deferred_fraction: Fraction = Field(
        default=_cold_on_the_path("app"), description=_COLD_DEFERRED_DESCRIPTION
    )
    visit_latency_us: Sourced = Field(
        description="Mean latency of one visit to an app outside its CPU (the HTTP stack, "
        "event loop and host scheduler), added to the scenario's service time."
    )
    visit_latency_cv: Spread = Field(
        description="Coefficient of variation of that latency (lognormal): its tail."
    )
    visit_latency_floor_us: Sourced = Field(
        default=Sourced(
            value=0,
            source="default: no fixed part; the visit latency is all lognormal "
            "(profiles/README.md#the-app-stack)",
        ),
        description="A fixed part of each visit's latency outside its CPU, added to the "
        "lognormal one: the narrow body of a latency distribution whose tail is long.",
    )
    call_latency_us: Sourced = Field(
        description="Latency of each call an app makes, at its client end, outside its CPU "
        "(the HTTP client's request and response handling on the event loop), added to the "
        "visit's wait."
    )


class HostCost(_Model):
    """How the host delays bursts: its other work (a scenario's `cluster.background_cores`)
    and waking its idle cores."""

    preempted_wait_us: Sourced = Field(
        description="Mean wait of a CPU burst that finds its core running other work: the "
        "rest of that work's scheduler slice."
    )
    contention: Fraction = Field(
        description="Share of the other work that competes with a running burst for its "
        "core: a burst runs at 1 - contention x (the other work's share) of the core's speed "
        "(1: every burst time-shares with it; 0: the scheduler runs bursts first)."
    )
    stall_probability: Fraction = Field(
        default=Fraction(value=0, source="default: no stalls; the host holds up no wake-up"),
        description="Probability that the host holds up a wake-up (an app woken by a "
        "request or by a call's response; a proxy pass) for reasons outside the scenario: "
        "another tenant of the machine, a virtual CPU descheduled. The stall is exponential "
        "with mean stall_us. Unlike preempted_wait_us it does not depend on the node's "
        "measured other work (profiles/README.md#stalls).",
    )
    stall_us: Sourced = Field(
        default=Sourced(value=0, source="default: no stalls"),
        description="Mean length of one stall (exponential).",
    )
    wake_up_us: Sourced = Field(
        default=Sourced(
            value=0,
            source="default: no wake-up latency; a node's idle cores start a burst at once",
        ),
        description="Latency of starting a burst on a node whose cores have all been idle "
        "long enough to sleep deeply (CPU idle states, a halted virtual CPU): the core is "
        "woken before the burst runs. It grows with the node's idle gap (wake_up_idle_ms).",
    )
    wake_up_idle_ms: Sourced = Field(
        default=Sourced(
            value=15.5,
            source="measured: the no-mesh two-pod shape's p50 at 25 to 200 requests per "
            "second on the local testbed (results/calibration/testbed-chain/idle-gap/), fitted "
            "with the shape 3 (profiles/README.md#waking-idle-nodes)",
        ),
        description="Idle time scale of the deep sleep: a node idle for a gap g pays "
        "wake_up_us x (1 - exp(-(g / wake_up_idle_ms) ^ wake_up_shape)).",
    )
    wake_up_shape: Sourced = Field(
        default=Sourced(
            value=3.0,
            source="measured: the no-mesh two-pod shape's p50 at 25 to 200 requests per "
            "second on the local testbed (results/calibration/testbed-chain/idle-gap/): the "
            "wait sets in between 9 and 19 ms idle (profiles/README.md#waking-idle-nodes)",
        ),
        description="How sharply the deep sleep sets in around wake_up_idle_ms (1: as an "
        "exponential; larger: more like a threshold).",
    )


# Linux's EEVDF scheduler gives a CPU-bound task a slice of base_slice (0.75 ms) times
# 1 + log2(CPUs) before another task may run: 1.5 ms on 2 CPUs, on average half of it left.
_DEFAULT_HOST = HostCost(
    preempted_wait_us=Sourced(
        value=750.0,
        source="derived: half the slice Linux's EEVDF scheduler gives a CPU-bound task on a "
        "2-CPU host (sysctl_sched_base_slice 0.75 ms x (1 + log2 2), kernel/sched/fair.c)",
    ),
    contention=Fraction(
        value=0.5,
        source="assumption: halfway between time-sharing every burst with the other work (1) "
        "and running every burst ahead of it (0): Linux favours a task woken after sleeping, "
        "as these bursts are, up to its lag",
    ),
)


class HeldOutError(_Model):
    """One figure's error on the held-out settings: |simulated - measured| / measured."""

    median: float = Field(ge=0)
    worst: float = Field(ge=0)
    figures: int = Field(ge=1, description="How many figures the two are over.")


class HeldOut(_Model):
    """How far a fitted profile's predictions fell from measured runs it was not fitted
    to, as `meshsim calibrate` found them: `meshsim run` prints it beside its results."""

    table: str = Field(min_length=3, description="Where every held-out figure is listed.")
    split: str = Field(min_length=3, description="Which settings were held out, and how.")
    numbers: str = Field(
        min_length=16,
        description="The fingerprint of the numbers this error was measured with "
        "(Profile.numbers_fingerprint): a profile whose numbers differ is refused.",
    )
    errors: dict[str, HeldOutError] = Field(
        description="By figure (p50, p90, p99, throughput, cpu, memory, and cpu/KIND, "
        "memory/KIND per component kind)."
    )


class Profile(_Model):
    name: str
    description: str = ""
    held_out: HeldOut | None = Field(
        default=None,
        description="A fitted profile's error on the settings held out of its fit (written "
        "by meshsim calibrate; none for a profile not fitted to measurements).",
    )
    app: AppCost
    sidecar: ProxyCost
    ztunnel: ProxyCost
    waypoint: ProxyCost
    host: HostCost = Field(
        default=_DEFAULT_HOST,
        description="The nodes' other work (only where a scenario gives its nodes background "
        "work) and how their idle cores wake up.",
    )

    def proxy(self, kind: str) -> ProxyCost:
        cost: ProxyCost = getattr(self, kind)
        return cost

    def numbers_fingerprint(self) -> str:
        """A hash of every number and setting of the profile, not of its name, description,
        sources or held-out error: what a held-out error is about."""

        def numbers(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: numbers(v) for k, v in node.items() if k != "source"}
            return node

        doc = self.model_dump(mode="json", exclude={"name", "description", "held_out"})
        text = json.dumps(numbers(doc), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
