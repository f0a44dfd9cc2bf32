"""The run command's outputs: the JSON contract, the results files, the schema."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshsim.cli import main
from meshsim.profile import Profile
from meshsim.results import WriteError, write_atomically
from meshsim.run import simulate

from .builders import ROOT, base_scenario, scenario_of, write_yaml

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
        "Profile istio-1.24: no held-out error recorded with this run (meshsim calibrate "
        "writes one into the profiles it fits; a run made with such a profile carries it): how "
        "far its figures are from measurements is not stated; each of the profile's numbers "
        "names its source.\n"
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


def test_an_error_while_renaming_puts_back_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All or none also when the renames fail part of the way: a folder where a file goes
    is found before any is renamed; a rename that fails puts back the ones done."""
    old = tmp_path / "a.json"
    old.write_text("old\n")
    (tmp_path / "c.csv").mkdir()
    with pytest.raises(WriteError) as err:
        write_atomically({old: "new\n", tmp_path / "b.csv": "b\n", tmp_path / "c.csv": "c\n"})
    assert str(err.value) == (
        f"could not write {tmp_path / 'c.csv'}: a folder is in the way; every file is as it was"
    )
    assert old.read_text() == "old\n" and not (tmp_path / "b.csv").exists()
    (tmp_path / "c.csv").rmdir()
    replace = os.replace
    calls = []

    def failing(src: str, dst: Path) -> None:
        calls.append(dst)
        if len(calls) == 3:  # a.json and b.csv renamed in, c.csv fails
            raise OSError("disk gone")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk gone"):
        write_atomically({old: "new\n", tmp_path / "b.csv": "b\n", tmp_path / "c.csv": "c\n"})
    monkeypatch.setattr(os, "replace", replace)
    assert old.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # nothing else left


