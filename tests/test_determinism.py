"""Same seed, same result, to the byte; another seed, another result."""

from __future__ import annotations

import json

from meshsim.loader import load_scenario
from meshsim.run import simulate

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
