"""The kind measure flow against a fake cluster: the exact command sequence of each mode,
the measured RunResult (same code as the local testbed for Locust's records and the
ModeResult), teardown on failure, and a dry-run plan that is the list that runs."""

from __future__ import annotations

import json
import math
import re
import shlex
from typing import Any

import numpy as np
import pytest
import yaml

from meshsim.accounting import mode_result
from meshsim.kind import KindError, KindRun, cleanup_kind, kind_plan, measure_kind, shared_cluster
from meshsim.kind.cluster import GATEWAY_API_CRDS, IMAGE, REPO_ROOT
from meshsim.kind.commands import Command, FakeClock, FakeRunner
from meshsim.loader import load_profile
from meshsim.loadgen import window_latencies
from meshsim.results import RunResult
from meshsim.scenario import MODES, Mode, Scenario
from tests.builders import ISTIO, base_scenario, scenario_of

RUN_ID = "0badcafe"
POD = "meshsim.io/pod"
CLUSTER = f"meshsim-{RUN_ID}"
CTX = ["kubectl", "--context", f"kind-{CLUSTER}"]
VERSIONS = {
    "docker": "27.3.1",
    "kind": "kind v0.24.0 go1.22.6 linux/amd64",
    "kubectl": "Client Version: v1.31.1",
    "istioctl": "client version: 1.24.2",
}
# what each kind of container burns (cores) and holds (MiB) in the fake cluster
RATES = {"app": 0.10, "loadgen": 0.30, "istio-proxy": 0.04, "ztunnel": 0.02, "waypoint": 0.08}
MEMORY = {"app": 60.0, "loadgen": 100.0, "istio-proxy": 50.0, "ztunnel": 20.0, "waypoint": 45.0}
MIB = 2**20
REFRESH_S = 10.0  # the kubelet's stats refresh
RPS = 50


def scenario() -> Scenario:
    doc = base_scenario(
        name="shop",
        cluster={
            "nodes": 2,
            "cores_per_node": 4,
            "memory_gib_per_node": 8,
            "network": {"same_node_ms": 0, "cross_node_ms": 0, "cross_zone_ms": 0},
        },
        workloads=[
            {
                "name": "web",
                "namespace": "front",
                "placement": {"nodes": ["node-1"]},
                "calls": [{"to": "api"}],
            },
            {"name": "api", "namespace": "back", "replicas": 2},
        ],
        traffic={
            "entry": "web",
            "open_loop": {"rate_rps": RPS},
            "duration_s": 40,
            "warmup_s": 5,
            "client": {"namespace": "load", "node": "node-1"},
        },
        mesh={"modes": list(MODES)},
    )
    return scenario_of(doc)


