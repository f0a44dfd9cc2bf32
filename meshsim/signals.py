"""SIGTERM and SIGHUP as an exception, so that a measured run's `finally` blocks tear it
down.

Both testbeds create things that outlive their process if it dies (network namespaces,
kind clusters); Ctrl-C already unwinds through `finally`, and inside this context SIGTERM
(what CI runners and `kill` send) and SIGHUP (the terminal closed, an SSH session
dropped: the testbed's processes, in sessions of their own, do not get it) do too.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

__all__ = [
    "INTERRUPTED",
    "STOPPING",
    "Terminated",
    "deferred",
    "exit_interrupted",
    "exit_stopped",
    "sigterm_unwinds",
]

INTERRUPTED = 130  # the shell's exit code for a command ended by Ctrl-C
# what asks a command to stop: Ctrl-C, `kill` or a CI runner's timeout, the terminal closed
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM or SIGHUP."""


@contextmanager
def _answered_by(handler: Any, sigs: tuple[int, ...], previous: dict[int, Any]) -> Iterator[None]:
    """Inside, `handler` answers `sigs`; `previous` gets the handler each had, and each is
    put back at the end. A signal set to be ignored stays ignored (`nohup meshsim ...`
    keeps running when its terminal closes, as the user asked); one whose handler was
    installed outside Python (it reads as None, and could not be put back) is left alone.
    Signal handlers belong to the main thread: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        for sig in sigs:
            current = signal.getsignal(sig)
            if current not in (signal.SIG_IGN, None):
                previous[sig] = current
                signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Inside, SIGTERM and SIGHUP raise Terminated (unless they were set to be ignored, as
    nohup does). Signal handlers belong to the main thread, so elsewhere (a run inside a
    worker thread) this does nothing."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signal.Signals(signum).name)

    with _answered_by(on_term, (signal.SIGTERM, signal.SIGHUP), {}):
        yield


@contextmanager
def deferred() -> Iterator[None]:
    """Inside, Ctrl-C, SIGTERM and SIGHUP wait: a block that must not be cut short (files
    renamed into place all or none, a testbed's teardown) runs to its end, and then the
    first signal that came is delivered to the handler that was in place before (Ctrl-C
    raises KeyboardInterrupt there, as if it had come just then). Signals set to be ignored
    stay ignored. Outside the main thread (where Python runs every signal handler, so no
    signal interrupts this thread's block anyway) it does nothing."""
    pending: list[int] = []
    previous: dict[int, Any] = {}
    over = False

    def hold(signum: int, frame: FrameType | None) -> None:
        if not over:
            pending.append(signum)
        else:  # left in place by a signal that came while the handlers were put back
            _deliver(signum, previous[signum], frame)

    try:
        with _answered_by(hold, STOPPING, previous):
            try:
                yield
            finally:
                over = True
    finally:
        if pending:  # one is enough: the first ends the command, the rest ask the same
            signal.raise_signal(pending[0])


def _deliver(signum: int, handler: Any, frame: FrameType | None) -> None:
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def exit_interrupted(message: str) -> NoReturn:
    """End the command on Ctrl-C, SIGTERM or SIGHUP: say so on stderr and exit 130. From
    here those signals are ignored: pressed again while the message is written or while
    Python shuts down (which puts a handler set in Python back to the default, so a second
    Ctrl-C would end the process by the signal, not with 130), they change nothing."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOPPING:
            signal.signal(sig, signal.SIG_IGN)
    print(message, file=sys.stderr, flush=True)
    sys.exit(INTERRUPTED)


def exit_stopped(err: KeyboardInterrupt) -> NoReturn:
    """exit_interrupted for a command stopped by `err`: "meshsim: interrupted" (Ctrl-C) or
    "meshsim: stopped (SIGTERM)" (or SIGHUP)."""
    how = f"stopped ({err})" if isinstance(err, Terminated) else "interrupted"
    exit_interrupted(f"meshsim: {how}")
