"""The kind backend's Kubernetes objects: valid for their API versions (checked against the
Kubernetes client's models, unknown keys included), placed as the topology says, and
labelled for each mode as Istio expects."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client import ApiClient

from meshsim.kind.cluster import Cluster, kind_config, worker_hostname
from meshsim.kind.manifests import POD_LABEL, mode_manifests, to_yaml
from meshsim.loader import load_profile, load_scenario
from meshsim.scenario import MODES, Mode, Scenario
from meshsim.topology import CLIENT, build_topology, resolve_nodes
from tests.builders import ISTIO, ROOT, base_scenario, scenario_of

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
}
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
}


def strict(data: Any, type_name: str, path: str) -> None:
    """`data` fits the client model `type_name`, with no key the API does not know."""
    if type_name.startswith("list["):
        assert isinstance(data, list), path
        for i, item in enumerate(data):
            strict(item, type_name[5:-1], f"{path}[{i}]")
    elif type_name.startswith("dict("):
        assert isinstance(data, dict), path
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, value in data.items():
            assert isinstance(key, str), path
            strict(value, inner, f"{path}.{key}")
    elif type_name in PRIMITIVES:
        assert isinstance(data, PRIMITIVES[type_name]), f"{path}: {data!r} is not {type_name}"
        assert type_name == "bool" or not isinstance(data, bool), path
    elif type_name == "object":  # IntOrString and the like
        assert isinstance(data, (str, int)), path
    else:
        model = getattr(kubernetes.client, type_name)
        assert isinstance(data, dict), f"{path}: expected a {type_name} object"
        keys = {v: k for k, v in model.attribute_map.items()}
        unknown = set(data) - set(keys)
        assert not unknown, f"{path}: {type_name} has no field(s) {sorted(unknown)}"
        for key, value in data.items():
            strict(value, model.openapi_types[keys[key]], f"{path}.{key}")


def validate(manifest: dict[str, Any]) -> None:
    model = MODELS[(manifest["apiVersion"], manifest["kind"])]
    name = f"{manifest['kind']}/{manifest['metadata']['name']}"
    strict(manifest, model, name)
    # the client's own checks: required fields present, enums in range
    ApiClient()._ApiClient__deserialize(manifest, model)


def validate_gateway(gateway: dict[str, Any], by_ref: dict[tuple[str, str, str], Any]) -> None:
    """gateway.networking.k8s.io/v1 Gateway: the fields a waypoint uses, and its params."""
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert set(gateway) == {"apiVersion", "kind", "metadata", "spec"}
    spec = gateway["spec"]
    assert set(spec) <= {"gatewayClassName", "listeners", "infrastructure", "addresses"}
    assert spec["gatewayClassName"] == "istio-waypoint"
    assert spec["listeners"] == [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]
    ref = spec["infrastructure"]["parametersRef"]
    assert (
        set(ref) == {"group", "kind", "name"} and ref["group"] == "" and ref["kind"] == "ConfigMap"
    )
    params = by_ref[("ConfigMap", gateway["metadata"]["namespace"], ref["name"])]
    overlay = yaml.safe_load(params["data"]["deployment"])
    strict(overlay["spec"], "V1DeploymentSpec", "waypoint deployment overlay")


def microservices() -> tuple[Scenario, Any]:
    return load_scenario(ROOT / "scenarios" / "microservices.yaml")


def build(scenario: Scenario, mode: Mode) -> tuple[list[dict[str, Any]], Cluster]:
    profile = load_profile(ISTIO)
    cluster = Cluster("meshsim-0badcafe", resolve_nodes(scenario), created=True)
    topology = build_topology(scenario)
    objs = mode_manifests(
        scenario, profile, topology, cluster, mode, seed=7, run_id="0badcafe", image="img:1"
    )
    return objs, cluster


def index(objs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs}


@pytest.mark.parametrize("mode", MODES)
def test_every_object_is_valid_for_its_api_version(mode: Mode) -> None:
    scenario, _ = microservices()
    objs, _ = build(scenario, mode)
    by_ref = index(objs)
    assert len(by_ref) == len(objs), "two objects share a kind, namespace and name"
    for obj in objs:
        if obj["kind"] == "Gateway":
            validate_gateway(obj, by_ref)
        else:
            validate(obj)
    # what the plan pipes into `kubectl apply -f -` reads back as the same objects
    assert list(yaml.safe_load_all(to_yaml(objs))) == objs


def test_the_validator_rejects_a_misspelt_field() -> None:
    scenario, _ = microservices()
    objs, _ = build(scenario, "none")
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["nodeSelecter"] = {"a": "b"}
    with pytest.raises(AssertionError, match=r"has no field\(s\) \['nodeSelecter'\]"):
        validate(deployment)


@pytest.mark.parametrize("mode", MODES)
def test_pods_are_placed_where_the_topology_puts_them(mode: Mode) -> None:
    scenario, _ = microservices()
    objs, cluster = build(scenario, mode)
    topology = build_topology(scenario)
    deployments = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    assert sorted(deployments) == sorted(p.name for p in topology.pods)
    for pod in topology.pods:
        d = deployments[pod.name]
        template = d["spec"]["template"]
        assert d["metadata"]["namespace"] == pod.namespace
        assert d["spec"]["replicas"] == 1
        assert (
            d["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        )
        host = template["spec"]["nodeSelector"]["kubernetes.io/hostname"]
        assert host == worker_hostname("meshsim-0badcafe", pod.node)
        assert host == cluster.hostname(pod.node)
        # every pod requests CPU: none is BestEffort, the load generator included
        (container,) = template["spec"]["containers"]
        assert container["resources"]["requests"]["cpu"].endswith("m"), pod.name
    # the kind config makes worker i the scenario's node i, with its name as a label
    workers = kind_config(cluster.name, cluster.nodes)["nodes"][1:]
    assert [w["labels"]["meshsim.io/node"] for w in workers] == [n.name for n in topology.nodes]
    assert [worker_hostname("c", i) for i in range(3)] == ["c-worker", "c-worker2", "c-worker3"]


def test_services_select_exactly_their_workloads_pods_and_configs_are_mounted() -> None:
    scenario, _ = microservices()
    objs, _ = build(scenario, "sidecar")
    by_ref = index(objs)
    pods = [
        o["spec"]["template"] | {"ns": o["metadata"]["namespace"]}
        for o in objs
        if o["kind"] == "Deployment"
    ]
    for svc in (o for o in objs if o["kind"] == "Service"):
        selector = svc["spec"]["selector"]
        chosen = {
            p["metadata"]["labels"][POD_LABEL]
            for p in pods
            if p["ns"] == svc["metadata"]["namespace"]
            and selector.items() <= p["metadata"]["labels"].items()
        }
        workload = svc["metadata"]["name"]
        replicas = next(w.replicas for w in scenario.workloads if w.name == workload)
        assert chosen == {f"{workload}-{i}" for i in range(replicas)}
    for pod in pods:
        spec = pod["spec"]
        assert ("ServiceAccount", pod["ns"], spec["serviceAccountName"]) in by_ref
        for volume in spec["volumes"]:
            if "configMap" in volume:
                cm = by_ref[("ConfigMap", pod["ns"], volume["configMap"]["name"])]
                for item in volume["configMap"]["items"]:
                    assert item["key"] in cm["data"]


def test_namespace_labels_per_mode() -> None:
    scenario, _ = microservices()

    def labels(mode: Mode) -> dict[str, dict[str, str]]:
        objs, _ = build(scenario, mode)
        return {
            o["metadata"]["name"]: {
                k: v for k, v in o["metadata"]["labels"].items() if k != "meshsim.io/run"
            }
            for o in objs
            if o["kind"] == "Namespace"
        }

    assert labels("none") == {"web": {}, "shop": {}, "orders": {}, "load": {}}
    injected = {"istio-injection": "enabled"}
    assert labels("sidecar") == dict.fromkeys(["web", "shop", "orders", "load"], injected)
    ambient = {"istio.io/dataplane-mode": "ambient"}
    assert labels("ambient") == dict.fromkeys(["web", "shop", "orders", "load"], ambient)
    enrolled = ambient | {"istio.io/use-waypoint": "waypoint"}
    # the load namespace has no Service, so no waypoint: it is only in the ambient mesh
    assert labels("ambient-waypoint") == {
        "web": enrolled,
        "shop": enrolled,
        "orders": enrolled,
        "load": ambient,
    }


def test_waypoints_sit_on_the_topologys_node_and_sidecars_get_its_worker_threads() -> None:
    scenario, _ = microservices()
    profile = load_profile(ISTIO)
    topology = build_topology(scenario)
    objs, cluster = build(scenario, "ambient-waypoint")
    by_ref = index(objs)
    modelled = [
        p for p in topology.proxies("ambient-waypoint", scenario, profile) if p.kind == "waypoint"
    ]
    assert len(modelled) == 3
    for proxy in modelled:
        gateway = by_ref[("Gateway", proxy.key, "waypoint")]
        params = by_ref[
            ("ConfigMap", proxy.key, gateway["spec"]["infrastructure"]["parametersRef"]["name"])
        ]
        template = yaml.safe_load(params["data"]["deployment"])["spec"]["template"]
        assert template["spec"]["nodeSelector"] == {
            "kubernetes.io/hostname": cluster.hostname(proxy.node)
        }
        assert (
            template["metadata"]["annotations"]["proxy.istio.io/config"]
            == f'{{"concurrency": {proxy.workers}}}'
        )
    sidecar_objs, _ = build(scenario, "sidecar")
    for d in (o for o in sidecar_objs if o["kind"] == "Deployment"):
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"proxy.istio.io/config": '{"concurrency": 2}'}


def test_service_scoped_waypoints_enroll_each_service() -> None:
    doc = base_scenario(
        workloads=[
            {"name": "a", "namespace": "x", "calls": [{"to": "b"}]},
            {"name": "b", "namespace": "x"},
        ],
        traffic={"entry": "a", "open_loop": {"rate_rps": 10}, "duration_s": 40, "warmup_s": 5},
        mesh={"modes": ["ambient-waypoint"], "waypoint_scope": "service"},
    )
    objs, _ = build(scenario_of(doc), "ambient-waypoint")
    services = {
        o["metadata"]["name"]: o["metadata"]["labels"] for o in objs if o["kind"] == "Service"
    }
    assert services["a"]["istio.io/use-waypoint"] == "waypoint-a"
    assert services["b"]["istio.io/use-waypoint"] == "waypoint-b"
    gateways = sorted(o["metadata"]["name"] for o in objs if o["kind"] == "Gateway")
    assert gateways == ["waypoint-a", "waypoint-b"]
    namespace = next(o for o in objs if o["kind"] == "Namespace" and o["metadata"]["name"] == "x")
    assert "istio.io/use-waypoint" not in namespace["metadata"]["labels"]


def test_apps_call_services_and_the_load_targets_the_entry_service() -> None:
    import json

    scenario, _ = microservices()
    objs, _ = build(scenario, "none")
    by_ref = index(objs)
    frontend = json.loads(by_ref[("ConfigMap", "web", "meshsim-config")]["data"]["frontend-0.json"])
    assert frontend["pod"] == "frontend-0" and frontend["seed"] == 7 and frontend["port"] == 8080
    assert frontend["callees"]["checkout"] == ["checkout.orders.svc.cluster.local"]
    load = json.loads(by_ref[("ConfigMap", "load", "meshsim-config")]["data"]["load.json"])
    assert load["targets"] == ["http://frontend.web.svc.cluster.local:8080/"]
    assert load["out"] == "/work/latencies.npy" and load["started_file"] == "/work/locust.started"
    client = next(
        o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "loadgen-0"
    )
    assert client["spec"]["template"]["metadata"]["labels"]["app"] == CLIENT


def test_a_workloads_own_sidecar_concurrency_goes_into_its_pods_annotation() -> None:
    scenario, _ = microservices()
    frontend = scenario.workloads[0]
    workloads = [
        frontend.model_copy(update={"sidecar_concurrency": 8}),
        *scenario.workloads[1:],
    ]
    traffic = scenario.traffic.model_copy(
        update={"client": scenario.traffic.client.model_copy(update={"sidecar_concurrency": 4})}
    )
    scenario = scenario.model_copy(update={"workloads": workloads, "traffic": traffic})
    objs, _ = build(scenario, "sidecar")
    concurrency = {
        d["spec"]["template"]["metadata"]["labels"]["app"]: d["spec"]["template"]["metadata"][
            "annotations"
        ]["proxy.istio.io/config"]
        for d in objs
        if d["kind"] == "Deployment"
    }
    assert concurrency[frontend.name] == '{"concurrency": 8}'
    assert concurrency[CLIENT] == '{"concurrency": 4}'
    others = {w.name for w in scenario.workloads[1:]}
    assert {concurrency[name] for name in others} == {'{"concurrency": 2}'}
