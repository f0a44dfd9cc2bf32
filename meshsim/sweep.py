"""Sweeps: one base scenario, many variants of it, each simulated with its own seed.

A sweep file names a base scenario and the parameters to vary, as a grid (every
combination) or a list of points. Each point changes the scenario's YAML data before
validation, so a variant is checked exactly like a file a person wrote. Points run in
worker processes (`local`) or on a Dask cluster (`dask`); each finished point is written
to its own file at once, so a rerun skips what is done, and a failed point is recorded
with its parameters while the others go on. `gather_table` turns the finished points
into one CSV table with savings against the sidecar run of the same parameters.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import ctypes
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import math
import os
import re
import signal
import threading
import traceback
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meshsim.checks import check_scenario, did_you_mean
from meshsim.loader import (
    InputError,
    Problem,
    Source,
    explain,
    format_path,
    load_profile,
    read_source,
    validate_source,
)
from meshsim.loader import resolve_profile_path as _resolve_profile
from meshsim.profile import Profile
from meshsim.results import COMPONENT_CLASSES, RunResult, finite_or_null, write_atomically
from meshsim.run import ENGINES, simulate
from meshsim.scenario import MODES, Scenario
from meshsim.topology import build_topology

__all__ = [
    "NAMED_PARAMETERS",
    "Point",
    "PointOutcome",
    "SweepPlan",
    "SweepSpec",
    "SweepSummary",
    "apply_point",
    "check_parameter_names",
    "expand_points",
    "gather_table",
    "load_sweep",
    "run_point",
    "run_sweep",
    "with_engine",
]

Executor = Literal["local", "dask"]
PathKey = tuple[str | int, ...]

# Parameters that are not one scenario path but a rule over several (see `apply_point`).
NAMED_PARAMETERS: dict[str, str] = {
    "mode": "the mesh mode of the point (default: every mode of the base scenario)",
    "pods_per_node": "app pods per node: every workload's replicas, split evenly",
    "rps_per_pod": "requests per second each app pod serves on average (sets the entry rate)",
    "call_depth": "calls are cut below this many hops from the entry service",
}
# Applied in this order, because later rules count what earlier ones changed.
_NAMED_ORDER = ("call_depth", "pods_per_node", "rps_per_pod", "mode")
# The scenario paths each sets: a problem there is blamed on its value, and a sweep may
# not also set them by path
_NAMED_PATHS = {
    "mode": ["mesh.modes"],
    "pods_per_node": ["workloads[*].replicas"],
    "rps_per_pod": ["traffic.open_loop.rate_rps"],
    "call_depth": ["workloads[*].calls"],
}

_SEGMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[(?:\*|\d+)\])*)$")
_INDEX = re.compile(r"\[(\*|\d+)\]")

Scalar = int | float | str | bool


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)


class ParameterSpec(_Model):
    """A swept parameter that sets several scenario paths at once (e.g. every payload)."""

    paths: list[str] = Field(min_length=1)
    description: str = ""


class SweepSpec(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    description: str = ""
    scenario: str = Field(description="The base scenario, relative to the sweep file.")
    engine: str = "des"
    seed: int = Field(default=0, ge=0, description="Mixed into every point's seed.")
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    grid: dict[str, list[Scalar]] = Field(
        default_factory=dict, description="Every combination of these values is a point."
    )
    points: list[dict[str, Scalar]] = Field(
        default_factory=list, description="Points given one by one (after the grid's)."
    )


@dataclass(frozen=True)
class Point:
    """One scenario variant: its parameter values (mode included) and its seed."""

    params: dict[str, Scalar]
    seed: int

    @property
    def key(self) -> str:
        """A stable id from the parameters, used as the point's file name."""
        text = json.dumps(self.params, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepPlan:
    """A loaded and checked sweep: everything a worker needs to run any of its points."""

    spec: SweepSpec
    file: Path
    base: dict[str, Any]  # the base scenario's YAML data, before validation
    scenario_name: str
    profile: Profile
    points: tuple[Point, ...]
    columns: tuple[str, ...]  # parameter names, mode last


@dataclass(frozen=True)
class PointOutcome:
    point: Point
    run: RunResult | None
    error: str | None


@dataclass(frozen=True)
class SweepSummary:
    total: int
    skipped: int  # finished by an earlier run
    ran: int
    failed: list[PointOutcome]
    table: Path


# ---- paths into the scenario -----------------------------------------------------------


def _parse_path(path: str) -> list[str | int | None]:
    """'workloads[*].calls[0].to' -> ['workloads', None, 'calls', 0, 'to'] (None = every)."""
    out: list[str | int | None] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(
                f"bad path '{path}': '{segment}' is not a key, optionally followed by [*] or [N]"
            )
        out.append(match.group(1))
        for index in _INDEX.findall(match.group(2)):
            out.append(None if index == "*" else int(index))
    return out


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of a (possibly optional, annotated or union) type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(annotation) for alt in _unwrap(arg)]
    return [annotation]


