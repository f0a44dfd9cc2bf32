"""`meshsim measure --backend kind`: stand the scenario up on kind with Istio, load it
with the testbed's Locust file in-cluster, read the kubelet's resource metrics, and
return the same measured RunResult as the local testbed.

Only cluster setup and metrics collection are kind's own; the app, the Locust file and
its configuration (`meshsim.loadgen`), the latency window and the ModeResult assembly
(`meshsim.accounting.mode_result`) are shared. Every step is a `Command`, so the plan
that `--dry-run` prints is the list this module runs; what is only known at run time
(the load pod's name, pod addresses) is a shell variable set by an earlier command.
"""

from __future__ import annotations

import json
import math
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from meshsim import __version__
from meshsim.accounting import mode_result
from meshsim.kind.cluster import (
    CLUSTER_PREFIX,
    IMAGE,
    ROLLOUT_TIMEOUT,
    Cluster,
    cluster_setup,
    cluster_teardown,
    missing_workers,
)
from meshsim.kind.commands import (
    Background,
    Clock,
    Command,
    KindError,
    Runner,
    SubprocessRunner,
    SystemClock,
)
from meshsim.kind.inventory import find_targets
from meshsim.kind.manifests import (
    APP_CONTAINER,
    LATENCIES,
    LOAD_CONFIG,
    LOADGEN_CONTAINER,
    LOCUSTFILE,
    POD_LABEL,
    STARTED,
    mode_manifests,
    namespaces,
    to_yaml,
    waypoints,
)
from meshsim.kind.metrics import ContainerKey, Point, Target, resource_points, usage_over_window
from meshsim.kind.tools import preflight, preflight_commands, tool_versions
from meshsim.loadgen import STUCK_MARGIN_S, locust_argv, window_latencies
from meshsim.profile import Profile
from meshsim.results import ComponentUsage, MeasuredLink, MeasuredNetwork, ModeResult, RunResult
from meshsim.scenario import Mode, Scenario
from meshsim.signals import deferred, sigterm_unwinds
from meshsim.testbed.dataplane import APP_PORT, load_users
from meshsim.testbed.names import new_run_id
from meshsim.topology import CLIENT, Pod, Topology, build_topology, resolve_nodes

__all__ = ["ENGINE", "KindRun", "cleanup_kind", "kind_plan", "measure_kind", "shared_cluster"]

ENGINE = "testbed-kind"
SCRAPE_EVERY_S = 2.0
STARTED_TIMEOUT_S = 120
PROBE_TIMEOUT_S = 60
PROBES = ("python", "-m", "meshsim.testbed.probes")  # the testbed's probes, in the image
ECHO_PORT = 15999  # UDP: neither sidecars nor ztunnel capture it, so it times the pod network
ECHO_SECONDS = 30
RTT_PROBES = 200
# The kubelet refreshes container stats every 10-15 s and CPU needs two refreshes inside
# the window: shorter windows may leave a component without a figure.
MIN_WINDOW_S = 30.0
# Under two of its fastest refreshes, two inside the window are a coin toss at best: such a
# run is refused before a cluster is made (it would end without CPU figures after setup).
SHORTEST_WINDOW_S = 20.0
# kind runs every node as a container (a kubelet and its system pods: about 0.5 GiB) and
# every pod as a Python process (tens of MiB) on one machine: past this it is a laptop
# that is measured, not the scenario, so larger scenarios are refused up front.
MAX_NODES = 16
MAX_PODS = 400
LOADGEN_POD = "LOADGEN_POD"  # shell variables the plan sets and later commands use
_CLUSTER_NAME = re.compile(rf"^{CLUSTER_PREFIX}[0-9a-f]{{8}}$")
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class _Link:
    kind: str  # "same_node" or "cross_node"
    pod: Pod  # the app pod the load generator's pod probes
    variable: str  # the shell variable holding its address


