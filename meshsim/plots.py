"""Charts of runs, sweeps and calibrations (DESIGN.md section 7), drawn with matplotlib.

Every chart is titled with what it shows, has units on its axes and names the scenario
and profile in a caption under the plot. Inputs are found by `load_inputs`: a run's
summary JSON (or the folder `meshsim run --out` wrote), a sweep folder (`sweep.csv` and
`sweep.json`), or a measured run next to a simulated one of the same scenario, which is
a calibration pair. Charts use matplotlib's object API only (no pyplot, no global state).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from meshsim.calibrate.compare import ErrorRow, compare_runs
from meshsim.loader import InputError, Problem, load_run_file, read_source
from meshsim.render import held_out_brief, profile_shown
from meshsim.results import (
    COMPONENT_CLASSES,
    LatencyHistogram,
    ModeResult,
    RunResult,
    write_atomically,
)
from meshsim.run import compare
from meshsim.scenario import MODES

__all__ = [
    "CalibrationFolder",
    "Chart",
    "Inputs",
    "SweepTable",
    "chart_files",
    "charts_for",
    "comparable",
    "load_inputs",
    "save_chart",
]

MODE_COLORS = {
    "none": "#7f7f7f",
    "sidecar": "#d62728",
    "ambient": "#2ca02c",
    "ambient-waypoint": "#1f77b4",
}
CLASS_COLORS = {
    "app": "#bcbd22",
    "sidecar": "#d62728",
    "ztunnel": "#2ca02c",
    "waypoint": "#1f77b4",
}
PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"))
SAVING_LABELS = {
    "mesh_cpu_saving": "data-plane CPU saving vs sidecar",
    "mesh_memory_saving": "data-plane memory saving vs sidecar",
    "cpu_saving": "cluster CPU saving vs sidecar (apps included)",
    "memory_saving": "cluster memory saving vs sidecar (apps included)",
    "cost_saving": "cost saving vs sidecar",
}
TARGET_SAVING = 0.9


@dataclass(frozen=True)
class SweepTable:
    """A sweep folder read back: its metadata and its rows (numbers parsed)."""

    folder: Path
    meta: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def parameters(self) -> list[str]:
        """The swept parameters that take more than one value: the charts' axes."""
        swept = [c for c in self.meta["columns"] if c != "mode"]
        varying = [c for c in swept if len(self.values(c)) > 1]
        return varying or swept[:1]

    @property
    def fixed(self) -> dict[str, Any]:
        """Parameters given a single value in the sweep."""
        swept = [c for c in self.meta["columns"] if c != "mode"]
        return {c: self.values(c)[0] for c in swept if c not in self.parameters and self.rows}

    def values(self, column: str) -> list[Any]:
        seen: list[Any] = []
        for row in self.rows:
            if row[column] not in seen:
                seen.append(row[column])
        return seen


@dataclass
class Inputs:
    runs: list[RunResult] = field(default_factory=list)
    sweeps: list[SweepTable] = field(default_factory=list)
    calibrations: list[tuple[RunResult, RunResult]] = field(default_factory=list)  # (meas, sim)
    fits: list[CalibrationFolder] = field(default_factory=list)
    # the file stem of each run's charts, by id(run): its file_stem(), told apart from
    # other runs' of the same scenario and seed (see _unique_stems)
    stems: dict[int, str] = field(default_factory=dict)

    def stem(self, run: RunResult) -> str:
        return self.stems.get(id(run), run.file_stem())


@dataclass(frozen=True)
class CalibrationFolder:
    """What `meshsim calibrate --out DIR` wrote: the error of every figure of the settings
    the fit saw (in sample) and of those it never saw (held out), and the fitted profile."""

    folder: Path
    held_out: list[ErrorRow]
    in_sample: list[ErrorRow]
    report_text: str | None

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def profile_file(self) -> Path | None:
        path = self.folder / "profile.yaml"
        return path if path.is_file() else None

    @property
    def scenario_file(self) -> str | None:
        """The scenario file the grid was measured on, as the dataset's manifest names it."""
        manifest = self.folder / "dataset" / "manifest.json"
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        name = doc.get("scenario_file") if isinstance(doc, dict) else None
        return name if isinstance(name, str) else None

    @property
    def scenario(self) -> str | None:
        return Path(self.scenario_file).stem if self.scenario_file else None


@dataclass(frozen=True)
class Chart:
    """A finished figure and the file stem it is saved under."""

    stem: str
    title: str
    figure: Figure


# ---- reading inputs ----------------------------------------------------------------------


def _number(text: str) -> Any:
    if text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


# what sweep.json must hold, and the columns of sweep.csv that are not numbers (its
# parameters' may be any scalar)
_SWEEP_META = {"sweep": str, "scenario": str, "profile": str, "engine": str, "columns": list,
               "points": int, "base_scenario": dict}  # fmt: skip
_TEXT_COLUMNS = ("point", "mode", "engine", "scenario", "saturated", "saving_comparable")


