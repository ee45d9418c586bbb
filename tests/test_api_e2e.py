"""End to end: the real adapter process, a real Prometheus, the real kubectl 1.32.

A REAL Prometheus scrapes a small exposition served here (counters that grow at known rates,
so ``rate()`` gives known values). The stand-in kube-apiserver holds the pods, nodes and
namespaces the adapter watches, answers its TokenReviews and SubjectAccessReviews, and, like
kube-aggregator, forwards ``/apis/metrics.k8s.io/...`` and the custom/external groups to the
adapter over TLS with its front-proxy client certificate and ``X-Remote-*`` headers. The
adapter runs as ``python -m adapter.serve`` with flags, under gunicorn, over HTTPS.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
import yaml

from tests.conftest import REPO_ROOT
from tests.kube_apiserver_standin import KubeApiserverStandin, ProxyTarget, StandinState
from tests.prometheus_server import PrometheusServer, running_prometheus

pytestmark = pytest.mark.e2e

SA_TOKEN = "e2e-adapter-sa-token"
ALICE_TOKEN = "e2e-alice-token-4f1a"
BAD_TOKEN = "e2e-not-a-token"
DEADLINE_SECONDS = 60.0

CPU_RATE = "rate(container_cpu_usage_seconds_total{<<.LabelMatchers>>}[5s])"
RULES = """
rules:
- seriesQuery: '{__name__="http_requests_total",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5s])) by (<<.GroupBy>>)
externalRules:
- seriesQuery: '{__name__="queue_depth",namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
resourceRules:
  cpu:
    containerQuery: sum by (<<.GroupBy>>) (CPU_RATE)
    nodeQuery: sum by (<<.GroupBy>>) (rate(node_cpu_usage_seconds_total{<<.LabelMatchers>>}[5s]))
    resources: &labels
      overrides: {namespace: {resource: namespace}, pod: {resource: pod}, node: {resource: node}}
    containerLabel: container
  memory:
    containerQuery: sum by (<<.GroupBy>>) (container_memory_working_set_bytes{<<.LabelMatchers>>})
    nodeQuery: sum by (<<.GroupBy>>) (node_memory_working_set_bytes{<<.LabelMatchers>>})
    resources: *labels
    containerLabel: container
  window: 5s
