"""A self-contained HTML report of runs, sweeps and calibrations: readable without meshsim.

The page holds the scenario in brief, the comparison table, every chart (PNG embedded as
data URIs, so the file can be mailed or opened offline), the profile's numbers with their
sources, and where a measured run sits next to a simulated one, the error per figure.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from meshsim.calibrate.compare import ErrorRow, compare_runs, summarize
from meshsim.loader import REPO_ROOT, InputError, load_profile, load_scenario, resolve_profile_path
from meshsim.plots import (
    PERCENTILES,
    SAVING_LABELS,
    TARGET_SAVING,
    CalibrationFolder,
    Chart,
    Inputs,
    SweepTable,
    charts_for,
    comparable,
    run_savings,
)
from meshsim.profile import Profile
from meshsim.render import (
    MARK,
    NOISE_NOTE,
    PERCENTILE_NOISE_NOTE,
    figure_cell,
    held_out_lines,
    overhead_cell,
    percentile_cell,
    profile_shown,
)
from meshsim.results import COMPONENT_CLASSES, RunResult
from meshsim.scenario import MODES, Scenario
from meshsim.sweep import NAMED_PARAMETERS

__all__ = ["build_report", "find_scenario", "kept_scenario"]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child, th { text-align: left; }
td.src { text-align: left; font-size: .85em; color: #444; max-width: 640px; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.meta { color: #555; } .good { color: #1a7f37; } details { margin: 1em 0; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], src_col: int = -1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [
            f'<td class="src">{_e(v)}</td>' if i == src_col else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value * 100:+.1f}%"


# ---- finding the scenario and profile behind a result --------------------------------------


def kept_scenario(run: RunResult, near: Sequence[Path]) -> Path | None:
    """The scenario written beside the run itself: `run --out`'s `<stem>-scenario.yaml`,
    or `measure --out`'s `<stem>-as-measured.yaml` (several runs of one scenario in one
    folder each keep their own)."""
    for folder in near:
        for suffix in ("-scenario.yaml", "-as-measured.yaml"):
            path = folder / f"{run.file_stem()}{suffix}"
            if path.is_file():
                return path
    return None


def find_scenario(name: str, near: Sequence[Path]) -> Path | None:
    """A scenario file whose `name` is `name`: next to the results, then anywhere under
    scenarios/ (of the working directory, then of the repository)."""
    candidates = [p for folder in near if folder.is_dir() for p in sorted(folder.glob("*.yaml"))]
    for root in (Path.cwd() / "scenarios", REPO_ROOT / "scenarios"):
        candidates += sorted(root.rglob("*.yaml")) if root.is_dir() else []
    for path in candidates:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict) and doc.get("name") == name and "workloads" in doc:
            return path
    return None


def _profile_for(name: str, scenario_file: Path | None) -> Profile | None:
    """The profile a run names (its `name:`, which need not be its file's: a fitted profile
    is often written as another file): the one the scenario file names, a file of that
    name, or any file under profiles/ (of the working directory, then of the repository)
    whose `name:` it is."""
    anchor = scenario_file or REPO_ROOT / "scenarios" / "_.yaml"
    candidates = []
    if scenario_file is not None:
        try:
            named = yaml.safe_load(scenario_file.read_text(encoding="utf-8")).get("profile")
        except (OSError, yaml.YAMLError, AttributeError):
            named = None
        if isinstance(named, str):
            candidates.append(resolve_profile_path(named, scenario_file))
    candidates.append(resolve_profile_path(name, anchor))
    for root in (Path.cwd() / "profiles", REPO_ROOT / "profiles"):
        candidates += sorted(root.glob("*.yaml")) if root.is_dir() else []
    for path in candidates:
        if path is None:
            continue
        try:
            profile = load_profile(path)
        except InputError:
            continue
        if profile.name == name:
            return profile
    return None


# ---- sections -------------------------------------------------------------------------------


def _scenario_brief(scenario: Scenario) -> str:
    cluster, traffic, mesh = scenario.cluster, scenario.traffic, scenario.mesh
    nodes = cluster.nodes if isinstance(cluster.nodes, int) else len(cluster.nodes)
    pods = sum(w.replicas for w in scenario.workloads)
    namespaces = sorted({w.namespace for w in scenario.workloads})
    calls = sum(len(w.calls) for w in scenario.workloads)
    if traffic.open_loop is not None:
        load = f"open loop, {traffic.open_loop.rate_rps:g} req/s ({traffic.open_loop.arrivals})"
    else:
        assert traffic.closed_loop is not None
        load = f"closed loop, {traffic.closed_loop.users} users"
    rows = [
        ("description", scenario.description or "—"),
        (
            "cluster",
            f"{nodes} nodes × {cluster.cores_per_node} cores, {cluster.memory_gib_per_node:g} "
            f"GiB; zones {', '.join(cluster.zones)}; one-way delay same node "
            f"{cluster.network.same_node_ms:g} ms, cross node {cluster.network.cross_node_ms:g}"
            f" ms, cross zone {cluster.network.cross_zone_ms:g} ms",
        ),
        (
            "workloads",
            f"{len(scenario.workloads)} services, {pods} app pods, {calls} call edges, "
            f"namespaces {', '.join(namespaces)}",
        ),
        (
            "traffic",
            f"entry {traffic.entry}; {load}; request {traffic.request_bytes} B, response "
            f"{traffic.response_bytes} B; {traffic.duration_s:g} s with {traffic.warmup_s:g} s"
            " warm-up",
        ),
        (
            "mesh",
            f"modes {', '.join(mesh.modes)}; waypoint per {mesh.waypoint_scope}; pool idle "
            f"timeout {mesh.pool.idle_timeout_s:g} s; certificates {mesh.cert_lifetime_h:g} h",
        ),
        (
            "price",
            f"{scenario.price.vcpu_hour_usd} USD/vCPU-h, {scenario.price.gib_hour_usd} "
            f"USD/GiB-h ({scenario.price.source})",
        ),
    ]
    return _table(["", "scenario " + scenario.name], rows, src_col=1)


def _comparison(run: RunResult) -> str:
    modes = [m for m in MODES if m in run.modes] + [m for m in run.modes if m not in MODES]
    results = [run.modes[m] for m in modes]
    rows: list[list[object]] = [
        ["requests (errors)", *(f"{r.requests} ({r.errors})" for r in results)],
        ["throughput (req/s)", *(f"{r.throughput_rps:.1f}" for r in results)],
    ]
    latency: list[list[str]] = []
    for key, label in PERCENTILES:
        latency.append([percentile_cell(r, key) for r in results])
        rows.append([f"latency {label} (ms)", *latency[-1]])
    for part in ("total", *COMPONENT_CLASSES):
        rows.append(
            [f"CPU {part} (cores)", *(f"{getattr(r.cpu_cores, part):.3f}" for r in results)]
        )
    for part in ("total", *COMPONENT_CLASSES):
        rows.append(
            [f"memory {part} (MiB)", *(f"{getattr(r.memory_mib, part):.1f}" for r in results)]
        )
    rows += [
        ["mTLS handshakes (/s)", *(figure_cell(r.handshakes_per_s, ".2f") for r in results)],
        ["connections open", *(figure_cell(r.connections_open, ".1f") for r in results)],
        [
            "proxies sidecar/ztunnel/waypoint",
            *(f"{r.proxies.sidecar}/{r.proxies.ztunnel}/{r.proxies.waypoint}" for r in results),
        ],
        ["cost (USD/month)", *(f"{r.cost_usd_month:,.2f}" for r in results)],
    ]
    saved = run_savings(run)
    for name, label in SAVING_LABELS.items():
        rows.append([label, *(_pct(saved[m][name]) if m in saved else "—" for m in modes)])
    overheads: list[list[str]] = []
    if "none" in run.modes:  # as the terminal's table has them
        for p in ("p50", "p99"):
            overheads.append([overhead_cell(run, m, p) for m in modes])
            rows.append([f"{p} overhead (ms)", *overheads[-1]])
    marked = any(MARK in cell for row in latency for cell in row)
    note = ""
    if any(MARK in cell for row in overheads for cell in row):
        note = f'<p class="meta">{_e(NOISE_NOTE)}</p>'
    elif marked:
        note = f'<p class="meta">{_e(PERCENTILE_NOISE_NOTE)}</p>'
    return _table(["figure", *modes], rows) + note


def _sweep_summary(table: SweepTable) -> str:
    meta = table.meta
    spec = meta.get("spec", {})
    parts = [f"<p>Sweep <b>{_e(meta['sweep'])}</b>: {_e(meta.get('description', ''))}</p>"]
    swept = [
        [
            name,
            ", ".join(str(v) for v in table.values(name)),
            NAMED_PARAMETERS.get(
                name, "; ".join(spec.get("parameters", {}).get(name, {}).get("paths", [name]))
            ),
        ]
        for name in [*table.parameters, "mode"]
    ]
    parts.append(_table(["parameter", "values", "what it sets"], swept, src_col=2))
    parts.append(
        f"<p>{len(table.rows)} of {meta['points']} points finished; engine {_e(meta['engine'])}"
        f"; one seed per point, shared by the modes of that point.</p>"
    )
    rows = []
    for mode in [m for m in table.values("mode") if m not in ("sidecar", "none")]:
        mine = [r for r in table.rows if r["mode"] == mode]
        kept = [r for r in mine if comparable(r)]
        for metric in ("mesh_cpu_saving", "mesh_memory_saving", "cpu_saving", "memory_saving"):
            values = [r[metric] for r in kept if not math.isnan(r[metric])]
            if not values:
                continue
            hit = sum(1 for v in values if v >= TARGET_SAVING)
            row = [mode, SAVING_LABELS[metric], _pct(min(values)), _pct(max(values))]
            rows.append([*row, f"{hit} of {len(values)}", len(mine) - len(kept)])
    if rows:
        parts.append("<h3>Savings against sidecar over the sweep</h3>")
        header = ["mode", "figure", "lowest", "highest", "points ≥ 90%", "not comparable"]
        parts.append(_table(header, rows))
        parts.append(
            "<p>Not comparable: points where a proxy of the mode or of its sidecar baseline "
            "ran out of worker threads (its CPU reached its threads' capacity), so it did not "
            "do all the work; they are left out of the lowest, highest and counts.</p>"
        )
    header = [
        *table.parameters,
        "mode",
        "CPU cores",
        "memory MiB",
        "p99 ms",
        *SAVING_LABELS.values(),
    ]
    body = [
        [
            *(r[p] for p in table.parameters),
            r["mode"],
            f"{r['cpu_total_cores']:.3f}",
            f"{r['memory_total_mib']:.1f}",
            f"{r['latency_p99_ms']:.3f}",
            *(_pct(r[k]) for k in SAVING_LABELS),
        ]
        for r in table.rows
    ]
    parts.append(
        f"<details><summary>Every point ({len(body)} rows)</summary>"
        f"{_table(header, body)}</details>"
    )
    return "\n".join(parts)


def _profile_sources(profile: Profile) -> str:
    rows: list[list[object]] = []

    def walk(doc: Any, path: str) -> None:
        if isinstance(doc, dict) and set(doc) == {"value", "source"}:
            rows.append([path, f"{doc['value']:g}", doc["source"]])
        elif isinstance(doc, dict):
            for key, value in doc.items():
                walk(value, f"{path}.{key}" if path else key)

    walk(profile.model_dump(mode="json"), "")
    intro = f"<p>Profile <b>{_e(profile.name)}</b>: {_e(profile.description)}</p>"
    return intro + _table(["parameter", "value", "source"], rows, src_col=2)


def _error_tables(rows: Sequence[ErrorRow], what: str) -> str:
    """The median and worst error per figure (with the calibration's bounds), then every
    figure in a collapsed table."""
    summary = []
    for s in summarize(rows):
        if s.count == 0:
            continue
        median = "—" if s.median_abs_error is None else f"{s.median_abs_error * 100:.1f}%"
        worst = s.worst
        worst_text = (
            f"{worst.error * 100:+.1f}% ({worst.mode} {worst.component or worst.figure})"
            if worst is not None and worst.error is not None
            else "—"
        )
        bound = "—" if s.bound is None else f"{s.bound * 100:.0f}%"
        within = {True: "yes", False: "no", None: "—"}[s.within_bound]
        summary.append([s.figure, s.count, median, worst_text, bound, within])
    body = [
        [
            r.point or "—",
            r.mode,
            r.figure,
            r.component or "—",
            f"{r.measured:.4g}",
            f"{r.simulated:.4g}",
            "—" if r.error is None else f"{r.error * 100:+.1f}%",
        ]
        for r in rows
    ]
    header = ["figure", "compared", "median |error|", "worst", "bound", "within bound"]
    every = ["setting", "mode", "figure", "component", "measured", "simulated", "error"]
    return (
        _table(header, summary)
        + f"<details><summary>Every {what} figure ({len(body)} rows)</summary>"
        + _table(every, body)
        + "</details>"
    )


ERROR_NOTE = "Error = (simulated − measured) / measured."


def _calibration(measured: RunResult, simulated: RunResult) -> str:
    rows = compare_runs(measured, simulated)
    if not rows:
        return "<p>No figure is both measured and simulated.</p>"
    intro = (
        f"<p>Measured run of <b>{_e(measured.scenario)}</b> ({_e(measured.engine)}) against a "
        f"{_e(simulated.engine)} simulation with profile {_e(simulated.profile)}. "
        f"{ERROR_NOTE}</p>"
    )
    return intro + _error_tables(rows, "compared")


def _calibrated_scenario(fit: CalibrationFolder) -> Path | None:
    """The scenario a calibration measured, as its dataset's manifest names it."""
    name = fit.scenario_file
    if name is None:
        return None
    for base in (Path.cwd(), REPO_ROOT):
        if (base / name).is_file():
            return base / name
    return None


def _fit(fit: CalibrationFolder) -> str:
    parts = [
        f"<p>Calibration in <code>{_e(fit.folder)}</code>. {ERROR_NOTE} Held-out settings "
        "were never seen by the fit: their error is what the profile is worth.</p>"
    ]
    if fit.held_out:
        parts.append("<h3>Held-out error</h3>" + _error_tables(fit.held_out, "held-out"))
    else:
        parts.append("<p>No held-out settings: the fit's error below proves little.</p>")
    if fit.in_sample:
        parts.append("<h3>In-sample error (fitted on)</h3>")
        parts.append(_error_tables(fit.in_sample, "in-sample"))
    if fit.report_text:
        parts.append(f"<h3>Fit report</h3><pre>{_e(fit.report_text)}</pre>")
    return "\n".join(parts)


def _figure_html(chart: Chart) -> str:
    buf = io.BytesIO()
    chart.figure.savefig(buf, format="png", dpi=100)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{_e(chart.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(chart.title)}</figcaption></figure>"
    )


# ---- the page -------------------------------------------------------------------------------


def build_report(inputs: Inputs, near: Sequence[Path]) -> str:
    """The whole HTML page for `inputs`; `near` are folders searched for scenario files."""
    sections: list[str] = []
    names: list[str] = []
    profiles: dict[str, Profile | None] = {}
    for run in inputs.runs:
        names.append(run.scenario)
        file = kept_scenario(run, near) or find_scenario(run.scenario, near)
        sections.append(f"<h2>Run: {_e(run.scenario)}</h2>")
        sections.append(
            f'<p class="meta">{_e(run.kind)} run · engine {_e(run.engine)} · seed {run.seed} · '
            f"{_e(profile_shown(run))} · meshsim {_e(run.meshsim_version)}</p>"
        )
        if file is not None:
            try:
                scenario, _ = load_scenario(file)
                sections.append(_scenario_brief(scenario))
            except InputError as err:
                sections.append(
                    f"<p>The scenario file {_e(str(file))} does not read back, so the scenario "
                    f"is not described here:</p><pre>{_e(str(err))}</pre>"
                )
                file = None
        else:
            sections.append("<p>The scenario file was not found next to the results.</p>")
        sections.append("<h3>Comparison</h3>" + _comparison(run))
        if run.kind == "simulated":
            sections.append(
                '<p class="meta">'
                + "<br>".join(_e(x) for x in held_out_lines(run.profile, run.profile_held_out))
                + "</p>"
            )
        if run.kind == "simulated":  # a measurement used no profile
            profiles.setdefault(run.profile, _profile_for(run.profile, file))
    for table in inputs.sweeps:
        names.append(table.meta["sweep"])
        sections.append(f"<h2>Sweep: {_e(table.meta['sweep'])}</h2>")
        with contextlib.suppress(KeyError, ValueError):
            sections.append(_scenario_brief(Scenario.model_validate(table.meta["base_scenario"])))
        sections.append(_sweep_summary(table))
        profiles.setdefault(table.meta["profile"], _profile_for(table.meta["profile"], None))
    for measured, simulated in inputs.calibrations:
        sections.append(f"<h2>Calibration: {_e(measured.scenario)}</h2>")
        sections.append(_calibration(measured, simulated))
    for fit in inputs.fits:
        names.append(fit.name)
        sections.append(f"<h2>Calibration: {_e(fit.name)}</h2>")
        scenario_file = _calibrated_scenario(fit)
        if scenario_file is not None:
            with contextlib.suppress(InputError):
                sections.append(_scenario_brief(load_scenario(scenario_file)[0]))
        sections.append(_fit(fit))
        if fit.profile_file is not None:
            with contextlib.suppress(InputError):
                fitted = load_profile(fit.profile_file)
                profiles.setdefault(fitted.name, fitted)
    charts = charts_for(inputs)
    if charts:
        sections.append("<h2>Charts</h2>")
        sections += [_figure_html(c) for c in charts]
    for name, profile in profiles.items():
        sections.append(f"<h2>Profile: {_e(name)} — every number and its source</h2>")
        sections.append(
            _profile_sources(profile) if profile else "<p>The profile file was not found.</p>"
        )
    title = f"meshsim report — {', '.join(dict.fromkeys(names)) or 'no results'}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