@dataclass
class KindRun:
    """One kind run: the scenario, its topology and the cluster it runs on."""

    scenario: Scenario
    profile: Profile
    modes: list[Mode]
    seed: int
    cluster: Cluster
    run_id: str
    topology: Topology = field(init=False)

    def __post_init__(self) -> None:
        nodes, name = len(self.cluster.nodes), self.scenario.name
        if nodes > MAX_NODES:
            raise KindError(
                f"scenario {name} has {nodes} nodes; the kind backend runs each as a container "
                f"on this machine and takes at most {MAX_NODES}: simulate it with `meshsim run`, "
                "and calibrate on a smaller scenario"
            )
        self.topology = build_topology(self.scenario)
        pods = len(self.topology.pods)
        if pods > MAX_PODS:
            raise KindError(
                f"scenario {name} has {pods} pods (with the load generator's); the kind "
                f"backend runs each on this machine and takes at most {MAX_PODS}"
            )

    @classmethod
    def new(
        cls,
        scenario: Scenario,
        profile: Profile,
        *,
        modes: Sequence[Mode] | None = None,
        seed: int | None = None,
        cluster: str | None = None,
        run_id: str | None = None,
    ) -> KindRun:
        rid = run_id or new_run_id()
        name = cluster or f"{CLUSTER_PREFIX}{rid}"
        run = cls(
            scenario,
            profile,
            list(modes) if modes else list(scenario.mesh.modes),
            scenario.seed if seed is None else seed,
            Cluster(name, resolve_nodes(scenario), created=cluster is None),
            rid,
        )
        window = scenario.traffic.duration_s - scenario.traffic.warmup_s
        if window < SHORTEST_WINDOW_S:
            raise KindError(
                f"the measurement window (duration_s - warmup_s) is {window:g} s: CPU needs two "
                "kubelet refreshes inside it, one every 10-15 s, so the run would most likely "
                f"end without CPU figures after the cluster is set up; give it "
                f"{MIN_WINDOW_S:g} s or more"
            )
        return run

    # ---- the commands of each step ----------------------------------------------------

    def setup(self) -> list[Command]:
        return cluster_setup(self.cluster)

    def teardown(self) -> list[Command]:
        return cluster_teardown(self.cluster) if self.cluster.created else []

    def mode_up(self, mode: Mode, *, measure_links: bool = False) -> list[Command]:
        """Apply the mode's objects, wait until every pod and waypoint is ready, send one
        request through the mesh, (once per run) time the links, list the pods."""
        kubectl = self.cluster.kubectl
        manifests = mode_manifests(
            self.scenario, self.profile, self.topology, self.cluster, mode,
            seed=self.seed, run_id=self.run_id, image=IMAGE,
        )  # fmt: skip
        out = [kubectl("apply", "-f", "-", stdin=to_yaml(manifests), why=f"{mode}: workloads")]
        timeout = f"--timeout={ROLLOUT_TIMEOUT}"
        for ns in namespaces(self.scenario):
            wait = f"-n {ns} wait --for=condition=Available deployment --all {timeout}"
            out.append(kubectl(*wait.split()))
        if mode == "ambient-waypoint":
            for wp in waypoints(self.scenario, self.profile, self.topology):
                ns = wp.namespace
                out += [
                    kubectl(*f"-n {ns} wait --for=condition=Programmed gateway/{wp.name}".split(),
                            timeout),
                    kubectl(*f"-n {ns} rollout status deployment/{wp.name} {timeout}".split()),
                ]  # fmt: skip
        out.append(self._pod_field(self.topology.client, "metadata.name", LOADGEN_POD))
        probe = (*PROBES, "http", self.entry_url(), str(PROBE_TIMEOUT_S))
        out.append(
            self._in_loadgen(*probe, why="one request through the mesh answers 200", tag="probe")
        )
        if measure_links:
            for link in self.links():
                out += self.link_probe(link)
        inventory = kubectl(
            "get", "pods", "--all-namespaces", "-o", "json",
            why="find every modelled pod and proxy; check node and mesh enrollment",
        )  # fmt: skip
        out.append(replace(inventory, tag="inventory"))
        return out

    def links(self) -> list[_Link]:
        """The links to time: from the load generator's pod to the first app pod on its
        node, and to the first app pod on another node (each if there is one)."""
        client = self.topology.client
        apps = [p for p in self.topology.pods if p.workload != CLIENT]
        same = [p for p in apps if p.node == client.node][:1]
        other = [p for p in apps if p.node != client.node][:1]
        return [_Link("same_node", p, "SAME_NODE_IP") for p in same] + [
            _Link("cross_node", p, "CROSS_NODE_IP") for p in other
        ]

    def link_probe(self, link: _Link) -> list[Command]:
        """UDP echo in the app pod, round trips timed from the load generator's pod (the
        testbed's own probes, as on the local testbed)."""
        pod = link.pod
        kubectl = self.cluster.kubectl
        echo = (*PROBES, "echo", "0.0.0.0", str(ECHO_PORT), str(ECHO_SECONDS))
        rtt = (*PROBES, "rtt", f"${link.variable}", str(ECHO_PORT), str(RTT_PROBES))
        return [
            self._pod_field(pod, "status.podIP", link.variable),
            replace(
                kubectl("-n", pod.namespace, "exec", f"deploy/{pod.name}", "-c", APP_CONTAINER,
                        "--", *echo, why=f"{link.kind} link: a UDP echo in {pod.name}"),
                background=True,
            ),
            self._in_loadgen(*rtt, why=f"{link.kind} link: {RTT_PROBES} round trips timed from "
                             "the load generator", tag=f"rtt:{link.kind}:{pod.name}"),
        ]  # fmt: skip

    def _pod_field(self, pod: Pod, path: str, variable: str) -> Command:
        """A field of a running pod of the topology, kept in a shell variable."""
        command = self.cluster.kubectl(
            "-n", pod.namespace, "get", "pods", "-l", f"{POD_LABEL}={pod.name}",
            "--field-selector=status.phase=Running", "-o", f"jsonpath={{.items[0].{path}}}",
            why=f"{path} of {pod.namespace}/{pod.name}",
        )  # fmt: skip
        return replace(command, sets=variable)

    def mode_down(self, mode: Mode) -> list[Command]:
        delete = ["delete", "namespace", *namespaces(self.scenario), "--wait=true"]
        return [
            self.cluster.kubectl(
                *delete, f"--timeout={ROLLOUT_TIMEOUT}", why=f"{mode}: remove its namespaces"
            )
        ]

    def entry_url(self) -> str:
        entry = self.scenario.traffic.entry
        return f"http://{entry}.{self.topology.namespaces[entry]}.svc.cluster.local:{APP_PORT}/"

    def _in_loadgen(self, *argv: str, why: str = "", tag: str = "") -> Command:
        ns = self.topology.client.namespace
        pod = f"${LOADGEN_POD}"
        command = self.cluster.kubectl(
            "-n", ns, "exec", pod, "-c", LOADGEN_CONTAINER, "--", *argv, why=why
        )  # fmt: skip
        return replace(command, tag=tag)

    def load(self) -> list[Command]:
        """Locust in the background, then the instant it started."""
        traffic = self.scenario.traffic
        argv = locust_argv("python", LOCUSTFILE, load_users(self.scenario), traffic.duration_s)
        locust = self._in_loadgen("env", f"MESHSIM_LOAD_CONFIG={LOAD_CONFIG}", *argv)
        script = f"until [ -s {STARTED} ]; do sleep 0.2; done; cat {STARTED}"
        return [
            replace(locust, why="Locust in the meshed load namespace", background=True),
            self._in_loadgen(
                "timeout", str(STARTED_TIMEOUT_S), "sh", "-c", script,
                why="the epoch second Locust started: the window is warm-up to duration after it",
            ),
        ]  # fmt: skip

    def scrape(self, node_index: int) -> Command:
        host = self.cluster.hostname(node_index)
        return self.cluster.kubectl(
            "get", "--raw", f"/api/v1/nodes/{host}/proxy/metrics/resource",
            why=f"kubelet resource metrics of {host}, every {SCRAPE_EVERY_S:g} s of the window",
        )  # fmt: skip

    def copy_latencies(self, local: Path) -> Command:
        ns = self.topology.client.namespace
        return self.cluster.kubectl(
            "cp", f"{ns}/${LOADGEN_POD}:{LATENCIES}", str(local), "-c", LOADGEN_CONTAINER,
            why="Locust's raw per-request latencies",
        )  # fmt: skip

    def nodes_in_use(self) -> list[int]:
        return self.topology.nodes_in_use()

    def window_warning(self) -> str | None:
        traffic = self.scenario.traffic
        window = traffic.duration_s - traffic.warmup_s
        if window >= MIN_WINDOW_S:
            return None
        return (
            f"warning: the measurement window (duration_s - warmup_s) is {window:g} s; the "
            "kubelet refreshes CPU counters every 10-15 s and two refreshes must fall inside "
            f"it, or the run ends without CPU figures: {MIN_WINDOW_S:g} s or more is safe"
        )


