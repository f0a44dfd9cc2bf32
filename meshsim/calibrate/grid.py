"""The calibration grid: which variants of a scenario to measure, and how they are split.

A grid file varies the scenario the way a sweep file does (the same parameter paths
and named parameters, see `meshsim.sweep`), optionally over more topologies (other
scenario files measured over the same grid), and says how to split it: a seeded share
of the settings (every combination of values but the mode; all modes of a setting go
to the same side) is held out of the fit and predicted afterwards. With `by`, the share is
taken within each group of settings that agree on the named values (grid keys, or
`topology`), so every group is on both sides: no payload size or topology is left with too
few settings in the fit to pin down what it costs. Profile parameters it
names under `fixed` are set, not fitted: measured by a sweep of their own, or left out.

    parameters:
      payload_bytes: {paths: [traffic.request_bytes, traffic.response_bytes]}
    grid:
      traffic.open_loop.rate_rps: [50, 150]
      payload_bytes: [256, 16384]
      mode: [none, sidecar, ambient, ambient-waypoint]
    topologies: [../testbed-two-pods.yaml]
    holdout: {fraction: 0.34, seed: 5, by: [topology, payload_bytes]}
    fixed:  # set, not fitted
      host.wake_up_us: {value: 0, source: "left out: ..."}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from meshsim.checks import check_scenario, did_you_mean
from meshsim.loader import InputError, Source, read_source, validate_source
from meshsim.profile import Profile, Sourced
from meshsim.scenario import Mode, Scenario
from meshsim.sweep import (
    ParameterSpec,
    Scalar,
    SweepSpec,
    apply_point,
    check_parameter_names,
    expand_points,
    point_problems,
)

__all__ = ["CalibrationGrid", "GridPlan", "Holdout", "Setting", "load_grid", "split"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)


class Holdout(_Model):
    fraction: float = Field(default=0.3, gt=0, lt=1, description="Share of settings held out.")
    seed: int = Field(
        default=0, ge=0, description="Seed of the split: the same seed, the same split."
    )
    by: list[str] = Field(
        default_factory=list,
        description="Split within each group of settings sharing these values (grid keys, or "
        "'topology'): every group keeps settings on both sides.",
    )


class CalibrationGrid(_Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    description: str = ""
    seed: int = Field(default=0, ge=0, description="Mixed into every setting's seed.")
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    grid: dict[str, list[Scalar]] = Field(default_factory=dict)
    points: list[dict[str, Scalar]] = Field(default_factory=list)
    topologies: list[str] = Field(
        default_factory=list,
        description="More scenario files (relative to this file) measured over the same grid.",
    )
    holdout: Holdout = Field(default_factory=Holdout)
    fixed: dict[str, Sourced] = Field(
        default_factory=dict,
        description="Profile parameters this calibration sets rather than fits (measured by a "
        "sweep of their own, or left out on purpose): path (host.wake_up_us) -> value, source.",
    )

    def as_sweep(self, scenario: str) -> SweepSpec:
        return SweepSpec(
            name=self.name,
            scenario=scenario,
            seed=self.seed,
            parameters=self.parameters,
            grid=self.grid,
            points=self.points,
        )


@dataclass(frozen=True)
class Setting:
    """One measurement: a topology with parameter values, measured in every mode."""

    topology: str  # the scenario's name
    params: dict[str, Scalar]  # without the mode
    modes: tuple[Mode, ...]
    seed: int
    scenario: Scenario  # the variant, with every mode
    shown: tuple[str, ...] = ()  # the parameters that vary between settings

    @property
    def label(self) -> str:
        values = " ".join(
            f"{k.rsplit('.', 1)[-1]}={v}" for k, v in self.params.items() if k in self.shown
        )
        return f"{self.topology} {values}".strip()

    @property
    def key(self) -> str:
        """A file-name-safe id."""
        return "-".join([self.topology, *(f"{v}" for v in self.params.values())]).replace(".", "_")


@dataclass(frozen=True)
class GridPlan:
    grid: CalibrationGrid
    file: Path | None
    settings: tuple[Setting, ...]


def _settings(grid: CalibrationGrid, base: Source, grid_source: Source | None) -> list[Setting]:
    """The settings the grid makes of one topology (`base`); a value that makes an invalid
    scenario is named where the grid gives it."""
    scenario = validate_source(base, Scenario)
    problems = [base.problem(path, message) for path, message in check_scenario(scenario)]
    if problems:
        raise InputError(problems)
    spec = grid.as_sweep(base.file)
    points, _ = expand_points(spec, list(scenario.mesh.modes))
    by_params: dict[str, tuple[dict[str, Scalar], list[Mode], int]] = {}
    for point in points:
        params = {k: v for k, v in point.params.items() if k != "mode"}
        key = json.dumps(params, sort_keys=True)
        entry = by_params.setdefault(key, (params, [], point.seed))
        entry[1].append(point.params["mode"])  # type: ignore[arg-type]
    out = []
    seen: set[tuple[Any, ...]] = set()
    for params, modes, seed in by_params.values():
        if grid_source is not None:
            problems += point_problems(base, spec, params, grid_source, seen)
            if problems:
                continue
        variant = apply_point(base.data, {**params}, spec)
        variant.setdefault("mesh", {})["modes"] = list(modes)
        out.append(
            Setting(scenario.name, params, tuple(modes), seed, Scenario.model_validate(variant))
        )
    if problems:
        raise InputError(problems)
    return out


def _sourced_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The dotted paths of every sourced number a model (the Profile) has."""
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, Sourced):
            out.append(path)
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            out += _sourced_fields(kind, path)
    return out


