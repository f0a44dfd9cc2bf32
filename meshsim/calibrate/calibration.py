"""A calibration: measure a grid, fit a profile on part of it, predict the rest.

DESIGN.md section 6. The measurements go into a dataset folder (see
`meshsim.calibrate.dataset`); the fitted profile's every `source:` names that dataset;
the held-out settings were never seen by the fit, and their error table is what the
profile is worth.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from meshsim.calibrate.compare import (
    HOST_CPU,
    ErrorRow,
    compare_runs,
    host_cpu_summary,
    summarize,
    summary_lines,
)
from meshsim.calibrate.dataset import (
    changed_since_measured,
    host_facts,
    load_measured,
    measured_network,
    save_measured,
    software_versions,
    write_manifest,
)
from meshsim.calibrate.fit import FitPoint, FitResult, fit_profile
from meshsim.calibrate.grid import GridPlan, Setting, split
from meshsim.calibrate.params import BY_PATH, sourced_paths, with_values
from meshsim.loader import Source, profile_from_source
from meshsim.profile import Profile, Sourced
from meshsim.results import RunResult, write_atomically
from meshsim.run import simulate
from meshsim.scenario import Mode, Scenario

__all__ = [
    "PREDICTION_SPAN",
    "Calibration",
    "Measure",
    "fit_points",
    "host_facts",
    "measure_grid",
    "predict",
    "prediction_scenario",
    "profile_yaml",
    "run_calibration",
    "with_fixed",
    "write_manifest",
]

Say = Callable[[str], None]
Measure = Callable[[Setting], RunResult]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Calibration:
    fit_settings: list[Setting]
    held_out: list[Setting]
    fit: FitResult
    in_sample: list[ErrorRow]
    held_out_rows: list[ErrorRow]
    split_note: str
    # parameters set, not fitted (the grid's `fixed`)
    fixed: dict[str, Sourced] = field(default_factory=dict)


class MixedDataset(ValueError):
    """A dataset holds runs this calibration cannot use: of another testbed than the one
    asked to measure, or measured from a scenario other than the setting's now."""


class NotInDataset(ValueError):
    """--no-measure, and the dataset lacks settings (or modes of them) the grid has."""


def measure_grid(
    plan: GridPlan,
    dataset: Path,
    measure: Measure | None,
    say: Say = _quiet,
    *,
    engine: str | None = None,
) -> dict[str, RunResult]:
    """Measure every setting not already in the dataset; setting key -> measured run.
    With `engine` (the testbed that measures: testbed-local, testbed-kind), a run the
    dataset already holds from another testbed is refused before anything
    is measured: one profile is fitted to one testbed's runs (MixedDataset). With no
    `measure` (--no-measure), settings the dataset lacks are named (NotInDataset)."""
    runs: dict[str, RunResult] = {}
    todo = len(plan.settings)
    # every run the dataset holds is read once and checked before anything is measured
    held_runs = {s.key: load_measured(dataset / s.key, s.scenario) for s in plan.settings}
    for setting in plan.settings:
        folder = dataset / setting.key
        held = held_runs[setting.key]
        if held is None:
            continue
        if engine is not None and held.engine != engine:
            raise MixedDataset(
                f"{folder}: measured on {held.engine}, not {engine}: a "
                "calibration fits the runs of one testbed; give this one another --out"
            )
        changed = changed_since_measured(folder, setting.scenario, held)
        if changed:
            raise MixedDataset(
                f"{folder}: measured from another scenario than setting {setting.label} "
                f"is now (it differs in {', '.join(changed)}): its run is not a measurement "
                f"of this setting; give this calibration another --out, or remove {folder} "
                "to measure the setting again"
            )
    if measure is None:
        lacking = [s.label for s in plan.settings if not _measured_all(held_runs[s.key], s)]
        if lacking:
            raise NotInDataset(
                f"{dataset}: {len(lacking)} of {len(plan.settings)} settings not measured "
                f"(--no-measure): {', '.join(lacking)}"
            )
    for n, setting in enumerate(plan.settings, 1):
        folder = dataset / setting.key
        run = held_runs[setting.key]
        if _measured_all(run, setting):
            say(f"[{n}/{todo}] {setting.label}: already measured")
        else:
            started, load_before = time.monotonic(), os.getloadavg()
            say(f"[{n}/{todo}] measuring {setting.label} ({', '.join(setting.modes)})")
            assert measure is not None  # without it every setting was found measured above
            run = measure(setting)
            save_measured(folder, setting.scenario, run)
            # the host is shared: what else ran then is part of the measurement's record
            conditions = {"measured_at": time.ctime(), "load_average_before": load_before,
                          "load_average_after": os.getloadavg()}  # fmt: skip
            write_atomically({folder / "conditions.json": json.dumps(conditions) + "\n"})
            say(f"[{n}/{todo}] {setting.label}: done in {time.monotonic() - started:.0f} s")
        runs[setting.key] = run
    return runs


