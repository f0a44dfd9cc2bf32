"""`meshsim measure` and `meshsim testbed cleanup`: what they say when they cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import meshsim.testbed.runner as runner
import meshsim.testbed.system as system
from meshsim.cli import main

from .builders import ROOT

CHAIN = str(ROOT / "scenarios" / "testbed-chain.yaml")


def test_measure_explains_what_the_host_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        runner, "missing_requirements", lambda: ["root (network namespaces need it)", "haproxy"]
    )
    result = CliRunner().invoke(main, ["measure", CHAIN, "--mode", "none"])
    assert result.exit_code == 1
    assert result.output.endswith(
        "meshsim measure: the local testbed needs: root (network namespaces need it); haproxy\n"
    )


PACKAGES_MISSING = (
    "measuring needs the Python packages of the testbed extra (pip install -e '.[testbed]'); "
    "missing: cryptography\n"
)


@pytest.mark.parametrize("backend", ["local", "kind"])
def test_measure_names_the_testbed_packages_it_lacks(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Without the testbed extra, `measure` says what to install instead of a traceback
    from an import (the kind backend's manifests import the certificates' helpers too)."""
    monkeypatch.setattr(system, "missing_packages", lambda: ["cryptography"])
    result = CliRunner().invoke(main, ["measure", CHAIN, "--backend", backend, "--mode", "none"])
    assert result.exit_code == 1
    assert result.output == "meshsim measure: " + PACKAGES_MISSING


def test_calibrate_names_the_testbed_packages_it_lacks_before_measuring(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(system, "missing_packages", lambda: ["cryptography"])
    result = CliRunner().invoke(main, ["calibrate", CHAIN, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.endswith("Error: " + PACKAGES_MISSING)
    assert not list((tmp_path / "dataset").glob("*/*.json"))  # nothing measured


def test_measure_reports_bad_input_with_exit_code_2() -> None:
    result = CliRunner().invoke(main, ["measure", "no-such-scenario.yaml"])
    assert result.exit_code == 2
    assert "no-such-scenario.yaml:1:1: cannot read" in result.output


def test_cleanup_refuses_a_malformed_run_id() -> None:
    result = CliRunner().invoke(main, ["testbed", "cleanup", "--run", "../etc"])
    assert result.exit_code == 2
    assert result.output == (
        "meshsim testbed cleanup: not a testbed run id: '../etc' (expected 8 hex digits)\n"
    )


def test_cleanup_of_a_run_with_nothing_left_says_so() -> None:
    result = CliRunner().invoke(main, ["testbed", "cleanup", "--run", "deadbeef"])
    assert result.exit_code == 0
    assert result.output.startswith("run deadbeef: nothing of it is left (runs with leftovers: ")
