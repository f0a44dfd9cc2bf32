"""Stand a scenario up for real, one mode at a time, load it with Locust and measure it.

`measure_local` returns the same RunResult as `meshsim run`, with kind="measured". The
measurement window is the scenario's: from warm-up to duration after Locust started;
CPU counters are read at both ends of it and latencies kept for requests sent inside it.
Everything the run creates is removed when it ends, whatever way it ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from meshsim import __version__
from meshsim.accounting import mode_result
from meshsim.loadgen import load_config, locust_argv, window_latencies
from meshsim.profile import Profile
from meshsim.results import ComponentUsage, MeasuredLink, MeasuredNetwork, ModeResult, RunResult
from meshsim.scenario import Mode, Scenario
from meshsim.signals import deferred, sigterm_unwinds
from meshsim.testbed.accounting import (
    ComponentCgroup,
    ProxyStats,
    count_established,
    proxy_stats,
    pss_mib,
    remove_cgroup_tree,
)
from meshsim.testbed.certs import CertificateAuthority
from meshsim.testbed.cleanup import cleanup_run, process_started
from meshsim.testbed.dataplane import APP_PORT, ModePlan, ProxySpec, plan_dataplane, waypoint_hosts
from meshsim.testbed.names import CGROUP_CONTROLLERS, RUN_ROOT, RunNames, new_run_id
from meshsim.testbed.network import (
    NetworkPlan,
    build_network,
    measure_links,
    own_targets,
    plan_network,
)
from meshsim.testbed.processes import Managed, Supervisor
from meshsim.testbed.system import TestbedError, in_netns, missing_requirements, sh
from meshsim.topology import CLIENT, Topology, build_topology

__all__ = [
    "ENGINE",
    "LocalTestbed",
    "StandingMode",
    "background_cores",
    "host_busy_s",
    "measure_local",
]

ENGINE = "testbed-local"
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
Say = Callable[[str], None]
READY_TIMEOUT_S = 30.0
SAMPLE_EVERY_S = 1.0


def _quiet(_: str) -> None:
    pass


@dataclass
class StandingMode:
    """One mode's processes, up and answering."""

    mode: Mode
    plan: ModePlan
    directory: Path
    supervisor: Supervisor
    apps: dict[str, Managed] = field(default_factory=dict)
    proxies: dict[str, tuple[ProxySpec, Managed]] = field(default_factory=dict)

    def proxy(self, name: str) -> ProxySpec:
        return self.proxies[name][0]


def _cpus_by_node(topology: Topology) -> dict[int, str] | None:
    """Pin each node in use to as many host cores as the scenario gives it, when they fit;
    otherwise every process shares all the host's cores."""
    available = sorted(os.sched_getaffinity(0))
    used = topology.nodes_in_use()
    if sum(topology.nodes[n].cores for n in used) > len(available):
        return None
    out, at = {}, 0
    for n in used:
        cores = available[at : at + topology.nodes[n].cores]
        out[n] = ",".join(str(c) for c in cores)
        at += topology.nodes[n].cores
    return out


