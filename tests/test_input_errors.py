"""Bad input: exit code 2 and a message naming file, line, column, YAML path and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from meshsim.cli import main

GOOD = """\
name: tiny
profile: istio-1.24
price: {vcpu_hour_usd: 0.03, gib_hour_usd: 0.004, source: test}
cluster:
  nodes: 2
  cores_per_node: 2
  memory_gib_per_node: 4
  network: {same_node_ms: 0.02, cross_node_ms: 0.1, cross_zone_ms: 0.5}
workloads:
  - name: web
    replicas: 2
    calls:
      - to: api
  - name: api
    service_time: {dist: exponential, mean_ms: 1}
traffic:
  entry: web
  open_loop: {rate_rps: 10}
  duration_s: 2
"""

CASES = [
    # (what, replace this, with this, expected message after "FILE:")
    (
        "unknown service",
        "      - to: api",
        "      - to: apj",
        "13:13: workloads[0].calls[0].to: unknown service 'apj' (did you mean 'api'?); "
        "expected one of: web, api",
    ),
    (
        "unknown entry",
        "  entry: web",
        "  entry: webb",
        "17:10: traffic.entry: unknown service 'webb' (did you mean 'web'?); "
        "expected one of: web, api",
    ),
    (
        "unknown key",
        "  cores_per_node: 2",
        "  cores_per_nod: 2",
        "6:3: cluster.cores_per_nod: unknown key 'cores_per_nod' (did you mean 'cores_per_node'?); "
        "expected one of: background_cores, cores_per_node, max_pods_per_node, "
        "memory_gib_per_node, network, nodes, zones",
    ),
    (
        "negative rate",
        "{rate_rps: 10}",
        "{rate_rps: -10}",
        "18:25: traffic.open_loop.rate_rps: expected a value greater than 0, got -10",
    ),
    (
        "replicas that cannot be placed",
        "    replicas: 2",
        "    replicas: 50",
        "11:15: workloads[0].replicas: cannot place replica 41 of 50 of 'web': no allowed node has "
        "100 millicores, 64 MiB and a pod slot free",
    ),
    (
        "wrong type",
        "    replicas: 2",
        "    replicas: two",
        "11:15: workloads[0].replicas: expected an integer, got 'two'",
    ),
    (
        "a boolean for a count",  # lax parsing read it as 1
        "    replicas: 2",
        "    replicas: true",
        "11:15: workloads[0].replicas: expected an integer, got true",
    ),
    (
        "a quoted number",  # lax parsing read it as 10
        "  open_loop: {rate_rps: 10}",
        '  open_loop: {rate_rps: "10"}',
        "18:25: traffic.open_loop.rate_rps: expected a number, got '10'",
    ),
    (
        "missing key",
        "  duration_s: 2\n",
        "",
        "17:3: traffic.duration_s: missing required key 'duration_s'",
    ),
    (
        "unknown distribution",
        "{dist: exponential,",
        "{dist: gamma,",
        "15:26: workloads[1].service_time.dist: unknown dist 'gamma'; "
        "expected one of: constant, exponential, lognormal, empirical",
    ),
    (
        "call cycle",
        "    service_time:",
        "    calls: [{to: web}]\n    service_time:",
        "15:18: workloads[1].calls[0].to: call cycle web -> api -> web; "
        "the call graph must be acyclic",
    ),
    (
        "unknown profile",
        "profile: istio-1.24",
        "profile: istio-9",
        "2:10: profile: no profile 'istio-9' found; expected a file in profiles/ (by name, "
        "without .yaml) or a path to a profile YAML",
    ),
    (
        "unknown mode",
        "  duration_s: 2\n",
        "  duration_s: 2\nmesh: {modes: [sidecars]}\n",
        "20:16: mesh.modes[0]: expected 'none', 'sidecar', 'ambient' or 'ambient-waypoint', "
        "got 'sidecars' (did you mean 'sidecar'?)",
    ),
    (
        "warm-up longer than the run",
        "  duration_s: 2\n",
        "  duration_s: 2\n  warmup_s: 3\n",
        "17:3: traffic: warmup_s (3) must be shorter than duration_s (2)",
    ),
    (
        "invalid YAML",
        "  entry: web",
        "  entry: [web",
        "18:12: not valid YAML: expected ',' or ']', but got ':'",
    ),
    (
        "more nodes than any cluster has",
        "  nodes: 2\n",
        "  nodes: 1000000000\n",
        "5:10: cluster.nodes: expected a value less than or equal to 100000 or a list, "
        "got 1000000000",
    ),
    (
        "a body larger than 1 GiB",
        "      - to: api",
        "      - {to: api, request_bytes: 100000000000000000000}",
        "13:34: workloads[0].calls[0].request_bytes: expected a value less than or equal to "
        "1073741824, got 100000000000000000000",
    ),
    (
        "a rate too low for any request in the window",
        "{rate_rps: 10}",
        "{rate_rps: 0.1}",
        "17:3: traffic: at 0.1 requests per second, the measurement window (duration_s - "
        "warmup_s: 2 s) holds no request: every figure would be empty",
    ),
    (
        "a blank price source",
        "source: test}",
        "source: ' '}",
        "3:59: price.source: expected a string that is not blank, got ' '",
    ),
    (
        "a zone listed twice",
        "  cores_per_node: 2\n",
        "  cores_per_node: 2\n  zones: [zone-a, zone-a]\n",
        "7:19: cluster.zones[1]: zone 'zone-a' is listed twice",
    ),
    # a distribution's fields are named, not the branch of the union that parses it
    (
        "negative mean in a distribution",
        "mean_ms: 1}",
        "mean_ms: -1}",
        "15:48: workloads[1].service_time.mean_ms: expected a value greater than 0, got -1",
    ),
    (
        "misspelled key of a distribution",
        "mean_ms: 1}",
        "mean: 1}",
        "15:39: workloads[1].service_time.mean: unknown key 'mean' (did you mean 'mean_ms'?); "
        "expected one of: dist, mean_ms",
    ),
    (
        "negative cv of a lognormal",
        "{dist: exponential, mean_ms: 1}",
        "{dist: lognormal, mean_ms: 1, cv: -1}",
        "15:53: workloads[1].service_time.cv: expected a value greater than 0, got -1",
    ),
    (
        "infinite rate",
        "{rate_rps: 10}",
        "{rate_rps: .inf}",
        "18:25: traffic.open_loop.rate_rps: expected a finite number, got inf",
    ),
    (
        "no modes",
        "  duration_s: 2\n",
        "  duration_s: 2\nmesh: {modes: []}\n",
        "20:15: mesh.modes: expected at least 1 item, got []",
    ),
    (
        "name not a DNS label",
        "name: tiny",
        "name: Tiny",
        "1:7: name: expected a name of lowercase letters, digits and '-' that starts and ends "
        "with a letter or digit, got 'Tiny'",
    ),
]


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "profiles").mkdir(exist_ok=True)
    istio = Path(__file__).resolve().parent.parent / "profiles" / "istio-1.24.yaml"
    (tmp_path / "profiles" / "istio-1.24.yaml").write_text(istio.read_text())
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir(exist_ok=True)
    path = scenarios / "bad.yaml"
    path.write_text(text)
    return path


def test_the_good_scenario_is_valid(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(_write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "ok (2 workloads, profile istio-1.24)" in result.output


@pytest.mark.parametrize(("what", "old", "new", "message"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_input_exits_2_with_exact_message(
    tmp_path: Path, command: str, what: str, old: str, new: str, message: str
) -> None:
    assert old in GOOD, what
    path = _write(tmp_path, GOOD.replace(old, new))
    result = CliRunner().invoke(main, [command, str(path)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output == f"{path}:{message}\n"


def test_missing_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 2
    assert result.output == f"{path}:1:1: cannot read: No such file or directory\n"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("      - to: api", "      - to: apj").replace("entry: web", "entry: x")
    result = CliRunner().invoke(main, ["validate", str(_write(tmp_path, text))])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 2


def _profile_output(tmp_path: Path, path: str, value: float) -> str:
    """What validating the good scenario says with the profile's number at `path` (dotted)
    set to `value`."""
    scenario = _write(tmp_path, GOOD)
    profile_file = tmp_path / "profiles" / "istio-1.24.yaml"
    doc = yaml.safe_load(profile_file.read_text())
    node = doc
    for part in path.split("."):
        node = node.setdefault(part, {})
    node.update({"value": value, "source": "test"})
    profile_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = CliRunner().invoke(main, ["validate", str(scenario)])
    assert result.exit_code == 2, result.output
    return result.output


def _profile_error(tmp_path: Path, path: str, value: float) -> tuple[str, str]:
    """Validate the good scenario with the profile's number at `path` (dotted) set to
    `value`: the output, and the file:line: it must start with (the line of that value)."""
    output = _profile_output(tmp_path, path, value)
    profile_file = tmp_path / "profiles" / "istio-1.24.yaml"
    line = next(
        i + 1
        for i, text in enumerate(profile_file.read_text().splitlines())
        if text.strip().startswith(f"value: {value}")
    )
    return output, f"{profile_file}:{line}:"


@pytest.mark.parametrize("path", ["sidecar.cpu.deferred_fraction", "app.cold_deferred_fraction"])
def test_a_share_above_one_in_the_profile_is_named_by_line(tmp_path: Path, path: str) -> None:
    # a share of a burst's CPU above 1 would leave the rest of it negative
    output, where = _profile_error(tmp_path, path, 1.5)
    assert output.startswith(where)
    assert output.endswith(f": {path}.value: expected a value less than or equal to 1, got 1.5\n")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # no worker thread crashed the engines (IndexError); half of one was taken as none
        ("sidecar.workers", 0, "a value greater than or equal to 1"),
        ("ztunnel.workers", 1.5, "a whole number"),
        # a spread whose square overflows made every draw inf or NaN
        ("sidecar.cpu.cv", 1e300, "a value less than or equal to 100"),
    ],
)
def test_a_profile_number_the_engines_cannot_use_is_named_by_line(
    tmp_path: Path, path: str, value: float, expected: str
) -> None:
    output = _profile_output(tmp_path, path, value)
    profile_file = tmp_path / "profiles" / "istio-1.24.yaml"
    line = int(output.removeprefix(f"{profile_file}:").split(":")[0])
    assert profile_file.read_text().splitlines()[line - 1].strip().startswith("value: ")
    assert yaml.safe_load(profile_file.read_text().splitlines()[line - 1])["value"] == value
    assert output.endswith(f": {path}.value: expected {expected}, got {value}\n")


@pytest.mark.parametrize("kind", ["sidecar", "ztunnel", "waypoint"])
def test_an_mtls_handshake_of_no_round_trip_is_named_by_line(tmp_path: Path, kind: str) -> None:
    # the engines wait one round trip around the server's handshake CPU, then the rest:
    # fewer than one would put the connection's readiness before its start (the DES engine
    # stopped on a negative delay, the vector engine went back in time)
    output, where = _profile_error(tmp_path, f"{kind}.handshake_round_trips", 0.375)
    assert output.startswith(where)
    assert output.endswith(
        f": {kind}.handshake_round_trips.value: expected a value greater than or equal to 1, "
        "got 0.375\n"
    )


def test_a_list_of_nodes_is_judged_as_a_list_not_also_as_a_count(tmp_path: Path) -> None:
    """`nodes` is a count or a list: the problems of a list given are its entries', without
    the count's "expected a valid integer" beside them."""
    path = _write(
        tmp_path, GOOD.replace("  nodes: 2\n", "  nodes: [{name: a, cores: 0}, {nam: b}]\n")
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.output == (
        f"{path}:5:28: cluster.nodes[0].cores: expected a value greater than 0, got 0\n"
        f"{path}:5:33: cluster.nodes[1].nam: unknown key 'nam' (did you mean 'name'?); "
        "expected one of: cores, memory_gib, name, zone\n"
    )


@pytest.mark.parametrize(
    ("what", "old", "new", "message"),
    [
        (
            "a byte that is not UTF-8",
            b"name: tiny",
            b"name: tiny # caf\xe9",
            "1:17: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        ),
        (
            "a NUL character",
            b"  entry: web",
            b"  entry: w\x00eb",
            "17:11: not valid YAML: character U+0000 is not allowed in a YAML file",
        ),
        (
            "a key given twice (YAML keeps the last without a word)",
            b"    replicas: 2\n",
            b"    replicas: 2\n    replicas: 3\n",
            "12:5: workloads[0].replicas: key 'replicas' is given twice (first on line 11); "
            "give it once",
        ),
    ],
    ids=["not-utf8", "nul", "repeated-key"],
)
def test_what_yaml_would_not_say_is_named_by_line(
    tmp_path: Path, what: str, old: bytes, new: bytes, message: str
) -> None:
    good = GOOD.encode()
    assert old in good, what
    path = _write(tmp_path, "")
    path.write_bytes(good.replace(old, new, 1))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output == f"{path}:{message}\n"


_LAUGHS = "".join(
    [
        'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n',
        *(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)),
    ]
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "1:4: an alias inside the value it names: the value is endless"),
        ("a: &a {b: *a}\n", "1:4: an alias inside the value it names: the value is endless"),
        ("x: " + "[" * 5000 + "]" * 5000 + "\n", "1:1: not valid YAML: nested too deeply"),
        (_LAUGHS, "7:5: its aliases expand it to over 1,000,000 values; write it out, or nest "
                  "fewer aliases"),
    ],
    ids=["alias-of-itself", "alias-in-a-mapping", "nested-too-deeply", "aliases-of-aliases"],
)  # fmt: skip
def test_a_yaml_document_that_does_not_end_is_refused_by_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output == f"{path}:{message}\n"


def test_a_number_in_exponent_form_without_a_dot_is_a_number(tmp_path: Path) -> None:
    """YAML 1.1 reads 1e1 as a string (Python writes 1e-05 so): read as YAML 1.2 does."""
    path = tmp_path / "tiny.yaml"
    path.write_text(GOOD.replace("rate_rps: 10}", "rate_rps: 1e1}"))
    result = CliRunner().invoke(main, ["run", str(path), "--json", "--mode", "none"])
    assert result.exit_code == 0, result.output
