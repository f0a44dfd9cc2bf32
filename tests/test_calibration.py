"""The calibration fitter, grid and outputs, on synthetic measurements.

"Measured" runs here are simulations with a known profile (another seed than the fit's,
so the fit sees noise), so the fitter must recover that profile's parameters, and say
which ones the grid cannot pin down.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from meshsim.calibrate.calibration import (
    PREDICTION_SPAN,
    MixedDataset,
    fitted_profile_doc,
    measure_grid,
    prediction_scenario,
    profile_yaml,
    report_text,
    run_calibration,
)
from meshsim.calibrate.compare import summarize
from meshsim.calibrate.fit import (
    FitPoint,
    FitResult,
    _starting_points,
    fit_profile,
    stage_residuals,
)
from meshsim.calibrate.grid import Holdout, Setting, load_grid, split
from meshsim.calibrate.params import Parameter, get_value, with_values
from meshsim.cli import main
from meshsim.loader import InputError, load_profile, load_scenario
from meshsim.profile import Profile
from meshsim.results import RunResult
from meshsim.run import simulate
from meshsim.scenario import Scenario

from .builders import ROOT, client_and_one_pod, write_yaml

TRUTH = {
    "app.per_request_us": 400.0,
    "app.idle_millicores": 12.0,
    "sidecar.cpu.per_request_us.outbound": 300.0,
    "sidecar.cpu.per_request_us.inbound": 200.0,
    "sidecar.cpu.per_kib_us": 20.0,
    "sidecar.idle_millicores": 8.0,
    "sidecar.memory.base_mib": 9.0,
    "sidecar.memory.serving_mib": 3.0,
    "sidecar.hop_latency_us": 60.0,
    "ztunnel.cpu.per_request_us.outbound": 80.0,
    "ztunnel.cpu.per_kib_us": 4.0,
    "ztunnel.memory.base_mib": 7.0,
}
MEASURE_SEED = 99
FIT_SEED = 1


def _two_pods(**traffic: Any) -> dict[str, Any]:
    """Load generator on node-1 calling one service on node-2, like the testbed scenario."""
    doc = client_and_one_pod(
        ["none", "sidecar", "ambient"],
        app={"name": "echo", "cpu_time": 0.2, "memory_mib": 40},
        traffic={"open_loop": {"rate_rps": 100, "arrivals": "constant"}, **traffic},
        network_ms=(0.02, 0.05),
    )
    doc["name"] = "synthetic"
    return doc


def _chain(**traffic: Any) -> dict[str, Any]:
    """The load generator calling front (node-1), which calls back (node-2): each request
    visits two apps, one of which makes one call."""
    doc = _two_pods(**traffic)
    payload = doc["traffic"].get("request_bytes", 1024)
    call = {"to": "back", "request_bytes": payload, "response_bytes": payload}
    doc["workloads"] = [
        {"name": "front", "placement": {"nodes": ["node-1"]}, "cpu_time": 0.2,
         "memory_mib": 40, "calls": [call]},
        {"name": "back", "placement": {"nodes": ["node-2"]}, "cpu_time": 0.1, "memory_mib": 40},
    ]  # fmt: skip
    doc["traffic"]["entry"] = "front"
    return doc


def _points(
    truth: Profile,
    rates: list[int],
    payloads: list[int],
    modes: list[str],
    shape: Any = _two_pods,
    background: float = 0.0,
) -> list[FitPoint]:
    points = []
    for rate in rates:
        for payload in payloads:
            doc = shape(request_bytes=payload, response_bytes=payload)
            doc["traffic"]["open_loop"]["rate_rps"] = rate
            if background:  # other work on each node's cores
                doc["cluster"]["background_cores"] = {"node-1": background, "node-2": background}
            for mode in modes:
                one = copy.deepcopy(doc)
                one["mesh"]["modes"] = [mode]
                scenario = Scenario.model_validate(one)
                measured = simulate(scenario, truth, seed=MEASURE_SEED, engine="vector")
                label = f"{shape.__name__} rate={rate} payload={payload} bg={background}"
                points.append(FitPoint(label, mode, scenario, measured.modes[mode], FIT_SEED))  # type: ignore[arg-type]
    return points


@pytest.fixture(scope="module")
def truth(istio_profile: Profile) -> Profile:
    return with_values(istio_profile, TRUTH)


@pytest.fixture(scope="module")
def full_fit(truth: Profile, istio_profile: Profile) -> FitResult:
    points = _points(truth, [50, 200], [256, 16384], ["none", "sidecar", "ambient"])
    return fit_profile(points, istio_profile, engine="vector", stages=("cpu", "memory"))


def _estimate(fit: FitResult, path: str) -> Any:
    (e,) = [e for e in fit.estimates() if e.parameter.path == path]
    return e


@pytest.mark.parametrize(
    "path",
    [
        "app.per_request_us",
        "sidecar.cpu.per_request_us.outbound",
        "sidecar.cpu.per_request_us.inbound",
        "sidecar.cpu.per_kib_us",
        "ztunnel.cpu.per_request_us.outbound",
        "ztunnel.cpu.per_kib_us",
        "sidecar.memory.base_mib",
        "sidecar.memory.serving_mib",
        "ztunnel.memory.base_mib",
        "app.idle_millicores",
    ],
)
def test_fit_recovers_known_parameters(full_fit: FitResult, path: str) -> None:
    e = _estimate(full_fit, path)
    assert e.status == "fitted"
    assert e.ci95 is not None and e.ci95 > 0
    assert e.value == pytest.approx(TRUTH[path], rel=0.05)
    # the interval is not wider than the estimate, and the truth is within twice it (a 95%
    # interval may miss one of eight parameters; twice the interval should not)
    assert e.ci95 <= abs(e.value)
    # (memory figures barely vary between seeds: an interval of a few bytes may miss by a few
    # more, so misses below 0.1% are not counted)
    assert abs(e.value - TRUTH[path]) <= max(2 * e.ci95, 1e-3 * TRUTH[path])
    assert get_value(full_fit.profile, path) == e.value


def test_fit_brings_the_error_down(full_fit: FitResult) -> None:
    cpu, memory = full_fit.stages
    assert cpu.rms_before > 0.2 and cpu.rms_after < 0.02
    assert memory.rms_before > 1.0 and memory.rms_after < 0.01


def test_what_the_grid_cannot_pin_down_is_reported(
    full_fit: FitResult, istio_profile: Profile
) -> None:
    # no new connection opens in a short run with hour-long idle timeouts: no handshake CPU
    hs = _estimate(full_fit, "sidecar.cpu.handshake_us.client")
    assert hs.status == "not identifiable"
    assert hs.note == (
        "no handshake completes inside a measurement window (simulated and measured)"
    )
    # one topology: the configuration's size never changes, so it is the base memory
    svc = _estimate(full_fit, "sidecar.memory.per_service_kib")
    assert svc.status == "not identifiable"
    assert svc.note == "its effect is a combination of sidecar.memory.base_mib"
    # neither is silently set: both keep the prior's value
    prior = get_value(istio_profile, "sidecar.memory.per_service_kib")
    assert svc.value == prior and get_value(full_fit.profile, svc.parameter.path) == prior
    # every ztunnel serves: what serving costs cannot be told from its base
    serving = _estimate(full_fit, "ztunnel.memory.serving_mib")
    assert (serving.status, serving.note) == (
        "not identifiable",
        "its effect is a combination of ztunnel.memory.base_mib",
    )


def test_the_client_end_of_a_call_is_told_from_its_server_end(istio_profile: Profile) -> None:
    ends = {"app.per_request_us": 400.0, "app.per_call_us": 250.0, "app.idle_millicores": 12.0}
    truth = with_values(istio_profile, ends)
    # front pays a server end and a client end per request, back a server end only
    points = _points(truth, [50, 200], [256, 16384], ["none"], shape=_chain)
    fit = fit_profile(points, istio_profile, engine="vector", stages=("cpu",))
    for path, want in ends.items():
        e = _estimate(fit, path)
        assert e.status == "fitted", path
        assert e.value == pytest.approx(want, rel=0.05), path


def test_without_calls_the_client_end_is_not_identifiable(
    full_fit: FitResult, istio_profile: Profile
) -> None:
    # the two-pod shape: the load generator is no app, and the echo app makes no call
    e = _estimate(full_fit, "app.per_call_us")
    assert (e.status, e.note) == ("not identifiable", "the measured figures do not depend on it")
    assert e.value == get_value(istio_profile, "app.per_call_us")


def test_one_payload_size_cannot_split_per_request_from_per_kib(
    truth: Profile, istio_profile: Profile
) -> None:
    points = _points(truth, [50, 200], [4096], ["none", "sidecar"])
    fit = fit_profile(points, istio_profile, engine="vector", stages=("cpu",))
    kib = _estimate(fit, "sidecar.cpu.per_kib_us")
    assert kib.status == "not identifiable"
    assert kib.note.startswith("its effect is a combination of sidecar.cpu.per_request_us")
    assert kib.value == get_value(istio_profile, "sidecar.cpu.per_kib_us")
    # modes that were not measured leave their kinds' parameters out of the fit entirely
    assert not [e for e in fit.estimates() if e.parameter.kind == "ztunnel"]


def test_one_load_level_and_payload_cannot_split_idle_from_per_request(
    truth: Profile, istio_profile: Profile
) -> None:
    points = _points(truth, [100], [1024], ["none", "sidecar"])
    fit = fit_profile(points, istio_profile, engine="vector", stages=("cpu",))
    statuses = {e.parameter.path: e.status for e in fit.estimates()}
    assert statuses["sidecar.cpu.per_request_us.outbound"] == "fitted"
    assert statuses["sidecar.idle_millicores"] == "not identifiable"
    assert statuses["sidecar.cpu.per_kib_us"] == "not identifiable"
    assert statuses["app.per_kib_us"] == "not identifiable"


def test_as_many_parameters_as_figures_leaves_no_interval(
    truth: Profile, istio_profile: Profile
) -> None:
    # one sidecar run: three CPU figures (app, two sidecars) for three identifiable costs
    points = _points(truth, [100], [1024], ["sidecar"])
    fit = fit_profile(points, istio_profile, engine="vector", stages=("cpu",))
    e = _estimate(fit, "sidecar.cpu.per_request_us.outbound")
    assert (e.status, e.ci95, e.note) == (
        "poorly determined",
        None,
        "no degrees of freedom left for an interval",
    )


def test_latency_parameters_are_fitted_to_percentiles(
    truth: Profile, istio_profile: Profile
) -> None:
    start = with_values(truth, {"sidecar.hop_latency_us": 10.0})
    # the no-mesh points pin the app's own latency, which the truth does not have
    points = _points(truth, [50, 200], [256, 16384], ["none", "sidecar"])
    fit = fit_profile(points, start, engine="vector", stages=("latency",))
    (stage,) = fit.stages
    assert stage.rms_after < stage.rms_before / 3
    hop = _estimate(fit, "sidecar.hop_latency_us")
    assert hop.value == pytest.approx(TRUTH["sidecar.hop_latency_us"], rel=0.25)
    visit = _estimate(fit, "app.visit_latency_us")
    assert (visit.status, visit.value) == ("poorly determined", 0.0)
    assert visit.note.endswith("holds the prior: kept")


def test_the_app_stack_latency_and_its_tail_are_fitted_to_percentiles(
    truth: Profile, istio_profile: Profile
) -> None:
    stack = {"app.visit_latency_us": 1500.0, "app.visit_latency_cv": 1.5}
    points = _points(with_values(truth, stack), [50, 200], [256, 16384], ["none"])
    fit = fit_profile(points, truth, engine="vector", stages=("latency",))
    _assert_recovered(fit, stack, rel=0.2)


def _assert_recovered(fit: FitResult, truth: dict[str, float], rel: float) -> None:
    """Each parameter fitted, near its true value, which lies within twice its interval."""
    for path, want in truth.items():
        e = _estimate(fit, path)
        assert e.status == "fitted", path
        assert e.value == pytest.approx(want, rel=rel), path
        assert abs(e.value - want) <= 2 * (e.ci95 or 0.0), path


STACK = {"app.visit_latency_us": 1500.0, "app.visit_latency_cv": 1.0, "app.call_latency_us": 800.0}


def test_one_topology_cannot_split_a_visit_from_a_call(
    truth: Profile, istio_profile: Profile
) -> None:
    # in the chain every request visits two apps and makes one call: always together, so a
    # constant latency per call cannot be told from the fixed part of each visit's latency
    # (app.visit_latency_floor_us): it is reported as such, and not set
    points = _points(with_values(truth, STACK), [50, 200], [256], ["none"], shape=_chain)
    fit = fit_profile(points, truth, engine="vector", stages=("latency",))
    call = _estimate(fit, "app.call_latency_us")
    assert call.status == "not identifiable" and call.kept_prior
    assert "app.visit_latency_floor_us" in call.note
    assert call.value == get_value(truth, "app.call_latency_us") == 0.0
    assert get_value(fit.profile, "app.call_latency_us") == 0.0


def test_a_second_topology_splits_a_visit_from_a_call(truth: Profile) -> None:
    measured = with_values(truth, STACK)
    points = [
        *_points(measured, [50, 200], [256], ["none"], shape=_chain),
        *_points(measured, [50, 200], [256], ["none"], shape=_two_pods),
    ]
    fit = fit_profile(points, truth, engine="vector", stages=("latency",))
    _assert_recovered(fit, STACK, rel=0.25)


def test_the_wait_for_the_nodes_other_work_is_fitted_where_runs_had_some(
    truth: Profile,
) -> None:
    # two levels of background (a tenth and half of each node's two cores): the wait it
    # adds grows with it, the app stack's latency does not
    measured = with_values(truth, {**STACK, "host.preempted_wait_us": 1500.0})
    points = [
        point
        for bg in (0.2, 1.0)
        for point in _points(measured, [50, 200], [256], ["none", "sidecar"], background=bg)
    ]
    # the host's stalls are a wait of the same kind with a probability of their own: with
    # two background levels the fit can trade them for this one (free, they came out at 3.8
    # ± 0.7% of 1.9 ms, where there are none, and this wait at 1,115 µs): held at 0 here
    stalls = ("host.stall_probability", "host.stall_us")
    fit = fit_profile(points, truth, engine="vector", stages=("latency",), fixed=stalls)
    _assert_recovered(fit, {"host.preempted_wait_us": 1500.0}, rel=0.25)


def _two_pods_as_the_grid(**traffic: Any) -> dict[str, Any]:
    """The two-pod shape run as the calibration grid runs it: 20 s with 4 s of warm-up."""
    doc = _two_pods(**traffic)
    doc["traffic"].update(duration_s=20, warmup_s=4)
    return doc


def test_the_hosts_stalls_are_fitted_from_how_a_mesh_lengthens_the_tail(truth: Profile) -> None:
    # a stall holds up any wake-up: the app's once per request, each sidecar pass too. The
    # mesh multiplies the wake-ups by five, so the tail grows with it, where the app's own
    # spread moves both modes alike. Runs as long as the grid's (with 4 s ones the fit found
    # 1.9% of 7.5 ms, its interval too narrow: the p99 of 400 requests rests on 4)
    stalls = {"host.stall_probability": 0.01, "host.stall_us": 6000.0}
    measured = with_values(truth, {**STACK, **stalls})
    points = _points(measured, [50, 200], [256, 16384], ["none", "sidecar"], _two_pods_as_the_grid)
    fit = fit_profile(points, with_values(truth, STACK), engine="vector", stages=("latency",))
    got = {path: _estimate(fit, path) for path in stalls}
    for path, want in stalls.items():
        assert got[path].status == "fitted", path
        assert got[path].value == pytest.approx(want, rel=0.3), path
    # what the tails pin down best is their product, the mean stall per wake-up
    mean_us = got["host.stall_probability"].value * got["host.stall_us"].value
    assert mean_us == pytest.approx(0.01 * 6000.0, rel=0.1)


def test_without_background_its_wait_is_not_identifiable(truth: Profile) -> None:
    points = _points(truth, [50, 200], [256], ["none", "sidecar"])
    fit = fit_profile(points, truth, engine="vector", stages=("latency",))
    wait = _estimate(fit, "host.preempted_wait_us")
    assert (wait.status, wait.note) == (
        "not identifiable",
        "the measured figures do not depend on it",
    )
    assert get_value(fit.profile, "host.preempted_wait_us") == 750.0


WAKE = {"host.wake_up_us": 800.0}


def test_the_wake_up_of_idle_nodes_is_fitted_from_load_levels(truth: Profile) -> None:
    # gaps of 40 and 20 ms between requests: the wait is all there; of 5 and 3 ms: it is
    # not (its time scale, 15.5 ms, is measured, not fitted); the app's own latency is the
    # same at every load
    measured = with_values(truth, {**STACK, **WAKE})

    def longer(**traffic: Any) -> dict[str, Any]:  # a few hundred requests even at 25/s
        return _two_pods(**traffic, duration_s=13)

    points = _points(measured, [25, 50, 200, 300], [256], ["none", "sidecar"], shape=longer)
    fit = fit_profile(points, truth, engine="vector", stages=("latency",))
    _assert_recovered(fit, WAKE, rel=0.25)


def test_one_load_level_cannot_tell_the_wake_up_from_the_apps_latency(
    truth: Profile,
) -> None:
    # every request finds node-2 idle for 40 ms, long asleep: the wake-up is the same
    # constant for every request, as is the fixed part of each app visit
    points = _points(with_values(truth, {**STACK, **WAKE}), [25], [256], ["none", "sidecar"])
    fit = fit_profile(points, truth, engine="vector", stages=("latency",))
    wake = _estimate(fit, "host.wake_up_us")
    assert (wake.status, wake.kept_prior) == ("not identifiable", True)
    assert wake.note.startswith("its effect is a combination of app.visit_latency_floor_us")
    assert get_value(fit.profile, "host.wake_up_us") == 0.0


def test_a_parameter_whose_effect_vanishes_at_the_solution_is_not_reported_as_exact(
    truth: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the wake-up's time scale, fitted with its size to loads with no wake-up at all: once
    # the size is kept at 0, the time scale moves nothing, and its covariance is 0; that is
    # no interval of ± 0 but a parameter the figures do not pin down
    import meshsim.calibrate.fit as fit_module
    from meshsim.calibrate.params import BY_PATH, Parameter

    scale = Parameter("host.wake_up_idle_ms", "latency", "ms", 15.0)
    params = [BY_PATH["host.wake_up_us"], scale]
    monkeypatch.setattr(fit_module, "parameters_for", lambda stage, modes: params)

    def longer(**traffic: Any) -> dict[str, Any]:
        return _two_pods(**traffic, duration_s=13)

    points = _points(truth, [25, 50, 200], [256], ["none", "sidecar"], shape=longer)
    fit = fit_profile(points, truth, engine="vector", stages=("latency",))
    assert _estimate(fit, "host.wake_up_us").kept_prior
    e = _estimate(fit, "host.wake_up_idle_ms")
    assert (e.status, e.ci95, e.value) == ("not identifiable", None, 15.5)
    assert e.note == "the measured figures do not depend on it at the fitted values of the others"
    assert get_value(fit.profile, "host.wake_up_idle_ms") == 15.5


def test_fitted_profile_names_the_dataset_everywhere(
    full_fit: FitResult, istio_profile: Profile, tmp_path: Path
) -> None:
    from meshsim.calibrate.calibration import Calibration

    cal = Calibration([], [], full_fit, [], [], "split: none")
    doc = fitted_profile_doc(
        cal, istio_profile, "results/calibration/x/dataset/manifest.json", "fitted"
    )
    path = tmp_path / "fitted.yaml"
    path.write_text(profile_yaml(doc, "header"))
    loaded = load_profile(path)
    assert loaded.name == "fitted"
    assert get_value(loaded, "sidecar.cpu.per_kib_us") == pytest.approx(
        get_value(full_fit.profile, "sidecar.cpu.per_kib_us"), rel=1e-5
    )
    sources = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"value", "source"}:
                sources.append(node["source"])
            for value in node.values():
                walk(value)

    walk(yaml.safe_load(path.read_text()))
    assert sources and all("results/calibration/x/dataset/manifest.json" in s for s in sources)
    assert loaded.sidecar.cpu.per_kib_us.source.startswith("calibrated: ")
    assert loaded.sidecar.memory.per_service_kib.source.startswith("not identifiable from ")
    assert "not a fitted parameter" in loaded.sidecar.workers.source


def test_a_profile_whose_numbers_change_leaves_its_held_out_error_behind(
    istio_profile: Profile,
) -> None:
    held = {
        "table": "results/calibration/x/heldout.csv",
        "split": "split: seed 1, 1 of 2 settings held out",
        "numbers": istio_profile.numbers_fingerprint(),
        "errors": {"cpu": {"median": 0.05, "worst": 0.1, "figures": 4}},
    }
    fitted = Profile.model_validate({**istio_profile.model_dump(), "held_out": held})
    assert fitted.held_out is not None and fitted.held_out.errors["cpu"].figures == 4
    assert with_values(fitted, {}).held_out == fitted.held_out
    assert with_values(fitted, {"app.per_request_us": 1.0}).held_out is None


def test_a_profiles_held_out_table_is_found_from_wherever_meshsim_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calibrate writes the table's path relative to where it ran (the repository's root,
    for the bundled profile): read from elsewhere, it is found above the profile."""
    repo = tmp_path / "repo"
    table = repo / "results" / "calibration" / "x" / "heldout.csv"
    table.parent.mkdir(parents=True)
    table.write_text("point\n")
    profile = repo / "profiles" / "fitted.yaml"
    profile.parent.mkdir()
    profile.write_text((ROOT / "profiles" / "local-haproxy.yaml").read_text().replace(
        "results/calibration/testbed-chain/heldout.csv", "results/calibration/x/heldout.csv"
    ))  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    held = load_profile(profile).held_out
    assert held is not None and Path(held.table).resolve() == table
    monkeypatch.chdir(repo)  # where calibrate ran: as written
    held = load_profile(profile).held_out
    assert held is not None and held.table == "results/calibration/x/heldout.csv"


