"""SIGTERM and SIGHUP as an exception, so that a measured run's `finally` blocks tear it
down.

Both testbeds create things that outlive their process if it dies (network namespaces,
kind clusters); Ctrl-C already unwinds through `finally`, and inside this context SIGTERM
(what CI runners and `kill` send) and SIGHUP (the terminal closed, an SSH session
dropped: the testbed's processes, in sessions of their own, do not get it) do too.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["INTERRUPTED", "Terminated", "sigterm_unwinds"]

INTERRUPTED = 130  # the shell's exit code for a command ended by Ctrl-C


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM or SIGHUP."""


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Inside, SIGTERM and SIGHUP raise Terminated (unless they were set to be ignored, as
    nohup does). Signal handlers belong to the main thread, so elsewhere (a run inside a
    worker thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signal.Signals(signum).name)

    # a signal set to be ignored stays ignored: `nohup meshsim ...` keeps running when its
    # terminal closes, as the user asked
    previous = {
        sig: signal.signal(sig, on_term)
        for sig in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
