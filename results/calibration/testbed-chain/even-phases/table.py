"""The two-pod shape, no mesh, 256 B, by rate: p50 and the echo app's CPU a request,
measured with even phases (this folder) and with random ones (../idle-gap/, 26 Nov).
Run from the repository root: python results/calibration/testbed-chain/even-phases/table.py"""

from pathlib import Path

from meshsim.results import load_run

HERE = Path(__file__).parent


def figures(folder: Path) -> tuple[float, float]:
    """A run's no-mesh p50 (ms) and the echo app's CPU a request (µs)."""
    (path,) = [p for p in folder.glob("*.json") if "as-measured" not in p.name]
    run = load_run(path)
    mode = run.modes["none"]
    (echo,) = [c for c in mode.components if c.name.startswith("echo")]
    return mode.latency_ms.p50, echo.cpu_cores / mode.throughput_rps * 1e6


def main() -> None:
    print(
        "| rate (/s) | gap (ms) | p50 even a / b (ms) | p50 random phases "
        "| echo CPU even a / b (µs a request) | random phases |"
    )
    print("|---|---|---|---|---|---|")
    for rate in (25, 50, 70, 100, 200):
        even = [figures(HERE / f"tp-{rate}-256-{p}") for p in "ab"]
        old = figures(HERE.parent / "idle-gap" / f"tp-{rate}-256-b")
        print(
            f"| {rate} | {1000 / rate:.1f} | {even[0][0]:.3f} / {even[1][0]:.3f} | {old[0]:.3f} "
            f"| {even[0][1]:.0f} / {even[1][1]:.0f} | {old[1]:.0f} |"
        )


if __name__ == "__main__":
    main()
