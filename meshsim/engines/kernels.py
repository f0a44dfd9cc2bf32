"""Compiled kernels of the vector engine: the recurrences numpy cannot express in O(N).

- `solve_visits`: every FIFO queue of a window at once (node cores, proxy workers, app
  slots). A proxy pass holds a worker while it queues for a core, so the two kinds of
  queue cannot be solved one after the other with a recurrence (Lindley's, or its
  multi-server form, which has no exact O(N) numpy form anyway); events are processed
  in time order instead.
- `resort`: re-sorts an almost sorted order by insertion (each sweep moves few visits).
- `pool_events`: connection pools driven by acquire/release events in time order
  (meshsim.connections' semantics: reuse the most recently opened usable connection,
  close on idle timeout, certificate rotation or max requests).
- `lookup_or_insert`: an open-addressing hash from int64 keys to dense ids, so pool
  state can live in flat arrays.

Numba compiles these on first use and caches the machine code on disk.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "finish_pools",
    "lookup_or_insert",
    "pool_events",
    "pool_slots",
    "resort",
    "solve_visits",
]

_EMPTY = np.int64(-1)


@numba.njit(cache=True, nogil=True)
def lookup_or_insert(
    keys: np.ndarray, table_keys: np.ndarray, table_ids: np.ndarray, used: np.ndarray
) -> np.ndarray:
    """Dense ids for keys (new keys get the next id); the table must be under half full."""
    mask = table_keys.shape[0] - 1
    out = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        key = keys[i]
        h = (key * np.int64(0x9E3779B97F4A7C15)) & mask
        while True:
            if table_keys[h] == key:
                out[i] = table_ids[h]
                break
            if table_keys[h] == _EMPTY:
                table_keys[h] = key
                table_ids[h] = used[0]
                out[i] = used[0]
                used[0] += 1
                break
            h = (h + 1) & mask
    return out


@numba.njit(cache=True, nogil=True)
def _window_seconds(opened: float, closed: float, w0: float, w1: float) -> float:
    a = opened if opened > w0 else w0
    b = closed if closed < w1 else w1
    return b - a if b > a else 0.0


@numba.njit(cache=True, nogil=True)
def _close(
    c: int,
    p: int,
    prev: int,
    at: float,
    head: np.ndarray,
    nxt: np.ndarray,
    opened: np.ndarray,
    seconds: np.ndarray,
    free: np.ndarray,
    w0: float,
    w1: float,
) -> None:
    if prev < 0:
        head[p] = nxt[c]
    else:
        nxt[prev] = nxt[c]
    seconds[p] += _window_seconds(opened[c], at, w0, w1)
    nxt[c] = free[0]
    free[0] = c


@numba.njit(cache=True, nogil=True)
def pool_events(
    ev_time: np.ndarray,
    ev_acquire: np.ndarray,
    ev_ref: np.ndarray,
    acq_pool: np.ndarray,
    acq_setup_s: np.ndarray,
    p_mux: np.ndarray,
    p_max_streams: np.ndarray,
    p_idle_s: np.ndarray,
    p_max_requests: np.ndarray,
    p_lifetime_s: np.ndarray,
    p_phase_s: np.ndarray,
    p_head: np.ndarray,
    p_seconds: np.ndarray,
    c_next: np.ndarray,
    c_opened: np.ndarray,
    c_expires: np.ndarray,
    c_last: np.ndarray,
    c_requests: np.ndarray,
    c_active: np.ndarray,
    c_ready: np.ndarray,
    free: np.ndarray,
    live: np.ndarray,
    w0: float,
    w1: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Process acquires and releases (sorted by time) on pools kept as linked lists.

    Returns, per acquisition, whether it opened a connection and when the connection
    it got is ready (a request joining an HTTP/2 connection still handshaking waits).
    Connection-seconds inside [w0, w1) are added to `p_seconds` as connections close;
    `live[0]` counts open connections (the caller keeps free slots for every acquire).
    """
    n_acq = acq_pool.shape[0]
    is_new = np.zeros(n_acq, np.bool_)
    ready = np.zeros(n_acq)
    conn_of = np.full(n_acq, -1, np.int64)
    for e in range(ev_time.shape[0]):
        now = ev_time[e]
        a = ev_ref[e]
        p = acq_pool[a]
        if not ev_acquire[e]:
            c = conn_of[a]
            c_active[c] -= 1
            c_last[c] = now
            if c_active[c] == 0 and 0 < p_max_requests[p] <= c_requests[c]:
                prev = -1
                cur = p_head[p]
                while cur != c:
                    prev = cur
                    cur = c_next[cur]
                _close(c, p, prev, now, p_head, c_next, c_opened, p_seconds, free, w0, w1)
                live[0] -= 1
            continue
        # expire what timed out or rotated while idle, at the moment it happened
        prev = -1
        cur = p_head[p]
        while cur >= 0:
            following = c_next[cur]
            if c_active[cur] == 0:
                idle_end = c_last[cur] + p_idle_s[p]
                if idle_end <= now or c_expires[cur] <= now:
                    at = min(idle_end, max(c_expires[cur], c_last[cur]))
                    _close(cur, p, prev, at, p_head, c_next, c_opened, p_seconds, free, w0, w1)
                    live[0] -= 1
                    cur = following
                    continue
            prev = cur
            cur = following
        chosen = -1
        cur = p_head[p]  # most recently opened first
        while cur >= 0:
            used_up = 0 < p_max_requests[p] <= c_requests[cur]
            usable = c_expires[cur] > now and not used_up
            # an idle connection still busy with an earlier window's request is not free
            idle = c_active[cur] == 0 and (p_mux[p] or c_last[cur] <= now)
            if usable and (idle or (p_mux[p] and c_active[cur] < p_max_streams[p])):
                chosen = cur
                break
            cur = c_next[cur]
        if chosen >= 0:
            c_active[chosen] += 1
            c_requests[chosen] += 1
            c_last[chosen] = now
            ready[a] = c_ready[chosen]
        else:
            chosen = free[0]
            free[0] = c_next[chosen]
            live[0] += 1
            period = p_lifetime_s[p]
            phase = p_phase_s[p]
            c_opened[chosen] = now
            c_expires[chosen] = phase + (math.floor((now - phase) / period) + 1) * period
            c_last[chosen] = now
            c_requests[chosen] = 1
            c_active[chosen] = 1
            c_ready[chosen] = now + acq_setup_s[a]
            c_next[chosen] = p_head[p]
            p_head[p] = chosen
            is_new[a] = True
            ready[a] = now
        conn_of[a] = chosen
    return is_new, ready


