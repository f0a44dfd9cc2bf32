"""The vector engine's event kernel: one window of requests run through every queue in one pass.

The numpy side (meshsim.engines.vector) draws everything random for a window as arrays:
which pod each call goes to, the proxy workers, every CPU burst, link delays, app times,
which calls are made, and the pool each pooled hop uses. `run_window` then follows every
call through its fixed sequence of steps, in time order, with a heap:

    for each box (proxy) on the way in: [connect: reuse a pooled connection, or open one
    and handshake on both ends] -> link delay + hop latency -> request pass (a worker,
    then a core of its node);
    the app: [connect (no mesh)] -> link delay -> concurrency slot -> CPU burst on a core
    -> service time -> its calls (one after another, or all at once and joined) -> slot
    released -> link delay back;
    each box on the way back: response pass (a worker, a core; the deferred burst keeps
    the worker after the response has left) -> link delay + hop latency -> connection back
    to its pool.

Queues are FIFO per station (the node's cores, a proxy's worker or workers, an app's
slots), exactly as the DES engine's simpy resources. Connection pools follow
meshsim.connections (reuse the most recently opened usable connection; close on idle
timeout, certificate rotation or max requests; a request joining an HTTP/2 connection
still handshaking waits for it). Because everything is decided at its moment, this is the
DES engine's model, not an approximation of it; only the random streams differ.

A window's events are run until the window's end; the last window's until every request
has finished (or the run's cut-off, twice the duration, as the DES engine drains). The
loop's state (the heap, the stations' queues and idle servers, the visit arena) is kept
from window to window, and `carry_over` moves the calls still in flight to the front of
the next window's rows, renumbering every reference to them, so that a window boundary
changes nothing in the order of events.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from meshsim.costs import wake_up_s

__all__ = [
    "ACC_FIELDS",
    "BOX_FIELDS",
    "CALL_FIELDS",
    "CONN_DTYPE",
    "LOOP_FIELDS",
    "POOL_DTYPE",
    "call_columns",
    "carry_over",
    "close_idle",
    "compact",
    "finish_pools",
    "layout_calls",
    "lookup_or_insert",
    "rehash",
    "run_window",
    "work_sizes",
]

_wake_up_s = numba.njit(cache=True, nogil=True)(wake_up_s)

# counters[] written by run_window
ACC_FIELDS = ("tls_handshakes", "queue_visits", "end_time")

# call stages (code = call * 64 + stage)
_CONNECT = 0
_HS1_DONE = 1
_HS2 = 2
_HS2_DONE = 3
_HS_DONE = 4
_TRANSIT = 5
_REQ = 6
_REQ_DONE = 7
_APP_CONNECT = 8
_APP_HS_DONE = 9
_APP_TRANSIT = 10
_APP = 11
_APP_CPU = 12
_SERVICE = 13
_KIDS = 14
_APP_END = 15
_APP_BACK = 16
_RESP = 17
_RESP_DONE = 18
_RESP_BACK = 19
_DONE = 20
_START = 21
# visit events (code = visit * 64 + event)
_GRANT_WORKER = 32
_GRANT_CORE1 = 33
_GRANT_CORE2 = 34
_CORE1_DONE = 35
_CORE2_DONE = 36

# visit kinds
_PASS = 0  # hold a worker; a burst on a core; then (deferred) a second burst, worker still held
_CORE = 1  # a burst on a core
_HOLD = 2  # hold an app slot until the call releases it

# columns of the visit arena: vi (integers) and vsec (seconds)
_V_CALL, _V_KIND, _V_STATION, _V_NODE, _V_COMP, _V_WORKER, _V_CORE = range(7)
_V_NEXT, _V_PHASE, _V_RESUME = 7, 8, 9  # next: the free list, and station queues
_V_FIRST, _V_SECOND = 0, 1
# A connection's `waiters`: _READY, or it is handshaking and this is the first call
# waiting for it (_NO_WAITERS: none yet)
_READY = -2
_NO_WAITERS = -1

# Pools and connections are records: a pool walk reads one cache line per connection, not
# one per field (at cluster scale there are tens of millions, and every read misses).
POOL_DTYPE = np.dtype(
    [
        ("head", np.int32),  # its most recently opened connection; -1: none
        ("origin", np.int32),  # the components at its two ends
        ("target", np.int32),
        ("mux", np.bool_),  # HTTP/2: streams share a connection
        ("tls", np.bool_),  # mTLS: handshakes, and connections close at certificate rotation
        ("phase", np.float64),  # when its certificates rotate (every certificate lifetime)
        ("seconds", np.float64),  # connection-seconds inside the measurement window
        ("key", np.int64),  # (origin, owner, target) packed: what the lookup table hashes
    ],
    align=True,
)
CONN_DTYPE = np.dtype(
    [
        ("next", np.int32),  # the next connection in its pool's list (or the free list)
        ("requests", np.int32),  # requests it carried
        ("active", np.int32),  # requests on it now
        ("waiters", np.int32),
        ("opened", np.float64),  # when it opened (its certificate rotation follows)
        ("last", np.float64),  # when it was last used
    ],
    align=True,
)

# A call's row in `calls` (float64; indices and ids are whole numbers): its own fields,
# then BOX_FIELDS for each box it passes, so that what one call reads sits in a few cache
# lines however many calls are in flight.
CALL_FIELDS = (
    "parent",  # the calling call, or -1 - (the request's index) for a request's call
    "first_kid",  # where its calls start in `kids`
    "n_kids",
    "parallel",  # 1: its calls are made all at once and joined
    "last_pool",  # the plain TCP pool into the app (no mesh); -1 otherwise
    "last_delay",  # link delay into the app (no mesh)
    "app_comp",
    "app_node",
    "app_slot",  # slot station of the app; -1 without a concurrency limit
    "app_cpu",
    "service",
)
BOX_FIELDS = (
    "station",  # the worker station
    "node",
    "comp",
    "delay",  # link delay into the box (0 where no network hop)
    "req",  # CPU of the request pass
    "resp",  # CPU of the response pass, on the latency path
    "def",  # and after the response has left
    "pool",  # pool of the link into the box; -1 where not pooled
    "hs_client",  # handshake CPU of the client end (the previous box) and the server end
    "hs_server",
    "hop_in",  # hop latency into the box with the request
    "hop_out",  # and out of it with the response
)
(
    _F_PARENT, _F_FIRST_KID, _F_N_KIDS, _F_PARALLEL, _F_LAST_POOL, _F_LAST_DELAY,
    _F_APP_COMP, _F_APP_NODE, _F_APP_SLOT, _F_APP_CPU, _F_SERVICE,
) = range(len(CALL_FIELDS))  # fmt: skip
(
    _B_STATION, _B_NODE, _B_COMP, _B_DELAY, _B_REQ, _B_RESP, _B_DEF, _B_POOL,
    _B_HS_CLIENT, _B_HS_SERVER, _B_HOP_IN, _B_HOP_OUT,
) = range(len(BOX_FIELDS))  # fmt: skip
_BOX0 = len(CALL_FIELDS)
_BF = len(BOX_FIELDS)
# What a call has reached, its row in the loop's own state: these, then per box the time
# the request entered it and the connection into it.
_S_BOX, _S_APP_START, _S_SLOT, _S_KID_NEXT, _S_KID_LEFT, _S_WAIT, _S_CONN_APP = range(7)
_S_BOXES = 7
# The loop's scalars kept from window to window (`loop`, int64; at first all 0 but the
# visit arena's free list, -1: empty)
LOOP_FIELDS = ("heap_size", "seq", "visit_free", "visit_top", "ready")
_L_SIZE, _L_SEQ, _L_V_FREE, _L_V_TOP, _L_READY = range(len(LOOP_FIELDS))


def call_columns(n_boxes: int) -> int:
    """The width of a call's row with this many boxes."""
    return _BOX0 + n_boxes * _BF


