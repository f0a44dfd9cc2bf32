"""Benchmark: the DES and vector engines side by side, in one process, on the same scenarios.

    python bench/engines.py                 # bundled scenarios, reference networks, large cluster
    python bench/engines.py --skip-large    # without the 1,000-node scenario
    python bench/engines.py --large-long    # also the large cluster for 600 s (memory flatness)
    python bench/engines.py --large-only [--large-long] [--large-modes sidecar ...]
    python bench/engines.py --scaling [--large-modes sidecar]  # the shop at 1/100, 1/10, full

Per scenario it prints simulated requests, queue visits per second for each engine (a
queue visit is one request for a proxy worker, a node core or an app slot; the DES
engine's are counted as simpy resource requests), the ratio, and each run's peak
resident memory (sampled from /proc while the run lasts). The plain queueing networks
(an M/M/4 queue, a four-station M/M/1 tandem) also run on Ciw, as an outside
reference, when it is installed (`pip install -e '.[bench]'`). Times are wall-clock
and the machine may be shared: compare ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import simpy

from meshsim.calibrate.params import zero_cost
from meshsim.engines.des import simulate_mode as simulate_des
from meshsim.engines.vector import VectorStats
from meshsim.engines.vector import simulate_mode as simulate_vector
from meshsim.loader import load_scenario
from meshsim.profile import Profile
from meshsim.results import ModeResult
from meshsim.run import mode_jobs, simulate
from meshsim.scenario import Mode, Scenario
from meshsim.topology import Topology, build_topology

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ("quickstart", "microservices", "istio-perf")
T = TypeVar("T")


# ---- measuring --------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measured:
    seconds: float
    peak_rss_bytes: int


def measure(fn: Callable[[], T]) -> tuple[T, Measured]:
    """Run fn, timing it and sampling this process's resident memory every 5 ms."""
    peak = _rss_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    return result, Measured(seconds, max(peak, _rss_bytes()))


