"""The reference engine: a discrete-event simulation on simpy, exact per request.

Semantics (DESIGN.md sections 2-4):
- Every CPU burst (app work, proxy passes, handshakes) holds one core of its node, so
  apps and proxies on a node compete for the same cores (FIFO, non-preemptive).
- A proxy pass also holds one of the proxy's workers: Envoy pins a connection to one
  worker (`pinned`), ztunnel's runtime shares work across its workers (`shared`).
- A request crosses the boxes of its mode's path, paying link delay and the box's hop
  latency, and its response crosses them back; each box does a request pass, a
  response pass, and the deferred (telemetry) CPU after the response has left.
- Hops between proxies (and, with no mesh, between apps) use pooled connections; a
  new connection costs handshake CPU on both ends and round trips.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from meshsim.accounting import WindowTally, component_usages, mode_result
from meshsim.connections import Connection, ConnectionLedger, ConnectionPool
from meshsim.costs import (
    PassCost,
    Role,
    app_call_cpu_s,
    background_shares,
    cold_cpu,
    pass_cost,
    preempted_wait_s,
    wake_up_s,
)
from meshsim.distributions import Constant, Distribution
from meshsim.profile import Profile, ProxyCost
from meshsim.results import (
    ModeResult,
)
from meshsim.scenario import Call, Mode, Scenario
from meshsim.topology import Pod, Proxy, Topology

__all__ = ["TimeStandsStill", "simulate_mode"]

Progress = Callable[[float], None]
Proc = Generator[Any, Any, Any]
_BATCH = 4096
_MS = 1e-3
_NO_PASS = PassCost(0.0, 0.0, 0.0)


class TimeStandsStill(ValueError):
    """A closed loop that never lets simulated time pass: a scenario, not a bug."""

    def __init__(
        self,
        message: str = "closed-loop users whose requests take no time and who do not think "
        "between them never let simulated time pass: give them a think time, or the "
        "requests a cost or a network delay",
    ) -> None:
        super().__init__(message)  # simpy raises a copy made with the same arguments


# A user this many requests in a row at one instant is taken to be in a loop time never
# leaves. A scenario in which a request takes time only now and then (a call made with a
# small probability) makes such a run by chance with probability (1 - p) ** STILL_REQUESTS:
# at a million, below 1e-4 for p down to 1e-5 (10,000 refused p = 0.0004). A loop that is
# stuck for certain is found after a million requests (tens of seconds).
STILL_REQUESTS = 1_000_000


def child_rng(seed: int, name: str) -> np.random.Generator:
    """An independent stream per named component, stable across modes and engines."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),))
    )


class Draws:
    """Hands out one sample at a time from vectorised batches (numpy per call is slow)."""

    __slots__ = ("_buf", "_fn", "_i")

    def __init__(self, fn: Callable[[int], np.ndarray]):
        self._fn = fn
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._fn(_BATCH).tolist()
            self._i = 0
        value = self._buf[self._i]
        self._i += 1
        return value


class _Server(simpy.Resource):
    """A FIFO server (a node's cores, a proxy's workers, an app's slots) that passes to the
    longest waiting request the moment it is released, as the vector engine's servers do.

    simpy's Resource grants a waiting request only when the release's own event is
    processed, after any zero-time step the releasing process takes meanwhile: a call that
    leaves a ztunnel's worker for an app on the same node asked the node's core before the
    pass that had waited for that worker did, where the vector engine serves them the other
    way round. Ties of one instant are structural here (zero delays, constant costs), so
    the order showed: on the testbed chain with waypoints at 200 requests/s the mean
    latency came out 1.3% apart. (Likewise a server granted at once is used in the same
    step, `_burst` and `_work`, and constant arrivals fall at whole multiples of the gap:
    tests/test_engine_agreement.py, same draws, same path.)"""

    def release(self, request: simpy.resources.resource.Request) -> Any:
        event = super().release(request)
        self._trigger_put(None)
        return event


def dist_draws(dist: Distribution, rng: np.random.Generator) -> Draws | float:
    """Samples in seconds; a constant is returned as a plain float (no sampling at all)."""
    if isinstance(dist, Constant):
        return dist.value_ms * _MS
    return Draws(lambda n: dist.sample_s(rng, n))