class FakeCluster:
    """Plays kind, kubectl and istioctl: schedules what is applied where its nodeSelector
    says, enrolls pods as their namespace's labels say, and answers metrics and Locust."""

    def __init__(self, clock: FakeClock, probe: str = "200"):
        self.clock, self.probe = clock, probe
        self.pods: list[dict[str, Any]] = []
        self.started = 0.0
        self.fail_on: str | None = None
        self.cluster = CLUSTER  # the cluster that exists: this one, or the one kind created

    def respond(self, command: Command) -> str:
        argv = list(command.argv)
        line = shlex.join(argv)
        if self.fail_on and self.fail_on in line:
            raise KindError(f"`{line}` failed (exit 1): boom")
        if argv[:3] == ["kind", "create", "cluster"]:
            self.cluster = argv[argv.index("--name") + 1]
        if argv[1:2] == ["version"]:
            return VERSIONS[argv[0]]
        if argv[3:] == ["get", "nodes", "-o", "name"]:
            names = ("control-plane", "worker", "worker2", "worker3")
            return "\n".join(f"node/{self.cluster}-{n}" for n in names)
        if argv[3:6] == ["apply", "-f", "-"]:
            self.schedule(list(yaml.safe_load_all(command.stdin or "")))
        elif argv[3:5] == ["delete", "namespace"]:
            self.pods = []
        elif any(a.startswith("jsonpath=") for a in argv):
            label = argv[argv.index("-l") + 1].split("=")[1]
            found = next(p for p in self.pods if p["metadata"]["labels"].get(POD) == label)
            return str(
                found["status"]["podIP"] if "podIP" in argv[-1] else found["metadata"]["name"]
            )
        elif "rtt" in argv:
            # round trips in microseconds, as the testbed's rtt probe prints them
            same = argv[argv.index("rtt") + 1] == self.ip_of("web-0")
            return json.dumps([40.0, 50.0, 60.0, 70.0] if same else [100.0, 120.0, 140.0, 400.0])
        elif "meshsim.testbed.probes" in argv:
            return self.probe + "\n"
        elif argv[3:] == ["get", "pods", "--all-namespaces", "-o", "json"]:
            return json.dumps({"items": self.pods + self.ztunnels()})
        elif "timeout" in argv:
            self.started = self.clock.now() + 0.25
            return f"{self.started:.6f}\n"
        elif argv[3:5] == ["get", "--raw"]:
            return self.metrics(argv[5].split("/")[4])
        elif argv[3:4] == ["cp"]:
            np.save(argv[5], records(self.started))
        return ""

    def ip_of(self, name: str) -> str:
        return next(
            str(p["status"]["podIP"]) for p in self.pods if p["metadata"]["labels"].get(POD) == name
        )

    def ztunnels(self) -> list[dict[str, Any]]:
        hosts = [f"{self.cluster}-{n}" for n in ("control-plane", "worker", "worker2", "worker3")]
        return [
            pod(
                "istio-system",
                f"ztunnel-{i}",
                host,
                ["istio-proxy"],
                ownerReferences=[{"kind": "DaemonSet", "name": "ztunnel"}],
            )
            for i, host in enumerate(hosts)
        ]

    def schedule(self, objs: list[dict[str, Any]]) -> None:
        namespaces = {
            o["metadata"]["name"]: o["metadata"]["labels"] for o in objs if o["kind"] == "Namespace"
        }
        for o in objs:
            ns = o["metadata"].get("namespace", "")
            labels = namespaces.get(ns, {})
            if o["kind"] == "Deployment":
                template = o["spec"]["template"]
                containers = [c["name"] for c in template["spec"]["containers"]]
                if labels.get("istio-injection") == "enabled":
                    containers.append("istio-proxy")
                meta: dict[str, Any] = {"labels": template["metadata"]["labels"]}
                if labels.get("istio.io/dataplane-mode") == "ambient":
                    meta["annotations"] = {"ambient.istio.io/redirection": "enabled"}
                host = template["spec"]["nodeSelector"]["kubernetes.io/hostname"]
                self.pods.append(
                    pod(ns, f"{o['metadata']['name']}-6d5f7-q2x9z", host, containers, **meta)
                )
            if o["kind"] == "Gateway":
                params = o["spec"]["infrastructure"]["parametersRef"]["name"]
                cm = next(
                    c
                    for c in objs
                    if c["kind"] == "ConfigMap"
                    and c["metadata"]["name"] == params
                    and c["metadata"]["namespace"] == ns
                )
                overlay = yaml.safe_load(cm["data"]["deployment"])
                host = overlay["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"]
                gw = {"gateway.networking.k8s.io/gateway-name": o["metadata"]["name"]}
                self.pods.append(pod(ns, "waypoint-7b9c8-abcde", host, ["istio-proxy"], labels=gw))

    def metrics(self, host: str) -> str:
        refreshed = REFRESH_S * math.floor(self.clock.now() / REFRESH_S)
        lines = ["# TYPE container_cpu_usage_seconds_total counter"]
        for p in self.pods + self.ztunnels():
            if p["spec"]["nodeName"] != host:
                continue
            for c in p["spec"]["containers"]:
                role = container_role(p, c["name"])
                meta = p["metadata"]
                labels = (
                    f'container="{c["name"]}",namespace="{meta["namespace"]}",pod="{meta["name"]}"'
                )
                cpu = RATES[role] * (refreshed - 1_699_000_000)
                stamp = int(refreshed * 1000)
                lines.append(f"container_cpu_usage_seconds_total{{{labels}}} {cpu:.9f} {stamp}")
                lines.append(
                    f"container_memory_working_set_bytes{{{labels}}} {MEMORY[role] * MIB:e} {stamp}"
                )
        lines.append("resource_scrape_error 0")
        return "\n".join(lines) + "\n"


