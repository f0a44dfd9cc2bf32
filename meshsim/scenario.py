"""The scenario schema: cluster, workloads, traffic, mesh modes. Frozen pydantic models.

A scenario is the whole input of a run. It never holds a cost: costs live in the
profile it names (see `meshsim.profile`). Cross-references (calls to services that
exist, placements that fit) are checked in `meshsim.loader`, which knows the file
and line of every value.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meshsim.distributions import Constant, Distribution

__all__ = [
    "MODES",
    "Call",
    "ClosedLoop",
    "Cluster",
    "LoadClient",
    "Mesh",
    "Mode",
    "NetworkDelays",
    "NodeSpec",
    "OpenLoop",
    "Placement",
    "Pool",
    "Price",
    "Scenario",
    "Traffic",
    "Workload",
]

Mode = Literal["none", "sidecar", "ambient", "ambient-waypoint"]
MODES: tuple[Mode, ...] = ("none", "sidecar", "ambient", "ambient-waypoint")

# Kubernetes object names: DNS-1123 labels.
Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
NonNeg = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
# Bounds far beyond any real cluster that keep a run's arrays and sums finite (a rate of
# 1e308 requests a second, or a payload of 1e20 bytes, passed validation and crashed the
# engines): Kubernetes supports 5,000 nodes and 150,000 pods.
MAX_NODES = 100_000
MAX_REPLICAS = 1_000_000
MAX_BYTES = 1 << 30  # a request or response body: 1 GiB
Bytes = Annotated[int, Field(ge=0, le=MAX_BYTES)]
DelayMs = Annotated[float, Field(ge=0, le=60_000)]  # a network hop: up to a minute


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)


class NodeSpec(_Model):
    """One node given explicitly; cores and memory default to the cluster's."""

    name: Name
    zone: Name | None = None
    cores: int | None = Field(default=None, gt=0)
    memory_gib: float | None = Field(default=None, gt=0)


class NetworkDelays(_Model):
    """One-way delay of a hop, by where its two ends run."""

    same_node_ms: DelayMs
    cross_node_ms: DelayMs
    cross_zone_ms: DelayMs


class Cluster(_Model):
    nodes: (
        Annotated[int, Field(le=MAX_NODES)] | Annotated[list[NodeSpec], Field(max_length=MAX_NODES)]
    ) = Field(description="Number of nodes (named node-1, node-2, ...) or an explicit list.")
    cores_per_node: int = Field(gt=0, le=100_000)
    memory_gib_per_node: float = Field(gt=0, le=1e6)
    zones: list[Name] = Field(
        default_factory=lambda: ["zone-a"],
        min_length=1,
        description="Zones; numbered nodes are assigned to them round-robin.",
    )
    max_pods_per_node: int = Field(default=110, gt=0, le=MAX_REPLICAS)
    network: NetworkDelays
    background_cores: dict[Name, NonNeg] = Field(
        default_factory=dict,
        description="Other work on a node's cores (cores busy, by node name): a CPU burst "
        "finds its core taken by it with this share of the node's cores and waits for it "
        "(profile: host.preempted_wait_us). A testbed measures it; nodes not named have none.",
    )

    @model_validator(mode="after")
    def _at_least_one_node(self) -> Cluster:
        count = self.nodes if isinstance(self.nodes, int) else len(self.nodes)
        if count < 1:
            raise ValueError("a cluster needs at least one node")
        return self


class Call(_Model):
    """A call a workload makes to another service while handling a request."""

    to: Name
    request_bytes: Bytes = 0
    response_bytes: Bytes = 0
    probability: float = Field(default=1.0, ge=0, le=1)
    count: int = Field(
        default=1,
        gt=0,
        description="Calls made each time: one after another, or all at once under the "
        "workload's parallel fanout.",
    )


class Placement(_Model):
    """Explicit placement: replicas go round-robin over these nodes."""

    nodes: list[Name] = Field(min_length=1)


class Workload(_Model):
    """A Deployment and the Service in front of it (same name)."""

    name: Name
    namespace: Name = "default"
    service_account: Name | None = None
    replicas: int = Field(default=1, gt=0, le=MAX_REPLICAS)
    placement: Literal["spread", "pack"] | Placement = "spread"
    cpu_millicores: int = Field(
        default=100, gt=0, description="CPU request used for scheduling (not usage)."
    )
    memory_mib: float = Field(
        default=64, ge=0, le=1e7, description="Working set of one app container."
    )
    service_time: Distribution = Field(
        default=Constant(value_ms=0),
        description="Time a request spends in the app off CPU (I/O, sleeps), ms.",
    )
    cpu_time: Distribution = Field(
        default=Constant(value_ms=0),
        description="CPU the app burns per request on a core of its node, ms.",
    )
    concurrency: int | None = Field(
        default=None, gt=0, description="Requests served at once per pod; none = unbounded."
    )
    sidecar_concurrency: int | None = Field(
        default=None,
        gt=0,
        description="Envoy worker threads of this workload's sidecars (Istio's "
        "proxy.istio.io/config concurrency); default: mesh.sidecar_concurrency.",
    )
    calls: list[Call] = Field(default_factory=list)
    fanout: Literal["sequential", "parallel"] = "sequential"

    @property
    def identity(self) -> str:
        sa = self.service_account or self.name
        return f"spiffe://cluster.local/ns/{self.namespace}/sa/{sa}"


