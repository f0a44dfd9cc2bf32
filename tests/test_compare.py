"""`meshsim compare`: the error of every figure, per mode, and its median and worst case."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from meshsim.calibrate.compare import (
    HOST_CPU,
    ErrorRow,
    compare_runs,
    host_referenced_cpu,
    summarize,
    summary_lines,
)
from meshsim.cli import main
from meshsim.loader import load_run_file
from meshsim.profile import Profile
from meshsim.results import LatencyHistogram, RunResult, write_results
from meshsim.run import simulate

from .builders import base_scenario, scenario_of


@pytest.fixture(scope="module")
def run(istio_profile: Profile) -> RunResult:
    doc = base_scenario(
        name="pair",
        workloads=[{"name": "web", "cpu_time": 0.2, "calls": [{"to": "db"}]}, {"name": "db"}],
        traffic={"entry": "web", "open_loop": {"rate_rps": 50}, "duration_s": 3, "warmup_s": 0.5},
        mesh={"modes": ["none", "sidecar"]},
    )
    return simulate(scenario_of(doc), istio_profile, engine="des")


def _scaled(run: RunResult, mode: str, cpu_factor: float, p50_factor: float) -> RunResult:
    """The run with one mode's component CPU and p50 latency scaled."""
    result = run.modes[mode]
    components = [
        c.model_copy(update={"cpu_cores": c.cpu_cores * cpu_factor}) for c in result.components
    ]
    latency = result.latency_ms.model_copy(update={"p50": result.latency_ms.p50 * p50_factor})
    changed = result.model_copy(update={"components": components, "latency_ms": latency})
    return run.model_copy(update={"modes": {**run.modes, mode: changed}})


def test_a_run_against_itself_has_no_error(run: RunResult) -> None:
    rows = compare_runs(run, run)
    assert rows and all(r.error == 0.0 for r in rows if r.error is not None)
    # every mode: three percentiles, throughput, then CPU and memory of each app pod and proxy
    pods_and_proxies = {"none": 2, "sidecar": 5}
    for mode, n in pods_and_proxies.items():
        assert len([r for r in rows if r.mode == mode]) == 4 + 2 * n
    assert not any(r.component == "loadgen-0" for r in rows)


def test_errors_are_relative_to_the_measurement(run: RunResult) -> None:
    simulated = _scaled(run, "sidecar", cpu_factor=1.5, p50_factor=0.8)
    rows = compare_runs(run, simulated)
    cpu = [r for r in rows if r.mode == "sidecar" and r.figure == "cpu" and r.measured > 0]
    assert cpu and all(r.error == pytest.approx(0.5) for r in cpu)
    (p50,) = [r for r in rows if r.mode == "sidecar" and r.figure == "p50"]
    assert p50.error == pytest.approx(-0.2)
    summary = {s.figure: s for s in summarize(rows)}
    # CPU: the none mode's rows are exact and the sidecar mode's are +50%
    n_none = len([r for r in rows if r.mode == "none" and r.figure == "cpu" and r.measured > 0])
    assert summary["cpu"].count == n_none + len(cpu)
    assert summary["cpu"].worst is not None and summary["cpu"].worst.error == pytest.approx(0.5)
    assert summary["p50"].median_abs_error == pytest.approx(0.1)  # median of 0 and 0.2
    assert summary["p50"].within_bound is True  # the bound is 10%
    assert summary["memory"].median_abs_error == 0.0


def test_zero_measurements_have_no_relative_error() -> None:
    row = ErrorRow("", "none", "cpu", "x", 0.0, 0.3)
    assert row.error is None
    (cpu,) = [s for s in summarize([row]) if s.figure == "cpu"]
    assert cpu.count == 0 and cpu.median_abs_error is None
    assert "cpu: no comparable figures" in "\n".join(summary_lines([cpu]))


def test_summary_names_the_worst_case_and_the_bound() -> None:
    rows = [
        ErrorRow("rate=50", "sidecar", "p99", "", 1.0, 1.1),
        ErrorRow("rate=90", "ambient", "p99", "", 2.0, 1.0),
        ErrorRow("rate=90", "sidecar", "p99", "", 1.0, 1.05),
    ]
    (p99,) = [s for s in summarize(rows) if s.figure == "p99"]
    (line,) = summary_lines([p99])
    assert line == (
        "       p99: median |error| 10.0% over 3, worst -50.0% (rate=90 ambient)"
        "  [within the 20% bound on the median]"
    )