def _measured_all(run: RunResult | None, setting: Setting) -> TypeGuard[RunResult]:
    """Whether a dataset's run of a setting has every mode the setting measures."""
    return run is not None and set(setting.modes) <= set(run.modes)


def fit_points(settings: Sequence[Setting], runs: dict[str, RunResult]) -> list[FitPoint]:
    """One point per measured mode of each setting, simulated on the measured links; each
    mesh mode's point carries the setting's no-mesh point as its latency baseline."""
    points: list[FitPoint] = []
    for s in settings:
        run = runs[s.key]
        baseline: FitPoint | None = None
        for mode in sorted(s.modes, key=lambda m: m != "none"):  # no mesh first
            one = _one_mode(measured_network(s.scenario, run, mode), mode)
            point = FitPoint(s.label, mode, one, run.modes[mode], s.seed, baseline)
            baseline = baseline or (point if mode == "none" else None)
            points.append(point)
    return points


# A prediction simulates this many times the measured window: what is compared with a
# measurement is then the model's figure, not one window's sample of it (a 16 s window's p99
# rests on 8 requests at 50 requests/s, and varies by about 9%: as much again as the
# measurement's own sampling error). Ten windows cut the simulated share to about 3%.
PREDICTION_SPAN = 10


def prediction_scenario(scenario: Scenario, span: float = PREDICTION_SPAN) -> Scenario:
    """The scenario with its measured window (after the warm-up) `span` times as long."""
    t = scenario.traffic
    duration = t.warmup_s + (t.duration_s - t.warmup_s) * span
    return scenario.model_copy(update={"traffic": t.model_copy(update={"duration_s": duration})})


def predict(
    settings: Sequence[Setting], runs: dict[str, RunResult], profile: Profile, engine: str
) -> list[ErrorRow]:
    """Simulate each setting with the profile (PREDICTION_SPAN times the measured window)
    and compare with its measurement."""
    rows: list[ErrorRow] = []
    for s in settings:
        measured = runs[s.key]
        # each mode was measured in its own window, with the other work found in it
        modes = {}
        for mode in s.modes:
            scenario = _one_mode(measured_network(s.scenario, measured, mode), mode)
            scenario = prediction_scenario(scenario)
            run = simulate(scenario, profile, modes=[mode], seed=s.seed, engine=engine)
            modes[mode] = run.modes[mode]
        simulated = run.model_copy(update={"modes": modes})
        rows += compare_runs(measured, simulated, point=s.label)
    return rows


def with_fixed(prior: Profile, fixed: dict[str, Sourced]) -> Profile:
    """The prior with the numbers a grid sets rather than fits (its `fixed`), sources and
    all; KeyError names one that is not a sourced number of the profile."""
    return with_values(
        prior, {k: v.value for k, v in fixed.items()}, {k: v.source for k, v in fixed.items()}
    )


def _one_mode(scenario: Scenario, mode: Mode) -> Scenario:
    return scenario.model_copy(update={"mesh": scenario.mesh.model_copy(update={"modes": [mode]})})