def test_a_fitted_profile_edited_by_hand_is_refused_until_its_held_out_error_goes(
    tmp_path: Path,
) -> None:
    reference = ROOT / "profiles" / "local-haproxy.yaml"
    fitted = load_profile(reference)
    assert fitted.held_out is not None
    assert fitted.held_out.numbers == fitted.numbers_fingerprint()
    text = reference.read_text()
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("  per_request_us: {value: "))
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace(lines[row], '  per_request_us: {value: 1, source: "mine"}'))
    with pytest.raises(InputError) as err:
        load_profile(edited)
    now = with_values(fitted, {"app.per_request_us": 1.0}).numbers_fingerprint()
    numbers_line = next(i for i, line in enumerate(lines) if line.startswith("  numbers: ")) + 1
    assert str(err.value) == (
        f"{edited}:{numbers_line}:12: held_out.numbers: the profile's numbers are not those its "
        f"held-out error was measured with (fingerprint {now}, not {fitted.held_out.numbers}: "
        "edited since its fit?); delete held_out, or refit the profile"
    )
    # a source reworded is no number changed
    reworded = tmp_path / "reworded.yaml"
    value = lines[row].split("value: ")[1].split(",")[0]
    reworded.write_text(
        text.replace(lines[row], f'  per_request_us: {{value: {value}, source: "mine"}}')
    )
    assert load_profile(reworded).held_out == fitted.held_out


