"""The testbed's Locust file: load shaped by the scenario, raw latency captured exactly.

Run by `meshsim.testbed.load` in a subprocess (never imported by meshsim: Locust
monkey-patches gevent on import). Configuration comes from the JSON file named by
MESHSIM_LOAD_CONFIG. Every request's start time and its latency, as Locust measured it
with perf_counter (microseconds, not the whole milliseconds of Locust's own stats), are
kept from the `request` event and written to `out` as a .npy array when Locust quits.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from geventhttpclient.client import HTTPClientPool
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from meshsim.engines.des import child_rng
from meshsim.loadgen import SPAWN_S, first_arrival_s
from meshsim.scenario import Traffic

with open(os.environ["MESHSIM_LOAD_CONFIG"]) as _fh:
    CONFIG: dict[str, Any] = json.load(_fh)
TRAFFIC = Traffic.model_validate(CONFIG["traffic"])
USERS = int(CONFIG["users"])
MAX_REQUESTS = int(CONFIG["max_requests"])
RESPONSE_BYTES = str(CONFIG["response_bytes"])
BODY = "x" * int(CONFIG["request_bytes"])
TARGETS: list[str] = CONFIG["targets"]

_records: list[tuple[float, float, bool]] = []  # (start epoch s, latency ms, ok)
_rng = child_rng(int(CONFIG["seed"]), "testbed/loadgen")
_spawned = itertools.count()  # paced users, in the order Locust starts them
_schedules_begin: list[float] = []  # monotonic time the paced users' schedules begin


def _record(
    response_time: float, exception: BaseException | None, start_time: float = 0.0, **_: Any
) -> None:
    _records.append((start_time, response_time, exception is None))
    if len(_records) == MAX_REQUESTS:
        runner = _environment.runner if _environment else None
        if runner is not None:
            threading.Thread(target=runner.quit).start()  # a greenlet: Locust patched threads


_environment: Environment | None = None


def _init(environment: Environment, **_: Any) -> None:
    global _environment
    _environment = environment


def _started(environment: Environment, **_: Any) -> None:
    # The run's clock starts here and Locust is stopped from here, so the window the
    # orchestrator measures (warm-up to duration after this instant) is the load's own.
    with open(CONFIG["started_file"], "w") as fh:
        fh.write(f"{time.time():.6f}\n")
    runner = environment.runner
    if runner is not None:
        threading.Timer(TRAFFIC.duration_s, runner.quit).start()


def _write(**_: Any) -> None:
    data = np.asarray(_records, dtype=np.float64).reshape(-1, 3)
    tmp = CONFIG["out"] + ".tmp.npy"
    np.save(tmp, data)
    os.replace(tmp, CONFIG["out"])


def _listen(hook: Any, handler: Callable[..., None]) -> None:
    hook.add_listener(handler)  # Locust's hooks are untyped


_listen(events.request, _record)
_listen(events.init, _init)
_listen(events.test_start, _started)
_listen(events.quitting, _write)


class MeshUser(FastHttpUser):
    host = TARGETS[0]
    # one connection pool for all users, as one client pod's app would keep: connections
    # are opened as concurrent requests need them and reused, not one per user
    client_pool = HTTPClientPool(concurrency=USERS)
    connection_timeout = 5.0
    network_timeout = 30.0

    def __init__(self, environment: Environment):
        super().__init__(environment)
        loop = TRAFFIC.open_loop
        self.gap_s = USERS / loop.rate_rps if loop is not None else 0.0
        if not _schedules_begin:  # the first user: every paced schedule begins then
            _schedules_begin.append(time.monotonic() + SPAWN_S)
        self.due = _schedules_begin[0]
        if loop is not None:  # the users' first arrivals spread over one gap
            index = next(_spawned)
            self.due += first_arrival_s(index, USERS, loop.rate_rps, loop.arrivals, _rng)

    def wait_time(self) -> float:
        if TRAFFIC.closed_loop is not None:
            return float(TRAFFIC.closed_loop.think_time.sample_s(_rng, 1)[0])
        loop = TRAFFIC.open_loop
        assert loop is not None
        # Open loop: each user's arrivals are a paced (or Poisson) process of rate R/users,
        # scheduled from the previous due time, not from when its response came back.
        gap = self.gap_s if loop.arrivals == "constant" else float(_rng.exponential(self.gap_s))
        self.due += gap
        return max(0.0, self.due - time.monotonic())

    def on_start(self) -> None:
        if TRAFFIC.open_loop is not None:
            time.sleep(max(0.0, self.due - time.monotonic()))  # cooperative: Locust patched it

    @task
    def call_entry(self) -> None:
        self.client.request(
            "POST",
            TARGETS[int(_rng.integers(len(TARGETS)))],
            data=BODY,
            headers={"x-response-bytes": RESPONSE_BYTES},
            name="entry",
        )