class ResourceRequests:
    """Counts simpy resource requests (the DES engine's queue visits) while active."""

    def __init__(self) -> None:
        self.count = 0
        self._original = simpy.Resource.request

    def __enter__(self) -> ResourceRequests:
        original = self._original

        def counted(resource: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(resource, *args, **kwargs)

        simpy.Resource.request = counted  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        simpy.Resource.request = self._original  # type: ignore[method-assign]


@dataclass
class EngineRun:
    requests: int
    visits: int
    seconds: float
    peak_rss_bytes: int
    mean_latency_ms: float

    @property
    def visits_per_s(self) -> float:
        return self.visits / self.seconds if self.seconds > 0 else math.inf


def run_des(scenario: Scenario, profile: Profile, topology: Topology, mode: Mode) -> EngineRun:
    with ResourceRequests() as counter:
        result, m = measure(
            lambda: simulate_des(scenario, profile, topology, mode, seed=scenario.seed)
        )
    return EngineRun(
        result.requests, counter.count, m.seconds, m.peak_rss_bytes, result.latency_ms.mean
    )


def repeated(fn: Callable[[], T], repeats: int) -> tuple[T, Measured]:
    """Run fn `repeats` times: the last result, the median time and the highest peak RSS."""
    runs = [measure(fn) for _ in range(repeats)]
    seconds = statistics.median(m.seconds for _, m in runs)
    return runs[-1][0], Measured(seconds, max(m.peak_rss_bytes for _, m in runs))


def run_vector(
    scenario: Scenario, profile: Profile, topology: Topology, mode: Mode, repeats: int = 1
) -> EngineRun:
    """The median time of `repeats` runs (the same seed: the same work each time)."""
    stats = VectorStats()

    def once() -> ModeResult:
        stats.queue_visits = 0
        return simulate_vector(scenario, profile, topology, mode, seed=scenario.seed, stats=stats)

    result, m = repeated(once, repeats)
    return EngineRun(
        result.requests, stats.queue_visits, m.seconds, m.peak_rss_bytes, result.latency_ms.mean
    )


def run_side_by_side(scenario: Scenario, profile: Profile, repeats: int) -> tuple[int, Measured]:
    """Every mode through `meshsim run`'s path, modes at once as its default has them."""
    jobs = mode_jobs(scenario, scenario.mesh.modes, "vector")
    _, m = repeated(lambda: simulate(scenario, profile, engine="vector", jobs=jobs), repeats)
    return jobs, m


# ---- printing ---------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


HEADER = (
    f"{'scenario':<30} {'requests':>10} {'DES visits/s':>13} {'vector visits/s':>16} "
    f"{'ratio':>7} {'DES peak MiB':>13} {'vector peak MiB':>16}"
)


def row(name: str, des: EngineRun | None, vec: EngineRun) -> str:
    if des is None:
        return (
            f"{name:<30} {vec.requests:>10,} {'-':>13} {vec.visits_per_s:>16,.0f} "
            f"{'-':>7} {'-':>13} {mib(vec.peak_rss_bytes):>16}"
        )
    ratio = des.seconds / vec.seconds
    return (
        f"{name:<30} {vec.requests:>10,} {des.visits_per_s:>13,.0f} {vec.visits_per_s:>16,.0f} "
        f"{ratio:>6.1f}x {mib(des.peak_rss_bytes):>13} {mib(vec.peak_rss_bytes):>16}"
    )


# ---- the benchmark parts --------------------------------------------------------------


# A bundled scenario's mode takes the vector engine 10-300 ms, where one scheduler hiccup
# on a shared host shows; the DES engine's runs are 100 times longer and average it out.
VECTOR_REPEATS = 5


def bundled() -> dict[str, tuple[EngineRun, EngineRun, EngineRun]]:
    """Every bundled scenario's modes on both engines; returns, by scenario, the DES and
    vector totals over its modes (one core) and the vector engine's modes side by side."""
    totals: dict[str, tuple[EngineRun, EngineRun, EngineRun]] = {}
    print("\nBundled scenarios, every mode, both engines (ratio = DES time / vector time)")
    print(
        f"vector: the median of {VECTOR_REPEATS} runs. Rows 'side by side': the vector engine "
        "running the modes at once, a thread per core\n(meshsim run's default for these "
        "scenarios), against the DES engine's modes one after another on one core."
    )
    print(HEADER)
    for name in BUNDLED:
        scenario, profile = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        topology = build_topology(scenario)
        des_total = EngineRun(0, 0, 0.0, 0, 0.0)
        vec_total = EngineRun(0, 0, 0.0, 0, 0.0)
        for mode in scenario.mesh.modes:
            des = run_des(scenario, profile, topology, mode)
            vec = run_vector(scenario, profile, topology, mode, VECTOR_REPEATS)
            print(row(f"{name} {mode}", des, vec))
            for total, one in ((des_total, des), (vec_total, vec)):
                total.requests += one.requests
                total.visits += one.visits
                total.seconds += one.seconds
                total.peak_rss_bytes = max(total.peak_rss_bytes, one.peak_rss_bytes)
        print(row(f"{name} (all modes)", des_total, vec_total))
        jobs, m = run_side_by_side(scenario, profile, VECTOR_REPEATS)
        # the same seed, the same work: the modes' queue visits counted above
        side = EngineRun(vec_total.requests, vec_total.visits, m.seconds, m.peak_rss_bytes, 0)
        print(row(f"{name} (side by side, {jobs} thr)", des_total, side))
        totals[name] = (des_total, vec_total, side)
    return totals


# the vector engine's issue: its speed, as `bench/engines.py` shows it
TARGET_RATIO = 100.0  # times the DES engine, on microservices
TARGET_VISITS_PER_S = 10e6  # queue visits per second end to end


def targets(totals: dict[str, tuple[EngineRun, EngineRun, EngineRun]]) -> None:
    """The issue's two speed lines, read off this run's rows (over all modes)."""
    des, vec, _ = totals["microservices"]
    ratio = des.seconds / vec.seconds
    print(
        f"\nmicroservices: the vector engine {ratio:.0f} times the DES engine on one core "
        f"({'meets' if ratio >= TARGET_RATIO else 'misses'} the {TARGET_RATIO:.0f}x target)"
    )
    one_core = max(totals, key=lambda name: totals[name][1].visits_per_s)
    both = max(totals, key=lambda name: totals[name][2].visits_per_s)
    for label, name, run in (
        ("one core", one_core, totals[one_core][1]),
        ("side by side", both, totals[both][2]),
    ):
        met = "meets" if run.visits_per_s >= TARGET_VISITS_PER_S else "misses"
        print(
            f"fastest end to end, {label}: {name}, {run.visits_per_s / 1e6:.1f} million queue "
            f"visits/s ({met} the {TARGET_VISITS_PER_S / 1e6:.0f} million target)"
        )


def _zero_profile() -> Profile:
    """The Istio profile with every cost zeroed: plain queueing networks."""
    _, profile = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    return zero_cost(profile, workers=1, source="bench: zero cost")


def _network(stations: list[tuple[float, int]], rate: float, duration: float) -> Scenario:
    """Stations (mean service ms, cores) in a chain, each service alone on its node."""
    names = [f"s{i + 1}" for i in range(len(stations))]
    workloads = []
    for i, (mean_ms, _cores) in enumerate(stations):
        workload: dict[str, Any] = {
            "name": names[i],
            "placement": {"nodes": [f"n{i + 1}"]},
            "cpu_time": {"dist": "exponential", "mean_ms": mean_ms},
        }
        if i + 1 < len(stations):
            workload["calls"] = [{"to": names[i + 1]}]
        workloads.append(workload)
    return Scenario.model_validate(
        {
            "name": "network",
            "profile": "zero",
            "seed": 1,
            "price": {"vcpu_hour_usd": 0, "gib_hour_usd": 0, "source": "bench"},
            "cluster": {
                "nodes": [
                    {"name": f"n{i + 1}", "cores": cores} for i, (_, cores) in enumerate(stations)
                ],
                "cores_per_node": 1,
                "memory_gib_per_node": 16,
                "network": {"same_node_ms": 0, "cross_node_ms": 0, "cross_zone_ms": 0},
            },
            "workloads": workloads,
            "traffic": {
                "entry": names[0],
                "open_loop": {"rate_rps": rate},
                "duration_s": duration,
                "warmup_s": duration / 10,
                "client": {"node": "n1"},
            },
            "mesh": {"modes": ["none"]},
        }
    )


def _ciw(stations: list[tuple[float, int]], rate: float, duration: float) -> tuple[float, float]:
    """Mean sojourn (ms) and queue visits per second of the same network on Ciw."""
    import ciw  # type: ignore[import-untyped,import-not-found,unused-ignore]

    n = len(stations)
    routing = [[1.0 if j == i + 1 else 0.0 for j in range(n)] for i in range(n)]
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=rate)] + [None] * (n - 1),
        service_distributions=[ciw.dists.Exponential(rate=1e3 / m) for m, _ in stations],
        number_of_servers=[c for _, c in stations],
        routing=routing,
    )
    ciw.seed(1)
    sim = ciw.Simulation(network)
    start = time.perf_counter()
    sim.simulate_until_max_time(duration)
    seconds = time.perf_counter() - start
    records = sim.get_all_records()
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for r in records:
        first[r.id_number] = min(first.get(r.id_number, math.inf), r.arrival_date)
        if r.node == n:
            last[r.id_number] = r.exit_date
    sojourns = [last[i] - first[i] for i in last if first[i] >= duration / 10]
    return 1e3 * sum(sojourns) / len(sojourns), len(records) / seconds


