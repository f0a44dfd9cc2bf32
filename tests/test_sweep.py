"""Sweeps: parameter paths, named parameters, seeds, executors, resuming and failures."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from distributed import LocalCluster

from meshsim.loader import InputError
from meshsim.scenario import Scenario
from meshsim.sweep import (
    SchedulerError,
    SweepPlan,
    _visits_per_entry,
    apply_point,
    check_path,
    inputs_digest,
    load_sweep,
    point_seed,
    run_sweep,
    with_engine,
)
from tests.builders import ISTIO, write_yaml

SWEEPS = Path(__file__).resolve().parent.parent / "scenarios" / "sweeps"
BASE = SWEEPS / "smoke-base.yaml"
MESHSIM = [sys.executable, "-c", "from meshsim.cli import main; main()"]


def default_sigint() -> None:
    """In the child: Ctrl-C as a terminal delivers it, even if this process ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_sweep(tmp_path: Path, body: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"name: t\nscenario: {BASE}\n" + textwrap.dedent(body), encoding="utf-8")
    return path


def table_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ---- paths and parameters ------------------------------------------------------------------


def test_check_path_accepts_schema_paths() -> None:
    for path in (
        "traffic.open_loop.rate_rps",
        "workloads[*].replicas",
        "workloads[0].calls[*].response_bytes",
        "cluster.nodes",
        "mesh.waypoint_scope",
        "mesh.pool.idle_timeout_s",
    ):
        check_path(path)


def test_check_path_explains_an_unknown_key() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'replica' under 'workloads\[\*\]' "
                       r"\(did you mean 'replicas'\?\)"):  # fmt: skip
        check_path("workloads[*].replica")


def test_check_path_refuses_an_index_on_a_mapping() -> None:
    with pytest.raises(ValueError, match=r"'traffic' is not a list, so it takes no index"):
        check_path("traffic[0].entry")


def test_bad_sweep_file_errors_carry_file_line_and_column(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path,
        """\
        grid:
          pods_per_nod: [1, 2]
          workloads[*].replica: [1]
        """,
    )
    with pytest.raises(InputError) as err:
        load_sweep(path)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{path}:4:3: grid.pods_per_nod: unknown parameter 'pods_per_nod'")
    assert "(did you mean 'pods_per_node'?)" in lines[0]
    assert lines[1].startswith(f"{path}:5:3: grid.workloads[*].replica: 'workloads[*].replica'")


def test_unknown_engine_is_an_input_error(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "engine: warp\ngrid: {pods_per_node: [1]}\n")
    with pytest.raises(InputError, match=r":3:9: engine: unknown engine 'warp'; expected one"):
        load_sweep(path)


def plan_of(tmp_path: Path, body: str) -> SweepPlan:
    return load_sweep(write_sweep(tmp_path, body))


def test_pods_per_node_spreads_replicas_over_workloads(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "grid: {pods_per_node: [3]}\n")
    doc = apply_point(plan.base, {"pods_per_node": 3}, plan.spec)
    # 3 pods per node x 2 nodes = 6 pods over 2 workloads.
    assert [w["replicas"] for w in doc["workloads"]] == [3, 3]
    doc = apply_point(plan.base, {"pods_per_node": 2, "call_depth": 0}, plan.spec)
    assert [w["replicas"] for w in doc["workloads"]] == [2, 2]
    assert doc["workloads"][0]["calls"] == []
    assert plan.base["workloads"][0]["calls"], "the base scenario must not change"


def test_rps_per_pod_sets_the_entry_rate_from_the_call_graph(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "grid: {rps_per_pod: [40]}\n")
    doc = apply_point(plan.base, {"pods_per_node": 3, "rps_per_pod": 40}, plan.spec)
    # api is visited once per entry request, db with probability 0.5: 1.5 visits per
    # entry request over 6 pods, so each pod serves rate * 1.5 / 6 = 40 req/s.
    assert _visits_per_entry(doc) == {"api": 1.0, "db": 0.5}
    assert doc["traffic"]["open_loop"]["rate_rps"] == pytest.approx(40 * 6 / 1.5)
    Scenario.model_validate(doc)


