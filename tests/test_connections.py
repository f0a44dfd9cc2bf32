"""Connection pools: reuse, idle timeout, max requests, multiplexing, certificate rotation."""

from __future__ import annotations

import math
import random

import pytest

from meshsim.connections import Connection, ConnectionLedger, ConnectionPool


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


class _Walking(ConnectionPool):
    """The pool without its idle count: every acquire walks every connection (as it did
    before the count, which only skips walks that find nothing)."""

    def _expire(self, now: float) -> None:
        self.idle = 1
        super()._expire(now)

    def acquire(self, now: float) -> tuple[Connection, bool]:
        self._expire(now)
        self.idle = 1
        return super().acquire(now)


@pytest.mark.parametrize("seed", range(12))
def test_the_idle_count_changes_no_choice(seed: int) -> None:
    """Random acquires and releases (bursts that pile up hundreds of busy connections,
    idle gaps past the timeout, certificate rotations, used-up connections) on the pool
    and on one that walks every connection each time: the same connections, the same
    opens, the same connection-seconds; and the count is the number of idle connections."""
    rng = random.Random(seed)
    kwargs = {
        "multiplexed": seed % 3 == 0,
        "max_streams": 2,
        "idle_timeout_s": rng.choice([0.5, 3.0]),
        "max_requests": rng.choice([None, 3, 50]),
        "cert_lifetime_s": rng.choice([math.inf, 7.0]),
        "rotation_phase_s": 1.0,
        "owners": (0, 1),
    }
    pools = [
        cls(ledger=ConnectionLedger(0.0, 40.0), **kwargs)  # type: ignore[arg-type]
        for cls in (ConnectionPool, _Walking)
    ]
    held: list[list[Connection]] = [[], []]
    now = 0.0
    for _ in range(3000):
        now += rng.expovariate(200.0) if rng.random() < 0.9 else rng.uniform(0, 4)
        if held[0] and rng.random() < 0.45:
            i = rng.randrange(len(held[0]))
            for p, h in zip(pools, held, strict=True):
                p.release(h.pop(i), now)
        else:
            got = [p.acquire(now) for p in pools]
            assert got[0][1] == got[1][1]
            assert pools[0].connections.index(got[0][0]) == pools[1].connections.index(got[1][0])
            for h, (conn, _) in zip(held, got, strict=True):
                h.append(conn)
        idle = sum(c.active == 0 for c in pools[0].connections)
        assert pools[0].idle == idle
    for p in pools:
        p.finish(40.0)
    assert pools[0].ledger == pools[1].ledger
    assert pools[0].owner_seconds == pools[1].owner_seconds