GRID = {
    "name": "g",
    "seed": 4,
    "parameters": {"payload": {"paths": ["traffic.request_bytes", "traffic.response_bytes"]}},
    "grid": {
        "traffic.open_loop.rate_rps": [50, 150, 250],
        "payload": [256, 16384],
        "mode": ["none", "sidecar", "ambient"],
    },
    "holdout": {"fraction": 0.34, "seed": 2},
}


def _grid_files(tmp_path: Path, grid: dict[str, Any]) -> tuple[Path, Path]:
    scenario = write_yaml(tmp_path / "synthetic.yaml", _two_pods())
    return write_yaml(tmp_path / "grid.yaml", grid), scenario


def test_grid_expands_settings_with_every_mode(tmp_path: Path) -> None:
    plan = load_grid(*_grid_files(tmp_path, GRID))
    assert len(plan.settings) == 6
    first = plan.settings[0]
    assert first.params == {"traffic.open_loop.rate_rps": 50, "payload": 256}
    assert first.modes == ("none", "sidecar", "ambient")
    assert first.scenario.traffic.request_bytes == 256 == first.scenario.traffic.response_bytes
    assert first.label == "synthetic rate_rps=50 payload=256"


def test_without_a_grid_the_scenario_as_written_is_one_setting(tmp_path: Path) -> None:
    _, scenario = _grid_files(tmp_path, GRID)
    plan = load_grid(None, scenario)
    assert [(s.params, s.modes) for s in plan.settings] == [({}, ("none", "sidecar", "ambient"))]
    assert plan.settings[0].scenario == load_scenario(scenario)[0]


