"""Signals that must wait: a block run under signals.deferred() is never cut short, and
the signal comes, once, when it ends."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from meshsim.kind.commands import Command, SubprocessRunner
from meshsim.results import write_atomically
from meshsim.signals import Terminated, deferred, sigterm_unwinds
from meshsim.testbed.system import sh


def test_ctrl_c_inside_comes_once_the_block_is_done() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # pressed twice: still one interrupt
            done.append("rest of the block")
        done.append("after the block")  # pragma: no cover - the interrupt comes first
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_reach_the_handler_in_place_before(sig: int) -> None:
    done = []
    with pytest.raises(Terminated, match=signal.Signals(sig).name), sigterm_unwinds(), deferred():
        os.kill(os.getpid(), sig)
        done.append("rest of the block")
    assert done == ["rest of the block"]


def test_nothing_comes_when_no_signal_came_and_ignored_stays_ignored() -> None:
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with deferred():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_outside_the_main_thread_nothing_changes() -> None:
    seen: list[Any] = []

    def run() -> None:
        with deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


@pytest.mark.parametrize(("at", "call"), [("mkstemp", 2), ("replace", 2), ("unlink", 1)])
def test_a_real_signal_anywhere_in_a_write_leaves_the_whole_new_set_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: str, call: int
) -> None:
    """Ctrl-C while a temporary file is being made (before any record of it), between two
    renames, or while the old files are being removed: the new set is whole, nothing else
    is left in the folder, and the interrupt comes after."""
    (tmp_path / "a.json").write_text("old\n")
    files = {tmp_path / "a.json": "new\n", tmp_path / "b.csv": "b\n", tmp_path / "c.csv": "c\n"}
    module: Any = tempfile if at == "mkstemp" else os
    real = getattr(module, at)
    calls = []

    def with_a_signal(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        out = real(*args, **kwargs)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(module, at, with_a_signal)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(files)
    monkeypatch.setattr(module, at, real)
    assert len(calls) >= call
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        p.name: text for p, text in files.items()
    }


OWN_SESSION = (sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid())")


def test_commands_run_in_a_session_of_their_own() -> None:
    """The terminal sends Ctrl-C and SIGHUP to the whole job: a command meshsim runs (an
    `ip netns del`, a `kind delete cluster` of a teardown) must get them only through
    meshsim, which lets a teardown's commands finish."""
    assert SubprocessRunner().run(Command(OWN_SESSION)).strip() == "True"
    assert sh(OWN_SESSION).strip() == "True"
    background = SubprocessRunner().start(Command(OWN_SESSION))
    assert background.wait(60) == 0 and background.output_tail().strip() == "True"


def test_a_signal_while_the_handlers_are_put_back_swallows_no_later_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C right after its handler is put back interrupts the putting back: a handler
    left holding then passes later signals on, as the one it stood in for would."""
    real = signal.signal
    restoring: list[int] = []

    def put_back(sig: int, handler: Any) -> Any:
        out = real(sig, handler)
        if sig == signal.SIGINT and handler is signal.default_int_handler and not restoring:
            restoring.append(sig)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    with sigterm_unwinds():
        with pytest.raises(KeyboardInterrupt), deferred():
            monkeypatch.setattr(signal, "signal", put_back)
        monkeypatch.setattr(signal, "signal", real)
        assert restoring == [signal.SIGINT]
        with pytest.raises(Terminated, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