def load_grid(grid_file: Path | None, scenario_file: Path) -> GridPlan:
    """Read a grid file (None: measure the scenario as it is, every mode, one setting) and
    expand it over the scenario and the grid's other topologies."""
    grid_source = None
    if grid_file is None:
        grid = CalibrationGrid(name="as-written")
    else:
        grid_source = source = read_source(grid_file)
        grid = validate_source(source, CalibrationGrid)
        problems = check_parameter_names(grid.as_sweep(str(scenario_file)), source)
        problems = [p for p in problems if "a sweep needs a grid" not in p.message]
        keys = [*grid.grid, *(k for point in grid.points for k in point)]
        known = ["topology", *dict.fromkeys(k for k in keys if k != "mode")]
        for i, name in enumerate(grid.holdout.by):
            if name not in known:
                problems.append(
                    source.problem(
                        ("holdout", "by", i),
                        f"'{name}' is not a value the settings vary by"
                        f"{did_you_mean(name, known)}; expected one of: {', '.join(known)}",
                    )
                )
        numbers = _sourced_fields(Profile)
        for name in grid.fixed:
            if name not in numbers:
                problems.append(
                    source.problem(
                        ("fixed", name),
                        f"'{name}' is not a sourced number of the profile"
                        f"{did_you_mean(name, numbers)}",
                        at_key=True,
                    )
                )
        if problems:
            raise InputError(problems)
    bases = [read_source(scenario_file)]
    if grid_file is not None and grid_source is not None:
        for i, topology in enumerate(grid.topologies):
            file = grid_file.parent / topology
            if not file.is_file():
                where = grid_source.problem(
                    ("topologies", i),
                    f"no scenario file {file} (topologies are paths from the grid's folder)",
                )
                raise InputError([where])
            bases.append(read_source(file))
    settings: list[Setting] = []
    for base in bases:
        settings += _settings(grid, base, grid_source)
    varying = tuple(
        k for k in settings[0].params if len({json.dumps(s.params.get(k)) for s in settings}) > 1
    )
    settings = [dataclasses.replace(s, shown=varying) for s in settings]
    return GridPlan(grid, grid_file, tuple(settings))


def split(settings: tuple[Setting, ...], holdout: Holdout) -> tuple[list[Setting], list[Setting]]:
    """(fit, held out): a seeded random share of the settings is held out, within each group
    of `holdout.by` (the whole grid when it is empty); at least one setting of a group stays
    on each side when the group has two or more."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(settings):
        values = [s.topology if k == "topology" else s.params.get(k) for k in holdout.by]
        groups.setdefault(json.dumps(values), []).append(i)
    rng = np.random.default_rng(holdout.seed)
    held: set[int] = set()
    for members in groups.values():
        n = len(members)
        if n < 2:
            continue
        n_held = min(n - 1, max(1, round(holdout.fraction * n)))
        order = rng.permutation(n)
        held |= {members[j] for j in order[:n_held].tolist()}
    fit = [s for i, s in enumerate(settings) if i not in held]
    return fit, [s for i, s in enumerate(settings) if i in held]