def reference_networks() -> None:
    print("\nPlain queueing networks: mean sojourn ms (theory, DES, vector, Ciw), visits/s")
    profile = _zero_profile()
    cases = {
        "M/M/4 (lambda 300, mu 100)": ([(10.0, 4)], 300.0, 400.0),
        "M/M/1 tandem x4 (lambda 40)": ([(10.0, 1), (15.0, 1), (8.0, 1), (20.0, 1)], 40.0, 400.0),
    }
    theory = {
        "M/M/4 (lambda 300, mu 100)": _erlang_c_ms(300.0, 100.0, 4),
        "M/M/1 tandem x4 (lambda 40)": sum(1e3 / (1e3 / m - 40.0) for m in (10, 15, 8, 20)),
    }
    try:
        import ciw  # type: ignore[import-untyped,import-not-found,unused-ignore] # noqa: F401

        have_ciw = True
    except ImportError:
        have_ciw = False
        print("  (Ciw not installed: pip install -e '.[bench]' adds it)")
    for name, (stations, rate, duration) in cases.items():
        scenario = _network(stations, rate, duration)
        topology = build_topology(scenario)
        des = run_des(scenario, profile, topology, "none")
        vec = run_vector(scenario, profile, topology, "none")
        line = (
            f"  {name:<30} theory {theory[name]:7.2f}  DES {des.mean_latency_ms:7.2f} "
            f"({des.visits_per_s:>11,.0f}/s)  vector {vec.mean_latency_ms:7.2f} "
            f"({vec.visits_per_s:>11,.0f}/s)"
        )
        if have_ciw:
            ciw_ms, ciw_rate = _ciw(stations, rate, duration)
            line += f"  Ciw {ciw_ms:7.2f} ({ciw_rate:>11,.0f}/s)"
        print(line)


