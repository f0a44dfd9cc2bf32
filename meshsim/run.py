"""Run a scenario through an engine, every mode it asks for, into one RunResult."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from meshsim import __version__
from meshsim.engines import simulate_des
from meshsim.engines.vector import TooManyCalls, expected_queue_visits
from meshsim.engines.vector import simulate_mode as simulate_vector
from meshsim.profile import Profile
from meshsim.results import ByComponent, ModeResult, RunResult
from meshsim.scenario import Mode, Scenario
from meshsim.topology import build_topology

__all__ = ["ENGINES", "ModeProgress", "choose_engine", "mode_jobs", "simulate"]

ENGINES = ("des", "vector", "auto")
# `auto` runs the vector engine above this many queue visits per mode: about 2 s of the DES
# engine, where the vector engine's start (loading its compiled loop, about a second) has
# paid for itself. The two run the same model (tests/test_engine_agreement.py).
AUTO_VECTOR_VISITS = 100_000
# The modes of a run are independent simulations (each its own seeded random streams), so
# the vector engine, whose event loop releases the GIL, runs them side by side, a thread
# per core, for scenarios whose modes each expect at most this many queue visits. Above
# it a mode holds hundreds of MB to GB of pool and connection state (large-cluster: 3 GiB),
# and modes run one at a time so that peak memory stays one mode's.
PARALLEL_MODE_VISITS = 20_000_000
ModeProgress = Callable[[Mode, float], None]


@dataclass(frozen=True)
class Comparison:
    """A mode against the sidecar baseline and against no mesh."""

    cpu_saving: float | None  # fraction of the sidecar mode's total CPU saved
    memory_saving: float | None
    mesh_cpu_saving: float | None  # fraction of the sidecars' own CPU saved (the vendors' claim)
    mesh_memory_saving: float | None
    cost_saving: float | None
    p50_overhead_ms: float | None
    p99_overhead_ms: float | None


def simulate(
    scenario: Scenario,
    profile: Profile,
    *,
    modes: Sequence[Mode] | None = None,
    seed: int | None = None,
    engine: str = "des",
    progress: ModeProgress | None = None,
    jobs: int | None = None,
) -> RunResult:
    """Every mode of `scenario` (or `modes`) on one engine. `jobs`: modes run at once
    (vector engine only); default `mode_jobs`'s choice."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of: {', '.join(ENGINES)}")
    chosen = list(modes) if modes else list(scenario.mesh.modes)
    if engine == "auto":
        engine = choose_engine(scenario, chosen)[0]
    simulate_mode = simulate_vector if engine == "vector" else simulate_des
    topology = build_topology(scenario)
    run_seed = scenario.seed if seed is None else seed
    if jobs is None:
        jobs = mode_jobs(scenario, chosen, engine)

    side_by_side = jobs > 1 and len(chosen) > 1
    stop = threading.Event()

    def one(mode: Mode) -> ModeResult:
        def tick(fraction: float) -> None:
            if stop.is_set():
                raise _Stopped(mode)
            if progress is not None:
                progress(mode, fraction)

        watched = progress is not None or side_by_side
        return simulate_mode(
            scenario, profile, topology, mode, seed=run_seed, progress=tick if watched else None
        )

    if not side_by_side:
        results = {mode: one(mode) for mode in chosen}
    else:
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="meshsim-mode")
        # the longest first (by expected queue visits): a thread that finishes early then
        # takes a short mode, not the longest one last
        longest_first = sorted(chosen, key=lambda m: -expected_queue_visits(scenario, m))
        try:
            futures = {mode: pool.submit(one, mode) for mode in longest_first}
            results = {mode: futures[mode].result() for mode in chosen}
        except BaseException:
            # an error or Ctrl-C: the modes running stop at their next window (their own
            # progress tick), not at their end, minutes away on a large cluster
            stop.set()
            raise
        finally:  # modes not started yet never start
            pool.shutdown(wait=True, cancel_futures=True)
    return RunResult(
        meshsim_version=__version__,
        scenario=scenario.name,
        engine=engine,
        seed=run_seed,
        profile=profile.name,
        profile_held_out=profile.held_out,
        modes=results,
    )


class _Stopped(Exception):
    """A mode running beside others, stopped because the run ended (Ctrl-C, an error)."""


def mode_jobs(scenario: Scenario, modes: Sequence[Mode], engine: str) -> int:
    """How many modes `simulate` runs at once by default: one per core the process may use,
    on the vector engine, when every mode is small enough (PARALLEL_MODE_VISITS); else 1.
    The DES engine is Python throughout and holds the GIL: threads would not help it."""
    if engine != "vector" or len(modes) <= 1:
        return 1
    if max(expected_queue_visits(scenario, mode) for mode in modes) > PARALLEL_MODE_VISITS:
        return 1
    return max(1, min(len(modes), len(os.sched_getaffinity(0))))


def choose_engine(scenario: Scenario, modes: Sequence[Mode]) -> tuple[str, str]:
    """The engine `auto` runs, and why: vector for large scenarios, DES otherwise."""
    try:
        visits = max(expected_queue_visits(scenario, mode) for mode in modes)
    except TooManyCalls as err:
        return "des", f"the call graph unrolls into more than {err.limit} calls per request"
    if visits > AUTO_VECTOR_VISITS:
        return "vector", f"about {visits:,.0f} queue visits per mode"
    return "des", f"about {visits:,.0f} queue visits per mode"


def _saving(base: float, value: float) -> float | None:
    return (base - value) / base if base > 0 else None


def _mesh(parts: ByComponent) -> float:
    """What the mesh itself uses: everything but the apps."""
    return parts.total - parts.app


def compare(run: RunResult, mode: str) -> Comparison:
    result = run.modes[mode]
    side = run.modes.get("sidecar")
    none = run.modes.get("none")
    return Comparison(
        cpu_saving=_saving(side.cpu_cores.total, result.cpu_cores.total) if side else None,
        memory_saving=_saving(side.memory_mib.total, result.memory_mib.total) if side else None,
        mesh_cpu_saving=_saving(_mesh(side.cpu_cores), _mesh(result.cpu_cores)) if side else None,
        mesh_memory_saving=(
            _saving(_mesh(side.memory_mib), _mesh(result.memory_mib)) if side else None
        ),
        cost_saving=_saving(side.cost_usd_month, result.cost_usd_month) if side else None,
        p50_overhead_ms=result.latency_ms.p50 - none.latency_ms.p50 if none else None,
        p99_overhead_ms=result.latency_ms.p99 - none.latency_ms.p99 if none else None,
    )