def load_sweep_table(folder: Path) -> SweepTable:
    """A sweep folder's table and metadata; InputError naming the file, line and field of
    what does not read (a table cut short, a cell that should be a number)."""
    meta_file, table_file = folder / "sweep.json", folder / "sweep.csv"
    source = read_source(meta_file)
    meta = source.data
    if not isinstance(meta, dict):
        raise InputError([source.problem((), "expected a sweep's metadata: an object")])
    for key, kind in _SWEEP_META.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            if key not in meta:
                raise InputError([source.problem((), f"missing required key '{key}'")])
            raise InputError([source.problem((key,), f"expected {kind.__name__}")])
    text = table_file.read_text(encoding="utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in [*meta["columns"], *_TEXT_COLUMNS] if c not in header]
    if missing:
        message = f"no column {', '.join(map(str, missing))} in the header"
        raise InputError([Problem(str(table_file), 1, 1, "", message)])
    rows = []
    for row in reader:
        line = reader.line_num
        if None in row or None in row.values():
            message = f"{len(header)} cells expected, as in the header: the table is cut short"
            raise InputError([Problem(str(table_file), line, 1, "", message)])
        parsed = {k: _number(v) for k, v in row.items()}
        for k, v in parsed.items():
            if isinstance(v, str) and k not in _TEXT_COLUMNS and k not in meta["columns"]:
                message = f"expected a number, not {v!r}"
                raise InputError([Problem(str(table_file), line, header.index(k) + 1, k, message)])
        parsed["mode"] = str(parsed["mode"])
        rows.append(parsed)
    return SweepTable(folder=folder, meta=meta, rows=rows)


def _is_run_summary(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "meshsim_version" in doc and "modes" in doc


def _is_sweep(folder: Path) -> bool:
    return (folder / "sweep.json").is_file() and (folder / "sweep.csv").is_file()


def _error_rows(path: Path) -> list[ErrorRow]:
    if not path.is_file():
        return []
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    return [
        ErrorRow(
            r["point"],
            r["mode"],
            r["figure"],
            r["component"],
            float(r["measured"]),
            float(r["simulated"]),
            r.get("kind") or "",
            float(r["sampling_error"]) if r.get("sampling_error") else None,
        )
        for r in rows
    ]


def load_calibration_folder(folder: Path) -> CalibrationFolder:
    report = folder / "report.txt"
    return CalibrationFolder(
        folder=folder,
        held_out=_error_rows(folder / "heldout.csv"),
        in_sample=_error_rows(folder / "insample.csv"),
        report_text=report.read_text(encoding="utf-8") if report.is_file() else None,
    )


def _is_calibration(folder: Path) -> bool:
    return (folder / "heldout.csv").is_file() or (folder / "insample.csv").is_file()


def _scan(folder: Path, inputs: Inputs, files: list[Path]) -> None:
    """Sweeps, calibrations and run summaries in `folder` and below (the folder of a sweep
    or a calibration is not entered: its points are summarised by its own tables)."""
    if _is_sweep(folder):
        inputs.sweeps.append(load_sweep_table(folder))
        return
    if _is_calibration(folder):
        inputs.fits.append(load_calibration_folder(folder))
        return
    files += sorted(p for p in folder.glob("*.json") if _is_run_summary(p))
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        _scan(sub, inputs, files)


def _twin(
    measured: RunResult, simulated: list[RunResult], path_of: dict[int, Path]
) -> RunResult | None:
    """The simulated run of a measured one: of the runs of the same scenario (those of the
    same seed, if any) that simulate every mode it measured, the one nearest it in the
    folders (the most folders in common, `measured/` beside its `simulated/`; then the
    fewest folders of its own), if one is."""
    same = [s for s in simulated if s.scenario == measured.scenario]
    candidates = [s for s in same if s.seed == measured.seed] or same
    covering = [s for s in candidates if set(measured.modes) <= set(s.modes)]
    if len(covering) <= 1:
        return covering[0] if covering else None
    here = path_of[id(measured)].resolve().parent
    # folders in common with the measured run's, then fewest folders of its own
    nearness = {}
    for run in covering:
        there = path_of[id(run)].resolve().parent
        nearness[id(run)] = (len(Path(os.path.commonpath([here, there])).parts), -len(there.parts))
    nearest = max(nearness.values())
    closest = [r for r in covering if nearness[id(r)] == nearest]
    return closest[0] if len(closest) == 1 else None


def _unique_stems(runs: list[RunResult], paths: list[Path]) -> dict[int, str]:
    """Chart file stems for runs (read from paths) that would otherwise share one (the same
    scenario and seed): their file stem and the first label that tells them apart: the
    kind, kind and engine, the folder, the folders below the ones they share; else a
    number."""
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(run.file_stem(), []).append(i)
    stems: dict[int, str] = {}
    for stem, members in groups.items():
        if len(members) == 1:
            continue
        # the folders below the group's common one (files of one name in one folder are one)
        folders = [paths[i].resolve().parent for i in members]
        common = Path(os.path.commonpath(folders))
        labellings: list[list[str]] = [
            [runs[i].kind for i in members],
            [f"{runs[i].kind}-{runs[i].engine}" for i in members],
            [paths[i].parent.name for i in members],
            ["-".join(f.relative_to(common).parts) or "here" for f in folders],
        ]
        for labels in labellings:
            if len(set(labels)) == len(labels):
                break
        else:
            labels = [str(k + 1) for k in range(len(members))]
        for i, text in zip(members, labels, strict=True):
            stems[id(runs[i])] = f"{stem}-{text}"
    return stems


def load_inputs(paths: Iterable[Path]) -> Inputs:
    """Sort what the paths hold into runs, sweeps and calibration pairs.

    A folder is a sweep when it has sweep.json and sweep.csv; otherwise the run summary
    JSONs in it and its subfolders are read. A measured run and the simulated run of the
    same scenario (and seed, when there are several) that simulates every mode measured
    make a calibration pair; the simulated one is also drawn as a run. Runs of the same
    scenario and seed get charts under distinct names (_unique_stems)."""
    inputs = Inputs()
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            _scan(path, inputs, files)
        elif path.is_file() and _is_run_summary(path):
            files.append(path)
        else:
            raise ValueError(f"{path}: not a run summary JSON, a results folder or a sweep folder")
    paths = list(dict.fromkeys(files))
    runs = [load_run_file(f) for f in paths]
    path_of = {id(run): path for run, path in zip(runs, paths, strict=True)}
    simulated = [r for r in runs if r.kind == "simulated"]
    paired: list[RunResult] = []
    for meas in (r for r in runs if r.kind == "measured"):
        twin = _twin(meas, simulated, path_of)
        if twin is not None:
            inputs.calibrations.append((meas, twin))
            paired.append(meas)
    inputs.runs = simulated + [r for r in runs if r.kind == "measured" and r not in paired]
    for drawn in (inputs.runs, paired):  # their charts, and the calibration charts
        inputs.stems.update(_unique_stems(drawn, [path_of[id(r)] for r in drawn]))
    return inputs


# ---- figure helpers ----------------------------------------------------------------------


def _figure(
    title: str, caption: str, size: tuple[float, float] = (8.0, 5.0), extra: float = 0.0
) -> Figure:
    """A figure with its title, and its caption at the bottom, in a band the layout engine
    keeps out of; `extra` (a fraction of the height) reserves room above the caption."""
    # About 16 characters of 7.5 pt text per inch: wrap long captions instead of cutting
    # them; each line takes about 0.13 inch.
    lines = textwrap.wrap(caption, width=int(size[0] * 16))
    bottom = (0.06 + 0.13 * len(lines)) / size[1] + extra
    fig = Figure(
        figsize=size, layout=ConstrainedLayoutEngine(rect=(0.0, bottom, 1.0, 1.0 - bottom))
    )
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.text(0.01, 0.012, "\n".join(lines), fontsize=7.5, color="#444444", ha="left", va="bottom")
    return fig


def _run_caption(run: RunResult) -> str:
    text = (
        f"Scenario: {run.scenario} · {profile_shown(run, ': ')} · {run.kind} · engine: {run.engine}"
        f" · seed {run.seed} · meshsim {run.meshsim_version}"
    )
    if run.kind == "simulated":
        text += f" · {held_out_brief(run.profile_held_out)}"
    return text


def _sweep_caption(table: SweepTable, extra: str = "") -> str:
    meta = table.meta
    text = (
        f"Sweep: {meta['sweep']} · scenario: {meta['scenario']} · profile: {meta['profile']}"
        f" · engine: {meta['engine']} · {len(table.rows)} runs"
    )
    if table.fixed:
        text += " · " + _where(table.fixed)
    return f"{text} · {extra}" if extra else text


def save_chart(chart: Chart, out_dir: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """The chart in each format, written atomically (write_atomically)."""
    return write_atomically(chart_files(chart, out_dir, formats))


def chart_files(
    chart: Chart, out_dir: Path, formats: Sequence[str] = ("png", "svg")
) -> dict[Path, str | bytes]:
    """The chart drawn in each format: the file each would be, and its bytes."""
    files: dict[Path, str | bytes] = {}
    for fmt in formats:
        buf = io.BytesIO()
        # No date and a fixed id salt keep SVGs byte-stable between runs, so a redrawn
        # chart only shows in a diff when it changed.
        meta = {"Date": None} if fmt == "svg" else {}
        with rc_context({"svg.hashsalt": "meshsim"}):
            chart.figure.savefig(buf, dpi=110, format=fmt, metadata=meta)
        files[out_dir / f"{chart.stem}.{fmt}"] = buf.getvalue()
    return files


def _modes(run: RunResult) -> list[str]:
    return [m for m in MODES if m in run.modes] + [m for m in run.modes if m not in MODES]


# ---- charts of one run -------------------------------------------------------------------


def latency_cdf(run: RunResult) -> Chart | None:
    edges_ms = LatencyHistogram.edges_us() / 1000.0
    title = f"Request latency distribution per mode — {run.scenario}"
    fig = _figure(title, _run_caption(run))
    ax = fig.subplots()
    drawn = False
    for mode in _modes(run):
        counts = np.asarray(run.modes[mode].histogram.counts, dtype=float)
        if counts.sum() == 0:
            continue
        nonzero = np.nonzero(counts)[0]
        lo, hi = nonzero[0], nonzero[-1] + 1
        cdf = np.cumsum(counts[lo:hi]) / counts.sum()
        ax.step(edges_ms[lo + 1 : hi + 1], cdf, where="post", label=mode, color=_color(mode))
        drawn = True
    if not drawn:
        return None
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("end-to-end latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_ylim(0, 1.01)
    for q in (0.5, 0.9, 0.99):
        ax.axhline(q, color="#cccccc", lw=0.7, zorder=0)
    ax.grid(True, which="both", axis="x", color="#eeeeee")
    ax.legend(title="mode", loc="lower right")
    return Chart(f"{run.file_stem()}-latency-cdf", title, fig)


def _color(mode: str) -> str:
    return MODE_COLORS.get(mode, "#9467bd")


def percentile_whiskers_ms(result: ModeResult) -> list[float]:
    """Half the length of each percentile bar's whisker: twice the percentile's standard
    error from sampling (LatencyHistogram.quantile_sampling_error; 0 where it cannot be
    told, with fewer than two requests)."""
    out = []
    for key, _ in PERCENTILES:
        noise = result.percentile_sampling_error_ms(key)
        out.append(2 * noise if noise is not None and math.isfinite(noise) else 0.0)
    return out


def missing_histograms(run: RunResult) -> list[str]:
    """The modes that served requests but have an empty latency histogram: a summary JSON
    read without the `*-histogram.csv` files written beside it."""
    return [
        mode
        for mode, result in run.modes.items()
        if result.requests > 0 and sum(result.histogram.counts) == 0
    ]


def percentile_bars(run: RunResult) -> Chart:
    title = f"Latency percentiles per mode — {run.scenario}"
    whiskers = (
        "whiskers: ± twice each percentile's standard error from sampling (distribution-free, "
        "from the run's histogram; consecutive requests are not independent, so the true "
        "noise is larger)"
    )
    missing = missing_histograms(run)
    if missing:
        whiskers += (
            f"; none for {', '.join(missing)}: no latency histogram was found beside the "
            "summary JSON"
        )
    noise = {
        f"{mode} {label}": result.percentile_sampling_error_ms(key)
        for mode, result in run.modes.items()
        if mode not in missing
        for key, label in PERCENTILES
    }
    unbounded = [name for name, n in noise.items() if n is not None and math.isinf(n)]
    unseen = [name for name, n in noise.items() if n == 0]
    if unbounded:
        whiskers += (
            f"; none for {', '.join(unbounded)}: too few requests lie beyond them (one "
            "rank up is past the slowest), so sampling leaves them unbounded"
        )
    if unseen:  # a whisker of no length is not an error of none
        whiskers += (
            f"; too short to see for {', '.join(unseen)}: their standard error is below the "
            "histogram's resolution (bins 2.3% wide)"
        )
    caption = f"{_run_caption(run)} · {whiskers}"
    fig = _figure(title, caption)
    ax = fig.subplots()
    modes = _modes(run)
    width = 0.8 / len(modes)
    x = np.arange(len(PERCENTILES))
    for i, mode in enumerate(modes):
        values = [getattr(run.modes[mode].latency_ms, key) for key, _ in PERCENTILES]
        bars = ax.bar(
            x + (i - (len(modes) - 1) / 2) * width,
            values,
            width,
            label=mode,
            yerr=None if mode in missing else percentile_whiskers_ms(run.modes[mode]),
            error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"},
        )
        for bar in bars:
            bar.set_color(_color(mode))
        ax.bar_label(bars, fmt="%.2f", fontsize=6.5, padding=1)
    ax.set_xticks(x, [label for _, label in PERCENTILES])
    ax.set_xlabel("percentile")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.legend(title="mode")
    return Chart(f"{run.file_stem()}-latency-percentiles", title, fig)


def _stack(ax: Axes, run: RunResult, attr: str, unit: str) -> None:
    modes = _modes(run)
    bottom = np.zeros(len(modes))
    for part in COMPONENT_CLASSES:
        values = np.array([getattr(getattr(run.modes[m], attr), part) for m in modes])
        if not values.any():
            continue
        ax.bar(modes, values, bottom=bottom, label=part, color=CLASS_COLORS[part])
        bottom += values
    for i, total in enumerate(bottom):
        # three significant figures, trailing zeros kept (0.600, as the table prints it)
        text = f"{total:.0f}" if total >= 100 else f"{total:#.3g}".rstrip(".")
        ax.annotate(text, (i, total), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, max(bottom.max(), 1e-9) * 1.12)
    ax.set_xlabel("mode")
    ax.set_ylabel(unit)
    ax.legend(title="component", fontsize=7)


def resources(run: RunResult) -> Chart:
    title = f"CPU and memory by component class per mode — {run.scenario}"
    fig = _figure(title, _run_caption(run), size=(10.0, 5.0))
    cpu_ax, mem_ax = fig.subplots(1, 2)
    _stack(cpu_ax, run, "cpu_cores", "CPU (cores, averaged over the window)")
    cpu_ax.set_title("CPU", fontsize=10)
    _stack(mem_ax, run, "memory_mib", "memory (MiB, time-averaged)")
    mem_ax.set_title("Memory", fontsize=10)
    return Chart(f"{run.file_stem()}-resources", title, fig)


def run_savings(run: RunResult) -> dict[str, dict[str, float]]:
    """mode -> saving name -> fraction saved against the run's sidecar mode (NaN: none)."""
    if "sidecar" not in run.modes:
        return {}
    out: dict[str, dict[str, float]] = {}
    for mode in _modes(run):
        if mode != "sidecar":
            cmp = compare(run, mode)
            values = {name: getattr(cmp, name) for name in SAVING_LABELS}
            out[mode] = {k: math.nan if v is None else float(v) for k, v in values.items()}
    return out


def savings(run: RunResult) -> Chart | None:
    table = run_savings(run)
    modes = [m for m in table if m != "none"]
    if not modes:
        return None
    title = f"Savings against sidecar mode — {run.scenario}"
    fig = _figure(title, _run_caption(run) + " · data plane = proxies only", size=(9.0, 5.0))
    ax = fig.subplots()
    names = list(SAVING_LABELS)
    width = 0.8 / len(modes)
    x = np.arange(len(names))
    for i, mode in enumerate(modes):
        values = [table[mode][n] * 100 for n in names]
        bars = ax.bar(x + (i - (len(modes) - 1) / 2) * width, values, width, label=mode)
        for bar in bars:
            bar.set_color(_color(mode))
        ax.bar_label(bars, fmt="%.0f%%", fontsize=7, padding=1)
    labels = [SAVING_LABELS[n].replace(" vs sidecar", "").replace(" (", "\n(") for n in names]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlabel("figure compared (data plane: proxies only; cluster: apps and proxies)")
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(TARGET_SAVING * 100, color="#999999", ls="--", lw=0.8)
    ax.set_ylabel("saving vs sidecar (% of the sidecar mode's figure)")
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 105)
    ax.legend(title="mode")
    return Chart(f"{run.file_stem()}-savings", title, fig)


def run_charts(run: RunResult) -> list[Chart]:
    charts = [latency_cdf(run), percentile_bars(run), resources(run), savings(run)]
    return [c for c in charts if c is not None]


# ---- sweeps ------------------------------------------------------------------------------


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _slices(table: SweepTable, fixed: Sequence[str]) -> list[dict[str, Any]]:
    """Every combination of the values of `fixed` parameters that occurs in the table."""
    combos: list[dict[str, Any]] = []
    for row in table.rows:
        combo = {p: row[p] for p in fixed}
        if combo not in combos:
            combos.append(combo)
    return combos or [{}]


def _suffix(combo: dict[str, Any]) -> str:
    return "".join(f"-{k.replace('.', '_')}={_label(v)}" for k, v in combo.items())


def _where(combo: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {_label(v)}" for k, v in combo.items())


def _saving_modes(table: SweepTable) -> list[str]:
    return [m for m in table.values("mode") if m not in ("sidecar", "none")]


def sweep_curves(table: SweepTable, metric: str, combo: dict[str, Any]) -> Chart | None:
    """`metric` against the first parameter, a line per value of the second, a panel per
    mode; other parameters fixed at `combo`."""
    params = table.parameters
    x_name, series = params[0], params[1] if len(params) > 1 else None
    modes = _saving_modes(table)
    if not modes:
        return None
    label = SAVING_LABELS[metric]
    where = _where(combo)
    title = f"{label[0].upper()}{label[1:]} against {x_name}" + (f" ({where})" if where else "")
    note = "points where a proxy ran out of worker threads are left out"
    fig = _figure(title, _sweep_caption(table, note), size=(max(8.0, 5.0 * len(modes) + 1), 4.8))
    axes = fig.subplots(1, len(modes), sharey=True, squeeze=False)[0]
    xs = table.values(x_name)
    numeric = all(isinstance(v, int | float) for v in xs)
    for ax, mode in zip(axes, modes, strict=True):
        for value in table.values(series) if series else [None]:
            pts = [
                (r[x_name], r[metric] * 100)
                for r in table.rows
                if r["mode"] == mode
                and all(r[k] == v for k, v in combo.items())
                and (series is None or r[series] == value)
                and not math.isnan(r[metric])
                and comparable(r)
            ]
            if not pts:
                continue
            pts.sort(key=lambda p: xs.index(p[0]))
            px = [p[0] if numeric else xs.index(p[0]) for p in pts]
            name = f"{series} = {_label(value)}" if series else mode
            ax.plot(px, [p[1] for p in pts], marker="o", ms=3.5, label=name)
        if numeric and all(v > 0 for v in xs) and max(xs) / min(xs) >= 8:
            ax.set_xscale("log")  # swept values are usually geometric (1, 2, 4, ...)
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(xs if numeric else range(len(xs)), [_label(v) for v in xs])
        ax.axhline(TARGET_SAVING * 100, color="#999999", ls="--", lw=0.8)
        ax.set_title(mode, fontsize=10)
        ax.set_xlabel(_axis_label(x_name))
        ax.grid(True, color="#eeeeee")
    axes[0].set_ylabel(f"{label} (%)")
    axes[-1].legend(fontsize=7)
    return Chart(f"sweep-{metric}-curves{_suffix(combo)}", title, fig)


def comparable(row: dict[str, Any]) -> bool:
    """False where a proxy of this run or of its sidecar baseline could not keep up."""
    return row.get("saving_comparable", True) not in (False, "False")


def _grid(
    table: SweepTable, metric: str, mode: str, combo: dict[str, Any]
) -> tuple[list[Any], list[Any], np.ndarray, np.ndarray]:
    """Values over the first two parameters, and where they are comparable."""
    x_name, y_name = table.parameters[0], table.parameters[1]
    xs, ys = table.values(x_name), table.values(y_name)
    z = np.full((len(ys), len(xs)), np.nan)
    ok = np.ones_like(z, dtype=bool)
    for row in table.rows:
        if row["mode"] == mode and all(row[k] == v for k, v in combo.items()):
            at = ys.index(row[y_name]), xs.index(row[x_name])
            z[at], ok[at] = row[metric], comparable(row)
    return xs, ys, z, ok


SATURATED_NOTE = "hatched: a proxy ran out of worker threads (saving not comparable)"


def _target_note(z: np.ndarray, ok: np.ndarray) -> str:
    valid = np.where(ok, z, np.nan)
    if np.isnan(valid).all():
        return SATURATED_NOTE
    reached = np.nanmax(valid) >= TARGET_SAVING
    if reached and np.nanmin(valid) < TARGET_SAVING:
        note = "red dashed line: where the saving reaches 90%"
    else:
        note = (
            "the saving is at least 90% everywhere" if reached else "the saving never reaches 90%"
        )
    return note if ok.all() else f"{note}; {SATURATED_NOTE}"


def _percent_label(value: float) -> str:
    """A saving in whole percent, but with a decimal next to the 90% target, so that a cell
    just under it never reads "90" outside the line."""
    pct = value * 100
    near = abs(pct - TARGET_SAVING * 100) <= 0.5
    return f"{math.floor(pct * 10) / 10:.1f}" if near else f"{pct:.0f}"


def _panel_note(z: np.ndarray, ok: np.ndarray) -> str:
    """A panel's own answer, for its title: never 90%, or 90% everywhere."""
    valid = np.where(ok, z, np.nan)
    if np.isnan(valid).all():
        return ""
    best, worst = float(np.nanmax(valid)), float(np.nanmin(valid))
    if best < TARGET_SAVING:
        return f" (never 90%: at most {math.floor(best * 1000) / 10:.1f}%)"
    if worst >= TARGET_SAVING:
        return " (90% or more everywhere)"
    return ""


def _heat(ax: Axes, table: SweepTable, metric: str, mode: str, combo: dict[str, Any]) -> Any:
    """Draw one saving heat map (cells labelled in %) with its 90% contour; the image."""
    xs, ys, z, ok = _grid(table, metric, mode, combo)
    image = ax.imshow(z * 100, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=100)
    for (j, i), value in np.ndenumerate(z):
        if np.isnan(value):
            continue
        shade = "white" if value < 0.6 else "black"
        ax.text(i, j, _percent_label(value), ha="center", va="center", fontsize=7, color=shade)
        if not ok[j, i]:
            ax.add_patch(
                Rectangle(
                    (i - 0.5, j - 0.5), 1, 1, fill=False, hatch="xx", edgecolor="#d62728", lw=0
                )
            )
    # Contour over cell centres, masked where a cell is missing or not comparable: the line
    # stops there rather than claiming a crossing the data do not show.
    grid = np.ma.masked_where(~ok | np.isnan(z), z)
    shown = grid.compressed()
    if shown.size and shown.min() < TARGET_SAVING <= shown.max() and len(xs) > 1 and len(ys) > 1:
        ax.contour(
            range(len(xs)),
            range(len(ys)),
            grid,
            levels=[TARGET_SAVING],
            colors="#d62728",
            linestyles="--",
            linewidths=2.2,
        )
    ax.set_xticks(range(len(xs)), [_label(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_label(v) for v in ys])
    ax.set_xlabel(_axis_label(table.parameters[0]))
    ax.set_ylabel(_axis_label(table.parameters[1]))
    return image


def sweep_heatmap(table: SweepTable, metric: str, mode: str, combo: dict[str, Any]) -> Chart | None:
    """A saving over the first two parameters, with the contour where it reaches 90%."""
    _, _, z, ok = _grid(table, metric, mode, combo)
    if np.isnan(z).all():
        return None
    label = SAVING_LABELS[metric]
    where = _where(combo)
    title = f"{mode}: {label}" + (f" ({where})" if where else "")
    fig = _figure(title, _sweep_caption(table, _target_note(z, ok)), size=(7.5, 5.5))
    ax = fig.subplots()
    image = _heat(ax, table, metric, mode, combo)
    fig.colorbar(image, ax=ax).set_label(f"{label} (%)")
    return Chart(f"sweep-{metric}-heatmap-{mode}{_suffix(combo)}", title, fig)


def sweep_overview(table: SweepTable, combo: dict[str, Any]) -> Chart | None:
    """The headline chart: data-plane CPU and memory savings of each ambient mode against
    sidecars over the first two parameters, a panel each, with the 90% contours."""
    modes = _saving_modes(table)
    metrics = ("mesh_cpu_saving", "mesh_memory_saving")
    if not modes:
        return None
    where = _where(combo)
    panels = [_grid(table, metric, mode, combo)[2:] for mode in modes for metric in metrics]
    valid = np.concatenate([np.where(ok, z, np.nan).ravel() for z, ok in panels])
    best = None if np.isnan(valid).all() else float(np.nanmax(valid))
    if best is not None and best >= TARGET_SAVING:
        title = "Where ambient saves 90% of the data plane's CPU and memory"
        note = "red dashed lines: where the saving reaches 90%; a panel's title says if never"
    else:
        title = "Ambient's saving of the data plane's CPU and memory: never 90% here"
        note = "no cell reaches a 90% saving" + (
            f" (the highest: {math.floor(best * 1000) / 10:.1f}%)" if best is not None else ""
        )
    title += f" ({where})" if where else ""
    if not all(ok.all() for _, ok in panels):
        note = f"{note}; {SATURATED_NOTE}"
    size = (11.0, 4.2 * len(modes) + 0.8)
    fig = _figure(title, _sweep_caption(table, note), size=size)
    axes = fig.subplots(len(modes), len(metrics), squeeze=False)
    image = None
    for row, mode in enumerate(modes):
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            image = _heat(ax, table, metric, mode, combo)
            _, _, z, ok = _grid(table, metric, mode, combo)
            ax.set_title(f"{mode}: {SAVING_LABELS[metric]}{_panel_note(z, ok)}", fontsize=10)
    assert image is not None
    fig.colorbar(image, ax=axes, shrink=0.8).set_label("saving vs sidecar (%)")
    return Chart(f"sweep-overview{_suffix(combo)}", title, fig)


AXIS_UNITS = {
    "pods_per_node": "app pods per node (pods)",
    "rps_per_pod": "requests per second per app pod (req/s)",
    "call_depth": "call depth (hops from the entry service)",
    "payload_bytes": "response payload (bytes)",
    "traffic.open_loop.rate_rps": "entry request rate (req/s)",
    "cluster.nodes": "nodes",
}


def _axis_label(name: str) -> str:
    if name in AXIS_UNITS:
        return AXIS_UNITS[name]
    if name.endswith("_bytes"):
        return f"{name} (bytes)"
    if name.endswith("_rps"):
        return f"{name} (req/s)"
    if name.endswith("_ms"):
        return f"{name} (ms)"
    return name


def sweep_chart_gap(table: SweepTable) -> str | None:
    """Why a sweep gives no charts (sweep_charts), or None when it gives some."""
    if not table.rows:
        return f"sweep {table.meta['sweep']}: no finished point in its table"
    if not table.parameters:
        return (
            f"sweep {table.meta['sweep']}: it varies the mode only, and its charts draw the "
            "savings over a parameter (give its grid one more)"
        )
    if "sidecar" not in table.values("mode"):
        return f"sweep {table.meta['sweep']}: no sidecar runs to measure the savings against"
    return None


def sweep_charts(table: SweepTable) -> list[Chart]:
    """For each combination of the third and later parameters: the overview, a heat map
    per saving and mode (first two parameters as axes), and curves over the first."""
    if sweep_chart_gap(table) is not None:
        return []
    two_d = len(table.parameters) > 1
    charts: list[Chart | None] = []
    for combo in _slices(table, table.parameters[2:]):
        if two_d:
            charts.append(sweep_overview(table, combo))
        for metric in ("mesh_cpu_saving", "mesh_memory_saving"):
            if two_d:
                charts += [sweep_heatmap(table, metric, m, combo) for m in _saving_modes(table)]
            charts.append(sweep_curves(table, metric, combo))
    return [c for c in charts if c is not None]


# ---- calibration: measured against simulated -----------------------------------------------

# Panels of the calibration scatter: the figures of `meshsim.calibrate.compare` by unit.
CALIBRATION_PANELS = {
    "latency (ms)": ("p50", "p90", "p99"),
    "throughput (req/s)": ("throughput",),
    "CPU per component (cores)": ("cpu",),
    "memory per component (MiB)": ("memory",),
}


FIGURE_MARKERS = {"p50": "o", "p90": "s", "p99": "^"}


def _error_scatter(
    title: str, caption: str, stem: str, rows: list[ErrorRow], fitted: list[ErrorRow]
) -> Chart | None:
    """Simulated against measured, a panel per unit. `rows` are coloured by mode and set
    the error band (their median |error|); `fitted` (the fit's own points) are grey."""
    rows = [r for r in rows if r.error is not None]
    fitted = [r for r in fitted if r.error is not None]
    if not rows and not fitted:
        return None
    band_of = "held-out " if fitted else ""
    fig = _figure(title, caption, size=(16.0, 5.6), extra=0.1)
    axes = fig.subplots(1, len(CALIBRATION_PANELS))
    for ax, (panel, figures) in zip(axes, CALIBRATION_PANELS.items(), strict=True):
        pts = [r for r in rows if r.figure in figures]
        grey = [r for r in fitted if r.figure in figures]
        if not pts and not grey:
            ax.set_axis_off()
            continue
        both = pts + grey
        lo = min(min(r.measured, r.simulated) for r in both) / 1.5
        hi = max(max(r.measured, r.simulated) for r in both) * 1.5
        line = np.geomspace(lo, hi, 50)
        name = panel.split(" (")[0]
        if pts:
            band = statistics.median(abs(r.error or 0.0) for r in pts)
            label = f"{band_of}error band: ± median |error| (in each title)"
            ax.fill_between(
                line, line * (1 - band), line * (1 + band), color="#dddddd", label=label
            )
            name = f"{name}: {band_of}error ±{band * 100:.1f}%"
        ax.plot(line, line, color="black", lw=0.8, label="simulated = measured")
        if grey:
            ax.scatter(
                [r.measured for r in grey],
                [r.simulated for r in grey],
                s=14,
                facecolors="none",
                edgecolors="#999999",
                label="fitted on (in sample)",
            )
        for mode in dict.fromkeys(r.mode for r in pts):
            legend = f"{mode} (held out)" if fitted else mode
            for figure in dict.fromkeys(r.figure for r in pts if r.mode == mode):
                mine = [r for r in pts if r.mode == mode and r.figure == figure]
                ax.scatter(
                    [r.measured for r in mine],
                    [r.simulated for r in mine],
                    s=18,
                    color=_color(mode),
                    marker=FIGURE_MARKERS.get(figure, "o"),
                    label=legend,
                    zorder=3,
                )
        shown = [f for f in FIGURE_MARKERS if any(r.figure == f for r in both)]
        for figure in shown if len(shown) > 1 else []:  # which point is which percentile
            ax.scatter([], [], marker=FIGURE_MARKERS[figure], color="black", s=18, label=figure)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers at 1-2-5 steps
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelrotation=45)  # short decades: labels side by side
        ax.set_xlabel(f"measured {panel}")
        ax.set_ylabel(f"simulated {panel}")
        ax.set_title(name, fontsize=9)
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(
        handles.values(),
        handles.keys(),
        loc="lower center",
        bbox_to_anchor=(0.5, 0.045),
        ncols=4,
        fontsize=7,
        frameon=False,
    )
    return Chart(stem, title, fig)


def calibration_scatter(measured: RunResult, simulated: RunResult) -> Chart | None:
    """A measured run against its simulation: every figure, with the median-error band."""
    title = f"Simulated against measured figures — {measured.scenario}"
    caption = (
        f"Scenario: {measured.scenario} · profile: {simulated.profile} · simulated with "
        f"{simulated.engine} (seed {simulated.seed}) · measured run: {measured.engine}"
    )
    rows = compare_runs(measured, simulated)
    return _error_scatter(title, caption, f"{measured.file_stem()}-calibration", rows, [])


def calibration_fit_scatter(fit: CalibrationFolder) -> Chart | None:
    """A calibration: held-out figures (the profile never saw them) against in-sample ones."""
    title = f"Calibrated profile: simulated against measured — {fit.scenario or fit.name}"
    profile = _profile_name(fit.profile_file) or "not written"
    scenario = f"Scenario: {fit.scenario}" if fit.scenario else "Scenario: not recorded"
    caption = (
        f"{scenario} · fitted profile: {profile} · {len(fit.held_out)} held-out "
        f"and {len(fit.in_sample)} in-sample figures · {fit.folder}"
    )
    return _error_scatter(title, caption, f"calibration-{fit.name}", fit.held_out, fit.in_sample)


def _profile_name(path: Path | None) -> str | None:
    if path is None:
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("name:"):
            return line.removeprefix("name:").strip().strip("'\"")
    return None


def _restem(chart: Chart, run: RunResult, stem: str) -> Chart:
    """The chart of a run saved under the run's stem (Inputs.stem) instead of its file stem."""
    return replace(chart, stem=stem + chart.stem.removeprefix(run.file_stem()))


def charts_for(inputs: Inputs) -> list[Chart]:
    charts: list[Chart] = []
    for run in inputs.runs:
        charts += [_restem(c, run, inputs.stem(run)) for c in run_charts(run)]
    for table in inputs.sweeps:
        charts += sweep_charts(table)
    for measured, simulated in inputs.calibrations:  # the simulated run is in inputs.runs
        scatter = calibration_scatter(measured, simulated)
        if scatter is not None:
            charts.append(_restem(scatter, measured, inputs.stem(measured)))
    for fit in inputs.fits:
        fit_chart = calibration_fit_scatter(fit)
        if fit_chart is not None:
            charts.append(fit_chart)
    return charts
