"""Running the cluster tools: one Command type, a runner that executes it, and a fake.

Everything the kind backend does to a cluster is a Command (argv plus optional stdin),
so the same list can be executed, printed as a plan (`--dry-run`), or recorded by
`FakeRunner` in tests that assert the exact sequence.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, Protocol

__all__ = [
    "Background",
    "Clock",
    "Command",
    "CommandFailed",
    "FakeClock",
    "FakeRunner",
    "KindError",
    "Runner",
    "SubprocessRunner",
    "SystemClock",
]


class KindError(RuntimeError):
    """The kind backend could not set up, run or read a measurement."""


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    stdin: str | None = None  # a manifest or config piped in (`-f -`, `--config -`)
    why: str = ""  # one line for the printed plan
    background: bool = False  # started, left running, waited for later
    sets: str = ""  # a shell variable its output sets (the plan prints NAME=$(...))
    tag: str = ""  # what the run does with its output ("probe", "rtt", "inventory")

    def shell(self) -> str:
        """The command as one would type it; a manifest follows as a here-document, and an
        argument naming a shell variable ($NAME) is double-quoted so that it expands."""
        text = " ".join(
            f'"{a}"' if "$" in a and re.fullmatch(r"[\w./:$-]+", a) else shlex.quote(a)
            for a in self.argv
        )
        if self.background:
            text += " &"
        if self.sets:
            text = f"{self.sets}=$({text})"
        if self.stdin is not None:
            text += " <<'EOF'\n" + self.stdin.rstrip("\n") + "\nEOF"
        return text

    def with_value(self, variable: str, value: str) -> Command:
        """This command with a shell variable's value filled in."""
        argv = tuple(a.replace(variable, value) for a in self.argv)
        return replace(self, argv=argv)


class Background(Protocol):
    """A command left running (Locust), waited for later."""

    def poll(self) -> int | None: ...

    def wait(self, timeout_s: float) -> int: ...

    def output_tail(self) -> str: ...

    def kill(self) -> None: ...


class Runner(Protocol):
    def run(self, command: Command) -> str:
        """Run to completion; return stdout, or raise KindError saying what failed."""
        ...

    def start(self, command: Command) -> Background: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass
class FakeClock:
    """Time that passes only when slept through, so a test of a 30 s run takes no time."""

    at: float = 1_700_000_000.0

    def now(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.at += max(0.0, seconds)


class CommandFailed(KindError):
    """A command exited non-zero; `detail` is what it said."""

    def __init__(self, command: Command, code: int, detail: str):
        self.command, self.code, self.detail = command, code, detail.strip()
        super().__init__(f"`{shlex.join(command.argv)}` failed (exit {code}): {self.detail}")


class _Process:
    def __init__(self, command: Command):
        self.command = command
        self.log: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 (lives with the process)
        self.popen = subprocess.Popen(
            list(command.argv),
            stdin=subprocess.PIPE if command.stdin is not None else subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # stopped by meshsim (kill), not by the terminal
        )
        if command.stdin is not None and self.popen.stdin is not None:
            self.popen.stdin.write(command.stdin)
            self.popen.stdin.close()

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout_s: float) -> int:
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise KindError(
                f"`{shlex.join(self.command.argv)}` did not finish in {timeout_s:g} s:\n"
                f"{self.output_tail()}"
            ) from exc

    def output_tail(self, lines: int = 20) -> str:
        self.log.seek(0)
        return "\n".join(self.log.read().splitlines()[-lines:])

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


class SubprocessRunner:
    """Runs commands on this machine; `say` hears each one before it runs."""

    def __init__(self, say: Callable[[str], None] | None = None):
        self.say = say

    def run(self, command: Command) -> str:
        if self.say is not None:
            self.say("$ " + shlex.join(command.argv))
        try:
            # in a session of its own: the terminal's Ctrl-C and SIGHUP reach meshsim, which
            # ends a command it is waiting for (subprocess.run kills it as the interrupt
            # passes) but lets its teardown's commands finish (signals.deferred); sent to
            # the whole job, they killed `kind delete cluster` half way
            proc = subprocess.run(
                list(command.argv),
                input=command.stdin,
                capture_output=True,
                text=True,
                check=False,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise KindError(f"{command.argv[0]}: not found on PATH") from None
        if proc.returncode != 0:
            raise CommandFailed(command, proc.returncode, proc.stderr or proc.stdout)
        return proc.stdout

    def start(self, command: Command) -> Background:
        if self.say is not None:
            self.say("$ " + shlex.join(command.argv) + " &")
        try:
            return _Process(command)
        except FileNotFoundError:
            raise KindError(f"{command.argv[0]}: not found on PATH") from None


Responder = Callable[[Command], str]


@dataclass
class _FakeBackground:
    command: Command
    code: int = 0
    waited: bool = False

    def poll(self) -> int | None:
        return self.code if self.waited else None

    def wait(self, timeout_s: float) -> int:
        self.waited = True
        return self.code

    def output_tail(self) -> str:
        return ""

    def kill(self) -> None:
        self.waited = True


@dataclass
class FakeRunner:
    """Records every command; `respond` plays the cluster (its output, or KindError)."""

    respond: Responder = field(default=lambda command: "")
    commands: list[Command] = field(default_factory=list)
    started: list[Command] = field(default_factory=list)

    def run(self, command: Command) -> str:
        self.commands.append(command)
        return self.respond(command)

    def start(self, command: Command) -> Background:
        self.commands.append(command)
        self.started.append(command)
        return _FakeBackground(command)

    def argvs(self) -> list[list[str]]:
        return [list(c.argv) for c in self.commands]
