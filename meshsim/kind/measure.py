"""`meshsim measure --backend kind`: stand the scenario up on kind with Istio, load it
with the testbed's Locust file in-cluster, read the kubelet's resource metrics, and
return the same measured RunResult as the local testbed.

Only cluster setup and metrics collection are kind's own; the app, the Locust file and
its configuration (`meshsim.loadgen`), the latency window and the ModeResult assembly
(`meshsim.accounting.mode_result`) are shared. Every step is a `Command`, so the plan
that `--dry-run` prints is the list this module runs.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from meshsim.kind.tools import preflight, preflight_commands
from meshsim.loadgen import STUCK_MARGIN_S, locust_argv, window_latencies
from meshsim.profile import Profile
from meshsim.results import ComponentUsage, ModeResult, RunResult
from meshsim.scenario import Mode, Scenario
from meshsim.testbed.dataplane import APP_PORT, load_users
from meshsim.testbed.names import new_run_id
from meshsim.topology import Topology, build_topology, resolve_nodes

__all__ = ["ENGINE", "KindRun", "cleanup_kind", "kind_plan", "measure_kind"]

ENGINE = "testbed-kind"
SCRAPE_EVERY_S = 2.0
STARTED_TIMEOUT_S = 120
PROBE_TIMEOUT_S = 60
LOADGEN_POD = "$LOADGEN_POD"  # the load pod's name, looked up once the mode is up
_CLUSTER_NAME = re.compile(rf"^{CLUSTER_PREFIX}[0-9a-f]{{8}}$")
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


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
        self.topology = build_topology(self.scenario)

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
        return cls(
            scenario,
            profile,
            list(modes) if modes else list(scenario.mesh.modes),
            scenario.seed if seed is None else seed,
            Cluster(name, resolve_nodes(scenario), created=cluster is None),
            rid,
        )

    # ---- the commands of each step ----------------------------------------------------

    def setup(self) -> list[Command]:
        return cluster_setup(self.cluster)

    def teardown(self) -> list[Command]:
        return cluster_teardown(self.cluster) if self.cluster.created else []

    def mode_up(self, mode: Mode) -> list[Command]:
        """Apply the mode's objects and wait until every pod and waypoint is ready."""
        kubectl = self.cluster.kubectl
        manifests = mode_manifests(
            self.scenario,
            self.profile,
            self.topology,
            self.cluster,
            mode,
            seed=self.seed,
            run_id=self.run_id,
            image=IMAGE,
        )
        out = [kubectl("apply", "-f", "-", stdin=to_yaml(manifests), why=f"{mode}: workloads")]
        for ns in namespaces(self.scenario):
            out.append(
                kubectl(
                    "-n",
                    ns,
                    "wait",
                    "--for=condition=Available",
                    "deployment",
                    "--all",
                    f"--timeout={ROLLOUT_TIMEOUT}",
                )
            )
        if mode == "ambient-waypoint":
            for wp in waypoints(self.scenario, self.profile, self.topology):
                out += [
                    kubectl(
                        "-n",
                        wp.namespace,
                        "wait",
                        "--for=condition=Programmed",
                        f"gateway/{wp.name}",
                        f"--timeout={ROLLOUT_TIMEOUT}",
                    ),
                    kubectl(
                        "-n",
                        wp.namespace,
                        "rollout",
                        "status",
                        f"deployment/{wp.name}",
                        f"--timeout={ROLLOUT_TIMEOUT}",
                    ),
                ]
        client = self.topology.client
        out += [
            kubectl(
                "-n",
                client.namespace,
                "get",
                "pods",
                "-l",
                f"{POD_LABEL}={client.name}",
                "--field-selector=status.phase=Running",
                "-o",
                "jsonpath={.items[0].metadata.name}",
                why="LOADGEN_POD: the load generator's pod",
            ),
            self._in_loadgen(
                LOADGEN_POD,
                "python",
                "-m",
                "meshsim.testbed.probes",
                "http",
                self.entry_url(),
                str(PROBE_TIMEOUT_S),
                why="one request through the mesh answers 200",
            ),
            kubectl(
                "get",
                "pods",
                "--all-namespaces",
                "-o",
                "json",
                why="find every modelled pod and proxy; check node and mesh enrollment",
            ),
        ]
        return out

    def mode_down(self, mode: Mode) -> list[Command]:
        return [
            self.cluster.kubectl(
                "delete",
                "namespace",
                *namespaces(self.scenario),
                "--wait=true",
                f"--timeout={ROLLOUT_TIMEOUT}",
                why=f"{mode}: remove its namespaces",
            )
        ]

    def entry_url(self) -> str:
        entry = self.scenario.traffic.entry
        return f"http://{entry}.{self.topology.namespaces[entry]}.svc.cluster.local:{APP_PORT}/"

    def _in_loadgen(self, pod: str, *argv: str, why: str = "") -> Command:
        ns = self.topology.client.namespace
        return self.cluster.kubectl(
            "-n", ns, "exec", pod, "-c", LOADGEN_CONTAINER, "--", *argv, why=why
        )

    def locust(self, pod: str) -> Command:
        traffic = self.scenario.traffic
        argv = locust_argv("python", LOCUSTFILE, load_users(self.scenario), traffic.duration_s)
        command = self._in_loadgen(
            pod, "env", f"MESHSIM_LOAD_CONFIG={LOAD_CONFIG}", *argv,
            why="Locust in the meshed load namespace, in the background",
        )  # fmt: skip
        return Command(command.argv, why=command.why, background=True)

    def wait_started(self, pod: str) -> Command:
        script = f"until [ -s {STARTED} ]; do sleep 0.2; done; cat {STARTED}"
        return self._in_loadgen(
            pod,
            "timeout",
            str(STARTED_TIMEOUT_S),
            "sh",
            "-c",
            script,
            why="the epoch second Locust started: the window is warm-up to duration after it",
        )

    def scrape(self, node_index: int) -> Command:
        host = self.cluster.hostname(node_index)
        return self.cluster.kubectl(
            "get",
            "--raw",
            f"/api/v1/nodes/{host}/proxy/metrics/resource",
            why=f"kubelet resource metrics of {host}, every {SCRAPE_EVERY_S:g} s of the window",
        )

    def copy_latencies(self, pod: str, local: Path) -> Command:
        ns = self.topology.client.namespace
        return self.cluster.kubectl(
            "cp",
            f"{ns}/{pod}:{LATENCIES}",
            str(local),
            "-c",
            LOADGEN_CONTAINER,
            why="Locust's raw per-request latencies",
        )

    def nodes_in_use(self) -> list[int]:
        return self.topology.nodes_in_use()


