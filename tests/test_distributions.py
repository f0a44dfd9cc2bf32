"""Distributions sample what their analytic moments say."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from meshsim.distributions import Constant, Distribution, Empirical, Exponential, Lognormal

CASES = [
    Constant(value_ms=2.0),
    Exponential(dist="exponential", mean_ms=3.0),
    Lognormal(dist="lognormal", mean_ms=2.0, cv=1.5),
    Empirical(dist="empirical", values_ms=[1.0, 2.0, 10.0], weights=[5, 3, 2]),
]


@pytest.mark.parametrize("dist", CASES, ids=lambda d: d.__class__.__name__)
def test_sample_moments_match_analytic(dist: Distribution) -> None:
    x = dist.sample_s(np.random.default_rng(1), 400_000)
    assert x.mean() == pytest.approx(dist.mean_s, rel=0.01)
    assert x.var() == pytest.approx(dist.variance_s2, rel=0.05, abs=1e-15)


def test_a_number_is_a_constant_in_ms() -> None:
    dist: Distribution = TypeAdapter(Distribution).validate_python(1.5)
    assert dist == Constant(value_ms=1.5)


def test_empirical_needs_one_weight_per_value() -> None:
    with pytest.raises(ValueError, match="weights has 1 entries but values_ms has 2"):
        Empirical(dist="empirical", values_ms=[1.0, 2.0], weights=[1.0])