def run_calibration(
    plan: GridPlan,
    runs: dict[str, RunResult],
    prior: Profile,
    *,
    engine: str,
    say: Say = _quiet,
) -> Calibration:
    fit_settings, held_out = split(plan.settings, plan.grid.holdout)
    note = (
        f"split: seed {plan.grid.holdout.seed}, {len(held_out)} of {len(plan.settings)} settings "
        f"held out (fraction {plan.grid.holdout.fraction:g}"
        + (f" of each {' x '.join(plan.grid.holdout.by)}" if plan.grid.holdout.by else "")
        + "): "
        + ("; ".join(s.label for s in held_out) or "none")
    )
    say(note)
    fixed = plan.grid.fixed
    fit = fit_profile(
        fit_points(fit_settings, runs),
        with_fixed(prior, fixed),
        engine=engine,
        say=say,
        fixed=set(fixed),
    )
    return Calibration(
        fit_settings,
        held_out,
        fit,
        predict(fit_settings, runs, fit.profile, engine),
        predict(held_out, runs, fit.profile, engine),
        note,
        dict(fixed),
    )


# ---- outputs ------------------------------------------------------------------------------


def _set_source(doc: dict[str, Any], path: str, source: str) -> None:
    node: Any = doc
    for part in path.split("."):
        node = node[part]
    node["source"] = source


def held_out_summary(cal: Calibration, table_ref: str) -> dict[str, Any] | None:
    """The held-out error a fitted profile carries (Profile.held_out): median and worst
    absolute relative error per figure, as the report's held-out summary has them."""
    errors = {
        s.figure: {
            "median": round(s.median_abs_error, 5),
            "worst": round(abs(s.worst.error or 0.0), 5),
            "figures": s.count,
        }
        for s in summarize(cal.held_out_rows, by_kind=True)
        if s.median_abs_error is not None and s.worst is not None
    }
    if not errors:
        return None
    return {"table": table_ref, "split": cal.split_note, "errors": errors}


def fitted_profile_doc(
    cal: Calibration, prior: Profile, dataset_ref: str, name: str, held_out_table: str = ""
) -> dict[str, Any]:
    """The fitted profile as data, every source naming the dataset and how the number came,
    with its error on the held-out settings (listed in `held_out_table`)."""
    doc = cal.fit.profile.model_dump(mode="json")
    prior_doc = prior.model_dump(mode="json")
    doc["name"] = name
    doc["description"] = (
        f"Fitted by meshsim calibrate to {dataset_ref}; held-out error in its folder."
    )
    held_out = held_out_summary(cal, held_out_table) if held_out_table else None
    if held_out is None:
        doc.pop("held_out", None)
    else:
        doc["held_out"] = held_out
    estimates = {e.parameter.path: e for e in cal.fit.estimates()}
    n_runs = sum(len(s.modes) for s in cal.fit_settings)
    for path in sourced_paths(doc):
        node: Any = prior_doc
        for part in path.split("."):
            node = node[part]
        kept = f"kept from {prior.name}: {node['source']}"
        e = estimates.get(path)
        if path in cal.fixed:
            source = f"not fitted to {dataset_ref}: {cal.fixed[path].source}"
        elif e is None:
            why = "not a fitted parameter" if path not in BY_PATH else "no fitted run deploys it"
            source = f"not fitted ({why}) by {dataset_ref}; {kept}"
        elif e.status == "not identifiable":
            source = f"not identifiable from {dataset_ref} ({e.note}); {kept}"
        elif e.kept_prior:
            source = f"poorly determined by {dataset_ref} (fit {e.note}); {kept}"
        else:
            ci = f" ± {e.ci95:.3g}" if e.ci95 is not None else ""
            source = (
                f"calibrated: {dataset_ref}, {n_runs} measured runs, {e.parameter.stage} stage; "
                f"{e.value:.4g}{ci} {e.parameter.unit} (95% CI)"
            )
            if e.status == "poorly determined":
                source += f"; poorly determined: {e.note}"
        _set_source(doc, path, source)
    return doc


