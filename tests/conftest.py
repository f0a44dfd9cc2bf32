"""Fixtures shared by the test suite."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from meshsim.loader import load_profile
from meshsim.profile import Profile

from .builders import ISTIO


@pytest.fixture(scope="session")
def istio_profile() -> Profile:
    return load_profile(ISTIO)


@pytest.fixture(scope="session", autouse=True)
def _signals_as_from_a_terminal() -> None:
    """The suite asserts what a command does on SIGHUP and SIGTERM as a terminal sends
    them; run under nohup (SIGHUP ignored, inherited by every command started), meshsim
    rightly leaves them ignored. The suite's own process and commands start from the
    terminal's default."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _signal_handlers_as_found() -> Iterator[None]:
    """A command that ends on a signal ignores further ones (signals.exit_interrupted);
    run in this process (CliRunner), it must not leave pytest deaf to Ctrl-C."""
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in stopping}
    yield
    for sig, handler in before.items():
        if handler is not None:
            signal.signal(sig, handler)