def test_a_grid_value_that_makes_an_invalid_scenario_is_named_by_the_grids_line(
    tmp_path: Path,
) -> None:
    values = dict(GRID["grid"])  # type: ignore[call-overload]
    grid = {**GRID, "grid": {**values, "traffic.open_loop.rate_rps": [50, -150]}}
    grid_file, scenario_file = _grid_files(tmp_path, grid)
    with pytest.raises(InputError) as err:
        load_grid(grid_file, scenario_file)
    line = grid_file.read_text().splitlines().index("  - -150") + 1
    assert str(err.value) == (
        f"{grid_file}:{line}:5: grid.traffic.open_loop.rate_rps[1]: with "
        f"traffic.open_loop.rate_rps=-150, payload=256, {scenario_file} is not a valid "
        "scenario: traffic.open_loop.rate_rps: expected a value greater than 0, got -150"
    )
    grid = {**GRID, "topologies": ["nowhere.yaml"]}
    grid_file, scenario_file = _grid_files(tmp_path, grid)
    with pytest.raises(InputError) as err:
        load_grid(grid_file, scenario_file)
    assert str(err.value).startswith(f"{grid_file}:")
    assert str(err.value).endswith(
        f"topologies[0]: no scenario file {tmp_path / 'nowhere.yaml'} (topologies are paths "
        "from the grid's folder)"
    )


