"""The cluster: its name, the kind config built from the scenario's nodes, and the
commands that create it, load the app image into it and install Istio.

One control plane (tainted, so nothing of the scenario runs there) and one worker per
scenario node. kind names workers `NAME-worker`, `NAME-worker2`, `NAME-worker3`, ...,
in the order of the config; pods are pinned to them by `kubernetes.io/hostname`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshsim import __version__
from meshsim.kind.commands import Command
from meshsim.topology import Node

__all__ = [
    "CLUSTER_PREFIX",
    "GATEWAY_API_CRDS",
    "IMAGE",
    "Cluster",
    "cluster_setup",
    "kind_config",
    "worker_hostname",
]

CLUSTER_PREFIX = "meshsim-"
IMAGE = f"meshsim-testbed:{__version__}"
# Waypoints are Gateways of class istio-waypoint. Istio 1.24 documents Gateway API v1.2;
# its experimental channel is the one whose Gateway certainly carries
# spec.infrastructure.parametersRef (which places each waypoint), so that channel is
# installed, server-side as its CRDs are large.
GATEWAY_API_CRDS = (
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.2.1/"
    "experimental-install.yaml"
)
NODE_LABEL = "meshsim.io/node"
ROLLOUT_TIMEOUT = "300s"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def worker_hostname(cluster: str, index: int) -> str:
    """The node name kind gives the index-th worker (0-based) of `cluster`."""
    return f"{cluster}-worker" if index == 0 else f"{cluster}-worker{index + 1}"


def kind_config(cluster: str, nodes: tuple[Node, ...]) -> dict[str, Any]:
    workers: list[dict[str, Any]] = [
        {
            "role": "worker",
            "labels": {NODE_LABEL: node.name, "topology.kubernetes.io/zone": node.zone},
        }
        for node in nodes
    ]
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": cluster,
        "nodes": [{"role": "control-plane"}, *workers],
    }


@dataclass(frozen=True)
class Cluster:
    """A kind cluster this run uses: created by it, or given with --cluster."""

    name: str
    nodes: tuple[Node, ...]
    created: bool  # by this run, so this run deletes it (unless --keep)

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    def hostname(self, node_index: int) -> str:
        return worker_hostname(self.name, node_index)

    def kubectl(self, *args: str, stdin: str | None = None, why: str = "") -> Command:
        return Command(("kubectl", "--context", self.context, *args), stdin, why)

    def istioctl(self, *args: str, why: str = "") -> Command:
        return Command(("istioctl", "--context", self.context, *args), None, why)


def cluster_setup(cluster: Cluster, build_context: Path = REPO_ROOT) -> list[Command]:
    """Build the image, create (or reuse) the cluster, load the image, install Istio."""
    out = [
        Command(
            (
                "docker",
                "build",
                "-t",
                IMAGE,
                "-f",
                str(build_context / "Dockerfile"),
                str(build_context),
            ),
            why="the app and Locust image: same code as the local testbed",
        ),
    ]
    if cluster.created:
        config = yaml.safe_dump(kind_config(cluster.name, cluster.nodes), sort_keys=False)
        out.append(
            Command(
                (
                    "kind",
                    "create",
                    "cluster",
                    "--name",
                    cluster.name,
                    "--config",
                    "-",
                    "--wait",
                    ROLLOUT_TIMEOUT,
                ),
                config,
                f"one control plane and {len(cluster.nodes)} workers, one per scenario node",
            )
        )
    out += [
        cluster.kubectl(
            "get", "nodes", "-o", "name", why="every scenario node has its kind worker"
        ),
        Command(
            ("kind", "load", "docker-image", IMAGE, "--name", cluster.name),
            why="pods use the image with imagePullPolicy: Never",
        ),
        cluster.kubectl(
            "apply", "--server-side", "-f", GATEWAY_API_CRDS, why="Gateway API CRDs (waypoints)"
        ),
        cluster.istioctl(
            "install",
            "--set",
            "profile=ambient",
            "--skip-confirmation",
            why="istiod, istio-cni and ztunnel; the ambient profile also injects sidecars",
        ),
    ]
    for workload in ("deployment/istiod", "daemonset/istio-cni-node", "daemonset/ztunnel"):
        rollout = f"-n istio-system rollout status {workload} --timeout={ROLLOUT_TIMEOUT}"
        out.append(cluster.kubectl(*rollout.split()))
    return out


def cluster_teardown(cluster: Cluster) -> list[Command]:
    return [
        Command(
            ("kind", "delete", "cluster", "--name", cluster.name),
            why="delete the cluster this run created",
        )
    ]


def missing_workers(cluster: Cluster, nodes_output: str) -> list[str]:
    """Scenario nodes whose kind worker is not in `kubectl get nodes -o name` output."""
    present = {line.strip().removeprefix("node/") for line in nodes_output.splitlines()}
    return [
        f"{n.name} (expected worker {cluster.hostname(n.index)})"
        for n in cluster.nodes
        if cluster.hostname(n.index) not in present
    ]
