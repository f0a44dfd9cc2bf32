"""CPU and memory per component from the kubelet's resource metrics.

`kubectl get --raw /api/v1/nodes/NODE/proxy/metrics/resource` returns Prometheus text,
one sample per container, each stamped with the time (ms) the kubelet took it:

    container_cpu_usage_seconds_total{container="app",namespace="web",pod="fe"} 12.5 1732623456789
    container_memory_working_set_bytes{container="app",namespace="web",pod="fe"} 4e+07 1732623456789

The kubelet refreshes these every 10-15 s, so CPU is the counter's difference between
the first and last refreshes *inside* the window divided by the time between them (their
own timestamps, not when we scraped), and memory is the mean working set over the
refreshes inside the window. Containers are attributed to the topology's components:
`app` in app pods; `istio-proxy` in app pods (sidecar), in the ztunnel DaemonSet's pods
of istio-system (ztunnel), and in waypoint pods (waypoint); `loadgen` in the load pod.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from meshsim.kind.commands import KindError

__all__ = [
    "CPU_METRIC",
    "MEMORY_METRIC",
    "ContainerKey",
    "Point",
    "Target",
    "parse_samples",
    "resource_points",
    "usage_over_window",
]

CPU_METRIC = "container_cpu_usage_seconds_total"
MEMORY_METRIC = "container_memory_working_set_bytes"
MIB = 1024.0 * 1024.0

Kind = Literal["app", "loadgen", "sidecar", "ztunnel", "waypoint"]


@dataclass(frozen=True)
class ContainerKey:
    namespace: str
    pod: str
    container: str


@dataclass(frozen=True)
class Point:
    """One container's counters as the kubelet last refreshed them."""

    cpu_s: float
    cpu_at_s: float
    memory_bytes: float
    memory_at_s: float


@dataclass(frozen=True)
class Target:
    """One modelled component and the container in the cluster that is it."""

    name: str  # the topology's name: 'frontend-0', 'frontend-0.sidecar', 'ztunnel-node-1'
    kind: Kind
    node: str  # the scenario's node name
    key: ContainerKey


# name{labels} value [timestamp]; label values are quoted with \\, \" and \n escapes
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _labels(text: str) -> dict[str, str]:
    labels, at = {}, 0
    while at < len(text):
        match = _LABEL.match(text, at)
        if match is None:
            if text[at:].strip():
                raise ValueError(f"bad labels: {{{text}}}")
            break
        value = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m[0]], match[2])
        labels[match[1]] = value
        at = match.end()
    return labels


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float, int | None]]:
    """Every sample of a Prometheus text exposition: (name, labels, value, timestamp ms)."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise KindError(f"kubelet metrics line {number} is not a sample: {line!r}")
        try:
            labels = _labels(match[3] or "")
            value = float(match[4])
        except ValueError as err:
            raise KindError(f"kubelet metrics line {number}: {err}: {line!r}") from None
        stamp = int(match[5]) if match[5] is not None else None
        out.append((match[1], labels, value, stamp))
    return out


def resource_points(text: str, scraped_at_s: float) -> dict[ContainerKey, Point]:
    """Each container's CPU counter and working set from one /metrics/resource answer.

    A sample without a timestamp is taken as of the scrape."""
    cpu: dict[ContainerKey, tuple[float, float]] = {}
    mem: dict[ContainerKey, tuple[float, float]] = {}
    for name, labels, value, stamp in parse_samples(text):
        if name not in (CPU_METRIC, MEMORY_METRIC):
            continue
        key = ContainerKey(
            labels.get("namespace", ""), labels.get("pod", ""), labels.get("container", "")
        )
        at = stamp / 1000.0 if stamp is not None else scraped_at_s
        (cpu if name == CPU_METRIC else mem)[key] = (value, at)
    return {
        key: Point(c[0], c[1], mem[key][0], mem[key][1])
        if key in mem
        else Point(c[0], c[1], math.nan, c[1])
        for key, c in cpu.items()
    }


def _distinct(values: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """(time, value) pairs sorted by time, one per refresh."""
    return sorted(dict(values).items())


def cpu_cores(points: Sequence[Point], t0: float, t1: float, name: str) -> float:
    refreshes = _distinct((p.cpu_at_s, p.cpu_s) for p in points)
    inside = [(t, v) for t, v in refreshes if t0 <= t <= t1]
    if len(inside) < 2:
        raise KindError(
            f"{name}: the kubelet refreshed its CPU counter {len(inside)} time(s) inside the "
            f"{t1 - t0:g} s window; two are needed (it refreshes every 10-15 s): "
            "make traffic.duration_s - warmup_s at least 30 s"
        )
    (ta, a), (tb, b) = inside[0], inside[-1]
    if b < a:
        raise KindError(f"{name}: its CPU counter went back ({a:g} -> {b:g} s): it restarted")
    return (b - a) / (tb - ta)


def memory_mib(points: Sequence[Point], t0: float, t1: float) -> float:
    refreshes = _distinct((p.memory_at_s, p.memory_bytes) for p in points)
    inside = [v for t, v in refreshes if t0 <= t <= t1 and not math.isnan(v)]
    chosen = inside or [v for _, v in refreshes if not math.isnan(v)]
    return sum(chosen) / len(chosen) / MIB if chosen else math.nan


def usage_over_window(
    targets: Sequence[Target], scrapes: Sequence[dict[ContainerKey, Point]], t0: float, t1: float
) -> dict[str, tuple[float, float]]:
    """Component name -> (CPU cores, memory MiB) over [t0, t1] from successive scrapes."""
    out = {}
    for target in targets:
        points = [s[target.key] for s in scrapes if target.key in s]
        if not points:
            k = target.key
            raise KindError(
                f"{target.name}: no resource metrics for container {k.container!r} of pod "
                f"{k.namespace}/{k.pod} on {target.node}"
            )
        out[target.name] = (cpu_cores(points, t0, t1, target.name), memory_mib(points, t0, t1))
    return out


def pod_containers(pod: dict[str, Any]) -> set[str]:
    """Names of a pod's containers, with restartable init containers (native sidecars)."""
    spec = pod.get("spec", {})
    names = {c["name"] for c in spec.get("containers", [])}
    names |= {
        c["name"] for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"
    }
    return names