def test_split_is_seeded_and_keeps_both_sides(tmp_path: Path) -> None:
    plan = load_grid(*_grid_files(tmp_path, GRID))
    fit, held = split(plan.settings, plan.grid.holdout)
    again = split(plan.settings, plan.grid.holdout)
    assert [s.key for s in held] == [s.key for s in again[1]]
    assert len(held) == 2 and len(fit) == 4
    assert {s.key for s in fit} | {s.key for s in held} == {s.key for s in plan.settings}
    others = {
        tuple(s.key for s in split(plan.settings, Holdout(fraction=0.34, seed=k))[1])
        for k in range(8)
    }
    assert len(others) > 1  # another seed, another split
    fit1, held1 = split(plan.settings[:1], plan.grid.holdout)
    assert len(fit1) == 1 and held1 == []


def test_split_by_a_value_holds_out_within_each_group(tmp_path: Path) -> None:
    grid = {**GRID, "holdout": {"fraction": 0.34, "seed": 2, "by": ["payload"]}}
    plan = load_grid(*_grid_files(tmp_path, grid))
    for seed in range(8):
        fit, held = split(plan.settings, Holdout(fraction=0.34, seed=seed, by=["payload"]))
        # three load levels per payload size: one of each is held out, two are fitted
        assert sorted(s.params["payload"] for s in held) == [256, 16384]
        assert sorted(s.params["payload"] for s in fit) == [256, 256, 16384, 16384]
    by_topology = split(plan.settings, Holdout(fraction=0.34, seed=2, by=["topology"]))
    assert by_topology == split(plan.settings, Holdout(fraction=0.34, seed=2))  # one group


def test_split_by_an_unknown_value_names_the_place(tmp_path: Path) -> None:
    grid = {**GRID, "holdout": {"fraction": 0.34, "seed": 2, "by": ["topology", "payloads"]}}
    with pytest.raises(InputError) as err:
        load_grid(*_grid_files(tmp_path, grid))
    assert str(err.value).endswith(
        "grid.yaml:25:5: holdout.by[1]: 'payloads' is not a value the settings vary by (did "
        "you mean 'payload'?); expected one of: topology, traffic.open_loop.rate_rps, payload"
    )


def test_grid_errors_name_the_place(tmp_path: Path) -> None:
    bad = {**GRID, "grid": {"traffic.open_loop.rate": [1], "mode": ["none"]}}
    with pytest.raises(
        InputError, match=r"grid.yaml:\d+:\d+: grid.traffic.open_loop.rate: .*unknown key 'rate'"
    ):
        load_grid(*_grid_files(tmp_path, bad))


