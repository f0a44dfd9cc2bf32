"""The vector engine: the DES engine's model on arrays, run by a compiled event loop.

How it works (DESIGN.md section 4):
- The call graph is unrolled once into a tree of *call slots* (entry call, each call
  it may make, and so on). In a window, numpy draws everything random for every request
  at once, slot by slot: which calls are made, the pod each goes to, proxy workers, CPU
  multipliers, app times, link delays, and the pool of every pooled hop. No Python runs
  per request.
- The window's calls are laid out as one row per call (its own fields, then each box's;
  `events.layout_calls`, numba), so that what the loop reads of one call sits in a few
  cache lines however many calls are in flight. Then
  `events.run_window` (numba) runs them through every queue in one pass, in time order:
  node cores, proxy workers and app slots as FIFO stations, connection pools decided at
  the moment of each acquire, handshakes on both ends, fan-out and joins. CPU, residency
  and connection time inside the measurement window are summed as it goes. This is the DES engine's
  model event for event; the two differ only in their random streams.
- The loop stops at the window's end. The requests still in flight, and every call of
  theirs, go on in the next window after being renumbered to its front
  (`events.carry_over`); the queues, the heap of events, the visits and the pools carry
  over whole. So windows change nothing but the random draws, and memory depends on the
  window (`_VISITS_PER_WINDOW` queue visits), not on the simulated duration
  (tests/test_vector_engine.py: short windows against one, near saturation).

Approximation (bounded by tests/test_engine_agreement.py against the DES engine):
- Latency percentiles come from raw latencies up to `_RAW_LATENCIES`, beyond that from
  a histogram with 0.12 % wide bins.
"""

from __future__ import annotations

import math
import mmap
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from meshsim.accounting import WindowTally, component_usages, mode_result
from meshsim.costs import (
    KIB,
    Role,
    app_call_cpu_s,
    background_shares,
    cold_cpu,
    pass_cost,
    preempted_wait_s,
)
from meshsim.distributions import Constant, Distribution
from meshsim.engines.des import TimeStandsStill, child_rng
from meshsim.engines.events import (
    ACC_FIELDS,
    BOX_FIELDS,
    CALL_FIELDS,
    CONN_DTYPE,
    LOOP_FIELDS,
    POOL_DTYPE,
    call_columns,
    carry_over,
    close_idle,
    compact,
    finish_pools,
    layout_calls,
    lookup_or_insert,
    rehash,
    run_window,
    work_sizes,
)
from meshsim.profile import Profile
from meshsim.results import (
    LatencyHistogram,
    LatencyMs,
    ModeResult,
    latency_summary,
)
from meshsim.scenario import Mode, Scenario
from meshsim.topology import Proxy, ProxyKind, Topology

__all__ = ["VectorStats", "expected_queue_visits", "simulate_mode"]

Progress = Callable[[float], None]
_MS = 1e-3
_VISITS_PER_WINDOW = 2_000_000
_RAW_LATENCIES = 2_000_000
_FINE_BINS_PER_DECADE = 2000
_MAX_CALL_SLOTS = 5000
_FORGET_POOLS_FROM = 65536  # pools: forget those without connections once this many


