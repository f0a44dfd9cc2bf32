"""The run command's outputs: the JSON contract, the results files, the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshsim.cli import main
from meshsim.results import write_atomically

from .builders import ROOT, base_scenario, write_yaml

CONTRACT_MODE_KEYS = {
    "requests",
    "errors",
    "throughput_rps",
    "latency_ms",
    "cpu_cores",
    "memory_mib",
    "handshakes_per_s",
    "connections_open",
    "proxies",
    "cost_usd_month",
}
BY_COMPONENT = {"total", "app", "sidecar", "ztunnel", "waypoint"}


def _scenario(tmp_path: Path) -> Path:
    doc = base_scenario(
        name="small",
        workloads=[
            {"name": "web", "cpu_time": 0.2, "calls": [{"to": "db"}]},
            {"name": "db", "service_time": {"dist": "exponential", "mean_ms": 1}},
        ],
        traffic={"entry": "web", "open_loop": {"rate_rps": 50}, "duration_s": 3, "warmup_s": 0.5},
        mesh={"modes": ["none", "sidecar", "ambient", "ambient-waypoint"]},
    )
    doc["profile"] = str(ROOT / "profiles" / "istio-1.24.yaml")
    return write_yaml(tmp_path / "small.yaml", doc)


def test_json_follows_the_contract(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(_scenario(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {"meshsim_version", "scenario", "engine", "seed", "profile", "modes"} <= set(doc)
    assert (doc["scenario"], doc["engine"], doc["seed"], doc["profile"]) == (
        "small",
        "des",
        1,
        "istio-1.24",
    )
    assert list(doc["modes"]) == ["none", "sidecar", "ambient", "ambient-waypoint"]
    for mode, figures in doc["modes"].items():
        assert set(figures) >= CONTRACT_MODE_KEYS, mode
        assert set(figures["latency_ms"]) == {"mean", "p50", "p90", "p99", "p999"}
        assert set(figures["cpu_cores"]) == BY_COMPONENT
        assert set(figures["memory_mib"]) == BY_COMPONENT
        assert set(figures["proxies"]) == {"sidecar", "ztunnel", "waypoint"}
        parts = sum(figures["cpu_cores"][k] for k in BY_COMPONENT - {"total"})
        assert figures["cpu_cores"]["total"] == parts
    assert doc["profile_held_out"] is None  # a profile meshsim calibrate did not fit
    none = doc["modes"]["none"]
    assert none["cpu_cores"]["sidecar"] == none["memory_mib"]["ztunnel"] == 0
    assert doc["modes"]["sidecar"]["proxies"] == {"sidecar": 3, "ztunnel": 0, "waypoint": 0}


def test_the_table_says_a_profile_not_fitted_here_has_no_held_out_error(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(main, ["run", str(_scenario(tmp_path))], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert (
        "Profile istio-1.24 carries no held-out error (meshsim calibrate writes one into the "
        "profiles it fits): how far its figures are from measurements is not stated; each of "
        "its numbers names its source in the profile.\n"
    ) in result.output


def test_an_error_while_writing_leaves_every_file_as_it_was(tmp_path: Path) -> None:
    old = tmp_path / "a.json"
    old.write_text("old\n")
    with pytest.raises(TypeError):
        write_atomically({old: "new\n", tmp_path / "sub" / "b.csv": object()})  # type: ignore[dict-item]
    assert old.read_text() == "old\n"
    assert not (tmp_path / "sub" / "b.csv").exists()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["a.json"]  # no temporaries
    written = write_atomically({old: "new\n", tmp_path / "sub" / "b.csv": b"x,y\n"})
    assert written == [old, tmp_path / "sub" / "b.csv"]
    assert (old.read_text(), written[1].read_bytes()) == ("new\n", b"x,y\n")


def test_mode_and_seed_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", str(_scenario(tmp_path)), "--json", "--mode", "ambient", "--seed", "9"]
    )
    doc = json.loads(result.output)
    assert list(doc["modes"]) == ["ambient"]
    assert doc["seed"] == 9


def test_out_writes_the_results_files(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = CliRunner().invoke(
        main,
        ["run", str(_scenario(tmp_path)), "--out", str(out), "--mode", "none", "--mode", "sidecar"],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "small-none-seed1-histogram.csv",
        "small-seed1-components.csv",
        "small-seed1-latency.csv",
        "small-seed1.json",
        "small-sidecar-seed1-histogram.csv",
    ]
    summary = json.loads((out / "small-seed1.json").read_text())
    assert set(summary["modes"]) == {"none", "sidecar"}
    header = (out / "small-seed1-latency.csv").read_text().splitlines()[0]
    assert header == "mode,mean,p50,p90,p99,p999,requests,errors,throughput_rps"
    hist = (out / "small-sidecar-seed1-histogram.csv").read_text().splitlines()
    assert hist[0] == "lower_us,upper_us,count"
    counted = sum(int(line.split(",")[2]) for line in hist[1:])
    assert (
        counted == summary["modes"]["sidecar"]["requests"] - summary["modes"]["sidecar"]["errors"]
    )


def test_schema_is_a_json_schema_of_the_scenario() -> None:
    result = CliRunner().invoke(main, ["schema"])
    schema = json.loads(result.output)
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"cluster", "workloads", "traffic", "profile"} <= set(schema["required"])
    assert "mesh" in schema["properties"]


def test_python_dash_m_meshsim_is_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "meshsim", "validate", str(ROOT / "scenarios" / "quickstart.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{ROOT / 'scenarios' / 'quickstart.yaml'}: ok (")
