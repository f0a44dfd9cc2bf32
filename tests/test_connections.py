"""Connection pools: reuse, idle timeout, max requests, multiplexing, certificate rotation."""

from __future__ import annotations

import math

import pytest

from meshsim.connections import ConnectionLedger, ConnectionPool


def pool(
    *,
    multiplexed: bool = False,
    idle: float = 10.0,
    max_requests: int | None = None,
    lifetime: float = math.inf,
    phase: float = 0.0,
) -> ConnectionPool:
    return ConnectionPool(
        multiplexed=multiplexed,
        max_streams=2,
        idle_timeout_s=idle,
        max_requests=max_requests,
        cert_lifetime_s=lifetime,
        rotation_phase_s=phase,
        ledger=ConnectionLedger(0.0, 100.0),
        owners=(0, 1),
    )


def test_http1_reuses_an_idle_connection_and_opens_one_per_concurrent_request() -> None:
    p = pool()
    a, new_a = p.acquire(1.0)
    _, new_b = p.acquire(1.5)  # a is busy: HTTP/1.1 needs a second connection
    p.release(a, 2.0)
    c, new_c = p.acquire(3.0)
    assert (new_a, new_b, new_c) == (True, True, False)
    assert c is a
    assert p.ledger.opened == 2


def test_http2_multiplexes_up_to_max_streams() -> None:
    p = pool(multiplexed=True)
    first = [p.acquire(1.0) for _ in range(3)]
    assert [new for _, new in first] == [True, False, True]
    assert first[0][0] is first[1][0] is not first[2][0]


def test_idle_timeout_closes_and_forces_a_new_handshake() -> None:
    p = pool(idle=5.0)
    conn, _ = p.acquire(0.0)
    p.release(conn, 1.0)
    _, new = p.acquire(5.9)  # idle 4.9 s: reused
    assert not new
    p.release(conn, 6.0)
    _, new = p.acquire(11.5)  # idle 5.5 s: closed at 11.0
    assert new
    assert p.ledger.handshakes == 2
    p.finish(20.0)
    # first connection open [0, 11), second [11.5, 20)
    assert p.ledger.connection_seconds == pytest.approx(11.0 + 8.5)


def test_max_requests_per_connection() -> None:
    p = pool(max_requests=2)
    for t in range(5):
        conn, _ = p.acquire(float(t))
        p.release(conn, t + 0.5)
    assert p.ledger.opened == 3  # requests 1-2, 3-4, 5


def test_certificate_rotation_forces_a_new_connection() -> None:
    p = pool(lifetime=10.0, phase=3.0)  # certificates rotate at 3, 13, 23, ...
    conn, _ = p.acquire(4.0)
    p.release(conn, 4.5)
    _, new = p.acquire(12.0)
    assert not new
    p.release(conn, 12.5)
    _, new = p.acquire(13.5)
    assert new
    assert p.ledger.handshakes == 2


def test_ledger_counts_only_inside_the_window() -> None:
    ledger = ConnectionLedger(10.0, 20.0)
    ledger.record_open(5.0)
    ledger.record_open(15.0)
    assert (ledger.opened, ledger.handshakes) == (2, 1)
    assert ledger.record_close(5.0, 25.0) == 10.0