def work_sizes(n_calls: int, n_boxes: int, n_servers: int) -> dict[str, tuple[int, ...]]:
    """Shapes of `run_window`'s work arrays (the caller allocates them, to reuse them from
    window to window: a page touched for the first time costs a fault)."""
    visits = n_calls + n_servers + 1
    events = n_calls + 2 * n_servers + 16
    if visits * 64 >= _CODE_OFFSET:  # an event's code is call or visit * 64 + stage
        raise ValueError(f"run_window: {n_calls} calls in one window, too many for an event code")
    return {
        "st": (n_calls, _S_BOXES + 2 * n_boxes),
        "vi": (visits, 10),
        "vsec": (visits, 2),
        "heap": (2 * events,),
        "ring": (1 << (events - 1).bit_length(),),
    }


# Prefetch the next event's rows only with this many events in the heap: many calls in
# flight, rows out of the caches (large-cluster: 3,336 on average, 0.75-0.96 of the run time
# with it, paired runs). With a few (microservices: 5 on average, 23 at most) the rows are
# in the caches and the hint only costs (about 5% there).
_PREFETCH_FROM = 256


# the intrinsic's name carries its pointer type: typed pointers before LLVM 15
_PREFETCH_INTRINSIC = "llvm.prefetch.p0" if llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


