"""OpenAPI documents: well-formed, every served kind present, and accepted by the real kubectl."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from adapter.discovery_docs import (
    CustomMetricResource,
    UnknownGroupError,
    api_group_list,
    custom_metrics_resource_list,
    external_metrics_resource_list,
    metrics_resource_list,
    negotiate_discovery,
)
from adapter.objects import (
    ContainerUsage,
    NodeUsage,
    PodUsage,
    encode_json,
    node_metrics_list,
    pod_metrics_list,
    status_not_acceptable,
    status_not_found,
)
from adapter.openapi import (
    document_hash,
    openapi_v2,
    openapi_v3_group_version,
    openapi_v3_index,
    openapi_v3_path,
    served_group_versions,
)

ALL_GROUPS = ["metrics.k8s.io", "custom.metrics.k8s.io", "external.metrics.k8s.io"]
SERVED_KINDS = {
    ("metrics.k8s.io", "v1beta1"): {
        "NodeMetrics",
        "NodeMetricsList",
        "PodMetrics",
        "PodMetricsList",
    },
    ("custom.metrics.k8s.io", "v1beta2"): {"MetricValue", "MetricValueList"},
    ("custom.metrics.k8s.io", "v1beta1"): {"MetricValue", "MetricValueList"},
    ("external.metrics.k8s.io", "v1beta1"): {"ExternalMetricValue", "ExternalMetricValueList"},
}


def kinds_in(schemas: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (gvk["group"], gvk["version"], gvk["kind"])
        for schema in schemas.values()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
    }


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [
            ref
            for key, value in node.items()
            for ref in ([value] if key == "$ref" else refs_in(value))
        ]
    if isinstance(node, list):
        return [ref for item in node for ref in refs_in(item)]
    return []


def test_v2_is_json_and_describes_every_served_kind() -> None:
    document = json.loads(encode_json(openapi_v2(ALL_GROUPS)))
    assert document["swagger"] == "2.0"
    expected = {(g, v, k) for (g, v), kinds in SERVED_KINDS.items() for k in kinds}
    assert expected | {("", "v1", "Status")} <= kinds_in(document["definitions"])
    for ref in refs_in(document):
        assert ref.removeprefix("#/definitions/") in document["definitions"], ref
    returned = {
        op["get"]["responses"]["200"]["schema"]["$ref"] for op in document["paths"].values()
    }
    for group, version in SERVED_KINDS:
        assert any(f"/apis/{group}/{version}/" in path for path in document["paths"])
    assert all(ref.endswith("List") for ref in returned if "Metrics" not in ref)


@pytest.mark.parametrize(
    ("group", "version"), list(SERVED_KINDS), ids=[f"{g}/{v}" for g, v in SERVED_KINDS]
)
def test_v3_group_version_is_self_contained(group: str, version: str) -> None:
    document = json.loads(encode_json(openapi_v3_group_version(group, version)))
    schemas = document["components"]["schemas"]
    assert document["openapi"] == "3.0.0"
    assert {(group, version, kind) for kind in SERVED_KINDS[(group, version)]} <= kinds_in(schemas)
    for ref in refs_in(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert all(path.startswith(f"/apis/{group}/{version}/") for path in document["paths"])


def test_v3_index_points_at_each_document_with_its_hash() -> None:
    index = openapi_v3_index(ALL_GROUPS)
    assert set(index["paths"]) == {openapi_v3_path(g, v) for g, v in SERVED_KINDS}
    for group, version in SERVED_KINDS:
        url = index["paths"][openapi_v3_path(group, version)]["serverRelativeURL"]
        expected_hash = document_hash(openapi_v3_group_version(group, version))
        assert url == f"/openapi/v3/apis/{group}/{version}?hash={expected_hash}"


def test_only_served_groups_are_described() -> None:
    document = openapi_v2(["external.metrics.k8s.io"])
    assert all("/external.metrics.k8s.io/" in path for path in document["paths"])
    assert served_group_versions(["custom.metrics.k8s.io"]) == [
        ("custom.metrics.k8s.io", "v1beta2"),
        ("custom.metrics.k8s.io", "v1beta1"),
    ]
    with pytest.raises(UnknownGroupError, match="apps are not served"):
        openapi_v2(["apps"])
    with pytest.raises(UnknownGroupError, match=r"metrics\.k8s\.io/v1 is not"):
        openapi_v3_group_version("metrics.k8s.io", "v1")


# --- the real kubectl against a loopback stand-in that serves these documents --------------------

NOW = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
PODS = [
    PodUsage(
        "default",
        "web-1",
        {"app": "web"},
        datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        15.012,
        [ContainerUsage("app", 0.002459003, 45735936), ContainerUsage("sidecar", 0.25, 10 * 2**20)],
    )
]
NODES = [NodeUsage("node-a", {}, NOW, 20.035, 0.128, 884 * 2**20)]


def route(path: str, accept: str | None, port: int) -> tuple[int, dict[str, Any]]:
    if path == "/api":
        return 200, {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}
            ],
        }
    if path == "/api/v1":
        return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}
    if path == "/apis":
        if negotiate_discovery(accept) == "not_acceptable":
            return 406, status_not_acceptable()
        return 200, api_group_list(ALL_GROUPS)
    documents: dict[str, Any] = {
        "/apis/metrics.k8s.io/v1beta1": metrics_resource_list(),
        "/apis/custom.metrics.k8s.io/v1beta2": custom_metrics_resource_list(
            "v1beta2", [CustomMetricResource("pods", "http_requests", True)]
        ),
        "/apis/custom.metrics.k8s.io/v1beta1": custom_metrics_resource_list(
            "v1beta1", [CustomMetricResource("pods", "http_requests", True)]
        ),
        "/apis/external.metrics.k8s.io/v1beta1": external_metrics_resource_list(["queue"]),
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods": pod_metrics_list(PODS, created=NOW),
        "/apis/metrics.k8s.io/v1beta1/nodes": node_metrics_list(NODES, created=NOW),
        "/openapi/v2": openapi_v2(ALL_GROUPS),
        "/openapi/v3": openapi_v3_index(ALL_GROUPS),
    }
    for group, version in SERVED_KINDS:
        documents[f"/openapi/v3/{openapi_v3_path(group, version)}"] = openapi_v3_group_version(
            group, version
        )
    if path in documents:
        return 200, documents[path]
    return 404, status_not_found(f"{path} is not served by this stand-in")


@pytest.fixture
def stand_in_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert isinstance(self.server, ThreadingHTTPServer)
            code, body = route(
                urlsplit(self.path).path, self.headers.get("Accept"), self.server.server_port
            )
            payload = encode_json(body)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows kubectl's own output on failure."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_kubectl(kubectl: str, server: str, home: Path, *args: str) -> str:
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n", encoding="utf-8")
    result = subprocess.run(
        [
            kubectl,
            f"--kubeconfig={kubeconfig}",
            f"--server={server}",
            f"--cache-dir={home / 'cache'}",
            "--request-timeout=10s",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


@pytest.mark.e2e
def test_kubectl_top_decodes_pod_and_node_metrics(
    kubectl_binary: str, stand_in_server: str, tmp_path: Path
) -> None:
    pods = run_kubectl(
        kubectl_binary, stand_in_server, tmp_path, "top", "pod", "-n", "default", "--containers"
    )
    # kubectl prints MilliValue() (ceil) and Value()/MiB: 2459003n -> 3m, 45735936 B -> 43Mi.
    rows = [line.split() for line in pods.splitlines()[1:]]
    assert rows == [["web-1", "app", "3m", "43Mi"], ["web-1", "sidecar", "250m", "10Mi"]]


@pytest.mark.e2e
def test_kubectl_explain_finds_kinds_in_openapi_v3(
    kubectl_binary: str, stand_in_server: str, tmp_path: Path
) -> None:
    explained = run_kubectl(
        kubectl_binary, stand_in_server, tmp_path, "explain", "pods.metrics.k8s.io"
    )
    assert "KIND:       PodMetrics" in explained
    assert "window" in explained
    assert "containers" in explained
    nested = run_kubectl(
        kubectl_binary, stand_in_server, tmp_path, "explain", "nodes.metrics.k8s.io.usage"
    )
    assert "KIND:       NodeMetrics" in nested
    assert "FIELD: usage" in nested


@pytest.mark.e2e
def test_kubectl_get_raw_reads_custom_metrics_discovery(
    kubectl_binary: str, stand_in_server: str, tmp_path: Path
) -> None:
    raw = run_kubectl(
        kubectl_binary,
        stand_in_server,
        tmp_path,
        "get",
        "--raw",
        "/apis/custom.metrics.k8s.io/v1beta2",
    )
    assert json.loads(raw)["resources"][0]["name"] == "pods/http_requests"