def container_role(p: dict[str, Any], container: str) -> str:
    if p["metadata"]["namespace"] == "istio-system":
        return "ztunnel"
    if "gateway.networking.k8s.io/gateway-name" in p["metadata"].get("labels", {}):
        return "waypoint"
    return container


def ip_for(pod_name: str) -> str:
    """The fake cluster's pod addresses: stable, one per name."""
    return f"10.244.0.{sum(pod_name.encode()) % 250}"


def pod(ns: str, name: str, host: str, containers: list[str], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name, "labels": {}, **meta},
        "spec": {"nodeName": host, "containers": [{"name": c} for c in containers]},
        "status": {"phase": "Running", "podIP": ip_for(name)},
    }


def records(started: float) -> np.ndarray:
    """What the locustfile writes: (start epoch s, latency ms, ok) per request, 50 rps for
    the run's 40 s; latency grows 0.1 ms a second; one request in 100 fails."""
    n = 40 * RPS
    starts = started + np.arange(n) / RPS
    latency_ms = 2.0 + 0.1 * (starts - started)
    ok = (np.arange(n) % 100 != 0).astype(float)
    return np.column_stack([starts, latency_ms, ok])


def measure(modes: list[Mode], **kwargs: Any) -> tuple[RunResult, FakeRunner, FakeCluster]:
    clock = FakeClock(1_700_000_003.0)
    fake = FakeCluster(clock, **{k: kwargs.pop(k) for k in ("probe",) if k in kwargs})
    fail_on = kwargs.pop("fail_on", None)
    fake.fail_on = fail_on
    runner = FakeRunner(fake.respond)
    result = measure_kind(
        scenario(),
        load_profile(ISTIO),
        modes=modes,
        runner=runner,
        clock=clock,
        which=lambda tool: f"/usr/bin/{tool}",
        run_id=RUN_ID,
        **kwargs,
    )
    return result, runner, fake


def k(*args: str) -> str:
    return shlex.join([*CTX, *args])


