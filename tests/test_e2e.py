"""End to end: simulated kubelets → exporter → real Prometheus → adapter → aggregator → kubectl.

One pipeline runs for the whole module (``e2e_stack``). Tests that compare CPU rates with the
simulated truth wait until Prometheus holds a full 1m rate window; the demo tests run before
them, so that wait overlaps with useful work. Stopping Prometheus comes last.
Values are checked against ``simcluster``'s truth: memory exactly (one of the kubelet's values
at its housekeeping instants of the last 10 s), CPU within ``e2e_cluster.CPU_*_TOLERANCE``.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from demo.stack import REPO_ROOT, Stack
from simcluster.apiserver import (
    TOO_LARGE_WAIT_SECONDS,
    AggregatorProxy,
    FrontProxyIdentity,
    SimApiserver,
    User,
    aggregator_path,
    aggregator_query,
)
from simcluster.behaviour import Churn
from simcluster.model import MIB, Cluster, ContainerTemplate, Deployment, Node
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


def test_explain_from_the_demo_hint_shows_rule_query_and_values(e2e_stack: Stack) -> None:
    path = (
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/"
        "container_memory_working_set_bytes?labelSelector=app%3Dweb"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "adapter.cli",
            "explain",
            "--config",
            str(e2e_stack.options.rules_file),
            "--prometheus-url",
            e2e_stack.prometheus_url,
            "--kubeconfig",
            str(e2e_stack.kubeconfig),
            path,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    web = sorted(p.name for p in e2e_stack.cluster.pods(time.time()) if p.labels["app"] == "web")
    assert "sum by (pod) (kubestats_container_memory_working_set_bytes{" in result.stdout
    for name in web:
        assert f"default/{name}" in result.stdout


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


# -- the stand-in apiserver and aggregator front (no Prometheus needed) ---------------------------

EPOCH = 1_700_000_000


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def churning_cluster() -> Cluster:
    node = Node("node-a", cpu_cores=4, memory_bytes=8 * 1024**3, internal_ip="10.0.0.1")
    template = ContainerTemplate("app", "registry.example/app:1", 0.1, 64 * MIB)
    deployments = [
        Deployment("default", "web", 2, (template,), {"app": "web"}, churn=Churn(every=100.0)),
        Deployment("shop", "api", 1, (template,), {"app": "api", "tier": "back"}),
    ]
    return Cluster([node], deployments, epoch=EPOCH, housekeeping_interval=10)


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[tuple[SimApiserver, FakeClock]]:
    clock = FakeClock(EPOCH + 5.0)
    api = SimApiserver(
        churning_cluster(),
        {"node-a": ("127.0.0.1", 10250)},
        directory=tmp_path,
        clock=clock,
        refresh_seconds=0.05,
    )
    with api:
        yield api, clock


def _get(api: SimApiserver, path: str, token: str | None = None, **kwargs: object) -> Any:
    return requests.get(
        api.url + path,
        headers={"Authorization": f"Bearer {token or api.credentials.admin_token}"},
        verify=str(api.ca_file),
        timeout=10,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/pods?labelSelector=app%3Dweb", 2),
        ("/api/v1/pods?labelSelector=app+in+%28web%2Capi%29", 3),
        ("/api/v1/pods?labelSelector=app%21%3Dweb", 1),
        ("/api/v1/pods?labelSelector=tier", 1),
        ("/api/v1/pods?labelSelector=%21tier", 2),
        ("/api/v1/namespaces/shop/pods", 1),
        ("/api/v1/pods?fieldSelector=metadata.namespace%3Ddefault", 2),
        ("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a%2Cstatus.phase%21%3DRunning", 0),
        ("/api/v1/nodes", 1),
        ("/api/v1/namespaces", 5),
        ("/apis/apps/v1/deployments", 2),
        ("/apis/apps/v1/namespaces/default/replicasets", 1),
    ],
    ids=[
        "label-equals",
        "label-in",
        "label-not-equals",
        "label-exists",
        "label-does-not-exist",
        "namespaced-path",
        "field-namespace",
        "field-node-and-phase",
        "nodes",
        "namespaces",
        "deployments",
        "replicasets",
    ],
)
def test_standin_lists_with_selectors(
    standin: tuple[SimApiserver, FakeClock], path: str, expected: int
) -> None:
    api, _ = standin
    response = _get(api, path)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["kind"].endswith("List")
    assert document["metadata"]["resourceVersion"].isdigit()
    assert len(document["items"]) == expected


@pytest.mark.parametrize(
    ("path", "token", "code", "reason"),
    [
        ("/api/v1/pods?fieldSelector=spec.bogus%3Dx", "admin", 400, "BadRequest"),
        ("/api/v1/pods?labelSelector=a%3D%3D%3Db%2C%2F%2F", "admin", 400, "BadRequest"),
        ("/api/v1/pods", "none", 401, "Unauthorized"),
        ("/api/v1/pods", "viewer", 403, "Forbidden"),
        ("/api/v1/services", "admin", 404, "NotFound"),
        ("/api/v1/namespaces/default/pods/nope", "admin", 404, "NotFound"),
        ("/apis/metrics.k8s.io/v1beta1/nodes", "admin", 503, None),
    ],
    ids=[
        "unknown-field",
        "bad-label-key",
        "no-token",
        "forbidden",
        "unknown-resource",
        "unknown-pod",
        "aggregated-without-backend",
    ],
)
def test_standin_errors_are_status_objects(
    standin: tuple[SimApiserver, FakeClock],
    path: str,
    token: str,
    code: int,
    reason: str | None,
) -> None:
    api, _ = standin
    tokens = {
        "admin": api.credentials.admin_token,
        "viewer": api.credentials.viewer_token,
        "none": "not-a-token",
    }
    response = _get(api, path, token=tokens[token])
    assert response.status_code == code
    if reason is None:  # the aggregator's own plain-text answer
        assert response.text == "service unavailable\n"
    else:
        body = response.json()
        assert (body["kind"], body["code"], body["reason"]) == ("Status", code, reason)


def test_standin_watch_streams_churn_and_resumes_from_a_version(
    standin: tuple[SimApiserver, FakeClock],
) -> None:
    api, clock = standin
    listed = _get(api, "/api/v1/namespaces/default/pods").json()
    version = listed["metadata"]["resourceVersion"]
    before = {item["metadata"]["name"] for item in listed["items"]}
    clock.now += 100.0  # every churning slot gets a new pod
    response = _get(
        api,
        f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={version}&timeoutSeconds=1",
        stream=True,
    )
    events = [json.loads(line) for line in response.iter_lines() if line]
    deleted = {e["object"]["metadata"]["name"] for e in events if e["type"] == "DELETED"}
    added = {e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"}
    assert deleted == before
    assert len(added) == 2
    assert not added & before
    assert all(e["object"]["kind"] == "Pod" for e in events)
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(version)


def test_standin_watch_from_a_compacted_version_is_410_expired(
    standin: tuple[SimApiserver, FakeClock],
) -> None:
    api, clock = standin
    for _ in range(12):  # more changes than the history keeps
        clock.now += 100.0
        api.store.refresh()
    api.store._history = deque(list(api.store._history)[-5:], maxlen=5)  # compact
    api.store._oldest_kept = api.store._history[0].revision
    response = _get(api, "/api/v1/pods?watch=true&resourceVersion=1", stream=True)
    events = [json.loads(line) for line in response.iter_lines() if line]
    assert [e["type"] for e in events] == ["ERROR"]
    assert (events[0]["object"]["code"], events[0]["object"]["reason"]) == (410, "Expired")


def test_standin_watch_from_a_future_version_is_too_large(
    standin: tuple[SimApiserver, FakeClock],
) -> None:
    """A client resuming with a version from before an apiserver restart must be told to relist."""
    api, _ = standin
    future = api.store.revision + 1000
    started = time.monotonic()
    response = _get(api, f"/api/v1/pods?watch=true&resourceVersion={future}", stream=True)
    events = [json.loads(line) for line in response.iter_lines() if line]
    assert time.monotonic() - started < TOO_LARGE_WAIT_SECONDS + 2
    assert [e["type"] for e in events] == ["ERROR"]
    status = events[0]["object"]
    assert (status["code"], status["reason"]) == (504, "Timeout")
    assert status["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


def test_standin_reviews_answer_with_the_policy(standin: tuple[SimApiserver, FakeClock]) -> None:
    api, _ = standin
    headers = {"Authorization": f"Bearer {api.credentials.adapter_token}"}
    token_review = requests.post(
        api.url + "/apis/authentication.k8s.io/v1/tokenreviews",
        json={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": api.credentials.admin_token},
        },
        headers=headers,
        verify=str(api.ca_file),
        timeout=10,
    )
    assert token_review.status_code == 201
    user = token_review.json()["status"]["user"]
    assert user == {
        "username": "kubernetes-admin",
        "groups": ["system:masters", "system:authenticated"],
    }
    for user_name, allowed in (("viewer", False), ("kubernetes-admin", True)):
        groups = ["system:masters"] if allowed else []
        review = requests.post(
            api.url + "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            json={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user_name,
                    "groups": groups,
                    "resourceAttributes": {
                        "verb": "list",
                        "group": "metrics.k8s.io",
                        "resource": "pods",
                    },
                },
            },
            headers=headers,
            verify=str(api.ca_file),
            timeout=10,
        )
        assert review.status_code == 201
        assert review.json()["status"]["allowed"] is allowed
    configmap = _get(
        api,
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication",
        token=api.credentials.adapter_token,
    ).json()
    assert json.loads(configmap["data"]["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert "BEGIN CERTIFICATE" in configmap["data"]["requestheader-client-ca-file"]


@pytest.mark.parametrize(
    ("raw", "forwarded"),
    [
        ("labelSelector=app=web", "labelSelector=app%3Dweb"),
        ("labelSelector=app%3Dweb", "labelSelector=app%3Dweb"),
        ("labelSelector=tier in (a,b)", "labelSelector=tier+in+%28a%2Cb%29"),
        ("metricLabelSelector=x%3Dy&labelSelector=a", "labelSelector=a&metricLabelSelector=x%3Dy"),
        ("b=2&a=1&b=1", "a=1&b=2&b=1"),
        ("labelSelector=", "labelSelector="),
        ("", ""),
    ],
    ids=[
        "equals",
        "pre-encoded",
        "set-based",
        "sorted-keys",
        "repeated-key-order",
        "empty",
        "none",
    ],
)
def test_aggregator_query_is_go_values_encode(raw: str, forwarded: str) -> None:
    assert aggregator_query(raw) == forwarded


@pytest.mark.parametrize(
    ("raw", "forwarded"),
    [
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/d/pods/*/m", "/pods/%2A/m"),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/d/pods/%2A/m", "/pods/%2A/m"),
        ("/apis/custom.metrics.k8s.io/v1beta1/namespaces/d/deployments.apps/w/m", "apps/w/m"),
    ],
    ids=["star", "escaped-star", "qualified-resource"],
)
def test_aggregator_path_escapes_the_star(raw: str, forwarded: str) -> None:
    assert aggregator_path(raw).endswith(forwarded)


def test_aggregator_proxy_sends_front_proxy_cert_and_identity_lines(tmp_path: Path) -> None:
    """A TLS backend that requires the front-proxy certificate records what arrives."""
    server_ca, front_ca = trustme.CA(), trustme.CA()
    front = front_ca.issue_cert("front-proxy-client", common_name="front-proxy-client")
    # One PEM with certificate and key, as tests/kube_apiserver_standin.py keeps it.
    identity = FrontProxyIdentity(tmp_path / "front.pem")
    front.private_key_and_cert_chain_pem.write_to_path(str(identity.cert_file))
    backend_ca_file = tmp_path / "backend-ca.crt"
    server_ca.cert_pem.write_to_path(str(backend_ca_file))
    seen: dict[str, Any] = {}

    class Backend(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            seen["path"] = self.path
            seen["users"] = self.headers.get_all("X-Remote-User")
            seen["groups"] = self.headers.get_all("X-Remote-Group")
            seen["authorization"] = self.headers.get("Authorization")
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            seen["peer"] = dict(item[0] for item in peer["subject"])["commonName"]
            body = b'{"kind":"X"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ca.issue_cert("127.0.0.1").configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=front_ca.cert_pem.bytes().decode())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        proxy = AggregatorProxy(
            identity,
            backend_url=f"https://127.0.0.1:{httpd.server_address[1]}",
            backend_ca_file=backend_ca_file,
        )
        response = proxy.forward(
            "GET",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/d/pods/*/m",
            "labelSelector=app=web",
            {"Authorization": "Bearer secret", "Accept": "application/json"},
            b"",
            User("alice", ("team-a", "ops,oncall")),
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (response.status, response.body) == (200, b'{"kind":"X"}')
    assert seen == {
        "path": "/apis/custom.metrics.k8s.io/v1beta2/namespaces/d/pods/%2A/m"
        "?labelSelector=app%3Dweb",
        "users": ["alice"],
        "groups": ["team-a", "ops,oncall", "system:authenticated"],
        "authorization": None,
        "peer": "front-proxy-client",
    }


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


def test_demo_without_tools_says_how_to_install_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo"],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(tmp_path)},  # neither prometheus nor kubectl on it
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "sudo apt-get install -y prometheus" in result.stdout
    assert "install-kubectl-linux" in result.stdout
    assert "Starting" not in result.stdout, "nothing may start without the tools"


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
