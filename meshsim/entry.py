"""The `meshsim` command (and `python -m meshsim`): signals are answered from its first
step. Loading meshsim's modules (numpy, scipy, numba, pydantic, matplotlib) takes a
second or more; without this, Ctrl-C then printed a traceback and SIGTERM or SIGHUP ended
the process by the signal (143, 129), where every other moment of a command exits 130."""

from __future__ import annotations

import os
import sys

from meshsim.signals import exit_stopped, sigterm_unwinds

__all__ = ["main"]

FAILED = 1


def main() -> None:
    try:
        with sigterm_unwinds():
            from meshsim.cli import main as commands

            # from here meshsim.cli's command group answers them, reading the arguments
            # and running the command
            commands(prog_name="meshsim")
    except KeyboardInterrupt as err:  # while loading
        exit_stopped(err)
    except OSError as err:
        if not _from_stdout(err):
            raise
        # a full disk or a closed pipe behind standard output: said once, on stderr (the
        # files of --out are written before anything is printed)
        print(f"meshsim: cannot write to standard output: {err.strerror}", file=sys.stderr)
        _quiet_stdout()
        sys.exit(FAILED)


def _from_stdout(err: OSError) -> bool:
    """Whether the error came from writing to standard output: the stream (or a console
    holding it) is in the frame that raised it."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    streams = {id(sys.stdout), id(sys.__stdout__)}
    for value in tb.tb_frame.f_locals.values():
        if id(value) in streams or id(getattr(value, "file", None)) in streams:
            return True
    return False


def _quiet_stdout() -> None:
    """Point standard output at /dev/null, so that the exit's flush of what is left in its
    buffer fails no more."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)