def _erlang_c_ms(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    top = a**c / math.factorial(c) / (1 - a / c)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return 1e3 * (p_wait / (c * mu - lam) + 1 / mu)


def _large_run(duration: float, mode: Mode) -> EngineRun:
    """One large-cluster run, in a process of its own (see `large`)."""
    scenario, profile = load_scenario(ROOT / "scenarios" / "large-cluster.yaml")
    traffic = scenario.traffic.model_copy(update={"duration_s": duration})
    sized = scenario.model_copy(update={"traffic": traffic})
    return run_vector(sized, profile, build_topology(sized), mode)


def large(long: bool, modes: list[str] | None) -> None:
    """Each run in a fresh process, so that its peak RSS is its own: a process that ran
    another mode before keeps what its allocator holds."""
    print("\nLarge cluster (vector engine), each run in a fresh process")
    print(HEADER)
    scenario, _ = load_scenario(ROOT / "scenarios" / "large-cluster.yaml")
    durations = [scenario.traffic.duration_s] + ([600.0] if long else [])
    peaks: dict[float, int] = {}
    spawn = multiprocessing.get_context("spawn")
    for duration in durations:
        for mode in modes or scenario.mesh.modes:
            with spawn.Pool(1) as pool:
                vec = pool.apply(_large_run, (duration, mode))
            peaks[duration] = max(peaks.get(duration, 0), vec.peak_rss_bytes)
            print(row(f"large {mode} {duration:g}s ({vec.seconds:.0f}s)", None, vec), flush=True)
    for duration, peak in peaks.items():
        print(f"  peak RSS, {duration:g} s simulated: {mib(peak)} MiB")
    if len(peaks) == 2:
        short, long_ = (peaks[d] for d in durations)
        print(f"  600 s / 60 s peak RSS: {long_ / short:.3f}")


def scaled_large(divide: int, seconds: float) -> tuple[Scenario, Profile]:
    """large-cluster at 1/divide of its size, and its profile: nodes, replicas (at least
    one) and entry rate divided, node k placed on node ceil(k / divide), so that each pod
    takes the same load; `seconds` simulated, the first third of it warm-up."""
    scenario, profile = load_scenario(ROOT / "scenarios" / "large-cluster.yaml")
    doc = scenario.model_dump(mode="json")
    assert isinstance(scenario.cluster.nodes, int)  # a count: node-1 ... node-1000
    doc["cluster"]["nodes"] = scenario.cluster.nodes // divide
    for workload in doc["workloads"]:
        workload["replicas"] = max(1, workload["replicas"] // divide)
        placement = workload.get("placement") or {}
        if placement.get("nodes"):
            nodes = [f"node-{math.ceil(int(n.split('-')[1]) / divide)}" for n in placement["nodes"]]
            placement["nodes"] = list(dict.fromkeys(nodes))
    doc["traffic"]["open_loop"]["rate_rps"] /= divide
    doc["traffic"]["duration_s"] = seconds
    doc["traffic"]["warmup_s"] = seconds / 3
    doc["name"] = f"large-cluster-div{divide}"
    return Scenario.model_validate(doc), profile


def _scaled_run(divide: int, seconds: float, mode: Mode) -> EngineRun:
    scenario, profile = scaled_large(divide, seconds)
    return run_vector(scenario, profile, build_topology(scenario), mode)


def scaling(modes: list[str] | None) -> None:
    """The same shop at a hundredth, a tenth and its full size, the same load per pod and
    about as many visits (a run 100, 10 and 1 times as long): how the vector engine's speed
    per visit falls as the cluster's state outgrows the caches. Each in a fresh process."""
    print("\nLarge cluster's shop by size, same load per pod (vector engine, fresh processes)")
    print(HEADER)
    spawn = multiprocessing.get_context("spawn")
    for mode in modes or ["sidecar"]:
        for divide in (100, 10, 1):
            with spawn.Pool(1) as pool:
                vec = pool.apply(_scaled_run, (divide, 1.5 * divide, mode))
            size = "full size" if divide == 1 else f"1/{divide}"
            print(row(f"{size} {mode} ({vec.seconds:.1f}s)", None, vec), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-large", action="store_true", help="skip the 1,000-node run")
    parser.add_argument(
        "--large-long", action="store_true", help="also run the large cluster for 600 s"
    )
    parser.add_argument("--large-only", action="store_true", help="only the 1,000-node runs")
    parser.add_argument(
        "--large-modes", nargs="+", metavar="MODE", help="modes of the large runs (default: all)"
    )
    parser.add_argument(
        "--scaling", action="store_true", help="only the large cluster's shop at three sizes"
    )
    args = parser.parse_args()
    if args.scaling:
        scaling(args.large_modes)
        return
    if args.large_only:
        large(args.large_long, args.large_modes)
        return
    # compile (or load from cache) the vector engine's kernels before timing anything
    scenario, profile = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    short = scenario.model_copy(
        update={"traffic": scenario.traffic.model_copy(update={"duration_s": 3.0})}
    )
    run_vector(short, profile, build_topology(short), "ambient-waypoint")
    totals = bundled()
    reference_networks()
    targets(totals)
    if not args.skip_large:
        large(args.large_long, args.large_modes)


if __name__ == "__main__":
    main()