# ---- dry run ---------------------------------------------------------------------------


def kind_plan(run: KindRun, *, keep: bool = False) -> str:
    """Every command and manifest of the run, in order, as a shell-like script."""
    where = "created by this run" if run.cluster.created else "given"
    lines = [
        f"# meshsim measure --backend kind: scenario {run.scenario.name}, "
        f"modes {', '.join(run.modes)}, seed {run.seed}",
        f"# cluster {run.cluster.name} ({where}, {len(run.cluster.nodes)} workers), image {IMAGE}",
    ]
    warning = run.window_warning()
    if warning:
        lines.append(f"# {warning}")

    def emit(step: int, title: str, commands: list[Command]) -> None:
        lines.extend(["", f"# {step}. {title}"])
        for command in commands:
            if command.why:
                lines.append(f"# {command.why}")
            lines.append(command.shell())

    emit(1, "preflight: tools and versions", preflight_commands())
    emit(2, "cluster, image and Istio", run.setup())
    step = 2
    for i, mode in enumerate(run.modes):
        emit(
            step + 1, f"mode {mode}: workloads up, checked", run.mode_up(mode, measure_links=i == 0)
        )
        load = run.load() + [run.scrape(n) for n in run.nodes_in_use()]
        load.append(run.copy_latencies(Path(f"latencies-{mode}.npy")))
        emit(step + 2, f"mode {mode}: load and measure", load)
        emit(step + 3, f"mode {mode}: down", run.mode_down(mode))
        step += 3
    if run.teardown() and not keep:
        emit(step + 1, "teardown", run.teardown())
    return "\n".join(lines) + "\n"


