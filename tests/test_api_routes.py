"""The route table: every API path through the real Flask app, providers and caches.

Prometheus is a fake that answers each query from a small data set (the PromQL text is checked
in test_providers.py); everything else is real: request parsing, rules, registry, the object
stores the watches fill, object building and Status errors. Whole answers are goldens in
tests/golden/api/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from flask.testing import FlaskClient

from adapter.api import ApiSettings, create_app
from adapter.config import load_config
from adapter.kube_cache import ClusterObjects, DiscoveryResourceCatalog, KubeObject, ObjectStore
from adapter.ops import AdapterMetrics, Operations, prometheus_reachable
from adapter.prometheus import (
    PrometheusUnavailableError,
    QueryResult,
    Sample,
    VectorResult,
)
from adapter.providers import (
    CustomMetricsProvider,
    ExternalMetricsProvider,
    Providers,
    QueryRunner,
    ResourceMetricsProvider,
)
from adapter.registry import SeriesQueryResult, build_registry
from adapter.rules import compile_config

NOW = 1714564805.0  # 2024-05-01T12:00:05Z

RULES = """
rules:
- seriesQuery: '{__name__=~"^http_requests_total$",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)
- seriesQuery: 'queue_length{namespace!="",deployment!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      deployment: {group: apps, resource: deployment}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
- seriesQuery: 'node_load1{node!=""}'
  resources: {overrides: {node: {resource: node}}}
  metricsQuery: max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: 'queue_depth{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
resourceRules:
  cpu:
    containerQuery: sum by (<<.GroupBy>>) (rate(container_cpu{<<.LabelMatchers>>}[1m]))
    nodeQuery: sum by (<<.GroupBy>>) (rate(node_cpu{<<.LabelMatchers>>}[1m]))
    resources: &labels
      overrides: {namespace: {resource: namespace}, pod: {resource: pod}, node: {resource: node}}
    containerLabel: container
  memory:
    containerQuery: sum by (<<.GroupBy>>) (container_memory{<<.LabelMatchers>>})
    nodeQuery: sum by (<<.GroupBy>>) (node_memory{<<.LabelMatchers>>})
    resources: *labels
    containerLabel: container
  window: 1m