def test_a_sampling_error_under_the_histograms_resolution_is_not_printed_as_zero() -> None:
    rows = [ErrorRow("rate=50", "sidecar", "p50", "", 1.0, 1.05)]
    (p50,) = [s for s in summarize(rows) if s.figure == "p50"]
    resolved = dataclasses.replace(p50, median_sampling=0.011)
    unresolved = dataclasses.replace(p50, median_sampling=0.0)
    assert summary_lines([resolved])[0].endswith(
        "; its own sampling error ±1.1% (median)  [within the 10% bound on the median]"
    )
    assert summary_lines([unresolved])[0].endswith(
        "; its own sampling error below the histogram's resolution (bins 2.3% wide)"
        "  [within the 10% bound on the median]"
    )
    unbounded = dataclasses.replace(p50, median_sampling=float("inf"))  # was "±inf%"
    assert summary_lines([unbounded])[0].endswith(
        "; its own sampling error unbounded (median): too few requests lie beyond the "
        "percentile  [within the 10% bound on the median]"
    )


def test_a_percentile_in_the_histograms_last_bin_has_no_known_sampling_error() -> None:
    """The histogram's last bin holds every latency past 100 s: ranks that reach into it
    tell nothing about the error (it read 0, 'below the resolution')."""
    counts = [0] * (LatencyHistogram.BINS_PER_DECADE * LatencyHistogram.DECADES)
    counts[500] = 8000  # 100 ms
    counts[-1] = 2000  # past 100 s
    hist = LatencyHistogram(counts=counts)
    assert hist.quantile_sampling_error(0.5) == 0.0  # inside one ordinary bin: resolved
    assert hist.quantile_sampling_error(0.9) == float("inf")
    assert hist.quantile_sampling_error(0.99) == float("inf")


def test_cli_prints_the_table_and_summary(run: RunResult, tmp_path: Path) -> None:
    as_measured = run.model_copy(update={"kind": "measured"})
    (measured,) = [p for p in write_results(as_measured, tmp_path / "m") if p.suffix == ".json"]
    (simulated,) = [
        p
        for p in write_results(_scaled(run, "none", 2.0, 1.0), tmp_path / "s")
        if p.suffix == ".json"
    ]
    out = CliRunner().invoke(main, ["compare", str(measured), str(simulated)], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "error = (simulated - measured) / measured" in out.output
    assert "+100.0%" in out.output
    assert "       cpu: median |error|" in out.output
    assert "[within the 15% bound on the median]" in out.output  # memory: no error at all
    as_json = CliRunner().invoke(main, ["compare", str(measured), str(simulated), "--json"])
    doc = json.loads(as_json.output)
    assert doc["summary"]["cpu"]["worst_error"] == pytest.approx(1.0)
    assert {r["mode"] for r in doc["rows"]} == {"none", "sidecar"}
    # no mesh simulated at twice its CPU: taken as the host's speed, the sidecar mode's
    # (simulated right) comes out at half
    assert HOST_CPU in " ".join(out.output.split())
    assert "  host cpu: median |error| 50.0% over " in out.output
    assert doc["host_cpu"]["median_abs_error"] == pytest.approx(0.5)


def test_cli_rejects_a_file_that_is_not_a_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"modes": 3}')
    out = CliRunner().invoke(main, ["compare", str(bad), str(bad)])
    assert out.exit_code == 2
    assert f"{bad}: not a run result (summary JSON)" in out.output


