"""The profile parameters a calibration fits, which figures inform them, and how to set them.

A parameter is named by its path in the profile (`sidecar.cpu.per_kib_us`). Each belongs
to one fitting stage by the figures that carry it: CPU parameters move the measured CPU
of components, memory parameters their memory, latency parameters the percentiles.
A parameter only matters for modes that deploy its component kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from meshsim.profile import Profile

__all__ = [
    "KINDS_IN_MODE",
    "PARAMETERS",
    "Parameter",
    "Stage",
    "get_value",
    "parameters_for",
    "sourced_paths",
    "with_values",
    "zero_cost",
]

Stage = Literal["cpu", "memory", "latency"]
Kind = Literal["host", "app", "sidecar", "ztunnel", "waypoint"]
STAGES: tuple[Stage, ...] = ("cpu", "memory", "latency")

# "host": the nodes' other work, which every mode's bursts wait for
KINDS_IN_MODE: dict[str, frozenset[str]] = {
    "none": frozenset({"host", "app"}),
    "sidecar": frozenset({"host", "app", "sidecar"}),
    "ambient": frozenset({"host", "app", "ztunnel"}),
    "ambient-waypoint": frozenset({"host", "app", "ztunnel", "waypoint"}),
}


@dataclass(frozen=True)
class Parameter:
    path: str
    stage: Stage
    unit: str
    typical: float  # a plausible magnitude: finite-difference steps and scales start here
    upper: float = float("inf")
    # Where the prior is 0, the fit starts here instead: a term the prior leaves out (an
    # app-stack latency) would otherwise hide the effect of its spread from the fit.
    start: float | None = None
    # More starting points: the stage is fitted again from the k-th of them (every
    # parameter that has a k-th moved to it, the others at their start) and the fit with
    # the lowest cost is kept. For parameters whose effects trade off along a ridge, where
    # the solver stops at whichever end it meets first.
    alternatives: tuple[float, ...] = ()

    @property
    def kind(self) -> str:
        return self.path.split(".", 1)[0]

    def matters_for(self, mode: str) -> bool:
        return self.kind in KINDS_IN_MODE[mode]


def _proxy_parameters(kind: str) -> list[Parameter]:
    return [
        Parameter(f"{kind}.cpu.per_request_us.outbound", "cpu", "us", 100.0),
        Parameter(f"{kind}.cpu.per_request_us.inbound", "cpu", "us", 100.0),
        Parameter(f"{kind}.cpu.per_kib_us", "cpu", "us", 5.0),
        Parameter(f"{kind}.cpu.handshake_us.client", "cpu", "us", 500.0),
        Parameter(f"{kind}.cpu.handshake_us.server", "cpu", "us", 500.0),
        Parameter(f"{kind}.cpu.cross_node_us", "cpu", "us", 50.0),
        Parameter(f"{kind}.idle_millicores", "cpu", "millicores", 2.0),
        # after the idle CPU: where the loads cannot tell them apart (two load levels, both
        # add a constant at one and nothing at the other), the idle CPU is the one kept
        Parameter(f"{kind}.cpu.cold_cpu_us", "cpu", "us", 100.0),
        Parameter(f"{kind}.memory.base_mib", "memory", "MiB", 10.0),
        Parameter(f"{kind}.memory.per_service_kib", "memory", "KiB", 50.0),
        Parameter(f"{kind}.memory.per_endpoint_kib", "memory", "KiB", 10.0),
        Parameter(f"{kind}.memory.per_connection_kib", "memory", "KiB", 32.0),
        Parameter(f"{kind}.memory.per_inflight_kib", "memory", "KiB", 16.0),
        Parameter(f"{kind}.memory.serving_mib", "memory", "MiB", 5.0),
        Parameter(f"{kind}.hop_latency_us", "latency", "us", 20.0),
        Parameter(f"{kind}.hop_latency_per_kib_us", "latency", "us", 2.0),
        Parameter(f"{kind}.cpu.deferred_fraction", "latency", "fraction", 0.3, upper=1.0),
        Parameter(f"{kind}.cpu.cv", "latency", "ratio", 0.5, upper=5.0),
    ]


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("app.per_request_us", "cpu", "us", 100.0),
    Parameter("app.per_call_us", "cpu", "us", 100.0),
    Parameter("app.per_kib_us", "cpu", "us", 5.0),
    Parameter("app.idle_millicores", "cpu", "millicores", 5.0),
    # more CPU after the apps were idle on the node (profiles/README.md#cold-caches)
    Parameter("app.cold_cpu_us", "cpu", "us", 300.0),
    Parameter("app.per_connection_kib", "memory", "KiB", 16.0),
    Parameter("app.per_inflight_kib", "memory", "KiB", 8.0),
    Parameter("app.visit_latency_us", "latency", "us", 1000.0, start=1000.0),
    Parameter("app.visit_latency_cv", "latency", "ratio", 0.5, upper=20.0, start=0.5),
    Parameter("app.visit_latency_floor_us", "latency", "us", 500.0, start=300.0),
    Parameter("app.call_latency_us", "latency", "us", 500.0, start=500.0),
    Parameter("host.preempted_wait_us", "latency", "us", 500.0),
    Parameter("host.contention", "latency", "fraction", 0.5, upper=1.0),
    # the host's rare stalls of any wake-up (profiles/README.md#stalls): both start above 0,
    # as either at 0 hides the other's effect. Rare and long or frequent and short add the
    # same mean: the fit is started at three points along that ridge (25 µs per wake-up)
    Parameter(
        "host.stall_probability",
        "latency",
        "fraction",
        0.01,
        upper=1.0,
        start=0.005,
        alternatives=(0.002, 0.01),
    ),
    Parameter(
        "host.stall_us", "latency", "us", 5000.0, start=5000.0, alternatives=(12500.0, 2500.0)
    ),
    # waking idle nodes: the size of the wait. Its idle time scale and shape are measured
    # directly (a sweep of load levels), not fitted: the grid's gaps (4, 9 and 19 ms) lie
    # on the rise of the curve, where a size and a time scale trade off against each other
    Parameter("host.wake_up_us", "latency", "us", 500.0, start=500.0),
    # how much of the apps' cold-cache CPU the request waits for: it is CPU (the cpu stage
    # fits its size), and where it falls shows only in the latencies
    Parameter("app.cold_deferred_fraction", "latency", "fraction", 0.5, upper=1.0),
    *_proxy_parameters("sidecar"),
    *_proxy_parameters("ztunnel"),
    *_proxy_parameters("waypoint"),
)
BY_PATH = {p.path: p for p in PARAMETERS}


def parameters_for(stage: Stage, modes: Sequence[str]) -> list[Parameter]:
    """The parameters of a stage that matter for at least one of these modes."""
    return [p for p in PARAMETERS if p.stage == stage and any(p.matters_for(m) for m in modes)]


def _sourced(doc: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not (isinstance(node, dict) and set(node) == {"value", "source"}):
        raise KeyError(f"'{path}' is not a sourced number of the profile")
    return node


def get_value(profile: Profile, path: str) -> float:
    node: Any = profile
    for part in path.split("."):
        node = getattr(node, part)
    return float(node.value)


def with_values(
    profile: Profile, values: dict[str, float], sources: dict[str, str] | None = None
) -> Profile:
    """A copy of the profile with these parameters set (and, where given, their sources);
    any held-out error it carried was its numbers' and goes with them."""
    doc = profile.model_dump()
    if values:
        doc["held_out"] = None
    for path, value in values.items():
        node = _sourced(doc, path)
        node["value"] = float(value)
        if sources and path in sources:
            node["source"] = sources[path]
    return Profile.model_validate(doc)


def sourced_paths(doc: Any, prefix: str = "") -> list[str]:
    """The dotted paths of every sourced number ({value, source}) in a profile document."""
    if isinstance(doc, dict):
        if set(doc) == {"value", "source"}:
            return [prefix]
        return [
            p for k, v in doc.items() for p in sourced_paths(v, f"{prefix}.{k}" if prefix else k)
        ]
    return []


def zero_cost(profile: Profile, *, workers: int, source: str) -> Profile:
    """The profile with every cost it states zeroed, so that only what a scenario says takes
    time (a plain queueing network: the closed-form tests, the bench's reference networks);
    each proxy with `workers` workers, and an mTLS handshake at its least, one round trip.
    What the profile leaves to the defaults (the host's) stays."""
    values = dict.fromkeys(sourced_paths(profile.model_dump(exclude_unset=True)), 0.0)
    sources = dict.fromkeys(values, source)
    for kind in ("sidecar", "ztunnel", "waypoint"):
        values[f"{kind}.workers"] = workers
        values[f"{kind}.handshake_round_trips"] = 1
        sources[f"{kind}.handshake_round_trips"] = f"{source} (the least)"
    return with_values(profile, values, sources)
