"""The calibration dataset: every measured run of a grid, with what it was measured on.

    DIR/dataset/manifest.json       grid, split, host facts, software versions, settings
    DIR/dataset/SETTING/scenario.yaml   the scenario variant as measured (link delays in)
    DIR/dataset/SETTING/*.json|csv      the measured RunResult (meshsim.results files)

A setting already in the folder is not measured again, so an interrupted calibration
resumes, and a dataset can be refitted without the testbed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from meshsim import __version__
from meshsim.loader import YamlLoader, dump_yaml, load_run_file
from meshsim.results import RunResult, result_files, write_atomically
from meshsim.scenario import NetworkDelays, Scenario
from meshsim.topology import node_cores

__all__ = [
    "host_facts",
    "load_measured",
    "measured_background",
    "measured_network",
    "save_measured",
    "software_versions",
    "write_manifest",
]


def host_facts() -> dict[str, Any]:
    """What the measurements depend on: CPU model and count, memory, kernel, load."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kib = 0
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "load_average": list(os.getloadavg()),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def software_versions() -> dict[str, str]:
    try:
        proc = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False)
        haproxy = proc.stdout.splitlines()[0] if proc.stdout else "unknown"
    except OSError:
        haproxy = "not installed"
    versions = {"meshsim": __version__, "python": platform.python_version(), "haproxy": haproxy}
    for package in ("locust", "aiohttp", "numpy", "scipy", "simpy", "numba"):
        versions[package] = _version(package)
    return versions


def measured_network(scenario: Scenario, run: RunResult, mode: str | None = None) -> Scenario:
    """The scenario as the testbed measured it, as the simulator must use it: the link
    delays it measured and the other work it found on each node's cores, that of `mode`'s
    window (without a mode: the mean over the run's modes)."""
    cluster = scenario.cluster
    if run.network is not None:
        net = run.network
        delays = NetworkDelays(
            same_node_ms=net.same_node_ms,
            cross_node_ms=net.cross_node_ms,
            cross_zone_ms=net.cross_zone_ms,
        )
        cluster = cluster.model_copy(update={"network": delays})
    background = measured_background(run, mode)
    if background:
        cores = node_cores(scenario)
        capped = {n: min(b, BACKGROUND_CAP * cores.get(n, math.inf)) for n, b in background.items()}
        cluster = cluster.model_copy(update={"background_cores": capped})
    return scenario.model_copy(update={"cluster": cluster})


# Other work measured at or beyond a node's cores (the host saturated, and the meter's own
# rounding) is taken as this share of them: a scenario must leave its apps some core.
BACKGROUND_CAP = 0.99


def saturated_nodes(scenario: Scenario, run: RunResult) -> dict[str, float]:
    """Nodes whose cores other work took (nearly) all of in some mode's window: node ->
    the most background measured. Such a measurement is of the host, not the scenario."""
    cores = node_cores(scenario)
    most: dict[str, float] = {}
    for result in run.modes.values():
        for node, busy in result.background_cores.items():
            if node in cores and busy >= BACKGROUND_CAP * cores[node]:
                most[node] = max(most.get(node, 0.0), busy)
    return most


def measured_background(run: RunResult, mode: str | None = None) -> dict[str, float]:
    """The background cores by node of one mode's window, or their mean over the modes."""
    windows = [run.modes[mode]] if mode is not None else list(run.modes.values())
    nodes = sorted({n for w in windows for n in w.background_cores})
    return {
        n: round(sum(w.background_cores.get(n, 0.0) for w in windows) / len(windows), 6)
        for n in nodes
    }


def save_measured(folder: Path, scenario: Scenario, run: RunResult) -> Path:
    """Write one setting's measured run and its scenario (as measured), all at once (the
    summary JSON marks a setting measured); returns the summary JSON."""
    doc = measured_network(scenario, run).model_dump(mode="json", exclude_none=True)
    header = f"# {scenario.name} as measured (link delays from the testbed), {time.ctime()}\n"
    files: dict[Path, str | bytes] = {
        folder / name: text for name, text in result_files(run).items()
    }
    files[folder / "scenario.yaml"] = header + dump_yaml(doc)
    written = write_atomically(files)
    return next(p for p in written if p.suffix == ".json")


def load_measured(folder: Path, scenario: Scenario) -> RunResult | None:
    """The measured run of a setting, if its folder has it (one summary per folder);
    InputError naming the file, line and field when it does not read back."""
    found = sorted(folder.glob(f"{scenario.name}-seed*.json"))
    return load_run_file(found[0]) if found else None


def changed_since_measured(folder: Path, scenario: Scenario, run: RunResult) -> list[str]:
    """What differs (top-level scenario fields) between the scenario a setting's run was
    measured from (its scenario.yaml) and the setting's scenario now; empty if nothing
    does. The modes are not compared (a grid's modes changed since: the modes measured
    are used, the others measured). A folder without a readable scenario.yaml differs in
    "scenario.yaml"."""
    try:
        doc = yaml.load((folder / "scenario.yaml").read_text(encoding="utf-8"), Loader=YamlLoader)
        stored = Scenario.model_validate(doc)
    except (OSError, yaml.YAMLError, ValueError):
        return ["scenario.yaml"]
    now = measured_network(scenario, run)
    now = now.model_copy(update={"mesh": now.mesh.model_copy(update={"modes": stored.mesh.modes})})
    if stored == now:
        return []
    a, b = stored.model_dump(mode="json"), now.model_dump(mode="json")
    return [k for k in b if a.get(k) != b[k]] or ["scenario.yaml"]


def write_manifest(path: Path, doc: dict[str, Any]) -> None:
    write_atomically({path: json.dumps(doc, indent=2) + "\n"})