def _emit(doc: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines = []
    for key, value in doc.items():
        if isinstance(value, dict) and set(value) == {"value", "source"}:
            source = json.dumps(value["source"], ensure_ascii=False)
            lines.append(f"{pad}{key}: {{value: {value['value']:.6g}, source: {source}}}")
        elif isinstance(value, dict) and set(value) == {"median", "worst", "figures"}:
            lines.append(
                f"{pad}{key}: {{median: {value['median']:.5g}, worst: {value['worst']:.5g}, "
                f"figures: {value['figures']}}}"
            )
        elif isinstance(value, dict):
            lines += [f"{pad}{key}:", *_emit(value, indent + 1)]
        else:
            lines.append(f"{pad}{key}: {json.dumps(value)}")
    return lines


def profile_yaml(doc: dict[str, Any], header: str) -> str:
    """A profile file in the bundled profiles' style: one line per sourced number."""
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + "\n".join(_emit(doc, 0)) + "\n"


def fitted_profile_text(doc: dict[str, Any], header: str, file: str) -> str:
    """The profile file of `doc`, checked to read back (else InputError, naming `file`); its
    held-out error stamped with the fingerprint of the numbers as the file has them."""
    held = doc.get("held_out")
    if held is not None:
        bare = {k: v for k, v in doc.items() if k != "held_out"}
        numbers = profile_from_source(Source(file, profile_yaml(bare, header)))
        stamped = {"table": held["table"], "split": held["split"]}
        stamped["numbers"] = numbers.numbers_fingerprint()
        doc = {**doc, "held_out": {**stamped, "errors": held["errors"]}}
    text = profile_yaml(doc, header)
    profile_from_source(Source(file, text))
    return text


def rows_csv(rows: Sequence[ErrorRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["point", "mode", "figure", "component", "kind", "measured", "simulated", "error",
         "sampling_error"]
    )  # fmt: skip
    for r in rows:
        error = "" if r.error is None else f"{r.error:.6f}"
        sampling = "" if r.sampling is None else f"{r.sampling:.6f}"
        writer.writerow(
            [
                r.point,
                r.mode,
                r.figure,
                r.component,
                r.kind,
                f"{r.measured:.6g}",
                f"{r.simulated:.6g}",
                error,
                sampling,
            ]
        )
    return buf.getvalue()


def report_text(cal: Calibration) -> str:
    """The fit's estimates and both error summaries, as plain text."""
    lines = [cal.split_note, "", "estimates (95% confidence intervals):"]
    for stage in cal.fit.stages:
        lines.append(
            f"  {stage.stage} stage: {stage.points} points, {stage.residuals} figures, "
            f"rms error {stage.rms_before:.3f} (prior) -> {stage.rms_after:.3f}"
            + (
                f" (the lowest cost of {stage.starts} starts: start {stage.chosen + 1})"
                if stage.starts > 1
                else ""
            )
        )
        lines += [f"    {e.describe()}" for e in stage.estimates]
    if cal.fixed:
        lines.append("  set, not fitted (the grid's `fixed`):")
        lines += [f"    {k}: {v.value:.4g} — {v.source}" for k, v in cal.fixed.items()]
    lines += ["", "fitted settings (in sample):"]
    lines += summary_lines(summarize(cal.in_sample, by_kind=True))
    lines += ["", "held-out settings (never seen by the fit):"]
    lines += summary_lines(summarize(cal.held_out_rows, by_kind=True))
    host = host_cpu_summary(cal.held_out_rows)
    if host is not None:
        lines += ["", f"held-out {HOST_CPU}", *summary_lines([host])]
    return "\n".join(lines) + "\n"


def _conditions(folder: Path) -> Any:
    """What else ran while a setting was measured; None if not recorded (or unreadable:
    the record of a dataset written before it was written atomically)."""
    try:
        return json.loads((folder / "conditions.json").read_text())
    except (OSError, ValueError):
        return None


def manifest(
    plan: GridPlan,
    scenario_file: Path,
    dataset: Path,
    runs: dict[str, RunResult],
    host: dict[str, Any],
    software: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The dataset's record: the grid, the host, the software that measured (by default
    this host's: meshsim, HAProxy, the Python packages) and every setting."""
    _, held = split(plan.settings, plan.grid.holdout)
    held_keys = {s.key for s in held}
    return {
        "grid": plan.grid.model_dump(mode="json"),
        "grid_file": str(plan.file) if plan.file else None,
        "scenario_file": str(scenario_file),
        "host": host,
        "software": software if software is not None else software_versions(),
        "settings": [
            {
                "key": s.key,
                "label": s.label,
                "topology": s.topology,
                "params": s.params,
                "modes": list(s.modes),
                "seed": s.seed,
                "held_out": s.key in held_keys,
                "result": f"{s.key}/{runs[s.key].file_stem()}.json" if s.key in runs else None,
                "measured": s.key in runs,
                "conditions": _conditions(dataset / s.key),
            }
            for s in plan.settings
        ],
    }