# ---- the measured run ------------------------------------------------------------------


def _mode_result(
    run: KindRun,
    mode: Mode,
    targets: list[Target],
    scrapes: list[dict[ContainerKey, Point]],
    records: np.ndarray,
    t0: float,
    t1: float,
) -> ModeResult:
    usage = usage_over_window(targets, scrapes, t0, t1)
    usages = [
        ComponentUsage(
            name=t.name,
            kind=t.kind,
            node=t.node,
            cpu_cores=usage[t.name][0],
            memory_mib=usage[t.name][1],
            handshakes=0,  # not read on kind (see below)
            connections_open=math.nan,
        )
        for t in targets
    ]
    window_s = t1 - t0
    latencies_s, failed = window_latencies(records, t0, window_s)
    proxies = run.topology.proxies(mode, run.scenario, run.profile)
    result = mode_result(
        run.scenario, proxies, usages, latencies_s=latencies_s, unfinished=failed,
        window_s=window_s, tls_handshakes=0, connection_seconds=math.nan,
    )  # fmt: skip
    # The kubelet knows CPU and memory, not TLS handshakes: they are not measured here.
    return result.model_copy(update={"handshakes_per_s": math.nan})


def _network(run: KindRun, links: list[MeasuredLink]) -> MeasuredNetwork:
    """One-way delays as a scenario gives them: half the measured round trips; a link
    kind not measured keeps the scenario's value. kind has one fabric: a link across
    zones is as long as any other across nodes."""
    rtt = {link.kind: link.rtt_ms for link in links}
    net = run.scenario.cluster.network
    same = rtt["same_node"] / 2 if "same_node" in rtt else net.same_node_ms
    cross = rtt["cross_node"] / 2 if "cross_node" in rtt else net.cross_node_ms
    return MeasuredNetwork(same_node_ms=same, cross_node_ms=cross, cross_zone_ms=cross, links=links)