class TooManyCalls(ValueError):
    """A request's call tree is larger than the vector engine lays out (_MAX_CALL_SLOTS)."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(
            f"the call graph unrolls into more than {limit} calls per request, more than the "
            "vector engine lays out; use the DES engine (--engine des)"
        )


_BOXES: dict[Mode, tuple[tuple[ProxyKind, Role], ...]] = {
    "none": (),
    "sidecar": (("sidecar", "outbound"), ("sidecar", "inbound")),
    "ambient": (("ztunnel", "outbound"), ("ztunnel", "inbound")),
    "ambient-waypoint": (("ztunnel", "outbound"), ("waypoint", "through"), ("ztunnel", "inbound")),
}


@dataclass
class VectorStats:
    """What one run did, for benchmarks: queue visits (requests for a worker, a core or a
    slot, as the DES engine makes them) and windows."""

    queue_visits: int = 0
    windows: int = 0
    windows_cut: int = 0  # ended early: a closed loop's user ran out of room (_window)
    pools_forgotten: int = 0


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
            raise TooManyCalls(_MAX_CALL_SLOTS)
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


def visits_per_request(scenario: Scenario, mode: Mode) -> float:
    """Rough count of the queue visits of one entry request, on average."""
    slots = _unroll(scenario)
    reach = [0.0] * len(slots)
    for s in slots:
        reach[s.index] = s.probability * (reach[s.parent] if s.parent >= 0 else 1.0)
    return sum(reach) * (1 + 4 * len(_BOXES[mode]))


def expected_queue_visits(scenario: Scenario, mode: Mode) -> float:
    """Rough count of queue visits a run makes: for picking an engine, not for results."""
    traffic = scenario.traffic
    if traffic.open_loop is not None:
        requests = traffic.open_loop.rate_rps * traffic.duration_s
    else:
        assert traffic.closed_loop is not None
        think = max(traffic.closed_loop.think_time.mean_s, 1e-3)
        requests = traffic.closed_loop.users * traffic.duration_s / think
    return requests * visits_per_request(scenario, mode)


# ---- the static model of one mode ---------------------------------------------------


@dataclass(frozen=True)
class _BoxSpec:
    kind: ProxyKind
    role: Role
    pinned: bool
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
    proxies: list[Proxy]  # the mode's proxies (Topology.proxies), components n_pods onwards
    n_comp: int
    pod_node: np.ndarray
    pod_identity: np.ndarray
    node_zone: np.ndarray
    comp_of_box: dict[str, np.ndarray]  # "sidecar" by pod, "ztunnel" by node, "waypoint" by svc
    comp_node: np.ndarray
    worker_base: np.ndarray  # first worker station of a proxy component
    comp_workers: np.ndarray  # worker threads of a proxy component (0 for pods)
    slot_station: np.ndarray  # by pod; -1 when the app has no concurrency limit
    first_server: np.ndarray
    servers: np.ndarray
    station_of: np.ndarray  # by server
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
    comp_workers = np.zeros(n_comp, np.int64)
    sidecar = np.full(n_pods, -1, np.int64)
    ztunnel = np.full(len(nodes), -1, np.int64)
    waypoint = np.full(len(services), -1, np.int64)
    pod_by_name = {p.name: p.index for p in topology.pods}
    scope = scenario.mesh.waypoint_scope
    for proxy in proxies:
        comp = n_pods + proxy.index
        worker_base[comp] = len(servers)
        comp_workers[comp] = proxy.workers
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
        proxies,
        n_comp,
        pod_node,
        pod_identity,
        np.array([zones[n.zone] for n in nodes], np.int64),
        {"sidecar": sidecar, "ztunnel": ztunnel, "waypoint": waypoint},
        comp_node,
        worker_base,
        comp_workers,
        slot_station,
        first_server,
        server_counts,
        np.repeat(np.arange(server_counts.shape[0]), server_counts),
        {s: np.array(topology.services[s], np.int64) for s in services},
        service_index,
        max(len(identities), int(comp_workers.max(initial=1)), 1),
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
    x = rng.standard_normal(size)  # what rng.lognormal draws, with numpy's vector exp
    x *= math.sqrt(sigma2)
    x -= sigma2 / 2
    return np.exp(x, out=x)


def _sample(dist: Distribution, rng: np.random.Generator, size: int) -> np.ndarray:
    if isinstance(dist, Constant):
        return np.full(size, dist.value_ms * _MS)
    return dist.sample_s(rng, size)


# ---- one window's calls ---------------------------------------------------------------


@dataclass
class _Seg:
    """The pooled link into a box (or, with no mesh, into the app) for the rows that pool."""

    pos: np.ndarray  # positions (in the slot's rows) that cross this link pooled
    key: np.ndarray  # pool key
    origin: np.ndarray
    target: np.ndarray
    tls: bool
    mux: bool
    hs_client_s: np.ndarray  # client handshake CPU with its multiplier (0 for TCP)
    hs_server_s: np.ndarray


@dataclass
class _Calls:
    slot: _Slot
    rows: np.ndarray  # request indices (in this window) that make this call
    parent_pos: np.ndarray  # positions of those rows in the parent slot's arrays
    src: np.ndarray
    dst: np.ndarray
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
    hop_in_s: list[np.ndarray | float]  # hop latency into each box with the request
    hop_out_s: list[np.ndarray | float]  # and out of it with the response
    app_cpu_s: np.ndarray
    service_s: np.ndarray
    children: list[_Calls] = field(default_factory=list)


@dataclass
class _Window:
    """One window's calls as columns (CALL_FIELDS, then BOX_FIELDS per box, x calls),
    numbered slot by slot, as `events.run_window` numbers them."""

    columns: np.ndarray
    kids: np.ndarray
    root_call: np.ndarray  # the call of each request


@dataclass
class _Carry:
    """The requests in flight at a window's end, and every call of theirs, as the next
    window takes them: rows first, numbered from 0 (`events.carry_over`)."""

    rows: np.ndarray  # the calls' rows (call_columns wide)
    st: np.ndarray  # what each has reached
    kids: np.ndarray
    start: np.ndarray  # of each request: its start, think time, user, root call
    think: np.ndarray
    user: np.ndarray
    root_call: np.ndarray

    @staticmethod
    def none(width: int, st_width: int) -> _Carry:
        return _Carry(
            np.zeros((0, width)), np.zeros((0, st_width)), np.zeros(0, np.int64),
            np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
        )  # fmt: skip


def _grown(array: np.ndarray, rows: int, keep: int) -> np.ndarray:
    """`array`, or one with room for `rows` rows (a quarter more) and its first `keep`."""
    if array.shape[0] >= rows:
        return array
    out = np.empty((rows + rows // 4, *array.shape[1:]), array.dtype)
    out[:keep] = array[:keep]
    return out


# Pools and connections are reserved at a size no run reaches: the kernel maps a page of
# them only when a record on it is first written, so memory follows the records in use,
# and millions of them are never copied to grow (which would hold two copies at once).
_POOLS_RESERVED = 1 << 27
_CONNS_RESERVED = 1 << 28
_PLAIN_RECORDS = 1 << 16  # where no space can be reserved: the first allocation


def _reserve(
    dtype: np.dtype, n: int, keep: np.ndarray | None = None, need: int | None = None
) -> np.ndarray:
    """n zeroed records in address space reserved for them (anonymous memory, not counted
    against the machine's memory until written), with `keep`'s records first. Where the
    space cannot be reserved (no mmap flags, as on Windows, or a kernel that refuses to
    overcommit), `need` records, allocated plainly: they grow by copying as they run out."""
    out = None
    if hasattr(mmap, "MAP_PRIVATE"):
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
        try:
            out = np.frombuffer(mmap.mmap(-1, n * dtype.itemsize, flags=flags), dtype, n)
        except OSError:
            out = None
    if out is None:
        size = _PLAIN_RECORDS if need is None else need
        out = np.zeros(max(size, 0 if keep is None else keep.shape[0]), dtype)
    if keep is not None:
        out[: keep.shape[0]] = keep
    return out


def _room_for(records: np.ndarray, need: int) -> np.ndarray:
    """`records`, or, past its reservation, a copy into one at least twice as large."""
    if need <= records.shape[0]:
        return records
    more = max(2 * records.shape[0], need)
    return _reserve(records.dtype, more, records, need=more)


class _Scratch:
    """Work arrays kept from window to window. Allocated by numpy, which asks the kernel
    for huge pages, and reused: every fresh 4 KiB page costs a fault on first touch, and
    a window's rows and the event loop's work arrays run to tens of MB."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        size = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.shape[0] < size or buf.dtype != dtype:
            buf = np.empty(size + size // 4, dtype)
            self.buffers[name] = buf
        return buf[:size].reshape(shape)


_CALL = {name: i for i, name in enumerate(CALL_FIELDS)}
_BOX = {name: len(CALL_FIELDS) + i for i, name in enumerate(BOX_FIELDS)}  # box 0's columns


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
        self.counters = np.zeros(len(ACC_FIELDS))
        # the event loop's state, kept from window to window (events.run_window)
        n_stations = self.m.servers.shape[0]
        self.idle = np.zeros(self.m.station_of.shape[0], np.int64)
        self.n_idle = np.zeros(n_stations, np.int64)
        self.q_head = np.full(n_stations, -1, np.int64)
        self.q_tail = np.full(n_stations, -1, np.int64)
        self.loop = np.zeros(len(LOOP_FIELDS), np.int64)
        self.loop[LOOP_FIELDS.index("visit_free")] = -1
        n_boxes = len(self.m.boxes)
        empty = work_sizes(0, n_boxes, 0)  # the work arrays' widths
        self.heap = np.zeros(0)
        self.vi = np.zeros((0, empty["vi"][1]), np.int64)
        self.vsec = np.zeros((0, empty["vsec"][1]))
        self.carry = _Carry.none(call_columns(n_boxes), empty["st"][1])
        # waking idle nodes (host.wake_up_*): when each node's last burst ends
        host = profile.host
        self.node_quiet = np.zeros(len(topology.nodes))
        self.wake = np.array(
            [host.wake_up_us.value * 1e-6, host.wake_up_idle_ms.value * 1e-3,
             host.wake_up_shape.value]
        )  # fmt: skip
        self.client_node = topology.client.node
        # the link into box j is opened with the previous box's protocol
        self.round_trips = np.array(
            [self.m.boxes[j - 1].round_trips if j else 0.0 for j in range(len(self.m.boxes))]
        )
        self.per_user = 0
        self.user_next = np.zeros(0)
        self.pool_rng = child_rng(seed, "vector/pools")
        # the nodes' other work; a scenario without it draws nothing more
        self.shares = np.array(background_shares(scenario, topology.nodes))
        self.preempted_s = profile.host.preempted_wait_us.value * 1e-6
        self.preempted = bool(self.shares.max(initial=0.0) > 0 and self.preempted_s > 0)
        # the host's stalls of any wake-up; a profile without them draws nothing more
        self.stall_p = profile.host.stall_probability.value
        self.stall_s = profile.host.stall_us.value * 1e-6
        self.stalls = self.stall_p > 0 and self.stall_s > 0
        # and the core time it takes from a burst (profile: host.contention)
        self.stretch = 1.0 / (1.0 - profile.host.contention.value * self.shares)
        self.stretched = bool((self.stretch != 1.0).any())
        # cold caches (cold_cpu_us): when each component's last burst ends
        self.warm = np.zeros(n)
        cold, later = cold_cpu(profile, len(topology.pods), self.m.proxies)
        self.cold = np.array(cold) * self._stretch_at(self.m.comp_node)
        self.cold_later = np.array(later)
        self._init_pools()
        self.latency_sum = 0.0
        self.latency_count = 0
        self.outstanding = 0
        self.raw: list[np.ndarray] | None = []
        # from 1 us to the longest latency a request can have (it may drain for w1 more):
        # 100 s at least, as before, so that shorter runs' percentiles stay as they were
        decades = max(8, math.ceil(math.log10(2 * self.w1 * 1e6)))
        self.fine_edges = 10 ** (
            np.arange(decades * _FINE_BINS_PER_DECADE + 1) / _FINE_BINS_PER_DECADE
        )
        self.fine = np.zeros(self.fine_edges.shape[0] - 1, np.int64)
        self.hist = np.zeros(len(LatencyHistogram.edges_us()) - 1, np.int64)
        self.end_s = self.w1
        self.pending = np.zeros(0)
        self.scratch = _Scratch()
        self.cert_life_s = scenario.mesh.cert_lifetime_h * 3600.0  # TLS pools rotate at this

    # ---- pools ---------------------------------------------------------------------

    def _init_pools(self) -> None:
        # open addressing over pool ids (-1: empty); a pool's key is pools[id].key. The
        # mesh's pool settings (idle timeout, limits, certificate lifetime) are the same
        # for every pool and passed to the loop once.
        self.table = np.full(1 << 12, -1, np.int32)
        self.n_pools = np.zeros(1, np.int64)
        self.pools = _reserve(POOL_DTYPE, _POOLS_RESERVED)
        # pools forgotten once they had no connection left: what they added up
        self.gone_conn_s = np.zeros(self.m.n_comp)
        self.gone_seconds = 0.0
        self.pools_kept = 0
        self.conns = _reserve(CONN_DTYPE, _CONNS_RESERVED)
        # the free list's head (records of closed connections), connections open, and the
        # first record never used
        self.free = np.array([-1, 0, 0], np.int64)

    def _pool_ids(self, keys: np.ndarray) -> np.ndarray:
        """The pool of each key; keys not seen yet get the next ids (and their key)."""
        n = int(self.n_pools[0])
        self.pools = _room_for(self.pools, n + keys.shape[0])
        if 2 * (n + keys.shape[0]) > self.table.shape[0]:  # keep it under half full
            self.table = np.full(1 << (3 * (n + keys.shape[0])).bit_length(), -1, np.int32)
            rehash(self.table, self.pools["key"], n)
        return lookup_or_insert(keys, self.table, self.pools["key"], self.n_pools)

    def _new_pools(self, segs: list[_Seg], ids: np.ndarray, before: int, after: int) -> None:
        lifetime = self.cert_life_s
        grow = after - before
        first = np.full(grow, -1, np.int64)  # first acquisition index of each new pool
        new_ids = ids - before
        is_new_pool = new_ids >= 0
        idx = np.flatnonzero(is_new_pool)
        first[new_ids[idx[::-1]]] = idx[::-1]
        mux = np.concatenate([np.full(s.pos.shape[0], s.mux) for s in segs])
        tls = np.concatenate([np.full(s.pos.shape[0], s.tls) for s in segs])
        origin = np.concatenate([s.origin for s in segs])
        target = np.concatenate([s.target for s in segs])
        new_tls = tls[first]
        phase = np.where(new_tls, self.pool_rng.uniform(0, lifetime, grow), 0.0)
        new = self.pools[before:after]  # a view: the key is already set
        new["mux"] = mux[first]
        new["tls"] = new_tls
        new["phase"] = phase
        new["head"] = -1
        new["seconds"] = 0.0
        new["origin"] = origin[first]
        new["target"] = target[first]

    # ---- one window: draw the calls ----------------------------------------------------

    def _draw_calls(
        self,
        slot: _Slot,
        rows: np.ndarray,
        parent_pos: np.ndarray,
        src: np.ndarray,
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
            # each proxy its own worker threads (sidecars may differ by workload)
            rng.integers(0, m.comp_workers[c]) if spec.pinned else np.zeros(n, np.int64)
            for spec, c in zip(m.boxes, comps, strict=True)
        ]
        nodes = [m.comp_node[c] for c in comps]
        stations = [m.worker_base[c] + w for c, w in zip(comps, workers, strict=True)]
        request_s, response_s, deferred_s = [], [], []
        hop_in_s: list[np.ndarray | float] = []
        hop_out_s: list[np.ndarray | float] = []
        for j, spec in enumerate(m.boxes):
            cost = pass_cost(
                self.profile.proxy(spec.kind), spec.role, slot.request_bytes, slot.response_bytes
            )
            req_mult = _unit_mean(rng, spec.cv, n)
            resp_mult = _unit_mean(rng, spec.cv, n)
            # a ztunnel to itself (a same-node call in ambient mode) hands the call straight
            # to the pod: one pass, its outbound one; the inbound box costs nothing
            same_kind = j and spec.kind == m.boxes[j - 1].kind == "ztunnel"
            passes = comps[j] != comps[j - 1] if same_kind else 1.0
            # the links to the previous and the next box that cross nodes, half each pass
            cross = sum(nodes[k] != nodes[j] for k in (j - 1, j + 1) if 0 <= k < len(nodes))
            cross_s = self.profile.proxy(spec.kind).cpu.cross_node_us.value * 1e-6 / 2 * cross
            slow = self._stretch_at(nodes[j])
            request_s.append((cost.request_s + cross_s) * req_mult * passes * slow)
            response_s.append((cost.response_s + cross_s) * resp_mult * passes * slow)
            deferred_s.append(cost.deferred_s * resp_mult * passes * slow)
            hop_in_s.append((spec.hop_s + spec.hop_per_kib_s * slot.request_bytes / KIB) * passes)
            hop_out_s.append((spec.hop_s + spec.hop_per_kib_s * slot.response_bytes / KIB) * passes)
            if self.preempted:  # each pass is a wake-up on the box's node
                hop_in_s[-1] = hop_in_s[-1] + self._preempted_s(nodes[j], rng) * passes
                hop_out_s[-1] = hop_out_s[-1] + self._preempted_s(nodes[j], rng) * passes
            if self.stalls:  # and each may stall
                hop_in_s[-1] = hop_in_s[-1] + self._stalled_s(n, rng) * passes
                hop_out_s[-1] = hop_out_s[-1] + self._stalled_s(n, rng) * passes
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
            hs_c = prev.hs_client_s * _unit_mean(rng, prev.cv, pos.shape[0])
            hs_s = spec.hs_server_s * _unit_mean(rng, spec.cv, pos.shape[0])
            hs_c, hs_s = (
                hs_c * self._stretch_at(nodes[j - 1][pos]),
                hs_s * self._stretch_at(nodes[j][pos]),
            )
            segs.append(
                _Seg(
                    pos,
                    (comps[j - 1][pos] * m.n_owner + owner) * m.n_comp + target_key,
                    comps[j - 1][pos],
                    comps[j][pos],
                    tls=True,
                    mux=prev.http2,
                    hs_client_s=hs_c,
                    hs_server_s=hs_s,
                )
            )
        last_seg: _Seg | None = None
        last_delay: np.ndarray | float = 0.0
        if not m.boxes:
            last_delay = _one_way_s(m, src_node, dst_node)
            zeros = np.zeros(n)
            last_seg = _Seg(
                np.arange(n),
                (src * m.n_owner) * m.n_comp + dst,
                src,
                dst,
                tls=False,
                mux=False,
                hs_client_s=zeros,
                hs_server_s=zeros,
            )
        workload = self.workloads[slot.service]
        app_cpu = _sample(workload.cpu_time, rng, n) + app_call_cpu_s(
            self.profile, slot.request_bytes, slot.response_bytes
        )
        app_cpu *= self._stretch_at(m.pod_node[dst])
        service = _sample(workload.service_time, rng, n)
        app = self.profile.app
        if app.visit_latency_floor_us.value > 0:  # its fixed part
            service += app.visit_latency_floor_us.value * 1e-6
        if app.visit_latency_us.value > 0:  # the app stack's own latency, outside its CPU
            service += (
                app.visit_latency_us.value * 1e-6 * _unit_mean(rng, app.visit_latency_cv.value, n)
            )
        if self.preempted:  # woken by the request
            service += self._preempted_s(m.pod_node[dst], rng)
        if self.stalls:
            service += self._stalled_s(n, rng)
        calls = _Calls(
            slot,
            rows,
            parent_pos,
            src,
            dst,
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
            hop_in_s,
            hop_out_s,
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
                self.profile, kid.request_bytes, kid.response_bytes, client=True
            ) * self._stretch_at(m.pod_node[dst[present]])
            calls.service_s[present] += app.call_latency_us.value * 1e-6
            if self.preempted:  # and by the call's response
                calls.service_s[present] += self._preempted_s(m.pod_node[dst[present]], rng)
            if self.stalls:
                calls.service_s[present] += self._stalled_s(present.shape[0], rng)
            calls.children.append(self._draw_calls(kid, rows[present], present, dst[present], rng))
        return calls

    def _stretch_at(self, nodes: np.ndarray) -> np.ndarray | float:
        """How much longer a burst takes on these nodes' cores for their other work; 1.0
        where no node has any, without a gather per draw (the common case)."""
        return self.stretch[nodes] if self.stretched else 1.0

    def _preempted_s(self, nodes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return preempted_wait_s(rng, self.shares[nodes], self.preempted_s, nodes.shape[0])

    def _stalled_s(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The host's stalls of n wake-ups (host.stall_*): as a wait for other work, with
        the profile's probability in place of a node's measured share."""
        return preempted_wait_s(rng, self.stall_p, self.stall_s, n)

    # ---- one window: lay the calls out flat, then run them ---------------------------

    def _flatten(self, root: _Calls) -> tuple[_Window, list[_Seg], list[tuple[int, int, _Seg]]]:
        """Number every call of the window slot by slot (a slot's calls in request order)
        and lay their draws out as columns; also list the pooled links. How calls are
        numbered changes nothing in the results: the loop orders events by time, then by
        the order they arose."""
        order: list[tuple[_Calls, int]] = []  # (calls, index of the parent in `order`)
        stack = [(root, -1)]
        while stack:
            calls, up = stack.pop()
            order.append((calls, up))
            here = len(order) - 1
            stack.extend((kid, here) for kid in reversed(calls.children))
        sizes = [c.rows.shape[0] for c, _ in order]
        offsets = np.cumsum([0, *sizes])
        n, n_boxes = int(offsets[-1]), len(self.m.boxes)
        col = self.scratch.get("columns", (call_columns(n_boxes), n))
        kid_parent, kid_rank, kid_id = [], [], []
        segs: list[_Seg] = []
        where: list[tuple[int, int, _Seg]] = []  # (first call, box or -1 for the app, seg)
        for k, (calls, up) in enumerate(order):
            lo, hi = int(offsets[k]), int(offsets[k + 1])
            if up >= 0:
                parent = offsets[up] + calls.parent_pos
                col[_CALL["parent"], lo:hi] = parent
                kid_parent.append(parent)
                kid_rank.append(np.full(hi - lo, calls.slot.index, np.int64))
                kid_id.append(np.arange(lo, hi))
            else:  # a request: -1 - its index
                col[_CALL["parent"], lo:hi] = -1 - calls.rows
            col[_CALL["parallel"], lo:hi] = calls.slot.parallel
            col[_CALL["last_pool"], lo:hi] = -1
            col[_CALL["last_delay"], lo:hi] = calls.last_delay_s
            col[_CALL["app_comp"], lo:hi] = calls.dst
            col[_CALL["app_node"], lo:hi] = self.m.pod_node[calls.dst]
            col[_CALL["app_slot"], lo:hi] = self.m.slot_station[calls.dst]
            col[_CALL["app_cpu"], lo:hi] = calls.app_cpu_s
            col[_CALL["service"], lo:hi] = calls.service_s
            for j in range(n_boxes):
                b = j * len(BOX_FIELDS)
                col[b + _BOX["station"], lo:hi] = calls.box_station[j]
                col[b + _BOX["node"], lo:hi] = calls.box_node[j]
                col[b + _BOX["comp"], lo:hi] = calls.box_comp[j]
                col[b + _BOX["delay"], lo:hi] = calls.delay_s[j]
                col[b + _BOX["req"], lo:hi] = calls.request_s[j]
                col[b + _BOX["resp"], lo:hi] = calls.response_s[j]
                col[b + _BOX["def"], lo:hi] = calls.deferred_s[j]
                col[b + _BOX["pool"], lo:hi] = -1
                col[b + _BOX["hs_client"], lo:hi] = 0.0
                col[b + _BOX["hs_server"], lo:hi] = 0.0
                col[b + _BOX["hop_in"], lo:hi] = calls.hop_in_s[j]
                col[b + _BOX["hop_out"], lo:hi] = calls.hop_out_s[j]
                seg = calls.segs[j]
                if seg is not None and seg.pos.shape[0]:
                    segs.append(seg)
                    where.append((lo, j, seg))
            if calls.last_seg is not None:
                segs.append(calls.last_seg)
                where.append((lo, -1, calls.last_seg))
        if kid_id:
            kp, kr, ki = (np.concatenate(x) for x in (kid_parent, kid_rank, kid_id))
            by = np.lexsort((ki, kr, kp))  # each parent's calls in the order its app makes them
            kids = ki[by]
            n_kids = np.bincount(kp, minlength=n).astype(np.int64)
        else:
            kids = np.zeros(0, np.int64)
            n_kids = np.zeros(n, np.int64)
        col[_CALL["first_kid"]] = np.concatenate([[0], np.cumsum(n_kids)[:-1]])
        col[_CALL["n_kids"]] = n_kids
        return _Window(col, kids, root_call=np.arange(sizes[0])), segs, where

    def _assign_pools(
        self, flat: _Window, segs: list[_Seg], where: list[tuple[int, int, _Seg]]
    ) -> None:
        """Pool ids for every pooled link (new pools get their state) and room for as many
        new connections as the window could open."""
        if not segs:
            return
        keys = np.concatenate([s.key for s in segs])
        before = int(self.n_pools[0])
        ids = self._pool_ids(keys)
        after = int(self.n_pools[0])
        if after > before:
            self._new_pools(segs, ids, before, after)
        offset = 0
        col = flat.columns
        for lo, j, seg in where:
            at = lo + seg.pos
            got = ids[offset : offset + seg.pos.shape[0]]
            offset += seg.pos.shape[0]
            if j < 0:
                col[_CALL["last_pool"], at] = got
            else:
                b = j * len(BOX_FIELDS)
                col[b + _BOX["pool"], at] = got
                col[b + _BOX["hs_client"], at] = seg.hs_client_s
                col[b + _BOX["hs_server"], at] = seg.hs_server_s
        # every pooled hop may open one
        self.conns = _room_for(self.conns, int(self.free[1]) + keys.shape[0] + 1)

    def _window_length(self) -> float:
        per_s = expected_queue_visits(self.scenario, self.mode) / self.w1
        length = max(0.05, _VISITS_PER_WINDOW / max(per_s, 1.0))
        return float(min(self.w1, length))

    def _open_arrivals(self, a: float, b: float) -> np.ndarray:
        """Arrivals in [a, b), from the same stream and gaps as the DES engine's."""
        loop = self.scenario.traffic.open_loop
        assert loop is not None
        gap = 1.0 / loop.rate_rps
        if loop.arrivals == "constant":
            k0, k1 = loop.constant_index(a), loop.constant_index(b)
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
        w = 0  # windows run, each with its own stream
        for k in range(n_windows):
            a, b = k * window_s, min(self.w1, (k + 1) * window_s)
            while a < b:
                # closed loop: no longer than the users' requests that fit in memory
                end = min(b, a + self._closed_span()) if loop is None else b
                rng = np.random.default_rng(
                    np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(b"vector"), w))
                )
                reached = self._window(rng, a, end, last=k == n_windows - 1 and end >= b)
                if reached <= a:
                    raise TimeStandsStill()
                self.stats.windows += 1
                w += 1
                a = reached
                if self.progress is not None:
                    self.progress(reached / self.w1)
        return self._result()

    def _closed_span(self) -> float:
        """How long a window of closed-loop users may be: room for each user's requests is
        made ahead (_user_requests, 1.5 times as many as the last window's mean cycle
        gives), and so many must fit in one window's share of queue visits. Only a loop
        whose requests come back in microseconds (no think time, and at the start, with no
        latency seen yet) is cut shorter than the window."""
        loop = self.scenario.traffic.closed_loop
        assert loop is not None
        per_user = _VISITS_PER_WINDOW / max(1.0, loop.users * self.visits_per_request)
        return max(per_user, 16.0) / 1.5 * self._closed_cycle()

    def _closed_cycle(self) -> float:
        loop = self.scenario.traffic.closed_loop
        assert loop is not None
        return max(loop.think_time.mean_s + self.latency_guess, 1e-6)

    def _window(self, rng: np.random.Generator, a: float, b: float, *, last: bool) -> float:
        """The requests arriving in [a, b), after those carried in flight from the windows
        before, run until b (the last window: until every request is done, or the cut-off);
        those still in flight then are carried into the next. Returns where the window
        ended: b, or earlier where a closed loop's user made every request room was made
        for (events from then on are carried, and the next window starts there)."""
        closed = self.scenario.traffic.open_loop is None
        if closed:
            starts, think = self._user_requests(rng, a, b)
        else:
            starts, think = self._open_arrivals(a, b), np.zeros(0)
        carry = self.carry
        n_boxes = len(self.m.boxes)
        if starts.shape[0] == 0 and carry.start.shape[0] == 0 and not last:
            return b
        n_cc, n_cr = carry.rows.shape[0], carry.start.shape[0]
        if starts.shape[0]:
            client = np.zeros(starts.shape[0], np.int64)
            root = self._draw_calls(
                self.slots[0], np.arange(starts.shape[0]), np.arange(starts.shape[0]), client,
                rng,
            )  # fmt: skip
            flat, segs, where = self._flatten(root)
            self._assign_pools(flat, segs, where)
            col = flat.columns
            # numbered after the calls and requests carried in
            parent = col[_CALL["parent"]]
            parent[:] = np.where(parent >= 0, parent + n_cc, parent - n_cr)
            col[_CALL["first_kid"]] += carry.kids.shape[0]
            n_new = col.shape[1]
            kids = np.concatenate([carry.kids, flat.kids + n_cc])
            root_call = np.concatenate([carry.root_call, flat.root_call + n_cc])
        else:
            n_new = 0
            kids, root_call = carry.kids, carry.root_call
        n_calls = n_cc + n_new
        rows = self.scratch.get("rows", (n_calls, call_columns(n_boxes)))
        rows[:n_cc] = carry.rows
        if n_new:
            layout_calls(flat.columns, rows[n_cc:])
        starts = np.concatenate([carry.start, starts])
        if closed:
            think = np.concatenate([carry.think, think])
        sizes = work_sizes(n_calls, n_boxes, self.idle.shape[0])
        st = self.scratch.get("st", sizes["st"])
        st[:n_cc] = carry.st
        v_top = int(self.loop[LOOP_FIELDS.index("visit_top")])
        self.vi = _grown(self.vi, sizes["vi"][0], v_top)
        self.vsec = _grown(self.vsec, sizes["vsec"][0], v_top)
        self.heap = _grown(
            self.heap, sizes["heap"][0], 2 * int(self.loop[LOOP_FIELDS.index("heap_size")])
        )
        ring = self.scratch.get("ring", sizes["ring"], np.int64)
        pool = self.scenario.mesh.pool
        ends = run_window(
            rows, n_boxes, kids, self.round_trips,
            self.profile.app.connect_round_trips.value,
            starts, root_call, closed, self.per_user, think, self.user_next, b,
            n_cr, carry.user,
            self.m.first_server, self.m.station_of,
            self.node_quiet, self.wake, self.client_node, self.warm, self.cold,
            self.cold_later, self.pools, self.conns, self.free, pool.max_streams_per_connection,
            pool.idle_timeout_s, pool.max_requests_per_connection or 0, self.cert_life_s,
            self.w0, self.w1, 2 * self.w1, math.inf if last else b,
            self.cpu_s, self.resid_s, self.handshakes, self.counters,
            self.idle, self.n_idle, self.q_head, self.q_tail, self.loop,
            n_cc, st, self.vi, self.vsec, self.heap, ring,
        )  # fmt: skip
        made = np.isfinite(starts)
        if closed:  # a user's next request before b: it ran out of room there
            ran_out = self.user_next < b
            if ran_out.any():
                b = float(self.user_next[ran_out].min())
                last = False
                self.stats.windows_cut += 1
        if not last:
            n_keep, n_kids, c_start, c_think, c_user, c_root = carry_over(
                rows, st, n_boxes, kids, starts, ends, root_call, think, n_cr, carry.user,
                self.per_user if closed else 0, self.heap, self.vi, self.conns, self.loop,
            )  # fmt: skip
            self.carry = _Carry(
                rows[:n_keep].copy(), st[:n_keep].copy(), kids[:n_kids].copy(),
                c_start, c_think, c_user, c_root,
            )  # fmt: skip
            made &= np.isfinite(ends)  # the rest are carried
        if closed:
            done = made & np.isfinite(ends)
            lat = ends[done] - starts[done]
            if lat.shape[0]:
                self.latency_guess = float(lat.mean())
        self._account(starts[made], ends[made])
        self._forget_idle_pools(b)
        return b

    def _pool_columns(self) -> list[int]:
        """The columns of a call's row that hold a pool id."""
        width = len(BOX_FIELDS)
        return [_CALL["last_pool"]] + [_BOX["pool"] + j * width for j in range(len(self.m.boxes))]

    def _forget_idle_pools(self, now: float) -> None:
        """Drop pools whose connections have all closed by `now` (their connection time is
        kept by component). A pool used again later starts afresh, as it would after its
        last connection closed; only its certificate rotation phase is drawn anew. Done
        when the pools have grown by half since the last time, so it costs O(1) per pool."""
        n = int(self.n_pools[0])
        if n < self.pools_kept + self.pools_kept // 2 + _FORGET_POOLS_FROM:
            return
        pools = self.pools
        close_idle(
            n, now, self.scenario.mesh.pool.idle_timeout_s, self.cert_life_s, pools, self.conns,
            self.free, self.w0, self.w1,
        )  # fmt: skip
        keep: np.ndarray = pools["head"][:n] >= 0
        # and those the calls carried in flight name (their rows are renumbered below)
        columns = self._pool_columns()
        ids = self.carry.rows[:, columns].astype(np.int64)
        keep[ids[ids >= 0]] = True
        gone = np.flatnonzero(~keep)
        self.stats.pools_forgotten += gone.shape[0]
        seconds = pools["seconds"][gone]
        self._add_conn_s(self.gone_conn_s, pools["origin"][gone], pools["target"][gone], seconds)
        self.gone_seconds += float(seconds.sum())
        kept = compact(pools, keep)
        # a kept pool's new id: its old one less the pools dropped before it
        moved = ids - np.searchsorted(gone, ids)
        self.carry.rows[:, columns] = np.where(ids >= 0, moved, -1)
        size = 1 << max(12, (3 * kept).bit_length())  # under half full until the next time
        self.table = np.full(size, -1, np.int32)
        rehash(self.table, pools["key"], kept)
        self.n_pools[0] = kept
        self.pools_kept = kept

    def _account(self, starts: np.ndarray, ends: np.ndarray) -> None:
        w0, w1 = self.w0, self.w1
        counted = (starts >= w0) & (starts < w1)
        lost = counted & ~(ends <= 2 * w1)  # the DES engine drains for at most w1 more
        self.outstanding += int(lost.sum())
        latency = (ends - starts)[counted & ~lost]
        # the DES engine stops when its last counted request is done (or at the cut-off)
        self.end_s = max(self.end_s, float(ends[counted & ~lost].max(initial=w1)))
        if lost.any():
            self.end_s = 2 * w1
        self.latency_sum += float(latency.sum())
        self.latency_count += latency.shape[0]
        us = latency * 1e6
        top = self.fine_edges[-1] * 0.999999
        self.fine += np.histogram(np.clip(us, 1.0, top), self.fine_edges)[0]
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
        self.visits_per_request = visits_per_request(self.scenario, self.mode)

    def _user_requests(
        self, rng: np.random.Generator, a: float, b: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Room for each user's requests in [a, b): candidates (their starts are decided as
        the window runs; a user who runs out ends the window where its next request starts:
        `_window`) and think times."""
        loop = self.scenario.traffic.closed_loop
        assert loop is not None
        self.per_user = math.ceil((b - a) / self._closed_cycle() * 1.5) + 2
        users = self.user_next.shape[0]
        think = _sample(loop.think_time, rng, users * self.per_user)
        return np.full(users * self.per_user, math.inf), think

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

    def _add_conn_s(
        self, into: np.ndarray, origin: np.ndarray, target: np.ndarray, seconds: np.ndarray
    ) -> None:
        """Add pools' connection-seconds to `into` by component, counted at both ends."""
        into += np.bincount(origin, weights=seconds, minlength=self.m.n_comp)
        into += np.bincount(target, weights=seconds, minlength=self.m.n_comp)

    def _result(self) -> ModeResult:
        n_pools = int(self.n_pools[0])
        finish_pools(
            n_pools, self.end_s, self.scenario.mesh.pool.idle_timeout_s, self.cert_life_s,
            self.pools, self.conns, self.w0, self.w1,
        )  # fmt: skip
        used = self.pools[:n_pools]
        conn_s = np.zeros(self.m.n_comp)
        self._add_conn_s(conn_s, used["origin"], used["target"], used["seconds"])
        conn_s += self.gone_conn_s
        window = self.w1 - self.w0
        # the bursts ran stretched by their node's other work: the CPU they took is less
        cpu_s = self.cpu_s / self.stretch[self.m.comp_node]
        tally = WindowTally(cpu_s, self.resid_s, conn_s, self.handshakes)
        proxies = self.m.proxies
        usages = component_usages(
            self.scenario, self.profile, self.m.topology, proxies, tally, window
        )
        latency, hist = self._latency()
        self.stats.queue_visits = int(self.counters[ACC_FIELDS.index("queue_visits")])
        return mode_result(
            self.scenario,
            proxies,
            usages,
            latency=(latency, self.latency_count),
            histogram=hist,
            unfinished=self.outstanding,
            window_s=window,
            tls_handshakes=int(self.counters[ACC_FIELDS.index("tls_handshakes")]),
            connection_seconds=float(used["seconds"].sum()) + self.gone_seconds,
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
