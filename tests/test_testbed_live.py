"""Real testbeds, stood up as root: traffic flows, mTLS holds, and nothing is left behind.

Each test leaves the host as it found it, also when it fails: the `no_leftovers` fixture
removes any run a test created and then fails the test if there was one to remove.
Loads are small (100 requests per second, runs of 8 s) so that the suite stays short on
a 2-core machine shared with other work; rates are paced by the load generator, so the
achieved rate is checked against the target with room for a loaded host.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from meshsim.cli import main
from meshsim.loader import load_scenario
from meshsim.profile import Profile
from meshsim.results import RunResult
from meshsim.run import simulate
from meshsim.scenario import MODES, Scenario
from meshsim.testbed.accounting import proxy_stats
from meshsim.testbed.certs import CertificateAuthority
from meshsim.testbed.cleanup import cleanup_run, find_runs, run_namespaces
from meshsim.testbed.dataplane import APP_PORT, HBONE_PORT, INBOUND_PORT
from meshsim.testbed.names import RunNames
from meshsim.testbed.runner import LocalTestbed, measure_local
from meshsim.testbed.system import TestbedError, in_netns, missing_requirements
from meshsim.topology import build_topology

from .builders import ROOT

MISSING = missing_requirements()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"the local testbed needs: {'; '.join(MISSING)}"
)

TWO_PODS = ROOT / "scenarios" / "testbed-two-pods.yaml"
CHAIN = ROOT / "scenarios" / "testbed-chain.yaml"
RATE_RPS = 100.0


def short(path: Path, duration_s: float = 8.0, warmup_s: float = 2.0) -> tuple[Scenario, Profile]:
    scenario, profile = load_scenario(path)
    traffic = scenario.traffic.model_copy(update={"duration_s": duration_s, "warmup_s": warmup_s})
    return scenario.model_copy(update={"traffic": traffic}), profile


def leftovers(run_id: str) -> list[str]:
    names = RunNames(run_id)
    left = run_namespaces(run_id)
    left += [str(p) for p in names.cgroup_roots() if p.exists()]
    left += [str(names.run_dir)] if names.run_dir.exists() else []
    return left


STARTED: set[str] = set()  # runs this test session started in a `meshsim` subprocess


def ours(run_id: str) -> bool:
    """A run this test process made, in process or in a subprocess it started (other
    people's runs on a shared host are never touched)."""
    if run_id in STARTED:
        return True
    try:
        state = json.loads((RunNames(run_id).run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(state.get("pid") == os.getpid())


def new_runs(before: set[str]) -> list[str]:
    return sorted(r for r in set(find_runs()) - before if ours(r))


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    before = set(find_runs())
    yield
    stray = new_runs(before)
    found = {run_id: leftovers(run_id) for run_id in stray}
    for run_id in stray:
        cleanup_run(run_id)
    assert not stray, f"runs left behind (now removed): {found}"


@pytest.fixture(scope="module")
def two_pods() -> RunResult:
    """The two-pod scenario measured in every mode (each run removes itself when done)."""
    scenario, profile = short(TWO_PODS)
    before = set(find_runs())
    try:
        return measure_local(scenario, profile, modes=list(MODES))
    finally:
        for run_id in new_runs(before):
            cleanup_run(run_id)


def test_requests_flow_in_every_mode_with_no_error(two_pods: RunResult) -> None:
    for mode, result in two_pods.modes.items():
        assert result.requests > 0, mode
        assert result.errors == 0, mode
        assert result.latency_ms.p50 > 0, mode


def test_the_achieved_rate_is_within_ten_percent_of_the_target(two_pods: RunResult) -> None:
    rates = {mode: r.throughput_rps for mode, r in two_pods.modes.items()}
    off = {m: rate for m, rate in rates.items() if abs(rate - RATE_RPS) > 0.1 * RATE_RPS}
    assert not off, f"target {RATE_RPS} rps; achieved {rates}"


def test_a_measured_run_has_the_simulated_runs_shape(two_pods: RunResult) -> None:
    scenario, profile = short(TWO_PODS)
    simulated = simulate(scenario, profile, modes=list(MODES))
    assert two_pods.kind == "measured"
    assert two_pods.engine == "testbed-local"
    measured, modelled = two_pods.summary(), simulated.summary()
    assert measured.keys() == modelled.keys()
    for mode in MODES:
        got = measured["modes"][mode]  # type: ignore[index]
        want = modelled["modes"][mode]  # type: ignore[index]
        assert got.keys() == want.keys()
        # the same components, by name and kind: the testbed stood up what was modelled
        assert [(c["name"], c["kind"]) for c in got["components"]] == [
            (c["name"], c["kind"]) for c in want["components"]
        ]
        assert got["proxies"] == want["proxies"]
        for component in got["components"]:
            assert component["memory_mib"] > 0, component
            if component["kind"] != "app":
                continue
            assert component["cpu_cores"] > 0, component


def test_the_links_round_trip_times_are_measured_and_recorded(two_pods: RunResult) -> None:
    network = two_pods.network
    assert network is not None
    kinds = sorted(link.kind for link in network.links)
    assert kinds == ["cross_node", "same_node"]  # loadgen-0 and waypoint-demo share node-1
    for link in network.links:
        assert link.probes > 100
        assert 0 < link.rtt_ms < 50
    cross = next(link for link in network.links if link.kind == "cross_node")
    assert network.cross_node_ms == pytest.approx(cross.rtt_ms / 2)


def test_measure_out_writes_the_run_and_its_scenario_as_measured_together(tmp_path: Path) -> None:
    doc = yaml.safe_load(TWO_PODS.read_text())
    doc["traffic"].update({"duration_s": 5, "warmup_s": 1})
    doc["profile"] = str(ROOT / "profiles" / "istio-1.24.yaml")
    path = tmp_path / "two-pods.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    args = ["measure", str(path), "--mode", "none", "--out", str(out)]
    measured = CliRunner().invoke(main, args)
    assert measured.exit_code == 0, measured.output
    stem = f"testbed-two-pods-seed{doc['seed']}"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            f"{stem}.json",
            f"{stem}-latency.csv",
            f"{stem}-components.csv",
            f"testbed-two-pods-none-seed{doc['seed']}-histogram.csv",
            f"{stem}-as-measured.yaml",
        ]
    )  # and no temporary file
    ran = CliRunner().invoke(main, ["run", str(out / f"{stem}-as-measured.yaml"), "--json"])
    assert ran.exit_code == 0, ran.output
    assert "none" in json.loads(ran.output)["modes"]


def test_a_chain_with_two_waypoints_flows_and_sidecars_cost_more_cpu_than_ztunnels() -> None:
    scenario, profile = short(CHAIN)
    run = measure_local(scenario, profile, modes=["sidecar", "ambient", "ambient-waypoint"])
    for mode, result in run.modes.items():
        assert result.errors == 0, mode
        assert result.throughput_rps == pytest.approx(RATE_RPS, rel=0.1), mode
    assert run.modes["ambient-waypoint"].proxies.waypoint == 2  # one per namespace
    sidecar, ambient = run.modes["sidecar"], run.modes["ambient"]
    mesh_sidecar = sidecar.cpu_cores.total - sidecar.cpu_cores.app
    mesh_ambient = ambient.cpu_cores.total - ambient.cpu_cores.app
    assert mesh_sidecar > mesh_ambient > 0, (mesh_sidecar, mesh_ambient)


def test_closed_loop_users_wait_their_think_time() -> None:
    scenario, profile = short(TWO_PODS)
    think = {"dist": "constant", "value_ms": 20}
    traffic = scenario.traffic.model_validate(
        {**scenario.traffic.model_dump(), "open_loop": None,
         "closed_loop": {"users": 4, "think_time": think}}
    )  # fmt: skip
    run = measure_local(scenario.model_copy(update={"traffic": traffic}), profile, modes=["none"])
    result = run.modes["none"]
    assert result.errors == 0
    # each user sends at most once per think time (Little's law with zero latency)
    assert 0 < result.throughput_rps <= 4 / 0.020
    latency_s = result.latency_ms.mean / 1000
    assert result.throughput_rps == pytest.approx(4 / (0.020 + latency_s), rel=0.25)


def test_a_proxy_that_dies_mid_run_fails_the_run_naming_it() -> None:
    scenario, profile = short(TWO_PODS)
    with LocalTestbed(scenario, profile, modes=["sidecar"]) as bed, bed.mode("sidecar") as up:
        victim = up.proxies["echo-0.sidecar"][1]
        killer = threading.Timer(3.0, victim.popen.kill)
        killer.start()
        try:
            message = r"sidecar echo-0\.sidecar \(pid \d+\) exited with code -9 during the run"
            with pytest.raises(TestbedError, match=message):
                bed.load(up)
        finally:
            killer.cancel()


# ---- mTLS really happens ----------------------------------------------------------------


def probe(ns: str, *args: str) -> str:
    argv = [sys.executable, "-m", "meshsim.testbed.probes", *args]
    done = subprocess.run(in_netns(ns, argv), capture_output=True, text=True, check=False)
    return done.stdout.strip()


@pytest.mark.parametrize(("mode", "port"), [("sidecar", INBOUND_PORT), ("ambient", HBONE_PORT)])
def test_mtls_is_required_and_counted(mode: str, port: int, tmp_path: Path) -> None:
    scenario, profile = short(TWO_PODS)
    topology = build_topology(scenario)
    echo = topology.pods[topology.services["echo"][0]]
    with LocalTestbed(scenario, profile, modes=[mode]) as bed, bed.mode(mode) as standing:  # type: ignore[list-item,arg-type]
        node = bed.net.nodes[echo.node]
        host = bed.net.hosts[echo.name]
        # who accepts mTLS for the echo pod: its sidecar, or its node's ztunnel
        name, address = (
            (f"{echo.name}.sidecar", host.ip)
            if mode == "sidecar"
            else (f"ztunnel-{node.name}", node.fabric_ip)
        )
        spec = standing.proxy(name)
        sock = f"{bed.run_dir}/{name}.sock"
        certs = bed.run_dir / "certs"
        stem = next(s for s, i in standing.plan.dataplane.identities.items() if i == spec.identity)
        # a ztunnel learns the destination pod from the SNI, as HBONE's CONNECT names it
        sni = [] if mode == "sidecar" else [f"{echo.name}.ztunnel.istio-system.sa.cluster.local"]
        before = proxy_stats(sock, spec.tls_frontends).handshakes_in
        # a client with a certificate of this run's CA is let in, and the handshake counted
        own = str(certs / f"{stem}.pem")
        ok = probe(node.netns, "tls", address, str(port), str(certs / "ca.pem"), own, *sni)
        assert ok == "ok"
        assert proxy_stats(sock, spec.tls_frontends).handshakes_in > before
        # a certificate from another CA is refused
        other = CertificateAuthority(tmp_path / "other")
        foreign = other.issue(spec.identity, "impostor")
        refused = probe(
            node.netns, "tls", address, str(port), str(other.ca_file), str(foreign), *sni
        )
        assert refused.startswith("refused"), refused
        # and so is a client with no certificate at all
        anonymous = probe(node.netns, "tls", address, str(port), str(certs / "ca.pem"), "-", *sni)
        assert anonymous.startswith("refused"), anonymous
        # plaintext to the mTLS port, and to the app's port of a meshed pod, is refused
        for target in (f"http://{address}:{port}/", f"http://{host.ip}:{APP_PORT}/"):
            if mode == "ambient" and target.endswith(f":{APP_PORT}/"):
                continue  # ambient secures traffic from meshed pods; the node is not one
            answer = probe(node.netns, "http", target, "2")
            assert answer.startswith("failed"), (target, answer)


# ---- nothing is left behind -------------------------------------------------------------


def default_sigint() -> None:
    """In the child: Ctrl-C as a terminal delivers it, even if this process ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_measure(tmp_path: Path, duration_s: float) -> tuple[subprocess.Popen[str], str]:
    """`meshsim measure` of the two-pod scenario in mode none, until its load is running."""
    doc = yaml.safe_load(TWO_PODS.read_text())
    doc["traffic"].update({"duration_s": duration_s, "warmup_s": 2})
    doc["profile"] = str(ROOT / "profiles" / "istio-1.24.yaml")
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from meshsim.cli import main; main()", "measure", str(path),
         "--mode", "none"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    assert proc.stderr is not None
    run_id, seen, deadline = "", "", time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if not ready:
            continue
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if not run_id and (match := re.search(r"testbed run ([0-9a-f]{8})", line)):
            run_id = match.group(1)
            STARTED.add(run_id)
        if run_id and "load running" in line:
            return proc, run_id
    proc.kill()
    raise AssertionError(f"meshsim measure did not start its load:\n{seen}")


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for its new parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_tear_the_testbed_down(sig: signal.Signals, tmp_path: Path) -> None:
    proc, run_id = start_measure(tmp_path, duration_s=60)
    try:
        assert leftovers(run_id)  # it is up
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130
        assert leftovers(run_id) == []
    finally:
        proc.kill()
        proc.wait()


def test_after_sigkill_the_cleanup_command_removes_everything(tmp_path: Path) -> None:
    proc, run_id = start_measure(tmp_path, duration_s=60)
    try:
        namespaces = run_namespaces(run_id)
        pids = [
            int(pid)
            for ns in namespaces
            for pid in subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
            ).stdout.split()
        ]
        proc.kill()
        proc.wait()
        assert pids, "the run's apps and load generator were running in its namespaces"
        assert leftovers(run_id)  # a SIGKILL leaves everything behind
        done = subprocess.run(
            [sys.executable, "-c", "from meshsim.cli import main; main()", "testbed", "cleanup",
             "--run", run_id],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"run {run_id}: ")
        assert leftovers(run_id) == []
        assert [pid for pid in pids if running(pid)] == []
    finally:
        proc.kill()
        proc.wait()