class _Session:
    def __init__(self, run: KindRun, runner: Runner, clock: Clock, say: Say):
        self.run, self.runner, self.clock, self.say = run, runner, clock, say
        self.values: dict[str, str] = {}  # shell variables set so far
        self.links: list[MeasuredLink] = []
        self.network: MeasuredNetwork | None = None

    def fill(self, command: Command) -> Command:
        for name, value in self.values.items():
            command = command.with_value(f"${name}", value)
        return command

    def execute(self, command: Command) -> str:
        command = self.fill(command)
        out = self.runner.run(command)
        if command.sets:
            value = out.strip()
            if not value:
                raise KindError(f"`{command.shell()}` printed nothing: {command.why}")
            self.values[command.sets] = value
        return out

    def do_all(self, commands: list[Command]) -> None:
        for command in commands:
            self.execute(command)

    def best_effort(self, commands: list[Command]) -> None:
        """Tear down after a failure: say what could not be removed, keep the first error."""
        for command in commands:
            try:
                self.execute(command)
            except KindError as err:
                self.say(f"teardown: {err}")

    def start(self, command: Command) -> Background:
        return self.runner.start(self.fill(command))

    def setup(self) -> None:
        for command in self.run.setup():
            out = self.execute(command)
            if command.argv[-3:] == ("nodes", "-o", "name"):
                missing = missing_workers(self.run.cluster, out)
                if missing:
                    raise KindError(
                        f"cluster {self.run.cluster.name} lacks a worker for scenario node(s) "
                        f"{', '.join(missing)}; give a cluster with one worker per node, or "
                        "no --cluster"
                    )

    def mode(self, mode: Mode, workdir: Path) -> ModeResult:
        run = self.run
        targets: list[Target] = []
        echoes: list[Background] = []
        try:
            for command in run.mode_up(mode, measure_links=self.network is None):
                if command.background:
                    echoes.append(self.start(command))
                    continue
                out = self.execute(command)
                if command.tag == "probe" and out.strip() != "200":
                    raise KindError(
                        f"{mode}: no answer through the mesh from {run.entry_url()}: {out.strip()}"
                    )
                if command.tag.startswith("rtt:"):
                    self.links.append(_link(command.tag, out, run))
                if command.tag == "inventory":
                    proxies = run.topology.proxies(mode, run.scenario, run.profile)
                    wps = waypoints(run.scenario, run.profile, run.topology)
                    targets = find_targets(out, run.topology, proxies, wps, run.cluster, mode)
        finally:
            for echo in echoes:
                echo.wait(ECHO_SECONDS + 5)
        if self.network is None:
            self.network = _network(run, self.links)
            for link in self.links:
                self.say(
                    f"link {link.kind} {link.src} -> {link.dst}: RTT {link.rtt_ms * 1000:.0f} us"
                )
        return self.load(mode, targets, workdir)

    def load(self, mode: Mode, targets: list[Target], workdir: Path) -> ModeResult:
        run, clock = self.run, self.clock
        traffic = run.scenario.traffic
        start_locust, wait_started = run.load()
        locust = self.start(start_locust)
        try:
            started = float(self.execute(wait_started).strip())
            t0, t1 = started + traffic.warmup_s, started + traffic.duration_s
            self.say(f"{mode}: load running for {traffic.duration_s:g} s")
            scrapes = []
            clock.sleep(t0 - clock.now())
            while True:
                self._alive(locust, mode)
                scrapes.append(self.scrape())
                if clock.now() >= t1:
                    break
                clock.sleep(min(SCRAPE_EVERY_S, t1 - clock.now()))
            code = locust.wait(traffic.duration_s + STUCK_MARGIN_S)
            if code != 0:
                raise KindError(f"{mode}: Locust exited with code {code}:\n{locust.output_tail()}")
        finally:
            locust.kill()
        local = workdir / f"latencies-{mode}.npy"
        self.execute(run.copy_latencies(local))
        return _mode_result(run, mode, targets, scrapes, np.load(local), t0, t1)

    def _alive(self, locust: Background, mode: Mode) -> None:
        code = locust.poll()
        if code is not None:
            raise KindError(f"{mode}: Locust stopped early (code {code}):\n{locust.output_tail()}")

    def scrape(self) -> dict[ContainerKey, Point]:
        merged: dict[ContainerKey, Point] = {}
        for node in self.run.nodes_in_use():
            at = self.clock.now()
            merged.update(resource_points(self.execute(self.run.scrape(node)), at))
        return merged


def _link(tag: str, output: str, run: KindRun) -> MeasuredLink:
    """A MeasuredLink from the rtt probe's JSON list of round trips (microseconds)."""
    _, kind, dst = tag.split(":")
    samples_ms = np.asarray(json.loads(output), dtype=float) / 1000.0
    if len(samples_ms) == 0:
        raise KindError(f"{kind} link to {dst}: no UDP echo came back")
    return MeasuredLink(
        kind=kind,
        src=run.topology.client.name,
        dst=dst,
        rtt_ms=float(np.median(samples_ms)),
        rtt_p90_ms=float(np.percentile(samples_ms, 90)),
        probes=len(samples_ms),
    )


