"""Charts: inputs are found and read back exactly; every chart is titled, labelled, captioned."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.container import BarContainer
from matplotlib.contour import ContourSet

from meshsim.calibrate.compare import compare_runs
from meshsim.cli import main
from meshsim.loader import load_scenario
from meshsim.plots import (
    Chart,
    Inputs,
    SweepTable,
    _percent_label,
    charts_for,
    load_inputs,
    percentile_bars,
    percentile_whiskers_ms,
    save_chart,
    sweep_chart_gap,
    sweep_charts,
    sweep_heatmap,
    sweep_overview,
)
from meshsim.profile import HeldOut, HeldOutError
from meshsim.results import (
    QUANTILES,
    LatencyHistogram,
    LatencyMs,
    RunResult,
    load_run,
    result_files,
    write_results,
)
from meshsim.run import simulate

SMOKE = Path(__file__).resolve().parent.parent / "scenarios" / "sweeps" / "smoke-base.yaml"


@pytest.fixture(scope="module")
def run() -> RunResult:
    scenario, profile = load_scenario(SMOKE)
    return simulate(scenario, profile, seed=3)


def caption_of(chart: Chart) -> str:
    return " ".join(t.get_text() for t in chart.figure.texts)


def assert_labelled(chart: Chart, *names: str) -> None:
    fig = chart.figure
    assert chart.title and fig.get_suptitle() == chart.title
    caption = " ".join(t.get_text() for t in fig.texts)
    for name in names:
        assert name in caption, f"{chart.stem}: caption must name {name!r}"
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel(), f"{chart.stem}: colour bar without a label"
            continue
        if ax.axison:
            assert ax.get_xlabel() and ax.get_ylabel(), f"{chart.stem}: unlabelled axes"


def test_a_results_folder_reads_back_to_the_same_files(run: RunResult, tmp_path: Path) -> None:
    write_results(run, tmp_path)
    again = load_run(tmp_path / f"{run.file_stem()}.json")
    assert result_files(again) == result_files(run)
    assert again.modes["sidecar"].histogram == run.modes["sidecar"].histogram


def test_run_charts_are_titled_labelled_and_captioned(run: RunResult, tmp_path: Path) -> None:
    write_results(run, tmp_path / "res")
    inputs = load_inputs([tmp_path / "res"])
    assert (len(inputs.runs), inputs.sweeps, inputs.calibrations) == (1, [], [])
    charts = charts_for(inputs)
    stem = run.file_stem()
    assert [c.stem for c in charts] == [
        f"{stem}-latency-cdf",
        f"{stem}-latency-percentiles",
        f"{stem}-resources",
        f"{stem}-savings",
    ]
    for chart in charts:
        assert_labelled(chart, "Scenario: smoke", "profile: istio-1.24")
    png, svg = save_chart(charts[0], tmp_path / "charts")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()


def test_the_cdf_ends_at_one_for_every_mode(run: RunResult) -> None:
    cdf = charts_for(load_inputs_from(run))[0]
    lines = cdf.figure.axes[0].get_lines()
    modes = [line.get_label() for line in lines if not str(line.get_label()).startswith("_")]
    assert modes == ["none", "sidecar", "ambient", "ambient-waypoint"]
    for line in lines:
        if not str(line.get_label()).startswith("_"):
            assert np.asarray(line.get_ydata())[-1] == pytest.approx(1.0)


def test_percentile_whiskers_are_twice_the_sampling_error(run: RunResult) -> None:
    chart = percentile_bars(run)
    ax = chart.figure.axes[0]
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in containers] == list(run.modes)
    for container in containers:
        result = run.modes[str(container.get_label())]
        assert container.errorbar is not None
        segments = container.errorbar.lines[2][0].get_segments()
        half = [(top[1] - bottom[1]) / 2 for bottom, top in segments]
        errors = [result.histogram.quantile_sampling_error(q) or 0.0 for q in QUANTILES.values()]
        expected = [
            2 * e * getattr(result.latency_ms, p) if math.isfinite(e) else 0.0
            for p, e in zip(QUANTILES, errors, strict=True)
        ]
        assert half == pytest.approx(expected)
        assert max(expected) > 0
    caption = " ".join(caption_of(chart).split())
    assert "whiskers: ± twice each percentile's standard error from sampling" in caption
    # a few hundred requests a mode: past the p99, one rank up is beyond the slowest
    assert (
        "none for none p99, none p99.9, sidecar p99, sidecar p99.9, ambient p99, ambient p99.9, "
        "ambient-waypoint p99, ambient-waypoint p99.9: too few requests lie beyond them"
    ) in caption


def test_a_whisker_too_short_to_see_is_said_not_drawn_as_certainty(run: RunResult) -> None:
    """Every request in one 2.3%-wide bin: each percentile's standard error is below what
    the histogram resolves, and the caption says so rather than showing no whisker."""
    one = run.modes["none"]
    counts = [0] * len(one.histogram.counts)
    counts[300] = 5000  # enough that even the p99.9 has requests beyond it
    narrow = one.model_copy(update={"histogram": LatencyHistogram(counts=counts)})
    chart = percentile_bars(run.model_copy(update={"modes": {**run.modes, "none": narrow}}))
    assert percentile_whiskers_ms(narrow) == [0.0, 0.0, 0.0, 0.0]
    caption = " ".join(caption_of(chart).split())
    assert (
        "too short to see for none p50, none p90, none p99, none p99.9: their standard error "
        "is below the histogram's resolution (bins 2.3% wide)"
    ) in caption


def test_run_captions_give_the_profiles_held_out_error(run: RunResult) -> None:
    caption = " ".join(caption_of(percentile_bars(run)).split())
    assert "no held-out error recorded with this run" in caption
    held = HeldOut(
        table="results/calibration/x/heldout.csv",
        split="split: seed 1",
        numbers="0123456789abcdef",
        errors={
            "p50": HeldOutError(median=0.093, worst=0.316, figures=16),
            "p99": HeldOutError(median=0.084, worst=0.471, figures=16),
            "cpu": HeldOutError(median=0.139, worst=0.305, figures=66),
        },
    )
    fitted = run.model_copy(update={"profile_held_out": held})
    assert (
        "the profile's error on settings held out of its fit, median (worst): p50 9.3% "
        "(31.6%), p99 8.4% (47.1%), CPU 13.9% (30.5%)"
    ) in " ".join(caption_of(percentile_bars(fitted)).split())


def load_inputs_from(run: RunResult) -> Inputs:
    return Inputs(runs=[run])


def synthetic_table(values: dict[tuple[int, int], float], memory: float = 0.5) -> SweepTable:
    rows = []
    for (x, y), saving in values.items():
        for mode in ("sidecar", "ambient"):
            rows.append(
                {
                    "a": x,
                    "b": y,
                    "mode": mode,
                    "mesh_cpu_saving": saving if mode != "sidecar" else 0.0,
                    "mesh_memory_saving": memory if mode != "sidecar" else 0.0,
                }
            )
    meta = {
        "sweep": "syn",
        "scenario": "s",
        "profile": "p",
        "engine": "des",
        "columns": ["a", "b", "mode"],
    }
    return SweepTable(folder=Path("."), meta=meta, rows=rows)


def contours(chart: Chart) -> list[ContourSet]:
    return [c for c in chart.figure.axes[0].collections if isinstance(c, ContourSet)]


def test_heat_map_draws_the_90_percent_contour_only_where_it_is_crossed() -> None:
    crossing = synthetic_table({(1, 1): 0.5, (2, 1): 0.95, (1, 2): 0.6, (2, 2): 0.97})
    chart = sweep_heatmap(crossing, "mesh_cpu_saving", "ambient", {})
    assert chart is not None and len(contours(chart)) == 1
    assert "red dashed line: where the saving reaches 90%" in caption_of(chart)
    assert_labelled(chart, "scenario: s", "profile: p")
    below = synthetic_table({(1, 1): 0.5, (2, 1): 0.8, (1, 2): 0.6, (2, 2): 0.7})
    chart = sweep_heatmap(below, "mesh_cpu_saving", "ambient", {})
    assert chart is not None and contours(chart) == []
    assert "the saving never reaches 90%" in caption_of(chart)


def test_the_overview_claims_a_90_percent_saving_only_where_the_data_reach_it() -> None:
    below = synthetic_table({(1, 1): 0.5, (2, 1): 0.87, (1, 2): 0.6, (2, 2): 0.7}, memory=0.8)
    chart = sweep_overview(below, {})
    assert chart is not None
    assert chart.title == "Ambient's saving of the data plane's CPU and memory: never 90% here"
    assert "no cell reaches a 90% saving (the highest: 87.0%)" in caption_of(chart)
    crossing = synthetic_table({(1, 1): 0.5, (2, 1): 0.95, (1, 2): 0.6, (2, 2): 0.97})
    chart = sweep_overview(crossing, {})
    assert chart is not None
    assert chart.title == "Where ambient saves 90% of the data plane's CPU and memory"
    assert "red dashed lines: where the saving reaches 90%" in caption_of(chart)
    assert "hatched" not in caption_of(chart)  # every cell comparable: no such legend
    panels = [ax.get_title() for ax in chart.figure.axes if ax.get_title()]
    assert panels == [
        "ambient: data-plane CPU saving vs sidecar",
        "ambient: data-plane memory saving vs sidecar (never 90%: at most 50.0%)",
    ]


def test_a_cell_just_under_90_percent_never_reads_90() -> None:
    assert [_percent_label(v) for v in (0.89897, 0.895, 0.9, 0.9049, 0.95, 0.5)] == [
        "89.8", "89.5", "90.0", "90.4", "95", "50"
    ]  # fmt: skip


def test_the_90_percent_line_does_not_cross_cells_that_are_not_comparable() -> None:
    """90% or more in every comparable cell: no line, though one cell, where the proxies
    saturated, is lower (it used to be drawn around it, a hatched cell counting as -100%)."""
    table = synthetic_table({(1, 1): 0.95, (2, 1): 0.96, (1, 2): 0.97, (2, 2): 0.5})
    for row in table.rows:
        row["saving_comparable"] = (row["a"], row["b"]) != (2, 2)
    chart = sweep_heatmap(table, "mesh_cpu_saving", "ambient", {})
    assert chart is not None and contours(chart) == []


def test_a_measured_run_next_to_a_simulated_one_is_a_calibration(
    run: RunResult, tmp_path: Path
) -> None:
    # The measured run reads 25% higher latencies than simulated, everything else equal.
    modes = {}
    for mode, result in run.modes.items():
        slower = LatencyMs(**{k: v * 1.25 for k, v in result.latency_ms.model_dump().items()})
        modes[mode] = result.model_copy(update={"latency_ms": slower})
    measured = run.model_copy(update={"kind": "measured", "engine": "local", "modes": modes})
    write_results(run, tmp_path / "sim")
    write_results(measured, tmp_path / "meas")
    inputs = load_inputs([tmp_path])  # found in subfolders, paired by scenario and seed
    assert len(inputs.calibrations) == 1 and inputs.runs == [inputs.calibrations[0][1]]
    rows = [r for r in compare_runs(*inputs.calibrations[0]) if r.error is not None]
    latency = [r for r in rows if r.figure in ("p50", "p90", "p99")]
    assert len(latency) == 3 * 4  # three percentiles in four modes
    assert all(r.error == pytest.approx(1 / 1.25 - 1) for r in latency)
    assert all(r.error == 0.0 for r in rows if r not in latency)
    stems = [c.stem for c in charts_for(inputs)]
    assert stems[-1] == f"{run.file_stem()}-calibration"
    scatter = charts_for(inputs)[-1]
    assert_labelled(scatter, "Scenario: smoke", "profile: istio-1.24")
    # the band is the median |error| of each panel: 20% for latency, 0 elsewhere
    titles = [ax.get_title() for ax in scatter.figure.axes]
    assert titles == [
        "latency: error ±20.0%",
        "throughput: error ±0.0%",
        "CPU per component: error ±0.0%",
        "memory per component: error ±0.0%",
    ]
    legend = [t.get_text() for t in scatter.figure.legends[0].get_texts()]
    assert legend[:2] == ["error band: ± median |error| (in each title)", "simulated = measured"]


def test_runs_of_one_scenario_and_seed_get_charts_of_their_own(
    run: RunResult, tmp_path: Path
) -> None:
    """Two simulations of the same scenario and seed (here by two engines), and a
    measurement simulated again one mode at a time (bench/calibration_other_topology.py's
    layout): every chart under its own name, and the measured run paired with the simulated
    run that has all its modes."""
    vector, des = (run.model_copy(update={"engine": e}) for e in ("vector", "des"))
    write_results(vector, tmp_path / "a" / "one")
    write_results(des, tmp_path / "a" / "two")
    inputs = load_inputs([tmp_path / "a"])
    stems = [c.stem for c in charts_for(inputs)]
    assert len(stems) == 8 and len(set(stems)) == 8
    assert f"{run.file_stem()}-simulated-des-savings" in stems
    assert f"{run.file_stem()}-simulated-vector-savings" in stems

    measured = run.model_copy(update={"kind": "measured", "engine": "local"})
    write_results(measured, tmp_path / "b" / "measured")
    write_results(run, tmp_path / "b" / "simulated")
    for mode in ("none", "sidecar"):
        one = run.model_copy(update={"modes": {mode: run.modes[mode]}})
        write_results(one, tmp_path / "b" / "simulated" / mode)
    inputs = load_inputs([tmp_path / "b"])
    assert len(inputs.calibrations) == 1
    assert set(inputs.calibrations[0][1].modes) == set(run.modes)
    stems = [c.stem for c in charts_for(inputs)]
    assert len(stems) == len(set(stems))
    assert f"{run.file_stem()}-calibration" in stems  # the only measured run keeps its name
    assert f"{run.file_stem()}-sidecar-latency-cdf" in stems  # the folder tells them apart
    assert f"{run.file_stem()}-simulated-latency-cdf" in stems
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "b"), "-o", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "c").iterdir())) == 2 * len(stems)  # png and svg of each

    # two measurements, each beside its simulation, one a folder further down (the
    # other-topology results' layout): each pairs with the simulation nearest it
    later = run.model_copy(update={"engine": "vector"})
    write_results(measured, tmp_path / "d" / "x" / "measured")
    write_results(later, tmp_path / "d" / "x" / "simulated")
    write_results(measured, tmp_path / "d" / "measured")
    write_results(run, tmp_path / "d" / "simulated")
    inputs = load_inputs([tmp_path / "d"])
    assert sorted(s.engine for _, s in inputs.calibrations) == sorted([run.engine, "vector"])
    stems = [c.stem for c in charts_for(inputs)]
    assert len(stems) == len(set(stems))
    assert f"{run.file_stem()}-x-measured-calibration" in stems
    assert f"{run.file_stem()}-measured-calibration" in stems


def test_a_summary_json_without_its_histograms_draws_no_whiskers_and_says_so(
    run: RunResult, tmp_path: Path
) -> None:
    write_results(run, tmp_path / "res")
    summary = tmp_path / "alone" / f"{run.file_stem()}.json"
    summary.parent.mkdir()
    summary.write_bytes((tmp_path / "res" / summary.name).read_bytes())
    alone = load_run(summary)
    chart = percentile_bars(alone)
    bars = [c for c in chart.figure.axes[0].containers if isinstance(c, BarContainer)]
    assert len(bars) == len(run.modes) and all(c.errorbar is None for c in bars)
    modes = ", ".join(run.modes)
    assert f"none for {modes}: no latency histogram was found" in " ".join(
        caption_of(chart).split()
    )
    result = CliRunner().invoke(main, ["plot", str(summary), "-o", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert (
        f"note: {run.file_stem()}: no latency histogram beside its summary JSON for {modes}: "
        "no latency CDF of those modes, no whiskers on their percentile bars\n"
    ) in result.output
    assert not any("latency-cdf" in p.name for p in (tmp_path / "c").iterdir())
    # with its histograms, whiskers on every bar
    axes = percentile_bars(run).figure.axes[0]
    assert all(c.errorbar is not None for c in axes.containers if isinstance(c, BarContainer))


def test_plot_command_writes_png_and_svg(run: RunResult, tmp_path: Path) -> None:
    write_results(run, tmp_path / "res")
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "res"), "-o", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(names) == 8 and f"{run.file_stem()}-savings.svg" in names


def test_plot_command_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "x.txt"), "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a run summary JSON, a results folder or a sweep folder" in result.output


def test_a_parameter_with_one_value_is_named_in_the_caption_not_drawn_as_an_axis() -> None:
    table = synthetic_table({(1, 1): 0.5, (2, 1): 0.95, (1, 2): 0.6, (2, 2): 0.97})
    for row in table.rows:
        row["c"] = 7
    table.meta["columns"] = ["c", "a", "b", "mode"]
    assert (table.parameters, table.fixed) == (["a", "b"], {"c": 7})
    chart = sweep_heatmap(table, "mesh_cpu_saving", "ambient", {})
    assert chart is not None and "c = 7" in caption_of(chart)
    assert chart.figure.axes[0].get_xlabel() == "a"


def test_a_sweep_that_gives_no_chart_says_why() -> None:
    table = synthetic_table({(1, 1): 0.5})
    assert sweep_chart_gap(table) is None and sweep_charts(table)
    modes_only = replace(table, meta={**table.meta, "columns": ["mode"]})
    assert sweep_charts(modes_only) == []
    assert sweep_chart_gap(modes_only) == (
        "sweep syn: it varies the mode only, and its charts draw the savings over a parameter "
        "(give its grid one more)"
    )
    no_sidecar = replace(table, rows=[r for r in table.rows if r["mode"] != "sidecar"])
    assert sweep_chart_gap(no_sidecar) == (
        "sweep syn: no sidecar runs to measure the savings against"
    )
    assert sweep_chart_gap(replace(table, rows=[])) == "sweep syn: no finished point in its table"


def test_plot_writes_every_chart_or_none(run: RunResult, tmp_path: Path) -> None:
    """A chart that cannot be written (a folder where its SVG goes) leaves every chart of
    the earlier plot as it was, and adds none."""
    write_results(run, tmp_path / "res")
    args = ["plot", str(tmp_path / "res"), "-o", str(tmp_path / "c")]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}
    shutil.rmtree(tmp_path / "c")
    (tmp_path / "c").mkdir()
    first = sorted(before)[0]
    (tmp_path / "c" / first).write_bytes(b"an earlier chart")
    (tmp_path / "c" / f"{run.file_stem()}-savings.svg").mkdir()  # in the way
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "a folder is in the way; every file is as it was" in result.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(
        [first, f"{run.file_stem()}-savings.svg"]
    )
    assert (tmp_path / "c" / first).read_bytes() == b"an earlier chart"
