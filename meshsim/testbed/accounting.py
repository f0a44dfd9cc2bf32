"""What each component used: cgroup v1 CPU, PSS memory, HAProxy's TLS and connection stats.

Every process of a component (an app, a proxy, the load generator) runs in its own
cgroup under ``meshsim-RUN/MODE/``: CPU is ``cpuacct.usage`` differenced over the
measurement window, memory is the PSS of the cgroup's processes (shared pages split
between the processes that share them), handshakes and open connections come from the
proxy's stats socket.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from meshsim.testbed.names import CGROUP_CONTROLLERS, CGROUP_ROOT
from meshsim.testbed.system import in_netns, sh

__all__ = [
    "ComponentCgroup",
    "ProxyStats",
    "count_established",
    "kill_cgroup_tree",
    "parse_stats",
    "proxy_stats",
    "pss_mib",
    "remove_cgroup_tree",
]


@dataclass(frozen=True)
class ComponentCgroup:
    """One component's cgroup in each controller; `cpus` pins it (cpuset) when given."""

    paths: tuple[Path, ...]  # one per controller, in CGROUP_CONTROLLERS order

    @classmethod
    def create(cls, run_cgroup: str, parts: tuple[str, ...], cpus: str | None) -> ComponentCgroup:
        paths = []
        for controller in CGROUP_CONTROLLERS:
            if controller == "cpuset" and cpus is None:
                continue
            base = CGROUP_ROOT / controller
            path = base.joinpath(run_cgroup, *parts)
            path.mkdir(parents=True, exist_ok=True)
            if controller == "cpuset":
                # cpuset v1: every level needs cpus and mems before a task may join
                level = base
                for part in (run_cgroup, *parts):
                    level = level / part
                    if level != path:
                        _copy_if_empty(base, level)
                (path / "cpuset.mems").write_text((base / "cpuset.mems").read_text())
                (path / "cpuset.cpus").write_text(cpus or "")
            paths.append(path)
        return cls(tuple(paths))

    def join_files(self) -> list[str]:
        return [str(p / "cgroup.procs") for p in self.paths]

    def _controller(self, name: str) -> Path:
        return next(p for p in self.paths if p.parts[len(CGROUP_ROOT.parts)] == name)

    def cpu_ns(self) -> int:
        return int((self._controller("cpuacct") / "cpuacct.usage").read_text())

    def pids(self) -> list[int]:
        return _pids(self._controller("cpuacct"))


def _copy_if_empty(base: Path, level: Path) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not (level / name).read_text().strip():
            (level / name).write_text((base / name).read_text())


def _pids(path: Path) -> list[int]:
    try:
        text = (path / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of these processes, MiB (from /proc/PID/smaps_rollup)."""
    total_kib = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # gone, or a kernel thread
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total_kib += int(line.split()[1])
                break
    return total_kib / 1024.0


def _walk_bottom_up(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    dirs = [Path(d) for d, _, _ in os.walk(root)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def kill_cgroup_tree(root: Path) -> set[int]:
    """SIGKILL every process in a cgroup tree; returns the ones signalled."""
    killed = set()
    for path in _walk_bottom_up(root):
        for pid in _pids(path):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
    return killed


def remove_cgroup_tree(root: Path, timeout_s: float = 5.0) -> None:
    """Kill what is left in the tree, then remove its directories, deepest first."""
    deadline = time.monotonic() + timeout_s
    while True:
        kill_cgroup_tree(root)
        busy = False
        for path in _walk_bottom_up(root):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                busy = True  # processes still exiting
        if not busy or time.monotonic() > deadline:
            return
        time.sleep(0.05)


@dataclass(frozen=True)
class ProxyStats:
    """Counters from one HAProxy: TLS handshakes it accepted and originated, and the mTLS
    connections open right now, accepted and originated."""

    handshakes_in: int
    handshakes_out: int
    connections_in: int
    connections_out: int


def _stats_socket(path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def _num(row: dict[str, str], key: str) -> int:
    value = row.get(key) or "0"
    return int(value) if value.isdigit() else 0


def proxy_stats(socket_path: str, tls_frontends: tuple[str, ...]) -> ProxyStats:
    return parse_stats(_stats_socket(socket_path, "show stat"), tls_frontends)


def parse_stats(text: str, tls_frontends: tuple[str, ...]) -> ProxyStats:
    """Read `show stat`: handshakes are new and resumed TLS sessions; a server has TLS
    connections open once it has made any (plain servers count none)."""
    text = text.lstrip("# ")
    hs_in = hs_out = conns_in = conns_out = 0
    for row in csv.DictReader(io.StringIO(text)):
        sessions = _num(row, "ssl_sess") + _num(row, "ssl_reused_sess")
        if row["svname"] == "FRONTEND":
            if row["pxname"] in tls_frontends:
                hs_in += sessions
                conns_in += _num(row, "scur")
        elif row["svname"] == "BACKEND":
            hs_out += sessions
        elif sessions > 0:
            if row.get("mode") == "http":  # pooled: in use, idle, and idle known-safe
                keys = ("used_conn_cur", "idle_conn_cur", "safe_conn_cur")
                conns_out += sum(_num(row, k) for k in keys)
            else:  # tcp: one server connection per session
                conns_out += _num(row, "scur")
    return ProxyStats(hs_in, hs_out, conns_in, conns_out)


def count_established(netns: str, port: int) -> tuple[int, int]:
    """TCP connections established in a namespace on `port`: (accepted, opened)."""
    out = sh(in_netns(netns, ["ss", "-tnH", "state", "established"]), check=False)
    accepted = opened = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local, peer = fields[2], fields[3]
        if local.endswith(f":{port}"):
            accepted += 1
        elif peer.endswith(f":{port}"):
            opened += 1
    return accepted, opened
