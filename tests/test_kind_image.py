"""The kind image: the Dockerfile puts the code where the manifests run it from, and
installs everything the testbed's app and Locust file import."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata

from meshsim.kind.manifests import LOCUSTFILE, SOURCE_DIR
from tests.builders import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(f"{name} ")]


def test_the_code_sits_where_the_manifests_run_it() -> None:
    assert _instructions("WORKDIR") == [SOURCE_DIR]
    assert "meshsim ./meshsim" in _instructions("COPY")
    assert f"{SOURCE_DIR}/meshsim/testbed/locustfile.py" == LOCUSTFILE
    assert (ROOT / LOCUSTFILE.removeprefix(f"{SOURCE_DIR}/")).is_file()
    # .dockerignore lets in exactly what the COPY lines name
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"*", "!pyproject.toml", "!README.md", "!meshsim/"} <= set(ignore)


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~;\[]", spec.strip().strip('"'), maxsplit=1)[0].lower()


def _closure(names: set[str]) -> set[str]:
    """Distributions installed with these, following their requirements."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def test_the_image_installs_what_the_app_and_the_locustfile_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {_requirement_name(d) for d in project["dependencies"]}
    pip = next(r for r in _instructions("RUN") if r.startswith("pip install"))
    for arg in pip.split()[2:]:
        extras = re.fullmatch(r'"?\.\[([\w,-]+)\]"?', arg)
        if extras is not None:  # the project with extras: ".[testbed]"
            for extra in extras[1].split(","):
                installed |= {_requirement_name(d) for d in project["optional-dependencies"][extra]}
        elif arg != ".":
            installed.add(_requirement_name(arg))
    available = {n.replace("_", "-") for n in _closure(installed)}
    by_module = metadata.packages_distributions()
    for source in ("meshsim/testbed/app.py", "meshsim/testbed/locustfile.py"):
        tree = ast.parse((ROOT / source).read_text())
        modules = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        }
        modules |= {
            n.module.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
        }
        for module in sorted(modules - set(sys.stdlib_module_names) - {"meshsim"}):
            dists = {d.lower().replace("_", "-") for d in by_module.get(module, [])}
            assert dists & available, f"{source} imports {module}, which the image does not install"
