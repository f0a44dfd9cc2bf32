"""`meshsim measure` and `meshsim testbed cleanup`: what they say when they cannot run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from click.testing import CliRunner

import meshsim.testbed.cleanup as cleanup
import meshsim.testbed.names as names
import meshsim.testbed.runner as runner
import meshsim.testbed.system as system
from meshsim.cli import main
from meshsim.testbed.processes import Managed, Supervisor
from meshsim.testbed.system import TestbedError

from .builders import ROOT

CHAIN = str(ROOT / "scenarios" / "testbed-chain.yaml")


def test_measure_explains_what_the_host_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        runner, "missing_requirements", lambda: ["root (network namespaces need it)", "haproxy"]
    )
    result = CliRunner().invoke(main, ["measure", CHAIN, "--mode", "none"])
    assert result.exit_code == 1
    assert result.output.endswith(
        "meshsim measure: the local testbed needs: root (network namespaces need it); haproxy\n"
    )


PACKAGES_MISSING = (
    "measuring needs the Python packages of the testbed extra (pip install -e '.[testbed]'); "
    "missing: cryptography\n"
)


@pytest.mark.parametrize("backend", ["local", "kind"])
def test_measure_names_the_testbed_packages_it_lacks(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Without the testbed extra, `measure` says what to install instead of a traceback
    from an import (the kind backend's manifests import the certificates' helpers too)."""
    monkeypatch.setattr(system, "missing_packages", lambda: ["cryptography"])
    result = CliRunner().invoke(main, ["measure", CHAIN, "--backend", backend, "--mode", "none"])
    assert result.exit_code == 1
    assert result.output == "meshsim measure: " + PACKAGES_MISSING