""".replace("CPU_RATE", CPU_RATE)

# (metric, labels, rate per second for counters / value for gauges, is_counter)
SERIES: list[tuple[str, str, float, bool]] = [
    (
        "container_cpu_usage_seconds_total",
        'namespace="default",pod="web-1",container="app"',
        0.25,
        True,
    ),
    (
        "container_cpu_usage_seconds_total",
        'namespace="default",pod="web-2",container="app"',
        0.5,
        True,
    ),
    (
        "container_cpu_usage_seconds_total",
        'namespace="default",pod="web-3",container="app"',
        0.1,
        True,
    ),
    (
        "container_memory_working_set_bytes",
        'namespace="default",pod="web-1",container="app"',
        45735936,
        False,
    ),
    (
        "container_memory_working_set_bytes",
        'namespace="default",pod="web-2",container="app"',
        104857600,
        False,
    ),
    ("node_cpu_usage_seconds_total", 'node="node-a"', 1.5, True),
    ("node_memory_working_set_bytes", 'node="node-a"', 2147483648, False),
    ("http_requests_total", 'namespace="default",pod="web-1"', 10.0, True),
    ("http_requests_total", 'namespace="default",pod="web-2"', 4.0, True),
    ("http_requests_total", 'namespace="default",pod="gone-pod"', 99.0, True),
    ("queue_depth", 'namespace="default",queue="jobs"', 42, False),
]


def _exposition(elapsed: float) -> str:
    lines = []
    for metric, labels, value, is_counter in SERIES:
        lines.append(f"{metric}{{{labels}}} {value * elapsed if is_counter else value}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def exposition_server() -> Iterator[str]:
    started = time.time()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = _exposition(time.time() - started + 1000).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": "default",
            "name": name,
            "labels": labels,
            "creationTimestamp": "2024-05-01T12:00:00Z",
        },
        "status": {"phase": "Running"},
    }


def _allow(spec: Any) -> tuple[bool, str]:
    return spec.get("user") in ("alice", "system:kube-aggregator"), ""


@dataclass
class Cluster:
    adapter_url: str
    serving_ca: Path
    front_proxy_cert: Path
    other_cn_cert: Path
    kubeconfig: Path
    directory: Path
    standin: KubeApiserverStandin
    log: Path


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    with exposition_server() as target:
        config = yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "static",
                        "honor_labels": True,
                        "static_configs": [{"targets": [target]}],
                    }
                ],
            }
        )
        with running_prometheus(
            prometheus_binary, tmp_path_factory.mktemp("prometheus"), config
        ) as server:
            _wait_for(
                lambda: _prometheus_has_rates(server.url), "Prometheus scraped two samples", server
            )
            yield server


def _prometheus_has_rates(url: str) -> bool:
    answer = requests.get(
        f"{url}/api/v1/query",
        params={"query": "rate(http_requests_total[5s])"},
        timeout=5,
    ).json()
    return len(answer["data"]["result"]) == 3


def _wait_for(predicate: Any, what: str, server: Any = None) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, KeyError, ValueError):
            if predicate():
                return
        time.sleep(0.2)
    extra = server.log() if server is not None else ""
    pytest.fail(f"not within {DEADLINE_SECONDS}s: {what}\n{extra}")


def _kubeconfig(path: Path, standin: KubeApiserverStandin, token: str) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "standin",
                "cluster": {
                    "server": standin.url,
                    "certificate-authority-data": base64.b64encode(
                        standin.ca.cert_pem.bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "user"}}],
        "current-context": "standin",
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cluster(
    prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster")
    kube_ca = trustme.CA(organization_name="kube-ca")
    front_proxy_ca = trustme.CA(organization_name="front-proxy-ca")
    serving_ca = trustme.CA(organization_name="serving-ca")
    front_proxy_cert = directory / "front-proxy.pem"
    front_proxy_ca.issue_cert(
        "front-proxy-client", common_name="front-proxy-client"
    ).private_key_and_cert_chain_pem.write_to_path(str(front_proxy_cert))
    other_cn_cert = directory / "other-cn.pem"
    front_proxy_ca.issue_cert(
        "someone-else", common_name="someone-else"
    ).private_key_and_cert_chain_pem.write_to_path(str(other_cn_cert))
    front_proxy_ca_file = directory / "front-proxy-ca.pem"
    front_proxy_ca.cert_pem.write_to_path(str(front_proxy_ca_file))
    serving = serving_ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    serving.cert_chain_pems[0].write_to_path(str(cert_file))
    serving.private_key_pem.write_to_path(str(key_file))
    serving_ca_file = directory / "serving-ca.pem"
    serving_ca.cert_pem.write_to_path(str(serving_ca_file))
    rules_file = directory / "rules.yaml"
    rules_file.write_text(RULES, encoding="utf-8")

    port = _free_port()
    state = StandinState(
        service_account_token=SA_TOKEN,
        tokens={ALICE_TOKEN: {"username": "alice", "groups": ["developers"]}},
        access_policy=_allow,
        proxy=ProxyTarget(f"https://127.0.0.1:{port}", serving_ca_file, front_proxy_cert),
    )
    with KubeApiserverStandin(kube_ca, state) as standin:
        standin.put("namespaces", {"metadata": {"name": "default"}})
        standin.put(
            "nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "node-a", "labels": {"zone": "z1"}},
                "status": {
                    "allocatable": {"cpu": "4", "memory": "8Gi"},
                    "capacity": {"cpu": "4", "memory": "8Gi"},
                },
            },
        )
        for name in ("web-1", "web-2", "web-3"):
            standin.put("pods", _pod(name, {"app": "web"}))
        adapter_kubeconfig = standin.write_kubeconfig(directory / "adapter-kubeconfig")
        log = directory / "adapter.log"
        with log.open("wb") as log_stream:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "adapter.serve",
                    f"--config={rules_file}",
                    f"--prometheus-url={prometheus.url}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={port}",
                    f"--tls-cert-file={cert_file}",
                    f"--tls-private-key-file={key_file}",
                    f"--requestheader-client-ca-file={front_proxy_ca_file}",
                    "--requestheader-allowed-names=front-proxy-client",
                    f"--kubeconfig={adapter_kubeconfig}",
                    "--metrics-relist-interval=1s",
                    "--config-reload-interval=1s",
                    "--threads=4",
                ],
                cwd=REPO_ROOT,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            )
        result = Cluster(
            f"https://127.0.0.1:{port}",
            serving_ca_file,
            front_proxy_cert,
            other_cn_cert,
            _kubeconfig(directory / "kubeconfig", standin, ALICE_TOKEN),
            directory,
            standin,
            log,
        )
        try:
            _wait_for(
                lambda: (
                    process.poll() is None
                    and requests.get(
                        f"{result.adapter_url}/readyz", verify=str(serving_ca_file), timeout=2
                    ).text
                    == "ok"
                ),
                "adapter ready",
            )
            yield result
        except BaseException:
            print(log.read_text(errors="replace"))  # shown when the fixture fails
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _kubectl(kubectl_binary: str, cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            kubectl_binary,
            f"--kubeconfig={cluster.kubeconfig}",
            f"--cache-dir={cluster.directory / 'kube-cache'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HOME": str(cluster.directory), "PATH": os.environ.get("PATH", "")},
    )


def test_kubectl_top_pod(kubectl_binary: str, cluster: Cluster) -> None:
    result = _kubectl(kubectl_binary, cluster, "top", "pod", "-n", "default")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.strip().splitlines()]
    assert rows[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    # web-3 has no memory series: left out, not shown as 0.
    assert [row[0] for row in rows[1:]] == ["web-1", "web-2"]
    assert rows[1][2] == "43Mi"
    assert rows[2][2] == "100Mi"
    # rate() at "now" extrapolates from the last scrape, so only the proportions are exact:
    # web-2's counter grows twice as fast as web-1's.
    cpu = {row[0]: int(row[1].removesuffix("m")) for row in rows[1:]}
    assert 0 < cpu["web-1"] <= 260
    assert abs(cpu["web-2"] / cpu["web-1"] - 2.0) < 0.1


def test_kubectl_top_node(kubectl_binary: str, cluster: Cluster) -> None:
    result = _kubectl(kubectl_binary, cluster, "top", "node")
    assert result.returncode == 0, result.stderr
    header, row = (line.split() for line in result.stdout.strip().splitlines())
    assert header[0] == "NAME"
    assert row[0] == "node-a"
    assert 0 < int(row[1].removesuffix("m")) <= 1550
    assert row[3] == "2048Mi"
    assert row[4] == "25%"  # 2 GiB of the node's 8 GiB allocatable


def _raw(kubectl_binary: str, cluster: Cluster, path: str) -> dict[str, Any]:
    result = _kubectl(kubectl_binary, cluster, "get", "--raw", path)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_kubectl_get_raw_custom_metric_pods_star(kubectl_binary: str, cluster: Cluster) -> None:
    path = (
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests_per_second"
        "?labelSelector=app%3Dweb"
    )
    # Discovery in the adapter relists every second; the metric appears after the first pass.
    _wait_for(
        lambda: _kubectl(kubectl_binary, cluster, "get", "--raw", path).returncode == 0,
        "custom metric discovered",
    )
    body = _raw(kubectl_binary, cluster, path)
    assert body["kind"] == "MetricValueList"
    items = {i["describedObject"]["name"]: i for i in body["items"]}
    # gone-pod is in Prometheus but not in the cluster; web-3 has no requests series.
    assert sorted(items) == ["web-1", "web-2"]
    assert items["web-1"]["windowSeconds"] == 5
    values = {name: int(item["value"].removesuffix("m")) for name, item in items.items()}
    assert abs(values["web-1"] / values["web-2"] - 2.5) < 0.1
    assert cluster.standin.state.proxied[-1][1] == "alice"


def test_kubectl_get_raw_external_metric(kubectl_binary: str, cluster: Cluster) -> None:
    path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth"
    _wait_for(
        lambda: _kubectl(kubectl_binary, cluster, "get", "--raw", path).returncode == 0,
        "external metric discovered",
    )
    body = _raw(kubectl_binary, cluster, path)
    assert [(i["metricLabels"], i["value"]) for i in body["items"]] == [({"queue": "jobs"}, "42")]


def _direct(
    cluster: Cluster, path: str, cert: Path | None = None, headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.get(
        cluster.adapter_url + path,
        cert=str(cert) if cert else None,
        headers=headers or {},
        verify=str(cluster.serving_ca),
        timeout=10,
    )


PODS_PATH = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"


@pytest.mark.parametrize(
    ("cert", "headers", "code"),
    [
        pytest.param(None, {}, 401, id="no-credentials"),
        pytest.param(None, {"X-Remote-User": "alice"}, 401, id="remote-user-without-cert"),
        pytest.param("other_cn_cert", {"X-Remote-User": "alice"}, 401, id="cn-not-allowed"),
        pytest.param("front_proxy_cert", {"X-Remote-User": "alice"}, 200, id="front-proxy-allowed"),
        pytest.param("front_proxy_cert", {"X-Remote-User": "bob"}, 403, id="front-proxy-denied"),
        pytest.param(None, {"Authorization": f"Bearer {ALICE_TOKEN}"}, 200, id="bearer-token"),
        pytest.param(None, {"Authorization": f"Bearer {BAD_TOKEN}"}, 401, id="bad-token"),
    ],
)
def test_authn_authz_matrix_on_the_real_server(
    cluster: Cluster, cert: str | None, headers: dict[str, str], code: int
) -> None:
    response = _direct(cluster, PODS_PATH, getattr(cluster, cert) if cert else None, headers)
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"] == "application/json"
    if code == 200:
        assert response.json()["kind"] == "PodMetricsList"
    else:
        assert response.json()["kind"] == "Status"


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_without_credentials(cluster: Cluster, path: str) -> None:
    response = _direct(cluster, path)
    assert (response.status_code, response.text) == (200, "ok")


def test_own_metrics_and_no_token_in_the_log(cluster: Cluster) -> None:
    _direct(cluster, PODS_PATH, headers={"Authorization": f"Bearer {ALICE_TOKEN}"})
    text = _direct(cluster, "/metrics").text
    assert re.search(r'kubemetrics_adapter_requests_total\{api="metrics.k8s.io",code="200"\}', text)
    assert 'kubemetrics_adapter_cache_objects{kind="pods"} 3.0' in text
    assert "kubemetrics_adapter_prometheus_query_duration_seconds_count" in text
    log = cluster.log.read_text(errors="replace")
    assert ALICE_TOKEN not in log
    assert SA_TOKEN not in log


ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
STAR_PODS = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A"


def _own_metric(cluster: Cluster, name: str) -> float | None:
    for line in _direct(cluster, "/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def test_debug_explain_on_the_real_server(cluster: Cluster) -> None:
    target = f"{STAR_PODS}/http_requests_per_second?labelSelector=app%3Dweb"
    assert _direct(cluster, f"/debug/explain?path={target}").status_code == 401
    _wait_for(
        lambda: _direct(cluster, f"{STAR_PODS}/http_requests_per_second", headers=ALICE).ok,
        "custom metric discovered",
    )
    response = requests.get(
        f"{cluster.adapter_url}/debug/explain",
        params={"path": target},
        headers=ALICE,
        verify=str(cluster.serving_ca),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rule"]["location"] == "rules[0]"
    assert body["objects"]["names"] == ["default/web-1", "default/web-2", "default/web-3"]
    assert [v["object"] for v in body["values"]] == ["default/web-1", "default/web-2"]
    assert body["exitCode"] == 0


def test_rules_reload_in_the_running_adapter(cluster: Cluster) -> None:
    """Last in the module: it rewrites the rules file the other tests use, then restores it."""
    rules_file = cluster.directory / "rules.yaml"
    original = rules_file.read_text(encoding="utf-8")
    old_path = f"{STAR_PODS}/http_requests_per_second"
    new_path = f"{STAR_PODS}/http_requests_rate"
    _wait_for(lambda: _direct(cluster, old_path, headers=ALICE).ok, "custom metric discovered")
    assert _own_metric(cluster, "kubemetrics_adapter_rules_generation") == 1
    try:
        rules_file.write_text(original.replace("${1}_per_second", "${1}_rate"), encoding="utf-8")
        _wait_for(lambda: _direct(cluster, new_path, headers=ALICE).ok, "renamed metric served")
        assert _direct(cluster, old_path, headers=ALICE).status_code == 404
        assert _own_metric(cluster, "kubemetrics_adapter_rules_generation") == 2

        rules_file.write_text("rules:\n- seriesQuery: up\n  colour: red\n", encoding="utf-8")
        _wait_for(
            lambda: _own_metric(cluster, "kubemetrics_adapter_rules_last_reload_successful") == 0,
            "broken rules reported",
        )
        assert _direct(cluster, new_path, headers=ALICE).ok  # the last good rules stay
        assert _own_metric(cluster, "kubemetrics_adapter_rules_generation") == 2
        log = cluster.log.read_text(errors="replace")
        assert "rules[0].colour: unknown field" in log
        assert "rules[0].metricsQuery" in log  # every problem, not just the first
    finally:
        rules_file.write_text(original, encoding="utf-8")
        _wait_for(lambda: _direct(cluster, old_path, headers=ALICE).ok, "original rules back")
    assert _own_metric(cluster, "kubemetrics_adapter_rules_last_reload_successful") == 1
