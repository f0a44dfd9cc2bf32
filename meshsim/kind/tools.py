"""Preflight: the four tools the kind backend drives, present and recent enough.

Supported: Docker Engine >= 20.10 (running), kind >= 0.24 (its default node image is
Kubernetes 1.31), kubectl >= 1.28, and istioctl >= 1.24: ambient mode (ztunnel,
waypoints) is GA from Istio 1.24, which also honours a waypoint Gateway's
`infrastructure.parametersRef`, used here to place each waypoint on the node the
scenario's topology chose.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from meshsim.kind.commands import Command, CommandFailed, KindError, Runner

__all__ = ["TOOLS", "Tool", "preflight", "preflight_commands", "tool_problems", "tool_versions"]


@dataclass(frozen=True)
class Tool:
    name: str
    version_argv: tuple[str, ...]
    minimum: tuple[int, int]
    install: str  # where to get it
    why: str = ""  # said when it is too old

    @property
    def wanted(self) -> str:
        return f"{self.name} >= {self.minimum[0]}.{self.minimum[1]}"


TOOLS: tuple[Tool, ...] = (
    Tool(
        "docker",
        # the engine's version: it also checks that the Docker daemon answers
        ("docker", "version", "--format", "{{.Server.Version}}"),
        (20, 10),
        "Docker Engine or Docker Desktop, https://docs.docker.com/get-docker/",
    ),
    Tool(
        "kind",
        ("kind", "version"),
        (0, 24),
        "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    ),
    Tool(
        "kubectl",
        ("kubectl", "version", "--client"),
        (1, 28),
        "https://kubernetes.io/docs/tasks/tools/",
    ),
    Tool(
        "istioctl",
        ("istioctl", "version", "--remote=false"),
        (1, 24),
        "https://istio.io/latest/docs/setup/additional-setup/download-istio-release/",
        why="ambient mode is GA from Istio 1.24",
    ),
)

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """The first dotted version in a tool's output ('kind v0.24.0 go1.22.6' -> (0, 24, 0))."""
    match = _VERSION.search(text)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


def tool_problems(
    runner: Runner,
    which: Callable[[str], str | None] = shutil.which,
    tools: tuple[Tool, ...] = TOOLS,
) -> list[str]:
    """One line per tool that is missing, unreadable or too old (empty: all good)."""
    problems = []
    for tool in tools:
        if which(tool.name) is None:
            problems.append(f"{tool.wanted}: not found on PATH (install: {tool.install})")
            continue
        try:
            output = runner.run(Command(tool.version_argv))
        except KindError as err:
            said = err.detail if isinstance(err, CommandFailed) else str(err)
            problems.append(f"{tool.wanted}: {said}")
            continue
        version = parse_version(output)
        if version is None:
            problems.append(f"{tool.wanted}: cannot read a version from {output.strip()!r}")
        elif version[:2] < tool.minimum:
            found = ".".join(str(v) for v in version)
            reason = f"; {tool.why}" if tool.why else ""
            problems.append(
                f"{tool.wanted}: found {found}, too old{reason} (upgrade: {tool.install})"
            )
    return problems


def tool_versions(
    runner: Runner, which: Callable[[str], str | None] = shutil.which
) -> dict[str, str]:
    """Each tool's version as it reports it (first line), for a dataset's record of what
    measured it."""
    versions = {}
    for tool in TOOLS:
        if which(tool.name) is None:
            versions[tool.name] = "not found"
            continue
        try:
            lines = runner.run(Command(tool.version_argv)).strip().splitlines()
        except KindError as err:
            lines = [f"unreadable: {err}".splitlines()[0]]
        versions[tool.name] = lines[0] if lines else "unknown"
    return versions


def preflight(runner: Runner, which: Callable[[str], str | None] = shutil.which) -> None:
    """Raise one KindError that lists everything to install or upgrade."""
    problems = tool_problems(runner, which)
    if problems:
        raise KindError(
            "the kind backend needs these tools; install or upgrade them and run again:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def preflight_commands() -> list[Command]:
    """What preflight runs, for the printed plan."""
    return [Command(t.version_argv, why=f"preflight: {t.wanted}") for t in TOOLS]
