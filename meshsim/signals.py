"""SIGTERM as an exception, so that a measured run's `finally` blocks tear it down.

Both testbeds create things that outlive their process if it dies (network namespaces,
kind clusters); Ctrl-C already unwinds through `finally`, and inside this context SIGTERM
(what CI runners and `kill` send) does too.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Terminated", "sigterm_unwinds"]


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM."""


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Inside, SIGTERM raises Terminated. Signal handlers belong to the main thread, so
    elsewhere (a run inside a worker thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
