"""Remove everything a testbed run created: processes, namespaces, cgroups, files.

The same code tears a run down when it ends (normally, on Ctrl-C or SIGTERM) and serves
`meshsim testbed cleanup` after a SIGKILL: it finds a run's parts by their names alone.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

from meshsim.testbed.accounting import kill_cgroup_tree, remove_cgroup_tree
from meshsim.testbed.names import (
    CGROUP_CONTROLLERS,
    CGROUP_ROOT,
    RUN_ROOT,
    RunNames,
    run_id_of_cgroup,
    run_id_of_netns,
)
from meshsim.testbed.system import sh

__all__ = [
    "Removed",
    "cleanup_run",
    "find_runs",
    "process_started",
    "run_is_live",
    "run_namespaces",
    "run_owner",
]


@dataclass
class Removed:
    run_id: str
    processes: int = 0
    namespaces: list[str] = field(default_factory=list)
    cgroups: int = 0
    run_dir: bool = False

    def __str__(self) -> str:
        return (
            f"run {self.run_id}: {self.processes} processes killed, "
            f"{len(self.namespaces)} namespaces, {self.cgroups} cgroup trees"
            f"{' and its files' if self.run_dir else ''} removed"
        )


def _all_namespaces() -> list[str]:
    out = sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def run_namespaces(run_id: str) -> list[str]:
    prefix = RunNames(run_id).prefix
    return [ns for ns in _all_namespaces() if ns.startswith(prefix)]


def find_runs() -> list[str]:
    """Ids of every run that left something behind on this host."""
    ids = {run_id_of_netns(ns) for ns in _all_namespaces()}
    for controller in CGROUP_CONTROLLERS:
        base = CGROUP_ROOT / controller
        if base.is_dir():
            ids |= {run_id_of_cgroup(p.name) for p in base.iterdir() if p.is_dir()}
    if RUN_ROOT.is_dir():
        ids |= {p.name for p in RUN_ROOT.iterdir() if p.is_dir()}
    return sorted(i for i in ids if i is not None and _valid(i))


def _valid(run_id: str) -> bool:
    try:
        RunNames(run_id)
    except ValueError:
        return False
    return True


def _kill_namespace_pids(ns: str) -> set[int]:
    killed = set()
    for pid in sh(["ip", "netns", "pids", ns], check=False).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
            killed.add(int(pid))
        except (ProcessLookupError, ValueError):
            pass
    return killed


def cleanup_run(run_id: str) -> Removed:
    names = RunNames(run_id)
    removed = Removed(run_id)
    namespaces = run_namespaces(run_id)
    killed: set[int] = set()  # a process is in a cgroup of each controller, and a namespace
    for root in names.cgroup_roots():
        killed |= kill_cgroup_tree(root)
    for ns in namespaces:
        killed |= _kill_namespace_pids(ns)
    removed.processes = len(killed)
    for ns in namespaces:
        # deleting a namespace deletes its links; the veth peers go with them
        sh(["ip", "netns", "del", ns], check=False)
        removed.namespaces.append(ns)
    for root in names.cgroup_roots():
        if root.is_dir():
            remove_cgroup_tree(root)
            removed.cgroups += 1
    if names.run_dir.exists():
        shutil.rmtree(names.run_dir, ignore_errors=True)
        removed.run_dir = True
    return removed


def process_started(pid: int) -> int | None:
    """When a process started (clock ticks after boot, /proc/PID/stat field 22): with its
    pid, what tells it from a later process given the same pid. None if there is none, or
    it has ended (a zombie: killed, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name, in brackets, may hold spaces
    if fields[0] in ("Z", "X"):  # its state: ended, whatever waits on it
        return None
    return int(fields[19])


def run_owner(run_id: str) -> int | None:
    """The pid of the meshsim process that made the run while it still runs, else None
    (a pid reused since by another process is not the run's)."""
    import json

    try:
        state = json.loads((RunNames(run_id).run_dir / "run.json").read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    started = process_started(pid)
    if started is None:
        return None
    if "pid_started" in state:
        return pid if started == state["pid_started"] else None
    try:  # a run.json of before pid_started: its process is a meshsim
        return pid if b"meshsim" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
    except OSError:
        return None


def run_is_live(run_id: str) -> bool:
    """True while the meshsim process that made the run is still running."""
    return run_owner(run_id) is not None
