"""Read scenario and profile files, and explain bad input by file, line, column and path.

Every problem is reported as ``FILE:LINE:COL: yaml.path: what is wrong; what was
expected``. Schema errors come from pydantic; cross-references (calls to services that
exist, placements that fit, an acyclic call graph) are checked here, after the schema,
because only here do we know where in the file each value was written.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from meshsim.checks import check_scenario, did_you_mean
from meshsim.profile import Profile, Sourced
from meshsim.results import HistogramFileError, RunResult, load_run
from meshsim.scenario import MODES, Scenario

__all__ = [
    "InputError",
    "Problem",
    "dump_yaml",
    "load_profile",
    "load_scenario",
    "profile_from_source",
    "read_source",
    "resolve_profile_path",
    "validate_source",
]

PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class InputError(Exception):
    """Bad input; carries every problem found, each with its place in the file."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class YamlLoader(yaml.SafeLoader):
    """YAML as written today: a number in exponent form without a dot (1e-05, as Python
    writes it) is a number, as YAML 1.2 has it, not the string YAML 1.1 makes of it (which
    the models, strict about types, would refuse)."""


class YamlDumper(yaml.SafeDumper):
    """YAML written as YamlLoader reads it: a string that reads as a number there (1e5) is
    quoted, so a file meshsim writes reads back as it was."""


for _resolving in (YamlLoader, YamlDumper):
    _resolving.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )


def dump_yaml(doc: Any) -> str:
    """A document as YAML that read_source reads back the same (keys in their order)."""
    return yaml.dump(doc, Dumper=YamlDumper, sort_keys=False)


# values a document may expand to through its aliases (large-cluster.yaml: about 12,000)
MAX_VALUES = 1_000_000


def _alias_problem(root: yaml.Node) -> tuple[Any, str] | None:
    """(where, what) if the document's aliases make it endless (a node holding an alias of
    itself) or expand it past MAX_VALUES values (aliases of aliases, each doubling it);
    None otherwise. Each node is walked once, however many aliases name it; its size
    counts every alias of it."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            on_path.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            if size[id(node)] > MAX_VALUES:
                return node.start_mark, (
                    f"its aliases expand it to over {MAX_VALUES:,} values; write it out, "
                    "or nest fewer aliases"
                )
            continue
        if id(node) in size:  # pushed twice (two aliases of it), walked already
            continue
        on_path.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                return child.start_mark, "an alias inside the value it names: the value is endless"
            if id(child) not in size:
                stack.append((child, False))
    return None


class Source:
    """A parsed YAML document with the position of every key and value."""

    def __init__(self, file: str, text: str):
        self.file = file
        self.marks: dict[PathKey, tuple[int, int]] = {}
        self.key_marks: dict[PathKey, tuple[int, int]] = {}
        self.repeated: list[Problem] = []
        try:
            node = yaml.compose(text, Loader=YamlLoader)
            self.data: Any = yaml.load(text, Loader=YamlLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise InputError(
                [Problem(file, line, col, "", f"not valid {_syntax(file)}: {exc.problem or exc}")]
            ) from None
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, ...)
            line, col = _line_and_column(text, exc.position)
            syntax = _syntax(file)
            message = f"character {_char(exc.character)} is not allowed in a {syntax} file"
            raise InputError(
                [Problem(file, line, col, "", f"not valid {syntax}: {message}")]
            ) from None
        except RecursionError:
            raise InputError(
                [Problem(file, 1, 1, "", f"not valid {_syntax(file)}: nested too deeply")]
            ) from None
        if node is not None:
            problem = _alias_problem(node)
            if problem is not None:
                mark, message = problem
                raise InputError([Problem(file, mark.line + 1, mark.column + 1, "", message)])
            self._walk(node, ())
        if self.repeated:  # YAML would keep the last and drop the others without a word
            raise InputError(self.repeated)

    def _walk(self, node: yaml.Node, path: PathKey) -> None:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                here = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if (*path, key) in self.key_marks and key_node.tag != "tag:yaml.org,2002:merge":
                    first = self.key_marks[(*path, key)][0]
                    self.repeated.append(
                        Problem(self.file, *here, format_path((*path, key)),
                                f"key '{key}' is given twice (first on line {first}); "
                                "give it once")
                    )  # fmt: skip
                    continue
                self.key_marks[(*path, key)] = here
                self._walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, index))

    def problem(self, path: PathKey, message: str, *, at_key: bool = False) -> Problem:
        """A problem at `path`, placed at the deepest part of the path written in the file."""
        probe = path
        while probe:
            marks = self.key_marks if at_key and probe == path else self.marks
            if probe in marks:
                line, col = marks[probe]
                return Problem(self.file, line, col, format_path(path), message)
            probe = probe[:-1]
        line, col = self.marks.get((), (1, 1))
        return Problem(self.file, line, col, format_path(path), message)

    def data_path(self, loc: Sequence[str | int]) -> PathKey:
        """Drop the parts of a pydantic location that name union branches, not data."""
        out: list[str | int] = []
        here = self.data
        for part in loc:
            in_dict = isinstance(here, dict) and part in here
            in_list = isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here)
            if in_dict or in_list:
                here = here[part]
                out.append(part)
            elif isinstance(here, dict) and part == here.get(_TAG):
                continue  # the branch of a tagged union (a distribution's `dist`)
            elif isinstance(here, dict) and isinstance(part, str) and not _is_branch(part):
                out.append(part)  # a missing or unknown key: still part of the path
                here = None
        return tuple(out)


def _is_branch(part: str) -> bool:
    """pydantic names union branches like 'int', 'list[NodeSpec]', 'literal[...]', 'Placement'."""
    return "[" in part or part[:1].isupper() or part in {"int", "float", "str", "bool"}


_TAG = "dist"  # the key that picks the branch of a tagged union (distributions)


def _field_names(model: type[BaseModel], path: PathKey, data: Any = None) -> list[str]:
    """The keys the model accepts at `path` (for did-you-mean on unknown keys); `data`,
    the document, picks the branch of a tagged union by its tag."""
    current: Any = model
    here = data
    for part in path:
        if isinstance(here, dict):
            here = here.get(part)
        elif isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
            here = here[part]
        else:
            here = None
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_in(field.annotation, here.get(_TAG) if isinstance(here, dict) else None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _models_in(annotation: Any) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _models_in(arg)]


def _model_in(annotation: Any, tag: Any = None) -> Any:
    """The model of a field: of a union's, the branch whose tag is `tag`, else the first."""
    models = _models_in(annotation)
    for m in models:
        field = m.model_fields.get(_TAG)
        if (
            tag is not None
            and field is not None
            and tag in getattr(field.annotation, "__args__", ())
        ):
            return m
    return models[0] if models else None


