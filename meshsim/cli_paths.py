"""Output paths of the commands, checked when the command line is read: a run or a
measurement that takes minutes must not end on "Not a directory" with nothing written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


class OutputPath(click.ParamType):
    """A folder (folder=True) or a file the command will write; refused at once if it
    cannot be."""

    name = "path"

    def __init__(self, *, folder: bool) -> None:
        self.folder = folder

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        path = Path(value)
        problem = output_problem(path, folder=self.folder)
        if problem is not None:
            self.fail(problem, param, ctx)
        return path
