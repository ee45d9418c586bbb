"""End to end: simulated kubelets → exporter → real Prometheus → adapter → aggregator → kubectl.

One pipeline runs for the whole module (``e2e_stack``). Tests that compare CPU rates with the
simulated truth wait until Prometheus holds a full 1m rate window; the demo tests run before
them, so that wait overlaps with useful work. Stopping Prometheus comes last.
Values are checked against ``simcluster``'s truth: memory exactly (one of the kubelet's values
at its housekeeping instants of the last 10 s), CPU within ``e2e_cluster.CPU_*_TOLERANCE``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import requests

from demo.stack import REPO_ROOT, Stack
from tests.e2e_cluster import (
    cpu_close,
    e2e_stack,
    kubectl,
    kubectl_json,
    memory_candidates,
    node_memory_candidates,
    pod_memory_candidates,
    pods_now,
    quantity_value,
    table_rows,
    timestamp_seconds,
    wait_for_full_window,
)

pytestmark = pytest.mark.e2e
__all__ = ["e2e_stack"]  # the fixture is used by name

MIB = 1024 * 1024


def stable(truth: Callable[[], object], action: Callable[[], object]) -> object:
    """Run ``action`` while the truth does not change (pods churn); retry a few times."""
    for _ in range(3):
        before = truth()
        result = action()
        if truth() == before:
            return result
    pytest.fail("the simulated cluster kept changing during the request")


# -- kubectl top ----------------------------------------------------------------------------------


def test_kubectl_top_node_shows_every_node_with_its_memory(
    e2e_stack: Stack, kubectl_binary: str
) -> None:
    output = kubectl(e2e_stack, kubectl_binary, "top", "node")
    asked = time.time()
    header = output.splitlines()[0].split()
    assert header == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    rows = {row[0]: row for row in table_rows(output)}
    cluster = e2e_stack.cluster
    assert set(rows) == {node.name for node in cluster.nodes}
    for name, row in rows.items():
        assert row[1].endswith("m"), row
        memory_mib = int(row[3].removesuffix("Mi"))
        expected = {value // MIB for value in node_memory_candidates(cluster, name, asked)}
        assert memory_mib in expected, (name, row, expected)


def test_kubectl_top_pod_all_namespaces_containers_lists_every_container(
    e2e_stack: Stack, kubectl_binary: str
) -> None:
    cluster = e2e_stack.cluster

    def truth() -> set[tuple[str, str, str]]:
        return {
            (pod.namespace, pod.name, container.name)
            for pod in cluster.pods(time.time())
            for container in pod.containers
        }

    output = str(
        stable(
            truth, lambda: kubectl(e2e_stack, kubectl_binary, "top", "pod", "-A", "--containers")
        )
    )
    asked = time.time()
    assert output.splitlines()[0].split() == [
        "NAMESPACE",
        "POD",
        "NAME",
        "CPU(cores)",
        "MEMORY(bytes)",
    ]
    rows = table_rows(output)
    assert {(r[0], r[1], r[2]) for r in rows} == truth()
    assert len(rows) == len(truth()), "a container is listed twice"
    for namespace, pod_name, container, cpu, memory in rows:
        pod = cluster.pod(namespace, pod_name, asked)
        assert cpu.endswith("m")
        expected = {value // MIB for value in memory_candidates(cluster, pod, container, asked)}
        assert int(memory.removesuffix("Mi")) in expected, (pod_name, container, memory, expected)


# -- metrics.k8s.io through the aggregator, exact memory ------------------------------------------


def test_resource_metrics_memory_is_exactly_the_kubelets(
    e2e_stack: Stack, kubectl_binary: str
) -> None:
    cluster = e2e_stack.cluster
    pods = kubectl_json(e2e_stack, kubectl_binary, "/apis/metrics.k8s.io/v1beta1/pods")
    nodes = kubectl_json(e2e_stack, kubectl_binary, "/apis/metrics.k8s.io/v1beta1/nodes")
    assert (pods["kind"], pods["apiVersion"]) == ("PodMetricsList", "metrics.k8s.io/v1beta1")
    assert (nodes["kind"], nodes["apiVersion"]) == ("NodeMetricsList", "metrics.k8s.io/v1beta1")
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in pods["items"]} == (
        pods_now(cluster)
    )
    for item in pods["items"]:
        assert item["window"] == "1m0s"
        at = timestamp_seconds(item["timestamp"])
        pod = cluster.pod(item["metadata"]["namespace"], item["metadata"]["name"], at)
        assert item["metadata"]["labels"] == dict(pod.labels)
        for container in item["containers"]:
            memory = quantity_value(container["usage"]["memory"])
            candidates = memory_candidates(cluster, pod, container["name"], time.time())
            assert memory in candidates, (pod.name, container["name"], memory, candidates)
    assert {i["metadata"]["name"] for i in nodes["items"]} == {n.name for n in cluster.nodes}
    for item in nodes["items"]:
        memory = quantity_value(item["usage"]["memory"])
        assert memory in node_memory_candidates(cluster, item["metadata"]["name"], time.time())


# -- custom.metrics.k8s.io: the HPA's request -----------------------------------------------------

HPA_CASES = [
    ("v1beta2", "default", "app%3Dweb", "container_cpu_usage_seconds_per_second", {"app": "web"}),
    ("v1beta1", "default", "app%3Dweb", "container_memory_working_set_bytes", {"app": "web"}),
    ("v1beta2", "shop", "app%21%3Dapi", "container_memory_working_set_bytes", {"app": "!api"}),
]


def _selects(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    for key, value in wanted.items():
        if value.startswith("!"):
            if labels.get(key) == value[1:]:
                return False
        elif labels.get(key) != value:
            return False
    return True


@pytest.mark.parametrize(
    ("version", "namespace", "selector", "metric", "wanted"),
    HPA_CASES,
    ids=["v1beta2-web-cpu", "v1beta1-web-memory", "v1beta2-shop-not-api-memory"],
)
def test_hpa_pods_request_returns_exactly_the_matching_pods(
    e2e_stack: Stack,
    kubectl_binary: str,
    version: str,
    namespace: str,
    selector: str,
    metric: str,
    wanted: Mapping[str, str],
) -> None:
    cluster = e2e_stack.cluster
    path = (
        f"/apis/custom.metrics.k8s.io/{version}/namespaces/{namespace}/pods/%2A/{metric}"
        f"?labelSelector={selector}"
    )

    def truth() -> set[str]:
        return {
            pod.name
            for pod in cluster.pods(time.time())
            if pod.namespace == namespace and _selects(pod.labels, wanted)
        }

    document = stable(truth, lambda: kubectl_json(e2e_stack, kubectl_binary, path))
    assert isinstance(document, dict)
    assert (document["kind"], document["apiVersion"]) == (
        "MetricValueList",
        f"custom.metrics.k8s.io/{version}",
    )
    names = [item["describedObject"]["name"] for item in document["items"]]
    assert sorted(names) == sorted(truth())
    assert truth(), "the case selects no pod at all; it would prove nothing"
    for item in document["items"]:
        assert item["describedObject"]["namespace"] == namespace
        name = item["metric"]["name"] if version == "v1beta2" else item["metricName"]
        assert name == metric
        if metric == "container_memory_working_set_bytes":
            pod = cluster.pod(namespace, item["describedObject"]["name"], time.time())
            candidates = pod_memory_candidates(cluster, pod, time.time())
            assert quantity_value(item["value"]) in candidates


# -- identity through the aggregator --------------------------------------------------------------


def test_aggregator_forwards_the_caller_and_the_adapter_authorizes_it(
    e2e_stack: Stack, kubectl_binary: str
) -> None:
    api = e2e_stack.api
    # The front never forwards the bearer token, so a 200 means the adapter accepted the
    # front-proxy certificate and took the user from X-Remote-User.
    kubectl(e2e_stack, kubectl_binary, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes")

    denied = e2e_stack.get(
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
        token=api.credentials.viewer_token,
    )
    assert denied.status_code == 403
    body = denied.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Forbidden", 403)
    assert 'User "viewer"' in body["message"]
    reviews = [spec for spec in api.state.access_reviews if spec.get("user") == "viewer"]
    assert reviews, "the adapter did not ask the apiserver about the forwarded user"
    assert reviews[-1]["resourceAttributes"] == {
        "namespace": "default",
        "verb": "list",
        "group": "metrics.k8s.io",
        "version": "v1beta1",
        "resource": "pods",
    }
    assert "system:authenticated" in reviews[-1]["groups"]


# -- make demo ------------------------------------------------------------------------------------


def _processes_with_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_shows_changing_numbers_and_stops_every_process(
    prometheus_binary: str, kubectl_binary: str, stop_signal: signal.Signals
) -> None:
    run_id = str(uuid.uuid4())
    marker = f"KUBEMETRICS_DEMO_TEST={run_id}"
    env = {**os.environ, "KUBEMETRICS_DEMO_TEST": run_id}
    process = subprocess.Popen(
        [sys.executable, "-m", "demo", "--nodes", "2", "--pods-per-node", "3", "--refresh", "2"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        frames: list[str] = []
        while time.monotonic() < deadline and process.poll() is None:
            frames = "".join(lines).split("== kubemetrics demo · update ")[1:]
            tops = [frame.split("$ kubectl top pod")[0].split("\n", 1)[1] for frame in frames]
            if len(tops) >= 2 and len(set(tops)) >= 2:
                break
            time.sleep(0.5)
        output = "".join(lines)
        assert process.poll() is None, f"the demo exited early:\n{output}"
        assert len(frames) >= 2, f"fewer than two live updates in 90 s:\n{output}"
        assert "Prometheus UI:   http://127.0.0.1:" in output
        assert "top pod -A" in output
        assert "kubemetrics-adapter explain" in output
        assert "web-" in frames[-1], "the HPA custom-metric view shows no web pod"
        assert _processes_with_marker(marker), "the marker did not reach the demo's children"
        process.send_signal(stop_signal)
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    reader.join(timeout=5)
    if process.stdout is not None:
        process.stdout.close()
    assert "Nothing is left running." in "".join(lines)
    assert _processes_with_marker(marker) == [], "the demo left processes behind"


# -- CPU against the truth (after a full rate window) ---------------------------------------------


def test_resource_metrics_cpu_matches_the_simulated_rate(
    e2e_stack: Stack, kubectl_binary: str
) -> None:
    wait_for_full_window(e2e_stack)
    cluster = e2e_stack.cluster
    pods = kubectl_json(e2e_stack, kubectl_binary, "/apis/metrics.k8s.io/v1beta1/pods")
    misses = []
    for item in pods["items"]:
        at = timestamp_seconds(item["timestamp"])
        pod = cluster.pod(item["metadata"]["namespace"], item["metadata"]["name"], at)
        measured = sum(quantity_value(c["usage"]["cpu"]) for c in item["containers"])
        expected = cluster.expected_cpu_cores(pod, at - 60.0, at)
        if not cpu_close(measured, expected):
            misses.append((pod.name, measured, expected))
    assert misses == []
    nodes = kubectl_json(e2e_stack, kubectl_binary, "/apis/metrics.k8s.io/v1beta1/nodes")
    for item in nodes["items"]:
        at = timestamp_seconds(item["timestamp"])
        expected = cluster.node_expected_cpu_cores(item["metadata"]["name"], at - 60.0, at)
        assert cpu_close(quantity_value(item["usage"]["cpu"]), expected), (item, expected)


def test_external_node_cpu_metric_matches_the_simulated_rate(
    e2e_stack: Stack, kubectl_binary: str
) -> None:
    wait_for_full_window(e2e_stack)
    cluster = e2e_stack.cluster
    base = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/node_cpu_usage_cores"
    document = kubectl_json(e2e_stack, kubectl_binary, base)
    assert (document["kind"], document["apiVersion"]) == (
        "ExternalMetricValueList",
        "external.metrics.k8s.io/v1beta1",
    )
    by_node = {item["metricLabels"]["node"]: item for item in document["items"]}
    assert set(by_node) == {node.name for node in cluster.nodes}
    for name, item in by_node.items():
        at = timestamp_seconds(item["timestamp"])
        expected = cluster.node_expected_cpu_cores(name, at - 60.0, at)
        assert cpu_close(quantity_value(item["value"]), expected), (item, expected)
    first = cluster.nodes[0].name
    one = kubectl_json(e2e_stack, kubectl_binary, f"{base}?labelSelector=node%3D{first}")
    assert [item["metricLabels"]["node"] for item in one["items"]] == [first]


def test_hpa_cpu_value_matches_the_simulated_rate(e2e_stack: Stack, kubectl_binary: str) -> None:
    wait_for_full_window(e2e_stack)
    cluster = e2e_stack.cluster
    path = (
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/"
        "container_cpu_usage_seconds_per_second?labelSelector=app%3Dweb"
    )
    document = kubectl_json(e2e_stack, kubectl_binary, path)
    assert document["items"]
    for item in document["items"]:
        at = timestamp_seconds(item["timestamp"])
        pod = cluster.pod("default", item["describedObject"]["name"], at)
        expected = cluster.expected_cpu_cores(pod, at - 60.0, at)
        assert cpu_close(quantity_value(item["value"]), expected), (item, expected)


# -- Prometheus down and back (last: it disturbs the pipeline) ------------------------------------


def test_prometheus_down_gives_503_status_then_recovers(e2e_stack: Stack) -> None:
    path = "/apis/metrics.k8s.io/v1beta1/nodes"
    assert e2e_stack.get(path).status_code == 200
    e2e_stack.stop_prometheus()
    began = time.monotonic()
    response = e2e_stack.get(path, timeout=30)
    assert time.monotonic() - began < 15, "the adapter took too long to give up on Prometheus"
    assert response.status_code == 503
    body = response.json()
    assert (body["kind"], body["apiVersion"], body["code"]) == ("Status", "v1", 503)
    assert body["reason"] == "ServiceUnavailable"

    e2e_stack.start_prometheus()
    deadline = time.monotonic() + 60
    last: requests.Response | None = None
    while time.monotonic() < deadline:
        last = e2e_stack.get(path, timeout=10)
        if last.status_code == 200 and len(last.json()["items"]) == len(e2e_stack.cluster.nodes):
            break
        time.sleep(1)
    assert last is not None
    assert last.status_code == 200, last.text
    assert len(last.json()["items"]) == len(e2e_stack.cluster.nodes)