def check_path(path: str) -> None:
    """Raise ValueError unless `path` names a field of the scenario schema."""
    parts = _parse_path(path)
    current: list[Any] = [Scenario]
    walked = ""
    for part in parts:
        if isinstance(part, str):
            models = [t for t in current if isinstance(t, type) and issubclass(t, BaseModel)]
            fields = {name for model in models for name in model.model_fields}
            if part not in fields:
                where = f" under '{walked}'" if walked else ""
                hint = did_you_mean(part, sorted(fields))
                expected = f"; expected one of: {', '.join(sorted(fields))}" if fields else ""
                raise ValueError(f"'{path}': unknown key '{part}'{where}{hint}{expected}")
            current = [
                alt
                for model in models
                if part in model.model_fields
                for alt in _unwrap(model.model_fields[part].annotation)
            ]
            walked = f"{walked}.{part}" if walked else part
        else:
            lists = [t for t in current if typing.get_origin(t) is list]
            if not lists:
                raise ValueError(f"'{path}': '{walked}' is not a list, so it takes no index")
            current = [alt for t in lists for alt in _unwrap(typing.get_args(t)[0])]
            walked += "[*]" if part is None else f"[{part}]"


def _set_path(doc: Any, parts: Sequence[str | int | None], value: Scalar, path: str) -> None:
    head, rest = parts[0], parts[1:]
    if head is None:  # every item of a list that exists (none: nothing to set)
        if isinstance(doc, list) and not rest:  # the items themselves
            doc[:] = [value] * len(doc)
            return
        for item in doc if isinstance(doc, list) else []:
            _set_path(item, rest, value, path)
        return
    if isinstance(head, int):
        if not isinstance(doc, list) or head >= len(doc):
            raise ValueError(f"'{path}': index [{head}] is past the end of the list")
        if rest:
            _set_path(doc[head], rest, value, path)
        else:
            doc[head] = value
        return
    if not isinstance(doc, dict):
        raise ValueError(f"'{path}': '{head}' is set on something that is not a mapping")
    if not rest:
        doc[head] = value
    elif rest[0] is None or isinstance(rest[0], int):
        if head in doc:
            _set_path(doc[head], rest, value, path)
        elif isinstance(rest[0], int):
            raise ValueError(f"'{path}': the scenario has no '{head}' list to index")
    else:
        _set_path(doc.setdefault(head, {}), rest, value, path)


# ---- named parameters --------------------------------------------------------------------


def _node_count(doc: dict[str, Any]) -> int:
    nodes = doc.get("cluster", {}).get("nodes", 1)
    return nodes if isinstance(nodes, int) else len(nodes)


