"""Host-state probes, pinned to one host core (the argument, default 1); prints one JSON line.

loop_us: a pure Python loop of 300,000 multiply-adds, CPU us per 1,000.
gather_ns: a numpy random gather over 64 MiB (memory latency), CPU ns per element.
pingpong_cpu_us / pingpong_wall_us: 3,000 round trips of 32 bytes over a Unix socket pair to
  a forked child on the same core, CPU (both ends; the child's from os.times, in 10 ms ticks)
  and wall time per round trip.
burst_cold_us / burst_warm_us: a small burst (2,000 dict inserts, a 2 MiB sum) right after a
  10 ms sleep, and again right after itself; median CPU of 60.
"""

import json
import os
import socket
import sys
import time

import numpy as np


def cpu() -> float:
    return time.thread_time()


def main() -> None:
    os.sched_setaffinity(0, {int(sys.argv[1]) if len(sys.argv) > 1 else 1})
    out: dict[str, float | str] = {}

    t = cpu()
    s = 0
    for i in range(300_000):
        s += i * i
    out["loop_us"] = (cpu() - t) * 1e6 / 300

    a = np.arange(8 * 2**20, dtype=np.int64)
    idx = np.random.default_rng(1).integers(0, len(a), 2**21)
    a[idx].sum()  # pages touched once before timing
    t = cpu()
    a[idx].sum()
    out["gather_ns"] = (cpu() - t) * 1e9 / len(idx)

    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        while True:
            message = child.recv(64)
            if not message or message == b"q":
                break
            child.send(message)
        os._exit(0)
    child.close()
    n = 3000
    t0, t, c0 = time.perf_counter(), cpu(), os.times()
    for _ in range(n):
        parent.send(b"x" * 32)
        parent.recv(64)
    parent.send(b"q")
    os.waitpid(pid, 0)
    c1 = os.times()
    children = c1.children_user + c1.children_system - c0.children_user - c0.children_system
    out["pingpong_cpu_us"] = ((cpu() - t) + children) * 1e6 / n
    out["pingpong_wall_us"] = (time.perf_counter() - t0) * 1e6 / n

    buf = np.ones(2**18)  # 2 MiB

    def burst() -> float:
        d = {}
        for i in range(2000):
            d[i] = i
        return float(buf.sum())

    burst()
    cold, warm = [], []
    for _ in range(60):
        time.sleep(0.010)
        t = cpu()
        burst()
        cold.append(cpu() - t)
        t = cpu()
        burst()
        warm.append(cpu() - t)
    out["burst_cold_us"] = float(np.median(cold) * 1e6)
    out["burst_warm_us"] = float(np.median(warm) * 1e6)
    out["at"] = time.strftime("%H:%M:%S")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