def _explain(error: Any, source: Source, model: type[BaseModel]) -> Problem:
    loc = source.data_path(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _field_names(model, loc[:-1], source.data)
        hint = did_you_mean(key, allowed)
        expected = f"; expected one of: {', '.join(sorted(allowed))}" if allowed else ""
        return source.problem(loc, f"unknown key '{key}'{hint}{expected}", at_key=True)
    if kind == "missing":
        return source.problem(loc, f"missing required key '{loc[-1]}'")
    if kind == "union_tag_invalid":
        ctx = error["ctx"]
        field = str(ctx["discriminator"]).strip("'")
        tag = ctx["tag"]
        allowed = [t.strip(" '") for t in str(ctx["expected_tags"]).split(",")]
        return source.problem(
            (*loc, field),
            f"unknown {field} '{tag}'{did_you_mean(str(tag), allowed)}; "
            f"expected one of: {', '.join(allowed)}",
        )
    message = str(error["msg"])
    if message.startswith("Value error, "):
        return source.problem(loc, message.removeprefix("Value error, "))
    expected = _plain_expectation(error) or message.removeprefix("Input should be ").removeprefix(
        "input should be "
    )
    if expected.startswith(("greater", "less")):
        expected = f"a value {expected}"
    for pydantic_words, plain in _PLAIN.items():
        expected = expected.replace(pydantic_words, plain)
    got = error.get("input")
    hint = ""
    if kind == "literal_error" and isinstance(got, str):
        choices = str(error["ctx"]["expected"]).replace(" or ", ", ").split(", ")
        hint = did_you_mean(got, [c.strip("'") for c in choices])
    return source.problem(loc, f"expected {expected}, got {_as_written(got)}{hint}")


_NAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SOURCED = {Sourced.__name__} | {c.__name__ for c in Sourced.__subclasses__()}


def _plain_expectation(error: Any) -> str | None:
    """What pydantic's own sentence for these errors says, in the words of the others."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"at least {n} item" + ("s" if n != 1 else "")
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "a non-empty string" if n == 1 else f"a string of at least {n} characters"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == _NAME_PATTERN:
            return (
                "a name of lowercase letters, digits and '-' that starts and ends with a "
                "letter or digit"
            )
        if ctx.get("pattern") == r"\S":
            return "a string that is not blank"
        return f"a string matching {ctx.get('pattern')}"
    if kind == "multiple_of" and ctx.get("multiple_of") == 1:
        return "a whole number"
    if kind == "model_type" and ctx.get("class_name") in _SOURCED:
        return "a mapping of value and source (every number of a profile names its source)"
    if str(error.get("msg", "")).startswith("Keys should be strings"):
        return "keys that are strings"
    return None


_PLAIN = {
    "a valid dictionary or object to extract fields from": "a mapping",
    "a valid integer, unable to parse string as an integer": "an integer",
    "a valid number, unable to parse string as a number": "a number",
    "a valid integer, got a number with a fractional part": "a whole number",
    "a valid dictionary or instance of ": "a mapping of ",
    "a valid dictionary": "a mapping",
    "a valid list": "a list",
    "a valid string": "a string",
    "a valid integer": "an integer",
    "a valid number": "a number",
    "a valid boolean": "true or false",
}


def _syntax(file: str) -> str:
    """What a file is written in, for its syntax errors (JSON is read as the YAML it is)."""
    return "JSON" if file.endswith(".json") else "YAML"


def _char(character: Any) -> str:
    code = character if isinstance(character, int) else ord(str(character)[:1] or "\0")
    return f"U+{code:04X}"


def _line_and_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of text[index]."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def read_source(path: Path) -> Source:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError([Problem(str(path), 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8")  # all that decodes, up to the bad byte
        line, col = _line_and_column(before, len(before))
        byte = raw[exc.start]
        raise InputError(
            [Problem(str(path), line, col, "", f"not UTF-8 text (byte 0x{byte:02x}); save the "
                     "file as UTF-8")]
        ) from None  # fmt: skip
    return Source(str(path), text)


def validate_source(source: Source, model: type[M]) -> M:
    if not isinstance(source.data, dict):
        raise InputError([source.problem((), "expected a mapping of keys at the top level")])
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        raise InputError(explain(exc, source, model)) from None


def explain(exc: ValidationError, source: Source, model: type[BaseModel]) -> list[Problem]:
    """The problems of a validation of `source.data` against `model`, each at its place."""
    errors = _without_misspelled_missing(exc.errors(), source, model)
    return _merge([_explain(err, source, model) for err in _deepest_branch(errors, source)])


def _deepest_branch(errors: list[Any], source: Source) -> list[Any]:
    """Of a union's branches (`nodes: int | list`), a value of one branch's shape is judged
    by that branch: a type error at a path under which other errors lie (inside the list
    given) is the other branch's, and is dropped."""
    paths = [source.data_path(e["loc"]) for e in errors]
    return [
        e
        for e, path in zip(errors, paths, strict=True)
        if not (
            str(e["type"]).endswith("_type")
            and any(len(q) > len(path) and q[: len(path)] == path for q in paths)
        )
    ]


def _without_misspelled_missing(
    errors: list[Any], source: Source, model: type[BaseModel]
) -> list[Any]:
    """A misspelled key is both unknown and missing; report it once, as unknown + did-you-mean."""
    misspelled = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            loc = source.data_path(err["loc"])
            allowed = _field_names(model, loc[:-1], source.data)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            if close:
                misspelled.add((*loc[:-1], close[0]))
    return [
        e
        for e in errors
        if not (e["type"] == "missing" and source.data_path(e["loc"]) in misspelled)
    ]


def _as_written(value: Any) -> str:
    """A value as the YAML file spells it: true, false and null, not Python's names."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else repr(value)


def _merge(problems: list[Problem]) -> list[Problem]:
    """One problem per place: drop repeats, and join what each union branch expected."""
    merged: dict[tuple[int, int, str], Problem] = {}
    for p in problems:
        key = (p.line, p.column, p.path)
        first = merged.get(key)
        if first is None:
            merged[key] = p
        elif first.message != p.message and _is_expectation(first) and _is_expectation(p):
            head, got = first.message.rsplit(", got ", 1)
            other = p.message.removeprefix("expected ").rsplit(", got ", 1)[0]
            merged[key] = Problem(p.file, p.line, p.column, p.path, f"{head} or {other}, got {got}")
    return list(merged.values())


def _is_expectation(p: Problem) -> bool:
    return p.message.startswith("expected ") and ", got " in p.message


def resolve_profile_path(name: str, scenario_file: Path) -> Path | None:
    """A profile given by name is looked up next to the scenario, in ../profiles, then in
    the repository's profiles/; a path is taken relative to the scenario file."""
    candidates: list[Path] = []
    given = Path(name)
    if given.suffix in {".yaml", ".yml"} or "/" in name:
        candidates += [scenario_file.parent / given, given]
    else:
        file = f"{name}.yaml"
        candidates += [
            scenario_file.parent / file,
            scenario_file.parent.parent / "profiles" / file,
            Path.cwd() / "profiles" / file,
            REPO_ROOT / "profiles" / file,
        ]
    return next((c for c in candidates if c.is_file()), None)


def load_profile(path: Path) -> Profile:
    return profile_from_source(read_source(path))


def profile_from_source(source: Source) -> Profile:
    """A profile, checked; one that carries a held-out error must have the numbers that
    error was measured with (a number edited since its fit makes the error another's)."""
    profile = validate_source(source, Profile)
    held = profile.held_out
    if held is not None:
        table = _found_from(held.table, Path(source.file))
        if table != held.table:
            held = held.model_copy(update={"table": table})
            profile = profile.model_copy(update={"held_out": held})
    if held is not None and held.numbers != profile.numbers_fingerprint():
        raise InputError(
            [
                source.problem(
                    ("held_out", "numbers"),
                    "the profile's numbers are not those its held-out error was measured "
                    f"with (fingerprint {profile.numbers_fingerprint()}, not {held.numbers}: "
                    "edited since its fit?); delete held_out, or refit the profile",
                )
            ]
        )
    return profile


def _found_from(path: str, profile_file: Path) -> str:
    """A relative path a profile gives (its held-out table, written relative to where
    calibrate ran: the repository's root, for the bundled profile) as a path that reads from
    here: as it is if it does; else from the nearest folder above the profile that has it."""
    if Path(path).is_absolute() or Path(path).exists():
        return path
    for folder in profile_file.resolve().parents:
        if (folder / path).exists():
            relative = os.path.relpath(folder / path)
            return str(folder / path) if relative.startswith("..") else relative
    return path


def load_scenario(path: Path | str) -> tuple[Scenario, Profile]:
    """Load and fully check a scenario and the profile it names."""
    path = Path(path)
    source = read_source(path)
    scenario = validate_source(source, Scenario)
    problems = [source.problem(p, msg) for p, msg in check_scenario(scenario)]
    profile_path = resolve_profile_path(scenario.profile, path)
    if profile_path is None:
        problems.append(
            source.problem(
                ("profile",),
                f"no profile '{scenario.profile}' found; expected a file in profiles/ "
                "(by name, without .yaml) or a path to a profile YAML",
            )
        )
    if problems:
        raise InputError(problems)
    assert profile_path is not None
    return scenario, load_profile(profile_path)


def _impossible_figures(source: Source, at: tuple[str | int, ...], value: Any) -> list[Problem]:
    """Every figure under `at` that no run can have: infinite, or below 0 (counts, rates,
    latencies, cores, bytes and connections all start at 0)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _impossible_figures(source, (*at, k), v)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _impossible_figures(source, (*at, i), v)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    if math.isinf(value):
        return [source.problem(at, "expected a finite number")]
    if value < 0:
        return [source.problem(at, f"expected a number >= 0, not {value}")]
    return []


def load_run_file(path: Path) -> RunResult:
    """A run read back from its summary JSON (and the histograms beside it), or InputError
    naming the file, line and field of what is wrong with it."""
    source = read_source(path)  # JSON is YAML: every key's line and column
    if not isinstance(source.data, dict):
        raise InputError(
            [source.problem((), "expected a run summary: an object with scenario, seed, modes")]
        )
    for key in ("scenario", "seed", "modes"):  # the histograms' file names need them
        if key not in source.data:
            raise InputError([source.problem((key,), f"missing required key '{key}'")])
    modes = source.data["modes"]
    if not isinstance(modes, dict) or not modes:
        raise InputError([source.problem(("modes",), "expected an object of one or more modes")])
    problems = [
        source.problem(("modes", name), f"unknown mode '{name}'; expected one of: "
                       f"{', '.join(MODES)}", at_key=True)
        for name in modes
        if name not in MODES
    ]  # fmt: skip
    problems += _impossible_figures(source, ("modes",), modes)
    if problems:
        raise InputError(problems)
    try:
        return load_run(path)
    except HistogramFileError as err:
        raise InputError([Problem(str(err.path), err.line, 1, "", err.message)]) from None
    except ValidationError as exc:
        raise InputError(explain(exc, source, RunResult)) from None
