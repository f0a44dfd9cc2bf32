"""Fit profile parameters to measured runs by minimising simulated-minus-measured error.

DESIGN.md section 6. The fit runs in three stages, each on the figures that carry its
parameters: CPU (per request, per call made, per KiB, per handshake, per cross-node link,
idle, cold caches) against the CPU of every component, then memory (base, per service, endpoint,
connection, request in flight, serving) against their memory, then the latency-side
parameters (the app stack's latency per visit and its spread, per call made; hop latency,
deferred fraction, variability of each proxy kind) against the p50/p90/p99 latencies: the
no-mesh points' percentiles, and the mesh points' percentiles over their no-mesh point's,
both simulated. Each stage minimises with `scipy.optimize.least_squares` (a robust loss:
one outlying figure does not decide the fit), the residuals computed by the simulator
itself (common random numbers: one seed per point), so that a fitted profile reproduces
the measurements through exactly the model that will later use it.

Before a stage fits anything, it asks which parameters the data can pin down: a
parameter the figures do not move, or whose effect is a combination of others' (one
payload size cannot tell per-request from per-KiB CPU), is reported as not
identifiable and keeps its prior value. After the fit, the covariance of the
estimates gives 95% confidence intervals; an estimate whose interval is wider than
the estimate itself is reported as poorly determined, and if that interval holds the
prior, the prior is kept and the rest fitted again, one such parameter at a time. A
parameter whose effect is gone at the solution (a time scale once the size it scales is
kept at 0) is reported as not identifiable there, not as fitted with an interval of 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize, stats

from meshsim.calibrate.params import (
    STAGES,
    Parameter,
    Stage,
    get_value,
    parameters_for,
    with_values,
)
from meshsim.profile import Profile
from meshsim.results import ModeResult
from meshsim.run import simulate
from meshsim.scenario import Mode, Scenario

__all__ = ["Estimate", "FitPoint", "FitResult", "StageFit", "fit_profile", "stage_residuals"]

Status = Literal["fitted", "poorly determined", "not identifiable"]
Say = Callable[[str], None]

CPU_FLOOR_CORES = 0.002  # relative CPU error is taken against at least 2 millicores
MEMORY_FLOOR_MIB = 1.0
# A parameter whose doubling moves the stage's residuals (relative errors) by less
# than this, in root-sum-square, does not show in the data.
EFFECT_TOL = 1e-3
# A parameter whose effect lies within this (sine of the angle) of the span of the
# effects of parameters already kept is a combination of them.
COLLINEAR_TOL = 1e-2
FD_STEP = 0.1
# A CPU or memory parameter whose sensitivity changes by more than this share between the
# prior and the solution is not a proportional cost in these figures.
NONLINEAR_TOL = 0.5
NOT_PROPORTIONAL = "the figures do not move in proportion to it (an edge effect, not a cost)"
# A parameter whose effect is gone at the solution (a time scale once the size it scales
# went to 0) has no interval there: the covariance would call it exact (± 0).
VANISHED = "the measured figures do not depend on it at the fitted values of the others"
# The latency stage differentiates the simulator at every step and its objective is
# noisy (percentiles of finite runs): a few steps get most of the way.
LATENCY_MAX_STEPS = 8
# Refits after a loose parameter went back to its prior start from the last solution.
LATENCY_REFIT_STEPS = 4
# Residuals (relative errors) much beyond this are outliers, weighed down by a robust loss
# (soft L1): on a shared host one setting's tail percentile can be several times its
# neighbours' (a scheduler stall), and in least squares that one figure would decide
# every parameter and widen every interval. 10% is the run-to-run noise of a percentile
# or a CPU figure here.
ROBUST_SCALE = 0.1
# The residual of a simulated figure that does not exist (no request completed in the
# window), so that every candidate has the same residuals to compare.
UNDEFINED_PENALTY = 10.0  # finite-difference step, as a fraction of the parameter's scale


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class FitPoint:
    """One measured mode of one grid point, and the scenario that simulates it."""

    label: str
    mode: Mode
    scenario: Scenario  # with the measured network delays in place
    measured: ModeResult
    seed: int
    # The same setting measured with no mesh: the latency stage then fits what the mesh
    # adds to it, not what the load generator and apps take outside the model.
    baseline: FitPoint | None = None


@dataclass(frozen=True)
class Estimate:
    parameter: Parameter
    prior: float
    value: float
    ci95: float | None  # half-width of the 95% confidence interval
    status: Status
    note: str = ""

    @property
    def holds_prior(self) -> bool:
        """The 95% interval contains the prior value."""
        return self.ci95 is not None and abs(self.value - self.prior) <= self.ci95

    @property
    def kept_prior(self) -> bool:
        """Not identifiable, or too loosely determined to move away from the prior."""
        return self.status == "not identifiable" or (
            self.status == "poorly determined" and self.note.endswith("holds the prior: kept")
        )

    def describe(self) -> str:
        unit = self.parameter.unit
        ci = f" ± {self.ci95:.3g}" if self.ci95 is not None else ""
        what = f"{self.value:.4g}{ci} {unit}"
        if self.kept_prior:
            what = f"kept at prior {self.prior:.4g} {unit}"
        note = f" — {self.note}" if self.note else ""
        return f"{self.parameter.path}: {what} [{self.status}]{note}"


@dataclass(frozen=True)
class StageFit:
    stage: Stage
    points: int
    residuals: int
    rms_before: float
    rms_after: float
    estimates: list[Estimate]
    # starting points tried (Parameter.alternatives), and the one kept: the lowest cost
    starts: int = 1
    chosen: int = 0


@dataclass(frozen=True)
class FitResult:
    profile: Profile
    stages: list[StageFit] = field(default_factory=list)

    def estimates(self) -> list[Estimate]:
        return [e for s in self.stages for e in s.estimates]


# ---- residuals -----------------------------------------------------------------------


def stage_residuals(
    stage: Stage,
    measured: ModeResult,
    simulated: ModeResult,
    baseline: tuple[ModeResult, ModeResult] | None = None,
) -> list[float]:
    """The errors a stage minimises for one point: relative for CPU and memory (of each
    component but the load generator); for latency percentiles, the error of the overhead
    over the (measured, simulated) no-mesh baseline relative to the measured latency, or
    without a baseline the log ratio."""
    if stage == "latency":
        out = []
        for p in ("p50", "p90", "p99"):
            m, s = getattr(measured.latency_ms, p), getattr(simulated.latency_ms, p)
            if not m > 0:  # nothing measured (NaN) is nothing to fit
                continue
            if not s > 0:  # the candidate completed no request: as bad as can be
                out.append(UNDEFINED_PENALTY)
            elif baseline is None:
                out.append(math.log(s / m))
            else:
                m0, s0 = getattr(baseline[0].latency_ms, p), getattr(baseline[1].latency_ms, p)
                m0, s0 = (m0 if m0 > 0 else 0.0), (s0 if s0 > 0 else 0.0)
                out.append(((s - s0) - (m - m0)) / m)
        return out
    attr, floor = (
        ("cpu_cores", CPU_FLOOR_CORES) if stage == "cpu" else ("memory_mib", MEMORY_FLOOR_MIB)
    )
    sim = {c.name: c for c in simulated.components}
    out = []
    for c in measured.components:
        if c.kind == "loadgen" or c.name not in sim:
            continue
        m = getattr(c, attr)
        out.append((getattr(sim[c.name], attr) - m) / max(m, floor))
    return out


class _Model:
    """Simulates points under candidate parameter values, remembering what it has run."""

    def __init__(self, points: Sequence[FitPoint], profile: Profile, engine: str):
        self.points, self.profile, self.engine = list(points), profile, engine
        self.cache: dict[tuple[int, tuple[tuple[str, float], ...]], ModeResult] = {}
        self.runs = 0

    def use(self, profile: Profile) -> None:
        """Simulate from this profile from now on (what was cached came from another)."""
        self.profile = profile
        self.cache.clear()

    def result(self, i: int, values: dict[str, float], params: Sequence[Parameter]) -> ModeResult:
        point = self.points[i]
        mine = tuple(
            (p.path, round(values[p.path], 12)) for p in params if p.matters_for(point.mode)
        )
        key = (i, mine)
        hit = self.cache.get(key)
        if hit is None:
            profile = with_values(self.profile, dict(mine))
            run = simulate(
                point.scenario, profile, modes=[point.mode], seed=point.seed, engine=self.engine
            )
            hit = self.cache[key] = run.modes[point.mode]
            self.runs += 1
        return hit


class _Stage:
    """One stage's residual function and its finite-difference Jacobian."""

    def __init__(
        self, model: _Model, stage: Stage, params: list[Parameter], fixed: dict[str, float]
    ):
        self.model, self.stage, self.params, self.fixed = model, stage, params, fixed
        self.points = [
            i for i, pt in enumerate(model.points) if any(p.matters_for(pt.mode) for p in params)
        ]
        # A mesh point's latency is fitted as what the mesh adds over its setting's no-mesh
        # point, both simulated under the same candidate values (the app's own latency
        # parameters move both alike).
        self.baselines: dict[int, int] = {}
        if stage == "latency":
            where = {id(pt): j for j, pt in enumerate(model.points)}
            for i in self.points:
                base = model.points[i].baseline
                if base is not None and id(base) in where:
                    self.baselines[i] = where[id(base)]
        self.sizes = [len(self._residuals(i, model.points[i].measured, None)) for i in self.points]

    def _residuals(self, i: int, simulated: ModeResult, base: ModeResult | None) -> list[float]:
        pt = self.model.points[i]
        j = self.baselines.get(i)
        if j is None:
            return stage_residuals(self.stage, pt.measured, simulated)
        measured_base = self.model.points[j].measured
        pair = (measured_base, base if base is not None else measured_base)
        return stage_residuals(self.stage, pt.measured, simulated, pair)

    def values(self, x: np.ndarray, free: Sequence[Parameter]) -> dict[str, float]:
        out = dict(self.fixed)
        out.update({p.path: float(v) for p, v in zip(free, x, strict=True)})
        return out

    def point_residuals(self, i: int, values: dict[str, float]) -> np.ndarray:
        sim = self.model.result(i, values, self.params)
        j = self.baselines.get(i)
        base = self.model.result(j, values, self.params) if j is not None else None
        return np.asarray(self._residuals(i, sim, base), dtype=float)

    def residuals(self, x: np.ndarray, free: Sequence[Parameter]) -> np.ndarray:
        values = self.values(x, free)
        parts = [self.point_residuals(i, values) for i in self.points]
        return np.concatenate(parts) if parts else np.zeros(0)

    def jacobian(self, x: np.ndarray, free: Sequence[Parameter]) -> np.ndarray:
        """Forward differences, simulating only the points a parameter matters for."""
        values = self.values(x, free)
        base = [self.point_residuals(i, values) for i in self.points]
        jac = np.zeros((sum(self.sizes), len(free)))
        for j, p in enumerate(free):
            step = FD_STEP * _scale(p, x[j])
            if x[j] + step > p.upper:
                step = -step
            moved = {**values, p.path: float(x[j] + step)}
            row = 0
            for k, i in enumerate(self.points):
                n = self.sizes[k]
                if p.matters_for(self.model.points[i].mode):
                    jac[row : row + n, j] = (self.point_residuals(i, moved) - base[k]) / step
                row += n
        return jac


