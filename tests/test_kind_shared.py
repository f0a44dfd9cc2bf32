"""What the kind backend shares with the local testbed: one Locust configuration and
command line, one cut of Locust's records to the window, one ModeResult assembly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import meshsim.kind.manifests as kind_manifests
import meshsim.kind.measure as kind_measure
import meshsim.testbed.runner as local_runner
from meshsim import accounting, loadgen


def test_both_backends_call_the_same_functions() -> None:
    for name in ("window_latencies", "locust_argv"):
        assert getattr(kind_measure, name) is getattr(local_runner, name) is getattr(loadgen, name)
    for module, name, home in (
        (kind_manifests, "load_config", loadgen),
        (local_runner, "load_config", loadgen),
        (kind_measure, "mode_result", accounting),
        (local_runner, "mode_result", accounting),
    ):
        assert getattr(module, name) is getattr(home, name), (module.__name__, name)


def test_the_window_keeps_requests_sent_inside_it_and_counts_its_failures(tmp_path: Path) -> None:
    """Records as the locustfile saves them: (start epoch s, latency ms, ok), via np.save."""
    rows = [
        (99.999, 5.0, 1.0),  # sent before the window: out, however late it came back
        (100.0, 1.25, 1.0),  # at t0: in
        (101.5, 0.5, 0.0),  # failed inside: counted, no latency
        (104.0, 2.0, 1.0),
        (110.0, 3.0, 1.0),  # at t0 + window: out
    ]
    np.save(tmp_path / "latencies.npy", np.asarray(rows).reshape(-1, 3))
    latencies_s, failed = loadgen.window_latencies(np.load(tmp_path / "latencies.npy"), 100.0, 10.0)
    assert latencies_s.tolist() == [0.00125, 0.002]
    assert failed == 1


def test_a_run_with_no_request_has_an_empty_window() -> None:
    latencies_s, failed = loadgen.window_latencies(np.empty((0, 3)), 0.0, 10.0)
    assert latencies_s.shape == (0,) and failed == 0
