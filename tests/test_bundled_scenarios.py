"""What the bundled scenarios must show: the published Istio figures and the quickstart's story."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from meshsim.cli import main
from meshsim.loader import load_scenario
from meshsim.results import RunResult
from meshsim.run import simulate
from meshsim.topology import build_topology

from .builders import ROOT

MB_IN_MIB = 1e6 / 2**20


# What `meshsim run` prints for them: its default engine, auto, picks the vector engine for
# both (the engines' agreement on them is test_engine_agreement's)
@pytest.fixture(scope="module")
def istio_perf() -> RunResult:
    scenario, profile = load_scenario(ROOT / "scenarios" / "istio-perf.yaml")
    return simulate(scenario, profile, engine="auto")


@pytest.fixture(scope="module")
def quickstart() -> RunResult:
    scenario, profile = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    return simulate(scenario, profile, engine="auto")


@pytest.mark.parametrize(
    ("mode", "kind", "vcpu", "mb"),
    [
        ("sidecar", "sidecar", 0.20, 60),
        ("ambient", "ztunnel", 0.06, 12),
        ("ambient-waypoint", "waypoint", 0.25, 60),
    ],
)
def test_istio_perf_reproduces_published_per_proxy_cpu_and_memory(
    istio_perf: RunResult, mode: str, kind: str, vcpu: float, mb: float
) -> None:
    result = istio_perf.modes[mode]
    proxies = [u for u in result.components if u.kind == kind]
    assert proxies, f"no {kind} in {mode}"
    for usage in proxies:
        assert usage.cpu_cores == pytest.approx(vcpu, rel=0.10), usage.name
        assert usage.memory_mib == pytest.approx(mb * MB_IN_MIB, rel=0.10), usage.name


@pytest.mark.parametrize(
    ("mode", "p90_ms", "p99_ms"),
    [("sidecar", 0.228, 0.298), ("ambient", 0.17, 0.20)],
)
def test_istio_perf_reproduces_published_added_latency(
    istio_perf: RunResult, mode: str, p90_ms: float, p99_ms: float
) -> None:
    none, meshed = istio_perf.modes["none"].latency_ms, istio_perf.modes[mode].latency_ms
    assert meshed.p90 - none.p90 == pytest.approx(p90_ms, rel=0.25)
    assert meshed.p99 - none.p99 == pytest.approx(p99_ms, rel=0.25)


def test_quickstart_sidecar_costs_more_cpu_and_memory_than_ambient(quickstart: RunResult) -> None:
    sidecar, ambient = quickstart.modes["sidecar"], quickstart.modes["ambient"]
    assert sidecar.cpu_cores.total > ambient.cpu_cores.total
    assert sidecar.memory_mib.total > ambient.memory_mib.total
    assert sidecar.cpu_cores.sidecar > ambient.cpu_cores.ztunnel
    assert sidecar.memory_mib.sidecar > ambient.memory_mib.ztunnel


def test_quickstart_latency_grows_none_ambient_sidecar(quickstart: RunResult) -> None:
    p50 = {mode: r.latency_ms.p50 for mode, r in quickstart.modes.items()}
    mean = {mode: r.latency_ms.mean for mode, r in quickstart.modes.items()}
    assert p50["none"] < p50["ambient"] < p50["sidecar"]
    assert mean["none"] < mean["ambient"] < mean["sidecar"]


def test_quickstart_proxy_counts_match_topology(quickstart: RunResult) -> None:
    scenario, _ = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    topology = build_topology(scenario)
    pods = len(topology.pods)  # every workload replica and the load generator
    namespaces = len({w.namespace for w in scenario.workloads})
    assert quickstart.modes["none"].proxies.model_dump() == {
        "sidecar": 0,
        "ztunnel": 0,
        "waypoint": 0,
    }
    assert quickstart.modes["sidecar"].proxies.sidecar == pods == 13
    assert quickstart.modes["ambient"].proxies.ztunnel == len(topology.nodes_in_use()) == 3
    waypoint = quickstart.modes["ambient-waypoint"].proxies
    assert (waypoint.ztunnel, waypoint.waypoint) == (3, namespaces)


def test_quickstart_ambient_opens_fewer_connections_and_handshakes(quickstart: RunResult) -> None:
    """Several pods share each node: ztunnels pool per node, sidecars per pod and worker."""
    sidecar, ambient = quickstart.modes["sidecar"], quickstart.modes["ambient"]
    assert ambient.connections_open < sidecar.connections_open
    assert ambient.handshakes_per_s < sidecar.handshakes_per_s
    assert sidecar.handshakes_per_s > 0


def test_the_readme_scenario_example_is_a_valid_scenario(tmp_path: Path) -> None:
    """What a reader copies from the README's "A scenario" runs as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("## A scenario\n\n```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "scenarios" / "example.yaml"
    path.parent.mkdir()
    path.write_text(example, encoding="utf-8")
    (tmp_path / "profiles").mkdir()
    for profile in (ROOT / "profiles").glob("*.yaml"):
        (tmp_path / "profiles" / profile.name).write_text(profile.read_text())
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
