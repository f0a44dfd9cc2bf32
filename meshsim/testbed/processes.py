"""Start the testbed's processes inside their namespace and cgroup, watch them, stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from meshsim.testbed.accounting import ComponentCgroup
from meshsim.testbed.system import TestbedError, env_without_proxies, in_netns

__all__ = ["Managed", "Supervisor"]


@dataclass
class Managed:
    name: str  # the component: a pod or a proxy
    role: str  # what the process is, for messages: 'app', 'sidecar', 'locust', ...
    popen: subprocess.Popen[bytes]
    log: Path
    cgroup: ComponentCgroup
    may_exit: bool = False  # the load generator ends by itself

    def describe(self) -> str:
        return f"{self.role} {self.name} (pid {self.popen.pid})"

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text[-lines:])


def _join_cgroups(files: list[str]) -> None:
    pid = str(os.getpid())
    for file in files:
        with open(file, "w") as fh:
            fh.write(pid)


class Supervisor:
    def __init__(self) -> None:
        self.processes: list[Managed] = []

    def start(
        self,
        name: str,
        role: str,
        netns: str,
        argv: Sequence[str],
        cgroup: ComponentCgroup,
        log: Path,
        *,
        env: dict[str, str] | None = None,
        may_exit: bool = False,
    ) -> Managed:
        files = cgroup.join_files()
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                in_netns(netns, argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C at the terminal reaches only meshsim
                preexec_fn=lambda: _join_cgroups(files),
                env=env_without_proxies(env),
            )
        managed = Managed(name, role, popen, log, cgroup, may_exit)
        self.processes.append(managed)
        return managed

    def check_alive(self) -> None:
        """Fail the run, naming the process, if any that should be running has exited."""
        for proc in self.processes:
            code = proc.popen.poll()
            if code is not None and not proc.may_exit:
                if not proc.log.exists():  # its folder went with it: removed from outside
                    raise TestbedError(
                        f"{proc.describe()} exited with code {code} during the run, and the "
                        f"run's files are gone ({proc.log.parent}): its testbed was removed "
                        "from outside (meshsim testbed cleanup --all?); the run is void"
                    )
                raise TestbedError(
                    f"{proc.describe()} exited with code {code} during the run; "
                    f"the run is void. Last lines of {proc.log}:\n{proc.log_tail()}"
                )

    def wait_for(self, what: str, ready: list[tuple[Managed, Path]], timeout_s: float) -> None:
        """Wait until each process has created its ready file (or socket)."""
        deadline = time.monotonic() + timeout_s
        pending = list(ready)
        while pending:
            self.check_alive()
            pending = [(p, f) for p, f in pending if not f.exists()]
            if not pending:
                return
            if time.monotonic() > deadline:
                late = ", ".join(p.describe() for p, _ in pending)
                raise TestbedError(f"{what} not ready after {timeout_s:g} s: {late}")
            time.sleep(0.05)

    def stop_all(self, grace_s: float = 3.0) -> None:
        for proc in self.processes:
            _signal_group(proc.popen, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.processes:
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.popen, signal.SIGKILL)
                proc.popen.wait()
        self.processes = []


def _signal_group(popen: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)