@numba.njit(cache=True, nogil=True)
def finish_pools(
    n_pools: int,
    end: float,
    p_idle_s: np.ndarray,
    p_head: np.ndarray,
    p_seconds: np.ndarray,
    c_next: np.ndarray,
    c_opened: np.ndarray,
    c_expires: np.ndarray,
    c_last: np.ndarray,
    c_active: np.ndarray,
    w0: float,
    w1: float,
) -> None:
    """Close every connection at the end of the run, or where it would have timed out."""
    for p in range(n_pools):
        c = p_head[p]
        while c >= 0:
            at = end
            if c_active[c] == 0:
                at = min(end, c_last[c] + p_idle_s[p], max(c_expires[c], c_last[c]))
            p_seconds[p] += _window_seconds(c_opened[c], at, w0, w1)
            c = c_next[c]
        p_head[p] = -1


@numba.njit(cache=True, nogil=True)
def pool_slots(
    pools: np.ndarray, allocations: int, p_head: np.ndarray, c_next: np.ndarray, free: np.ndarray
) -> np.ndarray:
    """Connection slots a run over these pools may touch: their connections, and the
    free slots it may allocate. Saving these is enough to undo the run."""
    out = []
    for i in range(pools.shape[0]):
        c = p_head[pools[i]]
        while c >= 0:
            out.append(c)
            c = c_next[c]
    c = free[0]
    for _ in range(allocations):
        if c < 0:
            break
        out.append(c)
        c = c_next[c]
    return np.array(out, np.int64)


