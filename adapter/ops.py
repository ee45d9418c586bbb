"""Operating the adapter: its own metrics, health and readiness, and the explain debug endpoint.

- ``AdapterMetrics``: request count and latency by API and code, Prometheus query latency by
  outcome, cache sizes and discovery age, in a registry of its own (no process globals, so
  tests and several apps in one process do not share counters).
- ``TimedPrometheus``: a ``PrometheusAPI`` wrapper that times every call into those metrics.
- ``ops_blueprint``: ``/healthz`` and ``/livez`` (the process serves), ``/readyz`` (every
  readiness check passes: caches synced, Prometheus answers; otherwise 503 with the failed
  checks), ``/metrics`` (exposition), and
  ``/debug/explain?path=...`` (what a request queries and answers, the explain CLI's JSON).
  Health paths and ``/metrics`` are in ``adapter.auth``'s always-allowed list;
  ``/debug/explain`` is not, so every call is authorized by a SubjectAccessReview on the
  non-resource path.

No exceptions of its own: checks report failures as text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from adapter.objects import JsonObject, encode_json, status_bad_request
from adapter.prometheus import PrometheusAPI, PrometheusError, QueryResult

Clock = Callable[[], float]
T = TypeVar("T")
ReadinessCheck = tuple[str, Callable[[], str | None]]
"""A named check returning None when ready, else why not."""

API_LABELS: Final = (
    "metrics.k8s.io",
    "custom.metrics.k8s.io",
    "external.metrics.k8s.io",
    "discovery",
    "openapi",
    "ops",
    "other",
)
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def api_label(path: str) -> str:
    """The ``api`` label of a request path, from a fixed set (no per-path cardinality)."""
    parts = path.strip("/").split("/")
    if parts[0] == "apis":
        if len(parts) <= 3:
            return "discovery"
        return parts[1] if parts[1] in API_LABELS[:3] else "other"
    if parts[0] == "openapi":
        return "openapi"
    if parts[0] in ("healthz", "livez", "readyz", "metrics", "debug"):
        return "ops"
    return "other"


class AdapterMetrics:
    """The adapter's own metrics (prefix ``kubemetrics_adapter_``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "kubemetrics_adapter_requests",
            "API requests answered, by API group and HTTP status code.",
            ["api", "code"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "kubemetrics_adapter_request_duration_seconds",
            "Time to answer an API request, by API group.",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.query_duration = Histogram(
            "kubemetrics_adapter_prometheus_query_duration_seconds",
            "Time of calls to Prometheus, by call and outcome (success or error).",
            ["call", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cache_objects = Gauge(
            "kubemetrics_adapter_cache_objects",
            "Objects held by the Kubernetes watch caches, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.discovery_age = Gauge(
            "kubemetrics_adapter_metric_discovery_age_seconds",
            "Seconds since the metric registry was last refreshed from Prometheus (-1: never).",
            registry=self.registry,
        )
        self.rules_generation = Gauge(
            "kubemetrics_adapter_rules_generation",
            "Loads of the rules file that took effect in this worker (1 after start).",
            registry=self.registry,
        )
        self.rules_reload_successful = Gauge(
            "kubemetrics_adapter_rules_last_reload_successful",
            "1 if the last (re)load of the rules file worked, 0 if it failed and the last good"
            " rules stay in force (the log has every problem).",
            registry=self.registry,
        )
        self.rules_loaded_at = Gauge(
            "kubemetrics_adapter_rules_last_reload_success_timestamp_seconds",
            "When the rules in force were loaded (unix seconds; 0: from the server's start).",
            registry=self.registry,
        )

    def observe_request(self, path: str, code: int, seconds: float) -> None:
        api = api_label(path)
        self.requests.labels(api, str(code)).inc()
        self.request_duration.labels(api).observe(seconds)

    def track_cache_sizes(self, sizes: Callable[[], Mapping[str, int]]) -> None:
        """Read the cache sizes at every scrape."""
        for kind in ("pods", "nodes", "namespaces"):
            self.cache_objects.labels(kind).set_function(_size_reader(sizes, kind))

    def track_discovery_age(self, refreshed_at: Callable[[], float | None], clock: Clock) -> None:
        def age() -> float:
            at = refreshed_at()
            return -1.0 if at is None else max(0.0, clock() - at)

        self.discovery_age.set_function(age)

    def track_rules(
        self,
        generation: Callable[[], int],
        successful: Callable[[], bool],
        loaded_at: Callable[[], float | None],
    ) -> None:
        """Read the rules reloader's state at every scrape."""
        self.rules_generation.set_function(lambda: float(generation()))
        self.rules_reload_successful.set_function(lambda: 1.0 if successful() else 0.0)
        self.rules_loaded_at.set_function(lambda: loaded_at() or 0.0)


def _size_reader(sizes: Callable[[], Mapping[str, int]], kind: str) -> Callable[[], float]:
    return lambda: float(sizes().get(kind, 0))


class TimedPrometheus:
    """A ``PrometheusAPI`` that records each call's latency and outcome."""

    def __init__(
        self,
        inner: PrometheusAPI,
        metrics: AdapterMetrics,
        clock: Clock = time.perf_counter,
    ) -> None:
        self._inner = inner
        self._metrics = metrics
        self._clock = clock

    def _timed(self, call: str, run: Callable[[], T]) -> T:
        start = self._clock()
        outcome = "error"
        try:
            result = run()
            outcome = "success"
            return result
        finally:
            self._metrics.query_duration.labels(call, outcome).observe(self._clock() - start)

    def query(self, promql: str, at: float | None = None) -> QueryResult:
        return self._timed("query", lambda: self._inner.query(promql, at))

    def series(
        self, matchers: Sequence[str], start: float | None = None, end: float | None = None
    ) -> list[dict[str, str]]:
        return self._timed("series", lambda: self._inner.series(matchers, start, end))

    def label_names(
        self, matchers: Sequence[str] = (), start: float | None = None, end: float | None = None
    ) -> list[str]:
        return self._timed("label_names", lambda: self._inner.label_names(matchers, start, end))

    def label_values(
        self,
        label: str,
        matchers: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
    ) -> list[str]:
        return self._timed(
            "label_values", lambda: self._inner.label_values(label, matchers, start, end)
        )


def prometheus_reachable(prometheus: PrometheusAPI) -> Callable[[], str | None]:
    """A readiness check: Prometheus answers a trivial query."""

    def check() -> str | None:
        try:
            prometheus.query("vector(1)")
        except PrometheusError as err:
            return str(err)
        return None

    return check


@dataclass(frozen=True)
class Operations:
    """What the ops endpoints report on."""

    metrics: AdapterMetrics = field(default_factory=AdapterMetrics)
    readiness_checks: Sequence[ReadinessCheck] = ()


def _text(body: str, code: int = 200) -> Response:
    return Response(body, status=code, content_type="text/plain; charset=utf-8")


def readiness_report(checks: Sequence[ReadinessCheck]) -> tuple[bool, str]:
    """kube-apiserver style ``[+]name ok`` / ``[-]name failed: why`` lines."""
    lines, ready = [], True
    for name, check in checks:
        problem = check()
        if problem is None:
            lines.append(f"[+]{name} ok")
        else:
            ready = False
            lines.append(f"[-]{name} failed: {problem}")
    lines.append("readyz check passed" if ready else "readyz check failed")
    return ready, "\n".join(lines) + "\n"


def ops_blueprint(
    operations: Operations,
    explain: Callable[[str], JsonObject],
) -> Blueprint:
    """``explain(target)`` returns the debug document for a metrics request ``PATH[?QUERY]``
    (``adapter.explain``'s JSON form, as ``kubemetrics-adapter explain --output json``)."""
    blueprint = Blueprint("ops", __name__)

    @blueprint.get("/healthz")
    @blueprint.get("/livez")
    def alive() -> Response:
        return _text("ok")

    @blueprint.get("/readyz")
    def ready() -> Response:
        is_ready, report = readiness_report(operations.readiness_checks)
        verbose = "verbose" in request.args
        if is_ready:
            return _text(report if verbose else "ok")
        # 503 as metrics-server answers: the process is fine, what it needs is not yet.
        return _text(report, 503)

    @blueprint.get("/metrics")
    def metrics() -> Response:
        return Response(
            generate_latest(operations.metrics.registry), content_type=CONTENT_TYPE_LATEST
        )

    @blueprint.get("/debug/explain")
    def debug_explain() -> Response:
        target = request.args.get("path", "")
        if not target:
            body = status_bad_request(
                "give the metrics request to explain as ?path=/apis/GROUP/VERSION/... "
                "(percent-encode its own query string)"
            )
            return Response(encode_json(body), status=400, content_type="application/json")
        return Response(encode_json(explain(target)), content_type="application/json")

    return blueprint