def _measured_by_simulation(truth: Profile) -> tuple[list[str], Callable[[Setting], RunResult]]:
    """A testbed stand-in: each setting simulated at the true profile; the list records
    the keys of the settings measured, in order."""
    measured: list[str] = []

    def measure(setting: Setting) -> RunResult:
        measured.append(setting.key)
        return simulate(setting.scenario, truth, seed=MEASURE_SEED, engine="vector")

    return measured, measure


def test_calibration_end_to_end_predicts_held_out_settings(
    tmp_path: Path, truth: Profile, istio_profile: Profile
) -> None:
    """The whole pipeline with the testbed replaced by the simulator at the true profile:
    measure into a dataset, fit on some settings, predict the held-out ones."""
    plan = load_grid(*_grid_files(tmp_path, GRID))
    measured, measure = _measured_by_simulation(truth)
    runs = measure_grid(plan, tmp_path / "dataset", measure)
    assert len(measured) == 6
    # a second pass reads the dataset back and measures nothing
    again = measure_grid(plan, tmp_path / "dataset", measure)
    assert len(measured) == 6 and again.keys() == runs.keys()
    cal = run_calibration(plan, again, istio_profile, engine="vector")
    assert len(cal.held_out) == 2
    held = {s.figure: s for s in summarize(cal.held_out_rows)}
    assert {r.point for r in cal.held_out_rows} == {s.label for s in cal.held_out}
    assert held["cpu"].median_abs_error is not None and held["cpu"].median_abs_error < 0.03
    assert held["memory"].median_abs_error is not None and held["memory"].median_abs_error < 0.01
    assert held["p50"].median_abs_error is not None and held["p50"].median_abs_error < 0.05


def test_a_dataset_measured_from_another_scenario_is_refused_before_anything_runs(
    tmp_path: Path, truth: Profile
) -> None:
    """Resuming a calibration after its scenario was edited: the runs in the dataset are
    not measurements of the settings any more, so they are neither fitted nor kept as
    measured; nothing is measured and the folder is named with what changed."""
    plan = load_grid(*_grid_files(tmp_path, GRID))
    measured, measure = _measured_by_simulation(truth)
    measure_grid(plan, tmp_path / "dataset", measure)
    edited = _two_pods()
    edited["workloads"][0]["cpu_time"] = {"dist": "constant", "value_ms": 0.7}
    write_yaml(tmp_path / "synthetic.yaml", edited)
    again = load_grid(tmp_path / "grid.yaml", tmp_path / "synthetic.yaml")
    first = again.settings[0]
    with pytest.raises(MixedDataset) as err:
        measure_grid(again, tmp_path / "dataset", measure)
    folder = tmp_path / "dataset" / first.key
    assert str(err.value) == (
        f"{folder}: measured from another scenario than setting {first.label} is now (it "
        "differs in workloads): its run is not a measurement of this setting; give this "
        f"calibration another --out, or remove {folder} to measure the setting again"
    )
    assert len(measured) == 6  # nothing more measured


def _modes(modes: list[str]) -> dict[str, Any]:
    """GRID with other modes."""
    grid = copy.deepcopy(GRID)
    grid["grid"]["mode"] = modes  # type: ignore[index]
    return grid


def test_a_grid_whose_modes_changed_since_resumes(tmp_path: Path, truth: Profile) -> None:
    """Fewer modes than measured: already measured; more: measured again (the mode list
    is not a change of the scenario measured)."""
    plan = load_grid(*_grid_files(tmp_path, GRID))
    measured, measure = _measured_by_simulation(truth)
    measure_grid(plan, tmp_path / "dataset", measure)
    assert len(measured) == 6
    measure_grid(
        load_grid(*_grid_files(tmp_path, _modes(["none", "sidecar"]))),
        tmp_path / "dataset",
        measure,
    )
    assert len(measured) == 6
    more = _modes(["none", "sidecar", "ambient-waypoint"])
    measure_grid(load_grid(*_grid_files(tmp_path, more)), tmp_path / "dataset", measure)
    assert len(measured) == 12


def test_a_prediction_simulates_ten_measured_windows_after_the_same_warm_up(
    tmp_path: Path,
) -> None:
    plan = load_grid(*_grid_files(tmp_path, GRID))
    measured = plan.settings[0].scenario.traffic
    longer = prediction_scenario(plan.settings[0].scenario).traffic
    assert PREDICTION_SPAN == 10
    assert longer.warmup_s == measured.warmup_s
    assert longer.duration_s - longer.warmup_s == pytest.approx(
        10 * (measured.duration_s - measured.warmup_s)
    )
    assert longer.open_loop == measured.open_loop


def test_a_parameter_the_grid_fixes_is_set_not_fitted(
    tmp_path: Path, truth: Profile, istio_profile: Profile
) -> None:
    measured_by_sweep = {"value": 20.0, "source": "measured: a sweep of its own"}
    grid = {**GRID, "fixed": {"sidecar.cpu.per_kib_us": measured_by_sweep}}
    plan = load_grid(*_grid_files(tmp_path, grid))
    runs = measure_grid(
        plan,
        tmp_path / "dataset",
        lambda s: simulate(s.scenario, truth, seed=MEASURE_SEED, engine="vector"),
    )
    cal = run_calibration(plan, runs, istio_profile, engine="vector")
    assert "sidecar.cpu.per_kib_us" not in {e.parameter.path for e in cal.fit.estimates()}
    assert get_value(cal.fit.profile, "sidecar.cpu.per_kib_us") == 20.0
    ref = "results/calibration/x/dataset/manifest.json"
    doc = fitted_profile_doc(cal, istio_profile, ref, "fitted")
    assert doc["sidecar"]["cpu"]["per_kib_us"] == {
        "value": 20.0,
        "source": f"not fitted to {ref}: measured: a sweep of its own",
    }
    assert "    sidecar.cpu.per_kib_us: 20 — measured: a sweep of its own" in report_text(cal)