def expected_commands(mode: Mode, pod_name: str = "loadgen-0-6d5f7-q2x9z") -> list[str]:
    """The whole run of one mode, command by command, as a user would type them."""
    t = "--timeout=300s"
    setup = [
        "docker version --format '{{.Server.Version}}'",
        "kind version",
        "kubectl version --client",
        "istioctl version --remote=false",
        f"docker build -t {IMAGE} -f {REPO_ROOT / 'Dockerfile'} {REPO_ROOT}",
        f"kind create cluster --name {CLUSTER} --config - --wait 300s",
        k("get", "nodes", "-o", "name"),
        f"kind load docker-image {IMAGE} --name {CLUSTER}",
        k("apply", "--server-side", "-f", GATEWAY_API_CRDS),
        f"istioctl --context kind-{CLUSTER} install --set profile=ambient --skip-confirmation",
        k(*f"-n istio-system rollout status deployment/istiod {t}".split()),
        k(*f"-n istio-system rollout status daemonset/istio-cni-node {t}".split()),
        k(*f"-n istio-system rollout status daemonset/ztunnel {t}".split()),
    ]
    up = [k("apply", "-f", "-")]
    for ns in ("front", "back", "load"):
        up.append(k(*f"-n {ns} wait --for=condition=Available deployment --all {t}".split()))
    if mode == "ambient-waypoint":
        for ns in ("front", "back"):
            up.append(k(*f"-n {ns} wait --for=condition=Programmed gateway/waypoint {t}".split()))
            up.append(k(*f"-n {ns} rollout status deployment/waypoint {t}".split()))
    exec_ = f"-n load exec {pod_name} -c loadgen --".split()
    running = "--field-selector=status.phase=Running"
    probes = ["python", "-m", "meshsim.testbed.probes"]
    up += [
        k(*["-n", "load", "get", "pods", "-l", "meshsim.io/pod=loadgen-0"], running,
          "-o", "jsonpath={.items[0].metadata.name}"),
        k(*exec_, *probes, "http", "http://web.front.svc.cluster.local:8080/", "60"),
    ]  # fmt: skip
    # the links, timed in the run's first mode: web-0 shares the load pod's node, api-0 not
    for ns, name in (("front", "web-0"), ("back", "api-0")):
        ip = ip_for(f"{name}-6d5f7-q2x9z")
        up += [
            k(*f"-n {ns} get pods -l meshsim.io/pod={name}".split(), running,
              "-o", "jsonpath={.items[0].status.podIP}"),
            k(*f"-n {ns} exec deploy/{name} -c app --".split(), *probes,
              "echo", "0.0.0.0", "15999", "30"),
            k(*exec_, *probes, "rtt", ip, "15999", "200"),
        ]  # fmt: skip
    up.append(k("get", "pods", "--all-namespaces", "-o", "json"))
    locust = (
        "env MESHSIM_LOAD_CONFIG=/etc/meshsim/load.json python -m locust -f "
        "/opt/meshsim/meshsim/testbed/locustfile.py --headless -u 3 -r 30 -t 70s --stop-timeout 5 "
        "--only-summary --loglevel WARNING --exit-code-on-error 0"
    )
    wait = "until [ -s /work/locust.started ]; do sleep 0.2; done; cat /work/locust.started"
    up += [k(*exec_, *locust.split()), k(*exec_, "timeout", "120", "sh", "-c", wait)]
    # the window is 5 s to 40 s after Locust started: scraped at its start, every 2 s, its end
    nodes = (f"{CLUSTER}-worker", f"{CLUSTER}-worker2")
    up += [k("get", "--raw", f"/api/v1/nodes/{n}/proxy/metrics/resource") for n in nodes] * 19
    up.append(k("cp", f"load/{pod_name}:/work/latencies.npy", "LOCAL", "-c", "loadgen"))
    down = [k(*f"delete namespace front back load --wait=true {t}".split())]
    return setup + up + down + [f"kind delete cluster --name {CLUSTER}"]


def recorded(runner: FakeRunner) -> list[str]:
    out = []
    for c in runner.commands:
        argv = list(c.argv)
        if argv[3:4] == ["cp"]:
            argv[5] = "LOCAL"
        out.append(shlex.join(argv))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_runs_exactly_this_command_sequence(mode: Mode) -> None:
    _, runner, _ = measure([mode])
    assert recorded(runner) == expected_commands(mode)
    # in the background: the two links' UDP echoes, then Locust
    started = [shlex.join(c.argv).split(" -- ")[1].split()[:4] for c in runner.started]
    assert started == [
        ["python", "-m", "meshsim.testbed.probes", "echo"],
        ["python", "-m", "meshsim.testbed.probes", "echo"],
        ["env", "MESHSIM_LOAD_CONFIG=/etc/meshsim/load.json", "python", "-m"],
    ]


