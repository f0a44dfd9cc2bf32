"""`meshsim measure --backend kind --dry-run` from the command line: the plan, nothing run."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from meshsim.cli import main
from tests.builders import ROOT

MICROSERVICES = str(ROOT / "scenarios" / "microservices.yaml")


def test_dry_run_prints_the_ordered_plan_and_exits_0() -> None:
    args = [
        "measure",
        MICROSERVICES,
        "--backend",
        "kind",
        "--mode",
        "ambient-waypoint",
        "--dry-run",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("# meshsim measure --backend kind: scenario microservices, modes ")
    steps = re.findall(r"^# (\d+)\. ", out, flags=re.M)
    assert steps == ["1", "2", "3", "4", "5", "6"]
    order = [
        "docker build", "kind create cluster", "kind load docker-image", "apply --server-side",
        "install --set profile=ambient --skip-confirmation", "apply -f - <<'EOF'",
        "--for=condition=Programmed gateway/waypoint", "meshsim.testbed.probes http",
        "python -m locust", "/proxy/metrics/resource", " cp \"load/", "delete namespace",
        "kind delete cluster",
    ]  # fmt: skip
    at = [out.index(marker) for marker in order]
    assert at == sorted(at)


def test_dry_run_with_a_given_cluster_and_keep_neither_creates_nor_deletes_it() -> None:
    args = [
        "measure",
        MICROSERVICES,
        "--backend",
        "kind",
        "--cluster",
        "lab",
        "--keep",
        "--dry-run",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "kind create cluster" not in result.output
    assert "kind delete cluster" not in result.output
    assert "kubectl --context kind-lab apply -f -" in result.output
    # every mode of the scenario, in its order
    modes = re.findall(r"^# \d+\. mode (\S+): load and measure$", result.output, flags=re.M)
    assert modes == ["none", "sidecar", "ambient", "ambient-waypoint"]


def test_kind_options_without_the_kind_backend_are_refused() -> None:
    result = CliRunner().invoke(main, ["measure", MICROSERVICES, "--dry-run"])
    assert result.exit_code == 2
    assert "--dry-run, --cluster, --keep: only with --backend kind" in result.output


def test_a_scenario_too_large_for_one_machine_is_refused_before_anything_runs() -> None:
    result = CliRunner().invoke(
        main,
        [
            "measure",
            str(ROOT / "scenarios" / "large-cluster.yaml"),
            "--backend",
            "kind",
            "--dry-run",
        ],
    )
    assert result.exit_code == 1
    assert result.output == (
        "meshsim measure: scenario large-cluster has 1000 nodes; the kind backend runs each as "
        "a container on this machine and takes at most 16: simulate it with `meshsim run`, and "
        "calibrate on a smaller scenario\n"
    )


def test_too_many_pods_are_refused_too() -> None:
    from meshsim.kind import KindError, KindRun
    from meshsim.loader import load_profile
    from tests.builders import ISTIO, base_scenario, scenario_of

    doc = base_scenario(workloads=[{"name": "app", "replicas": 400, "cpu_millicores": 1}])
    doc["cluster"] |= {"nodes": 2, "max_pods_per_node": 300}
    with pytest.raises(
        KindError, match=r"has 401 pods \(with the load generator's\); .* at most 400"
    ):
        KindRun.new(scenario_of(doc), load_profile(ISTIO))


def test_kind_cleanup_without_run_or_all_deletes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import meshsim.kind

    monkeypatch.setattr(meshsim.kind, "kind_clusters", lambda say: ["meshsim-0badcafe"])

    def refuse(*args: object, **kwargs: object) -> list[str]:
        raise AssertionError("nothing may be deleted without --run or --all")

    monkeypatch.setattr(meshsim.kind, "cleanup_kind", refuse)
    result = CliRunner().invoke(main, ["testbed", "cleanup", "--backend", "kind"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "kind clusters of meshsim: meshsim-0badcafe; delete one with --run ID, or all of them "
        "(a run still going, or one kept with --keep, among them) with --all\n"
    )
