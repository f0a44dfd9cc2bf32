"""SIGTERM unwinds a kind run like Ctrl-C: its namespaces and cluster are removed."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from meshsim.kind import measure_kind
from meshsim.kind.commands import Command, FakeClock, FakeRunner
from meshsim.loader import load_profile
from meshsim.signals import Terminated, sigterm_unwinds
from tests.builders import ISTIO, base_scenario, scenario_of


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_raise_inside_and_the_old_handlers_come_back(sig: int) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(Terminated, match=signal.Signals(sig).name), sigterm_unwinds():
        os.kill(os.getpid(), sig)
    assert signal.getsignal(sig) == before


def test_outside_the_main_thread_it_changes_nothing() -> None:
    seen: list[object] = []

    def run() -> None:
        with sigterm_unwinds():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]


def test_a_run_terminated_mid_way_removes_what_it_made() -> None:
    def respond(command: Command) -> str:
        argv = list(command.argv)
        if argv[1:2] == ["version"]:
            return {"docker": "27.3.1", "kind": "kind v0.24.0", "kubectl": "v1.31.1",
                    "istioctl": "1.24.2"}[argv[0]]  # fmt: skip
        if argv[3:] == ["get", "nodes", "-o", "name"]:
            return "node/meshsim-0badcafe-worker\n"
        if argv[3:4] == ["-n"] and "wait" in argv:
            os.kill(os.getpid(), signal.SIGTERM)  # as CI's timeout would, mid-run
        return ""

    runner = FakeRunner(respond)
    with pytest.raises(Terminated):
        measure_kind(
            scenario_of(base_scenario(traffic={"entry": "app", "open_loop": {"rate_rps": 5},
                                               "duration_s": 40, "warmup_s": 5})),
            load_profile(ISTIO), runner=runner, clock=FakeClock(), which=lambda t: t,
            run_id="0badcafe",
        )  # fmt: skip
    last = [" ".join(c.argv[3:5]) if c.argv[0] == "kubectl" else " ".join(c.argv[:3])
            for c in runner.commands[-2:]]  # fmt: skip
    assert last == ["delete namespace", "kind delete cluster"]


def test_a_signal_set_to_be_ignored_stays_ignored() -> None:
    """nohup sets SIGHUP to be ignored: a long run started so must outlive its terminal."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with sigterm_unwinds():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing raised
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
