"""Signals that must wait: a block run under signals.deferred() is never cut short, and
the signal comes, once, when it ends."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from meshsim.results import write_atomically
from meshsim.signals import Terminated, deferred, sigterm_unwinds


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
