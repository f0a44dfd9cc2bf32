"""Preflight: one message that lists every tool to install or upgrade, and why."""

from __future__ import annotations

import pytest

from meshsim.kind.commands import Command, CommandFailed, FakeRunner, KindError
from meshsim.kind.tools import parse_version, preflight

DOCKER_DOWN = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?\n"
)
GOOD = {
    "docker": "27.3.1\n",
    "kind": "kind v0.24.0 go1.22.6 linux/amd64\n",
    "kubectl": "Client Version: v1.31.1\nKustomize Version: v5.4.2\n",
    "istioctl": "client version: 1.24.2\n",
}


def run_preflight(outputs: dict[str, str], missing: set[str] = frozenset()) -> FakeRunner:  # type: ignore[assignment]
    def respond(command: Command) -> str:
        output = outputs[command.argv[0]]
        if output.startswith("FAIL"):
            # what `docker version` says (exit 1) when no daemon runs
            raise CommandFailed(command, 1, DOCKER_DOWN)
        return output

    runner = FakeRunner(respond)
    preflight(runner, which=lambda tool: None if tool in missing else f"/usr/bin/{tool}")
    return runner


def test_all_present_and_recent_runs_each_version_command_once() -> None:
    runner = run_preflight(GOOD)
    assert runner.argvs() == [
        ["docker", "version", "--format", "{{.Server.Version}}"],
        ["kind", "version"],
        ["kubectl", "version", "--client"],
        ["istioctl", "version", "--remote=false"],
    ]


@pytest.mark.parametrize(
    ("tool", "line"),
    [
        ("docker", "docker >= 20.10: not found on PATH (install: Docker Engine or Docker Desktop, https://docs.docker.com/get-docker/)"),
        ("kind", "kind >= 0.24: not found on PATH (install: https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"),
        ("kubectl", "kubectl >= 1.28: not found on PATH (install: https://kubernetes.io/docs/tasks/tools/)"),
        ("istioctl", "istioctl >= 1.24: not found on PATH (install: https://istio.io/latest/docs/setup/additional-setup/download-istio-release/)"),
    ],
)  # fmt: skip
def test_each_missing_tool_gets_its_line(tool: str, line: str) -> None:
    with pytest.raises(KindError) as caught:
        run_preflight(GOOD, missing={tool})
    assert str(caught.value) == (
        f"the kind backend needs these tools; install or upgrade them and run again:\n  - {line}"
    )


def test_everything_missing_or_old_is_listed_in_one_message() -> None:
    old = GOOD | {"istioctl": "1.22.3\n", "kind": "kind v0.20.0 go1.20.4 linux/amd64\n"}
    with pytest.raises(KindError) as caught:
        run_preflight(old, missing={"docker", "kubectl"})
    assert str(caught.value).splitlines() == [
        "the kind backend needs these tools; install or upgrade them and run again:",
        "  - docker >= 20.10: not found on PATH (install: Docker Engine or Docker Desktop, "
        "https://docs.docker.com/get-docker/)",
        "  - kind >= 0.24: found 0.20.0, too old (upgrade: "
        "https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
        "  - kubectl >= 1.28: not found on PATH (install: https://kubernetes.io/docs/tasks/tools/)",
        "  - istioctl >= 1.24: found 1.22.3, too old; ambient mode is GA from Istio 1.24 "
        "(upgrade: https://istio.io/latest/docs/setup/additional-setup/download-istio-release/)",
    ]


def test_a_tool_that_fails_or_prints_no_version_is_reported() -> None:
    broken = GOOD | {"docker": "FAIL", "kubectl": "hmm\n"}
    with pytest.raises(KindError) as caught:
        run_preflight(broken)
    lines = str(caught.value).splitlines()
    assert lines[1] == (
        "  - docker >= 20.10: Cannot connect to the Docker daemon at "
        "unix:///var/run/docker.sock. Is the docker daemon running?"
    )
    assert lines[2] == "  - kubectl >= 1.28: cannot read a version from 'hmm'"


def test_versions_are_read_from_each_tools_own_format() -> None:
    assert parse_version(GOOD["kind"]) == (0, 24, 0)
    assert parse_version(GOOD["kubectl"]) == (1, 31, 1)
    assert parse_version(GOOD["istioctl"]) == (1, 24, 2)
    assert parse_version("1.25-alpha.0") == (1, 25, 0)
    assert parse_version("no version") is None
