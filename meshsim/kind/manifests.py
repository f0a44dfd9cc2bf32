"""The Kubernetes objects of one mode, generated from the scenario's topology.

Every pod of the topology becomes a one-replica Deployment pinned to its node's kind
worker (nodeSelector on `kubernetes.io/hostname`), so the placement is exactly the one
the simulator modelled, and each pod gets its own app configuration (its seed stream is
named after it, as on the local testbed). Pods of a workload share the label `app`, which
the workload's Service selects. The load generator is one more pod that sleeps: Locust
is started in it with `kubectl exec` when the mode is up.

Mode labels (DESIGN.md section 5): sidecar namespaces `istio-injection=enabled`; ambient
namespaces `istio.io/dataplane-mode=ambient`; ambient-waypoint adds one waypoint Gateway
per namespace (or service, as `mesh.waypoint_scope` says) and enrolls it with
`istio.io/use-waypoint`, which is what `istioctl waypoint apply -n NS --enroll-namespace`
does; the Gateway is written here so that it can carry `infrastructure.parametersRef`,
whose ConfigMap pins the waypoint's Deployment to the node the topology chose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from meshsim.kind.cluster import Cluster
from meshsim.loadgen import load_config
from meshsim.profile import Profile
from meshsim.scenario import Mode, Scenario, Workload
from meshsim.testbed.dataplane import APP_PORT
from meshsim.topology import CLIENT, Pod, Proxy, Topology

__all__ = [
    "APP_CONTAINER",
    "LOADGEN_CONTAINER",
    "POD_LABEL",
    "RUN_LABEL",
    "Manifest",
    "Waypoint",
    "mode_manifests",
    "namespaces",
    "to_yaml",
    "waypoints",
]

Manifest = dict[str, Any]

POD_LABEL = "meshsim.io/pod"  # the topology's pod name
RUN_LABEL = "meshsim.io/run"
APP_CONTAINER = "app"
LOADGEN_CONTAINER = "loadgen"
LOADGEN_CPU = "500m"
LOADGEN_MEMORY = "256Mi"  # Locust's process and its saved latencies, with room
CONFIG_DIR = "/etc/meshsim"
WORK_DIR = "/work"  # the load generator's writable scratch (an emptyDir)
SOURCE_DIR = "/opt/meshsim"  # where the Dockerfile puts the repository's code
LOCUSTFILE = f"{SOURCE_DIR}/meshsim/testbed/locustfile.py"
LOAD_CONFIG = f"{CONFIG_DIR}/load.json"
LATENCIES = f"{WORK_DIR}/latencies.npy"
STARTED = f"{WORK_DIR}/locust.started"
WAYPOINT_CLASS = "istio-waypoint"
HOSTNAME = "kubernetes.io/hostname"
# A pod is deleted within this long; a namespace teardown between modes stays short.
GRACE_S = 5


@dataclass(frozen=True)
class Waypoint:
    """One waypoint Gateway of ambient-waypoint mode, for one topology proxy."""

    proxy: Proxy
    name: str
    namespace: str
    services: tuple[str, ...]  # the services it fronts


def namespaces(scenario: Scenario) -> list[str]:
    """Every namespace a run creates: the workloads' and the load generator's."""
    names = [w.namespace for w in scenario.workloads] + [scenario.traffic.client.namespace]
    return list(dict.fromkeys(names))


def waypoints(scenario: Scenario, profile: Profile, topology: Topology) -> list[Waypoint]:
    scope = scenario.mesh.waypoint_scope
    out = []
    for proxy in topology.proxies("ambient-waypoint", scenario, profile):
        if proxy.kind != "waypoint":
            continue
        fronted = tuple(
            s for s in topology.services if topology.waypoint_key(s, scope) == proxy.key
        )
        if scope == "namespace":
            out.append(Waypoint(proxy, "waypoint", proxy.key, fronted))
        else:
            name = f"waypoint-{proxy.key}"[:63].rstrip("-")
            out.append(Waypoint(proxy, name, topology.namespaces[proxy.key], fronted))
    return out


def _meta(name: str, namespace: str | None, run_id: str, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {RUN_LABEL: run_id, **labels}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def _service_host(topology: Topology, service: str) -> str:
    return f"{service}.{topology.namespaces[service]}.svc.cluster.local"


class _Builder:
    def __init__(
        self,
        scenario: Scenario,
        profile: Profile,
        topology: Topology,
        cluster: Cluster,
        mode: Mode,
        *,
        seed: int,
        run_id: str,
        image: str,
    ):
        self.scenario, self.topology, self.cluster, self.mode = scenario, topology, cluster, mode
        self.seed, self.run_id, self.image = seed, run_id, image
        self.workloads = {w.name: w for w in scenario.workloads}
        self.proxies = topology.proxies(mode, scenario, profile)
        self.sidecars = {p.key: p for p in self.proxies if p.kind == "sidecar"}
        self.waypoints = (
            waypoints(scenario, profile, topology) if mode == "ambient-waypoint" else []
        )

    def namespace(self, name: str) -> Manifest:
        labels: dict[str, str] = {}
        if self.mode == "sidecar":
            labels["istio-injection"] = "enabled"
        if self.mode in ("ambient", "ambient-waypoint"):
            labels["istio.io/dataplane-mode"] = "ambient"
        if self.scenario.mesh.waypoint_scope == "namespace":
            for wp in self.waypoints:
                if wp.namespace == name:
                    labels["istio.io/use-waypoint"] = wp.name
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta(name, None, self.run_id, **labels),
        }

    def service_accounts(self) -> list[Manifest]:
        accounts = {(w.namespace, w.service_account or w.name) for w in self.scenario.workloads}
        client = self.scenario.traffic.client
        accounts.add((client.namespace, client.service_account))
        return [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, ns, self.run_id)}
            for ns, sa in sorted(accounts)
        ]

    def app_config(self, pod: Pod, workload: Workload) -> dict[str, Any]:
        """The testbed app's configuration (meshsim/testbed/app.py); callees are Services,
        so that kube-proxy or the mesh picks the replica, as in a real cluster."""
        return {
            "pod": pod.name,
            "seed": self.seed,
            "port": APP_PORT,
            "idle_timeout_s": max(1, int(self.scenario.mesh.pool.idle_timeout_s)),
            "workload": workload.model_dump(mode="json"),
            "callees": {c.to: [_service_host(self.topology, c.to)] for c in workload.calls},
        }

    def config_maps(self) -> list[Manifest]:
        by_ns: dict[str, dict[str, str]] = {}
        for pod in self.topology.pods:
            if pod.workload == CLIENT:
                continue
            config = self.app_config(pod, self.workloads[pod.workload])
            by_ns.setdefault(pod.namespace, {})[f"{pod.name}.json"] = _json(config)
        traffic = self.scenario.traffic
        entry = f"http://{_service_host(self.topology, traffic.entry)}:{APP_PORT}/"
        load = load_config(
            self.scenario, seed=self.seed, targets=[entry], out=LATENCIES, started_file=STARTED
        )
        by_ns.setdefault(traffic.client.namespace, {})["load.json"] = _json(load)
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta("meshsim-config", ns, self.run_id),
                "data": data,
            }
            for ns, data in by_ns.items()
        ]

    def service(self, workload: Workload) -> Manifest:
        labels = {}
        if self.scenario.mesh.waypoint_scope == "service":
            for wp in self.waypoints:
                if workload.name in wp.services:
                    labels["istio.io/use-waypoint"] = wp.name
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(workload.name, workload.namespace, self.run_id, **labels),
            "spec": {
                "selector": {"app": workload.name},
                "ports": [
                    {
                        "name": "http",
                        "port": APP_PORT,
                        "targetPort": APP_PORT,
                        "protocol": "TCP",
                        "appProtocol": "http",
                    },
                ],
            },
        }

    def pod_template(
        self, pod: Pod, container: dict[str, Any], volumes: list[dict[str, Any]], account: str
    ) -> dict[str, Any]:
        annotations = {}
        sidecar = self.sidecars.get(pod.name)
        if sidecar is not None:
            # Envoy worker threads as the topology modelled them
            annotations["proxy.istio.io/config"] = json.dumps({"concurrency": sidecar.workers})
        metadata: dict[str, Any] = {"labels": {"app": pod.workload, POD_LABEL: pod.name}}
        if annotations:
            metadata["annotations"] = annotations
        return {
            "metadata": metadata,
            "spec": {
                "serviceAccountName": account,
                "nodeSelector": {HOSTNAME: self.cluster.hostname(pod.node)},
                "terminationGracePeriodSeconds": GRACE_S,
                "containers": [container],
                "volumes": volumes,
            },
        }

    def deployment(self, pod: Pod, template: dict[str, Any]) -> Manifest:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(pod.name, pod.namespace, self.run_id, app=pod.workload),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {POD_LABEL: pod.name}},
                "template": template,
            },
        }

    def app_deployment(self, pod: Pod) -> Manifest:
        workload = self.workloads[pod.workload]
        container = {
            "name": APP_CONTAINER,
            "image": self.image,
            "imagePullPolicy": "Never",
            # the app writes its ready file next to its config: copy it somewhere writable
            "command": [
                "sh",
                "-c",
                f"cp {CONFIG_DIR}/app.json /tmp/app.json && "
                "exec python -m meshsim.testbed.app /tmp/app.json",
            ],
            "ports": [{"name": "http", "containerPort": APP_PORT, "protocol": "TCP"}],
            "readinessProbe": {"tcpSocket": {"port": APP_PORT}, "periodSeconds": 2},
            "resources": {
                "requests": {
                    "cpu": f"{workload.cpu_millicores}m",
                    "memory": f"{max(1, round(workload.memory_mib))}Mi",
                }
            },
            "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        }
        volumes = [
            {
                "name": "config",
                "configMap": {
                    "name": "meshsim-config",
                    "items": [{"key": f"{pod.name}.json", "path": "app.json"}],
                },
            },
        ]
        account = workload.service_account or workload.name
        return self.deployment(pod, self.pod_template(pod, container, volumes, account))

    def loadgen_deployment(self) -> Manifest:
        pod = self.topology.client
        container = {
            "name": LOADGEN_CONTAINER,
            "image": self.image,
            "imagePullPolicy": "Never",
            "command": ["sleep", "infinity"],
            # Not BestEffort beside app pods that request CPU: a starved Locust measures its
            # own queueing. Half a core of weight (Locust runs on one core at most), which a
            # kind node, sharing the host's cores, can always schedule.
            "resources": {"requests": {"cpu": LOADGEN_CPU, "memory": LOADGEN_MEMORY}},
            "volumeMounts": [
                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                {"name": "work", "mountPath": WORK_DIR},
            ],
        }
        volumes = [
            {
                "name": "config",
                "configMap": {
                    "name": "meshsim-config",
                    "items": [{"key": "load.json", "path": "load.json"}],
                },
            },
            {"name": "work", "emptyDir": {}},
        ]
        account = self.scenario.traffic.client.service_account
        return self.deployment(pod, self.pod_template(pod, container, volumes, account))

    def waypoint_objects(self, wp: Waypoint) -> list[Manifest]:
        """The Gateway `istioctl waypoint apply` would write, plus a ConfigMap that Istio
        merges into the waypoint's Deployment: its node and Envoy worker threads."""
        overlay = {
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {
                            "proxy.istio.io/config": json.dumps({"concurrency": wp.proxy.workers})
                        }
                    },
                    "spec": {"nodeSelector": {HOSTNAME: self.cluster.hostname(wp.proxy.node)}},
                }
            }
        }
        params = f"{wp.name}-params"
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(params, wp.namespace, self.run_id),
                "data": {"deployment": yaml.safe_dump(overlay, sort_keys=False)},
            },
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": _meta(
                    wp.name, wp.namespace, self.run_id, **{"istio.io/waypoint-for": "service"}
                ),
                "spec": {
                    "gatewayClassName": WAYPOINT_CLASS,
                    "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
                    "infrastructure": {
                        "parametersRef": {"group": "", "kind": "ConfigMap", "name": params}
                    },
                },
            },
        ]

    def build(self) -> list[Manifest]:
        out = [self.namespace(ns) for ns in namespaces(self.scenario)]
        out += self.service_accounts()
        out += self.config_maps()
        out += [self.service(w) for w in self.scenario.workloads]
        out += [self.app_deployment(p) for p in self.topology.pods if p.workload != CLIENT]
        out.append(self.loadgen_deployment())
        for wp in self.waypoints:
            out += self.waypoint_objects(wp)
        return out


def mode_manifests(
    scenario: Scenario,
    profile: Profile,
    topology: Topology,
    cluster: Cluster,
    mode: Mode,
    *,
    seed: int,
    run_id: str,
    image: str,
) -> list[Manifest]:
    """Namespaces, service accounts, configs, Services, Deployments and waypoints, in the
    order they are applied."""
    builder = _Builder(
        scenario, profile, topology, cluster, mode, seed=seed, run_id=run_id, image=image
    )
    return builder.build()


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (configs inside ConfigMaps) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(manifests: list[Manifest]) -> str:
    return yaml.dump_all(manifests, Dumper=_Dumper, sort_keys=False)
