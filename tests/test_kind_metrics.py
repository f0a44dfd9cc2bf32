"""The kubelet's resource metrics: parsed from its text format and turned into CPU cores
and MiB per modelled component, over the measurement window."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from meshsim.kind.cluster import Cluster
from meshsim.kind.commands import KindError
from meshsim.kind.inventory import find_targets
from meshsim.kind.manifests import waypoints
from meshsim.kind.metrics import (
    ContainerKey,
    Point,
    Target,
    parse_samples,
    resource_points,
    usage_over_window,
)
from meshsim.loader import load_profile
from meshsim.scenario import Mode
from meshsim.topology import build_topology, resolve_nodes
from tests.builders import ISTIO, base_scenario, scenario_of

# What `kubectl get --raw /api/v1/nodes/NODE/proxy/metrics/resource` answers (Kubernetes
# 1.31): HELP/TYPE comments, node, pod and container series, each with its own timestamp.
KUBELET_TEXT = """\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="web",pod="frontend-0-6f7c9d8b5-x2x7q"} 12.5 1732623456789
container_cpu_usage_seconds_total{container="istio-proxy",namespace="web",pod="frontend-0-6f7c9d8b5-x2x7q"} 30.25 1732623456789
container_cpu_usage_seconds_total{container="istio-proxy",namespace="istio-system",pod="ztunnel-k8v2p"} 101 1732623455120
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-7db6d8ff4d-4p2kz"} 3.1e+01 1732623451002
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="web",pod="frontend-0-6f7c9d8b5-x2x7q"} 4.5056e+07 1732623456789
container_memory_working_set_bytes{container="istio-proxy",namespace="web",pod="frontend-0-6f7c9d8b5-x2x7q"} 5.24288e+07 1732623456789
container_memory_working_set_bytes{container="istio-proxy",namespace="istio-system",pod="ztunnel-k8v2p"} 1.572864e+07 1732623455120
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-7db6d8ff4d-4p2kz"} 1.2886016e+07 1732623451002
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="web",pod="frontend-0-6f7c9d8b5-x2x7q"} 1.7326232e+09 1732623200000
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 4521.75 1732623456000
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.9e+09 1732623456000
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="web",pod="frontend-0-6f7c9d8b5-x2x7q"} 42.75 1732623456789
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"""  # noqa: E501

FRONTEND = ContainerKey("web", "frontend-0-6f7c9d8b5-x2x7q", "app")
SIDECAR = ContainerKey("web", "frontend-0-6f7c9d8b5-x2x7q", "istio-proxy")
ZTUNNEL = ContainerKey("istio-system", "ztunnel-k8v2p", "istio-proxy")


def test_parses_every_sample_with_labels_values_and_timestamps() -> None:
    samples = parse_samples(KUBELET_TEXT)
    assert len(samples) == 13
    assert samples[0] == (
        "container_cpu_usage_seconds_total",
        {"container": "app", "namespace": "web", "pod": "frontend-0-6f7c9d8b5-x2x7q"},
        12.5,
        1732623456789,
    )
    assert samples[-1] == ("resource_scrape_error", {}, 0.0, None)
    assert ("node_cpu_usage_seconds_total", {}, 4521.75, 1732623456000) in samples


def test_label_values_may_hold_escaped_quotes_commas_and_braces() -> None:
    text = 'm{a="x\\"y",b="1,2}",c="back\\\\slash",d="new\\nline"} 2 17\n'
    assert parse_samples(text) == [
        ("m", {"a": 'x"y', "b": "1,2}", "c": "back\\slash", "d": "new\nline"}, 2.0, 17)
    ]


def test_a_line_that_is_not_a_sample_is_reported_with_its_number() -> None:
    with pytest.raises(KindError, match=r"line 2 is not a sample: 'garbage here now'"):
        parse_samples("# HELP x y\ngarbage here now\n")


def test_container_points_pair_cpu_and_memory_by_container() -> None:
    points = resource_points(KUBELET_TEXT, scraped_at_s=1732623460.0)
    assert set(points) == {
        FRONTEND,
        SIDECAR,
        ZTUNNEL,
        ContainerKey("kube-system", "coredns-7db6d8ff4d-4p2kz", "coredns"),
    }
    assert points[FRONTEND] == Point(12.5, 1732623456.789, 45056000.0, 1732623456.789)
    assert points[ZTUNNEL] == Point(101.0, 1732623455.12, 15728640.0, 1732623455.12)


def _text(refreshes: dict[ContainerKey, tuple[float, float, float]]) -> str:
    """Kubelet text for containers: key -> (cpu seconds, working set bytes, refresh time s)."""
    lines = []
    for k, (cpu, mem, at) in refreshes.items():
        labels = f'container="{k.container}",namespace="{k.namespace}",pod="{k.pod}"'
        lines.append(f"container_cpu_usage_seconds_total{{{labels}}} {cpu!r} {round(at * 1000)}")
        lines.append(f"container_memory_working_set_bytes{{{labels}}} {mem:e} {round(at * 1000)}")
    return "\n".join(lines) + "\n"


def test_cpu_is_the_counter_slope_between_refreshes_inside_the_window() -> None:
    """Scraped every 2 s, refreshed every 10 s: the rate comes from the refreshes' own
    timestamps inside [t0, t1], whatever the scrape times were."""
    t0, t1 = 1000.0, 1030.0
    target = Target("frontend-0", "app", "node-1", FRONTEND)
    scrapes = []
    for scrape_at in [1000.0 + 2 * i for i in range(16)]:
        refreshed = 995.0 + 10 * math.floor((scrape_at - 995.0) / 10)  # 995, 1005, 1015, 1025
        cpu = (
            0.25 * (refreshed - 900.0) if refreshed < 1010 else 26.25 + 0.75 * (refreshed - 1005.0)
        )
        mem = (40 + (refreshed - 995.0) / 10) * 2**20
        scrapes.append(resource_points(_text({FRONTEND: (cpu, mem, refreshed)}), scrape_at))
    usage = usage_over_window([target], scrapes, t0, t1)
    # refreshes inside the window: 1005 (cpu 26.25), 1015 (33.75), 1025 (41.25)
    assert usage["frontend-0"][0] == pytest.approx((41.25 - 26.25) / 20)
    assert usage["frontend-0"][1] == pytest.approx((41 + 42 + 43) / 3)


def test_too_few_refreshes_inside_the_window_is_an_error_that_says_why() -> None:
    target = Target("frontend-0", "app", "node-1", FRONTEND)
    scrapes = [resource_points(_text({FRONTEND: (1.0, 1e6, 1005.0)}), 1006.0)]
    with pytest.raises(
        KindError,
        match=r"frontend-0: the kubelet refreshed its CPU counter 1 time\(s\) inside the 30 s "
        "window; two are needed",
    ):
        usage_over_window([target], scrapes, 1000.0, 1030.0)


def test_a_counter_that_went_back_means_a_restart() -> None:
    target = Target("frontend-0", "app", "node-1", FRONTEND)
    scrapes = [
        resource_points(_text({FRONTEND: (50.0, 1e6, 1005.0)}), 1006.0),
        resource_points(_text({FRONTEND: (2.0, 1e6, 1015.0)}), 1016.0),
    ]
    with pytest.raises(KindError, match=r"went back \(50 -> 2 s\): it restarted"):
        usage_over_window([target], scrapes, 1000.0, 1030.0)


def test_a_container_missing_from_the_metrics_is_named() -> None:
    target = Target("ztunnel-node-2", "ztunnel", "node-2", ZTUNNEL)
    with pytest.raises(
        KindError,
        match=r"ztunnel-node-2: no resource metrics for container 'istio-proxy' of pod "
        "istio-system/ztunnel-k8v2p on node-2",
    ):
        usage_over_window([target], [{}], 0.0, 30.0)


# ---- attribution: pods in the cluster -> the topology's components ----------------------


def _pod(ns: str, name: str, host: str, containers: list[str], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": ns, "name": name, **meta},
        "spec": {"nodeName": host, "containers": [{"name": c} for c in containers]},
        "status": {"phase": "Running"},
    }


def _cluster_pods(mode: Mode, native_sidecars: bool = False) -> tuple[Any, ...]:
    doc = base_scenario(
        cluster={"nodes": 2, "cores_per_node": 4, "memory_gib_per_node": 8,
                 "network": {"same_node_ms": 0, "cross_node_ms": 0, "cross_zone_ms": 0}},
        workloads=[{"name": "api", "namespace": "shop", "placement": {"nodes": ["node-2"]}}],
        traffic={"entry": "api", "open_loop": {"rate_rps": 10}, "duration_s": 40, "warmup_s": 5,
                 "client": {"namespace": "load", "node": "node-1"}},
    )  # fmt: skip
    scenario = scenario_of(doc)
    profile = load_profile(ISTIO)
    topology = build_topology(scenario)
    cluster = Cluster("meshsim-0badcafe", resolve_nodes(scenario), created=True)
    h1, h2 = cluster.hostname(0), cluster.hostname(1)
    control_plane = "meshsim-0badcafe-control-plane"
    sidecar = mode == "sidecar"
    ambient = (
        {"annotations": {"ambient.istio.io/redirection": "enabled"}}
        if mode.startswith("ambient")
        else {}
    )
    app = _pod(
        "shop",
        "api-0-7d4b9c-abcde",
        h2,
        ["app"],
        labels={"meshsim.io/pod": "api-0", "app": "api"},
        **ambient,
    )
    load = _pod(
        "load",
        "loadgen-0-5c6d7-fghij",
        h1,
        ["loadgen"],
        labels={"meshsim.io/pod": "loadgen-0"},
        **ambient,
    )
    if sidecar:
        for p in (app, load):
            if native_sidecars:
                p["spec"]["initContainers"] = [
                    {"name": "istio-init"},
                    {"name": "istio-proxy", "restartPolicy": "Always"},
                ]
            else:
                p["spec"]["containers"].append({"name": "istio-proxy"})
    ds = {
        "ownerReferences": [{"kind": "DaemonSet", "name": "ztunnel"}],
        "labels": {"app": "ztunnel"},
    }
    pods = [
        app, load,
        _pod("istio-system", "ztunnel-aaaaa", h1, ["istio-proxy"], **ds),
        _pod("istio-system", "ztunnel-bbbbb", h2, ["istio-proxy"], **ds),
        _pod("istio-system", "ztunnel-ccccc", control_plane, ["istio-proxy"], **ds),
        _pod("kube-system", "coredns-1", control_plane, ["coredns"]),
    ]  # fmt: skip
    wps = waypoints(scenario, profile, topology)
    for wp in wps:
        host = cluster.hostname(wp.proxy.node)
        pods.append(_pod(wp.namespace, "waypoint-6b8f-xyz", host, ["istio-proxy"],
                         labels={"gateway.networking.k8s.io/gateway-name": wp.name}))  # fmt: skip
    proxies = topology.proxies(mode, scenario, profile)
    return pods, topology, proxies, wps, cluster


@pytest.mark.parametrize("mode", ["none", "sidecar", "ambient", "ambient-waypoint"])
def test_each_component_is_found_in_its_container(mode: Mode) -> None:
    pods, topology, proxies, wps, cluster = _cluster_pods(mode)
    targets = find_targets(json.dumps({"items": pods}), topology, proxies, wps, cluster, mode)
    got = {(t.name, t.kind, t.node, t.key.namespace, t.key.pod, t.key.container) for t in targets}
    expected = {
        ("loadgen-0", "loadgen", "node-1", "load", "loadgen-0-5c6d7-fghij", "loadgen"),
        ("api-0", "app", "node-2", "shop", "api-0-7d4b9c-abcde", "app"),
    }
    if mode == "sidecar":
        expected |= {
            (
                "loadgen-0.sidecar",
                "sidecar",
                "node-1",
                "load",
                "loadgen-0-5c6d7-fghij",
                "istio-proxy",
            ),
            ("api-0.sidecar", "sidecar", "node-2", "shop", "api-0-7d4b9c-abcde", "istio-proxy"),
        }
    if mode.startswith("ambient"):
        # the control plane's ztunnel is not a scenario node's: not attributed
        expected |= {
            ("ztunnel-node-1", "ztunnel", "node-1", "istio-system", "ztunnel-aaaaa", "istio-proxy"),
            ("ztunnel-node-2", "ztunnel", "node-2", "istio-system", "ztunnel-bbbbb", "istio-proxy"),
        }
    if mode == "ambient-waypoint":
        (wp,) = wps
        expected.add(
            (
                wp.proxy.name,
                "waypoint",
                f"node-{wp.proxy.node + 1}",
                "shop",
                "waypoint-6b8f-xyz",
                "istio-proxy",
            )
        )
    assert got == expected


def test_native_sidecars_count_as_sidecars() -> None:
    pods, topology, proxies, wps, cluster = _cluster_pods("sidecar", native_sidecars=True)
    targets = find_targets(json.dumps({"items": pods}), topology, proxies, wps, cluster, "sidecar")
    assert {t.name for t in targets if t.kind == "sidecar"} == {
        "api-0.sidecar",
        "loadgen-0.sidecar",
    }


def test_a_pod_on_the_wrong_node_stops_the_run() -> None:
    pods, topology, proxies, wps, cluster = _cluster_pods("none")
    pods[0]["spec"]["nodeName"] = cluster.hostname(0)
    with pytest.raises(
        KindError,
        match="pod shop/api-0 runs on meshsim-0badcafe-worker, the scenario puts it on "
        "meshsim-0badcafe-worker2",
    ):
        find_targets(json.dumps({"items": pods}), topology, proxies, wps, cluster, "none")


def test_a_mode_not_in_effect_stops_the_run() -> None:
    pods, topology, proxies, wps, cluster = _cluster_pods("none")
    with pytest.raises(
        KindError,
        match="pod load/loadgen-0 has no istio-proxy sidecar in mode sidecar",
    ):
        find_targets(json.dumps({"items": pods}), topology, proxies, wps, cluster, "sidecar")
    with pytest.raises(
        KindError, match="pod load/loadgen-0 is not redirected to ztunnel in mode ambient"
    ):
        find_targets(json.dumps({"items": pods}), topology, proxies, wps, cluster, "ambient")
