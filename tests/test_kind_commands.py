"""The kind backend's command seam: what a Command prints as, and the real runner's
handling of output, failures, missing tools and background processes (local commands
only: sh, sleep)."""

from __future__ import annotations

import pytest

from meshsim.kind.commands import Command, CommandFailed, KindError, SubprocessRunner


def test_a_command_prints_as_a_shell_line_with_its_manifest_as_a_here_document() -> None:
    command = Command(("kubectl", "apply", "-f", "-"), stdin="kind: Namespace\n")
    assert command.shell() == "kubectl apply -f - <<'EOF'\nkind: Namespace\nEOF"
    spaced = Command(("sh", "-c", "echo a b"), background=True)
    assert spaced.shell() == "sh -c 'echo a b' &"


def test_shell_variables_expand_in_the_plan_and_are_filled_in_to_run() -> None:
    command = Command(("kubectl", "cp", "load/$LOADGEN_POD:/work/x.npy", "x.npy"))
    assert command.shell() == 'kubectl cp "load/$LOADGEN_POD:/work/x.npy" x.npy'
    filled = command.with_value("$LOADGEN_POD", "loadgen-0-abc")
    assert filled.argv == ("kubectl", "cp", "load/loadgen-0-abc:/work/x.npy", "x.npy")
    setter = Command(("kubectl", "get", "pods", "-o", "name"), sets="POD")
    assert setter.shell() == "POD=$(kubectl get pods -o name)"


def test_the_runner_returns_stdout_and_passes_stdin() -> None:
    runner = SubprocessRunner()
    assert runner.run(Command(("sh", "-c", "cat; echo out"), stdin="in\n")) == "in\nout\n"


def test_a_failing_command_says_what_failed_with_its_code_and_stderr() -> None:
    with pytest.raises(CommandFailed) as caught:
        SubprocessRunner().run(Command(("sh", "-c", "echo no such pod >&2; exit 3")))
    assert caught.value.code == 3 and caught.value.detail == "no such pod"
    assert (
        str(caught.value) == "`sh -c 'echo no such pod >&2; exit 3'` failed (exit 3): no such pod"
    )


def test_a_missing_tool_is_a_kind_error_not_a_traceback() -> None:
    with pytest.raises(KindError, match=r"^meshsim-no-such-tool: not found on PATH$"):
        SubprocessRunner().run(Command(("meshsim-no-such-tool", "version")))
    with pytest.raises(KindError, match=r"^meshsim-no-such-tool: not found on PATH$"):
        SubprocessRunner().start(Command(("meshsim-no-such-tool",)))


def test_a_background_command_is_waited_for_and_its_output_kept() -> None:
    process = SubprocessRunner().start(
        Command(("sh", "-c", "echo started; echo done"), background=True)
    )
    assert process.wait(30) == 0
    assert process.output_tail() == "started\ndone"
    assert process.poll() == 0


def test_a_background_command_that_overruns_is_killed_and_reported() -> None:
    process = SubprocessRunner().start(Command(("sleep", "60")))
    with pytest.raises(KindError, match=r"^`sleep 60` did not finish in 0.5 s"):
        process.wait(0.5)
    assert process.poll() is not None  # killed, not left running
