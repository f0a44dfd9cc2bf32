"""How late a sleeping process wakes on this host: sleep GAP_MS, again and again for
SECONDS, and print how often and by how much a wake-up came late beyond the usual.

    taskset -c 0 python wake-probe.py 5 60 & taskset -c 1 python wake-probe.py 10 60

(wake-probe.txt: both at once, 27 Nov 2026, the host otherwise idle). Bounded in time; it
sends nothing anywhere."""

from __future__ import annotations

import sys
import time

import numpy as np


def main() -> None:
    gap_s = float(sys.argv[1]) / 1000
    seconds = float(sys.argv[2])
    late: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        time.sleep(gap_s)
        late.append(time.perf_counter() - t0 - gap_s)
    late_ms = np.array(late) * 1e3
    usual = float(np.median(late_ms))
    extra = late_ms - usual
    for threshold in (0.5, 1, 2, 5):
        over = extra > threshold
        mean = float(extra[over].mean()) if over.any() else 0.0
        print(
            f"gap {gap_s * 1e3:.0f} ms n {late_ms.size} median late {usual:.3f} ms; "
            f"late by >{threshold} ms: {over.mean() * 100:.3f}% mean excess {mean:.2f} ms"
        )
    q = np.quantile(late_ms, [0.5, 0.9, 0.99, 0.999])
    print(
        f"quantiles of lateness (ms): p50 {q[0]:.3f} p90 {q[1]:.3f} p99 {q[2]:.3f} "
        f"p99.9 {q[3]:.3f} max {late_ms.max():.2f}"
    )


if __name__ == "__main__":
    main()