def test_the_run_is_measured_from_the_kubelet_and_locusts_records() -> None:
    result, _, fake = measure(list(MODES))
    assert result.kind == "measured" and result.engine == "testbed-kind"
    # the links, timed once: one-way delays are half the median round trips (55 us, 130 us)
    net = result.network
    assert net is not None
    assert (net.same_node_ms, net.cross_node_ms, net.cross_zone_ms) == pytest.approx(
        (0.0275, 0.065, 0.065)
    )
    assert [(x.kind, x.src, x.dst, x.probes) for x in net.links] == [
        ("same_node", "loadgen-0", "web-0", 4),
        ("cross_node", "loadgen-0", "api-0", 4),
    ]
    assert net.links[1].rtt_p90_ms == pytest.approx(0.322)
    assert list(result.modes) == list(MODES)
    pods = {"app": 3, "sidecar": 0, "ztunnel": 0, "waypoint": 0}
    expected_proxies = {
        "none": {},
        "sidecar": {"sidecar": 4},  # three app pods and the load generator
        "ambient": {"ztunnel": 2},
        "ambient-waypoint": {"ztunnel": 2, "waypoint": 2},
    }
    rate = {
        "app": RATES["app"],
        "sidecar": RATES["istio-proxy"],
        "ztunnel": RATES["ztunnel"],
        "waypoint": RATES["waypoint"],
    }
    mem = {
        "app": MEMORY["app"],
        "sidecar": MEMORY["istio-proxy"],
        "ztunnel": MEMORY["ztunnel"],
        "waypoint": MEMORY["waypoint"],
    }
    started = fake.started
    for mode, r in result.modes.items():
        counts = pods | expected_proxies[mode]
        assert r.proxies.model_dump() == {k: counts[k] for k in ("sidecar", "ztunnel", "waypoint")}
        for kind in ("app", "sidecar", "ztunnel", "waypoint"):
            assert getattr(r.cpu_cores, kind) == pytest.approx(counts[kind] * rate[kind])
            assert getattr(r.memory_mib, kind) == pytest.approx(counts[kind] * mem[kind])
        loadgen = next(u for u in r.components if u.kind == "loadgen")
        assert loadgen.cpu_cores == pytest.approx(RATES["loadgen"]) and loadgen.node == "node-1"
        assert r.window_s == pytest.approx(35.0)
        # latency and counts: the shared window cut of the locustfile's records
        latencies_s, failed = window_latencies(records(started), started + 5, 35.0)
        assert r.requests == 35 * RPS and r.errors == failed == 17
        assert r.latency_ms.p50 == pytest.approx(float(np.median(latencies_s)) * 1000)
        assert r.throughput_rps == pytest.approx(len(latencies_s) / 35.0)
        assert math.isnan(r.handshakes_per_s) and math.isnan(r.connections_open)
    # and it is the very ModeResult the shared assembly makes of those usages
    r = result.modes["ambient-waypoint"]
    profile, sc = load_profile(ISTIO), scenario()
    from meshsim.topology import build_topology

    again = mode_result(
        sc,
        build_topology(sc).proxies("ambient-waypoint", sc, profile),
        r.components,
        latencies_s=window_latencies(records(started), started + 5, 35.0)[0],
        unfinished=17,
        window_s=35.0,
        tls_handshakes=0,
        connection_seconds=math.nan,
    )
    assert (
        again.model_copy(update={"handshakes_per_s": math.nan}).model_dump_json()
        == r.model_dump_json()
    )


def test_a_given_cluster_is_reused_and_kept() -> None:
    _, runner, _ = measure(["none"], cluster=CLUSTER)
    lines = recorded(runner)
    assert not any(line.startswith(("kind create", "kind delete")) for line in lines)
    assert f"kind load docker-image {IMAGE} --name {CLUSTER}" in lines


def test_a_given_cluster_without_a_worker_per_node_is_refused() -> None:
    with pytest.raises(
        KindError,
        match=r"cluster other lacks a worker for scenario node\(s\) node-1 \(expected worker "
        r"other-worker\), node-2",
    ):
        measure(["none"], cluster="other")


def test_keep_leaves_the_cluster() -> None:
    _, runner, _ = measure(["none"], keep=True)
    assert not any(line.startswith("kind delete") for line in recorded(runner))


