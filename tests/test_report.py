"""The HTML report: self-contained, with the scenario, table, charts and profile sources."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from meshsim.cli import main
from meshsim.loader import load_scenario
from meshsim.plots import (
    PERCENTILES,
    calibration_fit_scatter,
    charts_for,
    load_calibration_folder,
    load_inputs,
)
from meshsim.render import (
    MARK,
    NOISE_NOTE,
    PERCENTILE_NOISE_NOTE,
    overhead_cell,
    percentile_cell,
)
from meshsim.report import _profile_for, find_scenario
from meshsim.results import LatencyMs, RunResult, write_results
from meshsim.run import simulate
from meshsim.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ROOT / "scenarios" / "sweeps"


@pytest.fixture(scope="module")
def run() -> RunResult:
    scenario, profile = load_scenario(SWEEPS / "smoke-base.yaml")
    return simulate(scenario, profile, seed=3)


def report_of(paths: list[Path], out: Path) -> str:
    result = CliRunner().invoke(main, ["report", *map(str, paths), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


def test_report_of_a_run_holds_everything_inline(run: RunResult, tmp_path: Path) -> None:
    write_results(run, tmp_path / "res")
    page = report_of([tmp_path / "res"], tmp_path / "report.html")
    images = re.findall(r'<img alt="[^"]*" src="([^"]*)"', page)
    assert len(images) == len(charts_for(load_inputs([tmp_path / "res"]))) == 4
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing may load from elsewhere"
    # the scenario in brief (found in scenarios/sweeps by its name), the table, the sources
    assert "Client -&gt; api -&gt; db on two nodes" in page
    assert "2 services, 2 app pods, 1 call edges" in page
    assert "<th>ambient-waypoint</th>" in page
    assert "data-plane CPU saving vs sidecar" in page
    assert f"Profile {run.profile}: no held-out error recorded with this run (meshsim" in page
    # percentiles sampling cannot pin down are marked as on the terminal, and the mark told
    cells = [percentile_cell(r, key) for r in run.modes.values() for key, _ in PERCENTILES]
    assert any(c.endswith(MARK) for c in cells)  # a short run: its p99.9 is one of a few
    assert all(f"<td>{c}</td>" in page for c in cells)
    # and the overheads against no mesh, as the terminal's table has them
    overheads = [overhead_cell(run, m, p) for p in ("p50", "p99") for m in run.modes]
    assert all(f"<td>{c}</td>" in page for c in overheads)
    assert "<td>p99 overhead (ms)</td>" in page
    note = NOISE_NOTE if any(c.endswith(MARK) for c in overheads) else PERCENTILE_NOISE_NOTE
    assert html.escape(note) in page
    assert "sidecar.cpu.per_request_us.outbound" in page
    assert "minus 2 x 1 KiB x per_kib_us" in page  # a source string from the profile


def test_report_writes_over_an_earlier_report_only(run: RunResult, tmp_path: Path) -> None:
    write_results(run, tmp_path / "res")
    summary = next((tmp_path / "res").glob("*.json"))
    before = summary.read_bytes()
    result = CliRunner().invoke(main, ["report", str(summary), "-o", str(summary)])
    assert result.exit_code == 2
    assert result.output == (
        f"{summary} exists and is not an HTML page: report writes over an earlier report "
        "only; give -o another file\n"
    )
    assert summary.read_bytes() == before
    page = tmp_path / "res" / "report.html"
    first = report_of([summary], page)
    page.write_text("<!DOCTYPE html>\n<p>an old report</p>\n", encoding="utf-8")
    assert report_of([summary], page) == first


def test_a_scenario_kept_beside_the_run_that_does_not_read_back_is_said_so(
    run: RunResult, tmp_path: Path
) -> None:
    write_results(run, tmp_path / "res")
    kept = tmp_path / "res" / f"{run.file_stem()}-scenario.yaml"
    kept.write_text(yaml.safe_dump(load_scenario(SWEEPS / "smoke-base.yaml")[0].model_dump(
        mode="json")).replace("workloads:", "workloadz:", 1))  # fmt: skip
    page = report_of([tmp_path / "res"], tmp_path / "report.html")
    assert f"The scenario file {kept} does not read back" in page
    assert "workloadz: unknown key &#x27;workloadz&#x27; (did you mean" in page
    assert "was not found next to the results" not in page


def test_report_of_a_sweep_summarises_the_savings(tmp_path: Path) -> None:
    plan = load_sweep(SWEEPS / "smoke.yaml")
    run_sweep(plan, tmp_path / "sweep", workers=2)
    page = report_of([tmp_path / "sweep"], tmp_path / "report.html")
    assert "Sweep: smoke" in page and "12 of 12 points finished" in page
    assert "<td>pods_per_node</td><td>1, 3</td>" in page
    assert "Every point (12 rows)" in page and "<th>not comparable</th>" in page
    assert page.count("data:image/png;base64,") == 7  # overview, 4 heat maps, 2 curves
    # a damaged sweep folder is named by file, line and field, by report and by plot
    table = (tmp_path / "sweep" / "sweep.csv").read_text().splitlines(keepends=True)
    header = table[0].rstrip("\n").split(",")
    cells = table[2].rstrip("\n").split(",")
    cells[header.index("latency_p50_ms")] = "abc"
    meta = tmp_path / "sweep" / "sweep.json"
    lines = meta.read_text().splitlines()
    points_line = next(i for i, line in enumerate(lines, 1) if line.startswith('  "points"'))
    damaged = [
        (
            "sweep.csv",
            "".join(table[:3])[:-20],
            f"sweep.csv:3:1: {len(header)} cells expected, as in the header: the table is cut "
            "short",
        ),
        (
            "sweep.csv",
            "".join([*table[:2], ",".join(cells) + "\n", *table[3:]]),
            f"sweep.csv:3:{header.index('latency_p50_ms') + 1}: latency_p50_ms: "
            "expected a number, not 'abc'",
        ),
        ("sweep.json", "[]\n", "sweep.json:1:1: expected a sweep's metadata: an object"),
        (
            "sweep.json",
            meta.read_text().replace('"points": 12', '"points": "12"'),
            f"sweep.json:{points_line}:",
        ),
    ]
    for name, text, message in damaged:
        folder = tmp_path / f"damaged-{len(list(tmp_path.glob('damaged-*')))}"
        shutil.copytree(tmp_path / "sweep", folder)
        (folder / name).write_text(text)
        for command in (["report", str(folder), "-o", str(tmp_path / "d.html")],
                        ["plot", str(folder), "-o", str(tmp_path / "d")]):  # fmt: skip
            result = CliRunner().invoke(main, command)
            assert result.exit_code == 2, (name, command[0], result.output)
            assert result.output.startswith(f"{folder / message}"), (name, result.output)
    assert not (tmp_path / "d.html").exists() and not (tmp_path / "d").exists()


def test_find_scenario_matches_by_name_not_file_name(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("name: smoke\nworkloads: []\n")
    assert find_scenario("smoke", [tmp_path]) == tmp_path / "other.yaml"
    assert find_scenario("smoke", []) == SWEEPS / "smoke-base.yaml"
    assert find_scenario("no-such-scenario", [tmp_path]) is None


def test_the_report_describes_the_scenario_run_not_a_bundled_one_of_its_name(
    tmp_path: Path,
) -> None:
    doc = yaml.safe_load((SWEEPS / "smoke-base.yaml").read_text())
    doc["traffic"]["open_loop"]["rate_rps"] = 37
    doc["profile"] = str(ROOT / "profiles" / "istio-1.24.yaml")
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(doc))
    ran = CliRunner().invoke(
        main, ["run", str(edited), "--mode", "none", "--out", str(tmp_path / "res")]
    )
    assert ran.exit_code == 0, ran.output
    page = report_of([tmp_path / "res"], tmp_path / "report.html")
    assert "open loop, 37 req/s" in page  # the bundled smoke-base gives another rate
    # another run of the scenario, at another rate and seed, into the same folder: each
    # run is described by its own copy, not the first whose name matches
    doc["traffic"]["open_loop"]["rate_rps"] = 91
    edited.write_text(yaml.safe_dump(doc))
    args = ["run", str(edited), "--mode", "none", "--seed", "10", "--out", str(tmp_path / "res")]
    assert CliRunner().invoke(main, args).exit_code == 0
    first_run = tmp_path / "res" / f"smoke-seed{doc['seed']}.json"
    assert first_run.is_file()
    page = report_of([first_run], tmp_path / "one.html")
    assert "open loop, 37 req/s" in page and "91 req/s" not in page


def test_a_fitted_profile_is_found_by_its_name_not_its_file_name() -> None:
    """profiles/local-haproxy.yaml is named calibrated-testbed-chain: a run of it names
    that, and the report lists its numbers (it said the profile file was not found)."""
    found = _profile_for("calibrated-testbed-chain", None)
    assert found is not None and found.held_out is not None
    assert _profile_for("no-such-profile", None) is None


def test_report_of_a_calibration_pair_shows_the_error_per_figure(
    run: RunResult, tmp_path: Path
) -> None:
    modes = {
        mode: result.model_copy(update={"throughput_rps": result.throughput_rps * 1.1})
        for mode, result in run.modes.items()
    }
    measured = run.model_copy(update={"kind": "measured", "engine": "local", "modes": modes})
    write_results(run, tmp_path / "sim")
    write_results(measured, tmp_path / "meas")
    page = report_of([tmp_path / "meas", tmp_path / "sim"], tmp_path / "report.html")
    assert "Calibration: smoke" in page
    # simulated throughput is 1/1.1 of the measured one: error 1/1.1 - 1 = -9.1%
    assert "<td>throughput</td><td>4</td><td>9.1%</td>" in page
    assert "<td>p50</td><td>4</td><td>0.0%</td>" in page
    assert page.count("data:image/png;base64,") == 5  # the run's four charts + the scatter


def test_report_and_plot_read_what_meshsim_calibrate_writes(run: RunResult, tmp_path: Path) -> None:
    from meshsim.calibrate.calibration import rows_csv
    from meshsim.calibrate.compare import compare_runs

    # Two settings: one fitted on (errors of 0), one held out (simulated latency 10% low).
    modes = {}
    for mode, result in run.modes.items():
        slower = LatencyMs(**{k: v / 0.9 for k, v in result.latency_ms.model_dump().items()})
        modes[mode] = result.model_copy(update={"latency_ms": slower})
    measured = run.model_copy(update={"kind": "measured", "modes": modes})
    folder = tmp_path / "calibration" / "smoke"
    folder.mkdir(parents=True)
    held = compare_runs(measured, run, point="smoke-held")
    (folder / "heldout.csv").write_text(rows_csv(held))
    (folder / "insample.csv").write_text(rows_csv(compare_runs(run, run, point="smoke-fit")))
    (folder / "report.txt").write_text("estimates (95% confidence intervals): ...\n")
    write_results(measured, folder / "dataset" / "smoke-held")  # not drawn one by one
    manifest = {"scenario_file": str(SWEEPS / "smoke-base.yaml"), "settings": []}
    (folder / "dataset" / "manifest.json").write_text(json.dumps(manifest))

    # the tables read back whole: each component's kind and each percentile's sampling error
    back = load_calibration_folder(folder).held_out
    assert [(r.figure, r.component, r.kind) for r in back] == [
        (r.figure, r.component, r.kind) for r in held
    ]
    assert any(r.kind == "sidecar" for r in back)
    assert [r.sampling for r in back] == [
        None if r.sampling is None else pytest.approx(r.sampling, rel=1e-5) for r in held
    ]
    assert any(r.sampling is not None for r in back)
    page = report_of([tmp_path / "calibration"], tmp_path / "report.html")
    assert "<h2>Calibration: smoke</h2>" in page and "<h3>Held-out error</h3>" in page
    assert "<td>p50</td><td>4</td><td>10.0%</td><td>-10.0% (" in page
    assert "<td>p50</td><td>4</td><td>0.0%</td>" in page  # in sample
    assert "estimates (95% confidence intervals)" in page
    assert "2 services, 2 app pods, 1 call edges" in page  # the scenario, from the manifest
    assert page.count("data:image/png;base64,") == 1  # the scatter, not the dataset's runs
    plotted = CliRunner().invoke(
        main, ["plot", str(tmp_path / "calibration"), "-o", str(tmp_path / "c")]
    )
    assert plotted.exit_code == 0, plotted.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "calibration-smoke.png",
        "calibration-smoke.svg",
    ]
    scatter = calibration_fit_scatter(load_calibration_folder(folder))
    assert scatter is not None
    assert "Scenario: smoke-base · " in " ".join(t.get_text() for t in scatter.figure.texts)
