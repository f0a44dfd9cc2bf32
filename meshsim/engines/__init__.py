"""Simulation engines: each turns (scenario, profile, topology, mode) into a ModeResult."""

from meshsim.engines.des import simulate_mode as simulate_des

__all__ = ["simulate_des"]