def test_a_mode_that_does_not_answer_is_torn_down_and_reported() -> None:
    with pytest.raises(
        KindError,
        match=re.escape(
            "sidecar: no answer through the mesh from http://web.front.svc.cluster.local:8080/: 503"
        ),
    ):
        measure(["sidecar"], probe="503")


def test_a_failed_command_still_removes_namespaces_and_cluster() -> None:
    clock = FakeClock()
    fake = FakeCluster(clock)
    fake.fail_on = "wait --for=condition=Available"
    runner = FakeRunner(fake.respond)
    with pytest.raises(KindError, match="boom"):
        measure_kind(
            scenario(),
            load_profile(ISTIO),
            modes=["ambient"],
            runner=runner,
            clock=clock,
            which=lambda t: t,
            run_id=RUN_ID,
        )
    lines = recorded(runner)
    assert lines[-2:] == [
        k("delete", "namespace", "front", "back", "load", "--wait=true", "--timeout=300s"),
        f"kind delete cluster --name {CLUSTER}",
    ]


def test_cleanup_deletes_only_clusters_meshsim_created() -> None:
    runner = FakeRunner(
        lambda c: (
            "kind\nmeshsim-0badcafe\nmeshsim-dev\nmeshsim-12345678\n" if c.argv[1] == "get" else ""
        )
    )
    assert cleanup_kind(runner) == ["meshsim-0badcafe", "meshsim-12345678"]
    assert runner.argvs()[1:] == [
        ["kind", "delete", "cluster", "--name", "meshsim-0badcafe"],
        ["kind", "delete", "cluster", "--name", "meshsim-12345678"],
    ]


def _plan_commands(plan: str) -> list[str]:
    """The command lines of a printed plan: no comments, no here-document bodies."""
    out, in_heredoc = [], False
    for line in plan.splitlines():
        if in_heredoc:
            in_heredoc = line != "EOF"
            continue
        if not line or line.startswith("#"):
            continue
        in_heredoc = line.endswith("<<'EOF'")
        out.append(line)
    return out


def test_the_dry_run_plan_is_what_runs() -> None:
    """Every command of a real run appears in the plan, in the same order (the scrapes
    once per node, the load pod's name as $LOADGEN_POD), with the same manifests."""
    for mode in MODES:
        _, runner, _ = measure([mode])
        run = KindRun.new(scenario(), load_profile(ISTIO), modes=[mode], run_id=RUN_ID)
        plan = kind_plan(run)
        planned = _plan_commands(plan)
        ran = []
        for c in runner.commands:
            c = c.with_value("loadgen-0-6d5f7-q2x9z", "$LOADGEN_POD")
            c = c.with_value(ip_for("web-0-6d5f7-q2x9z"), "$SAME_NODE_IP")
            c = c.with_value(ip_for("api-0-6d5f7-q2x9z"), "$CROSS_NODE_IP")
            text = re.sub(r"(cp \S+) \S+latencies-", r"\1 latencies-", c.shell())
            if "get --raw" in text and text in ran:
                continue  # a repeated scrape
            ran.append(text)
        assert [r.split("\n")[0] for r in ran] == planned
        for c in runner.commands:
            if c.stdin is not None:
                assert c.stdin.rstrip("\n") in plan
        # a plan runs nothing
        assert "$ " not in plan