def test_a_named_parameter_sets_every_path_it_lists(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """\
        parameters:
          payload_bytes: {paths: [traffic.response_bytes, "workloads[*].calls[*].response_bytes"]}
        grid: {payload_bytes: [8192]}
        """,
    )
    doc = apply_point(plan.base, {"payload_bytes": 8192, "mode": "ambient"}, plan.spec)
    assert doc["traffic"]["response_bytes"] == 8192
    assert doc["workloads"][0]["calls"][0]["response_bytes"] == 8192
    assert doc["mesh"]["modes"] == ["ambient"]


def test_modes_of_a_point_share_its_seed_and_points_differ(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "grid: {pods_per_node: [1, 2]}\n")
    # no mode in the grid: every mode of the base scenario, in its order
    modes = [p.params["mode"] for p in plan.points]
    assert modes == ["none", "sidecar", "ambient", "ambient-waypoint"] * 2
    seeds: dict[object, set[int]] = {p.params["pods_per_node"]: set() for p in plan.points}
    for p in plan.points:
        seeds[p.params["pods_per_node"]].add(p.seed)
    assert all(len(s) == 1 for s in seeds.values())
    assert seeds[1] != seeds[2]
    assert point_seed(0, {"a": 1, "mode": "x"}) == point_seed(0, {"a": 1, "mode": "y"})
    assert point_seed(0, {"a": 1}) != point_seed(1, {"a": 1})


# ---- running ---------------------------------------------------------------------------------

SMALL = """\
seed: 4
grid:
  pods_per_node: [1, 2]
  mode: [none, sidecar, ambient]
"""


def test_local_and_dask_executors_give_identical_tables(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, SMALL)
    local = run_sweep(plan, tmp_path / "local", executor="local", workers=2)
    dask = run_sweep(plan, tmp_path / "dask", executor="dask", workers=2)
    assert (local.ran, dask.ran, local.failed, dask.failed) == (6, 6, [], [])
    text = local.table.read_text()
    assert text == dask.table.read_text()
    # the same through the address of a scheduler someone else started (here: on loopback)
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        remote = run_sweep(plan, tmp_path / "remote", executor="dask", scheduler=address)
    assert remote.table.read_text() == text
    rows = table_rows(text)
    assert [(r["pods_per_node"], r["mode"]) for r in rows] == [
        (str(n), m) for n in (1, 2) for m in ("none", "sidecar", "ambient")
    ]
    for row in rows:
        side = next(
            r for r in rows if r["mode"] == "sidecar" and r["pods_per_node"] == row["pods_per_node"]
        )
        saving = 1 - float(row["cpu_total_cores"]) / float(side["cpu_total_cores"])
        assert float(row["cpu_saving"]) == pytest.approx(saving, rel=1e-12)
        if row["mode"] == "none":  # no proxies: the whole data plane is saved
            assert float(row["mesh_cpu_saving"]) == 1.0
            assert float(row["mesh_memory_saving"]) == 1.0
            assert float(row["p99_overhead_ms"]) == 0.0


def test_a_scheduler_address_that_is_not_one_is_named(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, SMALL)
    with pytest.raises(SchedulerError) as err:
        run_sweep(plan, tmp_path / "out", executor="dask", scheduler="notanaddress")
    assert str(err.value).startswith("cannot reach the Dask scheduler at notanaddress: ")
    assert not list((tmp_path / "out").glob("points/*.json"))


def test_a_failed_point_is_reported_and_the_others_finish(tmp_path: Path) -> None:
    # 120 pods per node do not fit (110 pods per node at most): that point fails.
    plan = plan_of(tmp_path, "grid:\n  pods_per_node: [1, 120]\n  mode: [sidecar, ambient]\n")
    out = tmp_path / "out"
    summary = run_sweep(plan, out, workers=2)
    assert (summary.ran, len(summary.failed)) == (4, 2)
    assert {f.point.params["pods_per_node"] for f in summary.failed} == {120}
    assert all("invalid scenario: workloads[0].replicas" in str(f.error) for f in summary.failed)
    failures = sorted((out / "failures").glob("*.json"))
    assert [json.loads(f.read_text())["params"]["pods_per_node"] for f in failures] == [120, 120]
    assert len(table_rows(summary.table.read_text())) == 2
    again = run_sweep(plan, out, workers=1)  # only the failed points are tried again
    assert (again.skipped, again.ran, len(again.failed)) == (2, 2, 2)