def unit_mean_multiplier(cv: float, rng: np.random.Generator) -> Draws | float:
    """Lognormal factor with mean 1 and the given coefficient of variation."""
    if cv <= 0:
        return 1.0
    sigma2 = math.log1p(cv * cv)
    return Draws(lambda n: rng.lognormal(-sigma2 / 2, math.sqrt(sigma2), n))


def _preempted_draws(rng: np.random.Generator, share: float, mean_s: float) -> Draws | float:
    """A node's waits for its other work, one per wake-up (0.0 where it has none)."""
    if share <= 0 or mean_s <= 0:
        return 0.0
    return Draws(lambda n: preempted_wait_s(rng, share, mean_s, n))


def draw(source: Draws | float) -> float:
    return source if isinstance(source, float) else source.next()


@dataclass
class _Box:
    """One proxy as the engine sees it."""

    proxy: Proxy
    comp: int
    cost: ProxyCost
    workers: list[_Server]
    pinned: bool
    hop_s: float
    hop_per_byte_s: float
    mult: Draws | float
    pick: Draws


@dataclass(frozen=True)
class _Segment:
    """The link into box i of a path: its delay and, where pooled, how to connect."""

    delay_s: float
    pooled: bool
    tls: bool
    origin: int  # component index of the connecting end
    target: int  # component index of the accepting end
    target_key: int  # the upstream a pool is kept for (pod or proxy index)
    multiplexed: bool
    round_trips: float
    client_hs_s: float
    server_hs_s: float


@dataclass(frozen=True)
class _Plan:
    boxes: tuple[tuple[_Box, Role], ...]
    segments: tuple[_Segment, ...]  # segments[i] leads into boxes[i]; the last into the app
    dst: Pod


def _with_cross_node(cost: PassCost, boxes: tuple[tuple[_Box, Role], ...], i: int) -> PassCost:
    """A pass's cost with the CPU of its links to the previous and the next box that cross
    nodes, half on each pass."""
    node = boxes[i][0].proxy.node
    cross = sum(boxes[k][0].proxy.node != node for k in (i - 1, i + 1) if 0 <= k < len(boxes))
    half = boxes[i][0].cost.cpu.cross_node_us.value * 1e-6 / 2 * cross
    return PassCost(cost.request_s + half, cost.response_s + half, cost.deferred_s)


