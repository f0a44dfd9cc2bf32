"""The result schema shared by simulated and measured runs, and the files a run writes.

`RunResult.summary()` is the JSON contract of `meshsim run --json`; later work adds
fields but never renames these.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import stat
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from meshsim.profile import HeldOut
from meshsim.signals import deferred

__all__ = [
    "ByComponent",
    "ComponentUsage",
    "LatencyHistogram",
    "LatencyMs",
    "MeasuredLink",
    "MeasuredNetwork",
    "ModeResult",
    "ProxyCounts",
    "RunResult",
    "finite_or_null",
    "latency_summary",
    "load_run",
    "write_atomically",
    "write_results",
]

COMPONENT_CLASSES = ("app", "sidecar", "ztunnel", "waypoint")
# LatencyMs's percentiles, as quantiles
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}
HOURS_PER_MONTH = 730.0  # 365 * 24 / 12


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _null_figures_are_nan(cls, data: Any) -> Any:
        """A figure not known (NaN: the latency of a mode whose every request failed, a
        kind run's connections) is null in the JSON (finite_or_null): read back as NaN."""
        if not isinstance(data, dict):
            return data
        return {
            k: math.nan if v is None and _is_float(cls.model_fields.get(k)) else v
            for k, v in data.items()
        }


class LatencyMs(_Model):
    """Latency of the successful requests (NaN for a mode that had none)."""

    mean: float
    p50: float
    p90: float
    p99: float
    p999: float


class ByComponent(_Model):
    total: float
    app: float
    sidecar: float
    ztunnel: float
    waypoint: float

    @classmethod
    def from_parts(cls, parts: dict[str, float]) -> ByComponent:
        values = {k: float(parts.get(k, 0.0)) for k in COMPONENT_CLASSES}
        return cls(total=sum(values.values()), **values)


class ProxyCounts(_Model):
    sidecar: int
    ztunnel: int
    waypoint: int


class ComponentUsage(_Model):
    """One app pod or proxy: what it used over the measurement window."""

    name: str
    kind: Literal["app", "sidecar", "ztunnel", "waypoint", "loadgen"]
    node: str
    cpu_cores: float
    memory_mib: float
    handshakes: int
    connections_open: float


class LatencyHistogram(_Model):
    """Fixed log-spaced bins (so histograms of windows, seeds and workers add up)."""

    BINS_PER_DECADE: ClassVar[int] = 100
    LOW_US: ClassVar[float] = 1.0
    DECADES: ClassVar[int] = 8  # 1 us .. 100 s
    counts: list[int]

    @classmethod
    def edges_us(cls) -> np.ndarray:
        n = cls.BINS_PER_DECADE * cls.DECADES
        return np.asarray(cls.LOW_US * 10 ** (np.arange(n + 1) / cls.BINS_PER_DECADE))

    @classmethod
    def from_latencies_s(cls, latencies_s: np.ndarray) -> LatencyHistogram:
        edges = cls.edges_us()
        us = np.clip(np.asarray(latencies_s) * 1e6, edges[0], edges[-1] * 0.999999)
        counts, _ = np.histogram(us, bins=edges)
        return cls(counts=[int(c) for c in counts])

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        return LatencyHistogram(
            counts=[a + b for a, b in zip(self.counts, other.counts, strict=True)]
        )

    def quantile_sampling_error(self, q: float) -> float | None:
        """The standard error of the q-quantile of these latencies relative to it,
        distribution-free: the quantile of n latencies is the order statistic of rank nq,
        whose rank varies by sqrt(nq(1-q)) (binomial); half the span between the
        quantiles of those ranks, read off the bins (2.3% wide, so nothing finer is seen).
        i.i.d. latencies assumed: a stall that slows a burst of requests, or a queue that
        carries one request's delay to the next, makes the true error larger."""
        counts = np.asarray(self.counts, dtype=float)
        n = float(counts.sum())
        if n < 2:
            return None
        # at least one rank either side: near the ends (a p99.9 of a few hundred requests)
        # the binomial spread is under one rank, and the next order statistic is the nearest
        # other value the percentile could have taken
        spread = max(math.sqrt(n * q * (1 - q)), 1.0)
        if n * q + spread > n:  # the band reaches past the slowest request: nothing bounds it
            return math.inf
        cum = np.cumsum(counts)
        if n * q + spread > cum[-2]:  # or into the last bin, all that is past 100 s: unknown
            return math.inf
        edges = self.edges_us()
        mids = np.sqrt(edges[:-1] * edges[1:])
        lo, mid, hi = (
            mids[min(int(np.searchsorted(cum, max(rank, 1.0))), len(mids) - 1)]
            for rank in (n * q - spread, n * q, n * q + spread)
        )
        return float((hi - lo) / 2 / mid)


def latency_summary(latencies_s: np.ndarray) -> LatencyMs:
    if len(latencies_s) == 0:
        return LatencyMs(mean=math.nan, p50=math.nan, p90=math.nan, p99=math.nan, p999=math.nan)
    ms = np.asarray(latencies_s) * 1e3
    p50, p90, p99, p999 = np.percentile(ms, [50, 90, 99, 99.9])
    return LatencyMs(
        mean=float(ms.mean()), p50=float(p50), p90=float(p90), p99=float(p99), p999=float(p999)
    )


class ModeResult(_Model):
    requests: int
    errors: int
    throughput_rps: float
    latency_ms: LatencyMs
    cpu_cores: ByComponent
    memory_mib: ByComponent
    handshakes_per_s: float
    connections_open: float
    proxies: ProxyCounts
    cost_usd_month: float
    window_s: float = Field(description="Length of the measurement window (after warm-up).")
    components: list[ComponentUsage]
    histogram: LatencyHistogram

    background_cores: dict[str, float] = Field(
        default_factory=dict,
        description="Measured: CPU the host spent on each node's cores besides the "
        "scenario's apps and proxies (the load generator, the meter, other processes), by "
        "node. Simulated: the background the scenario gave.",
    )

    def percentile_sampling_error_ms(self, p: str) -> float | None:
        """The standard error of latency percentile `p` (a key of QUANTILES) from sampling,
        in ms (LatencyHistogram.quantile_sampling_error); None where the run has too few
        requests to say."""
        rel = self.histogram.quantile_sampling_error(QUANTILES[p])
        return None if rel is None else rel * getattr(self.latency_ms, p)


class MeasuredLink(_Model):
    """One link's round-trip time, measured when a testbed came up."""

    kind: Literal["same_node", "cross_node", "pod_node"]
    src: str
    dst: str
    rtt_ms: float = Field(description="Median round-trip time of the probes.")
    rtt_p90_ms: float
    probes: int


class MeasuredNetwork(_Model):
    """One-way delays as a scenario gives them (half the measured round trip), and the
    links they come from; a simulation of the measured system uses these."""

    same_node_ms: float
    cross_node_ms: float
    cross_zone_ms: float
    links: list[MeasuredLink]


class RunResult(_Model):
    meshsim_version: str
    kind: Literal["simulated", "measured"] = "simulated"
    scenario: str
    engine: str
    seed: int
    profile: str
    profile_held_out: HeldOut | None = Field(
        default=None,
        description="Simulated runs: the profile's error on measured settings held out of "
        "its fit (Profile.held_out), printed beside the results; none where the profile "
        "carries none (not fitted by meshsim calibrate, or fitted before profiles carried it).",
    )
    modes: dict[str, ModeResult]
    network: MeasuredNetwork | None = Field(
        default=None, description="Measured runs: the testbed's link delays."
    )

    def summary(self) -> dict[str, object]:
        """The JSON contract: everything but the histograms."""
        doc = self.model_dump(mode="json")
        for mode in doc["modes"].values():
            mode.pop("histogram")
        finite: dict[str, object] = finite_or_null(doc)
        return finite

    def file_stem(self, mode: str | None = None) -> str:
        middle = f"-{mode}" if mode else ""
        return f"{self.scenario}{middle}-seed{self.seed}"


def _is_float(field: FieldInfo | None) -> bool:
    return field is not None and field.annotation is float


def finite_or_null(value: Any) -> Any:
    """JSON has no NaN or infinity (Python's json writes bare NaN, which strict parsers
    refuse): such a number is written null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_null(v) for v in value]
    return value


def _csv(rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def result_files(run: RunResult) -> dict[str, str]:
    """File name -> contents for DESIGN.md section 7's results folder."""
    files = {f"{run.file_stem()}.json": json.dumps(run.summary(), indent=2) + "\n"}
    latency_rows: list[dict[str, object]] = []
    resource_rows: list[dict[str, object]] = []
    for mode, result in run.modes.items():
        latency_rows.append(
            {
                "mode": mode,
                **{f"{k}_ms": v for k, v in result.latency_ms.model_dump().items()},
                "requests": result.requests,
                "errors": result.errors,
                "throughput_rps": result.throughput_rps,
            }
        )
        for usage in result.components:
            resource_rows.append({"mode": mode, **usage.model_dump()})
        edges = LatencyHistogram.edges_us()
        hist_rows: list[dict[str, object]] = [
            {"lower_us": f"{edges[i]:.6g}", "upper_us": f"{edges[i + 1]:.6g}", "count": c}
            for i, c in enumerate(result.histogram.counts)
            if c
        ]
        files[f"{run.file_stem(mode)}-histogram.csv"] = _csv(hist_rows)
    files[f"{run.file_stem()}-latency.csv"] = _csv(latency_rows)
    files[f"{run.file_stem()}-components.csv"] = _csv(resource_rows)
    return files


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _file_mode(path: Path) -> int:
    """The permissions a file written over `path` gets: the old file's if there is one,
    else what open() would give a new file (0o666 less the umask)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


class WriteError(OSError):
    """Files could not be written (write_atomically): every one is as it was."""


def write_atomically(files: Mapping[Path, str | bytes]) -> list[Path]:
    """Write files so that none is ever seen half-written: each is written whole under a
    temporary name in its folder and flushed to disk, and only once all are, renamed into
    place (the file each replaces linked aside until all are). An error while writing or
    renaming leaves every file as it was, and no temporary file behind. Ctrl-C, SIGTERM
    and SIGHUP wait until the files are in place (signals.deferred): a signal can neither
    split the set nor leave a temporary file; a machine that loses power leaves the old
    files or the new, never an empty one."""
    with deferred():
        return _write_all(files)


def _write_all(files: Mapping[Path, str | bytes]) -> list[Path]:
    staged: list[tuple[str, Path]] = []
    kept: list[str | None] = []  # the old file of each renamed-in one, linked aside
    try:
        for final, content in files.items():
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
            staged.append((tmp, final))
            os.fchmod(fd, _file_mode(final))  # mkstemp's files are the owner's only
            with os.fdopen(fd, "wb") as fh:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
                fh.flush()
                os.fsync(fh.fileno())  # else a rename can reach the disk before the data
        for _, final in staged:
            if final.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(final))
        try:
            for tmp, final in staged:
                old = None
                if final.exists():
                    old = str(final.parent / f".{final.name}.{uuid.uuid4().hex}.old")
                    kept.append(old)
                    os.link(final, old)
                else:
                    kept.append(old)
                os.replace(tmp, final)
        except BaseException:
            # put back what was there: all or none
            renamed = [
                (final, old)
                for (tmp, final), old in zip(staged, kept, strict=False)
                if not os.path.exists(tmp)
            ]
            for final, old in reversed(renamed):
                if old is None:
                    final.unlink()
                else:
                    os.replace(old, final)
            raise
        written = [final for _, final in staged]
    except OSError as err:
        where = err.filename or (staged[-1][1] if staged else "")
        raise WriteError(
            f"could not write {where}: {err.strerror or err}; every file is as it was"
        ) from err
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for old in kept:
            if old is not None and os.path.exists(old):
                os.unlink(old)
    for folder in dict.fromkeys(final.parent for final in written):
        _sync_folder(folder)  # the renames themselves
    return written


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (renames) to disk; the files are in place already, so a
    file system that cannot is no error."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_results(run: RunResult, out_dir: Path) -> list[Path]:
    """Write every results file atomically (write_atomically)."""
    return write_atomically({out_dir / name: text for name, text in result_files(run).items()})


class HistogramFileError(ValueError):
    """A `*-histogram.csv` that is not one meshsim wrote: where, and what."""

    def __init__(self, path: Path, line: int, message: str):
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}")


def _histogram_from_csv(path: Path) -> LatencyHistogram:
    """Read back a `*-histogram.csv` (only non-empty bins are written) into fixed bins."""
    n = LatencyHistogram.BINS_PER_DECADE * LatencyHistogram.DECADES
    counts = [0] * n
    with path.open(encoding="utf-8", newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):  # line 1: the header
            try:
                lower = float(row["lower_us"]) / LatencyHistogram.LOW_US
                index = round(math.log10(lower) * LatencyHistogram.BINS_PER_DECADE)
                counts[index] += int(row["count"])
            except (KeyError, TypeError, ValueError, IndexError):
                raise HistogramFileError(
                    path, line, f"expected a bin's lower_us (> 0) and count, got {dict(row)}"
                ) from None
    return LatencyHistogram(counts=counts)


def load_run(summary_json: Path) -> RunResult:
    """Read a run back from its results folder: the summary JSON and, next to it, each
    mode's histogram CSV (a mode whose histogram file is missing gets an empty one)."""
    doc = json.loads(summary_json.read_text(encoding="utf-8"))
    empty = [0] * (LatencyHistogram.BINS_PER_DECADE * LatencyHistogram.DECADES)
    stem = f"{doc['scenario']}-{{mode}}-seed{doc['seed']}-histogram.csv"
    for mode, result in doc["modes"].items():
        hist = summary_json.parent / stem.format(mode=mode)
        counts = _histogram_from_csv(hist).counts if hist.is_file() else empty
        result["histogram"] = {"counts": counts}
    return RunResult.model_validate(doc)