def _hold_the_host(holder: str) -> int:
    """One testbed run measures on a host at a time: two at once share its cores, and each
    counts the other's load as its nodes' background. An exclusive lock on a file under
    RUN_ROOT, held until the run's teardown (or its process's end, even by SIGKILL):
    TestbedError naming the run that holds it."""
    RUN_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(RUN_ROOT / "measuring.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 200).decode(errors="replace").strip() or "another run"
        os.close(fd)
        raise TestbedError(
            f"a testbed run is measuring on this host ({other}): two at once share its cores "
            "and spoil each other's figures; wait for it to end"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode(), 0)
    return fd


class LocalTestbed:
    """A run of the local testbed: network namespaces, certificates, then modes in turn."""

    def __init__(
        self,
        scenario: Scenario,
        profile: Profile,
        *,
        modes: Sequence[Mode],
        seed: int | None = None,
        say: Say = _quiet,
        pin_cpus: bool = True,
    ):
        self.scenario, self.profile, self.modes = scenario, profile, list(modes)
        self.seed = scenario.seed if seed is None else seed
        self.say = say
        self.names = RunNames(new_run_id())
        self.topology = build_topology(scenario)
        extra = (
            waypoint_hosts(self.topology, scenario, profile) if "ambient-waypoint" in modes else []
        )
        self.net: NetworkPlan = plan_network(self.names, self.topology, extra)
        self.cpus = _cpus_by_node(self.topology) if pin_cpus else None
        self.network: MeasuredNetwork | None = None
        self.ca: CertificateAuthority | None = None
        self._issued: dict[str, Path] = {}
        self._host_lock = -1  # the file descriptor of _hold_the_host's lock while held

    @property
    def run_id(self) -> str:
        return self.names.run_id

    @property
    def run_dir(self) -> Path:
        return self.names.run_dir

    # ---- the run: network and certificates ---------------------------------------------

    def __enter__(self) -> LocalTestbed:
        missing = missing_requirements()
        if missing:
            raise TestbedError("the local testbed needs: " + "; ".join(missing))
        self._host_lock = _hold_the_host(f"run {self.run_id}, meshsim pid {os.getpid()}")
        try:
            self.run_dir.mkdir(mode=0o700, parents=True)
        except BaseException:
            os.close(self._host_lock)
            self._host_lock = -1
            raise
        state = {"run_id": self.run_id, "pid": os.getpid(), "scenario": self.scenario.name,
                 "pid_started": process_started(os.getpid()),
                 "modes": self.modes, "started": time.time()}  # fmt: skip
        (self.run_dir / "run.json").write_text(json.dumps(state) + "\n")
        try:
            self.say(f"testbed run {self.run_id}: building {len(self.net.namespaces())} namespaces")
            build_network(self.net)
            self.say(self._describe_cores())
            self.network = self._measure_network()
            self.ca = CertificateAuthority(self.run_dir / "certs")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # a second Ctrl-C (or SIGTERM, SIGHUP) must not cut the teardown short: it comes
        # once everything is removed
        with deferred():
            removed = cleanup_run(self.run_id)
            if self._host_lock >= 0:  # another run may measure now
                os.close(self._host_lock)
                self._host_lock = -1
        self.say(f"removed {removed}")

    def _describe_cores(self) -> str:
        nodes = self.topology.nodes
        if self.cpus is None:
            asked = sum(nodes[n].cores for n in self.topology.nodes_in_use())
            return (
                f"cores not pinned: the nodes share all {len(os.sched_getaffinity(0))} host "
                f"cores (the scenario gives them {asked})"
            )
        return "cores pinned (cpuset): " + ", ".join(
            f"{nodes[n].name} on host core(s) {cpus}" for n, cpus in self.cpus.items()
        )

    def _measure_network(self) -> MeasuredNetwork:
        measured = []
        for kind, a, b, samples_us in measure_links(self.net):
            ms = np.asarray(samples_us) / 1000.0
            measured.append(
                MeasuredLink(
                    kind=kind,
                    src=a.name,
                    dst=b.name,
                    rtt_ms=float(np.median(ms)),
                    rtt_p90_ms=float(np.percentile(ms, 90)),
                    probes=len(ms),
                )
            )
        rtt = {link.kind: link.rtt_ms for link in measured}
        net = self.scenario.cluster.network
        same = rtt["same_node"] / 2 if "same_node" in rtt else net.same_node_ms
        cross = rtt["cross_node"] / 2 if "cross_node" in rtt else net.cross_node_ms
        for link in measured:
            self.say(f"link {link.kind} {link.src} -> {link.dst}: RTT {link.rtt_ms * 1000:.0f} us")
        # one fabric: a link across zones is as long as any other link across nodes
        return MeasuredNetwork(
            same_node_ms=same, cross_node_ms=cross, cross_zone_ms=cross, links=measured
        )

    def _cert(self, stem: str, identity: str) -> Path:
        if stem not in self._issued:
            assert self.ca is not None
            self._issued[stem] = self.ca.issue(identity, stem)
        return self._issued[stem]

    # ---- one mode -----------------------------------------------------------------------

    def _cgroup(self, mode: Mode, component: str, node: int) -> ComponentCgroup:
        cpus = self.cpus.get(node) if self.cpus is not None else None
        return ComponentCgroup.create(f"meshsim-{self.run_id}", (mode, component), cpus)

    @contextmanager
    def mode(self, mode: Mode) -> Iterator[StandingMode]:
        """Stand `mode` up (apps, proxies, interception), yield it, then take it down."""
        directory = self.run_dir / mode
        directory.mkdir(mode=0o700)
        plan = plan_dataplane(
            self.scenario, self.profile, self.topology, self.net, mode, str(self.run_dir),
            self.seed,
        )  # fmt: skip
        own_targets(plan.targets, self.net)  # before any probe or load goes to them
        standing = StandingMode(mode, plan, directory, Supervisor())
        try:
            self._start(standing)
            yield standing
        finally:
            standing.supervisor.stop_all()
            for ns in plan.dataplane.iptables:
                sh(in_netns(ns, ["iptables", "-t", "nat", "-F"]), check=False)
            for controller in CGROUP_CONTROLLERS:
                remove_cgroup_tree(self.names.cgroup(controller, mode))

    def _start(self, standing: StandingMode) -> None:
        plan, directory, sup = standing.plan, standing.directory, standing.supervisor
        for stem, identity in plan.dataplane.identities.items():
            self._cert(stem, identity)
        for ns, rules in plan.dataplane.iptables.items():
            for rule in rules:
                sh(in_netns(ns, ["iptables", *rule]))
        ready: list[tuple[Managed, Path]] = []
        pods = {p.name: p for p in self.topology.pods}
        for name, config in plan.apps.items():
            path = directory / f"app-{name}.json"
            path.write_text(json.dumps(config))
            proc = sup.start(
                name, "app", self.net.hosts[name].netns,
                [sys.executable, "-m", "meshsim.testbed.app", str(path)],
                self._cgroup(standing.mode, name, pods[name].node), directory / f"app-{name}.log",
            )  # fmt: skip
            standing.apps[name] = proc
            ready.append((proc, path.with_suffix(".ready")))
        for spec in plan.dataplane.proxies:
            cfg = directory / f"{spec.proxy.name}.cfg"
            cfg.write_text(spec.config)
            sh(["haproxy", "-c", "-q", "-f", str(cfg)])
            proc = sup.start(
                spec.proxy.name, spec.proxy.kind, spec.netns, ["haproxy", "-db", "-f", str(cfg)],
                self._cgroup(standing.mode, spec.proxy.name, spec.proxy.node),
                directory / f"{spec.proxy.name}.log",
            )  # fmt: skip
            standing.proxies[spec.proxy.name] = (spec, proc)
            ready.append((proc, Path(f"{self.run_dir}/{spec.proxy.name}.sock")))
        self.say(
            f"{standing.mode}: starting {len(plan.apps)} apps, "
            f"{len(plan.dataplane.proxies)} proxies"
        )
        sup.wait_for(f"{standing.mode}: apps and proxies", ready, READY_TIMEOUT_S)
        # one request end to end from the load generator's pod: the path works
        client = self.net.hosts[self.topology.client.name]
        for target in plan.targets:
            probe = [sys.executable, "-m", "meshsim.testbed.probes", "http", target, "20"]
            out = sh(in_netns(client.netns, probe), check=False).strip()
            sup.check_alive()
            if out != "200":
                raise TestbedError(
                    f"{standing.mode}: no answer through the mesh from {target}: {out}"
                )

    # ---- load and accounting ------------------------------------------------------------

    def load(self, standing: StandingMode) -> ModeResult:
        """Run the scenario's load against a standing mode and account for the window."""
        traffic = self.scenario.traffic
        directory, sup = standing.directory, standing.supervisor
        config = load_config(
            self.scenario,
            seed=self.seed,
            targets=standing.plan.targets,
            out=str(directory / "latencies.npy"),
            started_file=str(directory / "locust.started"),
        )
        config_path = directory / "load.json"
        config_path.write_text(json.dumps(config))
        client = self.topology.client
        argv = locust_argv(sys.executable, str(LOCUSTFILE), config["users"], traffic.duration_s)
        locust = sup.start(
            client.name, "locust", self.net.hosts[client.name].netns, argv,
            self._cgroup(standing.mode, client.name, client.node), directory / "locust.log",
            env={"MESHSIM_LOAD_CONFIG": str(config_path)}, may_exit=True,
        )  # fmt: skip
        started = Path(config["started_file"])
        sup.wait_for("locust", [(locust, started)], READY_TIMEOUT_S)
        t_start = float(started.read_text())
        self.say(f"{standing.mode}: load running for {traffic.duration_s:g} s")
        t0, t1 = t_start + traffic.warmup_s, t_start + traffic.duration_s
        meter = _Meter(self, standing, locust)
        self._sleep_until(t0, sup, locust)
        start = meter.snapshot()
        while time.time() < t1 - SAMPLE_EVERY_S:
            self._sleep_until(time.time() + SAMPLE_EVERY_S, sup, locust)
            meter.sample()
        self._sleep_until(t1, sup, locust)
        end = meter.snapshot()
        meter.sample()
        sup.check_alive()
        try:
            code = locust.popen.wait(timeout=traffic.duration_s + 30)
        except Exception as exc:
            raise TestbedError(f"{locust.describe()} did not stop:\n{locust.log_tail()}") from exc
        out = Path(config["out"])
        if code != 0 or not out.exists():
            raise TestbedError(
                f"{locust.describe()} exited with code {code}; the run is void. "
                f"Last lines of {locust.log}:\n{locust.log_tail()}"
            )
        return meter.result(np.load(out), t0, end.at - start.at, start, end)

    def _sleep_until(self, when: float, sup: Supervisor, locust: Managed) -> None:
        while (left := when - time.time()) > 0:
            time.sleep(min(left, 0.2))
            sup.check_alive()
            if locust.popen.poll() is not None and time.time() < when - 0.5:
                raise TestbedError(
                    f"{locust.describe()} stopped early (code {locust.popen.returncode}):\n"
                    f"{locust.log_tail()}"
                )


@dataclass(frozen=True)
class _Snapshot:
    at: float
    cpu_ns: dict[str, int]
    proxies: dict[str, ProxyStats]
    host_busy_s: dict[int, float]  # host core -> busy seconds since boot (/proc/stat)


def host_busy_s(stat: str | None = None) -> dict[int, float]:
    """Busy seconds of each host core since boot: user, nice, system, irq, softirq and steal
    (time the hypervisor gave to someone else) from /proc/stat."""
    text = stat if stat is not None else Path("/proc/stat").read_text()
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            out[int(name[3:])] = (user + nice + system + irq + softirq + steal) / tick
    return out


def background_cores(
    busy_cores: dict[int, float],
    cpus_by_node: dict[int, list[int]],
    modelled_cores: dict[int, float],
) -> dict[int, float]:
    """CPU on each node's host cores that the simulator does not model: the cores' busy
    time less the node's apps and proxies (never below 0). Nodes sharing cores (not pinned)
    share that core's background in proportion to their cores."""
    sharing: dict[int, int] = {}
    for cpus in cpus_by_node.values():
        for c in cpus:
            sharing[c] = sharing.get(c, 0) + 1
    out = {}
    for node, cpus in cpus_by_node.items():
        busy = sum(busy_cores.get(c, 0.0) / sharing[c] for c in cpus)
        out[node] = max(0.0, busy - modelled_cores.get(node, 0.0))
    return out


@dataclass(frozen=True)
class _Component:
    name: str
    kind: Literal["app", "loadgen", "sidecar", "ztunnel", "waypoint"]
    node: int
    cgroup: ComponentCgroup


class _Meter:
    """Reads every component's counters at the window's ends and samples gauges in it."""

    def __init__(self, bed: LocalTestbed, standing: StandingMode, locust: Managed):
        self.bed, self.standing = bed, standing
        self.components: list[_Component] = []
        for pod in bed.topology.pods:
            if pod.workload == CLIENT:
                self.components.append(_Component(pod.name, "loadgen", pod.node, locust.cgroup))
            else:
                group = standing.apps[pod.name].cgroup
                self.components.append(_Component(pod.name, "app", pod.node, group))
        for name, (spec, proc) in standing.proxies.items():
            self.components.append(_Component(name, spec.proxy.kind, spec.proxy.node, proc.cgroup))
        self.pss: dict[str, list[float]] = {c.name: [] for c in self.components}
        self.conns: dict[str, list[float]] = {c.name: [] for c in self.components}
        self.served: list[float] = []  # connections open, each counted once (server end)

    def snapshot(self) -> _Snapshot:
        at = time.time()
        cpu = {c.name: c.cgroup.cpu_ns() for c in self.components}
        stats = {
            name: proxy_stats(f"{self.bed.run_dir}/{name}.sock", spec.tls_frontends)
            for name, (spec, _) in self.standing.proxies.items()
        }
        return _Snapshot(at, cpu, stats, host_busy_s())

    def sample(self) -> None:
        served = 0.0
        for c in self.components:
            self.pss[c.name].append(pss_mib(c.cgroup.pids()))
            if c.kind in ("app", "loadgen") and self.standing.mode == "none":
                server, client = count_established(self.bed.net.hosts[c.name].netns, APP_PORT)
                self.conns[c.name].append(server + client)
                served += server
        for name, (spec, _) in self.standing.proxies.items():
            stats = proxy_stats(f"{self.bed.run_dir}/{name}.sock", spec.tls_frontends)
            self.conns[name].append(stats.connections_in + stats.connections_out)
            served += stats.connections_in
        self.served.append(served)

    def result(
        self, records: np.ndarray, t0: float, window: float, start: _Snapshot, end: _Snapshot
    ) -> ModeResult:
        bed = self.bed
        latencies_s, failed = window_latencies(records, t0, window)
        usages = []
        handshakes_in = 0
        for c in self.components:
            hs = 0
            if c.name in end.proxies:
                a, b = start.proxies[c.name], end.proxies[c.name]
                hs = (b.handshakes_in - a.handshakes_in) + (b.handshakes_out - a.handshakes_out)
                handshakes_in += b.handshakes_in - a.handshakes_in
            usages.append(
                ComponentUsage(
                    name=c.name,
                    kind=c.kind,
                    node=bed.topology.nodes[c.node].name,
                    cpu_cores=(end.cpu_ns[c.name] - start.cpu_ns[c.name]) / 1e9 / window,
                    memory_mib=_mean(self.pss[c.name]),
                    handshakes=hs,
                    connections_open=_mean(self.conns[c.name]),
                )
            )
        proxies = [spec.proxy for spec, _ in self.standing.proxies.values()]
        result = mode_result(
            bed.scenario,
            proxies,
            usages,
            latencies_s=latencies_s,
            unfinished=failed,
            window_s=window,
            tls_handshakes=handshakes_in,
            connection_seconds=_mean(self.served) * window,
        )
        background = self._background(start, end, window, usages)
        return result.model_copy(update={"background_cores": background})

    def _background(
        self, start: _Snapshot, end: _Snapshot, window: float, usages: list[ComponentUsage]
    ) -> dict[str, float]:
        """Each node's background over the window, by node name (see `background_cores`)."""
        bed = self.bed
        busy = {c: (end.host_busy_s[c] - start.host_busy_s.get(c, end.host_busy_s[c])) / window
                for c in end.host_busy_s}  # fmt: skip
        nodes = bed.topology.nodes_in_use()
        if bed.cpus is not None:
            cpus = {n: [int(c) for c in bed.cpus[n].split(",")] for n in nodes}
        else:  # not pinned: every node on every core
            cpus = {n: sorted(busy) for n in nodes}
        index = {bed.topology.nodes[n].name: n for n in nodes}
        modelled: dict[int, float] = {}
        for u in usages:
            if u.kind != "loadgen":  # the simulator does not model the load generator's CPU
                modelled[index[u.node]] = modelled.get(index[u.node], 0.0) + u.cpu_cores
        background = background_cores(busy, cpus, modelled)
        return {bed.topology.nodes[n].name: round(b, 6) for n, b in background.items()}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def measure_local(
    scenario: Scenario,
    profile: Profile,
    *,
    modes: Sequence[Mode] | None = None,
    seed: int | None = None,
    say: Say = _quiet,
    on_start: Callable[[str], None] | None = None,
    pin_cpus: bool = True,
) -> RunResult:
    """Measure each mode of a scenario on the local testbed."""
    chosen = list(modes) if modes else list(scenario.mesh.modes)
    results: dict[str, ModeResult] = {}
    bed = LocalTestbed(scenario, profile, modes=chosen, seed=seed, say=say, pin_cpus=pin_cpus)
    with sigterm_unwinds(), bed:
        if on_start is not None:
            on_start(bed.run_id)
        for mode in chosen:
            with bed.mode(mode) as standing:
                results[mode] = bed.load(standing)
            r = results[mode]
            say(
                f"{mode}: {r.requests} requests, {r.throughput_rps:.1f} rps, "
                f"p50 {r.latency_ms.p50:.3f} ms"
            )
        return RunResult(
            meshsim_version=__version__,
            kind="measured",
            scenario=scenario.name,
            engine=ENGINE,
            seed=bed.seed,
            profile=profile.name,
            modes=results,
            network=bed.network,
        )
