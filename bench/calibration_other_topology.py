"""Does a calibrated profile predict a testbed shape it was not fitted on?

The calibration grid (scenarios/grids/testbed-chain.yaml) measures the three-service chain
and the two-pod shape (one echo pod behind the load generator). This script measures
another shape on the local testbed, by default two echo replicas on node-2 (a third
sidecar, two endpoints, load balanced), or any testbed scenario as written (--scenario
scenarios/testbed-fanout.yaml --replicas 0: a gateway calling four services in parallel),
writes it as a scenario per mode with the measured link delays, the other work that mode's
window found on the nodes' cores, and the calibrated profile (ten times the measured window,
as the calibration predicts), simulates each with
`meshsim run`, and prints `meshsim compare` of the measured and simulated runs, with the
issue's bounds.

    python bench/calibration_other_topology.py [--profile local-haproxy] [--out DIR]

Needs what `meshsim measure --backend local` needs (root, HAProxy, iptables). Takes
about two minutes. Not a test: it measures real processes on a shared host.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from meshsim.calibrate.calibration import PREDICTION_SPAN, prediction_scenario
from meshsim.calibrate.dataset import measured_network, save_measured
from meshsim.loader import load_scenario
from meshsim.results import load_run, write_results
from meshsim.testbed.runner import measure_local

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "testbed-two-pods.yaml"))
    parser.add_argument("--profile", default="local-haproxy")
    parser.add_argument(
        "--replicas", type=int, default=2, help="Replicas of the first workload; 0: as written."
    )
    parser.add_argument(
        "--out", type=Path, help="Default: results/calibration/other-topology-<shape's name>."
    )
    parser.add_argument("--reuse", action="store_true", help="Use the measurement in --out.")
    parser.add_argument(
        "--duration",
        type=float,
        help="Seconds of load per mode, warm-up included (default: the scenario's). A "
        "20 s run's p99 rests on 15 requests at 100/s: two such runs of one shape differ "
        "by about 20%% in p99.",
    )
    args = parser.parse_args()
    base, prior = load_scenario(args.scenario)
    if args.duration is not None:
        if args.duration <= base.traffic.warmup_s:
            parser.error(
                f"--duration must be longer than the warm-up ({base.traffic.warmup_s:g} s)"
            )
        traffic = base.traffic.model_copy(update={"duration_s": args.duration})
        base = base.model_copy(update={"traffic": traffic})
    scenario = base
    if args.replicas:
        first = base.workloads[0].model_copy(update={"replicas": args.replicas})
        scenario = base.model_copy(
            update={
                "name": f"{base.name}-{args.replicas}-replicas",
                "workloads": [first, *base.workloads[1:]],
            }
        )
    out: Path = args.out or ROOT / "results" / "calibration" / f"other-topology-{scenario.name}"
    measured_dir = out / "measured"
    summary = measured_dir / f"{scenario.name}-seed{scenario.seed}.json"
    if not (args.reuse and summary.is_file()):
        run = measure_local(scenario, prior, say=lambda s: print(s, file=sys.stderr))
        summary = save_measured(measured_dir, scenario, run)
    # the scenario as the scenario file states it (the app's memory is a fact of the app,
    # not of one run), on the links measured in that run and with the other work each
    # mode's window found on the nodes' cores, with the calibrated profile: what
    # `meshsim run` simulates, one file per mode, built as the calibration builds its points
    measured = load_run(summary)
    meshsim = [sys.executable, "-c", "from meshsim.cli import main; main()"]
    modes = {}
    for mode in measured.modes:
        # simulated for PREDICTION_SPAN times the measured window, as the calibration
        # predicts: the model's figures, without a short window's sampling noise of their own
        shape = prediction_scenario(measured_network(scenario, measured, mode))
        doc = shape.model_dump(mode="json", exclude_none=True)
        doc["profile"] = args.profile
        as_measured = out / f"{scenario.name}-{mode}.yaml"
        as_measured.write_text(
            "# Written by bench/calibration_other_topology.py: the measured shape, its measured\n"
            f"# link delays and the background {mode}'s window found, the calibrated profile;\n"
            f"# {PREDICTION_SPAN} times the measured window (meshsim.calibrate.calibration).\n"
            + yaml.safe_dump(doc, sort_keys=False)
        )
        mode_dir = out / "simulated" / mode
        subprocess.run(
            [*meshsim, "run", str(as_measured), "--mode", mode, "--engine", "vector",
             "--out", str(mode_dir)],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        run = load_run(mode_dir / f"{scenario.name}-seed{scenario.seed}.json")
        modes[mode] = run.modes[mode]
    sim_dir = out / "simulated"
    write_results(run.model_copy(update={"modes": modes}), sim_dir)
    simulated = sim_dir / f"{scenario.name}-seed{scenario.seed}.json"
    table = subprocess.run(
        [*meshsim, "compare", str(summary), str(simulated)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "140"},
    ).stdout
    (out / "compare.txt").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
