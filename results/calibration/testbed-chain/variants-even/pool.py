"""Pool calibration datasets of one grid measured at different times into one dataset: each
setting's runs of every dataset as one measurement of it (latency histograms added, the
percentiles read from the sum; CPU, memory, connections and the nodes' other work averaged
over the windows; link delays averaged), for `meshsim calibrate --no-measure`.

    python pool.py OUT DATASET_DIR [DATASET_DIR ...]   (each with a dataset/ folder)

Percentiles from a histogram are within its bins (2.3% wide), not the raw latencies'.
"""

import shutil
import sys
from pathlib import Path

import numpy as np

from meshsim.calibrate.dataset import save_measured
from meshsim.loader import load_scenario
from meshsim.results import (
    ByComponent,
    LatencyHistogram,
    LatencyMs,
    MeasuredNetwork,
    ModeResult,
    RunResult,
    load_run,
)


def percentiles_ms(hist: LatencyHistogram, qs: list[float]) -> list[float]:
    """Percentiles of a histogram, interpolated geometrically within the bin."""
    counts = np.asarray(hist.counts, float)
    cum = np.cumsum(counts)
    edges = LatencyHistogram.edges_us()
    out = []
    for q in qs:
        target = q * cum[-1]
        i = int(np.searchsorted(cum, target))
        below = cum[i - 1] if i else 0.0
        frac = (target - below) / counts[i]
        out.append(float(edges[i] * (edges[i + 1] / edges[i]) ** frac / 1e3))
    return out


def mean(values: list[float], weights: list[float]) -> float:
    return float(np.dot(values, weights) / np.sum(weights))


def pool_modes(ms: list[ModeResult]) -> ModeResult:
    w = [m.window_s for m in ms]
    hist = ms[0].histogram
    for m in ms[1:]:
        hist = hist + m.histogram
    p50, p90, p99, p999 = percentiles_ms(hist, [0.5, 0.9, 0.99, 0.999])
    requests = [float(m.requests) for m in ms]
    latency = LatencyMs(
        mean=mean([m.latency_ms.mean for m in ms], requests), p50=p50, p90=p90, p99=p99, p999=p999
    )
    components = []
    for c in ms[0].components:
        same = [next(x for x in m.components if x.name == c.name) for m in ms]
        update = {
            "cpu_cores": mean([x.cpu_cores for x in same], w),
            "memory_mib": mean([x.memory_mib for x in same], w),
            "handshakes": sum(x.handshakes for x in same),
            "connections_open": mean([x.connections_open for x in same], w),
        }
        components.append(c.model_copy(update=update))

    def by_component(attr: str) -> ByComponent:
        parts = ("total", "app", "sidecar", "ztunnel", "waypoint")
        return ByComponent(
            **{k: mean([getattr(getattr(m, attr), k) for m in ms], w) for k in parts}
        )

    nodes = sorted({n for m in ms for n in m.background_cores})
    update = {
        "requests": sum(m.requests for m in ms),
        "errors": sum(m.errors for m in ms),
        "throughput_rps": sum(requests) / sum(w),
        "latency_ms": latency,
        "cpu_cores": by_component("cpu_cores"),
        "memory_mib": by_component("memory_mib"),
        "handshakes_per_s": mean([m.handshakes_per_s for m in ms], w),
        "connections_open": mean([m.connections_open for m in ms], w),
        "cost_usd_month": mean([m.cost_usd_month for m in ms], w),
        "window_s": sum(w),
        "components": components,
        "histogram": hist,
        "background_cores": {
            n: mean([m.background_cores.get(n, 0.0) for m in ms], w) for n in nodes
        },
    }
    return ms[0].model_copy(update=update)


def pool_runs(runs: list[RunResult]) -> RunResult:
    nets = [r.network for r in runs if r.network is not None]
    network = MeasuredNetwork(
        same_node_ms=float(np.mean([n.same_node_ms for n in nets])),
        cross_node_ms=float(np.mean([n.cross_node_ms for n in nets])),
        cross_zone_ms=float(np.mean([n.cross_zone_ms for n in nets])),
        links=[link for n in nets for link in n.links],
    )
    modes = {m: pool_modes([r.modes[m] for r in runs]) for m in runs[0].modes}
    return runs[0].model_copy(update={"modes": modes, "network": network})


def main() -> None:
    out, sources = Path(sys.argv[1]), [Path(s) for s in sys.argv[2:]]
    (out / "dataset").mkdir(parents=True, exist_ok=True)
    for folder in sorted(p for p in (sources[0] / "dataset").iterdir() if p.is_dir()):
        runs = [load_run(next((s / "dataset" / folder.name).glob("*-seed*.json"))) for s in sources]
        scenario, _ = load_scenario(folder / "scenario.yaml")
        save_measured(out / "dataset" / folder.name, scenario, pool_runs(runs))
    shutil.copy(sources[0] / "dataset" / "manifest.json", out / "dataset" / "manifest.json")


if __name__ == "__main__":
    main()
