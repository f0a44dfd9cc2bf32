"""Connection pools: when a hop reuses a connection and when it must open (and handshake) anew.

A pool belongs to one origin (a sidecar worker, a ztunnel and source identity, an app)
and one upstream. HTTP/1.1 connections carry one request at a time; HTTP/2 (HBONE)
connections multiplex up to `max_streams` requests. A connection closes when it has
been idle for `idle_timeout_s`, after `max_requests`, or when the certificate it was
opened with rotates. Time is passed in explicitly, so any engine can drive a pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Connection", "ConnectionLedger", "ConnectionPool"]


@dataclass
class Connection:
    opened_at: float
    expires_at: float  # next certificate rotation
    last_used: float
    requests: int = 0
    active: int = 0
    ready: Any = None  # the engine's handle for 'handshake finished'
    closed: bool = False


@dataclass
class ConnectionLedger:
    """Sums connection-seconds and handshakes inside the measurement window [start, end)."""

    start: float
    end: float
    connection_seconds: float = 0.0
    handshakes: int = 0
    opened: int = 0

    def record_open(self, t: float) -> None:
        self.opened += 1
        if self.start <= t < self.end:
            self.handshakes += 1

    def record_close(self, opened_at: float, closed_at: float) -> float:
        """Adds the connection's open time inside the window; returns that time."""
        seconds = max(0.0, min(closed_at, self.end) - max(opened_at, self.start))
        self.connection_seconds += seconds
        return seconds


@dataclass
class ConnectionPool:
    multiplexed: bool
    max_streams: int
    idle_timeout_s: float
    max_requests: int | None
    cert_lifetime_s: float
    rotation_phase_s: float
    ledger: ConnectionLedger
    owners: tuple[int, int]  # component indices of the two ends, for memory per connection
    connections: list[Connection] = field(default_factory=list)
    owner_seconds: float = 0.0
    # how many of its connections carry no request now: with none, nothing can time out
    # and (HTTP/1.1) nothing can be reused, so an acquire walks no connection (a pool of an
    # overloaded proxy holds thousands, all busy: walking them made a run quadratic)
    idle: int = 0

    def _next_rotation(self, t: float) -> float:
        period = self.cert_lifetime_s
        k = math.floor((t - self.rotation_phase_s) / period) + 1
        return self.rotation_phase_s + k * period

    def _close(self, conn: Connection, at: float) -> None:
        conn.closed = True
        self.owner_seconds += self.ledger.record_close(conn.opened_at, at)

    def _expire(self, now: float) -> None:
        """Close what timed out, rotated or was used up, at the moment it happened."""
        if self.idle == 0:  # only an idle connection closes
            return
        keep = []
        for conn in self.connections:
            if conn.active == 0:
                idle_end = conn.last_used + self.idle_timeout_s
                if idle_end <= now or conn.expires_at <= now:
                    self._close(conn, min(idle_end, max(conn.expires_at, conn.last_used)))
                    self.idle -= 1
                    continue
            keep.append(conn)
        self.connections = keep

    def acquire(self, now: float) -> tuple[Connection, bool]:
        """A connection for one request; True when it is new and must be handshaken."""
        self._expire(now)
        if self.idle > 0 or self.multiplexed:
            for conn in reversed(self.connections):  # most recently opened first
                if conn.expires_at <= now or self._used_up(conn):
                    continue
                if conn.active == 0 or (self.multiplexed and conn.active < self.max_streams):
                    if conn.active == 0:
                        self.idle -= 1
                    conn.active += 1
                    conn.requests += 1
                    conn.last_used = now
                    return conn, False
        conn = Connection(now, self._next_rotation(now), now, requests=1, active=1)
        self.connections.append(conn)
        self.ledger.record_open(now)
        return conn, True

    def _used_up(self, conn: Connection) -> bool:
        return self.max_requests is not None and conn.requests >= self.max_requests

    def release(self, conn: Connection, now: float) -> None:
        conn.active -= 1
        conn.last_used = now
        if conn.active == 0:
            if self._used_up(conn):
                self.connections.remove(conn)
                self._close(conn, now)
            else:
                self.idle += 1

    def finish(self, end: float) -> None:
        """Close everything at the end of the run (or earlier, where it would have timed out)."""
        for conn in self.connections:
            at = end
            if conn.active == 0:
                at = min(
                    end, conn.last_used + self.idle_timeout_s, max(conn.expires_at, conn.last_used)
                )
            self._close(conn, at)
        self.connections = []
        self.idle = 0