def test_dry_run_plan_of_the_microservices_shop_is_complete() -> None:
    from meshsim.loader import load_scenario
    from tests.builders import ROOT

    sc, profile = load_scenario(ROOT / "scenarios" / "microservices.yaml")
    plan = kind_plan(KindRun.new(sc, profile, modes=["ambient-waypoint"], run_id=RUN_ID))
    assert plan.splitlines()[2] == (
        "# warning: the measurement window (duration_s - warmup_s) is 27 s; the kubelet "
        "refreshes CPU counters every 10-15 s and two refreshes must fall inside it, or the "
        "run ends without CPU figures: 30 s or more is safe"
    )
    chain, chain_profile = load_scenario(ROOT / "scenarios" / "testbed-chain.yaml")
    with pytest.raises(
        KindError,
        match=r"the measurement window \(duration_s - warmup_s\) "
        r"is 15 s: CPU needs two kubelet refreshes inside it",
    ):
        KindRun.new(chain, chain_profile, run_id=RUN_ID)
    assert "warning" not in kind_plan(KindRun.new(scenario(), profile, run_id=RUN_ID))
    titles = [line for line in plan.splitlines() if re.match(r"# \d+\. ", line)]
    assert titles == [
        "# 1. preflight: tools and versions",
        "# 2. cluster, image and Istio",
        "# 3. mode ambient-waypoint: workloads up, checked",
        "# 4. mode ambient-waypoint: load and measure",
        "# 5. mode ambient-waypoint: down",
        "# 6. teardown",
    ]
    docs = plan.split(f"{k('apply', '-f', '-')} <<'EOF'\n")[1].split("\nEOF\n")[0]
    kinds = [o["kind"] for o in yaml.safe_load_all(docs)]
    assert kinds.count("Deployment") == 20 and kinds.count("Gateway") == 3
    assert kinds.count("Service") == 11 and kinds.count("Namespace") == 4


def test_a_failing_teardown_does_not_hide_the_error_that_caused_it() -> None:
    clock = FakeClock()
    fake = FakeCluster(clock, probe="503")
    fake.fail_on = "delete namespace"
    said: list[str] = []
    with pytest.raises(KindError, match="no answer through the mesh"):
        measure_kind(
            scenario(), load_profile(ISTIO), modes=["none"], runner=FakeRunner(fake.respond),
            clock=clock, which=lambda t: t, run_id=RUN_ID, say=said.append,
        )  # fmt: skip
    assert any(line.startswith("teardown: `kubectl") and "boom" in line for line in said)


def test_a_shared_cluster_serves_many_runs_and_is_set_up_and_deleted_once() -> None:
    """A calibration grid: the cluster is sized for its largest scenario, prepared once,
    each point measured on it without setting it up again, and deleted at the end."""
    small = scenario()
    large = scenario_of(base_scenario(cluster={
        "nodes": 3, "cores_per_node": 4, "memory_gib_per_node": 8,
        "network": {"same_node_ms": 0, "cross_node_ms": 0, "cross_zone_ms": 0}}))  # fmt: skip
    clock = FakeClock(1_700_000_003.0)
    fake = FakeCluster(clock)
    runner = FakeRunner(fake.respond)
    with shared_cluster([small, large], runner=runner, which=lambda t: t) as name:
        created = [c for c in runner.commands if c.argv[:3] == ("kind", "create", "cluster")]
        assert len(created) == 1 and created[0].stdin is not None
        assert created[0].stdin.count("role: worker") == 3
        before = len(runner.commands)
        result = measure_kind(
            small, load_profile(ISTIO), modes=["ambient"], runner=runner, clock=clock,
            cluster=name, setup=False, run_id=RUN_ID,
        )  # fmt: skip
        assert result.modes["ambient"].requests == 35 * RPS
        ran = [shlex.join(c.argv) for c in runner.commands[before:]]
        assert not any(line.startswith(("docker", "kind", "istioctl")) for line in ran)
        assert ran[0] == shlex.join(["kubectl", "--context", f"kind-{name}", "apply", "-f", "-"])
    assert shlex.join(runner.commands[-1].argv) == f"kind delete cluster --name {name}"


def test_cleanup_of_chosen_runs_deletes_only_their_clusters() -> None:
    """--run picks clusters; a cluster in use (a run going on, one kept with --keep) is not
    deleted unless asked for."""
    runner = FakeRunner(
        lambda c: "meshsim-0badcafe\nmeshsim-12345678\n" if c.argv[1] == "get" else ""
    )
    assert cleanup_kind(runner, run_ids=["12345678", "deadbeef"]) == ["meshsim-12345678"]
    assert runner.argvs()[1:] == [["kind", "delete", "cluster", "--name", "meshsim-12345678"]]
