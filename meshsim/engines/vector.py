"""The vector engine: the DES engine's model computed on numpy arrays, window by window.

How it works (DESIGN.md section 4):
- The call graph is unrolled once into a tree of *call slots* (entry call, each call
  it may make, and so on). In a window, every entry request draws which slots it uses,
  the pod each call goes to, proxy workers, CPU multipliers and app times, as arrays.
- Times are propagated through each slot's hops with array arithmetic: link delays,
  hop latency, proxy passes, handshakes, app service, fan-out (sequential calls chain,
  parallel calls join at their maximum). No Python loop runs per request.
- Every queue visit (a proxy pass holding a worker across its core bursts, an app's
  core burst, an app concurrency slot) is gathered into flat arrays and all queues are
  solved at once by a compiled kernel (`kernels.solve_visits`) given the arrival times.
  Arrival times depend on upstream waits, so propagation and solving alternate (a
  damped fixed point) until the window's mean and p99 latency settle. Where queues are
  fed forward (one station, a tandem) this is exact once the sweeps have settled.
- Connection pools run through a compiled event kernel (`kernels.pool_events`) over the
  acquire/release times of a sweep; the handshakes they decide join the later sweeps.
- Queue and pool state are carried from window to window, so memory depends on the
  window, not on the simulated duration.

Approximations (bounded by tests/test_engine_agreement.py against the DES engine):
- Sweeps stop when the window's mean and p99 latency move less than `_SETTLED_MEAN`
  and `_SETTLED_P99` between sweeps; single waits may still differ from an exact run.
- Connection reuse is decided on the times of sweep `_POOL_SWEEP`; later sweeps move
  times by queueing only, which is far shorter than pool timeouts.
- Visits of one window that arrive after it ends are queued with the next window's;
  requests of the next window never delay the previous one's.
- Latency percentiles come from raw latencies up to `_RAW_LATENCIES`, beyond that from
  a histogram with 0.12 % wide bins.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from meshsim.accounting import WindowTally, component_usages, mode_result
from meshsim.costs import KIB, Role, app_call_cpu_s, pass_cost
from meshsim.distributions import Constant, Distribution
from meshsim.engines.des import child_rng
from meshsim.engines.kernels import (
    CORE,
    HOLD,
    PASS,
    finish_pools,
    lookup_or_insert,
    pool_events,
    pool_slots,
    resort,
    solve_visits,
)
from meshsim.profile import Profile
from meshsim.results import (
    LatencyHistogram,
    LatencyMs,
    ModeResult,
    latency_summary,
)
from meshsim.scenario import Mode, Scenario
from meshsim.topology import ProxyKind, Topology

__all__ = ["VectorStats", "expected_queue_visits", "simulate_mode"]

Progress = Callable[[float], None]
_MS = 1e-3
# Sweeps stop when the window's mean and p99 latency move by less than these fractions
# (individual waits may still swap places between sweeps; the distribution has settled).
_SETTLED_MEAN = 1e-3
_SETTLED_P99 = 5e-3
_MAX_SWEEPS = 12
_MAX_USER_SWEEPS = 40
# Pools try the times of sweeps 0 and 1 (then are rolled back), and decide for good on
# sweep 2's, which carry the handshakes the trials opened (their delay makes requests overlap).
_POOL_SWEEP = 2
# From sweep _DAMP_FROM on, waits handed to the next sweep are this mix of the previous and
# the new solve's: plain sweeps can swing between two states when bursts of requests meet
# at a worker. Earlier sweeps are not damped, so feed-forward queues settle at once.
_DAMPING = 0.5
_DAMP_FROM = 3
_VISITS_PER_WINDOW = 2_000_000
_RAW_LATENCIES = 2_000_000
_FINE_BINS_PER_DECADE = 2000
_MAX_CALL_SLOTS = 5000
_USER_CYCLES = 3

_BOXES: dict[Mode, tuple[tuple[ProxyKind, Role], ...]] = {
    "none": (),
    "sidecar": (("sidecar", "outbound"), ("sidecar", "inbound")),
    "ambient": (("ztunnel", "outbound"), ("ztunnel", "inbound")),
    "ambient-waypoint": (("ztunnel", "outbound"), ("waypoint", "through"), ("ztunnel", "inbound")),
}


@dataclass
class VectorStats:
    """What one run did, for benchmarks: queue visits (requests for a worker, a core or a
    slot, as the DES engine makes them), sweeps and windows."""

    queue_visits: int = 0
    sweeps: int = 0
    windows: int = 0


# ---- the call tree ----------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """One call a request may make: the entry call, or a call of a call, unrolled."""

    index: int
    parent: int  # -1 for the entry call
    service: str
    request_bytes: int
    response_bytes: int
    probability: float
    children: tuple[int, ...]
    parallel: bool


def _unroll(scenario: Scenario) -> list[_Slot]:
    workloads = {w.name: w for w in scenario.workloads}
    traffic = scenario.traffic
    raw: list[dict[str, object]] = []

    def add(parent: int, service: str, req: int, resp: int, prob: float) -> int:
        index = len(raw)
        if index >= _MAX_CALL_SLOTS:
            raise ValueError(
                f"the call graph unrolls into more than {_MAX_CALL_SLOTS} calls per request; "
                "use the DES engine"
            )
        raw.append({"parent": parent, "service": service, "req": req, "resp": resp, "p": prob})
        kids = []
        for call in workloads[service].calls:
            for _ in range(call.count):
                kids.append(
                    add(index, call.to, call.request_bytes, call.response_bytes, call.probability)
                )
        raw[index]["kids"] = tuple(kids)
        return index

    add(-1, traffic.entry, traffic.request_bytes, traffic.response_bytes, 1.0)
    slots = []
    for i, r in enumerate(raw):
        w = workloads[str(r["service"])]
        kids: tuple[int, ...] = r["kids"]  # type: ignore[assignment]
        slots.append(
            _Slot(
                i,
                int(r["parent"]),  # type: ignore[call-overload]
                str(r["service"]),
                int(r["req"]),  # type: ignore[call-overload]
                int(r["resp"]),  # type: ignore[call-overload]
                float(r["p"]),  # type: ignore[arg-type]
                kids,
                w.fanout == "parallel",
            )
        )
    return slots


def expected_queue_visits(scenario: Scenario, mode: Mode) -> float:
    """Rough count of queue visits a run makes: for picking an engine, not for results."""
    slots = _unroll(scenario)
    reach = [0.0] * len(slots)
    for s in slots:
        reach[s.index] = s.probability * (reach[s.parent] if s.parent >= 0 else 1.0)
    per_call = 1 + 4 * len(_BOXES[mode])
    traffic = scenario.traffic
    if traffic.open_loop is not None:
        requests = traffic.open_loop.rate_rps * traffic.duration_s
    else:
        assert traffic.closed_loop is not None
        think = max(traffic.closed_loop.think_time.mean_s, 1e-3)
        requests = traffic.closed_loop.users * traffic.duration_s / think
    return requests * sum(reach) * per_call


# ---- the static model of one mode ---------------------------------------------------


@dataclass(frozen=True)
class _BoxSpec:
    kind: ProxyKind
    role: Role
    pinned: bool
    workers: int
    hop_s: float
    cv: float
    http2: bool
    round_trips: float
    hs_client_s: float
    hs_server_s: float
    hop_per_kib_s: float


@dataclass
class _Model:
    """Arrays that describe where everything is and which queue each box uses."""

    scenario: Scenario
    profile: Profile
    topology: Topology
    mode: Mode
    boxes: tuple[_BoxSpec, ...]
    n_comp: int
    pod_node: np.ndarray
    pod_identity: np.ndarray
    node_zone: np.ndarray
    comp_of_box: dict[str, np.ndarray]  # "sidecar" by pod, "ztunnel" by node, "waypoint" by svc
    comp_node: np.ndarray
    worker_base: np.ndarray  # first worker station of a proxy component
    slot_station: np.ndarray  # by pod; -1 when the app has no concurrency limit
    first_server: np.ndarray
    servers: np.ndarray
    service_pods: dict[str, np.ndarray]
    service_index: dict[str, int]
    n_owner: int


def _build_model(scenario: Scenario, profile: Profile, topology: Topology, mode: Mode) -> _Model:
    proxies = topology.proxies(mode, scenario, profile)
    n_pods = len(topology.pods)
    n_comp = n_pods + len(proxies)
    nodes = topology.nodes
    zones = {z: i for i, z in enumerate(sorted({n.zone for n in nodes}))}
    pod_node = np.array([p.node for p in topology.pods], np.int64)
    identities: dict[str, int] = {}
    pod_identity = np.array(
        [identities.setdefault(p.identity, len(identities)) for p in topology.pods], np.int64
    )
    services = list(topology.services)
    service_index = {s: i for i, s in enumerate(services)}
    comp_node = np.concatenate([pod_node, np.array([p.node for p in proxies], np.int64)])
    servers = [n.cores for n in nodes]  # stations 0..N-1: node cores
    worker_base = np.full(n_comp, -1, np.int64)
    workers_of_kind: dict[str, int] = {}
    sidecar = np.full(n_pods, -1, np.int64)
    ztunnel = np.full(len(nodes), -1, np.int64)
    waypoint = np.full(len(services), -1, np.int64)
    pod_by_name = {p.name: p.index for p in topology.pods}
    scope = scenario.mesh.waypoint_scope
    for proxy in proxies:
        comp = n_pods + proxy.index
        worker_base[comp] = len(servers)
        workers_of_kind[proxy.kind] = proxy.workers
        if profile.proxy(proxy.kind).worker_model == "pinned":
            servers.extend([1] * proxy.workers)
        else:
            servers.append(proxy.workers)
        if proxy.kind == "sidecar":
            sidecar[pod_by_name[proxy.key]] = comp
        elif proxy.kind == "ztunnel":
            ztunnel[proxy.node] = comp
        else:
            for s in services:
                if topology.waypoint_key(s, scope) == proxy.key:
                    waypoint[service_index[s]] = comp
    workloads = {w.name: w for w in scenario.workloads}
    slot_station = np.full(n_pods, -1, np.int64)
    for pod in topology.pods:
        w = workloads.get(pod.workload)
        if w is not None and w.concurrency:
            slot_station[pod.index] = len(servers)
            servers.append(w.concurrency)
    server_counts = np.array(servers, np.int64)
    first_server = np.concatenate([[0], np.cumsum(server_counts)[:-1]]).astype(np.int64)
    boxes = []
    for kind, role in _BOXES[mode]:
        cost = profile.proxy(kind)
        boxes.append(
            _BoxSpec(
                kind,
                role,
                cost.worker_model == "pinned",
                workers_of_kind[kind],
                cost.hop_latency_us.value * 1e-6,
                cost.cpu.cv.value,
                cost.protocol == "http2",
                cost.handshake_round_trips.value,
                cost.cpu.handshake_us.client.value * 1e-6,
                cost.cpu.handshake_us.server.value * 1e-6,
                cost.hop_latency_per_kib_us.value * 1e-6,
            )
        )
    return _Model(
        scenario,
        profile,
        topology,
        mode,
        tuple(boxes),
        n_comp,
        pod_node,
        pod_identity,
        np.array([zones[n.zone] for n in nodes], np.int64),
        {"sidecar": sidecar, "ztunnel": ztunnel, "waypoint": waypoint},
        comp_node,
        worker_base,
        slot_station,
        first_server,
        server_counts,
        {s: np.array(topology.services[s], np.int64) for s in services},
        service_index,
        max(len(identities), max(workers_of_kind.values(), default=1), 1),
    )


def _one_way_s(model: _Model, node_a: np.ndarray, node_b: np.ndarray) -> np.ndarray:
    net = model.scenario.cluster.network
    same_zone = model.node_zone[node_a] == model.node_zone[node_b]
    cross = np.where(same_zone, net.cross_node_ms, net.cross_zone_ms)
    return np.where(node_a == node_b, net.same_node_ms, cross) * _MS


def _unit_mean(rng: np.random.Generator, cv: float, size: int) -> np.ndarray:
    """Lognormal factors with mean 1 and the given coefficient of variation."""
    if cv <= 0:
        return np.ones(size)
    sigma2 = math.log1p(cv * cv)
    return rng.lognormal(-sigma2 / 2, math.sqrt(sigma2), size)


def _sample(dist: Distribution, rng: np.random.Generator, size: int) -> np.ndarray:
    if isinstance(dist, Constant):
        return np.full(size, dist.value_ms * _MS)
    return dist.sample_s(rng, size)


# ---- one window's calls ---------------------------------------------------------------


@dataclass
class _Seg:
    """The pooled link into a box (or, with no mesh, into the app) for the rows that pool."""

    pos: np.ndarray  # positions (in the slot's rows) that cross this link pooled
    delay_s: np.ndarray  # one-way delay of those rows
    key: np.ndarray  # pool key
    origin: np.ndarray
    target: np.ndarray
    tls: bool
    mux: bool
    round_trips: float
    hs_client_s: np.ndarray  # client handshake CPU with its multiplier (0 for TCP)
    hs_server_s: np.ndarray
    setup_s: np.ndarray  # handshake time without queueing: how long joiners wait
    new: np.ndarray | None = None  # positions in pos that opened a connection
    ready: np.ndarray | None = None  # when the connection of each row was ready
    acquired: np.ndarray | None = None
    released: np.ndarray | None = None


@dataclass
class _Calls:
    slot: _Slot
    rows: np.ndarray  # request indices (in this window) that make this call
    parent_pos: np.ndarray  # positions of those rows in the parent slot's arrays
    src: np.ndarray
    dst: np.ndarray
    scale: np.ndarray | float  # 1 for live rows, 0 for closed-loop rows past the window
    box_comp: list[np.ndarray]
    box_node: list[np.ndarray]
    box_station: list[np.ndarray]
    delay_s: list[np.ndarray]  # link delay into each box (0 where not a network hop)
    segs: list[_Seg | None]  # pooled link into each box
    last_delay_s: np.ndarray | float
    last_seg: _Seg | None
    request_s: list[np.ndarray]
    response_s: list[np.ndarray]
    deferred_s: list[np.ndarray]
    app_cpu_s: np.ndarray
    service_s: np.ndarray
    children: list[_Calls] = field(default_factory=list)
    hold_s: np.ndarray | None = None  # app slot holding time from the previous sweep


class _Visits:
    """Queue visits of one sweep, and the waits the previous solve gave each of them.

    A visit is a proxy pass (a worker held across a core burst and the deferred burst),
    an app's core burst, or an app concurrency slot held for a known time.
    """

    _FIELDS = ("kind", "worker", "node", "arrival", "first", "second")

    def __init__(self, model: _Model):
        self.model = model
        self.waits: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.order: np.ndarray | None = None
        self.layout: list[tuple[tuple[object, ...], int]] = []
        self.free_at = np.zeros(int(model.servers.sum()))
        # Visits of the previous window that arrive after it ended: they queue in this
        # window's order of arrival, so both windows' visits are served first come first.
        self.spill: dict[str, np.ndarray] = {
            "kind": np.zeros(0, np.int64),
            "worker": np.zeros(0, np.int64),
            "node": np.zeros(0, np.int64),
            "arrival": np.zeros(0),
            "first": np.zeros(0),
            "second": np.zeros(0),
        }
        self.last: dict[str, np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        self.keys: list[tuple[object, ...]] = []
        self.parts: dict[str, list[np.ndarray]] = {f: [] for f in self._FIELDS}
        self.cpu: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # comp, start, seconds

    def prev(self, key: tuple[object, ...], size: int) -> tuple[np.ndarray, np.ndarray]:
        w = self.waits.get(key)
        if w is not None and w[0].shape[0] == size:
            return w
        return np.zeros(size), np.zeros(size)

    def add(
        self,
        key: tuple[object, ...],
        kind: int,
        worker: np.ndarray | int,
        node: np.ndarray | int,
        arrival: np.ndarray,
        first: np.ndarray,
        second: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Register visits; returns their waits (first burst, deferred) from the last solve."""
        n = arrival.shape[0]
        self.keys.append(key)
        parts = self.parts
        parts["kind"].append(np.full(n, kind, np.int64))
        parts["worker"].append(np.broadcast_to(np.asarray(worker, np.int64), (n,)))
        parts["node"].append(np.broadcast_to(np.asarray(node, np.int64), (n,)))
        parts["arrival"].append(arrival)
        parts["first"].append(first)
        parts["second"].append(np.zeros(n) if second is None else second)
        return self.prev(key, n)

    def core_burst(
        self,
        key: tuple[object, ...],
        node: np.ndarray,
        comp: np.ndarray,
        arrival: np.ndarray,
        seconds: np.ndarray,
    ) -> np.ndarray:
        """An app's CPU burst on a core of its node; returns when it ends."""
        wait, _ = self.add(key, CORE, -1, node, arrival, seconds)
        # a burst of no CPU takes no core (the DES engine skips it), so it never waits
        start = arrival + np.where(seconds > 0, wait, 0.0)
        self.cpu.append((comp, start, seconds))
        end: np.ndarray = start + seconds
        return end

    def proxy_pass(
        self,
        key: tuple[object, ...],
        worker: np.ndarray,
        node: np.ndarray,
        comp: np.ndarray,
        arrival: np.ndarray,
        seconds: np.ndarray,
        deferred: np.ndarray | None,
    ) -> np.ndarray:
        """A proxy pass: a worker, a core burst, the deferred burst; returns when it ends."""
        wait, deferred_wait = self.add(key, PASS, worker, node, arrival, seconds, deferred)
        start = arrival + wait
        self.cpu.append((comp, start, seconds))
        end: np.ndarray = start + seconds
        if deferred is not None:
            self.cpu.append((comp, end + deferred_wait, deferred))
        return end

    def _joined(self) -> dict[str, np.ndarray]:
        return {
            f: np.concatenate([*self.parts[f], self.spill[f]]).astype(
                np.float64 if f in ("arrival", "first", "second") else np.int64, copy=False
            )
            for f in self._FIELDS
        }

    def _run(
        self, v: dict[str, np.ndarray], order: np.ndarray, free_at: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return solve_visits(
            v["kind"],
            v["arrival"],
            v["worker"],
            v["node"],
            v["first"],
            v["second"],
            order,
            self.model.first_server,
            self.model.servers,
            free_at,
        )

    def solve(self, damping: float) -> tuple[float, int]:
        """Solve every queue at once; returns how far waits moved (s, summed), and visits."""
        own = [(k, a.shape[0]) for k, a in zip(self.keys, self.parts["arrival"], strict=True)]
        if not own:
            return 0.0, 0
        layout = [*own, (("spill",), self.spill["arrival"].shape[0])]
        v = self._joined()
        arrival = v["arrival"]
        order = self.order
        if (
            order is None
            or layout != self.layout
            or not resort(order, self._no_station(arrival), arrival, 8 * order.shape[0])
        ):
            order = np.argsort(arrival, kind="stable")
        self.order, self.layout = order, layout
        wait1, wait2 = self._run(v, order, self.free_at.copy())
        self.last = v
        moved = 0.0
        offset = 0
        for key, n in own:
            new = (wait1[offset : offset + n], wait2[offset : offset + n])
            old = self.waits.get(key)
            if old is None or old[0].shape[0] != n:
                moved += float(new[0].sum() + new[1].sum())
            elif n:
                moved += float(np.abs(new[0] - old[0]).sum() + np.abs(new[1] - old[1]).sum())
                if damping:
                    new = (
                        damping * old[0] + (1 - damping) * new[0],
                        damping * old[1] + (1 - damping) * new[1],
                    )
            self.waits[key] = new
            offset += n
        return moved, offset

    def resource_requests(self, own: int) -> int:
        """Requests for a worker, a core or a slot in the last solve, as the DES counts them."""
        if self.last is None:
            return 0
        kind, first, second = (self.last[f][:own] for f in ("kind", "first", "second"))
        cores = np.count_nonzero(first[kind != HOLD] > 0) + np.count_nonzero(second > 0)
        return int(np.count_nonzero(kind != CORE) + cores)

    @staticmethod
    def _no_station(arrival: np.ndarray) -> np.ndarray:
        return np.zeros(arrival.shape[0], np.int64)

    def commit(self, end: float) -> None:
        """Carry queue state to the next window: visits before `end` served, later ones spilt."""
        if self.last is not None and self.order is not None:
            v, order = self.last, self.order
            before = v["arrival"] < end
            self._run(v, order[before[order]], self.free_at)
            after = ~before
            self.spill = {f: v[f][after] for f in self._FIELDS}
        self.waits, self.order, self.last, self.layout = {}, None, None, []


def _mean_p99(latency: np.ndarray) -> tuple[float, float]:
    if latency.shape[0] == 0:
        return 0.0, 0.0
    return float(latency.mean()), float(np.percentile(latency, 99))


def _settled(before: tuple[float, float], now: tuple[float, float]) -> bool:
    return (
        abs(now[0] - before[0]) <= _SETTLED_MEAN * now[0]
        and abs(now[1] - before[1]) <= _SETTLED_P99 * now[1]
    )


# ---- the engine -------------------------------------------------------------------


class _VectorRun:
    def __init__(
        self,
        scenario: Scenario,
        profile: Profile,
        topology: Topology,
        mode: Mode,
        seed: int,
        progress: Progress | None,
        stats: VectorStats,
    ):
        self.m = _build_model(scenario, profile, topology, mode)
        self.scenario, self.profile, self.mode = scenario, profile, mode
        self.seed, self.progress, self.stats = seed, progress, stats
        self.slots = _unroll(scenario)
        self.workloads = {w.name: w for w in scenario.workloads}
        traffic = scenario.traffic
        self.w0, self.w1 = traffic.warmup_s, traffic.duration_s
        n = self.m.n_comp
        self.cpu_s = np.zeros(n)
        self.resid_s = np.zeros(n)
        self.handshakes = np.zeros(n, np.int64)
        self.tls_handshakes = 0
        self.visits = _Visits(self.m)
        self.pool_rng = child_rng(seed, "vector/pools")
        self._init_pools()
        self.latency_sum = 0.0
        self.latency_count = 0
        self.outstanding = 0
        self.raw: list[np.ndarray] | None = []
        self.fine_edges = 10 ** (np.arange(8 * _FINE_BINS_PER_DECADE + 1) / _FINE_BINS_PER_DECADE)
        self.fine = np.zeros(self.fine_edges.shape[0] - 1, np.int64)
        self.hist = np.zeros(len(LatencyHistogram.edges_us()) - 1, np.int64)
        self.end_s = self.w1
        self.pending = np.zeros(0)

    # ---- pools ---------------------------------------------------------------------

    def _init_pools(self) -> None:
        self.table_keys = np.full(1 << 12, -1, np.int64)
        self.table_ids = np.zeros(1 << 12, np.int64)
        self.n_pools = np.zeros(1, np.int64)
        self.p = {
            "mux": np.zeros(0, np.bool_),
            "max_streams": np.zeros(0, np.int64),
            "idle": np.zeros(0),
            "max_req": np.zeros(0, np.int64),
            "life": np.zeros(0),
            "phase": np.zeros(0),
            "head": np.zeros(0, np.int64),
            "seconds": np.zeros(0),
            "origin": np.zeros(0, np.int64),
            "target": np.zeros(0, np.int64),
        }
        self.c: dict[str, np.ndarray] = {}
        self.free = np.full(1, -1, np.int64)
        self.live = np.zeros(1, np.int64)
        self._grow_connections(1024)

    def _grow_connections(self, extra: int) -> None:
        old = self.c.get("next")
        n_old = 0 if old is None else old.shape[0]
        n_new = max(2 * n_old, n_old + extra)
        fields = {
            "next": np.int64,
            "opened": np.float64,
            "expires": np.float64,
            "last": np.float64,
            "requests": np.int64,
            "active": np.int64,
            "ready": np.float64,
        }
        for name, dtype in fields.items():
            arr = np.zeros(n_new, dtype)
            if old is not None:
                arr[:n_old] = self.c[name]
            self.c[name] = arr
        # new slots join the free list
        nxt = self.c["next"]
        nxt[n_old : n_new - 1] = np.arange(n_old + 1, n_new)
        nxt[n_new - 1] = self.free[0]
        self.free[0] = n_old
        self.capacity = n_new

    def _pool_ids(self, keys: np.ndarray) -> np.ndarray:
        while 2 * (int(self.n_pools[0]) + keys.shape[0]) > self.table_keys.shape[0]:
            used = self.table_keys >= 0
            old_keys, old_ids = self.table_keys[used], self.table_ids[used]
            size = self.table_keys.shape[0] * 4
            self.table_keys = np.full(size, -1, np.int64)
            self.table_ids = np.zeros(size, np.int64)
            count = np.zeros(1, np.int64)
            lookup_or_insert(old_keys[np.argsort(old_ids)], self.table_keys, self.table_ids, count)
        return lookup_or_insert(keys, self.table_keys, self.table_ids, self.n_pools)

    def _decide_pools(
        self, segs: list[_Seg], window_scale: list[np.ndarray | float], *, commit: bool
    ) -> None:
        """Run the pools over this window's acquisitions; mark which rows handshake."""
        if not segs:
            return
        live = [
            np.ones(s.pos.shape[0], np.bool_)
            if isinstance(sc, float)
            else np.asarray(sc)[s.pos] > 0
            for s, sc in zip(segs, window_scale, strict=True)
        ]
        keys = np.concatenate([s.key[lv] for s, lv in zip(segs, live, strict=True)])
        acquired = np.concatenate(
            [s.acquired[lv] for s, lv in zip(segs, live, strict=True) if s.acquired is not None]
        )
        released = np.concatenate(
            [s.released[lv] for s, lv in zip(segs, live, strict=True) if s.released is not None]
        )
        setup = np.concatenate([s.setup_s[lv] for s, lv in zip(segs, live, strict=True)])
        before = int(self.n_pools[0])
        ids = self._pool_ids(keys)
        after = int(self.n_pools[0])
        if after > before:
            self._new_pools(segs, live, ids, before, after)
        n_acq = keys.shape[0]
        if self.capacity - int(self.live[0]) < n_acq + 1:
            self._grow_connections(n_acq + 1)
        times = np.concatenate([acquired, released])
        is_acquire = np.concatenate([np.ones(n_acq, np.bool_), np.zeros(n_acq, np.bool_)])
        refs = np.concatenate([np.arange(n_acq), np.arange(n_acq)])
        order = np.lexsort((is_acquire, times))
        p, c = self.p, self.c
        undo = None if commit else self._pool_snapshot(ids, n_acq)
        is_new, ready = pool_events(
            times[order],
            is_acquire[order],
            refs[order],
            ids,
            setup,
            p["mux"],
            p["max_streams"],
            p["idle"],
            p["max_req"],
            p["life"],
            p["phase"],
            p["head"],
            p["seconds"],
            c["next"],
            c["opened"],
            c["expires"],
            c["last"],
            c["requests"],
            c["active"],
            c["ready"],
            self.free,
            self.live,
            self.w0,
            self.w1,
        )
        if undo is not None:
            undo()
        self._mark_handshakes(segs, live, is_new, ready)
        if not commit:
            return
        in_window = (acquired >= self.w0) & (acquired < self.w1)
        origin_all = np.concatenate([s.origin[lv] for s, lv in zip(segs, live, strict=True)])
        target_all = np.concatenate([s.target[lv] for s, lv in zip(segs, live, strict=True)])
        tls_all = np.concatenate(
            [np.full(int(lv.sum()), s.tls) for s, lv in zip(segs, live, strict=True)]
        )
        counted = is_new & in_window & tls_all
        self.tls_handshakes += int(counted.sum())
        n = self.m.n_comp
        self.handshakes += np.bincount(origin_all[counted], minlength=n)
        self.handshakes += np.bincount(target_all[counted], minlength=n)

    def _pool_snapshot(self, ids: np.ndarray, allocations: int) -> Callable[[], None]:
        """Save what a pool run over these pools can change; the returned call restores it."""
        pools = np.unique(ids)
        slots = pool_slots(pools, allocations, self.p["head"], self.c["next"], self.free)
        saved_p = {k: self.p[k][pools].copy() for k in ("head", "seconds")}
        saved_c = {k: v[slots].copy() for k, v in self.c.items()}
        free, live = int(self.free[0]), int(self.live[0])

        def undo() -> None:
            for k, v in saved_p.items():
                self.p[k][pools] = v
            for k, v in saved_c.items():
                self.c[k][slots] = v
            self.free[0], self.live[0] = free, live

        return undo

    def _mark_handshakes(
        self, segs: list[_Seg], live: list[np.ndarray], is_new: np.ndarray, ready: np.ndarray
    ) -> None:
        offset = 0
        for s, lv in zip(segs, live, strict=True):
            k = int(lv.sum())
            full_new = np.zeros(s.pos.shape[0], np.bool_)
            full_new[lv] = is_new[offset : offset + k]
            full_ready = s.acquired.copy() if s.acquired is not None else np.zeros(0)
            full_ready[lv] = ready[offset : offset + k]
            s.new = np.flatnonzero(full_new)
            s.ready = full_ready
            offset += k

    def _new_pools(
        self, segs: list[_Seg], live: list[np.ndarray], ids: np.ndarray, before: int, after: int
    ) -> None:
        mesh = self.scenario.mesh
        lifetime = mesh.cert_lifetime_h * 3600.0
        grow = after - before
        first = np.full(grow, -1, np.int64)  # first acquisition index of each new pool
        new_ids = ids - before
        is_new_pool = new_ids >= 0
        idx = np.flatnonzero(is_new_pool)
        first[new_ids[idx[::-1]]] = idx[::-1]
        mux = np.concatenate(
            [np.full(int(lv.sum()), s.mux) for s, lv in zip(segs, live, strict=True)]
        )
        tls = np.concatenate(
            [np.full(int(lv.sum()), s.tls) for s, lv in zip(segs, live, strict=True)]
        )
        origin = np.concatenate([s.origin[lv] for s, lv in zip(segs, live, strict=True)])
        target = np.concatenate([s.target[lv] for s, lv in zip(segs, live, strict=True)])
        new_tls = tls[first]
        phase = np.where(new_tls, self.pool_rng.uniform(0, lifetime, grow), 0.0)
        max_req = mesh.pool.max_requests_per_connection or 0
        add = {
            "mux": mux[first],
            "max_streams": np.full(grow, mesh.pool.max_streams_per_connection, np.int64),
            "idle": np.full(grow, mesh.pool.idle_timeout_s),
            "max_req": np.full(grow, max_req, np.int64),
            "life": np.where(new_tls, lifetime, np.inf),
            "phase": phase,
            "head": np.full(grow, -1, np.int64),
            "seconds": np.zeros(grow),
            "origin": origin[first],
            "target": target[first],
        }
        for name, values in add.items():
            self.p[name] = np.concatenate([self.p[name], values.astype(self.p[name].dtype)])

    # ---- one window: draw the calls ----------------------------------------------------

    def _draw_calls(
        self,
        slot: _Slot,
        rows: np.ndarray,
        parent_pos: np.ndarray,
        src: np.ndarray,
        scale: np.ndarray | float,
        rng: np.random.Generator,
    ) -> _Calls:
        m, n = self.m, rows.shape[0]
        replicas = m.service_pods[slot.service]
        dst = replicas[rng.integers(0, replicas.shape[0], n)]
        src_node, dst_node = m.pod_node[src], m.pod_node[dst]
        comps: list[np.ndarray] = []
        for spec in m.boxes:
            if spec.kind == "sidecar":
                comps.append(m.comp_of_box["sidecar"][src if not comps else dst])
            elif spec.kind == "ztunnel":
                comps.append(m.comp_of_box["ztunnel"][src_node if not comps else dst_node])
            else:
                svc = m.service_index[slot.service]
                comps.append(np.full(n, m.comp_of_box["waypoint"][svc], np.int64))
        workers: list[np.ndarray] = [
            np.asarray(rng.integers(0, spec.workers, n)) if spec.pinned else np.zeros(n, np.int64)
            for spec in m.boxes
        ]
        nodes = [m.comp_node[c] for c in comps]
        stations = [m.worker_base[c] + w for c, w in zip(comps, workers, strict=True)]
        request_s, response_s, deferred_s = [], [], []
        for spec in m.boxes:
            cost = pass_cost(
                self.profile.proxy(spec.kind), spec.role, slot.request_bytes, slot.response_bytes
            )
            req_mult = _unit_mean(rng, spec.cv, n) * scale
            resp_mult = _unit_mean(rng, spec.cv, n) * scale
            request_s.append(cost.request_s * req_mult)
            response_s.append(cost.response_s * resp_mult)
            deferred_s.append(cost.deferred_s * resp_mult)
        delays: list[np.ndarray] = []
        segs: list[_Seg | None] = []
        for j, spec in enumerate(m.boxes):
            if j == 0:
                delays.append(np.zeros(n))
                segs.append(None)
                continue
            prev = m.boxes[j - 1]
            pooled = comps[j - 1] != comps[j]  # a ztunnel to itself is no network hop
            delay = np.where(pooled, _one_way_s(m, nodes[j - 1], nodes[j]), 0.0)
            delays.append(delay)
            pos = np.flatnonzero(pooled)
            owner = workers[j - 1][pos] if prev.pinned else m.pod_identity[src[pos]]
            target_key = dst[pos] if spec.kind == "sidecar" else comps[j][pos]
            d = delay[pos]
            hs_c = prev.hs_client_s * _unit_mean(rng, prev.cv, pos.shape[0])
            hs_s = spec.hs_server_s * _unit_mean(rng, spec.cv, pos.shape[0])
            segs.append(
                _Seg(
                    pos,
                    d,
                    (comps[j - 1][pos] * m.n_owner + owner) * m.n_comp + target_key,
                    comps[j - 1][pos],
                    comps[j][pos],
                    tls=True,
                    mux=prev.http2,
                    round_trips=prev.round_trips,
                    hs_client_s=hs_c,
                    hs_server_s=hs_s,
                    setup_s=hs_c + hs_s + 2 * d + (prev.round_trips - 1) * 2 * d,
                )
            )
        last_seg: _Seg | None = None
        last_delay: np.ndarray | float = 0.0
        if not m.boxes:
            last_delay = _one_way_s(m, src_node, dst_node)
            rt = self.profile.app.connect_round_trips.value
            zeros = np.zeros(n)
            last_seg = _Seg(
                np.arange(n),
                last_delay,
                (src * m.n_owner) * m.n_comp + dst,
                src,
                dst,
                tls=False,
                mux=False,
                round_trips=rt,
                hs_client_s=zeros,
                hs_server_s=zeros,
                setup_s=rt * 2 * last_delay,
            )
        workload = self.workloads[slot.service]
        app_cpu = _sample(workload.cpu_time, rng, n) + app_call_cpu_s(
            self.profile, slot.request_bytes, slot.response_bytes
        )
        service = _sample(workload.service_time, rng, n)
        app = self.profile.app
        if app.visit_latency_us.value > 0:  # the app stack's own latency, outside its CPU
            service += (
                app.visit_latency_us.value * 1e-6 * _unit_mean(rng, app.visit_latency_cv.value, n)
            )
        calls = _Calls(
            slot,
            rows,
            parent_pos,
            src,
            dst,
            scale,
            comps,
            nodes,
            stations,
            delays,
            segs,
            last_delay,
            last_seg,
            request_s,
            response_s,
            deferred_s,
            app_cpu,
            service,
        )
        for kid_index in slot.children:
            kid = self.slots[kid_index]
            if kid.probability >= 1.0:
                present = np.arange(n)
            else:
                present = np.flatnonzero(rng.random(n) < kid.probability)
            calls.app_cpu_s[present] += app_call_cpu_s(
                self.profile, kid.request_bytes, kid.response_bytes
            )
            kid_scale = scale if isinstance(scale, float) else scale[present]
            calls.children.append(
                self._draw_calls(kid, rows[present], present, dst[present], kid_scale, rng)
            )
        calls.app_cpu_s *= scale
        calls.service_s *= scale
        return calls

    # ---- one sweep: propagate times -----------------------------------------------------

    def _worker_burst(
        self,
        key: tuple[object, ...],
        station: np.ndarray,
        node: np.ndarray,
        comp: np.ndarray,
        t: np.ndarray,
        seconds: np.ndarray,
        deferred: np.ndarray | None = None,
    ) -> np.ndarray:
        """Hold a proxy worker for a CPU burst (and the deferred burst after it)."""
        if deferred is not None and not deferred.any():
            deferred = None
        return self.visits.proxy_pass(key, station, node, comp, t, seconds, deferred)

    def _connect(self, calls: _Calls, j: int, seg: _Seg, t: np.ndarray) -> np.ndarray:
        """Acquire a pooled connection; a new one handshakes, a young HTTP/2 one is awaited."""
        tp = t[seg.pos]
        seg.acquired = tp
        if seg.new is None or seg.ready is None:
            return t
        out_p = np.maximum(tp, seg.ready)
        h = seg.new
        if h.shape[0]:
            rows = seg.pos[h]
            d = seg.delay_s[h]
            th = tp[h]
            if seg.tls:
                key = (calls.slot.index, "hs", j)
                th = self._worker_burst(
                    (*key, "client"),
                    calls.box_station[j - 1][rows],
                    calls.box_node[j - 1][rows],
                    calls.box_comp[j - 1][rows],
                    th,
                    seg.hs_client_s[h],
                )
                th = th + d
                th = self._worker_burst(
                    (*key, "server"),
                    calls.box_station[j][rows],
                    calls.box_node[j][rows],
                    calls.box_comp[j][rows],
                    th,
                    seg.hs_server_s[h],
                )
                th = th + d + (seg.round_trips - 1) * 2 * d
            else:
                th = th + seg.round_trips * 2 * d
            out_p[h] = th
        out = t.copy()
        out[seg.pos] = out_p
        return out

    def _propagate(self, calls: _Calls, t0: np.ndarray) -> np.ndarray:
        """When each call of this slot returns, given when it starts."""
        v, idx = self.visits, calls.slot.index
        t = t0
        entered = []
        for j, spec in enumerate(self.m.boxes):
            seg = calls.segs[j]
            if seg is not None and seg.pos.shape[0]:
                t = self._connect(calls, j, seg, t)
                self.segs.append((seg, calls.scale))
            hop_s = spec.hop_s + spec.hop_per_kib_s * calls.slot.request_bytes / KIB
            t = t + calls.delay_s[j] + hop_s
            entered.append(t)
            t = self._worker_burst(
                (idx, "req", j),
                calls.box_station[j],
                calls.box_node[j],
                calls.box_comp[j],
                t,
                calls.request_s[j],
            )
        last = calls.last_seg
        if last is not None:
            t = self._connect(calls, len(self.m.boxes), last, t)
            self.segs.append((last, calls.scale))
        t = self._serve(calls, t + calls.last_delay_s) + calls.last_delay_s
        if last is not None:
            last.released = t
        for j in range(len(self.m.boxes) - 1, -1, -1):
            t = self._worker_burst(
                (idx, "resp", j),
                calls.box_station[j],
                calls.box_node[j],
                calls.box_comp[j],
                t,
                calls.response_s[j],
                calls.deferred_s[j],
            )
            self.inflight.append((calls.box_comp[j], entered[j], t))
            spec = self.m.boxes[j]
            hop_s = spec.hop_s + spec.hop_per_kib_s * calls.slot.response_bytes / KIB
            t = t + calls.delay_s[j] + hop_s
            seg = calls.segs[j]
            if seg is not None and seg.pos.shape[0]:
                seg.released = t[seg.pos]
        del v
        return t

    def _serve(self, calls: _Calls, t: np.ndarray) -> np.ndarray:
        v, m, idx = self.visits, self.m, calls.slot.index
        start = t
        slot_station = m.slot_station[calls.dst]
        has_slot = np.flatnonzero(slot_station >= 0)
        if has_slot.shape[0]:
            hold = calls.hold_s if calls.hold_s is not None else np.zeros(t.shape[0])
            wait, _ = v.add(
                (idx, "slot"), HOLD, slot_station[has_slot], -1, t[has_slot], hold[has_slot]
            )
            t = t.copy()
            t[has_slot] += wait
        acquired = t
        t = v.core_burst((idx, "app"), m.pod_node[calls.dst], calls.dst, t, calls.app_cpu_s)
        t = t + calls.service_s
        if calls.slot.parallel:
            end = t.copy()
            for kid in calls.children:
                pp = kid.parent_pos
                end[pp] = np.maximum(end[pp], self._propagate(kid, t[pp]))
            t = end
        else:
            for kid in calls.children:
                pp = kid.parent_pos
                t = t.copy()
                t[pp] = self._propagate(kid, t[pp])
        calls.hold_s = (t - acquired) * calls.scale
        self.inflight.append((calls.dst, start, t))
        return t

    # ---- windows -----------------------------------------------------------------------

    def _window_length(self) -> float:
        per_s = expected_queue_visits(self.scenario, self.mode) / self.w1
        length = max(0.05, _VISITS_PER_WINDOW / max(per_s, 1.0))
        loop = self.scenario.traffic.closed_loop
        if loop is not None:
            # A user's requests in one window form a chain that sweeps settle one link at a
            # time, so windows hold a few think times.
            length = min(length, max(_USER_CYCLES * loop.think_time.mean_s, 0.01))
        return float(min(self.w1, length))

    def _open_arrivals(self, a: float, b: float) -> np.ndarray:
        """Arrivals in [a, b), from the same stream and gaps as the DES engine's."""
        loop = self.scenario.traffic.open_loop
        assert loop is not None
        gap = 1.0 / loop.rate_rps
        if loop.arrivals == "constant":
            k0 = max(1, math.ceil(a / gap - 1e-9))
            k1 = math.ceil(b / gap - 1e-9)
            return np.arange(k0, max(k0, k1)) * gap
        while self.pending.shape[0] == 0 or self.pending[-1] < b:
            n = int(loop.rate_rps * (b - a) * 1.1) + 4096
            last = float(self.pending[-1]) if self.pending.shape[0] else 0.0
            more = last + np.cumsum(self.arrival_rng.exponential(gap, n))
            self.pending = np.concatenate([self.pending, more])
        cut = int(np.searchsorted(self.pending, b))
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def run(self) -> ModeResult:
        loop = self.scenario.traffic.open_loop
        window_s = self._window_length()
        n_windows = max(1, math.ceil(self.w1 / window_s - 1e-9))
        window_s = self.w1 / n_windows
        if loop is not None:
            self.arrival_rng = child_rng(self.seed, "traffic/arrivals")
            self.pending = np.zeros(0)
        else:
            self._init_users()
        for w in range(n_windows):
            a, b = w * window_s, min(self.w1, (w + 1) * window_s)
            rng = np.random.default_rng(
                np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(b"vector"), w))
            )
            self._window(rng, a, b)
            self.stats.windows += 1
            if self.progress is not None:
                self.progress(b / self.w1)
        return self._result()

    def _window(self, rng: np.random.Generator, a: float, b: float) -> None:
        if self.scenario.traffic.open_loop is not None:
            starts = self._open_arrivals(a, b)
            scale: np.ndarray | float = 1.0
            user_of = None
        else:
            starts, scale, user_of = self._user_requests(rng, a, b)
        n = starts.shape[0]
        if n == 0:
            return
        root = self._draw_calls(
            self.slots[0], np.arange(n), np.arange(n), np.zeros(n, np.int64), scale, rng
        )
        summary = (0.0, 0.0)
        starts_moved_s = 0.0
        for sweep in range(_MAX_SWEEPS if user_of is None else _MAX_USER_SWEEPS):
            if user_of is not None and sweep > 0:
                # Latencies of the current starts under the latest waits give the next starts
                # (using the previous sweep's latencies would pair each start with stale waits).
                self._reset_sweep()
                previous = starts
                starts = self._user_starts(self._propagate(root, starts) - starts, b)[0]
                starts_moved_s = float(np.abs(starts - previous).max(initial=0.0))
            self._reset_sweep()
            t_end = self._propagate(root, starts)
            if sweep <= _POOL_SWEEP:
                self._decide_pools(
                    [s for s, _ in self.segs],
                    [sc for _, sc in self.segs],
                    commit=sweep == _POOL_SWEEP,
                )
            _, visits = self.visits.solve(_DAMPING if sweep >= _DAMP_FROM else 0.0)
            self.stats.sweeps += 1
            before, summary = summary, _mean_p99(t_end - starts)
            # a user's next request waits for the previous one: the chain must settle too
            if sweep > _POOL_SWEEP and _settled(before, summary) and starts_moved_s < 1e-6:
                break
        self.stats.queue_visits += self.visits.resource_requests(visits)
        self.visits.commit(b)
        live = np.ones(n, np.bool_) if isinstance(scale, float) else scale > 0
        if user_of is not None and not isinstance(scale, float):
            self._commit_users(starts, t_end, scale, b)
        self._account(starts[live], t_end[live])

    def _reset_sweep(self) -> None:
        self.visits.reset()
        self.inflight: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.segs: list[tuple[_Seg, np.ndarray | float]] = []

    def _account(self, starts: np.ndarray, ends: np.ndarray) -> None:
        w0, w1, n = self.w0, self.w1, self.m.n_comp
        for comp, start, seconds in self.visits.cpu:
            inside = np.clip(np.minimum(start + seconds, w1) - np.maximum(start, w0), 0, None)
            self.cpu_s += np.bincount(comp, weights=inside, minlength=n)
        for comp, start, end in self.inflight:
            inside = np.clip(np.minimum(end, w1) - np.maximum(start, w0), 0, None)
            self.resid_s += np.bincount(comp, weights=inside, minlength=n)
        counted = (starts >= w0) & (starts < w1)
        lost = counted & (ends > 2 * w1)  # the DES engine drains for at most w1 more
        self.outstanding += int(lost.sum())
        latency = (ends - starts)[counted & ~lost]
        self.end_s = max(self.end_s, float(ends.max(initial=w1)))
        self.latency_sum += float(latency.sum())
        self.latency_count += latency.shape[0]
        us = latency * 1e6
        self.fine += np.histogram(np.clip(us, 1.0, 1e8 * 0.999999), self.fine_edges)[0]
        self.hist += np.asarray(LatencyHistogram.from_latencies_s(latency).counts)
        if self.raw is not None:
            self.raw.append(latency)
            if self.latency_count > _RAW_LATENCIES:
                self.raw = None

    # ---- closed loop -------------------------------------------------------------------

    def _init_users(self) -> None:
        loop = self.scenario.traffic.closed_loop
        assert loop is not None
        rng = child_rng(self.seed, "traffic/users")  # the DES engine's user start times
        self.user_next = rng.uniform(0, max(loop.think_time.mean_s, 1e-9), loop.users)
        self.latency_guess = 0.0

    def _user_requests(
        self, rng: np.random.Generator, a: float, b: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate requests of each user in [a, b); those that start later are masked."""
        loop = self.scenario.traffic.closed_loop
        assert loop is not None
        cycle = max(loop.think_time.mean_s + self.latency_guess, 1e-6)
        per_user = math.ceil((b - a) / cycle * 1.5) + 2
        users = self.user_next.shape[0]
        self.think = _sample(loop.think_time, rng, users * per_user).reshape(users, per_user)
        user_of = np.repeat(np.arange(users), per_user)
        self.per_user = per_user
        guess = np.full(users * per_user, self.latency_guess)
        starts, scale = self._user_starts(guess, b)
        return starts, scale, user_of

    def _user_starts(self, latency: np.ndarray, b: float) -> tuple[np.ndarray, np.ndarray]:
        """Each user sends, waits for the response, thinks, and sends again."""
        cycle = latency.reshape(-1, self.per_user) + self.think
        offsets = np.concatenate(
            [np.zeros((cycle.shape[0], 1)), np.cumsum(cycle[:, :-1], axis=1)], axis=1
        )
        starts = (self.user_next[:, None] + offsets).ravel()
        scale = (starts < b).astype(np.float64)
        return starts, scale

    def _commit_users(
        self, starts: np.ndarray, ends: np.ndarray, scale: np.ndarray, b: float
    ) -> None:
        s = starts.reshape(-1, self.per_user)
        live = scale.reshape(-1, self.per_user) > 0
        nxt = ends.reshape(-1, self.per_user) + self.think
        last = np.where(live, np.arange(self.per_user)[None, :], -1).max(axis=1)
        has = last >= 0
        rows = np.flatnonzero(has)
        self.user_next[rows] = nxt[rows, last[rows]]
        lat = (ends - starts)[scale > 0]
        if lat.shape[0]:
            self.latency_guess = float(lat.mean())
        del s

    # ---- results -------------------------------------------------------------------------

    def _latency(self) -> tuple[LatencyMs, LatencyHistogram]:
        hist = LatencyHistogram(counts=[int(c) for c in self.hist])
        if self.raw is not None:
            raw = np.concatenate(self.raw) if self.raw else np.zeros(0)
            return latency_summary(raw), hist
        cum = np.cumsum(self.fine)
        total = int(cum[-1])
        edges_ms = self.fine_edges * 1e-3

        def pct(q: float) -> float:
            rank = q / 100 * (total - 1)
            i = int(np.searchsorted(cum, rank, side="right"))
            below = int(cum[i - 1]) if i > 0 else 0
            frac = (rank - below + 0.5) / max(int(self.fine[i]), 1)
            lo, hi = edges_ms[i], edges_ms[i + 1]
            return float(lo * (hi / lo) ** min(max(frac, 0.0), 1.0))

        mean = self.latency_sum / total * 1e3
        return LatencyMs(mean=mean, p50=pct(50), p90=pct(90), p99=pct(99), p999=pct(99.9)), hist

    def _result(self) -> ModeResult:
        p = self.p
        n_pools = int(self.n_pools[0])
        c = self.c
        finish_pools(
            n_pools,
            self.end_s,
            p["idle"],
            p["head"],
            p["seconds"],
            c["next"],
            c["opened"],
            c["expires"],
            c["last"],
            c["active"],
            self.w0,
            self.w1,
        )
        n = self.m.n_comp
        conn_s = np.bincount(p["origin"], weights=p["seconds"], minlength=n) + np.bincount(
            p["target"], weights=p["seconds"], minlength=n
        )
        window = self.w1 - self.w0
        tally = WindowTally(self.cpu_s, self.resid_s, conn_s, self.handshakes)
        proxies = self.m.topology.proxies(self.mode, self.scenario, self.profile)
        usages = component_usages(
            self.scenario, self.profile, self.m.topology, proxies, tally, window
        )
        latency, hist = self._latency()
        return mode_result(
            self.scenario,
            proxies,
            usages,
            latency=(latency, self.latency_count),
            histogram=hist,
            unfinished=self.outstanding,
            window_s=window,
            tls_handshakes=self.tls_handshakes,
            connection_seconds=float(p["seconds"].sum()),
        )


def simulate_mode(
    scenario: Scenario,
    profile: Profile,
    topology: Topology,
    mode: Mode,
    *,
    seed: int,
    progress: Progress | None = None,
    stats: VectorStats | None = None,
) -> ModeResult:
    """Simulate one mode of a scenario with the vector engine."""
    run = _VectorRun(
        scenario,
        profile,
        topology,
        mode,
        seed,
        progress,
        stats if stats is not None else VectorStats(),
    )
    return run.run()
