"""The payload sweep's p50s per mode and body size, from each run's summary, and each mode's
p50 over the no-mesh one (what its proxies add); with --profile, the same simulated, each
mode on the link delays and other work its own window measured (as the calibration does).

    python results/calibration/testbed-chain/payload-sweep/table.py [--suffix -r]
        [--profile profiles/local-haproxy.yaml] [--engine vector|des]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from meshsim.calibrate.dataset import measured_network
from meshsim.loader import load_profile, load_scenario
from meshsim.profile import Profile
from meshsim.results import load_run
from meshsim.run import simulate

HERE = Path(__file__).parent
MODES = ("none", "sidecar", "ambient", "ambient-waypoint")


def p50s(suffix: str, profile: Profile | None, engine: str) -> dict[int, dict[str, float]]:
    """Body bytes -> mode -> p50 (ms): measured, or simulated with the profile."""
    out: dict[int, dict[str, float]] = {}
    for size in sorted(int(f.stem.split("-")[2]) for f in HERE.glob("ps-200-*.yaml")):
        folder = HERE / f"ps-200-{size}{suffix}"
        if not folder.is_dir():
            continue
        run = load_run(folder / f"ps-200-{size}-seed1.json")
        scenario, _ = load_scenario(HERE / f"ps-200-{size}.yaml")
        out[size] = {}
        for mode in run.modes:
            if profile is None:
                out[size][mode] = run.modes[mode].latency_ms.p50
                continue
            one = measured_network(scenario, run, mode)
            sim = simulate(one, profile, modes=[mode], seed=run.seed, engine=engine)
            out[size][mode] = sim.modes[mode].latency_ms.p50
    return out


def table(p50: dict[int, dict[str, float]], title: str) -> None:
    print(f"\n{title}\n| body | " + " | ".join(MODES) + " | " + " | ".join(MODES[1:]) + " |")
    print("|---" * (2 * len(MODES)) + "|")
    for size, modes in p50.items():
        cells = [f"{modes[m]:.3f}" for m in MODES]
        over = [f"{modes[m] - modes['none']:+.3f}" for m in MODES[1:]]
        print(f"| {size / 1024:g} KiB | " + " | ".join(cells + over) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suffix", default="", help="The folders' suffix (a repeat: -r).")
    parser.add_argument("--profile", type=Path, help="Also simulate with this profile.")
    parser.add_argument("--engine", default="vector", choices=["vector", "des"])
    args = parser.parse_args()
    head = "p50 (ms) per mode, then over no mesh"
    table(p50s(args.suffix, None, args.engine), f"measured: {head}")
    if args.profile:
        profile = load_profile(args.profile)
        table(
            p50s(args.suffix, profile, args.engine),
            f"simulated ({args.engine}, {args.profile}): {head}",
        )


if __name__ == "__main__":
    main()