class _Simulation:
    def __init__(
        self,
        scenario: Scenario,
        profile: Profile,
        topology: Topology,
        mode: Mode,
        seed: int,
        progress: Progress | None,
    ):
        self.scenario, self.profile, self.topology, self.mode = scenario, profile, topology, mode
        self.seed, self.progress = seed, progress
        traffic = scenario.traffic
        self.w0, self.w1 = traffic.warmup_s, traffic.duration_s
        self.env = simpy.Environment()
        self.cores = [_Server(self.env, capacity=n.cores) for n in topology.nodes]
        self.proxies = topology.proxies(mode, scenario, profile)
        n_pods = len(topology.pods)
        self.n_comp = n_pods + len(self.proxies)
        self.cpu_s = [0.0] * self.n_comp  # inside the window
        self.demand_s = [0.0] * self.n_comp  # all CPU demanded, whole run
        self.resid_s = [0.0] * self.n_comp  # request-seconds in flight, inside the window
        self.handshakes = [0] * self.n_comp
        self.tls_ledger = ConnectionLedger(self.w0, self.w1)
        self.tcp_ledger = ConnectionLedger(self.w0, self.w1)
        self.pools: dict[tuple[int, int | str, int], ConnectionPool] = {}
        self.pool_rng = child_rng(seed, "pools")
        self.workloads = {w.name: w for w in scenario.workloads}
        self.boxes = [self._box(p, n_pods + p.index) for p in self.proxies]
        self.sidecar_of: dict[int, _Box] = {}
        self.ztunnel_of: dict[int, _Box] = {}
        self.waypoint_of: dict[str, _Box] = {}
        pod_index = {pod.name: pod.index for pod in topology.pods}
        for box in self.boxes:
            p = box.proxy
            if p.kind == "sidecar":
                self.sidecar_of[pod_index[p.key]] = box
            elif p.kind == "ztunnel":
                self.ztunnel_of[p.node] = box
            else:
                for svc in topology.services_behind(p, scenario.mesh.waypoint_scope):
                    self.waypoint_of[svc] = box
        self.app_slots: list[_Server | None] = []
        self.app_draws: list[tuple[Draws | float, Draws | float, Draws, Draws]] = []
        for pod in topology.pods:
            w = self.workloads.get(pod.workload)
            rng = child_rng(seed, f"app/{pod.name}")
            if w is None:  # the load generator: no app work of its own
                self.app_slots.append(None)
                self.app_draws.append((0.0, 0.0, Draws(rng.random), Draws(rng.random)))
                continue
            slots = _Server(self.env, w.concurrency) if w.concurrency else None
            self.app_slots.append(slots)
            self.app_draws.append(
                (
                    dist_draws(w.service_time, rng),
                    dist_draws(w.cpu_time, rng),
                    Draws(rng.random),
                    Draws(rng.random),
                )
            )
        app = profile.app
        self.visit_s = app.visit_latency_us.value * 1e-6
        self.visit_floor_s = app.visit_latency_floor_us.value * 1e-6
        self.call_s = app.call_latency_us.value * 1e-6
        # own streams, so that a profile without visit latency draws exactly as before
        self.visit_mult = [
            unit_mean_multiplier(app.visit_latency_cv.value, child_rng(seed, f"visit/{p.name}"))
            if self.visit_s > 0
            else 1.0
            for p in topology.pods
        ]
        # the nodes' other work: own streams, so that without it nothing draws differently
        wait_s = profile.host.preempted_wait_us.value * 1e-6
        # and the core time it takes from a burst (profile: host.contention)
        contention = profile.host.contention.value
        shares = background_shares(scenario, topology.nodes)
        self.stretch = [1.0 / (1.0 - contention * share) for share in shares]
        self.preempted = [
            _preempted_draws(child_rng(seed, f"background/{n.name}"), share, wait_s)
            for n, share in zip(topology.nodes, shares, strict=True)
        ]
        # the host's stalls of any wake-up (host.stall_*): own streams, as above
        stall_p, stall_s = profile.host.stall_probability.value, profile.host.stall_us.value
        self.stall = [
            _preempted_draws(child_rng(seed, f"stall/{n.name}"), stall_p, stall_s * 1e-6)
            for n in topology.nodes
        ]
        # waking a node's idle cores (host.wake_up_*): when each node's last burst ends
        host = profile.host
        self.wake = (
            host.wake_up_us.value * 1e-6,
            host.wake_up_idle_ms.value * _MS,
            host.wake_up_shape.value,
        )
        self.quiet = [0.0] * len(topology.nodes)
        # cold caches (cold_cpu_us): when each component's last burst ends
        self.cold, self.cold_later = cold_cpu(profile, n_pods, self.proxies)
        self.sleep = self.wake[1:]  # the time scale and shape they share with the wake-up
        self.warm = [0.0] * self.n_comp
        self.plans: dict[tuple[int, int], _Plan] = {}
        self.latencies: list[float] = []
        self.outstanding = 0
        self.drained: simpy.Event | None = None

    # ---- topology → boxes and paths -------------------------------------------------

    def _box(self, proxy: Proxy, comp: int) -> _Box:
        cost = self.profile.proxy(proxy.kind)
        pinned = cost.worker_model == "pinned"
        count = proxy.workers
        workers = (
            [_Server(self.env, 1) for _ in range(count)] if pinned else [_Server(self.env, count)]
        )
        rng = child_rng(self.seed, f"proxy/{proxy.name}")
        return _Box(
            proxy,
            comp,
            cost,
            workers,
            pinned,
            cost.hop_latency_us.value * 1e-6,
            cost.hop_latency_per_kib_us.value * 1e-6 / 1024,
            unit_mean_multiplier(cost.cpu.cv.value, rng),
            Draws(rng.random),
        )

    def _one_way_s(self, node_a: int, node_b: int) -> float:
        net = self.scenario.cluster.network
        if node_a == node_b:
            return net.same_node_ms * _MS
        same_zone = self.topology.nodes[node_a].zone == self.topology.nodes[node_b].zone
        return (net.cross_node_ms if same_zone else net.cross_zone_ms) * _MS

    def _plan(self, src: Pod, dst: Pod, service: str) -> _Plan:
        key = (src.index, dst.index)
        plan = self.plans.get(key)
        if plan is None:
            plan = self._make_plan(src, dst, service)
            self.plans[key] = plan
        return plan

    def _make_plan(self, src: Pod, dst: Pod, service: str) -> _Plan:
        boxes: list[tuple[_Box, Role]] = []
        if self.mode == "sidecar":
            boxes = [
                (self.sidecar_of[src.index], "outbound"),
                (self.sidecar_of[dst.index], "inbound"),
            ]
        elif self.mode == "ambient":
            boxes = [
                (self.ztunnel_of[src.node], "outbound"),
                (self.ztunnel_of[dst.node], "inbound"),
            ]
        elif self.mode == "ambient-waypoint":
            boxes = [
                (self.ztunnel_of[src.node], "outbound"),
                (self.waypoint_of[service], "through"),
                (self.ztunnel_of[dst.node], "inbound"),
            ]
        segments: list[_Segment] = []
        prev_comp, prev_box = src.index, None
        for box, _role in boxes:
            # app -> its local proxy, or a same-node ztunnel to itself: no network hop
            if prev_box is None or prev_box is box:
                segments.append(
                    self._plain(
                        0.0, pooled=False, origin=prev_comp, target=box.comp, target_key=box.comp
                    )
                )
            else:
                segments.append(self._tls(prev_box, box, dst))
            prev_comp, prev_box = box.comp, box
        if boxes:
            segments.append(
                self._plain(
                    0.0, pooled=False, origin=prev_comp, target=dst.index, target_key=dst.index
                )
            )
        else:
            app = self.profile.app
            segments.append(
                self._plain(
                    self._one_way_s(src.node, dst.node),
                    pooled=True,
                    origin=src.index,
                    target=dst.index,
                    target_key=dst.index,
                    round_trips=app.connect_round_trips.value,
                )
            )
        return _Plan(tuple(boxes), tuple(segments), dst)

    @staticmethod
    def _plain(
        delay_s: float,
        *,
        pooled: bool,
        origin: int,
        target: int,
        target_key: int,
        round_trips: float = 0.0,
    ) -> _Segment:
        return _Segment(
            delay_s, pooled, False, origin, target, target_key, False, round_trips, 0.0, 0.0
        )

    def _tls(self, a: _Box, b: _Box, dst: Pod) -> _Segment:
        # Sidecars keep pools per upstream host (pod); HBONE pools go to a ztunnel or waypoint.
        target_key = dst.index if b.proxy.kind == "sidecar" else b.comp
        return _Segment(
            self._one_way_s(a.proxy.node, b.proxy.node),
            True,
            True,
            a.comp,
            b.comp,
            target_key,
            a.cost.protocol == "http2",
            a.cost.handshake_round_trips.value,
            a.cost.cpu.handshake_us.client.value * 1e-6,
            b.cost.cpu.handshake_us.server.value * 1e-6,
        )

    def _pool(self, seg: _Segment, owner_key: int | str) -> ConnectionPool:
        key = (seg.origin, owner_key, seg.target_key)
        pool = self.pools.get(key)
        if pool is None:
            mesh = self.scenario.mesh
            lifetime = mesh.cert_lifetime_h * 3600.0
            pool = ConnectionPool(
                multiplexed=seg.multiplexed,
                max_streams=mesh.pool.max_streams_per_connection,
                idle_timeout_s=mesh.pool.idle_timeout_s,
                max_requests=mesh.pool.max_requests_per_connection,
                cert_lifetime_s=lifetime if seg.tls else math.inf,
                rotation_phase_s=float(self.pool_rng.uniform(0, lifetime)) if seg.tls else 0.0,
                ledger=self.tls_ledger if seg.tls else self.tcp_ledger,
                owners=(seg.origin, seg.target),
            )
            self.pools[key] = pool
        return pool

    # ---- CPU, workers and connections ---------------------------------------------

    def _burst(self, node: int, comp: int, cpu_s: float, first: bool = True) -> Proc:
        """A burst on the node's core; returns the cold-cache CPU (seconds) left for after
        it (cold_deferred_fraction), which the caller spends while the request goes on. A
        burst that is not the visit's first spends its cold CPU itself."""
        core = self.cores[node]
        req = core.request()
        if not req.triggered:  # an idle core is granted at once: go on in this step
            yield req
        # a node idle for a while wakes its core first (host.wake_up_us)
        start = self.env.now + wake_up_s(self.env.now - self.quiet[node], *self.wake)
        # a component idle for a while finds its caches cold (cold_cpu_us)
        cold = wake_up_s(start - self.warm[comp], self.cold[comp], *self.sleep)
        later = cold * self.cold_later[comp] if first else 0.0
        cpu_s += cold - later
        # the node's other work takes some of the core from the burst (host.contention)
        slow = self.stretch[node]
        end = start + cpu_s * slow
        self.quiet[node] = max(self.quiet[node], end)
        self.warm[comp] = max(self.warm[comp], end)
        yield self.env.timeout(end - self.env.now)
        core.release(req)
        self.demand_s[comp] += cpu_s
        inside = max(0.0, min(start + cpu_s * slow, self.w1) - max(start, self.w0))
        self.cpu_s[comp] += inside / slow
        return later

    def _pick(self, box: _Box) -> int:
        return int(box.pick.next() * len(box.workers)) if box.pinned else 0

    def _work(self, box: _Box, worker: int, cpu_s: float, deferred_s: float = 0.0) -> Proc:
        """A pass on a worker; the worker then stays busy with the deferred CPU (the
        response pass's telemetry, cold caches left for after the burst)."""
        res = box.workers[worker]
        req = res.request()
        if not req.triggered:  # (an idle worker: at once, as an idle core)
            yield req
        if cpu_s > 0:
            deferred_s += yield from self._burst(box.proxy.node, box.comp, cpu_s)
        if deferred_s > 0:
            self.env.process(self._deferred(box.proxy.node, box.comp, deferred_s, res, req))
        else:
            res.release(req)

    def _deferred(
        self, node: int, comp: int, cpu_s: float, res: simpy.Resource | None, req: Any
    ) -> Proc:
        yield from self._burst(node, comp, cpu_s, first=False)
        if res is not None:
            res.release(req)

    def _connect(
        self,
        seg: _Segment,
        owner_key: int | str,
        client: _Box | None,
        client_worker: int,
        server: _Box | None,
        server_worker: int,
    ) -> Generator[Any, Any, tuple[ConnectionPool, Connection]]:
        pool = self._pool(seg, owner_key)
        conn, new = pool.acquire(self.env.now)
        if new:
            conn.ready = self.env.event()
            if self.w0 <= self.env.now < self.w1 and seg.tls:
                self.handshakes[seg.origin] += 1
                self.handshakes[seg.target] += 1
            if seg.tls and client is not None and server is not None:
                yield from self._work(client, client_worker, seg.client_hs_s * draw(client.mult))
                yield self.env.timeout(seg.delay_s)
                yield from self._work(server, server_worker, seg.server_hs_s * draw(server.mult))
                yield self.env.timeout(seg.delay_s + (seg.round_trips - 1) * 2 * seg.delay_s)
            else:
                yield self.env.timeout(seg.round_trips * 2 * seg.delay_s)
            conn.ready.succeed()
        elif not conn.ready.triggered:  # joined an HTTP/2 connection still handshaking
            yield conn.ready
        return pool, conn

    # ---- requests -----------------------------------------------------------------

    def _call(self, src: Pod, service: str, request_bytes: int, response_bytes: int) -> Proc:
        env = self.env
        targets = self.topology.services[service]
        dst = self.topology.pods[targets[int(self.app_draws[src.index][3].next() * len(targets))]]
        plan = self._plan(src, dst, service)
        boxes, segments = plan.boxes, plan.segments
        workers = [self._pick(box) for box, _ in boxes]
        held: list[tuple[ConnectionPool, Connection] | None] = [None] * len(segments)
        entered = [0.0] * len(boxes)
        # a ztunnel to itself (a same-node call in ambient mode) hands the call straight to
        # the pod: one pass, its outbound one; the inbound box costs nothing
        passes = [not (i and boxes[i - 1][0] is box) for i, (box, _) in enumerate(boxes)]
        costs = [
            _with_cross_node(pass_cost(box.cost, role, request_bytes, response_bytes), boxes, i)
            if one
            else _NO_PASS
            for i, ((box, role), one) in enumerate(zip(boxes, passes, strict=True))
        ]
        identity: int | str = src.identity
        for i, (box, _role) in enumerate(boxes):
            seg = segments[i]
            if seg.pooled:
                prev = boxes[i - 1][0]
                owner: int | str = workers[i - 1] if prev.pinned else identity
                held[i] = yield from self._connect(
                    seg, owner, prev, workers[i - 1], box, workers[i]
                )
            hop_s = box.hop_s + box.hop_per_byte_s * request_bytes if passes[i] else 0.0
            if passes[i]:
                hop_s += draw(self.preempted[box.proxy.node]) + draw(self.stall[box.proxy.node])
            yield env.timeout(seg.delay_s + hop_s)
            entered[i] = env.now
            yield from self._work(box, workers[i], costs[i].request_s * draw(box.mult))
        last = segments[-1]
        if last.pooled:
            held[-1] = yield from self._connect(last, 0, None, 0, None, 0)
        yield env.timeout(last.delay_s)
        yield from self._serve(dst, request_bytes, response_bytes)
        yield env.timeout(last.delay_s)
        self._release(held[-1])
        for i in range(len(boxes) - 1, -1, -1):
            box = boxes[i][0]
            mult = draw(box.mult)
            yield from self._work(
                box, workers[i], costs[i].response_s * mult, costs[i].deferred_s * mult
            )
            self._in_flight(box.comp, entered[i], env.now)
            hop_s = box.hop_s + box.hop_per_byte_s * response_bytes if passes[i] else 0.0
            if passes[i]:
                hop_s += draw(self.preempted[box.proxy.node]) + draw(self.stall[box.proxy.node])
            yield env.timeout(segments[i].delay_s + hop_s)
            self._release(held[i])

    def _release(self, held: tuple[ConnectionPool, Connection] | None) -> None:
        if held is not None:
            held[0].release(held[1], self.env.now)

    def _in_flight(self, comp: int, start: float, end: float) -> None:
        self.resid_s[comp] += max(0.0, min(end, self.w1) - max(start, self.w0))

    def _calls_made(self, pod: Pod) -> list[Call]:
        chance = self.app_draws[pod.index][2]
        made = []
        for call in self.workloads[pod.workload].calls:
            for _ in range(call.count):
                if call.probability >= 1.0 or chance.next() < call.probability:
                    made.append(call)
        return made

    def _serve(self, pod: Pod, request_bytes: int, response_bytes: int) -> Proc:
        env = self.env
        workload = self.workloads[pod.workload]
        start = env.now
        slots = self.app_slots[pod.index]
        slot = slots.request() if slots is not None else None
        if slot is not None and not slot.triggered:  # (a free slot: at once)
            yield slot
        calls = self._calls_made(pod)
        service_time, cpu_time, _, _ = self.app_draws[pod.index]
        cpu = draw(cpu_time) + app_call_cpu_s(self.profile, request_bytes, response_bytes)
        for call in calls:
            cpu += app_call_cpu_s(
                self.profile, call.request_bytes, call.response_bytes, client=True
            )
        if cpu > 0:
            later = yield from self._burst(pod.node, pod.index, cpu)
            if later > 0:  # cold-cache CPU after the burst: the core's, not the request's
                env.process(self._deferred(pod.node, pod.index, later, None, None))
        wait = draw(service_time) + self.visit_floor_s
        if self.visit_s > 0:
            wait += self.visit_s * draw(self.visit_mult[pod.index])
        wait += self.call_s * len(calls)  # the client end of each call the app makes
        for _ in range(1 + len(calls)):  # woken by the request and by each call's response
            wait += draw(self.preempted[pod.node]) + draw(self.stall[pod.node])
        if wait > 0:
            yield env.timeout(wait)
        if workload.fanout == "sequential" or len(calls) < 2:
            for call in calls:
                yield from self._call(pod, call.to, call.request_bytes, call.response_bytes)
        else:
            yield env.all_of(
                [
                    env.process(self._call(pod, c.to, c.request_bytes, c.response_bytes))
                    for c in calls
                ]
            )
        if slots is not None and slot is not None:
            slots.release(slot)
        self._in_flight(pod.index, start, env.now)

    def _entry(self) -> Proc:
        traffic = self.scenario.traffic
        start = self.env.now
        counted = self.w0 <= start < self.w1
        if counted:
            self.outstanding += 1
        # the load generator runs on its node as it sends: that node is awake
        node = self.topology.client.node
        self.quiet[node] = max(self.quiet[node], start)
        yield from self._call(
            self.topology.client, traffic.entry, traffic.request_bytes, traffic.response_bytes
        )
        if counted:
            self.latencies.append(self.env.now - start)
            self.outstanding -= 1
            if self.outstanding == 0 and self.drained is not None:
                self.drained.succeed()

    def _open_loop(self) -> Proc:
        loop = self.scenario.traffic.open_loop
        assert loop is not None
        rng = child_rng(self.seed, "traffic/arrivals")
        mean_gap = 1.0 / loop.rate_rps
        if loop.arrivals == "constant":
            # the k-th at k gaps, not a running sum of them (whose rounding decided whether an
            # arrival due at the window's end came before it): the vector engine's arrivals
            for k in range(1, loop.constant_index(self.w1)):
                yield self.env.timeout(k * mean_gap - self.env.now)
                self.env.process(self._entry())
            return
        gaps = Draws(lambda n: rng.exponential(mean_gap, n))
        while True:
            yield self.env.timeout(draw(gaps))
            if self.env.now >= self.w1:
                return
            self.env.process(self._entry())

    def _user(self, think: Draws | float, first_s: float) -> Proc:
        yield self.env.timeout(first_s)
        still = 0
        while self.env.now < self.w1:
            began = self.env.now
            yield from self._entry()
            yield self.env.timeout(draw(think))
            still = still + 1 if self.env.now == began else 0
            if still >= STILL_REQUESTS:  # (read here, so that a test may lower it)
                raise TimeStandsStill()

    def _closed_loop(self) -> None:
        loop = self.scenario.traffic.closed_loop
        assert loop is not None
        rng = child_rng(self.seed, "traffic/users")
        think = dist_draws(loop.think_time, rng)
        # Users start spread over one mean think time, as Locust ramps them up.
        starts = rng.uniform(0, max(loop.think_time.mean_s, 1e-9), loop.users)
        for first in starts.tolist():
            self.env.process(self._user(think, first))

    def _ticks(self) -> Proc:
        assert self.progress is not None
        step = self.w1 / 50
        while self.env.now < self.w1:
            yield self.env.timeout(step)
            self.progress(min(1.0, self.env.now / self.w1))

    # ---- run and account -------------------------------------------------------------

    def run(self) -> ModeResult:
        if self.scenario.traffic.open_loop is not None:
            self.env.process(self._open_loop())
        else:
            self._closed_loop()
        if self.progress is not None:
            self.env.process(self._ticks())
        self.env.run(until=self.w1)
        if self.outstanding > 0:  # let requests of the window finish, within a bound
            self.drained = self.env.event()
            limit = self.env.timeout(self.w1)
            self.env.run(until=self.env.any_of([self.drained, limit]))
        return self._result()

    def _result(self) -> ModeResult:
        window = self.w1 - self.w0
        end = self.env.now
        conn_s = [0.0] * self.n_comp
        for pool in self.pools.values():
            pool.finish(end)
            for owner in pool.owners:
                conn_s[owner] += pool.owner_seconds
        tally = WindowTally(self.cpu_s, self.resid_s, conn_s, self.handshakes)
        usages = component_usages(
            self.scenario, self.profile, self.topology, self.proxies, tally, window
        )
        connections = self.tls_ledger.connection_seconds + self.tcp_ledger.connection_seconds
        return mode_result(
            self.scenario,
            self.proxies,
            usages,
            latencies_s=np.asarray(self.latencies),
            unfinished=self.outstanding,
            window_s=window,
            tls_handshakes=self.tls_ledger.handshakes,
            connection_seconds=connections,
        )


def simulate_mode(
    scenario: Scenario,
    profile: Profile,
    topology: Topology,
    mode: Mode,
    *,
    seed: int,
    progress: Progress | None = None,
) -> ModeResult:
    """Simulate one mode of a scenario with the DES engine."""
    return _Simulation(scenario, profile, topology, mode, seed, progress).run()
