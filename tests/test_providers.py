"""Providers: the exact PromQL they send, windows, and how samples become objects."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from adapter.objects import JsonObject
from adapter.prometheus import PrometheusQueryError, PrometheusUnavailableError, QueryResult
from adapter.providers import (
    InternalProviderError,
    NotFoundError,
    ProviderError,
    Providers,
    UpstreamUnavailableError,
    query_window_seconds,
)
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
    # Sent concurrently, so in any order; test_results_keep_plan_order checks the mapping.
    assert sorted(prometheus.queries) == sorted(queries)


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


ALL_PODS = parse_request("/apis/metrics.k8s.io/v1beta1/pods")
WAIT_SECONDS = 10.0  # bounds every wait below; reached only when the code under test is broken


@dataclass
class GatedPrometheus(FakePrometheus):
    """FakePrometheus whose queries wait for each other, fail on demand, and count who is in.

    ``hold_first`` keeps the first query (in plan order) until every other one has finished, so
    answers come back in reverse; ``failures`` maps a query's plan index to the error it raises.
    """

    plan: list[str] = field(default_factory=list)
    hold_first: bool = False
    failures: dict[int, Exception] = field(default_factory=dict)
    pair_up: threading.Barrier | None = None
    times: list[float | None] = field(default_factory=list)
    most_in_flight: int = 0
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _others_done: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def query(self, promql: str, at: float | None = None) -> QueryResult:
        index = self.plan.index(promql)
        with self._lock:
            self.times.append(at)
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            if self.pair_up is not None:
                self.pair_up.wait(WAIT_SECONDS)
            if index == 0 and self.hold_first:
                for _ in self.plan[1:]:
                    assert self._others_done.acquire(timeout=WAIT_SECONDS), "not run concurrently"
            if index in self.failures:
                raise self.failures[index]
            return super().query(promql, at)
        finally:
            with self._lock:
                self._in_flight -= 1
            if index != 0:
                self._others_done.release()


def _plan_of_all_pods() -> list[str]:
    recording = FakePrometheus(DATA)
    answer(build_providers(recording), ALL_PODS)
    return list(recording.queries)


def test_results_keep_plan_order_when_answers_arrive_in_reverse() -> None:
    expected = answer(build_providers(FakePrometheus(DATA)), ALL_PODS)
    gated = GatedPrometheus(DATA, plan=_plan_of_all_pods(), hold_first=True)
    assert len(gated.plan) == 4
    # Run one after another, the held first step would wait for the rest forever (and fail).
    assert answer(build_providers(gated, clock=lambda: NOW), ALL_PODS) == expected
    assert gated.times == [NOW] * 4  # one evaluation time for every query of the answer


UNAVAILABLE = PrometheusUnavailableError("query: cannot reach Prometheus at http://127.0.0.1:9")
REJECTED = PrometheusQueryError("query: bad_data", 400, "bad_data", "parse error")


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param({0: REJECTED, 1: UNAVAILABLE}, InternalProviderError, id="first-rejected"),
        pytest.param({0: UNAVAILABLE, 3: REJECTED}, UpstreamUnavailableError, id="first-down"),
        pytest.param({2: REJECTED, 3: UNAVAILABLE}, InternalProviderError, id="third-rejected"),
    ],
)
def test_first_failure_in_plan_order_is_reported(
    failures: dict[int, Exception], expected: type[ProviderError]
) -> None:
    # The first step is held until the others have failed, so the first error by the clock is
    # never the first in plan order unless it is step 0's own.
    gated = GatedPrometheus(DATA, plan=_plan_of_all_pods(), hold_first=True, failures=failures)
    with pytest.raises(ProviderError) as caught:
        answer(build_providers(gated), ALL_PODS)
    assert type(caught.value) is expected


def test_queries_in_flight_stay_within_the_bound() -> None:
    gated = GatedPrometheus(DATA, plan=_plan_of_all_pods(), pair_up=threading.Barrier(2))
    providers = build_providers(gated)
    providers.custom.queries.max_parallel = 2
    answer(providers, ALL_PODS)
    assert gated.most_in_flight == 2
