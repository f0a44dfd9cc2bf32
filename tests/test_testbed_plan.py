"""The local testbed's plan, without root: names, addresses, proxies, configs, certificates.

What is stood up must be what the simulator models: one sidecar per pod, one ztunnel per
node in use, one waypoint per namespace, each with its own namespace where the design
puts it, and every name carrying the run's id.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from cryptography import x509

from meshsim.loader import load_scenario
from meshsim.loadgen import first_arrival_s
from meshsim.results import MeasuredLink, MeasuredNetwork, RunResult
from meshsim.run import simulate
from meshsim.testbed.accounting import ProxyStats, parse_stats
from meshsim.testbed.certs import CertificateAuthority, identity_dns_name
from meshsim.testbed.commands import as_measured_profile, measured_scenario
from meshsim.testbed.dataplane import (
    APP_PORT,
    HBONE_PORT,
    PROXY_UID,
    ModePlan,
    load_users,
    plan_dataplane,
    waypoint_hosts,
)
from meshsim.testbed.names import RunNames
from meshsim.testbed.network import NetworkPlan, own_targets, plan_network
from meshsim.testbed.system import PROXY_VARIABLES, TestbedError, env_without_proxies
from meshsim.topology import Topology, build_topology

from .builders import ROOT

CHAIN = ROOT / "scenarios" / "testbed-chain.yaml"
RUN = RunNames("0a1b2c3d")


def chain() -> tuple[Topology, NetworkPlan]:
    scenario, profile = load_scenario(CHAIN)
    topology = build_topology(scenario)
    extra = waypoint_hosts(topology, scenario, profile)
    return topology, plan_network(RUN, topology, extra)


def plan(mode: str, run_dir: str = "/run/meshsim/0a1b2c3d") -> ModePlan:
    scenario, profile = load_scenario(CHAIN)
    topology, net = chain()
    return plan_dataplane(scenario, profile, topology, net, mode, run_dir, 7)  # type: ignore[arg-type]


def test_a_run_id_is_eight_hex_digits() -> None:
    with pytest.raises(ValueError, match=r"not a testbed run id: 'zz' \(expected 8 hex digits\)"):
        RunNames("zz")
    assert RUN.netns("node-node-1") == "msim-0a1b2c3d-node-node-1"
    assert RUN.cgroup("cpuacct", "none", "store-0") == Path(
        "/sys/fs/cgroup/cpuacct/meshsim-0a1b2c3d/none/store-0"
    )


def test_every_pod_and_waypoint_gets_a_namespace_on_its_node() -> None:
    topology, net = chain()
    assert [h for h in net.hosts] == [
        "loadgen-0", "frontend-0", "backend-0", "store-0", "waypoint-shop", "waypoint-data",
    ]  # fmt: skip
    for pod in topology.pods:
        host = net.hosts[pod.name]
        assert host.node == pod.node
        assert ipaddress.ip_address(host.ip) in ipaddress.ip_network(net.nodes[pod.node].pod_cidr)
    ips = [h.ip for h in net.hosts.values()] + [n.fabric_ip for n in net.nodes]
    assert len(set(ips)) == len(ips)
    assert all(ns.startswith("msim-0a1b2c3d-") for ns in net.namespaces())
    assert len(set(net.namespaces())) == len(net.namespaces())


def test_sidecar_mode_puts_one_sidecar_in_every_pod_with_istio_init_rules() -> None:
    mode = plan("sidecar")
    topology, net = chain()
    names = [p.proxy.name for p in mode.dataplane.proxies]
    assert names == [f"{pod.name}.sidecar" for pod in topology.pods]
    assert sorted(mode.dataplane.iptables) == sorted(net.hosts[p.name].netns for p in topology.pods)
    store_ns = net.hosts["store-0"].netns
    rules = [" ".join(rule) for rule in mode.dataplane.iptables[store_ns]]
    assert rules == [
        f"-t nat -A OUTPUT -p tcp ! -d 127.0.0.0/8 --dport {APP_PORT} -m owner ! --uid-owner "
        f"{PROXY_UID} -j REDIRECT --to-ports 15001",
        f"-t nat -A PREROUTING -p tcp --dport {APP_PORT} -j REDIRECT --to-ports 15006",
    ]
    # the load generator only calls out: no inbound listener
    loadgen = next(p for p in mode.dataplane.proxies if p.proxy.key == "loadgen-0")
    assert loadgen.tls_frontends == ()
    assert "frontend inbound" not in loadgen.config
    frontend = next(p for p in mode.dataplane.proxies if p.proxy.key == "frontend-0")
    backend_ip = net.hosts["backend-0"].ip
    assert f"backend to_{backend_ip}" in frontend.config
    server = next(line for line in frontend.config.splitlines() if f"{backend_ip}:" in line)
    assert " ssl crt " in server
    assert " verify required " in server
    assert server.endswith(" verifyhost backend.shop.sa.cluster.local")


def test_ambient_mode_puts_one_ztunnel_on_each_node_and_hands_same_node_calls_over() -> None:
    mode = plan("ambient")
    _, net = chain()
    assert [p.proxy.name for p in mode.dataplane.proxies] == ["ztunnel-node-1", "ztunnel-node-2"]
    assert sorted(mode.dataplane.iptables) == sorted(n.netns for n in net.nodes)
    z2 = mode.dataplane.proxies[1].config
    store, backend = net.hosts["store-0"].ip, net.hosts["backend-0"].ip
    # store is on node-2 with ztunnel-node-2: one box, no TLS
    assert f"backend to_{store}\n  server s {store}:{APP_PORT}\n" in z2
    # backend as seen from node-1: TLS to node-2's ztunnel, the pod named in the SNI
    z1 = mode.dataplane.proxies[0].config
    assert f"server s {net.nodes[1].fabric_ip}:{HBONE_PORT} ssl" in z1
    assert "sni str(backend-0.ztunnel.istio-system.sa.cluster.local)" in z1
    assert f"backend to_{backend}" in z1


def test_waypoint_mode_sends_every_call_through_its_namespace_waypoint() -> None:
    mode = plan("ambient-waypoint")
    _, net = chain()
    kinds = [(p.proxy.kind, p.proxy.name) for p in mode.dataplane.proxies]
    assert kinds == [
        ("ztunnel", "ztunnel-node-1"), ("ztunnel", "ztunnel-node-2"),
        ("waypoint", "waypoint-shop"), ("waypoint", "waypoint-data"),
    ]  # fmt: skip
    z2 = mode.dataplane.proxies[1].config
    store_wp = net.hosts["waypoint-data"].ip
    assert f"server s {store_wp}:{HBONE_PORT} ssl" in z2
    assert "sni str(store-0.waypoint.data.sa.cluster.local)" in z2
    shop = mode.dataplane.proxies[2]
    assert shop.netns == net.hosts["waypoint-shop"].netns
    assert shop.identity == "spiffe://cluster.local/ns/shop/sa/waypoint"


def test_open_loop_users_are_enough_to_hold_the_rate() -> None:
    scenario, _ = load_scenario(CHAIN)
    assert load_users(scenario) == 5  # 100 rps at 20 per user


@pytest.mark.parametrize("rate", [50.0, 100.0, 200.0, 1000.0])
def test_paced_users_together_send_evenly_spaced(rate: float) -> None:
    # constant arrivals: each paced user sends every users / rate seconds from its first
    # arrival; merged, the users' sends are the engines' stream, one every 1 / rate
    scenario, _ = load_scenario(CHAIN)
    assert scenario.traffic.open_loop is not None
    loop = scenario.traffic.open_loop.model_copy(update={"rate_rps": rate})
    traffic = scenario.traffic.model_copy(update={"open_loop": loop})
    users = load_users(scenario.model_copy(update={"traffic": traffic}))
    assert users >= 2
    rng = np.random.default_rng(7)
    gap = users / rate
    sends = np.sort(
        np.concatenate(
            [
                first_arrival_s(i, users, rate, "constant", rng) + gap * np.arange(20)
                for i in range(users)
            ]
        )
    )
    assert np.diff(sends) == pytest.approx(np.full(len(sends) - 1, 1 / rate), abs=1e-12)
    # Poisson: each user's first arrival somewhere within its own gap
    firsts = [first_arrival_s(i, users, rate, "poisson", rng) for i in range(users)]
    assert all(0 <= f < gap for f in firsts)


def test_certificates_carry_the_spiffe_id_and_keys_stay_private(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    identity = "spiffe://cluster.local/ns/shop/sa/frontend"
    pem = ca.issue(identity, "frontend")
    assert identity_dns_name(identity) == "frontend.shop.sa.cluster.local"
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [identity]
    assert san.get_values_for_type(x509.DNSName) == [
        "frontend.shop.sa.cluster.local",
        "*.frontend.shop.sa.cluster.local",
    ]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.ca_file.read_bytes()))
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "certs").st_mode) == 0o700
    with pytest.raises(ValueError, match="not a SPIFFE workload identity: 'frontend'"):
        identity_dns_name("frontend")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed")
@pytest.mark.parametrize("mode", ["sidecar", "ambient", "ambient-waypoint"])
def test_haproxy_accepts_every_generated_config(mode: str, tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    planned = plan(mode, str(tmp_path))
    for stem, identity in planned.dataplane.identities.items():
        ca.issue(identity, stem)
    for spec in planned.dataplane.proxies:
        cfg = tmp_path / f"{spec.proxy.name}.cfg"
        cfg.write_text(spec.config)
        check = subprocess.run(
            ["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, f"{spec.proxy.name}: {check.stdout}{check.stderr}"


def test_the_scenario_as_measured_simulates_the_measured_delays(tmp_path: Path) -> None:
    scenario, _ = load_scenario(CHAIN)
    link = MeasuredLink(
        kind="cross_node", src="a", dst="b", rtt_ms=0.04, rtt_p90_ms=0.05, probes=200
    )
    network = MeasuredNetwork(
        same_node_ms=0.012, cross_node_ms=0.02, cross_zone_ms=0.02, links=[link]
    )
    run = RunResult(
        meshsim_version="0", kind="measured", scenario=scenario.name, engine="testbed-local",
        seed=2, profile="istio-1.24", modes={}, network=network,
    )  # fmt: skip
    path = tmp_path / "as-measured.yaml"
    path.write_text(measured_scenario(scenario, ROOT / "profiles" / "istio-1.24.yaml", run))
    again, _ = load_scenario(path)
    assert again.cluster.network.model_dump() == {
        "same_node_ms": 0.012, "cross_node_ms": 0.02, "cross_zone_ms": 0.02,
    }  # fmt: skip
    assert again.workloads == scenario.workloads
    assert again.traffic == scenario.traffic
    assert yaml.safe_load(path.read_text())["profile"].endswith("profiles/istio-1.24.yaml")


def test_the_scenario_as_measured_on_the_local_testbed_names_its_calibrated_profile(
    tmp_path: Path,
) -> None:
    """testbed-chain names the Istio profile (Envoy's costs); measured on the local testbed
    (HAProxy), it is simulated with the profile fitted there, and says so; only the modes
    measured are simulated. On kind (Istio itself), the scenario's own profile."""
    scenario, profile = load_scenario(CHAIN)
    assert profile.held_out is None
    path, why = as_measured_profile(scenario, profile, CHAIN, "local")
    assert path == ROOT / "profiles" / "local-haproxy.yaml"
    assert why.startswith("profile: local-haproxy, fitted to this testbed's measurements")
    assert as_measured_profile(scenario, profile, CHAIN, "kind") == (
        ROOT / "profiles" / "istio-1.24.yaml",
        "",
    )
    short = scenario.model_copy(
        update={"traffic": scenario.traffic.model_copy(update={"duration_s": 6.0})}
    )
    sidecar = simulate(short, profile, modes=["sidecar"], seed=1)  # stands in for a measurement
    run = sidecar.model_copy(update={"kind": "measured", "engine": "testbed-local"})
    text = measured_scenario(scenario, path, run, why)
    assert "# profile: local-haproxy, fitted to this testbed's measurements" in text
    doc = yaml.safe_load(text)
    assert doc["profile"] == str(path) and doc["mesh"]["modes"] == ["sidecar"]
    out = tmp_path / "as-measured.yaml"
    out.write_text(text)
    again, fitted = load_scenario(out)
    assert fitted.held_out is not None and again.mesh.modes == ["sidecar"]


def test_handshakes_and_tls_connections_come_from_haproxys_stats() -> None:
    # `show stat` of a sidecar, cut to the columns read: a TLS inbound frontend, a pooled
    # TLS server (http mode), a plain server to the app, and an outbound frontend
    header = (
        "# pxname,svname,scur,ssl_sess,ssl_reused_sess,mode,"
        "used_conn_cur,idle_conn_cur,safe_conn_cur,"
    )
    rows = [
        "outbound,FRONTEND,4,0,0,http,,,,",
        "inbound,FRONTEND,3,5,2,http,,,,",
        "to_10.2.0.2,s,0,6,1,http,1,0,2,",
        "to_10.2.0.2,BACKEND,0,6,1,http,,,,",
        "app,app,1,0,0,http,0,0,3,",
        "app,BACKEND,1,0,0,http,,,,",
    ]
    stats = parse_stats("\n".join([header, *rows]) + "\n", ("inbound",))
    assert stats == ProxyStats(
        handshakes_in=7, handshakes_out=7, connections_in=3, connections_out=3
    )
    # a ztunnel (tcp mode): one server connection per session
    tcp = parse_stats(header + "\nto_x,s,4,9,0,tcp,0,0,0,\nto_x,BACKEND,4,9,0,tcp,,,,\n", ())
    assert tcp == ProxyStats(handshakes_in=0, handshakes_out=9, connections_in=0, connections_out=4)


def test_the_load_targets_only_addresses_the_run_created() -> None:
    _, net = chain()
    targets = plan("sidecar").targets
    assert own_targets(targets, net) == targets
    with pytest.raises(TestbedError) as err:
        own_targets([*targets, "http://192.0.2.1:8080/"], net)
    assert str(err.value) == (
        "refusing to send traffic to http://192.0.2.1:8080/: 192.0.2.1 is not an address "
        "this run created"
    )


def test_no_process_the_testbed_starts_sees_a_proxy_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTPS_PROXY", "ALL_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("MESHSIM_KEPT", "1")
    env = env_without_proxies({"MESHSIM_LOAD_CONFIG": "x"})
    assert not PROXY_VARIABLES & set(env)
    assert (env["MESHSIM_KEPT"], env["MESHSIM_LOAD_CONFIG"]) == ("1", "x")
    assert "HTTPS_PROXY" in PROXY_VARIABLES and "https_proxy" in PROXY_VARIABLES


def test_the_http_probe_goes_to_its_address_whatever_the_environment(tmp_path: Path) -> None:
    """A proxy in the environment (a closed port on loopback here) is not followed: the
    probe reaches the loopback server it is given."""
    import http.server
    import sys
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        env = {**os.environ, "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}
        done = subprocess.run(
            [sys.executable, "-m", "meshsim.testbed.probes", "http", url, "10"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert (done.returncode, done.stdout.strip()) == (0, "200"), done.stderr
