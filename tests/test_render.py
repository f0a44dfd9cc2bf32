"""The run table: percentiles and overheads that sampling cannot pin down are marked."""

from __future__ import annotations

import io
import math
import re

import pytest
from rich.console import Console

from meshsim.loader import load_profile
from meshsim.render import NOISY, print_run
from meshsim.results import QUANTILES, RunResult
from meshsim.run import simulate

from .builders import ISTIO, client_and_one_pod, scenario_of

FOOTNOTE = (
    "† sampling noise: the percentile's standard error from sampling is over 5% of it, or "
    "the overhead is within twice that of its two percentiles (distribution-free, from the "
    "run's latency histogram; consecutive requests are not independent, so the true noise "
    "is larger). A longer run (traffic.duration_s) pins it down."
)


def _run(duration_s: float) -> RunResult:
    doc = client_and_one_pod(
        ["none", "sidecar", "ambient"],
        app={"cpu_time": {"dist": "exponential", "mean_ms": 1.0}},
        traffic={"open_loop": {"rate_rps": 200}, "duration_s": duration_s, "warmup_s": 1},
        network_ms=(0.02, 0.1),
    )
    return simulate(scenario_of(doc), load_profile(ISTIO), engine="vector")


def _table(run: RunResult) -> dict[str, list[str]]:
    console = Console(record=True, width=400, file=io.StringIO())
    print_run(run, console)
    text = console.export_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if cells:
            rows[cells[0]] = cells[1:]
    rows["_text"] = [text]
    return rows


@pytest.mark.parametrize("duration_s", [2.0, 40.0])
def test_a_percentile_is_marked_where_its_sampling_error_is_over_the_share(
    duration_s: float,
) -> None:
    run = _run(duration_s)
    rows = _table(run)
    for p, q in QUANTILES.items():
        for mode, cell in zip(run.modes, rows[f"latency {p} ms"], strict=True):
            result = run.modes[mode]
            rel = result.histogram.quantile_sampling_error(q)
            assert cell.endswith("†") == (rel is None or rel > NOISY), (p, mode, cell, rel)
            assert float(cell.rstrip("†")) == pytest.approx(getattr(result.latency_ms, p), abs=5e-4)


def test_short_runs_mark_their_tail_and_long_ones_their_median_not() -> None:
    short, long = _table(_run(2.0)), _table(_run(40.0))
    # 200 requests a mode: the p999 is the slowest request or so
    assert all(cell.endswith("†") for cell in short["latency p999 ms"])
    assert FOOTNOTE in short["_text"][0].replace("\n", " ")
    # 7,758 requests a mode: the median is pinned to within a bin, and the sidecars' 0.17 ms
    # on it stands clear of the noise
    assert not any(cell.endswith("†") for cell in long["latency p50 ms"])
    assert long["figure"] == ["none", "sidecar", "ambient"]
    sidecar = long["p50 overhead ms"][1]
    assert float(sidecar) > 0.1 and not sidecar.endswith("†")


def test_a_measured_run_names_no_profile() -> None:
    """A measurement's `profile` is the scenario's, which none of its figures came from:
    the table says it used none, and prints no profile's held-out error under it."""
    simulated = _run(2.0)
    measured = simulated.model_copy(update={"kind": "measured", "engine": "testbed-local"})
    assert "· profile istio-1.24 · engine vector ·" in _table(simulated)["_text"][0]
    text = _table(measured)["_text"][0]
    assert "· no profile (measured) · engine testbed-local ·" in text
    assert "istio-1.24" not in text


def test_figures_a_run_does_not_have_are_a_dash_and_sidecar_is_the_savings_baseline() -> None:
    """A kind run counts no handshakes or connections (NaN): '—', not 'nan'; the sidecar
    column is the savings' baseline, '—' as in the HTML report, not '+0.0%'."""
    run = _run(2.0)
    kind = {
        m: r.model_copy(update={"handshakes_per_s": math.nan, "connections_open": math.nan})
        for m, r in run.modes.items()
    }
    table = _table(run.model_copy(update={"modes": kind, "kind": "measured"}))
    assert table["handshakes /s"] == ["—", "—", "—"]
    assert table["connections open"] == ["—", "—", "—"]
    assert table["CPU saving"][1] == "—"  # none, sidecar, ambient
    assert table["CPU saving"][2].endswith("%")