def _start(p: Parameter, prior: float) -> float:
    return p.start if prior == 0 and p.start is not None else prior


def _scale(p: Parameter, value: float) -> float:
    return max(abs(value), p.typical)


def _identifiable(
    jac: np.ndarray, params: Sequence[Parameter], scales: np.ndarray
) -> tuple[list[int], dict[int, str]]:
    """Which columns the data pin down (kept in catalogue order, greedily), and why the
    others are not identifiable."""
    scaled = jac * scales
    kept: list[int] = []
    basis = np.zeros((scaled.shape[0], 0))
    why: dict[int, str] = {}
    for j in range(scaled.shape[1]):
        col = scaled[:, j]
        norm = float(np.linalg.norm(col))
        if norm < EFFECT_TOL:
            why[j] = "the measured figures do not depend on it"
            continue
        if basis.shape[1]:
            coef, *_ = np.linalg.lstsq(basis, col, rcond=None)
            left = col - basis @ coef
            if float(np.linalg.norm(left)) < COLLINEAR_TOL * norm:
                weights = np.abs(coef) * np.linalg.norm(basis, axis=0)
                partners = [
                    params[kept[k]].path for k in np.argsort(-weights) if weights[k] > 0.05 * norm
                ]
                why[j] = "its effect is a combination of " + ", ".join(partners[:3])
                continue
        kept.append(j)
        basis = np.column_stack([basis, col])
    return kept, why


