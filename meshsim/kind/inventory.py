"""Finding the modelled components among the cluster's pods, and checking them.

From `kubectl get pods --all-namespaces -o json`: each topology pod is the Running pod
labelled with its name; a sidecar is that pod's `istio-proxy` container; a ztunnel is
the pod of the istio-system DaemonSet `ztunnel` on that node; a waypoint is the pod of
its Gateway (`gateway.networking.k8s.io/gateway-name`). A pod on another node than the
topology's, a mode that is not in effect (no sidecar injected, no ambient redirection)
or a missing component stops the run: never measure a system the scenario does not
describe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from meshsim.kind.cluster import Cluster
from meshsim.kind.commands import KindError
from meshsim.kind.manifests import APP_CONTAINER, LOADGEN_CONTAINER, POD_LABEL, Waypoint
from meshsim.kind.metrics import ContainerKey, Target, pod_containers
from meshsim.scenario import Mode
from meshsim.topology import CLIENT, Proxy, Topology

__all__ = ["find_targets"]

PROXY_CONTAINER = "istio-proxy"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
AMBIENT_ANNOTATION = "ambient.istio.io/redirection"


def _running(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        p
        for p in pods
        if p.get("status", {}).get("phase") == "Running"
        and "deletionTimestamp" not in p["metadata"]
    ]


def _labelled(
    pods: list[dict[str, Any]], namespace: str, label: str, value: str
) -> list[dict[str, Any]]:
    return [
        p for p in pods
        if p["metadata"]["namespace"] == namespace
        and p["metadata"].get("labels", {}).get(label) == value
    ]  # fmt: skip


def _one(pods: list[dict[str, Any]], what: str) -> dict[str, Any]:
    if len(pods) != 1:
        names = ", ".join(p["metadata"]["name"] for p in pods) or "none"
        raise KindError(f"expected one running pod for {what}, found {len(pods)}: {names}")
    return pods[0]


def _key(pod: dict[str, Any], container: str, what: str) -> ContainerKey:
    if container not in pod_containers(pod):
        meta = pod["metadata"]
        raise KindError(
            f"{what}: pod {meta['namespace']}/{meta['name']} has no container {container!r}"
        )
    return ContainerKey(pod["metadata"]["namespace"], pod["metadata"]["name"], container)


def find_targets(
    inventory: str,
    topology: Topology,
    proxies: Sequence[Proxy],
    waypoints: Sequence[Waypoint],
    cluster: Cluster,
    mode: Mode,
) -> list[Target]:
    """Every pod and proxy of the mode, matched to a container, placed as modelled."""
    pods = _running(json.loads(inventory)["items"])
    node_of = {cluster.hostname(n.index): n.name for n in cluster.nodes}

    def placed(pod: dict[str, Any], node: int, what: str) -> str:
        actual = pod["spec"].get("nodeName", "")
        expected = cluster.hostname(node)
        if actual != expected:
            raise KindError(
                f"{what} runs on {actual or 'no node'}, the scenario puts it on {expected}"
            )
        return node_of[actual]

    targets: list[Target] = []
    by_pod_name: dict[str, dict[str, Any]] = {}
    for pod in topology.pods:
        what = f"pod {pod.namespace}/{pod.name}"
        found = _one(_labelled(pods, pod.namespace, POD_LABEL, pod.name), what)
        node = placed(found, pod.node, what)
        annotations = found["metadata"].get("annotations", {})
        injected = PROXY_CONTAINER in pod_containers(found)
        ambient = annotations.get(AMBIENT_ANNOTATION) == "enabled"
        if injected != (mode == "sidecar"):
            state = "has an" if injected else "has no"
            raise KindError(f"{what} {state} istio-proxy sidecar in mode {mode}")
        if ambient != (mode in ("ambient", "ambient-waypoint")):
            state = "is" if ambient else "is not"
            raise KindError(f"{what} {state} redirected to ztunnel in mode {mode}")
        is_client = pod.workload == CLIENT
        container = LOADGEN_CONTAINER if is_client else APP_CONTAINER
        kind: Literal["app", "loadgen"] = "loadgen" if is_client else "app"
        targets.append(Target(pod.name, kind, node, _key(found, container, what)))
        by_pod_name[pod.name] = found
    gateways = {wp.proxy.name: wp for wp in waypoints}
    for proxy in proxies:
        what = f"{proxy.kind} {proxy.name}"
        if proxy.kind == "sidecar":
            found = by_pod_name[proxy.key]
        elif proxy.kind == "ztunnel":
            found = _one(
                [
                    p
                    for p in pods
                    if p["metadata"]["namespace"] == "istio-system"
                    and any(
                        o.get("kind") == "DaemonSet" and o.get("name") == "ztunnel"
                        for o in p["metadata"].get("ownerReferences", [])
                    )
                    and p["spec"].get("nodeName") == cluster.hostname(proxy.node)
                ],
                what,
            )
        else:
            wp = gateways[proxy.name]
            found = _one(_labelled(pods, wp.namespace, GATEWAY_NAME_LABEL, wp.name), what)
        node = placed(found, proxy.node, what)
        key = _key(found, PROXY_CONTAINER, what)
        targets.append(Target(proxy.name, proxy.kind, node, key))
    return targets