def test_a_fixed_parameter_the_profile_lacks_stops_the_calibration_before_it_measures(
    tmp_path: Path,
) -> None:
    grid = {**GRID, "fixed": {"sidecar.hop_latency_per_mib": {"value": 1.0, "source": "a guess"}}}
    grid_file, scenario_file = _grid_files(tmp_path, grid)
    args = ["calibrate", str(scenario_file), "--grid", str(grid_file), "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert (
        "fixed.sidecar.hop_latency_per_mib: 'sidecar.hop_latency_per_mib' is not a sourced "
        "number of the profile (did you mean 'sidecar.hop_latency_per_kib_us'?)"
    ) in result.output
    assert result.output.startswith(f"{grid_file}:")
    assert not (tmp_path / "dataset").exists()


def test_latency_residuals_are_the_mesh_overhead_error_when_a_baseline_exists(
    truth: Profile,
) -> None:
    (point,) = _points(truth, [50], [256], ["none"])

    def at(p50: float) -> Any:
        latency = point.measured.latency_ms.model_copy(update={"p50": p50, "p90": p50, "p99": p50})
        return point.measured.model_copy(update={"latency_ms": latency})

    measured, simulated = at(2.0), at(0.8)
    # measured overhead 0.5 ms over 1.5 ms, simulated 0.4 ms over 0.4 ms: -0.1 ms of 2 ms
    with_baseline = stage_residuals("latency", measured, simulated, (at(1.5), at(0.4)))
    assert with_baseline == pytest.approx([-0.05] * 3)
    assert stage_residuals("latency", measured, simulated) == pytest.approx([math.log(0.4)] * 3)