class OpenLoop(_Model):
    rate_rps: float = Field(gt=0, le=1e8)
    arrivals: Literal["poisson", "constant"] = "poisson"

    def constant_index(self, t_s: float) -> int:
        """Constant arrivals fall at k gaps, k = 1, 2, ... (k x gap, not a running sum of
        gaps): the k of the first at or after t_s, one within a billionth of a gap of t_s
        counting as at it. Both engines count a window's arrivals with it."""
        gap = 1.0 / self.rate_rps
        return max(1, math.ceil(t_s / gap - 1e-9))


class ClosedLoop(_Model):
    """Locust-like users: send, wait for the response, think, repeat."""

    users: int = Field(gt=0, le=MAX_REPLICAS)
    think_time: Distribution


class LoadClient(_Model):
    """The load generator's pod. It is in the mesh, like Istio's fortio client."""

    namespace: Name = "load"
    service_account: Name = "loadgen"
    node: Name | None = Field(default=None, description="Node to run on; default: first node.")
    sidecar_concurrency: int | None = Field(
        default=None,
        gt=0,
        description="Envoy worker threads of its sidecar; default: mesh.sidecar_concurrency.",
    )

    @property
    def identity(self) -> str:
        return f"spiffe://cluster.local/ns/{self.namespace}/sa/{self.service_account}"


class Traffic(_Model):
    entry: Name
    request_bytes: Bytes = 0
    response_bytes: Bytes = 0
    open_loop: OpenLoop | None = None
    closed_loop: ClosedLoop | None = None
    duration_s: float = Field(gt=0, le=1e7)  # simulated seconds: up to 115 days
    warmup_s: NonNeg = 0
    client: LoadClient = Field(default_factory=LoadClient)

    @model_validator(mode="after")
    def _one_loop(self) -> Traffic:
        if (self.open_loop is None) == (self.closed_loop is None):
            raise ValueError("give exactly one of open_loop or closed_loop")
        if self.warmup_s >= self.duration_s:
            raise ValueError(
                f"warmup_s ({self.warmup_s:g}) must be shorter than duration_s "
                f"({self.duration_s:g})"
            )
        window = self.duration_s - self.warmup_s
        if self.open_loop is not None and self.open_loop.rate_rps * window < 1:
            raise ValueError(
                f"at {self.open_loop.rate_rps:g} requests per second, the measurement window "
                f"(duration_s - warmup_s: {window:g} s) holds no request: every figure would "
                "be empty"
            )
        return self


class Pool(_Model):
    """Connection pool settings shared by every mesh hop."""

    # Envoy's and ztunnel's default idle timeout is one hour.
    idle_timeout_s: Positive = 3600
    max_requests_per_connection: int | None = Field(default=None, gt=0)
    max_streams_per_connection: int = Field(
        default=100, gt=0, description="Concurrent HTTP/2 streams on one HBONE connection."
    )


class Mesh(_Model):
    modes: list[Mode] = Field(default_factory=lambda: list(MODES), min_length=1)
    sidecar_concurrency: int | None = Field(
        default=None, gt=0, description="Envoy worker threads; default from the profile."
    )
    waypoint_concurrency: int | None = Field(default=None, gt=0)
    ztunnel_workers: int | None = Field(default=None, gt=0)
    waypoint_scope: Literal["namespace", "service"] = "namespace"
    pool: Pool = Field(default_factory=Pool)
    # Istio issues workload certificates for 24 hours by default.
    cert_lifetime_h: float = Field(default=24, gt=0, le=1e6)

    @model_validator(mode="after")
    def _unique_modes(self) -> Mesh:
        seen: set[str] = set()
        for mode in self.modes:
            if mode in seen:
                raise ValueError(f"mode {mode!r} is listed twice")
            seen.add(mode)
        return self


class Price(_Model):
    vcpu_hour_usd: float = Field(ge=0, le=1e6)
    gib_hour_usd: float = Field(ge=0, le=1e6)
    source: str = Field(
        min_length=1, pattern=r"\S", description="Where the prices come from (not blank)."
    )


class Scenario(_Model):
    name: Name
    description: str = ""
    profile: str = Field(description="A profile in profiles/ by name, or a path to one.")
    seed: int = Field(default=0, ge=0)
    price: Price
    cluster: Cluster
    workloads: list[Workload] = Field(min_length=1)
    traffic: Traffic
    mesh: Mesh = Field(default_factory=Mesh)
