"""Time distributions used by scenarios: sampled vectorised, moments known analytically.

Scenario files give times in milliseconds (`mean_ms`, `value_ms`); engines work in
seconds, so every distribution offers `sample_s` and `mean_s`/`variance_s2`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "Lognormal",
]

_MS = 1e-3
# Bounds that keep every draw a finite number of seconds: times up to a day, and spreads
# (sd / mean) up to 100 (a lognormal of cv 100 has sigma 3.0: its p99.99 is 1,200 times
# its median)
MAX_MS = 86_400_000.0
MAX_CV = 100.0


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=True)

    def expected_ms(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def variance_ms2(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def mean_s(self) -> float:
        return self.expected_ms() * _MS

    @property
    def variance_s2(self) -> float:
        return self.variance_ms2() * _MS * _MS

    def sample_s(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.sample_ms(rng, size) * _MS

    def sample_ms(self, rng: np.random.Generator, size: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class Constant(_Dist):
    """Always the same value."""

    dist: Literal["constant"] = "constant"
    value_ms: float = Field(ge=0, le=MAX_MS)

    def expected_ms(self) -> float:
        return self.value_ms

    def variance_ms2(self) -> float:
        return 0.0

    def sample_ms(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, self.value_ms)


class Exponential(_Dist):
    """Memoryless: the service time of M/M/c queues."""

    dist: Literal["exponential"]
    mean_ms: float = Field(gt=0, le=MAX_MS)

    def expected_ms(self) -> float:
        return self.mean_ms

    def variance_ms2(self) -> float:
        return self.mean_ms**2

    def sample_ms(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean_ms, size)


class Lognormal(_Dist):
    """Right-skewed, given by its mean and coefficient of variation (sd / mean)."""

    dist: Literal["lognormal"]
    mean_ms: float = Field(gt=0, le=MAX_MS)
    cv: float = Field(gt=0, le=MAX_CV)

    def expected_ms(self) -> float:
        return self.mean_ms

    def variance_ms2(self) -> float:
        return (self.cv * self.mean_ms) ** 2

    def sample_ms(self, rng: np.random.Generator, size: int) -> np.ndarray:
        # For X = exp(N(mu, sigma^2)): cv^2 = exp(sigma^2) - 1, mean = exp(mu + sigma^2 / 2).
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(self.mean_ms) - sigma2 / 2
        return rng.lognormal(mu, math.sqrt(sigma2), size)


class Empirical(_Dist):
    """Values observed elsewhere, drawn with the given weights (equal when omitted)."""

    dist: Literal["empirical"]
    values_ms: list[Annotated[float, Field(ge=0, le=MAX_MS)]] = Field(min_length=1)
    weights: list[Annotated[float, Field(gt=0)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> Empirical:
        if self.weights is not None and len(self.weights) != len(self.values_ms):
            raise ValueError(
                f"weights has {len(self.weights)} entries but values_ms has "
                f"{len(self.values_ms)}; give one weight per value"
            )
        return self

    def _p(self) -> np.ndarray:
        w = np.ones(len(self.values_ms)) if self.weights is None else np.asarray(self.weights)
        p: np.ndarray = w / w.sum()
        return p

    def expected_ms(self) -> float:
        return float(np.dot(self._p(), self.values_ms))

    def variance_ms2(self) -> float:
        v = np.asarray(self.values_ms)
        return float(np.dot(self._p(), (v - self.expected_ms()) ** 2))

    def sample_ms(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(np.asarray(self.values_ms), size=size, p=self._p())


def _number_is_constant(value: Any) -> Any:
    """Let a plain number stand for a constant time in milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value_ms": value}
    return value


Distribution = Annotated[
    Constant | Exponential | Lognormal | Empirical,
    Field(discriminator="dist"),
    BeforeValidator(_number_is_constant),
]