def _calls(workload: dict[str, Any]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = workload.get("calls") or []
    return calls


def _visits_per_entry(doc: dict[str, Any]) -> dict[str, float]:
    """Expected requests each service receives per entry request (probability x count)."""
    by_name = {w["name"]: w for w in doc["workloads"]}
    visits: dict[str, float] = {}

    def visit(name: str, weight: float) -> None:
        visits[name] = visits.get(name, 0.0) + weight
        for call in _calls(by_name.get(name, {})):
            p, n = float(call.get("probability", 1.0)), int(call.get("count", 1))
            visit(call["to"], weight * p * n)

    visit(doc["traffic"]["entry"], 1.0)
    return visits


def _number(name: str, value: Scalar, expected: str, fits: Callable[[float], bool]) -> float:
    """A named parameter's value, a finite number that `fits`, or ValueError saying it
    must be `expected` (a boolean or a text is no number)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    number = float(value) if is_number else math.nan
    if not (math.isfinite(number) and fits(number)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def _set_pods_per_node(doc: dict[str, Any], value: Scalar) -> None:
    whole = "a whole number >= 1"
    per_node = int(_number("pods_per_node", value, whole, lambda v: v.is_integer() and v >= 1))
    workloads = doc["workloads"]
    total = per_node * _node_count(doc)
    if total < len(workloads):
        raise ValueError(
            f"pods_per_node {per_node} x {_node_count(doc)} nodes = {total} pods, fewer than "
            f"the {len(workloads)} workloads (each needs one)"
        )
    share, extra = divmod(total, len(workloads))
    for i, workload in enumerate(workloads):
        workload["replicas"] = share + (1 if i < extra else 0)


def _set_rps_per_pod(doc: dict[str, Any], value: Scalar) -> None:
    rate = _number("rps_per_pod", value, "> 0", lambda v: v > 0)
    open_loop = doc["traffic"].get("open_loop")
    if not isinstance(open_loop, dict):
        raise ValueError("rps_per_pod needs open-loop traffic (traffic.open_loop)")
    pods = sum(int(w.get("replicas", 1)) for w in doc["workloads"])
    served = sum(_visits_per_entry(doc).values())
    open_loop["rate_rps"] = rate * pods / served


def _set_call_depth(doc: dict[str, Any], value: Scalar) -> None:
    whole = "a whole number >= 0"
    depth_limit = int(_number("call_depth", value, whole, lambda v: v.is_integer() and v >= 0))
    by_name = {w["name"]: w for w in doc["workloads"]}
    depth = {doc["traffic"]["entry"]: 0}
    frontier = [doc["traffic"]["entry"]]
    while frontier:  # breadth first: each service's shortest distance from the entry
        nxt = []
        for name in frontier:
            for call in _calls(by_name.get(name, {})):
                if call["to"] not in depth:
                    depth[call["to"]] = depth[name] + 1
                    nxt.append(call["to"])
        frontier = nxt
    for name, workload in by_name.items():
        if depth.get(name, 0) >= depth_limit:
            workload["calls"] = []


def _set_mode(doc: dict[str, Any], value: Scalar) -> None:
    if value not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {value!r}")
    doc.setdefault("mesh", {})["modes"] = [value]


_NAMED_SETTERS: dict[str, Callable[[dict[str, Any], Scalar], None]] = {
    "call_depth": _set_call_depth,
    "pods_per_node": _set_pods_per_node,
    "rps_per_pod": _set_rps_per_pod,
    "mode": _set_mode,
}


def apply_point(base: dict[str, Any], params: dict[str, Scalar], spec: SweepSpec) -> dict[str, Any]:
    """The base scenario's YAML data with a point's parameters applied (a deep copy).

    Path parameters are set first, then named ones in `_NAMED_ORDER`, so that
    `rps_per_pod` counts the pods and calls that the point ends up with."""
    doc = copy.deepcopy(base)
    for name, value in params.items():
        if name in _NAMED_SETTERS:
            continue
        paths = spec.parameters[name].paths if name in spec.parameters else [name]
        for path in paths:
            _set_path(doc, _parse_path(path), value, path)
    for name in _NAMED_ORDER:
        if name in params:
            _NAMED_SETTERS[name](doc, params[name])
    return doc


# ---- loading -----------------------------------------------------------------------------


def point_seed(base_seed: int, params: dict[str, Scalar]) -> int:
    """A point's seed: from the sweep's seed and every parameter but the mode, so the
    modes of one point see the same random draws (a paired comparison)."""
    shared = {k: v for k, v in params.items() if k != "mode"}
    text = json.dumps([base_seed, shared], sort_keys=True)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 2**31


def check_parameter_names(spec: SweepSpec, source: Any) -> list[Any]:
    problems = []
    for name, param in spec.parameters.items():
        if name in NAMED_PARAMETERS:
            problems.append(
                source.problem(("parameters", name), f"'{name}' is a built-in parameter")
            )
        for i, path in enumerate(param.paths):
            try:
                check_path(path)
            except ValueError as exc:
                problems.append(source.problem(("parameters", name, "paths", i), str(exc)))
    used: list[tuple[PathKey, str]] = [(("grid", n), n) for n in spec.grid]
    for i, point in enumerate(spec.points):
        used += [(("points", i, n), n) for n in point]
    for where, name in used:
        if name in NAMED_PARAMETERS or name in spec.parameters:
            continue
        if "." not in name and "[" not in name:
            known = sorted([*NAMED_PARAMETERS, *spec.parameters])
            problems.append(
                source.problem(
                    where,
                    f"unknown parameter '{name}'{did_you_mean(name, known)}; expected a "
                    f"scenario path (like traffic.open_loop.rate_rps), one of "
                    f"{', '.join(known)}, or a name defined under parameters",
                    at_key=True,
                )
            )
            continue
        try:
            check_path(name)
        except ValueError as exc:
            problems.append(source.problem(where, str(exc), at_key=True))
    for name, values in spec.grid.items():
        if not values:
            problems.append(source.problem(("grid", name), "give at least one value"))
    # a named parameter and a path that sets what it sets: the table would show the
    # path's value where the point ran with the named one's
    named_used = {n for _, n in used if n in _NAMED_PATHS}
    for where, name in used:
        if name in _NAMED_PATHS:
            continue
        for named in sorted(named_used):
            clash = [
                q
                for q in _paths_of(spec, name)
                for n in _NAMED_PATHS[named]
                if _matches(n, q) or _matches(q, n)
            ]
            if clash:
                what = "it" if clash[0] == name else f"{clash[0]}, which '{name}' sets"
                message = f"{named} sets {what} too; give one of them"
                problems.append(source.problem(where, message, at_key=True))
    modes: list[tuple[PathKey, Scalar]] = [
        (("grid", "mode", i), m) for i, m in enumerate(spec.grid.get("mode", []))
    ]
    modes += [(("points", i, "mode"), p["mode"]) for i, p in enumerate(spec.points) if "mode" in p]
    for where, mode in modes:
        if mode not in MODES:
            hint = did_you_mean(str(mode), list(MODES))
            expected = f"expected one of: {', '.join(MODES)}"
            problems.append(source.problem(where, f"unknown mode '{mode}'{hint}; {expected}"))
    if not spec.grid and not spec.points:
        problems.append(source.problem((), "a sweep needs a grid, points, or both"))
    if spec.engine not in ENGINES:
        problems.append(
            source.problem(
                ("engine",),
                f"unknown engine '{spec.engine}'; expected one of: {', '.join(ENGINES)}",
            )
        )
    return problems


def _paths_of(spec: SweepSpec, name: str) -> list[str]:
    """The scenario paths a parameter sets."""
    named = _NAMED_PATHS.get(name, [name])
    return spec.parameters[name].paths if name in spec.parameters else named


def _matches(param_path: str, data_path: str) -> bool:
    """Whether a parameter's path (with [*]) names the scenario path of an error, or a
    path below it."""
    pattern = re.escape(param_path).replace(r"\[\*\]", r"\[\d+\]")
    return re.fullmatch(f"{pattern}(\\..*|\\[.*)?", data_path) is not None


def _value_place(
    spec: SweepSpec, params: dict[str, Scalar], blame: str | None
) -> tuple[str | int, ...]:
    """Where in the sweep (or grid) file the value of parameter `blame` (else the first
    parameter) that a point was made with is written."""
    names = [n for n in params if n != "mode"] or list(params)
    name = blame if blame in params else names[0]
    given = {k: v for k, v in params.items() if k != "mode"}
    for i, point in enumerate(spec.points):
        if {k: v for k, v in point.items() if k != "mode"} == given and name in point:
            return ("points", i, name)
    values = spec.grid.get(name, [])
    return ("grid", name, values.index(params[name])) if params[name] in values else ("grid", name)


def point_problems(
    base: Source,
    spec: SweepSpec,
    params: dict[str, Scalar],
    spec_source: Source,
    seen: set[tuple[Any, ...]],
    *,
    fit: bool = True,
) -> list[Problem]:
    """What is wrong with the scenario a point's parameters make of `base`: each problem
    placed where the sweep (or grid) file gives the value that made it, and naming the
    scenario file, the point and the scenario path. A problem already `seen` at the same
    place (from another point with that value) is not repeated. With fit=False only values
    the schema refuses count, not a scenario whose pods do not fit its nodes."""
    found: list[tuple[str, str]] = []  # (scenario path, message)
    try:
        doc = apply_point(base.data, params, spec)
        scenario = Scenario.model_validate(doc)
        if fit:
            found = [(format_path(p), m) for p, m in check_scenario(scenario)]
    except ValidationError as exc:
        variant = copy.copy(base)
        variant.data = doc
        found = [(p.path, p.message) for p in explain(exc, variant, Scenario)]
    except ValueError as exc:
        found = [("", str(exc))]
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "mode")
    problems = []
    for path, message in found:
        blame = next(
            (
                n
                for n in params
                if n != "mode" and path and any(_matches(q, path) for q in _paths_of(spec, n))
            ),
            next((n for n in params if n.rsplit(".", 1)[-1] in message), None),
        )
        place = _value_place(spec, params, blame)
        if (base.file, place, path, message) in seen:
            continue
        seen.add((base.file, place, path, message))
        where = f"{path}: " if path else ""
        problems.append(
            spec_source.problem(
                place, f"with {shown}, {base.file} is not a valid scenario: {where}{message}"
            )
        )
    return problems


def expand_points(spec: SweepSpec, base_modes: list[str]) -> tuple[list[Point], tuple[str, ...]]:
    rows: list[dict[str, Scalar]] = []
    if spec.grid:
        names = list(spec.grid)
        rows += [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(spec.grid[n] for n in names))
        ]
    rows += [dict(p) for p in spec.points]
    if not rows:  # no grid, no points (a calibration of the scenario as written): one point
        rows = [{}]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k != "mode" and k not in columns]
    points: list[Point] = []
    seen: set[str] = set()
    for row in rows:
        for mode in [row["mode"]] if "mode" in row else base_modes:
            params = {**{k: row[k] for k in columns if k in row}, "mode": mode}
            point = Point(params=params, seed=point_seed(spec.seed, params))
            if point.key not in seen:
                seen.add(point.key)
                points.append(point)
    return points, (*columns, "mode")


def load_sweep(path: Path | str) -> SweepPlan:
    """Read a sweep file, its base scenario and profile; check every parameter path."""
    path = Path(path)
    source = read_source(path)
    spec = validate_source(source, SweepSpec)
    problems = check_parameter_names(spec, source)
    if problems:
        raise InputError(problems)
    scenario_path = path.parent / spec.scenario
    if not scenario_path.is_file():
        message = (
            f"{scenario_path} is a folder, not a scenario file"
            if scenario_path.is_dir()
            else f"no scenario file {scenario_path} (a path from the sweep file's folder)"
        )
        raise InputError([source.problem(("scenario",), message)])
    base_source = read_source(scenario_path)
    scenario = validate_source(base_source, Scenario)
    scenario_problems = [base_source.problem(p, m) for p, m in check_scenario(scenario)]
    if scenario_problems:
        raise InputError(scenario_problems)
    profile_path = _resolve_profile(scenario.profile, scenario_path)
    if profile_path is None:
        raise InputError(
            [base_source.problem(("profile",), f"no profile '{scenario.profile}' found")]
        )
    points, columns = expand_points(spec, list(scenario.mesh.modes))
    # every point checked before any runs: a value the schema refuses is named by its line,
    # not found after the points before it have run. (A point whose pods do not fit the
    # nodes is a finding of the sweep: it fails alone, and the others run.)
    seen: set[tuple[Any, ...]] = set()
    point_errors = [
        e
        for pt in points
        for e in point_problems(base_source, spec, pt.params, source, seen, fit=False)
    ]
    if point_errors:
        raise InputError(point_errors)
    return SweepPlan(
        spec=spec,
        file=path,
        base=base_source.data,
        scenario_name=scenario.name,
        profile=load_profile(profile_path),
        points=tuple(points),
        columns=columns,
    )


# ---- running -----------------------------------------------------------------------------


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{format_path(e['loc'])}: {e['msg']}" for e in exc.errors()]
        return "invalid scenario: " + "; ".join(parts)
    return f"{type(exc).__name__}: {exc}"


def run_point(
    base: dict[str, Any], spec: SweepSpec, profile: Profile, point: Point
) -> PointOutcome:
    """Build one point's scenario and simulate it. Never raises: a failure is an outcome."""
    try:
        doc = apply_point(base, point.params, spec)
        scenario = Scenario.model_validate(doc)
        problems = check_scenario(scenario)
        if problems:
            text = "; ".join(f"{format_path(p)}: {m}" for p, m in problems)
            raise ValueError(f"invalid scenario: {text}")
        # the sweep runs points side by side: one point's modes run one after another
        run = simulate(scenario, profile, seed=point.seed, engine=spec.engine, jobs=1)
        return PointOutcome(point=point, run=run, error=None)
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        error = _describe_error(exc) if isinstance(exc, ValueError) else detail
        return PointOutcome(point=point, run=None, error=error)


def _worker_start(parent: int) -> None:
    """A sweep worker's first step. Ctrl-C and SIGHUP are its parent's to answer (the
    terminal sends them to the whole process group; the parent stops the workers itself),
    and a worker dies with its parent, even one killed by SIGKILL (Linux's parent-death
    signal), rather than run on holding the parent's output."""
    _leave_the_terminal_to_the_sweep()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the worker outlives a killed parent
        return
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _leave_the_terminal_to_the_sweep() -> None:
    """In a worker: Ctrl-C and SIGHUP, sent by the terminal to every process of the job,
    are ignored (the sweep answers them, and stops its workers itself)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def dask_setup(worker: object) -> None:
    """Run in each worker of a sweep's own Dask cluster as it starts (the cluster preloads
    this module): Ctrl-C and SIGHUP, which the terminal sends to every process of the
    job, are the sweep's to answer (it closes the cluster); a worker that took them
    itself printed pages of tracebacks."""
    if threading.current_thread() is threading.main_thread():
        _leave_the_terminal_to_the_sweep()
    # a point cancelled by Ctrl-C is said once, by the sweep
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)


def _run_local(plan: SweepPlan, todo: list[Point], workers: int) -> Iterator[PointOutcome]:
    # spawn, not fork: the caller may hold threads (a progress bar), which fork would copy
    # in whatever state they were in.
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_worker_start,
        initargs=(os.getpid(),),
    )
    try:
        futures: list[Future[PointOutcome]] = [
            pool.submit(run_point, plan.base, plan.spec, plan.profile, p) for p in todo
        ]
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        # Ctrl-C, a signal, an error: the points running now are not waited for (they
        # may take minutes; a rerun runs them again), the workers are stopped at once
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    # Process.kill signals only a process not reaped yet: a worker that died and was
    # joined (the pool is broken then) has a pid the system may have given another process
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.kill()


class SchedulerError(RuntimeError):
    """The Dask scheduler given (`meshsim sweep --scheduler`) cannot be reached."""


def _run_dask(
    plan: SweepPlan, todo: list[Point], workers: int, scheduler: str | None
) -> Iterator[PointOutcome]:
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    cluster = None
    if scheduler is None:  # a cluster of our own, on loopback only, no dashboard
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            preload=["meshsim.sweep"],  # dask_setup: the terminal's signals are ours
        )
    try:
        client = Client(cluster if cluster is not None else scheduler)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as exc:  # an address that is not one, or nobody there
        if cluster is not None:
            cluster.close()
        raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        shared = [plan.base, plan.spec, plan.profile]
        base, spec, profile = client.scatter(shared, broadcast=True)  # type: ignore[no-untyped-call]
        futures = [
            client.submit(run_point, base, spec, profile, p, key=f"point-{p.key}", pure=False)
            for p in todo
        ]
        for future in dask_completed(futures):  # type: ignore[no-untyped-call]
            outcome: PointOutcome = future.result()
            yield outcome
    except BaseException:
        # Ctrl-C: the points running are cancelled (a busy worker of our own cluster is
        # killed after a few seconds); Dask's warnings about each add nothing
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        raise
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()


def inputs_digest(plan: SweepPlan) -> str:
    """What every point's result depends on besides its parameters, seed and engine (and
    meshsim itself): the base scenario's data, the paths the sweep's parameters set, and
    the profile's figures. A point file of other inputs is not a finished point of this
    sweep. Descriptions are left out (editing one changes no result), and so is a fitted
    profile's held-out record (its table's path is found from the working folder)."""
    text = json.dumps(
        {
            "base": {k: v for k, v in plan.base.items() if k != "description"},
            "parameters": {k: v.paths for k, v in plan.spec.parameters.items()},
            "profile": plan.profile.model_dump(mode="json", exclude={"description", "held_out"}),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _finished(out_dir: Path, point: Point, engine: str, inputs: str) -> dict[str, Any] | None:
    """The point's file, if it holds this point run with this engine from these inputs
    (a file that cannot be read is not: the point runs again, and its file is written
    over)."""
    file = out_dir / "points" / f"{point.key}.json"
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    same = doc.get("params") == point.params and doc.get("seed") == point.seed
    return doc if same and doc.get("engine") == engine and doc.get("inputs") == inputs else None


def _record(out_dir: Path, outcome: PointOutcome, engine: str, inputs: str) -> None:
    key = outcome.point.key
    failure = out_dir / "failures" / f"{key}.json"
    head = {
        "params": outcome.point.params,
        "seed": outcome.point.seed,
        "engine": engine,
        "inputs": inputs,
    }
    if outcome.run is not None:
        doc = {**head, "run": finite_or_null(outcome.run.model_dump(mode="json"))}
        write_atomically({out_dir / "points" / f"{key}.json": json.dumps(doc) + "\n"})
        failure.unlink(missing_ok=True)
    else:
        write_atomically({failure: json.dumps({**head, "error": outcome.error}, indent=2) + "\n"})


def _metadata(plan: SweepPlan) -> dict[str, Any]:
    return {
        "sweep": plan.spec.name,
        "description": plan.spec.description,
        "scenario": plan.scenario_name,
        "profile": plan.profile.name,
        "engine": plan.spec.engine,
        "columns": list(plan.columns),
        "points": len(plan.points),
        "spec": plan.spec.model_dump(mode="json"),
        "base_scenario": plan.base,
    }


def with_engine(plan: SweepPlan, engine: str) -> SweepPlan:
    """The same sweep run with another engine (`meshsim sweep --engine`)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of: {', '.join(ENGINES)}")
    return dataclasses.replace(plan, spec=plan.spec.model_copy(update={"engine": engine}))


