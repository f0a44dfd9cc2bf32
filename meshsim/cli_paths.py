"""Output paths of the commands, checked when the command line is read: a run or a
measurement that takes minutes must not end on "Not a directory" with nothing written."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import click


def output_problem(path: Path, *, folder: bool) -> str | None:
    """Why results cannot be written to `path` (a folder to write files into, or a file to
    write over), or None when they can: what exists must be of the right kind, and the
    nearest existing folder at or above where the files go must be writable."""
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder, not a file"
    # files are written beside their final name and renamed into place (write_atomically)
    where = path if folder else path.parent
    probe = where.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, so {where} cannot be made"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"cannot write in {probe}"
    return None


def output_path(
    *, folder: bool
) -> Callable[[click.Context, click.Parameter, Path | None], Path | None]:
    """An option's callback for a folder (folder=True) or a file the command will write:
    refused at once if it cannot be."""

    def check(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
        if value is not None:
            problem = output_problem(value, folder=folder)
            if problem is not None:
                raise click.BadParameter(problem, ctx=ctx, param=param)
        return value

    return check
