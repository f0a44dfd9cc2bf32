"""Compiled kernels of the vector engine: the recurrences numpy cannot express in O(N).

- `fifo_waits`: FIFO queues with c identical servers, many queues at once. With c = 1
  this is Lindley's recursion; with c > 1 (node cores, ztunnel workers, app slots) a
  job starts when the earliest-free server frees, which has no exact O(N) numpy form.
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
    "fifo_waits",
    "finish_pools",
    "lookup_or_insert",
    "pool_events",
    "pool_slots",
    "resort",
]

_EMPTY = np.int64(-1)


@numba.njit(cache=True, nogil=True)
def fifo_waits(
    station: np.ndarray,
    arrival: np.ndarray,
    service: np.ndarray,
    order: np.ndarray,
    first_server: np.ndarray,
    servers: np.ndarray,
    free_at: np.ndarray,
    previous: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Waits of jobs at FIFO multi-server queues; `free_at` (per server) is updated in place.

    `order` sorts the jobs by (station, arrival). A job takes the server that frees
    first; its wait is how long after arrival that server frees. Also returns how far
    the waits moved from `previous` (summed over its length), to tell when sweeps settle.
    """
    wait = np.zeros(arrival.shape[0])
    for k in range(order.shape[0]):
        j = order[k]
        s = station[j]
        base = first_server[s]
        best = base
        best_t = free_at[base]
        for m in range(base + 1, base + servers[s]):
            if free_at[m] < best_t:
                best_t = free_at[m]
                best = m
        start = arrival[j] if arrival[j] > best_t else best_t
        wait[j] = start - arrival[j]
        if service[j] > 0:  # a job of no work occupies no server (nor moves its clock)
            free_at[best] = start + service[j]
    moved = 0.0
    for j in range(previous.shape[0]):
        moved += abs(wait[j] - previous[j])
    return wait, moved


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