def test_a_value_the_schema_refuses_stops_the_sweep_before_any_point_runs(
    tmp_path: Path,
) -> None:
    """Not found after the points before it have run: named by the line that gives it."""
    path = write_sweep(tmp_path, "grid:\n  rps_per_pod: [10, -5]\n  traffic.duration_s: [3]\n")
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert str(err.value) == (
        f"{path}:4:21: grid.rps_per_pod[1]: with rps_per_pod=-5, traffic.duration_s=3, "
        f"{BASE} is not a valid scenario: rps_per_pod must be > 0, got -5"
    )
    path = write_sweep(tmp_path, "grid:\n  traffic.duration_s: [3, -1]\n", "other.yaml")
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert str(err.value) == (
        f"{path}:4:27: grid.traffic.duration_s[1]: with traffic.duration_s=-1, "
        f"{BASE} is not a valid scenario: traffic.duration_s: expected a value "
        "greater than 0, got -1"
    )
    # a path to the items of a list sets the items themselves (it raised an IndexError)
    path = write_sweep(tmp_path, 'grid:\n  "workloads[*]": [1]\n', "items.yaml")
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert str(err.value).startswith(
        f"{path}:4:20: grid.workloads[*][0]: with workloads[*]=1, {BASE} is not a valid "
        "scenario: workloads[0]: expected a mapping of Workload, got 1"
    )


def test_a_base_scenario_that_is_not_a_file_is_named_at_the_sweeps_line(tmp_path: Path) -> None:
    for given, message in (
        ("sub/nosuch.yaml", f"no scenario file {tmp_path / 'sub/nosuch.yaml'} (a path from the "
                            "sweep file's folder)"),
        (".", f"{tmp_path / '.'} is a folder, not a scenario file"),
    ):  # fmt: skip
        path = tmp_path / "sweep.yaml"
        path.write_text(f"name: t\nscenario: {given}\ngrid:\n  mode: [sidecar]\n")
        with pytest.raises(InputError) as err:
            load_sweep(path)
        assert str(err.value) == f"{path}:2:11: scenario: {message}"


def test_named_parameters_take_numbers_own_their_paths_and_are_blamed_for_them(
    tmp_path: Path,
) -> None:
    path = write_sweep(tmp_path, "grid:\n  pods_per_node: [true]\n")
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert str(err.value) == (
        f"{path}:4:19: grid.pods_per_node[0]: with pods_per_node=True, {BASE} is not a valid "
        "scenario: pods_per_node must be a whole number >= 1, got True"
    )
    # the rate both ways: the table would show one value where the point ran with the other
    path = write_sweep(
        tmp_path, "grid:\n  rps_per_pod: [10]\n  traffic.open_loop.rate_rps: [5]\n", "both.yaml"
    )
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert str(err.value) == (
        f"{path}:5:3: grid.traffic.open_loop.rate_rps: rps_per_pod sets it too; give one of them"
    )
    # a rate out of bounds is the value of rps_per_pod, not of the first parameter
    path = write_sweep(
        tmp_path, "grid:\n  pods_per_node: [1]\n  rps_per_pod: [1e300]\n", "huge.yaml"
    )
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert str(err.value).startswith(f"{path}:5:17: grid.rps_per_pod[0]: with pods_per_node=1, ")