"""

DISCOVERED = {
    '{__name__=~"^http_requests_total$",namespace!="",pod!=""}': {
        "http_requests_total": frozenset({"namespace", "pod"})
    },
    'queue_length{namespace!="",deployment!=""}': {
        "queue_length": frozenset({"namespace", "deployment"})
    },
    'node_load1{node!=""}': {"node_load1": frozenset({"node"})},
    'queue_depth{namespace!=""}': {"queue_depth": frozenset({"namespace"})},
}

PODS = (
    KubeObject("default", "web-1", {"app": "web"}, "Running"),
    KubeObject("default", "web-2", {"app": "web", "tier": "a"}, "Running"),
    KubeObject("default", "web-3", {"app": "web"}, "Running"),  # Prometheus lacks its memory
    KubeObject("default", "web-done", {"app": "web"}, "Succeeded"),
    KubeObject("default", "db-1", {"app": "db"}, "Running"),
    KubeObject("other", "web-1", {"app": "web"}, "Running"),
)
NODES = (
    KubeObject("", "node-a", {"zone": "z1"}),
    KubeObject("", "node-b", {"zone": "z2"}),
    KubeObject("", "node-c", {"zone": "z2"}),  # Prometheus lacks its memory
)
NAMESPACES = (KubeObject("", "default"), KubeObject("", "other"))


def _pod_series(metric: str, values: dict[tuple[str, str, str], float]) -> list[Sample]:
    return [
        Sample({"namespace": ns, "pod": pod, "container": container}, value, 0.0)
        for (ns, pod, container), value in values.items()
    ]


# Every series the fake Prometheus holds, by the metric name its queries mention.
DATA: dict[str, list[Sample]] = {
    "container_cpu": _pod_series(
        "cpu",
        {
            ("default", "web-1", "app"): 0.002459003,
            ("default", "web-1", "sidecar"): 0.25,
            ("default", "web-2", "app"): 2.0,
            ("default", "web-3", "app"): 0.1,
            ("default", "db-1", "db"): 0.5,
            ("other", "web-1", "app"): 0.001,
            ("default", "web-1", "POD"): 9.0,  # the pod cgroup: not a container
        },
    ),
    "container_memory": _pod_series(
        "memory",
        {
            ("default", "web-1", "app"): 45735936,
            ("default", "web-1", "sidecar"): 12345678,
            ("default", "web-2", "app"): 1048576,
            ("default", "db-1", "db"): 2048,
            ("other", "web-1", "app"): 4096,
        },
    ),
    "node_cpu": [
        Sample({"node": "node-a"}, 0.128, 0.0),
        Sample({"node": "node-b"}, 1.5, 0.0),
        Sample({"node": "node-c"}, 1.0, 0.0),
    ],
    "node_memory": [
        Sample({"node": "node-a"}, 926941184, 0.0),
        Sample({"node": "node-b"}, 1073741824, 0.0),
    ],
    "http_requests_total": [
        Sample({"pod": "web-1"}, 16.5, 0.0),
        Sample({"pod": "web-2"}, 2.0, 0.0),
        Sample({"pod": "db-1"}, 0.25, 0.0),
        Sample({"pod": "old-pod-gone"}, 100.0, 0.0),  # deleted pod still in Prometheus
        Sample({"pod": "web-nan"}, float("nan"), 0.0),
        Sample({"namespace": "default"}, 18.75, 0.0),
    ],
    "queue_length": [Sample({"deployment": "web"}, 7.0, 0.0)],
    "node_load1": [Sample({"node": "node-a"}, 0.5, 0.0), Sample({"node": "node-b"}, 3.0, 0.0)],
    "queue_depth": [
        Sample({"queue": "jobs"}, 42.0, 0.0),
        Sample({"queue": "mail"}, 1.5, 0.0),
    ],
}


@dataclass
class FakePrometheus:
    """Answers each query with the data of the metric it names, at the query time.

    Filtering by object name is the providers' job (they keep only requested names), so the
    data deliberately holds objects nobody asked for.
    """

    data: dict[str, list[Sample]]
    down: bool = False
    queries: list[str] = field(default_factory=list)

    def query(self, promql: str, at: float | None = None) -> QueryResult:
        self.queries.append(promql)
        if self.down:
            raise PrometheusUnavailableError(
                "query: cannot reach Prometheus at http://127.0.0.1:9: ConnectionRefusedError"
            )
        if promql == "vector(1)":
            return VectorResult((Sample({}, 1.0, at or 0.0),))
        for metric, samples in self.data.items():
            if f"{metric}{{" in promql:
                return VectorResult(tuple(Sample(s.labels, s.value, at or 0.0) for s in samples))
        return VectorResult(())

    def series(self, *_: object, **__: object) -> list[dict[str, str]]:
        return []

    def label_values(self, *_: object, **__: object) -> list[str]:
        return []


@dataclass
class Adapter:
    client: FlaskClient
    prometheus: FakePrometheus
    metrics: AdapterMetrics


def build_providers(
    prometheus: FakePrometheus, clock: Callable[[], float] = lambda: NOW
) -> Providers:
    catalog = DiscoveryResourceCatalog(None)
    objects = ClusterObjects(
        pods=ObjectStore(PODS),
        nodes=ObjectStore(NODES),
        namespaces=ObjectStore(NAMESPACES),
        catalog=catalog,
    )
    compiled = compile_config(load_config(RULES, "rules.yaml"), catalog)
    registry = build_registry(
        compiled,
        {query: SeriesQueryResult(query, names, NOW) for query, names in DISCOVERED.items()},
    )
    queries = QueryRunner(prometheus, clock)
    return Providers(
        resource=ResourceMetricsProvider(lambda: compiled.resource_rules, objects, queries),
        custom=CustomMetricsProvider(lambda: registry, objects, queries),
        external=ExternalMetricsProvider(lambda: registry, queries),
        registry=lambda: registry,
    )


@pytest.fixture
def adapter() -> Adapter:
    prometheus = FakePrometheus(DATA)
    metrics = AdapterMetrics()
    operations = Operations(metrics, (("prometheus", prometheus_reachable(prometheus)),))
    app = create_app(
        ApiSettings(build_version="test"),
        build_providers(prometheus),
        lambda: NOW,
        operations=operations,
    )
    return Adapter(app.test_client(), prometheus, metrics)


CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
CM1 = "/apis/custom.metrics.k8s.io/v1beta1"
RM = "/apis/metrics.k8s.io/v1beta1"
EM = "/apis/external.metrics.k8s.io/v1beta1"

# (golden name or None, path, status, items: names of the answered objects, or None)
ROUTES = [
    ("discovery/apis", "/apis", 200, None),
    ("discovery/group-custom", "/apis/custom.metrics.k8s.io", 200, None),
    ("discovery/custom-v1beta2", CM2, 200, None),
    ("discovery/custom-v1beta1", CM1, 200, None),
    ("discovery/metrics", RM, 200, None),
    ("discovery/external", EM, 200, None),
    ("metrics/nodes", f"{RM}/nodes", 200, ["node-a", "node-b"]),
    (None, f"{RM}/nodes?labelSelector=zone%3Dz2", 200, ["node-b"]),
    (None, f"{RM}/nodes?fieldSelector=metadata.name%3Dnode-a", 200, ["node-a"]),
    ("metrics/node-a", f"{RM}/nodes/node-a", 200, None),
    ("metrics/node-c-no-memory", f"{RM}/nodes/node-c", 404, None),
    (None, f"{RM}/nodes/node-x", 404, None),
    ("metrics/pods-all", f"{RM}/pods", 200, ["db-1", "web-1", "web-2", "web-1"]),
    ("metrics/pods-default", f"{RM}/namespaces/default/pods", 200, ["db-1", "web-1", "web-2"]),
    (None, f"{RM}/namespaces/default/pods?labelSelector=app%3Dweb", 200, ["web-1", "web-2"]),
    (
        None,
        f"{RM}/namespaces/default/pods?fieldSelector=metadata.name%21%3Dweb-1",
        200,
        ["db-1", "web-2"],
    ),
    ("metrics/pod-web-1", f"{RM}/namespaces/default/pods/web-1", 200, None),
    ("metrics/pod-missing-memory", f"{RM}/namespaces/default/pods/web-3", 404, None),
    (None, f"{RM}/namespaces/default/pods/nope", 404, None),
    (
        "custom-v1beta2/pods-star",
        f"{CM2}/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dweb",
        200,
        ["web-1", "web-2"],
    ),
    (
        "custom-v1beta1/pods-star",
        f"{CM1}/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dweb",
        200,
        ["web-1", "web-2"],
    ),
    (
        None,
        f"{CM2}/namespaces/default/pods/*/http_requests_per_second"
        "?labelSelector=app+in+%28web%2Cdb%29",
        200,
        ["db-1", "web-1", "web-2"],
    ),
    (
        None,
        f"{CM2}/namespaces/default/pods/%2A/http_requests_per_second",
        200,
        ["db-1", "web-1", "web-2"],
    ),
    (None, f"{CM2}/namespaces/empty/pods/%2A/http_requests_per_second", 200, []),
    (
        "custom-v1beta2/pod-metric-selector",
        f"{CM2}/namespaces/default/pods/web-1/http_requests_per_second"
        "?metricLabelSelector=verb%3DGET",
        200,
        ["web-1"],
    ),
    (
        "custom-v1beta1/pod-metric-selector",
        f"{CM1}/namespaces/default/pods/web-1/http_requests_per_second"
        "?metricLabelSelector=verb%3DGET",
        200,
        ["web-1"],
    ),
    (None, f"{CM2}/namespaces/default/pods/web-3/http_requests_per_second", 404, None),
    (
        "custom-v1beta2/deployment",
        f"{CM2}/namespaces/default/deployments.apps/web/queue_length",
        200,
        ["web"],
    ),
    ("custom-v1beta2/node", f"{CM2}/nodes/node-a/node_load1", 200, ["node-a"]),
    (None, f"{CM2}/nodes/%2A/node_load1?labelSelector=zone%3Dz2", 200, ["node-b"]),
    (
        "custom-v1beta2/namespace",
        f"{CM2}/namespaces/default/metrics/http_requests_per_second",
        200,
        ["default"],
    ),
    (
        "custom-v1beta1/namespace",
        f"{CM1}/namespaces/default/metrics/http_requests_per_second",
        200,
        ["default"],
    ),
    (
        "errors/unknown-metric",
        f"{CM2}/namespaces/default/pods/%2A/http_request_per_second",
        404,
        None,
    ),
    (
        "errors/metric-wrong-resource",
        f"{CM2}/namespaces/default/services/web/queue_length",
        404,
        None,
    ),
    ("errors/unknown-resource", f"{CM2}/namespaces/default/widgets/w/queue_length", 404, None),
    (
        "errors/bad-selector",
        f"{CM2}/namespaces/default/pods/%2A/x?labelSelector=app%3D%3D%3D",
        400,
        None,
    ),
    ("errors/bad-path", f"{CM2}/namespaces/default/pods/x", 404, None),
    ("errors/unknown-group", "/apis/example.com/v1/things", 404, None),
    ("external/queue-depth", f"{EM}/namespaces/default/queue_depth", 200, ["jobs", "mail"]),
    (
        None,
        f"{EM}/namespaces/default/queue_depth?labelSelector=queue%3Djobs",
        200,
        ["jobs", "mail"],
    ),
    ("errors/unknown-external", f"{EM}/namespaces/default/queue_dept", 404, None),
]


def _item_names(body: dict[str, object]) -> list[str]:
    names = []
    for item in body.get("items", []):  # type: ignore[attr-defined]
        if "describedObject" in item:
            names.append(item["describedObject"]["name"])
        elif "metricLabels" in item:
            names.append(item["metricLabels"].get("queue", ""))
        else:
            names.append(item["metadata"]["name"])
    return names


@pytest.mark.parametrize(
    ("golden_name", "path", "code", "items"),
    ROUTES,
    ids=[golden or path.split("/apis/")[1][:70] for golden, path, _, _ in ROUTES],
)
def test_route_table(
    adapter: Adapter,
    golden: Callable[[str, str], None],
    golden_name: str | None,
    path: str,
    code: int,
    items: list[str] | None,
) -> None:
    response = adapter.client.get(
        path, headers={"Accept": "application/vnd.kubernetes.protobuf, */*"}
    )
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert "kind" in body
    assert "apiVersion" in body
    if code != 200:
        assert body["kind"] == "Status"
        assert body["code"] == code
    if items is not None:
        assert _item_names(body) == items
    if golden_name is not None:
        golden(f"api/{golden_name}.json", json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def test_star_returns_exactly_the_matching_pods(adapter: Adapter) -> None:
    # Prometheus also holds db-1, a deleted pod and a NaN: none of them may be answered, or the
    # HPA would average over pods that are not its target's.
    response = adapter.client.get(
        f"{CM2}/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dweb"
    )
    items = response.get_json()["items"]
    assert [(i["describedObject"]["name"], i["value"]) for i in items] == [
        ("web-1", "16500m"),
        ("web-2", "2"),
    ]
    assert {i["windowSeconds"] for i in items} == {120}
    assert {i["timestamp"] for i in items} == {"2024-05-01T12:00:05Z"}


def test_pod_missing_memory_is_left_out_not_zeroed(adapter: Adapter) -> None:
    response = adapter.client.get(f"{RM}/namespaces/default/pods?labelSelector=app%3Dweb")
    pods = {p["metadata"]["name"]: p for p in response.get_json()["items"]}
    assert "web-3" not in pods
    assert pods["web-1"]["containers"] == [
        {"name": "app", "usage": {"cpu": "2459003n", "memory": "44664Ki"}},
        {"name": "sidecar", "usage": {"cpu": "250m", "memory": "12345678"}},
    ]
    assert pods["web-1"]["window"] == "1m0s"


@pytest.mark.parametrize(
    "accept",
    [
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    ],
    ids=["v2-only", "v2-and-v2beta1"],
)
def test_aggregated_only_discovery_gets_406(adapter: Adapter, accept: str) -> None:
    response = adapter.client.get("/apis", headers={"Accept": accept})
    assert response.status_code == 406
    assert response.get_json()["reason"] == "NotAcceptable"
    fallback = adapter.client.get(CM2, headers={"Accept": "application/json"})
    assert fallback.status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_writes_get_405_status(adapter: Adapter, method: str) -> None:
    response = adapter.client.open(f"{RM}/nodes", method=method)
    assert response.status_code == 405
    assert response.get_json()["reason"] == "MethodNotAllowed"
    assert "read-only" in response.get_json()["message"]


def test_not_found_message_says_what_to_fix(adapter: Adapter) -> None:
    body = adapter.client.get(
        f"{CM2}/namespaces/default/pods/%2A/http_request_per_second?labelSelector=app%3Dweb"
    ).get_json()
    assert body["message"] == (
        "the server could not find the metric http_request_per_second for pods with selector "
        "app=web; no rule in rules.yaml produces a metric named http_request_per_second; "
        "closest metric names: http_requests_per_second"
    )


def test_prometheus_down_gives_503_quickly_then_recovers(adapter: Adapter) -> None:
    path = f"{CM2}/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dweb"
    adapter.prometheus.down = True
    started = time.monotonic()
    response = adapter.client.get(path)
    assert time.monotonic() - started < 1.0
    assert response.status_code == 503
    body = response.get_json()
    assert body["reason"] == "ServiceUnavailable"
    assert body["details"] == {"retryAfterSeconds": 5}
    assert "Prometheus is unavailable" in body["message"]
    not_ready = adapter.client.get("/readyz")
    assert not_ready.status_code == 503  # metrics-server's code; a probe sees "not 2xx"
    assert "[-]" in not_ready.text
    adapter.prometheus.down = False
    assert adapter.client.get(path).status_code == 200
    assert adapter.client.get("/readyz").text == "ok"


def test_openapi_documents(adapter: Adapter) -> None:
    v2 = adapter.client.get("/openapi/v2")
    assert v2.status_code == 200
    assert v2.get_json()["swagger"] == "2.0"
    index = adapter.client.get("/openapi/v3").get_json()
    url = index["paths"]["apis/metrics.k8s.io/v1beta1"]["serverRelativeURL"]
    document = adapter.client.get(url)
    assert document.status_code == 200
    assert document.get_json()["openapi"] == "3.0.0"


def test_own_metrics_count_requests_by_api_and_code(adapter: Adapter) -> None:
    adapter.client.get(f"{RM}/nodes")
    adapter.client.get(f"{RM}/nodes/node-x")
    text = adapter.client.get("/metrics").text
    assert 'kubemetrics_adapter_requests_total{api="metrics.k8s.io",code="200"} 1.0' in text
    assert 'kubemetrics_adapter_requests_total{api="metrics.k8s.io",code="404"} 1.0' in text
    assert "kubemetrics_adapter_request_duration_seconds_bucket" in text


def test_debug_explain_is_the_explain_document(adapter: Adapter) -> None:
    target = f"{CM2}/namespaces/default/pods/%2A/http_requests_per_second?labelSelector=app%3Dweb"
    response = adapter.client.get("/debug/explain", query_string={"path": target})
    assert response.status_code == 200
    body = response.get_json()
    assert body["rule"]["location"] == "rules[0]"
    # The cache's pods (web-done has stopped), not every pod Prometheus knows.
    assert body["objects"] == {
        "source": "the cluster",
        "resolved": True,
        "names": ["default/web-1", "default/web-2", "default/web-3"],
    }
    assert [q["query"] for q in body["queries"]] == [
        'sum(rate(http_requests_total{namespace="default",pod=~"web-1|web-2|web-3"}[2m])) by (pod)'
    ]
    assert [v["object"] for v in body["values"]] == ["default/web-1", "default/web-2"]
    assert body["missing"] == ["default/web-3: no sample"]
    assert body["exitCode"] == 0
    # The same document the explain CLI builds from the same registry, catalog and cluster.
    providers = build_providers(FakePrometheus(DATA))
    assert body == json.loads(json.dumps(providers.explain(target)))


@pytest.mark.parametrize(
    ("target", "stage", "status"),
    [
        pytest.param(f"{CM2}/namespaces/default/pods/x", "request", 404, id="bad-path"),
        pytest.param(
            f"{CM2}/namespaces/default/pods/%2A/http_request_per_second", "plan", 404, id="typo"
        ),
    ],
)
def test_debug_explain_reports_the_failing_stage(
    adapter: Adapter, target: str, stage: str, status: int
) -> None:
    body = adapter.client.get("/debug/explain", query_string={"path": target}).get_json()
    assert body["error"]["stage"] == stage
    assert body["error"]["status"] == status


def test_debug_explain_needs_a_path(adapter: Adapter) -> None:
    response = adapter.client.get("/debug/explain")
    assert response.status_code == 400
    assert response.get_json()["reason"] == "BadRequest"