def _rms(r: np.ndarray) -> float:
    return float(np.sqrt(np.mean(r * r))) if r.size else 0.0


def _solve(
    fit: _Stage,
    free: list[Parameter],
    x0: np.ndarray,
    scales: np.ndarray,
    jac0: np.ndarray,
    steps: int = LATENCY_MAX_STEPS,
) -> tuple[np.ndarray, np.ndarray, list[float | None], np.ndarray]:
    """Robust least squares (soft L1 loss, see ROBUST_SCALE) within the parameters'
    bounds; 95% intervals from the covariance s^2 (J^T W J)^-1 at the solution, W the
    loss's weight of each residual and s^2 the weighted residual variance, with Student's t
    on the residual degrees of freedom.

    CPU and memory figures are close to linear in their parameters (the simulator charges
    each cost per event it counts; only queueing at saturation bends them), so those
    stages solve on a fixed Jacobian, that of the start and then once more that of the
    first solution, instead of differentiating the simulator at every step."""
    upper = np.array([p.upper for p in free])
    x = np.clip(x0, 0.0, upper)

    def residuals(x: np.ndarray) -> np.ndarray:
        return fit.residuals(x, free)

    def fresh(x: np.ndarray) -> np.ndarray:
        return fit.jacobian(x, free)

    def frozen_at(jac: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        return lambda _: jac

    linear = fit.stage != "latency"
    rounds = [frozen_at(jac0), None] if linear else [fresh]
    for jacobian in rounds:
        solution = optimize.least_squares(
            residuals,
            x,
            jac=jacobian if jacobian is not None else frozen_at(fresh(x)),
            bounds=(np.zeros(len(free)), upper),
            x_scale=scales,
            method="trf",
            max_nfev=40 if linear else steps,
            loss="soft_l1",
            f_scale=ROBUST_SCALE,
        )
        x = np.asarray(solution.x)
    r = residuals(x)
    jac = fit.jacobian(x, free)
    dof = r.size - len(free)
    if dof <= 0:
        return x, r, [None] * len(free), jac
    # the robust loss weighs each residual by rho'((r/f)^2): the interval does the same
    w = 1.0 / np.sqrt(1.0 + (r / ROBUST_SCALE) ** 2)
    cov = float(w @ (r * r)) / dof * np.linalg.pinv(jac.T @ (jac * w[:, None]))
    t = float(stats.t.ppf(0.975, dof))
    ci: list[float | None] = [t * math.sqrt(max(float(cov[k, k]), 0.0)) for k in range(len(free))]
    return x, r, ci, jac


def _not_proportional(
    stage: Stage, jac0: np.ndarray, jac: np.ndarray, scales: np.ndarray
) -> list[int]:
    """Columns of a linear stage whose sensitivity changed by more than half between the
    prior and the solution."""
    if stage == "latency":
        return []
    out = []
    for k in range(jac.shape[1]):
        a, b = jac0[:, k] * scales[k], jac[:, k] * scales[k]
        size = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
        if size > 0 and float(np.linalg.norm(a - b)) > NONLINEAR_TOL * size:
            out.append(k)
    return out


def _vanished(jac: np.ndarray, scales: np.ndarray) -> list[int]:
    """Columns whose effect at the solution is below what the data can show (EFFECT_TOL)."""
    return [k for k in range(jac.shape[1]) if float(np.linalg.norm(jac[:, k])) * scales[k]
            < EFFECT_TOL]  # fmt: skip


def _looseness(e: Estimate) -> float:
    """The width of an estimate's interval over the estimate (backward elimination drops
    the least significant first)."""
    return (e.ci95 or 0.0) / max(abs(e.value), 1e-12)


def _estimate(param: Parameter, prior: float, value: float, ci95: float | None) -> Estimate:
    if ci95 is None:
        return Estimate(param, prior, value, None, "poorly determined",
                        "no degrees of freedom left for an interval")  # fmt: skip
    if ci95 > abs(value):
        return Estimate(param, prior, value, ci95, "poorly determined",
                        "the 95% interval is wider than the estimate")  # fmt: skip
    return Estimate(param, prior, value, ci95, "fitted")


def _unidentified(param: Parameter, prior: float, note: str) -> Estimate:
    """Not identifiable: the parameter keeps its prior value, and the note says why."""
    return Estimate(param, prior, prior, None, "not identifiable", note)


def _handshakes_unseen(
    model: _Model, params: Sequence[Parameter], values: dict[str, float]
) -> dict[int, str]:
    """Handshake parameters the windows cannot show, and why: their kind's proxies complete
    no handshake inside any simulated measurement window (or none inside any measured one),
    or so few inside every measured window that, at the prior's cost, their CPU stays under
    the resolution CPU is judged at (CPU_FLOOR_CORES). A handful of connections opened
    when requests happen to overlap is an event count, not a cost the figures carry."""
    seen_sim: set[str] = set()
    seen_meas: set[str] = set()
    most: dict[str, float] = {}  # the most handshakes per second a measured window saw
    for i, pt in enumerate(model.points):
        sim = model.result(i, values, params)
        seen_sim |= {c.kind for c in sim.components if c.handshakes > 0}
        seen_meas |= {c.kind for c in pt.measured.components if c.handshakes > 0}
        window = max(pt.measured.window_s, 1e-9)
        for c in pt.measured.components:
            most[c.kind] = max(most.get(c.kind, 0.0), c.handshakes / window)
    # kind's kubelet reports CPU and memory, not handshakes: a component's count is 0 there
    uncounted = any(math.isnan(pt.measured.handshakes_per_s) for pt in model.points)
    out: dict[int, str] = {}
    for j, p in enumerate(params):
        if ".handshake_us." not in p.path:
            continue
        if uncounted:
            out[j] = "the testbed that measured does not count handshakes (kind)"
            continue
        if not (p.kind in seen_sim and p.kind in seen_meas):
            out[j] = "no handshake completes inside a measurement window (simulated and measured)"
            continue
        cores = most.get(p.kind, 0.0) * values[p.path] * 1e-6
        if cores < CPU_FLOOR_CORES:
            out[j] = (
                f"too few handshakes inside the measurement windows (at most "
                f"{most[p.kind]:.2g} per second in one proxy): their CPU, "
                f"{cores * 1e3:.2g} millicores at the prior, is under the "
                f"{CPU_FLOOR_CORES * 1e3:g}-millicore resolution"
            )
    return out


def _starting_points(params: list[Parameter], kept: list[int], x0: np.ndarray) -> list[np.ndarray]:
    """x0, then one more for each alternative start the parameters give
    (Parameter.alternatives: the k-th start moves every parameter that has a k-th), if the
    data pin all of those down: a ridge needs both its ends identifiable."""
    ridge = [j for j, p in enumerate(params) if p.alternatives]
    if not ridge or any(j not in kept for j in ridge):
        return [x0]
    n = max(len(params[j].alternatives) for j in ridge)
    out = [x0]
    for k in range(n):
        x = x0.copy()
        for j in ridge:
            if k < len(params[j].alternatives):
                x[j] = params[j].alternatives[k]
        out.append(x)
    return out


def _robust_cost(r: np.ndarray) -> float:
    """What `_solve` minimises (soft L1 with ROBUST_SCALE), to compare fits from different
    starts as the solver compares steps."""
    z = (r / ROBUST_SCALE) ** 2
    return float(np.sum(2.0 * (np.sqrt(1.0 + z) - 1.0)))


def _fit_from(
    fit: _Stage,
    params: list[Parameter],
    prior: dict[str, float],
    kept: list[int],
    x0: np.ndarray,
    scales: np.ndarray,
    jac0: np.ndarray,
) -> tuple[dict[int, Estimate], np.ndarray]:
    """Fit the identifiable parameters (`kept`) from x0 (jac0: the sensitivity there, of
    those columns): their estimates, with those the data barely constrain set back to their
    prior (fit.fixed holds them afterwards), and the residuals at the solution."""
    free = [params[j] for j in kept]
    out: dict[int, Estimate] = {}
    xf, r1, ci, jac = _solve(fit, free, x0[kept], scales[kept], jac0)
    first = {j: _estimate(params[j], prior[params[j].path], float(xf[k]), ci[k])
             for k, j in enumerate(kept)}  # fmt: skip
    out.update(first)
    # A cost whose effect at the solution is not what it was at the prior is not a
    # cost the figures carry in proportion (CPU, memory): an edge effect, e.g. a
    # burst straddling the window's start. Its estimate would be an artefact.
    bent = {k: NOT_PROPORTIONAL for k in _not_proportional(fit.stage, jac0, jac,
                                                            scales[kept])}  # fmt: skip
    bent.update({k: VANISHED for k in _vanished(jac, scales[kept]) if k not in bent})
    for k, note in bent.items():
        j = kept[k]
        out[j] = _unidentified(params[j], prior[params[j].path], note)
    # An estimate the data barely constrain, whose interval holds the prior, does not
    # contradict the prior: keep the prior and fit the others again without it, one at
    # a time, the loosest (widest interval for its size) first, since a loose
    # parameter also widens the intervals of those its effect resembles.
    dropped = [kept[k] for k in bent]
    current = {j: e for j, e in first.items() if j not in dropped}
    refit = bool(dropped)  # what was fitted alongside an artefact is fitted again
    while True:
        loose = [j for j, e in current.items() if e.status == "poorly determined"
                 and e.holds_prior]  # fmt: skip
        if loose:
            j = max(loose, key=lambda j: _looseness(current[j]))
            e = current.pop(j)
            out[j] = dataclasses.replace(
                e, value=e.prior, note=f"{e.value:.4g} ± {e.ci95:.3g} holds the prior: kept"
            )
            dropped.append(j)
            refit = True
        if not refit:
            break
        refit = False
        for j in dropped:
            fit.fixed[params[j].path] = prior[params[j].path]
        again = [j for j in kept if j not in dropped]
        if not again:
            r1 = fit.residuals(np.zeros(0), [])
            break
        start = np.array([current[j].value for j in again])
        xf, r1, ci, jac = _solve(
            fit, [params[j] for j in again], start, scales[again],
            jac0[:, [kept.index(j) for j in again]], steps=LATENCY_REFIT_STEPS,
        )  # fmt: skip
        current = {j: _estimate(params[j], prior[params[j].path], float(xf[k]), ci[k])
                   for k, j in enumerate(again)}  # fmt: skip
        for k in _vanished(jac, scales[again]):
            j = again[k]
            del current[j]
            out[j] = _unidentified(params[j], prior[params[j].path], VANISHED)
            dropped.append(j)
            refit = True
        out.update(current)
    return out, r1


def _fit_stage(
    model: _Model, stage: Stage, profile: Profile, say: Say, fixed: Collection[str] = ()
) -> tuple[Profile, StageFit]:
    modes = sorted({pt.mode for pt in model.points})
    params = [p for p in parameters_for(stage, modes) if p.path not in fixed]
    prior = {p.path: get_value(profile, p.path) for p in params}
    model.use(profile)
    x0 = np.array([_start(p, prior[p.path]) for p in params])
    fit = _Stage(model, stage, params, {p.path: float(v) for p, v in zip(params, x0, strict=True)})
    scales = np.array([_scale(p, v) for p, v in zip(params, x0, strict=True)])
    r0 = fit.residuals(x0, params)
    jac0 = fit.jacobian(x0, params)
    unseen = _handshakes_unseen(model, params, prior)
    for j in unseen:
        # Handshake CPU can still leak into the window from a burst that straddles its
        # start; a fit to that edge effect would be an artefact, not a measurement.
        jac0[:, j] = 0.0
    kept, why = _identifiable(jac0, params, scales)
    for j, note in unseen.items():
        why[j] = note
    free = [params[j] for j in kept]
    fit.fixed = {p.path: prior[p.path] for j, p in enumerate(params) if j not in kept}
    say(
        f"{stage}: {len(fit.points)} points, {r0.size} figures, "
        f"{len(free)} of {len(params)} parameters identifiable"
    )
    estimates = {
        j: _unidentified(params[j], prior[params[j].path], note) for j, note in why.items()
    }
    r1 = r0
    starts = _starting_points(params, kept, x0)
    chosen = 0
    if free:
        base_fixed = dict(fit.fixed)
        best: tuple[float, dict[int, Estimate], np.ndarray, dict[str, float]] | None = None
        for k, xs in enumerate(starts):
            fit.fixed = dict(base_fixed)
            if k:  # the data's sensitivity where this start begins
                jac_s = fit.jacobian(xs[kept], free)
                say(f"{stage}: start {k + 1} of {len(starts)}")
            else:
                jac_s = jac0[:, kept]
            found, r_k = _fit_from(fit, params, prior, kept, xs, scales, jac_s)
            cost = _robust_cost(r_k)
            if best is None or cost < best[0]:
                best, chosen = (cost, found, r_k, dict(fit.fixed)), k
        assert best is not None
        _, found, r1, fit.fixed = best
        estimates.update(found)
    values = {p.path: estimates[j].value for j, p in enumerate(params)}
    result = StageFit(
        stage,
        len(fit.points),
        r0.size,
        _rms(r0),
        _rms(r1),
        [estimates[j] for j in range(len(params))],
        starts=len(starts) if free else 1,
        chosen=chosen,
    )
    say(
        f"{stage}: rms error {result.rms_before:.3f} -> {result.rms_after:.3f} "
        f"({model.runs} simulations so far)"
    )
    return with_values(profile, values), result


def fit_profile(
    points: Sequence[FitPoint],
    prior: Profile,
    *,
    engine: str = "vector",
    stages: Sequence[Stage] = STAGES,
    say: Say = _quiet,
    fixed: Collection[str] = (),
) -> FitResult:
    """Fit the prior profile's parameters to measured points, stage by stage; those named
    in `fixed` (set some other way: measured on their own, or left out) keep the prior's."""
    if not points:
        raise ValueError("no measured points to fit")
    # a point's no-mesh baseline is measured data too: fit it alongside
    listed = {id(pt) for pt in points}
    extra = {id(pt.baseline): pt.baseline for pt in points if pt.baseline is not None}
    points = [*points, *(b for k, b in extra.items() if k not in listed)]
    model = _Model(points, prior, engine)
    profile = prior
    fits = []
    for stage in stages:
        profile, stage_fit = _fit_stage(model, stage, profile, say, fixed)
        fits.append(stage_fit)
    say(f"fit used {model.runs} simulations")
    return FitResult(profile, fits)
