"""Same seed, same result, to the byte; another seed, another result."""

from __future__ import annotations

import json
import os

from meshsim.loader import load_scenario
from meshsim.run import mode_jobs, simulate

from .builders import ROOT


def _json(seed: int) -> str:
    scenario, profile = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    short = scenario.model_copy(
        update={"traffic": scenario.traffic.model_copy(update={"duration_s": 4, "warmup_s": 1})}
    )
    return json.dumps(simulate(short, profile, modes=["sidecar", "ambient"], seed=seed).summary())


def test_same_seed_gives_identical_json() -> None:
    assert _json(5) == _json(5)


def test_another_seed_gives_other_results() -> None:
    assert _json(5) != _json(6)


def test_vector_modes_side_by_side_give_what_one_at_a_time_gives() -> None:
    scenario, profile = load_scenario(ROOT / "scenarios" / "microservices.yaml")
    short = scenario.model_copy(
        update={"traffic": scenario.traffic.model_copy(update={"duration_s": 6, "warmup_s": 1})}
    )

    def run(jobs: int) -> str:
        result = simulate(short, profile, seed=3, engine="vector", jobs=jobs)
        return json.dumps(result.summary())

    assert mode_jobs(short, short.mesh.modes, "vector") == min(4, len(os.sched_getaffinity(0)))
    assert mode_jobs(short, short.mesh.modes, "des") == 1
    assert run(4) == run(1)


def test_a_large_cluster_runs_its_modes_one_at_a_time() -> None:
    scenario, _ = load_scenario(ROOT / "scenarios" / "large-cluster.yaml")
    assert mode_jobs(scenario, scenario.mesh.modes, "vector") == 1  # one mode's memory at a time