@numba.njit(cache=True, nogil=True)
def resort(order: np.ndarray, station: np.ndarray, arrival: np.ndarray, budget: int) -> bool:
    """Re-sort `order` by (station, arrival) in place by insertion: O(n + moves), fast when
    the previous sweep's order is almost right. False (order unusable) past `budget` moves."""
    moves = 0
    for i in range(1, order.shape[0]):
        x = order[i]
        s, t = station[x], arrival[x]
        j = i - 1
        while j >= 0:
            y = order[j]
            if station[y] < s or (station[y] == s and arrival[y] <= t):
                break
            order[j + 1] = y
            j -= 1
            moves += 1
        if moves > budget:
            return False
        order[j + 1] = x
    return True


# ---- proxy passes: a worker held across core bursts, solved as events ----------------

PASS = 0  # hold a worker, burn `first` s on a core, then `second` s (deferred) on a core
CORE = 1  # burn `first` s on a core
HOLD = 2  # hold a server (an app concurrency slot) for `first` s

_GRANT_WORKER, _GRANT_CORE1, _GRANT_CORE2, _CORE1_DONE, _CORE2_DONE, _HOLD_DONE = range(6)


@numba.njit(cache=True, nogil=True)
def _push(
    h_time: np.ndarray,
    h_seq: np.ndarray,
    h_code: np.ndarray,
    size: int,
    seq: int,
    time: float,
    code: int,
) -> int:
    i = size
    h_time[i], h_seq[i], h_code[i] = time, seq, code
    while i > 0:
        parent = (i - 1) >> 1
        if h_time[parent] < h_time[i] or (h_time[parent] == h_time[i] and h_seq[parent] < h_seq[i]):
            break
        h_time[i], h_time[parent] = h_time[parent], h_time[i]
        h_seq[i], h_seq[parent] = h_seq[parent], h_seq[i]
        h_code[i], h_code[parent] = h_code[parent], h_code[i]
        i = parent
    return size + 1