@pytest.mark.parametrize(
    ("what", "edit", "message"),
    [
        (
            "a list",
            lambda text: "[1, 2]",
            "1:1: expected a run summary: an object with scenario, seed, modes",
        ),
        ("cut short", lambda text: text[: len(text) // 2], "not valid JSON: "),
        (
            "a figure that is not a number",
            lambda text: text.replace('"p50": ', '"p50": "fast", "x": ', 1),
            "modes.none.latency_ms.p50: expected a number, got 'fast'",
        ),
        (
            "an infinite latency",
            lambda text: text.replace('"p50": ', '"p50": 1e400, "x": ', 1),
            "modes.none.latency_ms.p50: expected a finite number",
        ),
        (
            "a negative figure",
            lambda text: text.replace('"requests": ', '"requests": -3, "x": ', 1),
            "modes.none.requests: expected a number >= 0, not -3",
        ),
        (
            "no mode",
            lambda text: text.replace('"modes": {', '"modes": {}, "x": {', 1),
            "modes: expected an object of one or more modes",
        ),
        (
            "an unknown mode",
            lambda text: text.replace('"none": {', '"nope": {', 1),
            "modes.nope: unknown mode 'nope'; expected one of: none, sidecar, ambient,",
        ),
    ],
    ids=["list", "truncated", "bad-field", "infinite", "negative", "no-mode", "unknown-mode"],
)
def test_cli_names_the_line_and_field_of_a_bad_run_file(
    run: RunResult, tmp_path: Path, what: str, edit: Callable[[str], str], message: str
) -> None:
    (good,) = [p for p in write_results(run, tmp_path / "m") if p.suffix == ".json"]
    bad = tmp_path / "bad.json"
    bad.write_text(edit(good.read_text()))
    out = CliRunner().invoke(main, ["compare", str(bad), str(good)])
    assert out.exit_code == 2, what
    assert out.exception is None or isinstance(out.exception, SystemExit)  # no traceback
    first = out.output.splitlines()[0]
    assert first.startswith(f"{bad}:") and message in first
    assert out.output.endswith(f"{bad}: not a run result (summary JSON)\n")


def test_a_broken_histogram_beside_a_summary_is_named_by_line(
    run: RunResult, tmp_path: Path
) -> None:
    (good,) = [p for p in write_results(run, tmp_path / "m") if p.suffix == ".json"]
    hist = tmp_path / "m" / f"{run.file_stem('none')}-histogram.csv"
    lines = hist.read_text().splitlines()
    lines[1] = "abc,1,2"  # the first bin
    hist.write_text("\n".join(lines) + "\n")
    out = CliRunner().invoke(main, ["compare", str(good), str(good)])
    assert out.exit_code == 2
    assert out.output.startswith(f"{hist}:2:1: expected a bin's lower_us (> 0) and count, got ")


def test_comparing_different_scenarios_says_so(run: RunResult, tmp_path: Path) -> None:
    (one,) = [p for p in write_results(run, tmp_path / "a") if p.suffix == ".json"]
    other = run.model_copy(update={"scenario": "another"})
    (two,) = [p for p in write_results(other, tmp_path / "b") if p.suffix == ".json"]
    out = CliRunner().invoke(main, ["compare", str(one), str(two)], terminal_width=200)
    assert out.exit_code == 0
    assert (
        f"note: {one} is a run of {run.scenario}, {two} of another: the errors below compare "
        "different scenarios\n"
    ) in out.output


def test_summary_by_component_kind() -> None:
    rows = [
        ErrorRow("", "sidecar", "memory", "web-0", 40.0, 64.0, "app"),
        ErrorRow("", "sidecar", "memory", "web-0.sidecar", 10.0, 11.0, "sidecar"),
        ErrorRow("", "sidecar", "memory", "db-0.sidecar", 10.0, 9.0, "sidecar"),
    ]
    by_name = {s.figure: s for s in summarize(rows, by_kind=True)}
    assert by_name["memory"].median_abs_error == pytest.approx(0.1)
    assert by_name["memory/app"].median_abs_error == pytest.approx(0.6)
    assert by_name["memory/sidecar"].median_abs_error == pytest.approx(0.1)
    assert by_name["memory/sidecar"].bound == 0.15  # the memory bound applies to each kind
    assert "cpu/app" not in by_name or by_name["cpu/app"].count == 0


def test_a_percentiles_sampling_error_is_that_of_its_order_statistic() -> None:
    # 10,000 latencies spread evenly (in log) over one decade, 1 to 10 ms: the p99's rank
    # varies by sqrt(n q (1 - q)) = 9.95 latencies, 1/1000 of the decade each way
    latencies_s = np.geomspace(1e-3, 1e-2, 10_000)
    histogram = LatencyHistogram.from_latencies_s(latencies_s)
    expected = (10 ** (9.95 / 10_000) - 10 ** (-9.95 / 10_000)) / 2
    # the histogram's bins are 1/100 of a decade: the spread is read to within a bin
    bin_width = 10 ** (1 / 100) - 1
    assert histogram.quantile_sampling_error(0.99) == pytest.approx(expected, abs=bin_width)
    one = LatencyHistogram.from_latencies_s(np.array([1e-3]))
    assert one.quantile_sampling_error(0.99) is None


def test_the_summary_gives_the_measured_percentiles_own_sampling_error() -> None:
    rows = [
        ErrorRow("a", "none", "p99", "", 1.0, 1.2, sampling=0.05),
        ErrorRow("b", "none", "p99", "", 1.0, 0.9, sampling=0.15),
    ]
    (p99,) = [s for s in summarize(rows) if s.figure == "p99"]
    (line,) = summary_lines([p99])
    assert line == (
        "       p99: median |error| 15.0% over 2, worst +20.0% (a none); its own sampling "
        "error ±10.0% (median)  [within the 20% bound on the median]"
    )


def test_host_referenced_cpu_scales_a_settings_mesh_modes_by_its_no_mesh_apps() -> None:
    rows = [
        # setting a: its no-mesh apps measured 20% (web) and 30% (db) over their simulation
        ErrorRow("a", "none", "cpu", "web-0", 1.2, 1.0, "app"),
        ErrorRow("a", "none", "cpu", "db-0", 1.3, 1.0, "app"),
        ErrorRow("a", "sidecar", "cpu", "web-0", 2.5, 2.0, "app"),
        ErrorRow("a", "sidecar", "cpu", "web-0.sidecar", 1.0, 1.0, "sidecar"),
        ErrorRow("a", "sidecar", "p50", "", 1.0, 1.0),
        # setting b has no no-mesh run: nothing to reference its host by
        ErrorRow("b", "sidecar", "cpu", "web-0", 1.0, 2.0, "app"),
    ]
    scaled = host_referenced_cpu(rows)
    assert [(r.point, r.component) for r in scaled] == [("a", "web-0"), ("a", "web-0.sidecar")]
    assert [r.simulated for r in scaled] == pytest.approx([2.0 * 1.25, 1.0 * 1.25])
    assert [r.error for r in scaled] == pytest.approx([0.0, 0.25])
    assert [r.measured for r in scaled] == [2.5, 1.0]


def test_a_mode_without_successful_requests_is_strict_json_and_reads_back(
    run: RunResult, tmp_path: Path
) -> None:
    failed = run.modes["sidecar"].model_copy(
        update={
            "latency_ms": run.modes["sidecar"].latency_ms.model_copy(
                update={p: float("nan") for p in ("mean", "p50", "p90", "p99", "p999")}
            ),
            "connections_open": float("nan"),  # what a kind run cannot see
        }
    )
    broken = run.model_copy(update={"modes": {**run.modes, "sidecar": failed}})
    (path,) = [p for p in write_results(broken, tmp_path / "m") if p.suffix == ".json"]

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    doc = json.loads(path.read_text(), parse_constant=refuse)
    assert doc["modes"]["sidecar"]["latency_ms"]["p99"] is None
    assert doc["modes"]["sidecar"]["connections_open"] is None
    back = load_run_file(path)
    assert np.isnan(back.modes["sidecar"].latency_ms.p99)
    assert np.isnan(back.modes["sidecar"].connections_open)
    assert back.modes["none"] == run.modes["none"]
    out = CliRunner().invoke(main, ["compare", str(path), str(path)], terminal_width=200)
    assert out.exit_code == 0, out.output


def test_swapped_arguments_and_two_runs_of_one_kind_are_said(
    run: RunResult, tmp_path: Path
) -> None:
    measured = run.model_copy(update={"kind": "measured", "engine": "testbed-local"})
    (m,) = [p for p in write_results(measured, tmp_path / "m") if p.suffix == ".json"]
    (s,) = [p for p in write_results(run, tmp_path / "s") if p.suffix == ".json"]
    out = CliRunner().invoke(main, ["compare", str(s), str(m)], terminal_width=200)
    assert out.exit_code == 0
    assert (
        f"note: {s} is a simulated run and {m} a measured one: the arguments look swapped "
        f"(MEASURED comes first); errors below are relative to {s}\n"
    ) in out.output
    out = CliRunner().invoke(main, ["compare", str(m), str(m)], terminal_width=200)
    assert f"note: comparing a measured run ({m}) with a measured one ({m})" in out.output
    assert "pair (measured, testbed-local) against pair (measured, testbed-local)" in out.output
    out = CliRunner().invoke(main, ["compare", str(m), str(s)], terminal_width=200)
    assert "note:" not in out.output
    assert f"against pair (simulated, des, profile {run.profile})" in out.output
