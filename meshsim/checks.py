"""Checks a schema cannot express: references between parts of a scenario, and fit.

Each problem is a (yaml path, message) pair; `meshsim.loader` turns the path into a
file, line and column.
"""

from __future__ import annotations

from meshsim.scenario import Placement, Scenario
from meshsim.topology import PlacementError, build_topology, node_cores, resolve_nodes

__all__ = ["check_scenario", "did_you_mean"]

PathKey = tuple[str | int, ...]


def did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown(kind: str, name: str, known: list[str]) -> str:
    return (
        f"unknown {kind} '{name}'{did_you_mean(name, known)}; expected one of: {', '.join(known)}"
    )


def check_scenario(scenario: Scenario) -> list[tuple[PathKey, str]]:
    problems: list[tuple[PathKey, str]] = []
    services = [w.name for w in scenario.workloads]
    node_names = [n.name for n in resolve_nodes(scenario)]

    seen: dict[str, int] = {}
    for i, workload in enumerate(scenario.workloads):
        if workload.name in seen:
            problems.append(
                (
                    ("workloads", i, "name"),
                    f"workload '{workload.name}' is already defined at "
                    f"workloads[{seen[workload.name]}]",
                )
            )
        seen.setdefault(workload.name, i)
        for j, call in enumerate(workload.calls):
            if call.to not in services:
                problems.append(
                    (("workloads", i, "calls", j, "to"), _unknown("service", call.to, services))
                )
        if isinstance(workload.placement, Placement):
            for k, node in enumerate(workload.placement.nodes):
                if node not in node_names:
                    problems.append(
                        (
                            ("workloads", i, "placement", "nodes", k),
                            _unknown("node", node, node_names),
                        )
                    )
    if len(set(node_names)) != len(node_names):
        dup = next(n for n in node_names if node_names.count(n) > 1)
        index = node_names.index(dup, node_names.index(dup) + 1)
        problems.append((("cluster", "nodes", index, "name"), f"node '{dup}' is listed twice"))
    zones = scenario.cluster.zones
    for index, zone in enumerate(zones):
        if zone in zones[:index]:  # numbered nodes go round-robin: it would get twice the nodes
            problems.append((("cluster", "zones", index), f"zone '{zone}' is listed twice"))
            break
    if scenario.traffic.entry not in services:
        problems.append(
            (("traffic", "entry"), _unknown("service", scenario.traffic.entry, services))
        )
    client_node = scenario.traffic.client.node
    if client_node is not None and client_node not in node_names:
        problems.append((("traffic", "client", "node"), _unknown("node", client_node, node_names)))
    cores = node_cores(scenario)
    for node, busy in scenario.cluster.background_cores.items():
        where = ("cluster", "background_cores", node)
        if node not in cores:
            problems.append((where, _unknown("node", node, node_names)))
        elif busy >= cores[node]:
            problems.append((where, f"{busy:g} cores of background leave none of {node}'s "
                                    f"{cores[node]} to the scenario"))  # fmt: skip
    problems += _cycles(scenario)
    if not problems:
        try:
            build_topology(scenario)
        except PlacementError as exc:
            problems.append((("workloads", exc.workload_index, "replicas"), str(exc)))
    return problems


def _cycles(scenario: Scenario) -> list[tuple[PathKey, str]]:
    """Report the first call that closes a cycle (a request would never finish)."""
    index = {w.name: i for i, w in enumerate(scenario.workloads)}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(name: str) -> tuple[PathKey, str] | None:
        state[name] = 1
        stack.append(name)
        i = index[name]
        for j, call in enumerate(scenario.workloads[i].calls):
            if call.to not in index:
                continue
            if state.get(call.to) == 1:
                loop = [*stack[stack.index(call.to) :], call.to]
                return (
                    ("workloads", i, "calls", j, "to"),
                    f"call cycle {' -> '.join(loop)}; the call graph must be acyclic",
                )
            if call.to not in state:
                found = visit(call.to)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for workload in scenario.workloads:
        if workload.name not in state:
            found = visit(workload.name)
            if found:
                return [found]
    return []