@numba.njit(cache=True, nogil=True)
def _pop(h_time: np.ndarray, h_seq: np.ndarray, h_code: np.ndarray, size: int) -> int:
    size -= 1
    h_time[0], h_seq[0], h_code[0] = h_time[size], h_seq[size], h_code[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        best = left
        right = left + 1
        if right < size and (
            h_time[right] < h_time[left]
            or (h_time[right] == h_time[left] and h_seq[right] < h_seq[left])
        ):
            best = right
        if h_time[i] < h_time[best] or (h_time[i] == h_time[best] and h_seq[i] < h_seq[best]):
            break
        h_time[i], h_time[best] = h_time[best], h_time[i]
        h_seq[i], h_seq[best] = h_seq[best], h_seq[i]
        h_code[i], h_code[best] = h_code[best], h_code[i]
        i = best
    return size


@numba.njit(cache=True, nogil=True)
def solve_visits(
    kind: np.ndarray,
    arrival: np.ndarray,
    worker: np.ndarray,
    node: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    order: np.ndarray,
    first_server: np.ndarray,
    servers: np.ndarray,
    free_at: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Every queue of a window at once, as the DES engine runs them, given arrival times.

    A PASS holds a worker (FIFO over the proxy's worker station) while it queues for a
    core of its node (FIFO over the node's cores) and burns `first` seconds there; then,
    still holding the worker, it queues again for the deferred `second` seconds. Because
    a worker's holding time depends on the core queue, the two cannot be solved one after
    the other: events are processed in time order with a heap. `order` sorts arrivals.
    `free_at` gives when each server frees at the start and is updated to the end state.

    Returns per visit the wait until its first burst starts (for a HOLD: until it holds
    the slot) and the wait of its deferred burst for a core.
    """
    n = arrival.shape[0]
    n_servers = free_at.shape[0]
    station_of = np.empty(n_servers, np.int64)
    for s in range(servers.shape[0]):
        for m in range(first_server[s], first_server[s] + servers[s]):
            station_of[m] = s
    held = np.zeros(n_servers, np.bool_)
    q_head = np.full(servers.shape[0], -1, np.int64)
    q_tail = np.full(servers.shape[0], -1, np.int64)
    q_next = np.full(n, -1, np.int64)
    q_phase = np.zeros(n, np.int64)
    got_worker = np.full(n, -1, np.int64)
    got_core = np.full(n, -1, np.int64)
    asked = np.zeros(n)  # when the pending core request was made
    wait1 = np.zeros(n)
    wait2 = np.zeros(n)
    cap = n + n_servers + 8
    h_time = np.empty(cap)
    h_seq = np.empty(cap, np.int64)
    h_code = np.empty(cap, np.int64)
    size = 0
    seq = 0
    # grants at the current time wait here in FIFO order instead of in the heap
    ready = np.empty(n + 1, np.int64)
    r_head = 0
    r_count = 0
    now = 0.0
    start_t = arrival[order[0]] if order.shape[0] else 0.0
    for m in range(n_servers):
        if free_at[m] > start_t:
            held[m] = True
            size = _push(h_time, h_seq, h_code, size, seq, free_at[m], -(m + 1))
            seq += 1
    i = 0
    while i < order.shape[0] or size > 0 or r_count > 0:
        if r_count > 0:
            code = ready[r_head]
            r_head = (r_head + 1) % ready.shape[0]
            r_count -= 1
        elif size > 0 and (i >= order.shape[0] or h_time[0] <= arrival[order[i]]):
            now = h_time[0]
            code = h_code[0]
            size = _pop(h_time, h_seq, h_code, size)
        else:
            v = order[i]
            i += 1
            now = arrival[v]
            # an arrival asks for its first resource
            code = v * 8 + 7
        release = -1
        release2 = -1
        if code < 0:
            release = -code - 1
        else:
            v = code >> 3
            ev = code & 7
            ask = -1  # station to ask, and for which phase
            phase = 0
            if ev == 7:
                if kind[v] == CORE:
                    if first[v] > 0:
                        ask, phase = node[v], _GRANT_CORE1
                else:
                    ask, phase = worker[v], _GRANT_WORKER
            elif ev == _GRANT_WORKER:
                if kind[v] == HOLD:
                    wait1[v] = now - arrival[v]
                    size = _push(
                        h_time, h_seq, h_code, size, seq, now + first[v], v * 8 + _HOLD_DONE
                    )
                    seq += 1
                elif first[v] > 0:
                    ask, phase = node[v], _GRANT_CORE1
                else:
                    wait1[v] = now - arrival[v]
                    if second[v] > 0:
                        ask, phase = node[v], _GRANT_CORE2
                    else:
                        release = got_worker[v]
            elif ev == _GRANT_CORE1:
                wait1[v] = now - arrival[v]
                size = _push(h_time, h_seq, h_code, size, seq, now + first[v], v * 8 + _CORE1_DONE)
                seq += 1
            elif ev == _GRANT_CORE2:
                wait2[v] = now - asked[v]
                size = _push(h_time, h_seq, h_code, size, seq, now + second[v], v * 8 + _CORE2_DONE)
                seq += 1
            elif ev == _CORE1_DONE:
                release = got_core[v]
                if kind[v] == PASS:
                    if second[v] > 0:
                        ask, phase = node[v], _GRANT_CORE2
                    else:
                        release2 = got_worker[v]
            elif ev == _CORE2_DONE:
                release = got_core[v]
                release2 = got_worker[v]
            else:  # _HOLD_DONE
                release = got_worker[v]
            if ask >= 0:
                asked[v] = now
                granted = -1
                for m in range(first_server[ask], first_server[ask] + servers[ask]):
                    if not held[m]:
                        granted = m
                        break
                if granted >= 0:
                    held[granted] = True
                    if phase == _GRANT_WORKER:
                        got_worker[v] = granted
                    else:
                        got_core[v] = granted
                    ready[(r_head + r_count) % ready.shape[0]] = v * 8 + phase
                    r_count += 1
                else:
                    q_phase[v] = phase
                    q_next[v] = -1
                    if q_tail[ask] < 0:
                        q_head[ask] = v
                    else:
                        q_next[q_tail[ask]] = v
                    q_tail[ask] = v
        for m in (release, release2):
            if m < 0:
                continue
            held[m] = False
            free_at[m] = now
            s = station_of[m]
            u = q_head[s]
            if u >= 0:  # the longest waiting gets the server
                q_head[s] = q_next[u]
                if q_head[s] < 0:
                    q_tail[s] = -1
                held[m] = True
                if q_phase[u] == _GRANT_WORKER:
                    got_worker[u] = m
                else:
                    got_core[u] = m
                ready[(r_head + r_count) % ready.shape[0]] = u * 8 + q_phase[u]
                r_count += 1
    return wait1, wait2
