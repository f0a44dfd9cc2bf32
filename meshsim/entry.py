"""The `meshsim` command (and `python -m meshsim`): signals are answered from its first
step. Loading meshsim's modules (numpy, scipy, numba, pydantic, matplotlib) takes a
second or more; without this, Ctrl-C then printed a traceback and SIGTERM or SIGHUP ended
the process by the signal (143, 129), where every other moment of a command exits 130."""

from __future__ import annotations

from meshsim.signals import exit_stopped, sigterm_unwinds

__all__ = ["main"]


def main() -> None:
    try:
        with sigterm_unwinds():
            from meshsim.cli import main as commands

            # from here meshsim.cli's command group answers them, reading the arguments
            # and running the command
            commands(prog_name="meshsim")
    except KeyboardInterrupt as err:  # while loading
        exit_stopped(err)