# ---- dry run ---------------------------------------------------------------------------


def kind_plan(run: KindRun, *, keep: bool = False) -> str:
    """Every command and manifest of the run, in order, as a shell-like script."""
    lines = [
        f"# meshsim measure --backend kind: scenario {run.scenario.name}, "
        f"modes {', '.join(run.modes)}, seed {run.seed}",
        f"# cluster {run.cluster.name} ({'created by this run' if run.cluster.created else 'given'}"
        f", {len(run.cluster.nodes)} workers), image {IMAGE}",
    ]
    step = 0

    def emit(title: str, commands: list[Command]) -> None:
        nonlocal step
        step += 1
        lines.extend(["", f"# {step}. {title}"])
        for command in commands:
            if command.why:
                lines.append(f"# {command.why}")
            text = command.shell()
            if command.why.startswith("LOADGEN_POD"):
                text = f"LOADGEN_POD=$({text})"
            lines.append(text)

    emit("preflight: tools and versions", preflight_commands())
    emit("cluster, image and Istio", run.setup())
    local = Path("./latencies-MODE.npy")
    for mode in run.modes:
        emit(f"mode {mode}: workloads up, checked", run.mode_up(mode))
        load = [run.locust(LOADGEN_POD), run.wait_started(LOADGEN_POD)]
        load += [run.scrape(n) for n in run.nodes_in_use()]
        load.append(run.copy_latencies(LOADGEN_POD, Path(str(local).replace("MODE", mode))))
        emit(f"mode {mode}: load and measure", load)
        emit(f"mode {mode}: down", run.mode_down(mode))
    if run.teardown() and not keep:
        emit("teardown", run.teardown())
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
        run.scenario,
        proxies,
        usages,
        latencies_s=latencies_s,
        unfinished=failed,
        window_s=window_s,
        tls_handshakes=0,
        connection_seconds=math.nan,
    )
    # The kubelet knows CPU and memory, not TLS handshakes: they are not measured here.
    return result.model_copy(update={"handshakes_per_s": math.nan})