def test_a_signal_right_after_a_rename_still_puts_back_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception may land between a rename and any record of it (not a signal: those
    wait for the whole set, below): the file whose temporary name is gone is put back
    too, and nothing is left."""
    old = tmp_path / "a.json"
    old.write_text("old\n")
    replace = os.replace
    calls = []

    def interrupted(src: str, dst: Path) -> None:
        calls.append(dst)
        replace(src, dst)
        if len(calls) == 2:  # b.csv is in place, and then the signal
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically({old: "new\n", tmp_path / "b.csv": "b\n", tmp_path / "c.csv": "c\n"})
    monkeypatch.setattr(os, "replace", replace)
    assert old.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_sigterm_while_results_are_written_waits_for_the_whole_set_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal between two renames comes once every file is in place (never a set of
    which some files are new and some old), and the command then stops with 130."""
    out, small = tmp_path / "out", write_yaml(tmp_path / "s.yaml", base_scenario())
    ok = CliRunner().invoke(main, ["run", str(small), "--mode", "none", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    clean = tmp_path / "clean"
    args = ["run", str(small), "--mode", "none", "--seed", "8", "--out"]
    assert CliRunner().invoke(main, [*args, str(clean)]).exit_code == 0
    replace = os.replace
    calls = []

    def terminated(src: str, dst: Path) -> None:
        calls.append(dst)
        replace(src, dst)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what CI's timeout sends

    monkeypatch.setattr(os, "replace", terminated)
    result = CliRunner().invoke(main, [*args, str(out)])
    monkeypatch.setattr(os, "replace", replace)
    assert len(calls) > 2  # the renames went on after the signal
    assert result.exit_code == 130
    assert result.output.endswith("meshsim: stopped (SIGTERM)\n")
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {k: after[k] for k in before} == before
    assert {k: v for k, v in after.items() if k not in before} == {
        p.name: p.read_bytes() for p in clean.iterdir()
    }


def test_written_files_get_the_permissions_open_would_give(tmp_path: Path) -> None:
    """Not mkstemp's owner-only 0600: a new file gets 0666 less the umask, a file written
    over keeps its permissions."""
    kept = tmp_path / "kept.json"
    kept.write_text("old\n")
    kept.chmod(0o604)
    old_umask = os.umask(0o027)
    try:
        write_atomically({tmp_path / "new.json": "x\n", kept: "new\n"})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640
    assert stat.S_IMODE(kept.stat().st_mode) == 0o604
    os.umask(0o022)
    try:
        write_atomically({tmp_path / "other.csv": "y\n"})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "other.csv").stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            ["run", "SCENARIO", "--out", "{tmp}/afile/sub"],
            "Error: Invalid value for '--out': {tmp}/afile is a file, so {tmp}/afile/sub "
            "cannot be made\n",
        ),
        (
            ["run", "SCENARIO", "--out", "{tmp}/afile"],
            "Error: Invalid value for '--out': {tmp}/afile is a file, not a folder\n",
        ),
        (
            ["report", "{tmp}", "-o", "{tmp}"],
            "Error: Invalid value for '-o' / '--out': {tmp} is a folder, not a file\n",
        ),
        (
            ["plot", "{tmp}", "-o", "{tmp}/afile/charts"],
            "Error: Invalid value for '-o' / '--out': {tmp}/afile is a file, so "
            "{tmp}/afile/charts cannot be made\n",
        ),
        (
            ["run", "SCENARIO", "--seed", "-1"],
            "Error: Invalid value for '--seed': -1 is not in the range x>=0.\n",
        ),
    ],
)
def test_outputs_and_seed_are_checked_before_anything_runs(
    tmp_path: Path, command: list[str], message: str
) -> None:
    """A run that takes minutes must not end on 'Not a directory' with nothing written."""
    (tmp_path / "afile").write_text("x\n")
    scenario = _scenario(tmp_path)
    args = [str(scenario) if a == "SCENARIO" else a.format(tmp=tmp_path) for a in command]
    result = CliRunner().invoke(main, args, terminal_width=400)
    assert result.exit_code == 2
    assert result.output.endswith(message.format(tmp=tmp_path))
    assert "engine auto" not in result.output  # nothing was simulated


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
        "small-seed1-scenario.yaml",
        "small-seed1.json",
        "small-sidecar-seed1-histogram.csv",
    ]
    summary = json.loads((out / "small-seed1.json").read_text())
    assert set(summary["modes"]) == {"none", "sidecar"}
    header = (out / "small-seed1-latency.csv").read_text().splitlines()[0]
    assert header == "mode,mean_ms,p50_ms,p90_ms,p99_ms,p999_ms,requests,errors,throughput_rps"
    hist = (out / "small-sidecar-seed1-histogram.csv").read_text().splitlines()
    assert hist[0] == "lower_us,upper_us,count"
    counted = sum(int(line.split(",")[2]) for line in hist[1:])
    assert (
        counted == summary["modes"]["sidecar"]["requests"] - summary["modes"]["sidecar"]["errors"]
    )
    # the scenario as run, kept beside: run again from it, it gives the same results
    again = CliRunner().invoke(main, ["run", str(out / "small-seed1-scenario.yaml"), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["modes"] == summary["modes"]


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


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_standard_output_that_takes_nothing_is_said_once_without_a_traceback() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "meshsim", "schema"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert done.stderr == "meshsim: cannot write to standard output: No space left on device\n"


def test_a_call_tree_too_large_for_the_vector_engine_runs_on_the_des_engine(
    tmp_path: Path,
) -> None:
    """6,101 calls a request: auto picks the DES engine and says why; asked for the vector
    engine, the command says what to do instead of a traceback."""
    doc = base_scenario(
        name="wide",
        workloads=[
            {"name": "web", "calls": [{"to": "api", "count": 100}]},
            {"name": "api", "calls": [{"to": "db", "count": 60}]},
            {"name": "db"},
        ],
        traffic={"entry": "web", "open_loop": {"rate_rps": 2}, "duration_s": 0.6},
        mesh={"modes": ["none"]},
    )
    doc["profile"] = str(ROOT / "profiles" / "istio-1.24.yaml")
    path = write_yaml(tmp_path / "wide.yaml", doc)
    vector = CliRunner().invoke(main, ["run", str(path), "--engine", "vector"])
    assert vector.exit_code == 2
    assert vector.output == (
        f"{path}: the call graph unrolls into more than 5000 calls per request, more than the "
        "vector engine lays out; use the DES engine (--engine des)\n"
    )
    auto = CliRunner().invoke(main, ["run", str(path), "--json"])
    assert auto.exit_code == 0, auto.output
    assert json.loads(auto.stdout)["engine"] == "des"


def test_validate_tells_profiles_sweeps_and_grids_from_scenarios(tmp_path: Path) -> None:
    files = [
        ROOT / "profiles" / "istio-1.24.yaml",
        ROOT / "scenarios" / "sweeps" / "smoke.yaml",
        ROOT / "scenarios" / "grids" / "testbed-two-pods.yaml",
        ROOT / "scenarios" / "quickstart.yaml",
    ]
    result = CliRunner().invoke(main, ["validate", *map(str, files)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{files[0]}: ok (profile istio-1.24)",
        f"{files[1]}: ok (sweep smoke: 12 points of smoke)",
        f"{files[2]}: ok (calibration grid testbed-two-pods: 9 settings of "
        f"{ROOT / 'scenarios' / 'testbed-two-pods.yaml'})",
        f"{files[3]}: ok (10 workloads, profile istio-1.24)",
    ]
    # a profile is checked as a profile: a key it does not have is named at its line
    text = files[0].read_text()
    bad = tmp_path / "bad-profile.yaml"
    bad.write_text(text.replace("name: istio-1.24", "name: bad\nsidecar_typo: 1", 1))
    line = bad.read_text().splitlines().index("sidecar_typo: 1") + 1
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"{bad}:{line}:1: sidecar_typo: unknown key 'sidecar_typo' (did you mean 'sidecar'?)"
    )


def test_the_scenario_kept_with_the_results_reads_back_whatever_its_strings(
    tmp_path: Path,
) -> None:
    """A string that reads as a number (1e5) is quoted in what meshsim writes: written
    bare, as YAML 1.1 writers do, it read back as a number and the copy was refused."""
    out, small = tmp_path / "out", write_yaml(tmp_path / "s.yaml", base_scenario(description="1e5"))
    ok = CliRunner().invoke(main, ["run", str(small), "--mode", "none", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    again = CliRunner().invoke(main, ["validate", str(out / "test-seed1-scenario.yaml")])
    assert again.exit_code == 0, again.output


def test_validate_finds_a_grids_scenario_from_inside_the_grids_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT / "scenarios" / "grids")  # a bare name: its parent's parent is "."
    result = CliRunner().invoke(main, ["validate", "testbed-two-pods.yaml"])
    assert result.exit_code == 0, result.output
    assert "calibration grid testbed-two-pods: 9 settings of " in result.output


def test_ctrl_c_stops_modes_running_side_by_side_at_their_next_window(
    istio_profile: Profile,
) -> None:
    """`run --jobs 2`: Ctrl-C does not wait for the running modes to end (seconds here,
    minutes on a large cluster); they stop at their next window."""
    scenario = scenario_of(
        base_scenario(
            traffic={"entry": "app", "open_loop": {"rate_rps": 500}, "duration_s": 8000,
                     "warmup_s": 1},
            mesh={"modes": ["none", "sidecar"]},
        )
    )  # fmt: skip
    seen: list[float] = []

    def progress(mode: str, fraction: float) -> None:
        seen.append(fraction)
        if len(seen) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        simulate(scenario, istio_profile, engine="vector", jobs=2, progress=progress)
    assert max(seen) < 0.5  # the sidecar mode runs in 18 windows


# meshsim's console script, with the loading of meshsim.cli held at a gate: the test
# signals it while it is loading, then lets it go on
GATED = """
import importlib.abc, pathlib, sys, time
class Gate(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "meshsim.cli":
            pathlib.Path(flag).touch()  # loading now
            for _ in range(6000):  # the signal lands here; 60 s at most
                time.sleep(0.01)
        return None
sys.meta_path.insert(0, Gate())
flag, sys.argv = sys.argv[1], ["meshsim", *sys.argv[2:]]
from meshsim.entry import main
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_meshsim_is_still_loading_exits_130_without_a_traceback(
    tmp_path: Path, sig: int
) -> None:
    """Loading meshsim's modules takes a second or more: a signal then ends the command as
    at any other moment (before, a traceback, or death by the signal: 143, 129)."""
    small = write_yaml(tmp_path / "s.yaml", base_scenario())
    flag = tmp_path / "loading"
    proc = subprocess.Popen(
        [sys.executable, "-c", GATED, str(flag), "run", str(small), "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not flag.exists() and proc.poll() is None:
        time.sleep(0.01)
    assert flag.exists(), "meshsim should be loading meshsim.cli, held at the gate"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    name = "interrupted" if sig == signal.SIGINT else f"stopped ({signal.Signals(sig).name})"
    assert stderr == f"meshsim: {name}\n"
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_the_arguments_are_read_exits_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not click's "Aborted!" and exit 1: reading the arguments is part of the command."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(type(main), "parse_args", interrupted)  # the group's own
    result = CliRunner().invoke(main, ["run", "x.yaml"])
    assert (result.exit_code, result.output) == (130, "meshsim: interrupted\n")