def test_calibrate_names_the_testbed_packages_it_lacks_before_measuring(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(system, "missing_packages", lambda: ["cryptography"])
    result = CliRunner().invoke(main, ["calibrate", CHAIN, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.endswith("Error: " + PACKAGES_MISSING)
    assert not list((tmp_path / "dataset").glob("*/*.json"))  # nothing measured


def test_measure_reports_bad_input_with_exit_code_2() -> None:
    result = CliRunner().invoke(main, ["measure", "no-such-scenario.yaml"])
    assert result.exit_code == 2
    assert "no-such-scenario.yaml:1:1: cannot read" in result.output


def test_cleanup_refuses_a_malformed_run_id() -> None:
    result = CliRunner().invoke(main, ["testbed", "cleanup", "--run", "../etc"])
    assert result.exit_code == 2
    assert result.output == (
        "meshsim testbed cleanup: not a testbed run id: '../etc' (expected 8 hex digits)\n"
    )


def test_cleanup_of_a_run_with_nothing_left_says_so() -> None:
    result = CliRunner().invoke(main, ["testbed", "cleanup", "--run", "deadbeef"])
    assert result.exit_code == 0
    assert result.output.startswith("run deadbeef: nothing of it is left (runs with leftovers: ")


@pytest.fixture
def run_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(names, "RUN_ROOT", tmp_path)
    monkeypatch.setattr(cleanup, "RUN_ROOT", tmp_path)
    return tmp_path


def _run_json(run_root: Path, run_id: str, **state: object) -> None:
    (run_root / run_id).mkdir()
    (run_root / run_id / "run.json").write_text(json.dumps({"run_id": run_id, **state}))


def test_a_runs_owner_is_its_process_not_a_later_one_with_its_pid(run_root: Path) -> None:
    me, started = os.getpid(), cleanup.process_started(os.getpid())
    assert started is not None
    _run_json(run_root, "0000000a", pid=me, pid_started=started)
    assert cleanup.run_owner("0000000a") == me
    # the pid given since to another process (it started later): the run's process is gone
    _run_json(run_root, "0000000b", pid=me, pid_started=started - 1)
    assert cleanup.run_owner("0000000b") is None
    with subprocess.Popen(["sleep", "30"]) as other:  # a run.json of before pid_started
        try:
            _run_json(run_root, "0000000c", pid=other.pid)
            assert cleanup.run_owner("0000000c") is None  # `sleep` is no meshsim
        finally:
            other.kill()
    assert cleanup.run_owner("0000000d") is None  # no run.json


def test_a_killed_process_not_yet_reaped_is_no_runs_owner(run_root: Path) -> None:
    """A zombie (killed, its parent not waiting yet) still has its /proc/PID/stat and start
    time: it runs no more, so what its run left can be cleaned up."""
    with subprocess.Popen(["sleep", "30"]) as child:
        started = cleanup.process_started(child.pid)
        assert started is not None
        _run_json(run_root, "0000000e", pid=child.pid, pid_started=started)
        assert cleanup.run_owner("0000000e") == child.pid
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert cleanup.process_started(child.pid) is None
        assert cleanup.run_owner("0000000e") is None


def test_one_run_measures_on_a_host_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two at once would share the host's cores, each counting the other's load as its
    nodes' background: the second is refused, naming the first, until the first ends (by
    its teardown, or its process's end, SIGKILL included)."""
    monkeypatch.setattr(runner, "RUN_ROOT", tmp_path)
    first = runner._hold_the_host("run 0000000a, meshsim pid 1234")
    with pytest.raises(TestbedError) as err:
        runner._hold_the_host("run 0000000b, meshsim pid 5678")
    assert str(err.value) == (
        "a testbed run is measuring on this host (run 0000000a, meshsim pid 1234): two at "
        "once share its cores and spoil each other's figures; wait for it to end"
    )
    os.close(first)
    os.close(runner._hold_the_host("run 0000000b, meshsim pid 5678"))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "import meshsim.testbed.runner as r, pathlib\n"
         f"r.RUN_ROOT = pathlib.Path({str(tmp_path)!r})\n"
         "r._hold_the_host('run 0000000c, meshsim pid x'); print('held', flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(TestbedError, match=r"\(run 0000000c, meshsim pid x\)"):
            runner._hold_the_host("run 0000000d")
    finally:
        holder.kill()
        holder.wait()
    os.close(runner._hold_the_host("run 0000000d"))


def test_cleanup_of_a_live_run_is_refused_without_all(
    run_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = os.getpid()
    _run_json(run_root, "0000000a", pid=me, pid_started=cleanup.process_started(me))
    removed: list[str] = []

    def cleanup_run(run_id: str) -> str:
        removed.append(run_id)
        return f"run {run_id}: removed"

    monkeypatch.setattr(cleanup, "cleanup_run", cleanup_run)
    result = CliRunner().invoke(main, ["testbed", "cleanup", "--run", "0000000a"])
    assert result.exit_code == 1
    assert result.output == (
        f"run 0000000a: its meshsim process (pid {me}) is still running; stop it (Ctrl-C, or "
        f"kill {me}: it removes its testbed itself), or remove it anyway with --run 0000000a "
        "--all\n"
    )
    assert removed == []
    result = CliRunner().invoke(main, ["testbed", "cleanup", "--run", "0000000a", "--all"])
    assert result.exit_code == 0 and removed == ["0000000a"]


def test_a_scenario_larger_than_the_testbed_is_named_at_its_line(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "scenarios" / "testbed-two-pods.yaml").read_text())
    doc["cluster"]["nodes"] = 300
    doc["profile"] = str(ROOT / "profiles" / "local-haproxy.yaml")
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(doc, sort_keys=False))
    line = big.read_text().splitlines().index("  nodes: 300") + 1
    result = CliRunner().invoke(main, ["measure", str(big), "--mode", "none"])
    assert result.exit_code == 2
    assert result.output == (
        f"{big}:{line}:10: cluster.nodes: the local testbed takes at most 250 nodes, and this "
        "scenario uses 300: simulate it with meshsim run\n"
    )


def test_a_process_killed_with_its_run_folder_says_the_testbed_went_from_outside(
    tmp_path: Path,
) -> None:
    """`testbed cleanup --run ID --all` on a live run: its processes die and its folder
    goes; the run says what happened, not 'last lines of' a log that no longer exists."""
    supervisor = Supervisor()
    with subprocess.Popen(["true"]) as done:
        done.wait()
        log = tmp_path / "gone" / "app-echo-0.log"
        supervisor.processes.append(Managed("echo-0", "app", done, log, cast(Any, None)))
        with pytest.raises(TestbedError) as err:
            supervisor.check_alive()
    assert str(err.value) == (
        f"app echo-0 (pid {done.pid}) exited with code 0 during the run, and the run's files "
        f"are gone ({log.parent}): its testbed was removed from outside (meshsim testbed "
        "cleanup --all?); the run is void"
    )


def test_calibrate_names_a_setting_the_testbed_cannot_stand_up_before_measuring(
    tmp_path: Path,
) -> None:
    doc = yaml.safe_load((ROOT / "scenarios" / "testbed-two-pods.yaml").read_text())
    doc["profile"] = str(ROOT / "profiles" / "local-haproxy.yaml")
    scenario = tmp_path / "two.yaml"
    scenario.write_text(yaml.safe_dump(doc, sort_keys=False))
    grid = tmp_path / "grid.yaml"
    grid.write_text("name: g\ngrid:\n  cluster.nodes: [2, 300]\n  mode: [none]\n")
    out = tmp_path / "cal"
    args = ["calibrate", str(scenario), "--grid", str(grid), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.endswith(
        "meshsim calibrate: setting testbed-two-pods nodes=300: the local testbed takes at "
        "most 250 nodes, and this scenario uses 300: simulate it with meshsim run\n"
    )
    assert not (out / "dataset").exists() or not any((out / "dataset").iterdir())