class _Session:
    def __init__(self, run: KindRun, runner: Runner, clock: Clock, say: Say):
        self.run, self.runner, self.clock, self.say = run, runner, clock, say

    def do(self, commands: list[Command]) -> list[str]:
        return [self.runner.run(c) for c in commands]

    def check_workers(self, output: str) -> None:
        missing = missing_workers(self.run.cluster, output)
        if missing:
            raise KindError(
                f"cluster {self.run.cluster.name} lacks a worker for scenario node(s) "
                f"{', '.join(missing)}; give a cluster with one worker per node, or no --cluster"
            )

    def setup(self) -> None:
        for command in self.run.setup():
            out = self.runner.run(command)
            if command.argv[-3:] == ("get", "nodes", "-o") or command.argv[-1] == "name":
                self.check_workers(out)

    def mode(self, mode: Mode, workdir: Path) -> ModeResult:
        run = self.run
        up = run.mode_up(mode)
        apply_and_wait, find_pod, probe, inventory = up[:-3], up[-3], up[-2], up[-1]
        self.do(apply_and_wait)
        pod = self.runner.run(find_pod).strip()
        if not pod:
            raise KindError(f"{mode}: the load generator pod is not running")
        answer = self.runner.run(_with_pod(probe, pod)).strip()
        if answer != "200":
            raise KindError(f"{mode}: no answer through the mesh from {run.entry_url()}: {answer}")
        proxies = run.topology.proxies(mode, run.scenario, run.profile)
        wps = waypoints(run.scenario, run.profile, run.topology)
        targets = find_targets(
            self.runner.run(inventory), run.topology, proxies, wps, run.cluster, mode
        )
        return self.load(mode, pod, targets, workdir)

    def load(self, mode: Mode, pod: str, targets: list[Target], workdir: Path) -> ModeResult:
        run, clock = self.run, self.clock
        traffic = run.scenario.traffic
        locust = self.runner.start(run.locust(pod))
        try:
            started = float(self.runner.run(run.wait_started(pod)).strip())
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
        self.runner.run(run.copy_latencies(pod, local))
        return _mode_result(run, mode, targets, scrapes, np.load(local), t0, t1)

    def _alive(self, locust: Background, mode: Mode) -> None:
        code = locust.poll()
        if code is not None:
            raise KindError(f"{mode}: Locust stopped early (code {code}):\n{locust.output_tail()}")

    def scrape(self) -> dict[ContainerKey, Point]:
        merged: dict[ContainerKey, Point] = {}
        for node in self.run.nodes_in_use():
            at = self.clock.now()
            merged.update(resource_points(self.runner.run(self.run.scrape(node)), at))
        return merged


def _with_pod(command: Command, pod: str) -> Command:
    return Command(
        tuple(pod if a == LOADGEN_POD else a for a in command.argv), command.stdin, command.why
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
) -> RunResult:
    """Measure each mode of a scenario on a kind cluster running Istio (the same call shape
    as `measure_local`, so calibration can call either per grid point)."""
    run = KindRun.new(scenario, profile, modes=modes, seed=seed, cluster=cluster, run_id=run_id)
    runner = runner if runner is not None else SubprocessRunner(say)
    session = _Session(run, runner, clock if clock is not None else SystemClock(), say)
    preflight(runner, which)
    results: dict[str, ModeResult] = {}
    workdir = Path(tempfile.mkdtemp(prefix=f"meshsim-kind-{run.run_id}-"))
    say(f"kind run {run.run_id}: cluster {run.cluster.name}")
    try:
        session.setup()
        for mode in run.modes:
            try:
                results[mode] = session.mode(mode, workdir)
            finally:
                session.do(run.mode_down(mode))
            r = results[mode]
            p50 = r.latency_ms.p50
            say(f"{mode}: {r.requests} requests, {r.throughput_rps:.1f} rps, p50 {p50:.3f} ms")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not keep:
            session.do(run.teardown())
    return RunResult(
        meshsim_version=__version__,
        kind="measured",
        scenario=scenario.name,
        engine=ENGINE,
        seed=run.seed,
        profile=profile.name,
        modes=results,
    )


def cleanup_kind(runner: Runner | None = None, say: Say = _quiet) -> list[str]:
    """Delete every kind cluster a meshsim run created (named meshsim-<run id>)."""
    runner = runner if runner is not None else SubprocessRunner(say)
    clusters = runner.run(Command(("kind", "get", "clusters"))).split()
    ours = [name for name in clusters if _CLUSTER_NAME.match(name)]
    for name in ours:
        runner.run(Command(("kind", "delete", "cluster", "--name", name)))
        say(f"deleted kind cluster {name}")
    return ours