def test_an_interrupted_sweep_finishes_only_the_missing_points(tmp_path: Path) -> None:
    sweep = write_sweep(
        tmp_path,
        "seed: 2\ngrid:\n  rps_per_pod: [20, 30, 40, 50, 60, 70]\n  mode: [sidecar, ambient]\n",
    )
    out = tmp_path / "out"
    cmd = [*MESHSIM, "sweep", str(sweep), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    points = out / "points"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if points.is_dir() and len(list(points.glob("*.json"))) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0, "the sweep was interrupted, so it must not report success"
    done_before = {p.name: p.stat().st_mtime_ns for p in points.glob("*.json")}
    assert 2 <= len(done_before) < 12
    plan = load_sweep(sweep)
    summary = run_sweep(plan, out, workers=2)
    assert (summary.skipped, summary.ran, summary.failed) == (
        len(done_before),
        12 - len(done_before),
        [],
    )
    for name, mtime in done_before.items():  # finished points were not run again
        assert (points / name).stat().st_mtime_ns == mtime
    fresh = run_sweep(plan, tmp_path / "fresh", workers=2)
    assert summary.table.read_text() == fresh.table.read_text()


def test_sweep_command_reports_progress_and_resumes(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    cmd = [*MESHSIM, "sweep", str(SWEEPS / "smoke.yaml")]
    cmd += ["--out", str(tmp_path / "out"), "--workers", "2"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "12 points: 0 already finished, 12 run, 0 failed" in first.stderr
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert "12 points: 12 already finished, 0 run, 0 failed" in second.stderr


def test_a_proxy_out_of_worker_threads_marks_the_saving_not_comparable(tmp_path: Path) -> None:
    # One waypoint worker thread and ~4000 entry requests per second: the waypoint's CPU
    # reaches its one core, so its queue grows and the run does not keep up.
    plan = plan_of(
        tmp_path,
        """\
        grid:
          mesh.waypoint_concurrency: [1]
          rps_per_pod: [10, 3000]
          mode: [sidecar, ambient-waypoint]
        """,
    )
    summary = run_sweep(plan, tmp_path / "out", workers=2)
    rows = {(r["rps_per_pod"], r["mode"]): r for r in table_rows(summary.table.read_text())}
    hot = rows[("3000", "ambient-waypoint")]
    assert hot["saturated"] == "True" and hot["saving_comparable"] == "False"
    assert float(hot["proxy_utilisation_max"]) >= 0.97
    for key in (("10", "sidecar"), ("10", "ambient-waypoint"), ("3000", "sidecar")):
        assert rows[key]["saturated"] == "False", key
        assert float(rows[key]["proxy_utilisation_max"]) < 0.9
    assert rows[("10", "ambient-waypoint")]["saving_comparable"] == "True"


def test_an_unknown_mode_is_caught_before_anything_runs(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "grid:\n  mode: [sidecar, ambiant]\n")
    with pytest.raises(InputError) as err:
        load_sweep(path)
    assert str(err.value) == (
        f"{path}:4:19: grid.mode[1]: unknown mode 'ambiant' (did you mean 'ambient'?); "
        "expected one of: none, sidecar, ambient, ambient-waypoint"
    )


# ---- stopping and resuming -------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """The live processes whose parent is pid."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _gone(pids: set[int], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.05)
    return False


def _long_sweep(tmp_path: Path, *options: str) -> list[str]:
    """One point of a second and one that would run for minutes (600 s at 2,000 rps)."""
    sweep = write_sweep(
        tmp_path,
        "grid:\n  traffic.duration_s: [1.2, 600]\n  traffic.open_loop.rate_rps: [2000]\n"
        "  mode: [sidecar]\n",
    )
    out = str(tmp_path / "out")
    return [*MESHSIM, "sweep", str(sweep), "--out", out, "--workers", "2", *options]


def _start_when_running(cmd: list[str], tmp_path: Path) -> tuple[subprocess.Popen[str], set[int]]:
    """Start the sweep in a process group of its own (as a terminal's job) and return once
    its short point is written and the long one is running in a worker."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint, process_group=0,
    )  # fmt: skip
    points = tmp_path / "out" / "points"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if points.is_dir() and list(points.glob("*.json")):
            break
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert proc.poll() is None and workers, "the sweep should be running its long point"
    return proc, workers


@pytest.mark.parametrize(("executor", "presses"), [("local", 1), ("local", 2), ("dask", 1)])
def test_ctrl_c_stops_a_sweep_at_once_keeps_what_finished_and_leaves_no_worker(
    tmp_path: Path, executor: str, presses: int
) -> None:
    """Ctrl-C (the terminal sends it to the whole process group), once or twice: the point
    running for minutes is not waited for, the workers are gone, no traceback is printed,
    and the finished point is kept for the rerun."""
    cmd = _long_sweep(tmp_path, "--executor", executor)
    proc, workers = _start_when_running(cmd, tmp_path)
    for _ in range(presses):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.2)
    _, stderr = proc.communicate(timeout=60)  # the long point alone would take minutes
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "WARNING" not in stderr
    assert "interrupted: 1 of 2 points finished and kept in" in stderr
    assert _gone(workers, within_s=30)


def test_workers_die_with_a_sweep_killed_by_sigkill(tmp_path: Path) -> None:
    """SIGKILL gives the sweep no chance to stop its workers: they go by themselves, and
    the pipe they shared with it closes."""
    proc, workers = _start_when_running(_long_sweep(tmp_path), tmp_path)
    proc.kill()
    proc.communicate(timeout=60)  # returns once no worker holds stdout and stderr open
    assert _gone(workers, within_s=30)


def test_a_changed_base_scenario_or_profile_runs_every_point_again(tmp_path: Path) -> None:
    base = yaml.safe_load(BASE.read_text())
    write_yaml(tmp_path / "base.yaml", base)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: t\nscenario: base.yaml\ngrid:\n  mode: [sidecar, ambient]\n")
    out = tmp_path / "out"
    assert run_sweep(load_sweep(sweep), out, workers=1).ran == 2
    assert run_sweep(load_sweep(sweep), out, workers=1).ran == 0
    base["workloads"][0]["cpu_time"]["mean_ms"] = 0.3  # the base scenario edited
    write_yaml(tmp_path / "base.yaml", base)
    assert run_sweep(load_sweep(sweep), out, workers=1).ran == 2
    profile = yaml.safe_load(ISTIO.read_text())
    profile["sidecar"]["memory"]["base_mib"]["value"] = 99.0  # another profile
    base["profile"] = str(write_yaml(tmp_path / "profile.yaml", profile))
    write_yaml(tmp_path / "base.yaml", base)
    again = run_sweep(load_sweep(sweep), out, workers=1)
    assert again.ran == 2
    rows = table_rows(again.table.read_text())
    assert [r["mode"] for r in rows] == ["sidecar", "ambient"]


def test_the_inputs_of_a_sweep_read_the_same_from_any_folder_and_past_descriptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fitted profile's held-out table is found from the working folder (its path then
    differs), and descriptions change no result: neither makes a finished point unfinished."""
    base = yaml.safe_load(BASE.read_text())
    base["profile"] = str(ISTIO.parent / "local-haproxy.yaml")  # carries held_out
    write_yaml(tmp_path / "base.yaml", base)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: t\nscenario: base.yaml\ngrid:\n  mode: [sidecar]\n")
    monkeypatch.chdir(ISTIO.parent.parent)
    here = load_sweep(sweep)
    assert here.profile.held_out is not None
    monkeypatch.chdir(tmp_path)
    assert inputs_digest(load_sweep(sweep)) == inputs_digest(here)
    base["description"] = "said otherwise"
    write_yaml(tmp_path / "base.yaml", base)
    assert inputs_digest(load_sweep(sweep)) == inputs_digest(here)
    base["traffic"]["duration_s"] = 2
    write_yaml(tmp_path / "base.yaml", base)
    assert inputs_digest(load_sweep(sweep)) != inputs_digest(here)


def test_a_point_file_that_cannot_be_read_is_run_again(tmp_path: Path) -> None:
    """An empty or cut-short points/*.json (a disk that filled, a crash of another tool)
    is run again and written over, not a JSONDecodeError."""
    sweep = write_sweep(tmp_path, "grid:\n  mode: [sidecar, ambient]\n")
    out = tmp_path / "out"
    first = run_sweep(load_sweep(sweep), out, workers=1)
    table = first.table.read_text()
    broken = sorted((out / "points").glob("*.json"))
    broken[0].write_text("")
    broken[1].write_text('{"params": {"mode": "sid')
    again = run_sweep(load_sweep(sweep), out, workers=1)
    assert (again.skipped, again.ran) == (0, 2)
    assert again.table.read_text() == table


def test_an_interrupted_rerun_leaves_the_table_and_its_description_of_one_run(
    tmp_path: Path,
) -> None:
    """sweep.json says what sweep.csv is a table of: a rerun with another engine stopped
    part of the way leaves both as the last finished run wrote them."""
    sweep = write_sweep(tmp_path, "grid:\n  mode: [sidecar, ambient]\n")
    out = tmp_path / "out"
    run_sweep(load_sweep(sweep), out, workers=1)
    before = {n: (out / n).read_text() for n in ("sweep.json", "sweep.csv")}

    def stop(done: int, total: int, outcome: object) -> None:
        if outcome is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(with_engine(load_sweep(sweep), "vector"), out, workers=1, progress=stop)
    assert {n: (out / n).read_text() for n in before} == before
    assert json.loads(before["sweep.json"])["engine"] == "des"
    finished = run_sweep(with_engine(load_sweep(sweep), "vector"), out, workers=1)
    assert json.loads((out / "sweep.json").read_text())["engine"] == "vector"
    assert finished.ran == 1  # the vector point finished before the stop is kept