def run_sweep(
    plan: SweepPlan,
    out_dir: Path,
    *,
    executor: Executor = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int, PointOutcome | None], None] | None = None,
) -> SweepSummary:
    """Run every point of `plan` not finished in `out_dir`, then gather the table.

    `progress(done, total, outcome)` is called once before any point runs (outcome None)
    and after each point."""
    for sub in ("points", "failures"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    inputs = inputs_digest(plan)
    todo = [p for p in plan.points if _finished(out_dir, p, plan.spec.engine, inputs) is None]
    total, skipped = len(plan.points), len(plan.points) - len(todo)
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    failed: list[PointOutcome] = []
    if progress is not None:
        progress(skipped, total, None)
    if todo:
        outcomes = (
            _run_dask(plan, todo, n_workers, scheduler)
            if executor == "dask"
            else _run_local(plan, todo, n_workers)
        )
        for done, outcome in enumerate(outcomes, start=skipped + 1):
            _record(out_dir, outcome, plan.spec.engine, inputs)
            if outcome.error is not None:
                failed.append(outcome)
            if progress is not None:
                progress(done, total, outcome)
    # the table and what it is a table of, together: an interrupted run (of this sweep
    # with another engine, say) leaves the last finished run's pair as it was
    table = out_dir / "sweep.csv"
    write_atomically(
        {
            out_dir / "sweep.json": json.dumps(_metadata(plan), indent=2) + "\n",
            table: gather_table(plan, out_dir),
        }
    )
    return SweepSummary(total=total, skipped=skipped, ran=len(todo), failed=failed, table=table)


# ---- the table ---------------------------------------------------------------------------


def _saving(base: float, value: float) -> float:
    return (base - value) / base if base > 0 else math.nan


def _row(point: Point, run: RunResult, columns: Sequence[str]) -> dict[str, Any]:
    mode = str(point.params["mode"])
    result = run.modes[mode]
    row: dict[str, Any] = {"point": point.key}
    row |= {c: point.params.get(c, "") for c in columns}
    row |= {"seed": point.seed, "engine": run.engine, "scenario": run.scenario}
    row |= {
        "requests": result.requests,
        "errors": result.errors,
        "throughput_rps": result.throughput_rps,
    }
    row |= {f"latency_{k}_ms": v for k, v in result.latency_ms.model_dump().items()}
    for part in ("total", *COMPONENT_CLASSES):
        row[f"cpu_{part}_cores"] = getattr(result.cpu_cores, part)
    for part in ("total", *COMPONENT_CLASSES):
        row[f"memory_{part}_mib"] = getattr(result.memory_mib, part)
    row["mesh_cpu_cores"] = row["cpu_total_cores"] - row["cpu_app_cores"]
    row["mesh_memory_mib"] = row["memory_total_mib"] - row["memory_app_mib"]
    row |= {
        "handshakes_per_s": result.handshakes_per_s,
        "connections_open": result.connections_open,
        "proxies": result.proxies.sidecar + result.proxies.ztunnel + result.proxies.waypoint,
        "cost_usd_month": result.cost_usd_month,
    }
    return row


# Savings against the sidecar row of the same parameters: whole cluster (app included),
# and the data plane alone (the proxies: what the mesh itself costs).
_SAVINGS = {
    "cpu_saving": "cpu_total_cores",
    "memory_saving": "memory_total_mib",
    "cost_saving": "cost_usd_month",
    "mesh_cpu_saving": "mesh_cpu_cores",
    "mesh_memory_saving": "mesh_memory_mib",
}


# A proxy whose CPU is this close to its worker threads' capacity has a growing queue:
# its run did not keep up with the offered load.
SATURATED = 0.97


def _busiest_proxy(plan: SweepPlan, point: Point, run_doc: dict[str, Any]) -> float:
    """The highest CPU / worker threads over the point's proxies (0 with no proxies)."""
    scenario = Scenario.model_validate(apply_point(plan.base, point.params, plan.spec))
    mode = point.params["mode"]
    assert mode in MODES
    proxies = build_topology(scenario).proxies(mode, scenario, plan.profile)
    workers = {p.name: p.workers for p in proxies}
    usages = run_doc["modes"][mode]["components"]
    loads = [u["cpu_cores"] / workers[u["name"]] for u in usages if u["name"] in workers]
    return max(loads, default=0.0)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def gather_table(plan: SweepPlan, out_dir: Path) -> str:
    """The CSV table of every finished point, in the sweep's order, with savings vs sidecar
    and latency overheads vs no mesh for the same parameters."""
    rows: list[dict[str, Any]] = []
    inputs = inputs_digest(plan)
    for point in plan.points:
        doc = _finished(out_dir, point, plan.spec.engine, inputs)
        if doc is None:
            continue
        row = _row(point, RunResult.model_validate(doc["run"]), plan.columns)
        row["proxy_utilisation_max"] = _busiest_proxy(plan, point, doc["run"])
        row["saturated"] = row["errors"] > 0 or row["proxy_utilisation_max"] >= SATURATED
        rows.append(row)
    shared = [c for c in plan.columns if c != "mode"]
    by_params = {(tuple(str(r[c]) for c in shared), r["mode"]): r for r in rows}
    for row in rows:
        key = tuple(str(row[c]) for c in shared)
        side, none = by_params.get((key, "sidecar")), by_params.get((key, "none"))
        for name, column in _SAVINGS.items():
            row[name] = _saving(side[column], row[column]) if side else math.nan
        # A saving is only a like-for-like comparison when both runs kept up with the load.
        row["saving_comparable"] = side is not None and not (row["saturated"] or side["saturated"])
        for p in ("p50", "p99"):
            column = f"latency_{p}_ms"
            row[f"{p}_overhead_ms"] = row[column] - none[column] if none else math.nan
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _format(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()
