"""Providers: the exact PromQL they send, windows, and how samples become objects."""

from __future__ import annotations

import pytest

from adapter.objects import JsonObject
from adapter.providers import NotFoundError, Providers, query_window_seconds
from adapter.request_paths import (
    CustomMetricsRequest,
    ExternalMetricsRequest,
    MetricsRequest,
    parse_request,
)
from tests.test_api_routes import DATA, NOW, FakePrometheus, build_providers


def answer(providers: Providers, request: MetricsRequest) -> JsonObject:
    if isinstance(request, CustomMetricsRequest):
        return providers.custom.handle(request)
    if isinstance(request, ExternalMetricsRequest):
        return providers.external.handle(request)
    assert providers.resource is not None
    return providers.resource.handle(request)


@pytest.mark.parametrize(
    ("query", "window"),
    [
        pytest.param("sum(rate(x{a='b'}[2m])) by (pod)", 120, id="rate-2m"),
        pytest.param("rate(x[1m30s])", 90, id="compound-duration"),
        pytest.param("rate(x[1m]) / rate(y[1m])", 60, id="same-window-twice"),
        pytest.param("rate(x[1m]) / rate(y[5m])", None, id="two-windows"),
        pytest.param("max_over_time(rate(x[1m])[5m:30s])", None, id="subquery"),
        pytest.param("sum(x) by (pod)", None, id="gauge"),
        pytest.param("rate(x[500ms])", None, id="below-a-second"),
        pytest.param('x{path="[2m]"}', 120, id="brackets-in-a-string-are-read-too"),
    ],
)
def test_query_window_seconds(query: str, window: int | None) -> None:
    assert query_window_seconds(query) == window


@pytest.mark.parametrize(
    ("path", "queries"),
    [
        pytest.param(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/%2A/"
            "http_requests_per_second?labelSelector=app%3Dweb&metricLabelSelector=verb%3DGET",
            [
                'sum(rate(http_requests_total{verb="GET",namespace="default",'
                'pod=~"web-1|web-2|web-3"}[2m])) by (pod)'
            ],
            id="pods-star-only-cluster-pods",
        ),
        pytest.param(
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/metrics/"
            "http_requests_per_second",
            ['sum(rate(http_requests_total{namespace="default"}[2m])) by (namespace)'],
            id="namespace-metric",
        ),
        pytest.param(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/web/"
            "queue_length",
            ['sum(queue_length{namespace="default",deployment="web"}) by (deployment)'],
            id="qualified-resource",
        ),
        pytest.param(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth"
            "?labelSelector=queue+in+%28jobs%2Cmail%29",
            ['sum(queue_depth{queue=~"jobs|mail",namespace="default"}) by (queue)'],
            id="external-set-selector",
        ),
        pytest.param(
            "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=zone%3Dz2",
            [
                'sum by (node) (rate(node_cpu{node=~"node-b|node-c"}[1m]))',
                'sum by (node) (node_memory{node=~"node-b|node-c"})',
            ],
            id="nodes",
        ),
        pytest.param(
            "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dweb",
            [
                'sum by (pod,container) (rate(container_cpu{namespace="default",'
                'pod=~"web-1|web-2|web-3"}[1m]))',
                'sum by (pod,container) (container_memory{namespace="default",'
                'pod=~"web-1|web-2|web-3"})',
                'sum by (pod,container) (rate(container_cpu{namespace="other",pod="web-1"}[1m]))',
                'sum by (pod,container) (container_memory{namespace="other",pod="web-1"})',
            ],
            id="pods-all-namespaces-one-query-per-namespace",
        ),
    ],
)
def test_exact_queries(path: str, queries: list[str]) -> None:
    prometheus = FakePrometheus(DATA)
    providers = build_providers(prometheus)
    request = parse_request(*path.split("?") if "?" in path else (path,))
    answer(providers, request)
    assert prometheus.queries == queries


def test_nan_sample_is_dropped_not_zeroed() -> None:
    providers = build_providers(FakePrometheus(DATA))
    request = parse_request(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-nan/"
        "http_requests_per_second"
    )
    with pytest.raises(NotFoundError) as caught:
        answer(providers, request)
    assert caught.value.code == 404
    assert caught.value.status["message"] == (
        "the server could not find the metric http_requests_per_second for pods web-nan; "
        "default/web-nan: value nan is not a finite number"
    )


def test_sample_time_is_the_query_time() -> None:
    prometheus = FakePrometheus(DATA)
    providers = build_providers(prometheus, clock=lambda: NOW + 30)
    answer = providers.resource.handle(  # type: ignore[union-attr]
        parse_request("/apis/metrics.k8s.io/v1beta1/nodes/node-a")
    )
    assert answer["timestamp"] == "2024-05-01T12:00:35Z"
    assert answer["window"] == "1m0s"