def _prefetch_typed(typingctx: Any, arr: Any, row: Any, col: Any) -> Any:
    """Ask the core to start loading the cache line of arr[row, col]: a hint, with no
    effect on any result."""
    sig = types.void(arr, row, col)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(  # type: ignore[no-untyped-call]
            context, builder, aryty, ary, [args[1], args[2]], wraparound=False
        )
        i32, byte = ir.IntType(32), ir.IntType(8).as_pointer()
        hint = ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32])
        fn = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, hint, _PREFETCH_INTRINSIC
        )
        # read, keep in every cache level, data
        builder.call(fn, [builder.bitcast(ptr, byte), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


# _prefetch(arr, row, col), in compiled code only
_prefetch: Any = intrinsic(_prefetch_typed)


@numba.njit(cache=True, nogil=True, inline="always")
def _overlap(a: float, b: float, w0: float, w1: float) -> float:
    lo = a if a > w0 else w0
    hi = b if b < w1 else w1
    return hi - lo if hi > lo else 0.0


# The heap of timed events: a 4-ary heap of 16-byte entries, each the event's time and a key
# of (its sequence number, its code), so that one cache line holds all children of a node
# and ties in time go first come first served. `heap` is float64; its odd entries, read
# through an int64 view, hold the keys.
_CODE_BITS = 32
_CODE_OFFSET = 1 << (_CODE_BITS - 1)  # codes are signed (negative: a server's release)
_CODE_MASK = (1 << _CODE_BITS) - 1
_MAX_SEQ = 1 << (63 - _CODE_BITS)


@numba.njit(cache=True, nogil=True, inline="always")
def _before(ta: float, ka: int, tb: float, kb: int) -> bool:
    # bitwise, not short-circuit: the heap's comparisons are unpredictable branches
    return (ta < tb) | ((ta == tb) & (ka < kb))


@numba.njit(cache=True, nogil=True)
def _push(hf: np.ndarray, hk: np.ndarray, size: int, seq: int, t: float, code: int) -> int:
    if seq >= _MAX_SEQ:
        raise OverflowError("run_window: too many events in one window")
    key = (seq << _CODE_BITS) | (code + _CODE_OFFSET)
    i = size
    while i > 0:
        parent = (i - 1) >> 2
        pt = hf[2 * parent]
        pk = hk[2 * parent + 1]
        if _before(pt, pk, t, key):
            break
        hf[2 * i] = pt
        hk[2 * i + 1] = pk
        i = parent
    hf[2 * i] = t
    hk[2 * i + 1] = key
    return size + 1


@numba.njit(cache=True, nogil=True, inline="always")
def _top_code(hk: np.ndarray) -> int:
    return int(hk[1] & _CODE_MASK) - _CODE_OFFSET


@numba.njit(cache=True, nogil=True)
def _pop(hf: np.ndarray, hk: np.ndarray, size: int) -> int:
    size -= 1
    t = hf[2 * size]
    k = hk[2 * size + 1]
    i = 0
    while True:
        first = 4 * i + 1
        if first >= size:
            break
        best = first
        bt = hf[2 * first]
        bk = hk[2 * first + 1]
        for child in range(first + 1, min(first + 4, size)):
            ct = hf[2 * child]
            ck = hk[2 * child + 1]
            less = _before(ct, ck, bt, bk)
            best = child if less else best
            bt = ct if less else bt
            bk = ck if less else bk
        if _before(t, k, bt, bk):
            break
        hf[2 * i] = bt
        hk[2 * i + 1] = bk
        i = best
    hf[2 * i] = t
    hk[2 * i + 1] = k
    return size


@numba.njit(cache=True, nogil=True, inline="always")
def _expires(pools: np.ndarray, p: int, life_s: float, opened: float) -> float:
    """When a connection of pool p opened at `opened` must close: TLS pools rotate their
    certificates every life_s from their phase; plain TCP never does."""
    if not pools[p].tls:
        return math.inf
    phase = float(pools[p].phase)
    return phase + (math.floor((opened - phase) / life_s) + 1) * life_s


@numba.njit(cache=True, nogil=True)
def _idle_close(
    pools: np.ndarray, conns: np.ndarray, p: int, k: int, idle_s: float, life_s: float
) -> float:
    """When connection k of pool p closes if left idle: its idle timeout, or the
    certificate rotation after its last use, whichever is first."""
    last = float(conns[k].last)
    return min(last + idle_s, max(_expires(pools, p, life_s, conns[k].opened), last))


@numba.njit(cache=True, nogil=True)
def _pool_close(
    c: int,
    p: int,
    prev: int,
    at: float,
    pools: np.ndarray,
    conns: np.ndarray,
    free: np.ndarray,
    w0: float,
    w1: float,
) -> None:
    if prev < 0:
        pools[p].head = conns[c].next
    else:
        conns[prev].next = conns[c].next
    pools[p].seconds += _overlap(conns[c].opened, at, w0, w1)
    conns[c].next = free[0]
    free[0] = c
    free[1] -= 1


@numba.njit(cache=True, nogil=True)
def _expire(
    p: int,
    now: float,
    idle_s: float,
    life_s: float,
    pools: np.ndarray,
    conns: np.ndarray,
    free: np.ndarray,
    w0: float,
    w1: float,
) -> None:
    """Close pool p's connections that timed out or rotated while idle by `now`, at the
    moment they did. (run_window walks its pools this way, written out.)"""
    prev = -1
    k = pools[p].head
    while k >= 0:
        following = conns[k].next
        at = _idle_close(pools, conns, p, k, idle_s, life_s)
        if conns[k].active == 0 and at <= now:
            _pool_close(k, p, prev, at, pools, conns, free, w0, w1)
        else:
            prev = k
        k = following


@numba.njit(cache=True, nogil=True)
def _usable(
    pools: np.ndarray,
    conns: np.ndarray,
    p: int,
    k: int,
    now: float,
    max_streams: int,
    max_req: int,
    life_s: float,
) -> bool:
    """Whether open connection k of pool p takes a request at `now`: not rotated, not used
    up, and idle (HTTP/1.1), or with a stream to spare (HTTP/2). Bitwise, one block: a
    branch here would keep numba's reference counts of the arrays (see run_window)."""
    active = int(conns[k].active)
    mux = bool(pools[p].mux)
    alive = _expires(pools, p, life_s, conns[k].opened) > now
    fresh = (max_req <= 0) | (conns[k].requests < max_req)
    idle = (active == 0) & (mux | (conns[k].last <= now))
    return bool(alive & fresh & (idle | (mux & (active < max_streams))))


@numba.njit(cache=True, nogil=True)
def _open(p: int, now: float, pools: np.ndarray, conns: np.ndarray, free: np.ndarray) -> int:
    """A new connection of pool p, most recently opened: a closed connection's record, else
    the first never used. It is handshaking (waiters = _NO_WAITERS, not _READY) until its
    handshake completes."""
    k = free[0]
    if k >= 0:
        free[0] = conns[k].next
    else:
        k = free[2]
        free[2] += 1
    free[1] += 1
    conns[k].opened = now
    conns[k].last = now
    conns[k].requests = 1
    conns[k].active = 1
    conns[k].waiters = _NO_WAITERS
    conns[k].next = pools[p].head
    pools[p].head = k
    return int(k)


@numba.njit(cache=True, nogil=True)
def run_window(
    # the calls of this window, a row each (CALL_FIELDS, then BOX_FIELDS for each box); a
    # request's call has parent -1 - (the request's index)
    calls: np.ndarray,
    n_boxes: int,
    kids: np.ndarray,
    round_trips: np.ndarray,  # (B,) of the link into the box
    last_round_trips: float,
    # the requests: open loop (sorted starts) or closed loop (users x candidates)
    root_start: np.ndarray,
    root_call: np.ndarray,
    closed: bool,
    per_user: int,
    think: np.ndarray,
    user_next: np.ndarray,
    window_end: float,
    # requests carried in flight from the windows before: the first n_carry of the above
    # (started; a closed loop's user of each in carry_user)
    n_carry: int,
    carry_user: np.ndarray,
    # queues
    first_server: np.ndarray,  # where each station's servers start in `idle`
    station_of: np.ndarray,  # the station of each server
    # waking idle nodes (meshsim.costs.wake_up_s): when each node's last burst ends, the
    # wake-up's (seconds, idle seconds, shape), and the load generator's node (awake as
    # it sends a request)
    node_quiet: np.ndarray,
    wake: np.ndarray,
    client_node: int,
    # cold caches (meshsim.costs.cold_cpu): when each component's last burst ends, its
    # cold-cache CPU at full size (stretched as its bursts are), and the share of it spent
    # after the burst, once the call has gone on
    warm: np.ndarray,
    cold: np.ndarray,
    cold_later: np.ndarray,
    # pools: a POOL_DTYPE record per pool, a CONN_DTYPE record per connection (each pool's
    # list through `next`, most recently opened first; closed ones in the free list), and
    # free = [head of the free list, connections open, first record never used]
    pools: np.ndarray,
    conns: np.ndarray,
    free: np.ndarray,
    max_streams: int,  # the mesh's pool settings
    idle_s: float,
    max_req: int,  # 0: no limit
    life_s: float,  # certificate lifetime (TLS pools rotate at their phase)
    # accounting
    w0: float,
    w1: float,
    cutoff: float,
    stop_at: float,  # events from this time on are left for the next window (inf: none);
    # a closed loop's user who has made all its candidate requests brings it forward to
    # when its next would start (the earliest such user_next)
    cpu_s: np.ndarray,
    resid_s: np.ndarray,
    handshakes: np.ndarray,
    counters: np.ndarray,
    # the loop's state, kept from window to window: per station a stack of its idle servers
    # (in idle, from first_server; n_idle 0 at first) and the queue of visits waiting
    # (head, tail; -1 at first: empty); the heap's size and next sequence number, the visit
    # arena's free list and top, and whether the stations have been set up (LOOP_FIELDS)
    idle: np.ndarray,
    n_idle: np.ndarray,
    q_head: np.ndarray,
    q_tail: np.ndarray,
    loop: np.ndarray,
    # work arrays of the sizes `work_sizes` gives: st's first n_carry_calls rows (the calls
    # carried in flight) and vi, vsec and heap as the window before left them; the rest
    # any contents
    n_carry_calls: int,
    st: np.ndarray,
    vi: np.ndarray,
    vsec: np.ndarray,
    heap: np.ndarray,
    ring: np.ndarray,
) -> np.ndarray:
    """Run one window's calls until `stop_at` (the last window: to completion, or the
    run's cut-off); returns when each root call ended (inf when it has not, or the cut-off
    came first). For a closed loop, `root_start` is written with the start of every
    candidate request a user made (inf for those not made)."""
    n_roots = root_start.shape[0]
    n_servers = station_of.shape[0]
    # what each call has reached, a row each
    st[n_carry_calls:] = 0.0
    st[n_carry_calls:, _S_SLOT] = -1.0
    st[n_carry_calls:, _S_WAIT] = -1.0
    st[n_carry_calls:, _S_CONN_APP] = -1.0
    for j in range(n_boxes):
        st[n_carry_calls:, _S_BOXES + 2 * j + 1] = -1.0
    root_end = np.full(n_roots, math.inf)
    # Visits live in an arena with a free list. A live visit either holds up its call (one
    # per call at most) or is a deferred burst after the call went on, which holds a worker
    # (one per server at most): the arena never needs more slots than calls and servers.
    # Slots are taken in order as needed.
    v_free = loop[_L_V_FREE]
    v_top = loop[_L_V_TOP]
    # the heap (and the ring of events due now, in the order they arose: a step after no
    # delay goes there too, not to the heap, as the DES engine's zero timeouts queue behind
    # the grants made before them): each call waits on one thing at a time, each held
    # server has one event. The first event an event makes for the same instant (a grant
    # of an idle server, a call resumed) is not queued in the ring but runs next
    # (`pending`): zero-time chains run depth first. That only reorders events of one
    # instant, which FIFO leaves open, and saves most ring traffic. (The ring-or-heap choice
    # is written out where each step schedules the next: as a numba helper returning the
    # heap's size, its sequence and the ring's count, microservices' four modes took 10%
    # longer.)
    hf = heap
    hk = heap.view(np.int64)
    size = loop[_L_SIZE]
    seq = loop[_L_SEQ]
    if closed:
        for u in range(user_next.shape[0]):
            r = n_carry + u * per_user
            root_start[r : r + per_user] = math.inf
            t = user_next[u]
            if t < window_end and t < w1:
                root_start[r] = t
                user_next[u] = math.inf
                size = _push(hf, hk, size, seq, t, root_call[r] * 64 + _START)
                seq += 1
    if loop[_L_READY] == 0:  # the first window: every server idle
        for m in range(n_servers - 1, -1, -1):  # the lowest-numbered server on top
            s = station_of[m]
            idle[first_server[s] + n_idle[s]] = m
            n_idle[s] += 1
        loop[_L_READY] = 1
    next_root = n_carry if not closed else n_roots
    visits = 0
    tls_hs = 0
    r_head, r_count = 0, 0
    r_mask = ring.shape[0] - 1  # a power of two: positions wrap with a mask
    last_time, now = 0.0, 0.0
    pending = -1  # the event that runs next, before the ring's
    while True:
        if pending >= 0:
            code = pending
            pending = -1
        elif r_count > 0:  # what happens at this moment, first come first served
            code = int(ring[r_head])
            r_head = (r_head + 1) & r_mask
            r_count -= 1
        elif size > 0 and (next_root >= n_roots or hf[0] <= root_start[next_root]):
            now = hf[0]
            code = _top_code(hk)
            if now > cutoff or now >= stop_at:
                break
            size = _pop(hf, hk, size)
            if size > _PREFETCH_FROM:  # the next event's rows start loading while this one runs
                upcoming = _top_code(hk)
                if upcoming >= 0:
                    ahead = upcoming >> 6
                    if (upcoming & 63) >= _GRANT_WORKER:
                        _prefetch(vi, ahead, 0)
                        _prefetch(vsec, ahead, 0)
                    else:
                        _prefetch(st, ahead, 0)
                        _prefetch(calls, ahead, 0)
                        _prefetch(calls, ahead, 8)  # its boxes' fields begin here
        elif next_root < n_roots:
            now = float(root_start[next_root])
            code = int(root_call[next_root]) * 64 + _START
            next_root += 1
        else:
            break
        last_time = now
        # servers to release, and their stations (known where the release arises: looking
        # them up again misses the cache at cluster scale)
        release, release_s = -1, -1
        release2, release2_s = -1, -1
        v = -1
        if code < 0:
            release = -code - 1
            release_s = station_of[release]
        else:
            ident = code >> 6
            ev = code & 63
            ask = -1
            phase = 0
            if ev >= _GRANT_WORKER:
                # ---- a visit's own events ----
                v = ident
                kind = vi[v, _V_KIND]
                if ev == _GRANT_WORKER:
                    if kind == _HOLD:
                        st[vi[v, _V_CALL], _S_SLOT] = vi[v, _V_WORKER]
                        pending = vi[v, _V_CALL] * 64 + vi[v, _V_RESUME]
                        vi[v, _V_NEXT] = v_free
                        v_free = v
                    elif vsec[v, _V_FIRST] > 0:
                        ask, phase = vi[v, _V_NODE], _GRANT_CORE1
                    else:
                        pending = vi[v, _V_CALL] * 64 + vi[v, _V_RESUME]
                        if vsec[v, _V_SECOND] > 0:
                            ask, phase = vi[v, _V_NODE], _GRANT_CORE2
                        else:
                            release, release_s = vi[v, _V_WORKER], vi[v, _V_STATION]
                            vi[v, _V_NEXT] = v_free
                            v_free = v
                elif ev in (_GRANT_CORE1, _GRANT_CORE2):
                    burst = vsec[v, _V_FIRST] if ev == _GRANT_CORE1 else vsec[v, _V_SECOND]
                    # a node idle for a while wakes its core first (host.wake_up_us)
                    n = vi[v, _V_NODE]
                    k = vi[v, _V_COMP]
                    begin = now + _wake_up_s(now - node_quiet[n], wake[0], wake[1], wake[2])
                    # a component idle for a while finds its caches cold: part of that
                    # CPU may come after the burst, as a second one the call does not wait
                    # for (the visit's deferred burst; a proxy's worker stays held)
                    extra = _wake_up_s(begin - warm[k], cold[k], wake[1], wake[2])
                    if extra > 0.0 and ev == _GRANT_CORE1:  # (cold_later read only then)
                        later = extra * cold_later[k]
                        vsec[v, _V_SECOND] += later
                        extra -= later
                    burst += extra
                    node_quiet[n] = max(node_quiet[n], begin + burst)
                    warm[k] = max(warm[k], begin + burst)
                    cpu_s[k] += _overlap(begin, begin + burst, w0, w1)
                    done = _CORE1_DONE if ev == _GRANT_CORE1 else _CORE2_DONE
                    size = _push(hf, hk, size, seq, begin + burst, v * 64 + done)
                    seq += 1
                elif ev == _CORE1_DONE:
                    release, release_s = vi[v, _V_CORE], vi[v, _V_NODE]
                    pending = vi[v, _V_CALL] * 64 + vi[v, _V_RESUME]
                    if vsec[v, _V_SECOND] > 0:  # a deferred burst (a pass's worker held)
                        ask, phase = vi[v, _V_NODE], _GRANT_CORE2
                    else:
                        if kind == _PASS:
                            release2, release2_s = vi[v, _V_WORKER], vi[v, _V_STATION]
                        vi[v, _V_NEXT] = v_free
                        v_free = v
                else:  # _CORE2_DONE
                    release, release_s = vi[v, _V_CORE], vi[v, _V_NODE]
                    release2, release2_s = vi[v, _V_WORKER], vi[v, _V_STATION]
                    vi[v, _V_NEXT] = v_free
                    v_free = v
            else:
                # ---- a call's steps, run until it has to wait ----
                c = ident
                stage = ev
                visit_kind = -1
                vs, vn, vc, resume = -1, -1, -1, 0
                vbox = -1  # the fields of the box whose worker a pass holds
                vf, vd = 0.0, 0.0
                while stage >= 0:
                    j = int(st[c, _S_BOX])
                    bj = _BOX0 + j * _BF  # this box's fields in the call's row
                    sj = _S_BOXES + 2 * j
                    # the commonest steps first
                    if stage == _REQ:
                        st[c, sj] = now
                        visit_kind = _PASS
                        vbox = bj  # a pass on this box's worker
                        vf, vd, resume = calls[c, bj + _B_REQ], 0.0, _REQ_DONE
                        stage = -1
                    elif stage == _REQ_DONE:
                        if j + 1 < n_boxes:
                            st[c, _S_BOX] = j + 1
                            stage = _CONNECT
                        else:
                            stage = _APP_CONNECT
                    elif stage == _RESP:
                        visit_kind = _PASS
                        vbox = bj  # a pass on this box's worker
                        vf, vd, resume = calls[c, bj + _B_RESP], calls[c, bj + _B_DEF], _RESP_DONE
                        stage = -1
                    elif stage == _RESP_DONE:
                        resid_s[int(calls[c, bj + _B_COMP])] += _overlap(st[c, sj], now, w0, w1)
                        t = now + calls[c, bj + _B_DELAY] + calls[c, bj + _B_HOP_OUT]
                        if t <= now:  # due now: among this instant's events, as they arose
                            ring[(r_head + r_count) & r_mask] = c * 64 + _RESP_BACK
                            r_count += 1
                        else:
                            size = _push(hf, hk, size, seq, t, c * 64 + _RESP_BACK)
                            seq += 1
                        stage = -1
                    elif stage in (_RESP_BACK, _APP_BACK):
                        from_app = stage == _APP_BACK
                        k = int(st[c, _S_CONN_APP] if from_app else st[c, sj + 1])
                        if k >= 0:  # the connection back to its pool
                            conns[k].active -= 1
                            conns[k].last = now
                            if conns[k].active == 0 and 0 < max_req <= conns[k].requests:
                                # used up: closed (the walk written out, as the connect's)
                                p = int(
                                    calls[c, _F_LAST_POOL] if from_app else calls[c, bj + _B_POOL]
                                )
                                prev = -1
                                cur = pools[p].head
                                while cur != k:
                                    prev = cur
                                    cur = conns[cur].next
                                _pool_close(k, p, prev, now, pools, conns, free, w0, w1)
                        if from_app:
                            if n_boxes > 0:
                                st[c, _S_BOX] = n_boxes - 1
                                stage = _RESP
                            else:
                                stage = _DONE
                        elif j > 0:
                            st[c, _S_BOX] = j - 1
                            stage = _RESP
                        else:
                            stage = _DONE
                    elif stage == _TRANSIT:
                        t = now + calls[c, bj + _B_DELAY] + calls[c, bj + _B_HOP_IN]
                        if t <= now:  # due now: among this instant's events, as they arose
                            ring[(r_head + r_count) & r_mask] = c * 64 + _REQ
                            r_count += 1
                        else:
                            size = _push(hf, hk, size, seq, t, c * 64 + _REQ)
                            seq += 1
                        stage = -1
                    elif stage in (_CONNECT, _APP_CONNECT):
                        into_app = stage == _APP_CONNECT
                        p = int(calls[c, _F_LAST_POOL] if into_app else calls[c, bj + _B_POOL])
                        if p < 0:
                            stage = _APP_TRANSIT if into_app else _TRANSIT
                            continue
                        # A connection of pool p (meshsim.connections' rules). The walks
                        # are written out here: a helper holding a loop keeps numba's
                        # atomic reference counts of the arrays passed to it (six per
                        # acquire, as `_expire` and an `_acquire` were), where one without
                        # loses them. First close those that timed out or rotated while
                        # idle, at the moment they did (`_expire`).
                        prev = -1
                        k = pools[p].head
                        while k >= 0:
                            following = conns[k].next
                            at = _idle_close(pools, conns, p, k, idle_s, life_s)
                            if conns[k].active == 0 and at <= now:
                                _pool_close(k, p, prev, at, pools, conns, free, w0, w1)
                            else:
                                prev = k
                            k = following
                        k = pools[p].head  # most recently opened first
                        while k >= 0:
                            if _usable(pools, conns, p, k, now, max_streams, max_req, life_s):
                                conns[k].active += 1
                                conns[k].requests += 1
                                conns[k].last = now
                                break
                            k = conns[k].next
                        new = k < 0
                        if new:
                            k = _open(p, now, pools, conns, free)
                        if into_app:
                            st[c, _S_CONN_APP] = k
                            if new:
                                t = now + last_round_trips * 2 * calls[c, _F_LAST_DELAY]
                                if t <= now:  # due now: among this instant's events, as they arose
                                    ring[(r_head + r_count) & r_mask] = c * 64 + _APP_HS_DONE
                                    r_count += 1
                                else:
                                    size = _push(hf, hk, size, seq, t, c * 64 + _APP_HS_DONE)
                                    seq += 1
                                stage = -1
                            else:
                                stage = _APP_TRANSIT
                            continue
                        st[c, sj + 1] = k
                        if new:
                            if w0 <= now < w1 and pools[p].tls:
                                handshakes[pools[p].origin] += 1
                                handshakes[pools[p].target] += 1
                                tls_hs += 1
                            # the client end handshakes on the previous box's worker
                            visit_kind = _PASS
                            vbox = bj - _BF  # on the previous box's worker
                            vf, vd, resume = calls[c, bj + _B_HS_CLIENT], 0.0, _HS1_DONE
                            stage = -1
                        elif conns[k].waiters != _READY:  # joined an HTTP/2 connection handshaking
                            st[c, _S_WAIT] = conns[k].waiters
                            conns[k].waiters = c
                            stage = -1
                        else:
                            stage = _TRANSIT
                    elif stage == _START:
                        if calls[c, _F_PARENT] < 0:  # the load generator sends: its node wakes
                            node_quiet[client_node] = max(node_quiet[client_node], now)
                        st[c, _S_BOX] = 0
                        stage = _TRANSIT if n_boxes > 0 else _APP_CONNECT
                    elif stage == _APP_TRANSIT:
                        t = now + calls[c, _F_LAST_DELAY]
                        if t <= now:  # due now: among this instant's events, as they arose
                            ring[(r_head + r_count) & r_mask] = c * 64 + _APP
                            r_count += 1
                        else:
                            size = _push(hf, hk, size, seq, t, c * 64 + _APP)
                            seq += 1
                        stage = -1
                    elif stage == _APP:
                        st[c, _S_APP_START] = now
                        if int(calls[c, _F_APP_SLOT]) >= 0:
                            visit_kind = _HOLD
                            vs, vn, vc = int(calls[c, _F_APP_SLOT]), -1, int(calls[c, _F_APP_COMP])
                            vf, vd, resume = 0.0, 0.0, _APP_CPU
                            stage = -1
                        else:
                            stage = _APP_CPU
                    elif stage == _APP_CPU:
                        if calls[c, _F_APP_CPU] > 0:
                            visit_kind = _CORE
                            vs, vn, vc = -1, int(calls[c, _F_APP_NODE]), int(calls[c, _F_APP_COMP])
                            vf, vd, resume = calls[c, _F_APP_CPU], 0.0, _SERVICE
                            stage = -1
                        else:
                            stage = _SERVICE
                    elif stage == _SERVICE:
                        if calls[c, _F_SERVICE] > 0:
                            t = now + calls[c, _F_SERVICE]
                            size = _push(hf, hk, size, seq, t, c * 64 + _KIDS)
                            seq += 1
                            stage = -1
                        else:
                            stage = _KIDS
                    elif stage == _KIDS:
                        nk = int(calls[c, _F_N_KIDS])
                        if nk == 0:
                            stage = _APP_END
                        elif calls[c, _F_PARALLEL] != 0:
                            st[c, _S_KID_LEFT] = nk
                            for q in range(
                                int(calls[c, _F_FIRST_KID]), int(calls[c, _F_FIRST_KID]) + nk
                            ):
                                ring[(r_head + r_count) & r_mask] = kids[q] * 64 + _START
                                r_count += 1
                            stage = -1
                        else:
                            st[c, _S_KID_NEXT] = 1
                            q = kids[int(calls[c, _F_FIRST_KID])]
                            pending = q * 64 + _START
                            stage = -1
                    elif stage == _APP_END:
                        if int(st[c, _S_SLOT]) >= 0:
                            release = int(st[c, _S_SLOT])
                            release_s = int(calls[c, _F_APP_SLOT])
                            st[c, _S_SLOT] = -1
                        resid_s[int(calls[c, _F_APP_COMP])] += _overlap(
                            st[c, _S_APP_START], now, w0, w1
                        )
                        t = now + calls[c, _F_LAST_DELAY]
                        if t <= now:  # due now: among this instant's events, as they arose
                            ring[(r_head + r_count) & r_mask] = c * 64 + _APP_BACK
                            r_count += 1
                        else:
                            size = _push(hf, hk, size, seq, t, c * 64 + _APP_BACK)
                            seq += 1
                        stage = -1
                    elif stage == _HS1_DONE:
                        size = _push(
                            hf, hk, size, seq, now + calls[c, bj + _B_DELAY], c * 64 + _HS2
                        )
                        seq += 1
                        stage = -1
                    elif stage == _HS2:
                        visit_kind = _PASS
                        vbox = bj  # a pass on this box's worker
                        vf, vd, resume = calls[c, bj + _B_HS_SERVER], 0.0, _HS2_DONE
                        stage = -1
                    elif stage == _HS2_DONE:
                        d = calls[c, bj + _B_DELAY]
                        t = now + d + (round_trips[j] - 1) * 2 * d
                        if t <= now:  # due now: among this instant's events, as they arose
                            ring[(r_head + r_count) & r_mask] = c * 64 + _HS_DONE
                            r_count += 1
                        else:
                            size = _push(hf, hk, size, seq, t, c * 64 + _HS_DONE)
                            seq += 1
                        stage = -1
                    elif stage in (_HS_DONE, _APP_HS_DONE):
                        k = int(st[c, sj + 1]) if stage == _HS_DONE else int(st[c, _S_CONN_APP])
                        # the calls that joined it go on in the order they joined, as in
                        # the DES engine (the list holds the latest first: the ring is
                        # filled from the far end)
                        joined = 0
                        w = conns[k].waiters
                        while w >= 0:
                            joined += 1
                            w = int(st[w, _S_WAIT])
                        w = conns[k].waiters
                        at = joined
                        while w >= 0:
                            at -= 1
                            ring[(r_head + r_count + at) & r_mask] = w * 64 + _TRANSIT
                            w = int(st[w, _S_WAIT])
                        r_count += joined
                        conns[k].waiters = _READY
                        stage = _TRANSIT if stage == _HS_DONE else _APP_TRANSIT
                    else:  # _DONE
                        stage = -1
                        up = int(calls[c, _F_PARENT])
                        if up < 0:  # a request: parent is -1 - its index
                            r = -1 - up
                            root_end[r] = now
                            if closed:  # its user's next: this window's next candidate
                                if r < n_carry:
                                    u = carry_user[r]
                                    after = n_carry + u * per_user
                                else:
                                    u = (r - n_carry) // per_user
                                    after = r + 1
                                    if after >= n_carry + (u + 1) * per_user:
                                        after = -1
                                nxt = now + think[r]
                                if nxt < window_end and nxt < w1 and after >= 0:
                                    root_start[after] = nxt
                                    q = root_call[after] * 64 + _START
                                    size = _push(hf, hk, size, seq, nxt, q)
                                    seq += 1
                                else:
                                    user_next[u] = nxt
                                    if nxt < window_end and nxt < w1 and nxt < stop_at:
                                        # the user ran out of room: the window ends when
                                        # its next request starts (the caller goes on
                                        # from there), so no event runs out of order
                                        stop_at = nxt
                        elif calls[up, _F_PARALLEL] != 0:
                            st[up, _S_KID_LEFT] -= 1
                            if int(st[up, _S_KID_LEFT]) == 0:
                                c = up
                                stage = _APP_END
                        elif int(st[up, _S_KID_NEXT]) < int(calls[up, _F_N_KIDS]):
                            q = kids[int(calls[up, _F_FIRST_KID]) + int(st[up, _S_KID_NEXT])]
                            st[up, _S_KID_NEXT] += 1
                            pending = q * 64 + _START
                        else:
                            c = up
                            stage = _APP_END
                if visit_kind >= 0:
                    if vbox >= 0:
                        vs = int(calls[c, vbox + _B_STATION])
                        vn = int(calls[c, vbox + _B_NODE])
                        vc = int(calls[c, vbox + _B_COMP])
                    # a new visit: a freed slot of the arena, else the next never used
                    if v_free >= 0:
                        v = v_free
                        v_free = vi[v, _V_NEXT]
                    else:
                        v = v_top
                        v_top += 1
                    vi[v, _V_CALL], vi[v, _V_KIND], vi[v, _V_COMP] = c, visit_kind, vc
                    vi[v, _V_STATION], vi[v, _V_NODE] = vs, vn
                    vsec[v, _V_FIRST], vsec[v, _V_SECOND], vi[v, _V_RESUME] = vf, vd, resume
                    vi[v, _V_WORKER], vi[v, _V_CORE] = -1, -1
                    if visit_kind == _CORE:
                        ask, phase = vn, _GRANT_CORE1
                    else:
                        ask, phase = vs, _GRANT_WORKER
            if ask >= 0:
                visits += 1
                if n_idle[ask] > 0:  # an idle server of the station (a stack: O(1))
                    n_idle[ask] -= 1
                    granted = idle[first_server[ask] + n_idle[ask]]
                    if phase == _GRANT_WORKER:
                        vi[v, _V_WORKER] = granted
                    else:
                        vi[v, _V_CORE] = granted
                    if pending < 0:
                        pending = v * 64 + phase
                    else:
                        ring[(r_head + r_count) & r_mask] = v * 64 + phase
                        r_count += 1
                else:
                    vi[v, _V_PHASE] = phase
                    vi[v, _V_NEXT] = -1
                    if q_tail[ask] < 0:
                        q_head[ask] = v
                    else:
                        vi[q_tail[ask], _V_NEXT] = v
                    q_tail[ask] = v
        for m, s in ((release, release_s), (release2, release2_s)):
            if m < 0:
                continue
            u = q_head[s]
            if u < 0:
                idle[first_server[s] + n_idle[s]] = m
                n_idle[s] += 1
            else:  # the longest waiting gets the server
                q_head[s] = vi[u, _V_NEXT]
                if q_head[s] < 0:
                    q_tail[s] = -1
                if vi[u, _V_PHASE] == _GRANT_WORKER:
                    vi[u, _V_WORKER] = m
                else:
                    vi[u, _V_CORE] = m
                ring[(r_head + r_count) & r_mask] = u * 64 + vi[u, _V_PHASE]
                r_count += 1
    counters[0] += tls_hs
    counters[1] += visits
    if last_time > counters[2]:
        counters[2] = last_time
    loop[_L_SIZE] = size
    loop[_L_SEQ] = seq
    loop[_L_V_FREE] = v_free
    loop[_L_V_TOP] = v_top
    return root_end


@numba.njit(cache=True, nogil=True)
def layout_calls(columns: np.ndarray, out: np.ndarray) -> None:
    """The rows of `run_window` (calls x fields, into `out`) from the columns the calls
    were drawn in (fields x calls)."""
    n_fields, n = columns.shape
    for i in range(n):
        for f in range(n_fields):
            out[i, f] = columns[f, i]


# ---- pool state between windows -------------------------------------------------


_GOLDEN = np.int64(0x9E3779B97F4A7C15 - (1 << 64))  # the golden ratio, as a signed int64


@numba.njit(cache=True, nogil=True)
def lookup_or_insert(
    keys: np.ndarray, table: np.ndarray, pool_key: np.ndarray, used: np.ndarray
) -> np.ndarray:
    """Pool ids for keys: `table` holds ids by open addressing (-1 empty), `pool_key` the
    key of each id; a new key gets the next id (`used`). The table must stay under half
    full and pool_key have room for the new ids."""
    mask = table.shape[0] - 1
    out = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        key = keys[i]
        h = (key * _GOLDEN) & mask
        while True:
            idx = table[h]
            if idx < 0:
                idx = used[0]
                used[0] += 1
                table[h] = idx
                pool_key[idx] = key
                out[i] = idx
                break
            if pool_key[idx] == key:
                out[i] = idx
                break
            h = (h + 1) & mask
    return out


@numba.njit(cache=True, nogil=True)
def rehash(table: np.ndarray, pool_key: np.ndarray, n: int) -> None:
    """Enter ids 0..n-1 (keys all different) into an empty table."""
    mask = table.shape[0] - 1
    for idx in range(n):
        h = (pool_key[idx] * _GOLDEN) & mask
        while table[h] >= 0:
            h = (h + 1) & mask
        table[h] = idx


@numba.njit(cache=True, nogil=True)
def finish_pools(
    n_pools: int,
    end: float,
    idle_s: float,
    life_s: float,
    pools: np.ndarray,
    conns: np.ndarray,
    w0: float,
    w1: float,
) -> None:
    """Close every connection at the end of the run, or where it would have timed out."""
    for p in range(n_pools):
        k = pools[p].head
        while k >= 0:
            at = end
            if conns[k].active == 0:
                at = min(end, _idle_close(pools, conns, p, k, idle_s, life_s))
            pools[p].seconds += _overlap(conns[k].opened, at, w0, w1)
            k = conns[k].next
        pools[p].head = -1


@numba.njit(cache=True, nogil=True)
def close_idle(
    n_pools: int,
    now: float,
    idle_s: float,
    life_s: float,
    pools: np.ndarray,
    conns: np.ndarray,
    free: np.ndarray,
    w0: float,
    w1: float,
) -> None:
    """`_expire` for every pool at once: what the next acquire of each would do first (so
    that pools left without connections can be forgotten)."""
    for p in range(n_pools):
        _expire(p, now, idle_s, life_s, pools, conns, free, w0, w1)


@numba.njit(cache=True, nogil=True)
def compact(records: np.ndarray, keep: np.ndarray) -> int:
    """Move the records to keep to the front, in order, in place (a copy of millions of
    pool records at once would double them in memory); returns how many were kept."""
    kept = 0
    for i in range(keep.shape[0]):
        if keep[i]:
            if kept != i:
                records[kept] = records[i]
            kept += 1
    return kept


@numba.njit(cache=True, nogil=True, inline="always")
def _conn_column(j: int, n_boxes: int) -> int:
    """The column of a call's state that holds its connection into box j (j = n_boxes:
    into the app)."""
    return _S_BOXES + 2 * j + 1 if j < n_boxes else _S_CONN_APP


@numba.njit(cache=True, nogil=True)
def carry_over(
    calls: np.ndarray,
    st: np.ndarray,
    n_boxes: int,
    kids: np.ndarray,
    root_start: np.ndarray,
    root_end: np.ndarray,
    root_call: np.ndarray,
    think: np.ndarray,
    n_carry: int,
    carry_user: np.ndarray,
    per_user: int,
    heap: np.ndarray,
    vi: np.ndarray,
    conns: np.ndarray,
    loop: np.ndarray,
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """After a window stopped at its end: keep the requests in flight, and every call of
    theirs, for the next window. Their rows move to the front of `calls` and `st` (in
    order), their calls' ids to the front of `kids`, and every reference to a call is
    renumbered: parents, the calls' kids, the events in the heap, the visits, and the calls
    waiting for a connection still handshaking. The heap's sequence numbers are renumbered
    in their order (ties keep theirs), so that they never run out over a long run.

    Returns (calls kept, kids kept, and of each request kept: its start, think time, user
    and root call)."""
    n_calls = calls.shape[0]
    n_roots = root_start.shape[0]
    new_req = np.full(n_roots, -1, np.int64)
    kept = 0
    for r in range(n_roots):
        if root_end[r] == math.inf and root_start[r] < math.inf:  # started, not ended
            new_req[r] = kept
            kept += 1
    start = np.empty(kept, np.float64)
    later = np.empty(kept, np.float64)
    user = np.empty(kept, np.int64)
    root = np.empty(kept, np.int64)
    # each call's request: a call's parent comes before it
    req_of = np.empty(n_calls, np.int64)
    new_call = np.full(n_calls, -1, np.int64)
    n_keep = 0
    for c in range(n_calls):
        up = int(calls[c, _F_PARENT])
        if up < 0:
            req_of[c] = -1 - up
        elif up < c:
            req_of[c] = req_of[up]
        else:
            raise ValueError("carry_over: a call before its parent")
        if new_req[req_of[c]] >= 0:
            new_call[c] = n_keep
            n_keep += 1
    for r in range(n_roots):
        q = new_req[r]
        if q >= 0:
            start[q] = root_start[r]
            later[q] = think[r] if think.shape[0] else 0.0
            if per_user > 0:
                user[q] = carry_user[r] if r < n_carry else (r - n_carry) // per_user
            else:
                user[q] = -1
            root[q] = new_call[root_call[r]]
    # the calls waiting for a connection still handshaking: marked while renumbered (a
    # connection may be reached from several calls, and from rows left from its earlier use)
    for c in range(n_calls):
        if new_call[c] < 0:
            continue
        for j in range(n_boxes + 1):
            k = int(st[c, _conn_column(j, n_boxes)])
            if k >= 0 and conns[k].waiters >= 0:
                conns[k].waiters = -10 - new_call[conns[k].waiters]
    n_kids = 0
    for c in range(n_calls):
        d = new_call[c]
        if d < 0:
            continue
        for j in range(n_boxes + 1):
            k = int(st[c, _conn_column(j, n_boxes)])
            if k >= 0 and conns[k].waiters <= -10:
                conns[k].waiters = -10 - conns[k].waiters
        # the rows move forward (d <= c): every row before c has been read
        first, nk = int(calls[c, _F_FIRST_KID]), int(calls[c, _F_N_KIDS])
        for q in range(nk):  # kids of a kept call are kept, in order (n_kids <= first)
            kids[n_kids + q] = new_call[kids[first + q]]
        calls[d, :] = calls[c, :]
        st[d, :] = st[c, :]
        calls[d, _F_FIRST_KID] = n_kids
        n_kids += nk
        up = int(calls[d, _F_PARENT])
        calls[d, _F_PARENT] = new_call[up] if up >= 0 else -1 - new_req[-1 - up]
        w = int(st[d, _S_WAIT])
        if w >= 0:
            st[d, _S_WAIT] = new_call[w]
    # the heap: calls' events renumbered, and every sequence number by its rank
    hk = heap.view(np.int64)
    size = loop[_L_SIZE]
    seqs = np.empty(size, np.int64)
    for i in range(size):
        key = hk[2 * i + 1]
        code = int(key & _CODE_MASK) - _CODE_OFFSET
        if code >= 0 and (code & 63) < _GRANT_WORKER:
            code = new_call[code >> 6] * 64 + (code & 63)
        seqs[i] = key >> _CODE_BITS
        hk[2 * i + 1] = code + _CODE_OFFSET
    order = np.argsort(seqs)
    for rank in range(size):
        i = order[rank]
        hk[2 * i + 1] |= rank << _CODE_BITS
    loop[_L_SEQ] = size
    # the visits' calls (a deferred burst may outlive its call: -1, never read again)
    for v in range(loop[_L_V_TOP]):
        c = vi[v, _V_CALL]
        if 0 <= c < n_calls:
            vi[v, _V_CALL] = new_call[c]
    return n_keep, n_kids, start, later, user, root