def test_cli_refits_a_dataset_and_prints_the_held_out_table(tmp_path: Path, truth: Profile) -> None:
    grid_file, scenario_file = _grid_files(tmp_path, GRID)
    plan = load_grid(grid_file, scenario_file)
    out = tmp_path / "cal"
    measure_grid(
        plan,
        out / "dataset",
        lambda s: simulate(s.scenario, truth, seed=MEASURE_SEED, engine="vector"),
    )
    profile_out = tmp_path / "profiles" / "fitted.yaml"
    args = [
        "calibrate", str(scenario_file), "--grid", str(grid_file), "--out", str(out),
        "--no-measure", "--profile-out", str(profile_out), "--name", "fitted",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "held-out settings: measured vs simulated" in result.output
    assert "split: seed 2, 2 of 6 settings held out (fraction 0.34)" in result.output
    assert "held-out settings (never seen by the fit):" in result.output
    assert (
        "held-out CPU of the mesh modes, each setting's scaled by its no-mesh run's apps "
        "(measured / simulated: the host's speed of that minute; not the bound's figure):\n"
        "  host cpu: median |error| "
    ) in (out / "report.txt").read_text()
    assert load_profile(profile_out).name == "fitted"
    assert (out / "profile.yaml").read_text() == profile_out.read_text()
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert sum(s["held_out"] for s in manifest["settings"]) == 2
    assert {"haproxy", "locust", "scipy"} <= set(manifest["software"])
    held = (out / "heldout.csv").read_text().splitlines()
    assert held[0] == "point,mode,figure,component,kind,measured,simulated,error,sampling_error"
    assert len(held) > 1
    # the profile carries its held-out error, the table's medians, and `run` prints it
    fitted = load_profile(profile_out)
    assert fitted.held_out is not None
    assert Path(fitted.held_out.table) == (out / "heldout.csv").resolve()
    assert fitted.held_out.split.startswith("split: seed 2, 2 of 6 settings held out")
    rows = list(csv.DictReader(io.StringIO((out / "heldout.csv").read_text())))
    for figure in ("p50", "cpu", "memory"):
        errors = [abs(float(r["error"])) for r in rows if r["figure"] == figure and r["error"]]
        got = fitted.held_out.errors[figure]
        assert got.figures == len(errors)
        assert got.median == pytest.approx(statistics.median(errors), abs=5e-6)
        assert got.worst == pytest.approx(max(errors), abs=5e-6)
    sidecar_cpu = [
        abs(float(r["error"])) for r in rows if r["figure"] == "cpu" and r["kind"] == "sidecar"
    ]
    assert fitted.held_out.errors["cpu/sidecar"].figures == len(sidecar_cpu)
    scenario_doc = yaml.safe_load(scenario_file.read_text())
    scenario_doc["profile"] = str(profile_out)
    ran = CliRunner().invoke(
        main, ["run", str(write_yaml(tmp_path / "run.yaml", scenario_doc))], terminal_width=400
    )
    assert ran.exit_code == 0, ran.output
    e = fitted.held_out.errors
    assert (
        f"Profile fitted, on measured settings held out of its fit ({fitted.held_out.table}), "
        f"median |error| (worst): latency p50 {e['p50'].median * 100:.1f}% "
        f"({e['p50'].worst * 100:.1f}%), p90 {e['p90'].median * 100:.1f}% "
    ) in ran.output
    assert f"CPU per component {e['cpu'].median * 100:.1f}% ({e['cpu'].worst * 100:.1f}%)" in (
        ran.output
    )
    as_json = CliRunner().invoke(
        main, ["run", str(tmp_path / "run.yaml"), "--json", "--mode", "sidecar"]
    )
    assert json.loads(as_json.output)["profile_held_out"] == fitted.held_out.model_dump()
    # a fitted profile that would not read back replaces nothing
    before = {f: f.read_bytes() for f in (profile_out, out / "heldout.csv", out / "report.txt")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "meshsim.calibrate.calibration.profile_yaml", lambda doc, header: "name: [unclosed\n"
        )
        broken = CliRunner().invoke(main, args)
    assert broken.exit_code == 1
    assert "the fitted profile does not read back; nothing written:" in broken.output
    assert {f: f.read_bytes() for f in before} == before
    assert not list(out.glob(".*.tmp")) and not list(profile_out.parent.glob(".*.tmp"))
    # a setting missing from the dataset is named before anything is measured or fitted
    (out / "dataset" / plan.settings[0].key / f"synthetic-seed{MEASURE_SEED}.json").unlink()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert (
        f"meshsim calibrate: {out / 'dataset'}: 1 of 6 settings not measured (--no-measure): "
        f"{plan.settings[0].label}\n"
    ) in result.output
    assert "measuring" not in result.output
    # a run or the manifest that does not read back is named by file and line
    cut = out / "dataset" / plan.settings[1].key / f"synthetic-seed{MEASURE_SEED}.json"
    cut.write_text(cut.read_text()[:300])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"\n{cut}:" in result.output
    assert "does not read back; remove its folder to measure that setting again" in result.output
    manifest = out / "dataset" / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"\n{manifest}:" in result.output


def test_a_loosely_determined_estimate_that_holds_the_prior_keeps_it(truth: Profile) -> None:
    # the truth has no app-stack latency and no ztunnel latency per KiB: the percentiles
    # barely move with them here, and their intervals hold the prior (0)
    points = _points(truth, [50, 200], [256, 16384], ["none", "ambient"])
    fit = fit_profile(points, truth, engine="vector", stages=("latency",))
    for path in ("ztunnel.hop_latency_per_kib_us", "app.visit_latency_us"):
        e = _estimate(fit, path)
        assert e.status == "poorly determined" and e.kept_prior, path
        assert e.note.endswith("holds the prior: kept"), path
        assert e.value == e.prior == get_value(fit.profile, path) == 0.0, path
    e = _estimate(fit, "ztunnel.hop_latency_per_kib_us")
    assert e.describe().startswith("ztunnel.hop_latency_per_kib_us: kept at prior 0 us")
    # the others are fitted again without them, and recover the truth
    hop = _estimate(fit, "ztunnel.hop_latency_us")
    assert hop.status == "fitted"
    assert abs(hop.value - get_value(truth, "ztunnel.hop_latency_us")) <= 2 * (hop.ci95 or 0.0)


def test_handshake_cpu_is_fitted_when_connections_open_in_the_window(
    istio_profile: Profile,
) -> None:
    truth = with_values(istio_profile, {"sidecar.cpu.handshake_us.client": 900.0,
                                        "sidecar.cpu.handshake_us.server": 700.0})  # fmt: skip
    points = []
    for rate in (50, 150):
        for reuse in (1, 1000):  # a new connection for every request, or hardly ever
            doc = _two_pods()
            doc["traffic"]["open_loop"]["rate_rps"] = rate
            doc["mesh"] = {"modes": ["sidecar"], "pool": {"max_requests_per_connection": reuse}}
            scenario = Scenario.model_validate(doc)
            measured = simulate(scenario, truth, seed=MEASURE_SEED, engine="vector")
            points.append(
                FitPoint(
                    f"{rate}/{reuse}", "sidecar", scenario, measured.modes["sidecar"], FIT_SEED
                )
            )
    fit = fit_profile(points, istio_profile, engine="vector", stages=("cpu",))
    for side, value in (("client", 900.0), ("server", 700.0)):
        e = _estimate(fit, f"sidecar.cpu.handshake_us.{side}")
        assert e.status == "fitted"
        assert e.value == pytest.approx(value, rel=0.1)


def test_a_handful_of_handshakes_in_the_window_does_not_fit_their_cpu(
    istio_profile: Profile,
) -> None:
    """A connection now and then (every 100th request reconnects) puts a few handshakes in
    each window: their CPU is under the resolution CPU is judged at, so it is not fitted."""
    points = []
    for rate in (50, 150):
        doc = _two_pods()
        doc["traffic"]["open_loop"]["rate_rps"] = rate
        doc["mesh"] = {"modes": ["sidecar"], "pool": {"max_requests_per_connection": 100}}
        scenario = Scenario.model_validate(doc)
        measured = simulate(scenario, istio_profile, seed=MEASURE_SEED, engine="vector")
        assert sum(c.handshakes for c in measured.modes["sidecar"].components) > 0
        points.append(FitPoint(f"{rate}", "sidecar", scenario, measured.modes["sidecar"], FIT_SEED))
    fit = fit_profile(points, istio_profile, engine="vector", stages=("cpu",))
    for side in ("client", "server"):
        e = _estimate(fit, f"sidecar.cpu.handshake_us.{side}")
        assert e.status == "not identifiable"
        assert e.note.startswith("too few handshakes inside the measurement windows")
        assert e.value == get_value(istio_profile, f"sidecar.cpu.handshake_us.{side}")


def test_more_starts_only_where_a_whole_ridge_is_identifiable() -> None:
    plain = Parameter("app.visit_latency_us", "latency", "us", 1.0)
    share = Parameter(
        "host.stall_probability", "latency", "fraction", 0.01, alternatives=(0.2, 0.3)
    )
    size = Parameter("host.stall_us", "latency", "us", 1.0, alternatives=(7.0,))
    x0 = np.array([1.0, 0.1, 5.0])
    params = [plain, share, size]
    # no parameter with alternatives, or one of the ridge not identifiable: the start alone
    assert [list(x) for x in _starting_points([plain], [0], x0[:1])] == [[1.0]]
    assert [list(x) for x in _starting_points(params, [0, 1], x0)] == [[1.0, 0.1, 5.0]]
    # the k-th start moves every parameter that has a k-th alternative; the others stay
    assert [list(x) for x in _starting_points(params, [0, 1, 2], x0)] == [
        [1.0, 0.1, 5.0],
        [1.0, 0.2, 7.0],
        [1.0, 0.3, 5.0],
    ]
