"""`meshsim calibrate --backend kind`: the grid measured on one kind cluster, at every seam
that can be tested without Docker (the cluster and each measurement are recorded fakes; what
they run is tested in test_kind_flow.py and test_kind_commands.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import meshsim.kind
from meshsim.calibrate.calibration import measure_grid
from meshsim.calibrate.fit import FitPoint, fit_profile
from meshsim.calibrate.grid import load_grid
from meshsim.cli import main
from meshsim.kind import KindError
from meshsim.profile import Profile
from meshsim.results import RunResult
from meshsim.run import simulate
from meshsim.scenario import Scenario

from .builders import client_and_one_pod, write_yaml

GRID = {
    "name": "k",
    "seed": 4,
    "grid": {"traffic.open_loop.rate_rps": [50, 150], "mode": ["none", "sidecar"]},
    "holdout": {"fraction": 0.5, "seed": 2},
}


def _scenario(window_s: float = 21.0) -> dict[str, Any]:
    doc = client_and_one_pod(
        ["none", "sidecar"],
        app={"name": "echo", "cpu_time": 0.2, "memory_mib": 40},
        traffic={"duration_s": window_s + 4, "warmup_s": 4},
    )
    doc["name"] = "kindcal"
    return doc


def _files(tmp_path: Path, window_s: float = 21.0) -> tuple[Path, Path]:
    scenario = write_yaml(tmp_path / "kindcal.yaml", _scenario(window_s))
    return write_yaml(tmp_path / "grid.yaml", GRID), scenario


def _as_kind_measures(run: RunResult) -> RunResult:
    """A simulated run as the kind backend returns one: measured, no handshake count."""
    modes = {m: r.model_copy(update={"handshakes_per_s": math.nan}) for m, r in run.modes.items()}
    return run.model_copy(update={"kind": "measured", "engine": "testbed-kind", "modes": modes})


class FakeKind:
    """shared_cluster and measure_kind, recorded; the `fail_at`-th measurement fails."""

    def __init__(self, profile: Profile, fail_at: int | None = None):
        self.profile = profile
        self.fail_at = fail_at
        self.events: list[tuple[Any, ...]] = []

    @contextmanager
    def shared_cluster(self, scenarios: list[Scenario], **_: Any) -> Iterator[str]:
        self.events.append(("create", len(scenarios)))
        try:
            yield "meshsim-0badcafe"
        finally:
            self.events.append(("delete",))

    def measure_kind(self, scenario: Scenario, profile: Profile, **kw: Any) -> RunResult:
        loop = scenario.traffic.open_loop
        assert loop is not None
        self.events.append(("measure", loop.rate_rps, kw["cluster"], kw["setup"],
                            tuple(kw["modes"])))  # fmt: skip
        if self.fail_at is not None and sum(e[0] == "measure" for e in self.events) == self.fail_at:
            raise KindError("kubectl apply: connection refused")
        sim = simulate(scenario, self.profile, engine="des", seed=kw["seed"])
        return _as_kind_measures(sim)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, istio_profile: Profile) -> FakeKind:
    fake = FakeKind(istio_profile)
    monkeypatch.setattr(meshsim.kind, "shared_cluster", fake.shared_cluster)
    monkeypatch.setattr(meshsim.kind, "measure_kind", fake.measure_kind)
    monkeypatch.setattr(meshsim.kind, "kind_software", lambda: {"kind": "kind v0.24.0"})
    return fake


def _calibrate(grid: Path, scenario: Path, out: Path, *extra: str) -> Any:
    args = ["calibrate", str(scenario), "--backend", "kind", "--grid", str(grid),
            "--out", str(out), *extra]  # fmt: skip
    return CliRunner().invoke(main, args, terminal_width=200)


def test_the_grid_is_measured_on_one_cluster_deleted_when_a_setting_fails(
    tmp_path: Path, fake: FakeKind
) -> None:
    fake.fail_at = 2
    grid, scenario = _files(tmp_path)
    result = _calibrate(grid, scenario, tmp_path / "cal")
    assert result.exit_code == 1, result.output
    assert fake.events == [
        ("create", 2),  # one cluster for the grid, as large as its largest scenario
        ("measure", 50, "meshsim-0badcafe", False, ("none", "sidecar")),
        ("measure", 150, "meshsim-0badcafe", False, ("none", "sidecar")),
        ("delete",),
    ]
    assert "meshsim calibrate: kubectl apply: connection refused\n" in result.output
    assert "the settings measured so far are kept in " in result.output
    # the first setting is in the dataset: the same command goes on from the second
    fake.fail_at, fake.events = None, []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("meshsim.calibrate.calibration.run_calibration", _stop)
        again = _calibrate(grid, scenario, tmp_path / "cal")
    assert "fitting" in str(again.exception)
    assert fake.events == [
        ("create", 2),
        ("measure", 150, "meshsim-0badcafe", False, ("none", "sidecar")),
        ("delete",),
    ]


def _stop(*_: Any, **__: Any) -> Any:
    raise RuntimeError("fitting: not in this test")


def test_a_given_cluster_is_set_up_once_and_not_made(tmp_path: Path, fake: FakeKind) -> None:
    grid, scenario = _files(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("meshsim.calibrate.calibration.run_calibration", _stop)
        _calibrate(grid, scenario, tmp_path / "cal", "--cluster", "mine")
    assert fake.events == [
        ("measure", 50, "mine", True, ("none", "sidecar")),
        ("measure", 150, "mine", False, ("none", "sidecar")),
    ]
    manifest = (tmp_path / "cal" / "dataset" / "manifest.json").read_text()
    assert '"kind": "kind v0.24.0"' in manifest  # what measured it, not this host's HAProxy


def test_a_window_too_short_for_the_kubelet_is_refused_before_a_cluster_is_made(
    tmp_path: Path, fake: FakeKind
) -> None:
    grid, scenario = _files(tmp_path, window_s=15.0)
    result = _calibrate(grid, scenario, tmp_path / "cal")
    assert result.exit_code == 2
    assert "meshsim calibrate: setting kindcal rate_rps=50: the measurement window " in (
        result.output
    )
    assert fake.events == []


def test_a_dataset_of_the_local_testbed_is_not_mixed_with_kind_runs(
    tmp_path: Path, fake: FakeKind, istio_profile: Profile
) -> None:
    grid, scenario = _files(tmp_path)
    plan = load_grid(grid, scenario)
    local = tmp_path / "cal" / "dataset"

    def measure_local(setting: Any) -> RunResult:
        run = simulate(setting.scenario, istio_profile, engine="des", seed=setting.seed)
        return run.model_copy(update={"kind": "measured", "engine": "testbed-local"})

    measure_grid(plan, local, measure_local)
    result = _calibrate(grid, scenario, tmp_path / "cal")
    assert result.exit_code == 2
    key = plan.settings[0].key
    assert (
        f"meshsim calibrate: {local / key}: measured on testbed-local, not testbed-kind: a "
        "calibration fits the runs of one testbed; give this one another --out\n"
    ) in result.output
    assert fake.events == []


def test_cluster_options_need_the_kind_backend(tmp_path: Path) -> None:
    grid, scenario = _files(tmp_path)
    args = ["calibrate", str(scenario), "--grid", str(grid), "--keep"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output == "meshsim calibrate: --cluster, --keep: only with --backend kind\n"


def test_handshake_costs_are_not_fitted_where_the_testbed_does_not_count_them(
    istio_profile: Profile,
) -> None:
    """On kind every call may open a connection, and its CPU is in the measured figures, but
    the kubelet does not count handshakes: the fit says why it leaves their cost alone."""
    points = []
    for rate in (50, 150):
        doc = _scenario()
        doc["traffic"]["open_loop"]["rate_rps"] = rate
        doc["mesh"] = {"modes": ["sidecar"], "pool": {"max_requests_per_connection": 1}}
        scenario = Scenario.model_validate(doc)
        measured = _as_kind_measures(simulate(scenario, istio_profile, seed=9, engine="vector"))
        points.append(FitPoint(f"{rate}", "sidecar", scenario, measured.modes["sidecar"], 1))
    fit = fit_profile(points, istio_profile, engine="vector", stages=("cpu",))
    for side in ("client", "server"):
        (e,) = [
            e for e in fit.estimates() if e.parameter.path == f"sidecar.cpu.handshake_us.{side}"
        ]
        assert e.status == "not identifiable"
        assert e.note == "the testbed that measured does not count handshakes (kind)"
