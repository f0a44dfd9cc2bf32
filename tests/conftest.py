"""Fixtures shared by the test suite."""

from __future__ import annotations

import pytest

from meshsim.loader import load_profile
from meshsim.profile import Profile

from .builders import ISTIO


@pytest.fixture(scope="session")
def istio_profile() -> Profile:
    return load_profile(ISTIO)
