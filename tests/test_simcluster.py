"""Simulated kubelets: payload structure against real captures, counter behaviour, servers."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import trustme

from simcluster.behaviour import BehaviourError, Churn, Ramp, Restarts, Spike, Steady
from simcluster.kubelet_payloads import (
    PayloadOptions,
    cpu_quantity,
    memory_quantity,
    only_cpu_and_memory,
    pod_list,
    summary,
)
from simcluster.kubelet_server import Fault, FleetError, KubeletFleet
from simcluster.model import (
    GIB,
    MIB,
    Cluster,
    ClusterSpec,
    ContainerTemplate,
    Deployment,
    ModelError,
    Node,
    Resources,
    UnknownObjectError,
    VolumeTemplate,
    generate_cluster,
)
from tests.conftest import KUBELET_FIXTURES, REPO_ROOT

EPOCH = 1_780_000_000
INTERVAL = 10


# -- helpers -----------------------------------------------------------------------------------


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "array"
    return "object"


def key_paths(value: Any, prefix: str = "") -> dict[str, set[str]]:
    """Every key path in a JSON document ('pods[].containers[].cpu.time') → JSON types seen.

    Lists collapse to ``[]`` so a path means "in some element"; map keys of free-form objects
    (labels, annotations, resource lists) are part of the path like any other key.
    """
    paths: dict[str, set[str]] = {}

    def walk(node: Any, path: str) -> None:
        paths.setdefault(path, set()).add(json_type(node))
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for child in node:
                walk(child, f"{path}[]")

    walk(value, prefix)
    return paths


def allowed_types(real: set[str]) -> set[str]:
    """A field the real kubelet ever prints with a fraction is a Go float64, and Go prints a
    whole float64 without a fraction (``0``, ``10``): for those, integers are fine too."""
    return real | {"int"} if "float" in real else real


def load_fixture(name: str) -> Any:
    return json.loads((KUBELET_FIXTURES / name).read_text(encoding="utf-8"))


def single_node(
    deployments: list[Deployment], *, os: str = "linux", interval: int = INTERVAL
) -> Cluster:
    node = Node(
        name="node-a",
        cpu_cores=8,
        memory_bytes=32 * GIB,
        internal_ip="10.0.0.1",
        os="windows" if os == "windows" else "linux",
        sample_offset=3 % interval,
    )
    return Cluster([node], deployments, epoch=EPOCH, seed=7, housekeeping_interval=interval)


def container(name: str = "app", **kwargs: Any) -> ContainerTemplate:
    fields: dict[str, Any] = {
        "image": f"example/{name}:1",
        "cpu_cores": 0.25,
        "memory_bytes": 100 * MIB,
        "resources": Resources(250, 500, 128 * MIB, 256 * MIB),
    }
    fields.update(kwargs)
    return ContainerTemplate(name=name, **fields)


def deployment(name: str = "app", *containers: ContainerTemplate, **kwargs: Any) -> Deployment:
    return Deployment(
        namespace="default",
        name=name,
        replicas=kwargs.pop("replicas", 1),
        containers=containers or (container(),),
        labels={"app": name},
        **kwargs,
    )


def only_pod(payload: dict[str, Any]) -> dict[str, Any]:
    assert len(payload["pods"]) == 1
    pod: dict[str, Any] = payload["pods"][0]
    return pod


@pytest.fixture(scope="module")
def generated() -> Cluster:
    return generate_cluster(ClusterSpec(nodes=2, pods_per_node=25, seed=3), epoch=EPOCH)


# -- structure against real payloads --------------------------------------------------------

# Keys we add that the 1.35 capture happens not to show (its volumes have no PVC).
SUMMARY_EXTRAS = {"pods[].volume[].pvcRef", "pods[].volume[].pvcRef.name",
                  "pods[].volume[].pvcRef.namespace"}  # fmt: skip


def test_summary_has_every_key_path_of_the_real_capture_with_the_same_type(
    generated: Cluster,
) -> None:
    real = key_paths(load_fixture("summary-minikube-1.35.json"))
    ours: dict[str, set[str]] = {}
    for node in generated.nodes:
        for path, types in key_paths(summary(generated, node.name, EPOCH + 600)).items():
            ours.setdefault(path, set()).update(types)
    missing = sorted(path for path in real if path not in ours)
    assert not missing, f"key paths of the real kubelet missing from ours: {missing}"
    wrong_type = sorted(
        f"{path}: ours {sorted(ours[path])}, real {sorted(real[path])}"
        for path in real
        if not ours[path] <= allowed_types(real[path])
    )
    assert not wrong_type, f"JSON types differ: {wrong_type}"
    invented = sorted(set(ours) - set(real) - SUMMARY_EXTRAS)
    assert not invented, f"key paths a real kubelet does not have: {invented}"
    assert set(ours) >= SUMMARY_EXTRAS, "a generated cluster should include a PVC volume"


def test_pod_list_key_paths_exist_in_the_real_capture_with_the_same_type(
    generated: Cluster,
) -> None:
    real = key_paths(load_fixture("pods-minikube-1.35.json"))
    ours = key_paths(pod_list(generated, generated.nodes[0].name, EPOCH + 600))
    # Free-form maps: our label keys and the projected volume differ in content, not in shape.
    free_form = ("items[].metadata.labels.",)
    problems = sorted(
        f"{path}: {sorted(types)}"
        for path, types in ours.items()
        if not path.startswith(free_form) and not types <= allowed_types(real.get(path, set()))
    )
    assert not problems, f"paths/types a real /pods does not have: {problems}"


@pytest.mark.parametrize(
    "path",
    [
        "items[].metadata.name",
        "items[].metadata.namespace",
        "items[].metadata.uid",
        "items[].metadata.labels.app",
        "items[].spec.nodeName",
        "items[].spec.containers[].name",
        "items[].spec.containers[].resources.requests.cpu",
        "items[].spec.containers[].resources.requests.memory",
        "items[].spec.containers[].resources.limits.cpu",
        "items[].spec.containers[].resources.limits.memory",
        "items[].status.phase",
        "items[].status.containerStatuses[].name",
        "items[].status.containerStatuses[].restartCount",
        "items[].status.containerStatuses[].lastState.terminated.finishedAt",
    ],
    ids=lambda path: path.replace("items[].", ""),
)
def test_pod_list_has_the_fields_the_exporter_reads(generated: Cluster, path: str) -> None:
    ours = key_paths(pod_list(generated, generated.nodes[0].name, EPOCH + 3600))
    assert path in ours


def test_pod_list_resources_match_the_model() -> None:
    cluster = single_node([deployment("app", container(resources=Resources(1500, 2000, 3 * GIB,
                                                                              None)))])  # fmt: skip
    item = pod_list(cluster, "node-a", EPOCH)["items"][0]
    assert item["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "2"},
        "requests": {"cpu": "1500m", "memory": "3Gi"},
    }
    assert item["status"]["qosClass"] == "Burstable"
    assert item["status"]["phase"] == "Running"
    assert item["spec"]["nodeName"] == "node-a"
    assert item["metadata"]["labels"]["app"] == "app"


@pytest.mark.parametrize(
    ("millicores", "text"),
    [(250, "250m"), (1000, "1"), (2500, "2500m"), (0, "0")],
    ids=["milli", "whole", "fraction", "zero"],
)
def test_cpu_quantity(millicores: int, text: str) -> None:
    assert cpu_quantity(millicores) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(128 * MIB, "128Mi"), (2 * GIB, "2Gi"), (1536 * 1024, "1536Ki"), (1_000_000, "1000000")],
    ids=["mebi", "gibi", "kibi", "plain"],
)
def test_memory_quantity(size: int, text: str) -> None:
    assert memory_quantity(size) == text


def test_times_are_rfc3339_whole_seconds_and_integers_stay_integers(generated: Cluster) -> None:
    payload = summary(generated, generated.nodes[0].name, EPOCH + 61.7)
    paths = key_paths(payload)
    for path, types in paths.items():
        leaf = path.rsplit(".", 1)[-1]
        if leaf in {"time", "startTime"}:
            assert types == {"str"}, path
        if leaf.endswith(("Bytes", "NanoSeconds", "NanoCores", "Faults")) or leaf in {
            "inodes", "inodesFree", "inodesUsed", "total", "maxpid", "curproc", "process_count",
        }:  # fmt: skip
            assert types == {"int"}, path
    stamp = payload["node"]["cpu"]["time"]
    assert time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")


def test_windows_node_has_windows_shaped_stats() -> None:
    cluster = single_node([deployment()], os="windows")
    payload = summary(cluster, "node-a", EPOCH + 100)
    paths = key_paths(payload)
    assert not [p for p in paths if p.endswith(("usageNanoCores", ".psi", ".swap", ".io"))]
    assert not [p for p in paths if ".inodes" in p]
    pod = only_pod(payload)
    assert pod["network"]["name"] == ""
    assert "rxErrors" not in pod["network"]
    assert pod["containers"][0]["memory"]["rssBytes"] == 0
    assert pod["containers"][0]["memory"]["pageFaults"] == 0


@pytest.mark.parametrize(
    ("mode", "has_cpu", "has_rate"),
    [("full", True, True), ("no_rate", True, False), ("absent", False, False)],
    ids=["full", "no_rate", "absent"],
)
def test_fresh_container_cpu_knob(mode: str, has_cpu: bool, has_rate: bool) -> None:
    churn = Churn(every=600.0)  # a new pod at EPOCH + 600
    cluster = single_node([deployment("fresh", churn=churn)])
    options = PayloadOptions(fresh_container_cpu=mode)  # type: ignore[arg-type]
    sample = cluster.sample_time("node-a", EPOCH + 605)
    assert EPOCH + 600 <= sample < EPOCH + 610, "the test needs a sample within 10 s of birth"
    pod = only_pod(summary(cluster, "node-a", EPOCH + 605, options))
    for block in (pod, pod["containers"][0]):
        assert ("cpu" in block) is has_cpu
        assert ("usageNanoCores" in block.get("cpu", {})) is has_rate
    older = only_pod(summary(cluster, "node-a", EPOCH + 630, options))
    assert "usageNanoCores" in older["containers"][0]["cpu"], "only fresh containers lose CPU"


def test_only_cpu_and_memory_keeps_cpu_and_memory(generated: Cluster) -> None:
    reduced = only_cpu_and_memory(summary(generated, generated.nodes[0].name, EPOCH))
    assert set(reduced["node"]) == {"nodeName", "startTime", "cpu", "memory", "systemContainers"}
    assert {key for pod in reduced["pods"] for key in pod} == {
        "podRef", "startTime", "cpu", "memory", "containers",
    }  # fmt: skip


# -- behaviour over time ---------------------------------------------------------------------


PROFILES = {
    "steady": Steady(wobble=0.1, period=120.0, phase=1.0),
    "ramp": Ramp(start=30.0, duration=200.0, peak=3.0),
    "spike": Spike(period=90.0, duration=20.0, height=4.0, phase=15.0),
}


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES.keys())
def test_profile_integral_matches_numeric_integration(profile: Any) -> None:
    t0, t1, steps = -50.0, 400.0, 45_000
    width = (t1 - t0) / steps
    numeric = sum(profile.level(t0 + (i + 0.5) * width) for i in range(steps)) * width
    assert profile.integral(t0, t1) == pytest.approx(numeric, rel=1e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Steady(wobble=1.5),
        lambda: Ramp(start=0, duration=0, peak=2),
        lambda: Spike(period=10, duration=20, height=2),
        lambda: Restarts(every=100, phase=0),
        lambda: Churn(every=0),
    ],
    ids=["wobble", "ramp-duration", "spike-duration", "restart-phase", "churn-every"],
)
def test_impossible_behaviours_are_rejected(make: Any) -> None:
    with pytest.raises(BehaviourError):
        make()


def counters(payload: dict[str, Any]) -> dict[str, int]:
    """Every cumulative counter of a one-pod payload, by name."""
    pod = only_pod(payload)
    node = payload["node"]
    values = {
        "node.cpu": node["cpu"]["usageCoreNanoSeconds"],
        "node.rx": node["network"]["rxBytes"],
        "node.tx": node["network"]["txBytes"],
        "node.pageFaults": node["memory"]["pageFaults"],
        "pod.cpu": pod["cpu"]["usageCoreNanoSeconds"],
        "pod.rx": pod["network"]["rxBytes"],
        "pod.tx": pod["network"]["txBytes"],
        "pod.psi": pod["cpu"]["psi"]["some"]["total"],
    }
    for c in pod["containers"]:
        values[f"{c['name']}.cpu"] = c["cpu"]["usageCoreNanoSeconds"]
        values[f"{c['name']}.pageFaults"] = c["memory"]["pageFaults"]
    for system in node["systemContainers"]:
        values[f"system.{system['name']}.cpu"] = system["cpu"]["usageCoreNanoSeconds"]
    return values


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES.keys())
def test_counters_grow_and_rates_match_them_without_restarts(profile: Any) -> None:
    cluster = single_node([deployment("app", container("main", profile=profile),
                                      container("side", cpu_cores=0.05))])  # fmt: skip
    previous = summary(cluster, "node-a", EPOCH)
    for step in range(1, 40):
        current = summary(cluster, "node-a", EPOCH + step * INTERVAL)
        before, after = counters(previous), counters(current)
        shrunk = {k: (before[k], after[k]) for k in before if after[k] < before[k]}
        assert not shrunk, f"step {step}: counters went down: {shrunk}"
        assert current["node"]["cpu"]["time"] > previous["node"]["cpu"]["time"]
        for new, old in zip(only_pod(current)["containers"], only_pod(previous)["containers"],
                            strict=True):  # fmt: skip
            rate = (new["cpu"]["usageCoreNanoSeconds"] - old["cpu"]["usageCoreNanoSeconds"]) / (
                INTERVAL
            )
            assert new["cpu"]["usageNanoCores"] == pytest.approx(rate, abs=2)
        previous = current


def test_restart_resets_container_counters_and_changes_start_time() -> None:
    restarting = container("app", restarts=Restarts(every=300.0, phase=120.0))
    cluster = single_node([deployment("app", restarting, age_seconds=100.0)])
    pod = cluster.pods_on_node("node-a", EPOCH)[0]
    restart_at = pod.created + 120.0
    before_t = restart_at - 5
    after_t = restart_at + INTERVAL + 1
    before = only_pod(summary(cluster, "node-a", before_t))
    after = only_pod(summary(cluster, "node-a", after_t))
    old, new = before["containers"][0], after["containers"][0]
    assert new["cpu"]["usageCoreNanoSeconds"] < old["cpu"]["usageCoreNanoSeconds"]
    assert new["cpu"]["usageCoreNanoSeconds"] <= 0.25 * 2 * INTERVAL * 1e9, "restarts near 0"
    assert new["startTime"] > old["startTime"]
    assert new["memory"]["pageFaults"] < old["memory"]["pageFaults"]
    # The pod cgroup outlives its containers: its counters keep growing.
    assert after["cpu"]["usageCoreNanoSeconds"] > before["cpu"]["usageCoreNanoSeconds"]
    assert after["network"]["rxBytes"] > before["network"]["rxBytes"]
    status_before = pod_list(cluster, "node-a", before_t)["items"][0]["status"]
    status_after = pod_list(cluster, "node-a", after_t)["items"][0]["status"]
    assert status_before["containerStatuses"][0]["restartCount"] == 0
    assert status_before["containerStatuses"][0]["lastState"] == {}
    restarted = status_after["containerStatuses"][0]
    assert restarted["restartCount"] == 1
    assert restarted["state"]["running"]["startedAt"] == new["startTime"]
    assert restarted["lastState"]["terminated"]["finishedAt"] == new["startTime"]


def test_churn_replaces_pods_and_node_counters_stay_monotonic() -> None:
    cluster = single_node([deployment("app", churn=Churn(every=100.0), replicas=2)])
    names_seen = []
    previous_node_cpu = 0
    for step in range(0, 30):
        payload = summary(cluster, "node-a", EPOCH + step * INTERVAL)
        names_seen.append(tuple(sorted(p["podRef"]["name"] for p in payload["pods"])))
        node_cpu = payload["node"]["cpu"]["usageCoreNanoSeconds"]
        assert node_cpu > previous_node_cpu
        previous_node_cpu = node_cpu
        assert len(payload["pods"]) == 2
    assert len(set(names_seen)) >= 5, "pods should be replaced every 100 s"


def test_expected_cpu_of_a_replaced_pod_counts_only_its_lifetime() -> None:
    flat = container("app", profile=Steady(wobble=0.0), cpu_cores=0.5)
    cluster = single_node([deployment("app", flat, churn=Churn(every=100.0))])
    pod = cluster.pods_on_node("node-a", EPOCH)[0]
    assert cluster.pod_replaced(pod) == pod.created + 100
    assert cluster.expected_cpu_cores(pod, pod.created - 100, pod.created + 200) == (
        pytest.approx(0.5 * 100 / 300)
    )
    successor = cluster.pods_on_node("node-a", pod.created + 100)[0]
    assert successor.name != pod.name
    assert successor.created == pod.created + 100


def test_stats_are_quantised_to_the_housekeeping_interval() -> None:
    cluster = single_node([deployment()], interval=15)
    sample = cluster.sample_time("node-a", EPOCH + 1000)
    assert (sample - EPOCH - 3) % 15 == 0
    same = [summary(cluster, "node-a", sample + offset) for offset in (0, 0.1, 7.5, 14.999)]
    assert all(payload == same[0] for payload in same)
    assert summary(cluster, "node-a", sample + 15) != same[0]
    assert pod_list(cluster, "node-a", sample) == pod_list(cluster, "node-a", sample + 14.9)


def test_memory_invariants_and_node_totals(generated: Cluster) -> None:
    now = EPOCH + 900
    for node in generated.nodes:
        payload = summary(generated, node.name, now)
        pods_ws = 0
        pods_cpu = 0
        for pod in payload["pods"]:
            model_pod = generated.pod(pod["podRef"]["namespace"], pod["podRef"]["name"], now)
            for block in [pod, *pod["containers"]]:
                memory = block["memory"]
                assert memory["workingSetBytes"] <= memory["usageBytes"]
                assert memory["rssBytes"] <= memory["workingSetBytes"]
            for c in pod["containers"]:
                limit = generated.container_state(model_pod, c["name"], now).template
                limit_bytes = limit.resources.memory_limit_bytes
                if limit_bytes is None:
                    assert "availableBytes" not in c["memory"]
                else:
                    assert (
                        c["memory"]["availableBytes"]
                        == limit_bytes - c["memory"]["workingSetBytes"]
                    )
            pods_ws += pod["memory"]["workingSetBytes"]
            pods_cpu += pod["cpu"]["usageNanoCores"]
        node_stats = payload["node"]
        assert node_stats["memory"]["workingSetBytes"] > pods_ws
        assert node_stats["memory"]["workingSetBytes"] - pods_ws < 1 * GIB, "only overhead"
        assert node_stats["memory"]["availableBytes"] == (
            node.memory_bytes - node_stats["memory"]["workingSetBytes"]
        )
        assert node_stats["cpu"]["usageNanoCores"] == pytest.approx(pods_cpu + 0.15e9, rel=0.05)
        sample = generated.sample_time(node.name, now)
        assert node_stats["memory"]["workingSetBytes"] == generated.node_memory_working_set(
            node.name, sample
        )


def test_truth_api_agrees_with_served_counters(generated: Cluster) -> None:
    node = generated.nodes[0].name
    t0 = generated.sample_time(node, EPOCH + 300)
    t1 = t0 + 60
    first = {p["podRef"]["name"]: p for p in summary(generated, node, t0)["pods"]}
    second = {p["podRef"]["name"]: p for p in summary(generated, node, t1)["pods"]}
    compared = 0
    for pod in generated.pods_on_node(node, t1):
        if pod.name not in first or pod.created > t0:
            continue
        served_rate = (
            second[pod.name]["cpu"]["usageCoreNanoSeconds"]
            - first[pod.name]["cpu"]["usageCoreNanoSeconds"]
        ) / 60e9
        assert generated.expected_cpu_cores(pod, t0, t1) == pytest.approx(served_rate, abs=1e-6)
        containers_ws = sum(c["memory"]["workingSetBytes"] for c in second[pod.name]["containers"])
        assert generated.memory_working_set(pod, t1) == containers_ws
        compared += 1
    assert compared >= 10


def test_same_seed_same_payloads_and_another_seed_differs() -> None:
    spec = ClusterSpec(nodes=2, pods_per_node=5, seed=11)
    one = generate_cluster(spec, epoch=EPOCH)
    two = generate_cluster(spec, epoch=EPOCH)
    other = generate_cluster(ClusterSpec(nodes=2, pods_per_node=5, seed=12), epoch=EPOCH)
    name = one.nodes[0].name
    assert summary(one, name, EPOCH + 77) == summary(two, name, EPOCH + 77)
    assert pod_list(one, name, EPOCH + 77) == pod_list(two, name, EPOCH + 77)
    assert summary(one, name, EPOCH + 77) != summary(other, name, EPOCH + 77)


def test_generated_full_node_has_the_benchmark_size() -> None:
    cluster = generate_cluster(
        ClusterSpec(nodes=1, pods_per_node=110, containers_per_pod=3), epoch=EPOCH
    )
    payload = summary(cluster, cluster.nodes[0].name, EPOCH)
    assert len(payload["pods"]) == 110
    assert sum(len(p["containers"]) for p in payload["pods"]) == 330


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ClusterSpec(nodes=0), "nodes must be >= 1"),
        (ClusterSpec(namespaces=()), "at least one namespace"),
        (ClusterSpec(housekeeping_interval=0), "housekeeping_interval"),
        (ClusterSpec(churn_fraction=2.0), "churn_fraction"),
    ],
    ids=["nodes", "namespaces", "interval", "fraction"],
)
def test_invalid_specs_say_what_is_wrong(spec: ClusterSpec, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        generate_cluster(spec, epoch=EPOCH)


def test_invalid_cluster_lists_every_problem() -> None:
    bad = Deployment(namespace="x", name="d", replicas=-1, containers=())
    with pytest.raises(ModelError) as caught:
        Cluster([], [bad, bad], epoch=EPOCH)
    assert set(caught.value.problems) == {
        "at least one node is required",
        "deployment x/d: replicas must be >= 0, got -1",
        "deployment x/d: needs at least one container",
        "deployment x/d is defined twice",
    }


def test_unknown_names_raise_lookup_errors(generated: Cluster) -> None:
    with pytest.raises(UnknownObjectError, match="no node named 'nope'"):
        summary(generated, "nope", EPOCH)
    with pytest.raises(UnknownObjectError, match="no pod default/nope"):
        generated.pod("default", "nope", EPOCH)


def test_pvc_volume_reports_its_claim() -> None:
    volume = VolumeTemplate("data", "pvc", 10 * GIB, 100 * MIB, 1000.0, claim_name="app-data")
    cluster = single_node([deployment("app", volumes=(volume,))])
    (block,) = only_pod(summary(cluster, "node-a", EPOCH + 50))["volume"]
    assert block["pvcRef"] == {"name": "app-data", "namespace": "default"}
    assert block["availableBytes"] == block["capacityBytes"] - block["usedBytes"]


# -- servers -----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def small_cluster() -> Cluster:
    return generate_cluster(ClusterSpec(nodes=3, pods_per_node=4, seed=5), epoch=EPOCH)


@pytest.fixture(scope="module")
def tls() -> tuple[trustme.CA, ssl.SSLContext]:
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    return ca, server_context


@pytest.fixture
def no_new_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(threading.enumerate()) - before, "the fleet left threads behind"


def test_http_fleet_serves_exact_payloads_and_caches_per_interval(
    small_cluster: Cluster, no_new_threads: None
) -> None:
    clock = FakeClock(EPOCH + 500.0)
    with KubeletFleet(small_cluster, clock=clock) as fleet, requests.Session() as session:
        name = small_cluster.nodes[1].name
        url = fleet.urls[name]
        assert url.startswith("http://127.0.0.1:")
        first = session.get(f"{url}/stats/summary", timeout=5)
        assert first.status_code == 200
        assert first.headers["Content-Type"] == "application/json"
        assert first.json() == summary(small_cluster, name, clock.now)
        pods = session.get(f"{url}/pods", timeout=5).json()
        assert pods == pod_list(small_cluster, name, clock.now)
        clock.now += 0.5
        again = session.get(f"{url}/stats/summary", timeout=5)
        clock.now += INTERVAL
        later = session.get(f"{url}/stats/summary", timeout=5)
        assert again.content == first.content
        assert later.content != first.content
        reduced = session.get(f"{url}/stats/summary?only_cpu_and_memory=true", timeout=5)
        assert reduced.json() == only_cpu_and_memory(later.json())
        assert session.get(f"{url}/healthz", timeout=5).text == "ok"
        assert session.get(f"{url}/metrics/cadvisor", timeout=5).status_code == 404
        assert fleet.request_count(name, "/stats/summary") == 4


def test_https_fleet_requires_the_token_and_verifies_with_the_ca(
    small_cluster: Cluster, tls: tuple[trustme.CA, ssl.SSLContext], no_new_threads: None
) -> None:
    ca, server_context = tls
    token = "tok-" + "x" * 20
    with (
        KubeletFleet(small_cluster, ssl_context=server_context, token=token) as fleet,
        ca.cert_pem.tempfile() as ca_file,
        requests.Session() as session,
    ):
        url = fleet.urls[small_cluster.nodes[0].name]
        assert url.startswith("https://127.0.0.1:")
        good = session.get(f"{url}/stats/summary", verify=ca_file,
                           headers={"Authorization": f"Bearer {token}"}, timeout=5)  # fmt: skip
        assert good.status_code == 200
        assert good.json()["node"]["nodeName"] == small_cluster.nodes[0].name
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            denied = session.get(f"{url}/pods", verify=ca_file, headers=headers, timeout=5)
            assert denied.status_code == 401
        assert session.get(f"{url}/healthz", verify=ca_file, timeout=5).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"{url}/healthz", verify=True, timeout=5)


def slow_get(url: str) -> requests.Response:
    return requests.get(url, timeout=(2, 5))


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.HANG, requests.exceptions.ReadTimeout),
        (Fault.RESET, requests.exceptions.ConnectionError),
        (Fault.TRUNCATED, requests.exceptions.ChunkedEncodingError),
        (Fault.ERROR, 500),
        (Fault.GARBAGE, ValueError),
        (Fault.SLOW, 200),
    ],
    ids=lambda value: value.value if isinstance(value, Fault) else str(value),
)
def test_fault_modes_misbehave_on_one_node_only(
    small_cluster: Cluster, fault: Fault, expected: Any, no_new_threads: None
) -> None:
    bad, good = small_cluster.nodes[0].name, small_cluster.nodes[1].name
    with KubeletFleet(small_cluster, faults={bad: fault}, slow_seconds=0.6) as fleet:
        started = time.monotonic()
        if isinstance(expected, int):
            response = requests.get(f"{fleet.urls[bad]}/stats/summary", timeout=(2, 0.5 + 0.4))
            assert response.status_code == expected
            if fault is Fault.SLOW:
                assert time.monotonic() - started >= 0.5
                assert response.json()["node"]["nodeName"] == bad
        elif expected is ValueError:
            response = requests.get(f"{fleet.urls[bad]}/stats/summary", timeout=5)
            assert response.status_code == 200
            with pytest.raises(ValueError, match=r"Expecting value|codec can.t decode"):
                json.loads(response.content)
        else:
            with pytest.raises(expected):
                requests.get(f"{fleet.urls[bad]}/stats/summary", timeout=(2, 0.5))
        assert requests.get(f"{fleet.urls[bad]}/healthz", timeout=5).text == "ok"
        healthy = requests.get(f"{fleet.urls[good]}/stats/summary", timeout=5)
        assert healthy.json()["node"]["nodeName"] == good
        fleet.set_fault(bad, Fault.NONE)
        assert requests.get(f"{fleet.urls[bad]}/pods", timeout=5).status_code == 200


def test_two_hundred_listeners_start_and_stop_quickly(no_new_threads: None) -> None:
    cluster = generate_cluster(ClusterSpec(nodes=200, pods_per_node=2), epoch=EPOCH)
    started = time.monotonic()
    threads_before = threading.active_count()
    fleet = KubeletFleet(cluster)
    fleet.start()
    try:
        # One event-loop thread serves every listener.
        assert threading.active_count() == threads_before + 1
        assert len(set(fleet.urls.values())) == 200
        with requests.Session() as session:
            for url in fleet.urls.values():
                assert session.get(f"{url}/healthz", timeout=5).status_code == 200
            hung = next(iter(fleet.urls))
            fleet.set_fault(hung, Fault.HANG)
            with pytest.raises(requests.exceptions.ReadTimeout):
                session.get(f"{fleet.urls[hung]}/pods", timeout=(2, 0.2))
    finally:
        fleet.stop()
    assert time.monotonic() - started < 10
    assert fleet.urls == {}


def test_fleet_rejects_unknown_nodes_and_busy_ports(small_cluster: Cluster) -> None:
    with pytest.raises(FleetError, match="not in the cluster"):
        KubeletFleet(small_cluster, faults={"ghost": Fault.HANG})
    with KubeletFleet(small_cluster) as fleet:
        port = int(fleet.urls[small_cluster.nodes[0].name].rsplit(":", 1)[1])
        clash = KubeletFleet(small_cluster, ports={small_cluster.nodes[0].name: port})
        with pytest.raises(FleetError, match="cannot bind"):
            clash.start()


def test_command_line_prints_urls_and_stops_on_sigint(no_new_threads: None) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simcluster", "--nodes", "2", "--pods-per-node", "3",
         "--fault", "sim-node-2=500"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert sorted(urls) == ["sim-node-1", "sim-node-2"]
        served = requests.get(f"{urls['sim-node-1']}/stats/summary", timeout=5).json()
        assert len(served["pods"]) == 3
        assert requests.get(f"{urls['sim-node-2']}/pods", timeout=5).status_code == 500
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "0"], "nodes must be >= 1"),
        (["--fault", "sim-node-1=explode"], "expected NODE=MODE"),
        (["--tls-cert-file", "/nonexistent"], "go together"),
        (["--kubelet-token-file", "/nonexistent/token"], "--kubelet-token-file"),
    ],
    ids=["nodes", "fault", "tls-pair", "token-file"],
)
def test_command_line_rejects_bad_flags(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simcluster", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