def measure_kind(
    scenario: Scenario,
    profile: Profile,
    *,
    modes: Sequence[Mode] | None = None,
    seed: int | None = None,
    say: Say = _quiet,
    cluster: str | None = None,
    keep: bool = False,
    runner: Runner | None = None,
    clock: Clock | None = None,
    which: Callable[[str], str | None] = shutil.which,
    run_id: str | None = None,
    setup: bool = True,
) -> RunResult:
    """Measure each mode of a scenario on a kind cluster running Istio (the same call shape
    as `measure_local`, so calibration can call either per grid point).

    `cluster` names a cluster to use (it is left in place); `setup=False` skips building
    and loading the image and installing Istio, for a cluster `shared_cluster` prepared."""
    run = KindRun.new(scenario, profile, modes=modes, seed=seed, cluster=cluster, run_id=run_id)
    runner = runner if runner is not None else SubprocessRunner(say)
    session = _Session(run, runner, clock if clock is not None else SystemClock(), say)
    if setup:
        preflight(runner, which)
    workdir = Path(tempfile.mkdtemp(prefix=f"meshsim-kind-{run.run_id}-"))
    say(f"kind run {run.run_id}: cluster {run.cluster.name}")
    warning = run.window_warning()
    if warning:
        say(warning)
    try:
        with sigterm_unwinds():
            results = _measure_modes(run, session, workdir, setup=setup)
    except BaseException:
        if not keep:
            with deferred():  # a second Ctrl-C comes once the cluster is gone
                session.best_effort(run.teardown())
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not keep:
        with deferred():
            session.do_all(run.teardown())
    return RunResult(
        meshsim_version=__version__,
        kind="measured",
        scenario=scenario.name,
        engine=ENGINE,
        seed=run.seed,
        profile=profile.name,
        modes=results,
        network=session.network,
    )


def _measure_modes(
    run: KindRun, session: _Session, workdir: Path, *, setup: bool
) -> dict[str, ModeResult]:
    """Set the cluster up (unless it is), then each mode in turn: up, load, down."""
    results: dict[str, ModeResult] = {}
    say = session.say
    if setup:
        session.setup()
    for mode in run.modes:
        try:
            results[mode] = session.mode(mode, workdir)
        except BaseException:
            session.best_effort(run.mode_down(mode))
            raise
        session.do_all(run.mode_down(mode))
        r = results[mode]
        p50 = r.latency_ms.p50
        say(f"{mode}: {r.requests} requests, {r.throughput_rps:.1f} rps, p50 {p50:.3f} ms")
    return results


@contextmanager
def shared_cluster(
    scenarios: Sequence[Scenario],
    *,
    say: Say = _quiet,
    keep: bool = False,
    runner: Runner | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> Iterator[str]:
    """One cluster for many runs (a calibration grid): as many workers as the largest
    scenario has nodes, the image loaded and Istio installed once; yields its name, to
    pass to `measure_kind(..., cluster=NAME, setup=False)`; deleted at the end."""
    runner = runner if runner is not None else SubprocessRunner(say)
    largest = max(scenarios, key=lambda s: len(resolve_nodes(s)))
    name = f"{CLUSTER_PREFIX}{new_run_id()}"
    cluster = Cluster(name, resolve_nodes(largest), created=True)
    if len(cluster.nodes) > MAX_NODES:
        raise KindError(
            f"scenario {largest.name} has {len(cluster.nodes)} nodes; the kind backend takes "
            f"at most {MAX_NODES}"
        )
    preflight(runner, which)
    try:
        for command in cluster_setup(cluster):
            runner.run(command)
        yield cluster.name
    finally:
        if not keep:
            with deferred():  # a Ctrl-C while the cluster goes comes once it is gone
                for command in cluster_teardown(cluster):
                    runner.run(command)


def kind_software(
    runner: Runner | None = None, which: Callable[[str], str | None] = shutil.which
) -> dict[str, str]:
    """What measured a kind calibration's dataset: meshsim, Python and the four tools
    (Istio's version is istioctl's)."""
    runner = runner if runner is not None else SubprocessRunner(_quiet)
    return {
        "meshsim": __version__,
        "python": platform.python_version(),
        **tool_versions(runner, which),
    }


def kind_clusters(runner: Runner | None = None, say: Say = _quiet) -> list[str]:
    """The kind clusters meshsim runs created (named meshsim-<run id>)."""
    runner = runner if runner is not None else SubprocessRunner(say)
    clusters = runner.run(Command(("kind", "get", "clusters"))).split()
    return [name for name in clusters if _CLUSTER_NAME.match(name)]


def cleanup_kind(
    runner: Runner | None = None, say: Say = _quiet, run_ids: Sequence[str] | None = None
) -> list[str]:
    """Delete the kind clusters of these meshsim runs (None: of every meshsim run, kept or
    still running ones too); returns the names deleted."""
    runner = runner if runner is not None else SubprocessRunner(say)
    ours = kind_clusters(runner, say)
    if run_ids is not None:
        ours = [name for name in ours if name.removeprefix(CLUSTER_PREFIX) in run_ids]
    for name in ours:
        runner.run(Command(("kind", "delete", "cluster", "--name", name)))
        say(f"deleted kind cluster {name}")
    return ours
