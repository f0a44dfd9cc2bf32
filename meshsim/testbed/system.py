"""Running the host's tools (ip, iptables, haproxy) with errors that say what failed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Sequence

__all__ = [
    "TestbedError",
    "env_without_proxies",
    "in_netns",
    "missing_packages",
    "missing_requirements",
    "packages_hint",
    "sh",
]


class TestbedError(RuntimeError):
    """The testbed could not be built, or a part of it failed during a run."""

    __test__ = False  # not a pytest test class


# what would send a process's HTTP elsewhere than the address it is given (urllib, requests
# and Locust follow them): no process the testbed starts sees them
PROXY_VARIABLES = frozenset(
    v for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    for v in (name, name.upper())
)  # fmt: skip


def env_without_proxies(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process the testbed starts: meshsim's, without proxy settings
    (traffic goes only to the addresses the run created), and `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    return {**env, **(extra or {})}


def sh(argv: Sequence[str], *, input_text: str | None = None, check: bool = True) -> str:
    """Run a command; on failure raise TestbedError with the command and its stderr. The
    command runs in a session of its own: the terminal's Ctrl-C and SIGHUP reach meshsim
    only, which ends a command it waits for (subprocess.run kills it as the interrupt
    passes) but lets a teardown's `ip netns del` finish (signals.deferred)."""
    proc = subprocess.run(
        list(argv),
        input=input_text,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
        env=env_without_proxies(),
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise TestbedError(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {detail}")
    return proc.stdout


def in_netns(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


REQUIRED_TOOLS = ("ip", "iptables", "haproxy")
# the `testbed` extra (pyproject.toml): Locust, the pods' aiohttp apps, their certificates
TESTBED_PACKAGES = ("locust", "aiohttp", "cryptography")


def missing_packages() -> list[str]:
    """The Python packages of the `testbed` extra this environment lacks (checked before
    anything imports them, so that a missing one is named rather than a traceback)."""
    return [name for name in TESTBED_PACKAGES if importlib.util.find_spec(name) is None]


def packages_hint(missing: Sequence[str]) -> str:
    return (
        "measuring needs the Python packages of the testbed extra "
        f"(pip install -e '.[testbed]'); missing: {', '.join(missing)}"
    )


def missing_requirements() -> list[str]:
    """What the local testbed needs and this host lacks (empty when it can run)."""
    missing = []
    if os.name != "posix" or not os.path.isdir("/proc/self/ns"):
        missing.append("Linux with network namespaces")
    if os.geteuid() != 0:
        missing.append("root (network namespaces, iptables and cgroups need it)")
    missing += [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    for controller in ("cpuacct", "memory"):
        if not os.path.isdir(f"/sys/fs/cgroup/{controller}"):
            missing.append(f"cgroup v1 controller '{controller}' at /sys/fs/cgroup/{controller}")
    return missing
