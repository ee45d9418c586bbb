"""Providers: a typed metrics request in, a Kubernetes JSON object out.

Each provider resolves the objects a request is about (from ``adapter.kube_cache``), has
``adapter.planner`` plan the PromQL for them, runs it on Prometheus (``PrometheusAPI``) at one
evaluation time, hands the results back to the planner's ``map_*_result`` and builds the answer
with ``adapter.objects``. The planner decides which samples count (requested objects only, no
NaN or ±Inf, complete pods); the providers add what needs the cluster and the clock. The API
layer only sees requests, JSON objects and ``ProviderError``; it never sees PromQL.

What they guarantee, because the HPA and ``kubectl top`` depend on it:

- ``timestamp`` is the sample time Prometheus returns (a pod's or node's earliest); the queries
  are evaluated at the provider's clock, so one answer has one time;
- ``window`` is the rule's real window: ``resourceRules.window`` for metrics.k8s.io, and for
  custom / external metrics the single range (``[2m]``) in the rendered query (no window when
  the query has none or several, so the HPA assumes its default);
- ``*`` answers exactly the objects of the cache that match ``labelSelector`` in the namespace
  (pods that stopped or are being deleted are not among them), nothing else, and an empty list
  when none match; an object request answers exactly one item or 404.

``Providers.explain`` is the debug endpoint's document: ``adapter.explain.explain_request`` over
the same registry, cache and Prometheus, so it agrees with ``kubemetrics-adapter explain``.

Exception tree::

    ProviderError                 carries the ``Status`` to answer with (``status``)
    ├── BadRequestError           400: a selector that cannot become a query
    ├── NotFoundError             404: unknown metric / object, with what to fix
    ├── UpstreamUnavailableError  503: Prometheus or the Kubernetes API cannot be reached
    └── InternalProviderError     500: a rule or Prometheus answer that cannot be used
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Protocol

from adapter.explain import ObjectListError, explain_request
from adapter.kube_cache import ClusterObjects, KubeCacheError, KubeObject, KubeRequestError
from adapter.objects import (
    ContainerUsage,
    CustomMetricSample,
    ExternalMetricSample,
    JsonObject,
    NodeUsage,
    ObjectReference,
    PodUsage,
    SelectorRequirement,
    external_metric_value_list,
    metric_value_list,
    node_metrics,
    node_metrics_list,
    pod_metrics,
    pod_metrics_list,
    status,
    status_bad_request,
    status_internal,
    status_metric_not_found,
    status_object_not_found,
    status_service_unavailable,
)
from adapter.planner import (
    ObjectRef,
    PlanError,
    PlanErrorReason,
    QueryPlan,
    map_custom_result,
    map_external_result,
    map_resource_result,
    plan_request,
    plan_resource_request,
)
from adapter.prometheus import (
    PrometheusAPI,
    PrometheusError,
    PrometheusQueryError,
    PrometheusUnavailableError,
    QueryResult,
)
from adapter.promql import DEFAULT_MAX_QUERY_BYTES
from adapter.registry import MetricRegistry
from adapter.request_paths import (
    CustomMetricsRequest,
    ExternalMetricsRequest,
    MetricsRequest,
    ResourceMetricsRequest,
)
from adapter.resources import NODES, BuiltinResourceCatalog, GroupResource, ResourceCatalog
from adapter.rules import CompiledResourceRules
from adapter.selectors import FieldSelector, LabelSelector

LOG = logging.getLogger(__name__)

Clock = Callable[[], float]
RETRY_AFTER_SECONDS: Final = 5


class ProviderError(Exception):
    """A request that cannot be answered; ``status`` is the Status object to send."""

    def __init__(self, status: JsonObject) -> None:
        super().__init__(str(status.get("message", "")))
        self.status = status

    @property
    def code(self) -> int:
        code = self.status.get("code")
        return code if isinstance(code, int) else 500


class BadRequestError(ProviderError):
    pass


class NotFoundError(ProviderError):
    pass


class UpstreamUnavailableError(ProviderError):
    pass


class InternalProviderError(ProviderError):
    pass


# --- pure helpers --------------------------------------------------------------------------------

_RANGE: Final = re.compile(r"\[\s*([0-9][0-9a-z]*)\s*(:[^\]]*)?\]")
_DURATION_PART: Final = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS: Final = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


def _duration_seconds(text: str) -> float | None:
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position > 0 else None


def query_window_seconds(query: str) -> int | None:
    """The window of a query: its one range duration (``rate(x[2m])`` → 120), else None.

    Subqueries (``[5m:1m]``) and queries mixing several windows have no single window.
    """
    windows: set[float] = set()
    for match in _RANGE.finditer(query):
        if match.group(2) is not None:
            return None
        seconds = _duration_seconds(match.group(1))
        if seconds is None:
            return None
        windows.add(seconds)
    if len(windows) != 1:
        return None
    (seconds,) = windows
    return int(seconds) if seconds >= 1 else None


def plan_window_seconds(plan: QueryPlan) -> int | None:
    """The one window all of a plan's queries share, else None."""
    windows = {query_window_seconds(query) for query in plan.queries}
    return windows.pop() if len(windows) == 1 else None


def selector_requirements(selector: LabelSelector) -> list[SelectorRequirement]:
    """A parsed selector as the objects module's requirements (for the echoed ``selector``)."""
    return [
        SelectorRequirement(r.key, r.operator.value, tuple(r.values)) for r in selector.requirements
    ]


def plan_failure(err: PlanError, request: MetricsRequest) -> ProviderError:
    """The Status a planner error is answered with (its message says what to fix)."""
    if err.reason is PlanErrorReason.OBJECT_NOT_FOUND and isinstance(
        request, ResourceMetricsRequest
    ):
        # kubectl top prints this message as is: keep metrics-server's wording and details.
        kind = "nodemetrics" if request.resource == NODES else "podmetrics"
        name = str(ObjectRef(request.namespace, request.name or ""))
        return NotFoundError(status_object_not_found(kind, "metrics.k8s.io", name))
    if err.status == 404:
        return NotFoundError(status(404, err.status_reason, str(err)))
    if err.status == 400:
        return BadRequestError(status_bad_request(str(err)))
    LOG.error("cannot answer %s: %s", request, err)
    return InternalProviderError(
        status_internal(str(err), hint="kubemetrics-adapter explain shows the rule and its query")
    )


# --- shared plumbing ---------------------------------------------------------------------------


# Queries of one answer in flight at once. ``kubectl top pod -A`` at 5,000 pods plans 14; run one
# after another their round trips add up, while a few at a time keep Prometheus's load modest.
MAX_PARALLEL_QUERIES: Final = 4


@dataclass
class QueryRunner:
    """Runs a plan's queries at one evaluation time and turns failures into ProviderErrors."""

    prometheus: PrometheusAPI
    clock: Clock = time.time
    max_parallel: int = MAX_PARALLEL_QUERIES

    def run(self, plan: QueryPlan, what: str, at: float) -> list[QueryResult]:
        """The result of every step of ``plan``, in order, all evaluated at ``at``.

        Up to ``max_parallel`` queries run at once. When several fail, the error raised is the
        first failing step's in plan order, whichever finished first, so an answer does not
        depend on timing.
        """
        queries = [step.query for step in plan.steps]
        workers = min(self.max_parallel, len(queries))
        if workers <= 1:
            return [self.query(promql, what, at) for promql in queries]
        # A pool per answer: nothing outlives the request or crosses a gunicorn fork.
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prometheus-query")
        try:
            futures = [pool.submit(self.query, promql, what, at) for promql in queries]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def query(self, promql: str, what: str, at: float) -> QueryResult:
        try:
            return self.prometheus.query(promql, at)
        except PrometheusUnavailableError as err:
            LOG.warning("%s: %s", what, err)
            raise UpstreamUnavailableError(
                status_service_unavailable(
                    f"cannot read {what}: Prometheus is unavailable ({err}); "
                    "check that --prometheus-url is reachable from the adapter",
                    retry_after_seconds=RETRY_AFTER_SECONDS,
                )
            ) from None
        except PrometheusQueryError as err:
            LOG.error("%s: query %s rejected: %s", what, promql, err)
            raise InternalProviderError(
                status_internal(
                    f"Prometheus rejected the query for {what}: {err.error_type}: {err.error}",
                    hint="fix the rule's metricsQuery (kubemetrics-adapter explain shows it)",
                )
            ) from None
        except PrometheusError as err:
            LOG.error("%s: %s", what, err)
            raise InternalProviderError(status_internal(f"reading {what}: {err}")) from None


def _kube_failure(err: KubeCacheError, what: str) -> ProviderError:
    if isinstance(err, KubeRequestError) and err.status == 404:
        return NotFoundError(status_metric_not_found(what, "objects", hint=str(err)))
    return UpstreamUnavailableError(
        status_service_unavailable(
            f"cannot list the objects for {what}: {err}", retry_after_seconds=RETRY_AFTER_SECONDS
        )
    )


def select_objects(
    objects: ClusterObjects,
    resource: GroupResource,
    namespace: str | None,
    label_selector: LabelSelector,
    field_selector: FieldSelector | None = None,
) -> list[KubeObject]:
    """The cached objects a ``*`` or list request selects, in the cache's order.

    Raises KubeCacheError when a resource that is not watched cannot be listed.
    """
    selected = objects.select(resource, namespace, label_selector)
    if field_selector is None:
        return selected
    return [
        o
        for o in selected
        if field_selector.matches({"metadata.name": o.name, "metadata.namespace": o.namespace})
    ]


def _ref(kube_object: KubeObject) -> ObjectRef:
    return ObjectRef(kube_object.namespace or None, kube_object.name)


class CacheObjectLister:
    """``adapter.explain.ObjectLister`` over the watch caches (what the providers select)."""

    def __init__(self, objects: ClusterObjects) -> None:
        self._objects = objects

    def list_objects(
        self,
        resource: GroupResource,
        namespace: str | None,
        label_selector: LabelSelector,
        field_selector: FieldSelector,
    ) -> list[ObjectRef]:
        try:
            selected = select_objects(
                self._objects, resource, namespace, label_selector, field_selector
            )
        except KubeCacheError as err:
            raise ObjectListError(f"listing {resource}: {err}") from None
        return [_ref(o) for o in selected]


# --- metrics.k8s.io ------------------------------------------------------------------------------


class ResourceMetricsProvider:
    """``metrics.k8s.io/v1beta1``: NodeMetrics and PodMetrics from ``resourceRules``.

    ``rules`` returns the rules in force (None: the rules file has none), read per request so
    that a reload takes effect at once.
    """

    def __init__(
        self,
        rules: Callable[[], CompiledResourceRules | None],
        objects: ClusterObjects,
        queries: QueryRunner,
        *,
        max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
    ) -> None:
        self._rules = rules
        self._objects = objects
        self._queries = queries
        self._max_query_bytes = max_query_bytes

    def serves(self) -> bool:
        """Whether the rules in force have resourceRules."""
        return self._rules() is not None

    def handle(self, request: ResourceMetricsRequest) -> JsonObject:
        rules = self._rules()
        now = self._queries.clock()
        nodes = request.resource == NODES
        selected = self._selected(request)
        try:
            plan = plan_resource_request(
                request,
                rules,
                objects=[_ref(o) for o in selected],
                max_query_bytes=self._max_query_bytes,
            )
            results = self._queries.run(plan, "node metrics" if nodes else "pod metrics", now)
            values = map_resource_result(plan, results)
        except PlanError as err:
            raise plan_failure(err, request) from None
        window = plan.window.total_seconds() if plan.window is not None else 0.0
        # Keyed by plain (namespace, name) tuples: ObjectRef's generated hash is Python code,
        # and a 5,000-pod answer hashes every pod twice here.
        labels = {(o.namespace or None, o.name): o.labels for o in selected}
        if nodes:
            node_usages = [
                NodeUsage(
                    v.object.name,
                    labels.get((v.object.namespace, v.object.name), {}),
                    v.timestamp,
                    window,
                    v.cpu_cores,
                    v.memory_bytes,
                )
                for v in values.nodes
            ]
            if request.name is not None:
                return node_metrics(node_usages[0], created=now)
            return node_metrics_list(node_usages, created=now)
        pod_usages = [
            PodUsage(
                v.object.namespace or "",
                v.object.name,
                labels.get((v.object.namespace, v.object.name), {}),
                v.timestamp,
                window,
                [ContainerUsage(c.name, c.cpu_cores, c.memory_bytes) for c in v.containers],
            )
            for v in values.pods
        ]
        if request.name is not None:
            return pod_metrics(pod_usages[0], created=now)
        return pod_metrics_list(pod_usages, created=now)

    def _selected(self, request: ResourceMetricsRequest) -> list[KubeObject]:
        """The cached objects the request is about; 404 when the one it names is not there."""
        if request.name is None:
            try:
                return select_objects(
                    self._objects,
                    request.resource,
                    request.namespace,
                    request.label_selector,
                    request.field_selector,
                )
            except KubeCacheError as err:
                raise _kube_failure(err, str(request.resource)) from None
        if request.resource == NODES:
            found = self._objects.nodes.get("", request.name)
        else:
            found = self._objects.pods.get(request.namespace or "", request.name)
        if found is None:
            raise NotFoundError(status_object_not_found(str(request.resource), "", request.name))
        return [found]


# --- custom.metrics.k8s.io -----------------------------------------------------------------------


class RegistrySource(Protocol):
    def __call__(self) -> MetricRegistry: ...


class CustomMetricsProvider:
    """``custom.metrics.k8s.io`` v1beta1 / v1beta2 from the registry's rules."""

    def __init__(
        self,
        registry: RegistrySource,
        objects: ClusterObjects,
        queries: QueryRunner,
        *,
        max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
    ) -> None:
        self._registry = registry
        self._objects = objects
        self._queries = queries
        self._max_query_bytes = max_query_bytes

    @property
    def objects(self) -> ClusterObjects:
        return self._objects

    @property
    def queries(self) -> QueryRunner:
        return self._queries

    @property
    def max_query_bytes(self) -> int:
        return self._max_query_bytes

    def _selected(self, registry: MetricRegistry, request: CustomMetricsRequest) -> list[ObjectRef]:
        """The objects a ``*`` request selects; none when the planner will refuse the request
        anyway (unknown resource or metric), so that nothing is listed for it."""
        gr = self._objects.catalog.normalize(request.resource.group, request.resource.resource)
        if gr is None or registry.lookup_custom(gr, request.metric, request.namespaced) is None:
            return []
        try:
            selected = self._objects.select(gr, request.namespace, request.label_selector)
        except KubeCacheError as err:
            raise _kube_failure(err, request.metric) from None
        return [ObjectRef(request.namespace, o.name) for o in selected]

    def handle(self, request: CustomMetricsRequest) -> JsonObject:
        registry = self._registry()
        catalog = self._objects.catalog
        objects = self._selected(registry, request) if request.all_objects else None
        now = self._queries.clock()
        try:
            plan = plan_request(
                request,
                registry=registry,
                catalog=catalog,
                objects=objects,
                max_query_bytes=self._max_query_bytes,
            )
            results = self._queries.run(plan, f"metric {request.metric}", now)
            values = map_custom_result(plan, results)
        except PlanError as err:
            raise plan_failure(err, request) from None
        if values.dropped:
            LOG.debug("metric %s: %s", request.metric, "; ".join(values.dropped))
        gr = plan.group_resource or request.resource
        kind = catalog.kind(gr)
        try:
            version = catalog.version(gr)
        except KeyError:
            version = "v1"
        api_version = f"{gr.group}/{version}" if gr.group else version
        window = plan_window_seconds(plan)
        items = [
            CustomMetricSample(
                ObjectReference(kind, v.object.name, v.object.namespace, api_version),
                v.timestamp,
                v.value,
                window,
            )
            for v in values.values
        ]
        return metric_value_list(
            request.version,
            request.metric,
            items,
            selector_requirements(request.metric_selector),
        )


# --- external.metrics.k8s.io ---------------------------------------------------------------------


class ExternalMetricsProvider:
    """``external.metrics.k8s.io/v1beta1`` from the registry's external rules."""

    def __init__(
        self,
        registry: RegistrySource,
        queries: QueryRunner,
        *,
        max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
    ) -> None:
        self._registry = registry
        self._queries = queries
        self._max_query_bytes = max_query_bytes
        # External metrics name no Kubernetes resource; the planner never consults it.
        self._catalog: ResourceCatalog = BuiltinResourceCatalog()

    def handle(self, request: ExternalMetricsRequest) -> JsonObject:
        now = self._queries.clock()
        try:
            plan = plan_request(
                request,
                registry=self._registry(),
                catalog=self._catalog,
                max_query_bytes=self._max_query_bytes,
            )
            results = self._queries.run(plan, f"external metric {request.metric}", now)
            values = map_external_result(plan, results)
        except PlanError as err:
            raise plan_failure(err, request) from None
        window = plan_window_seconds(plan)
        return external_metric_value_list(
            request.metric,
            [ExternalMetricSample(v.labels, v.timestamp, v.value, window) for v in values.values],
        )


# --- everything the API needs --------------------------------------------------------------------


@dataclass(frozen=True)
class Providers:
    """The providers and the discovery facts the API layer serves.

    ``discovery_errors`` (seriesQuery → error of its last refresh) is shown by ``explain``.
    """

    resource: ResourceMetricsProvider | None
    custom: CustomMetricsProvider
    external: ExternalMetricsProvider
    registry: RegistrySource
    discovery_errors: Callable[[], dict[str, str]] | None = None

    def serves_resource_metrics(self) -> bool:
        return self.resource is not None and self.resource.serves()

    def served_groups(self) -> list[str]:
        groups = []
        if self.serves_resource_metrics():
            groups.append("metrics.k8s.io")
        groups += ["custom.metrics.k8s.io", "external.metrics.k8s.io"]
        return groups

    def explain(self, target: str) -> dict[str, Any]:
        """The debug endpoint's document for ``target`` (``PATH[?QUERY]``): the same data as
        ``kubemetrics-adapter explain --output json``, from the running adapter's state."""
        registry = self.registry()
        queries = self.custom.queries
        return explain_request(
            target,
            registry=registry,
            catalog=self.custom.objects.catalog,
            prometheus=queries.prometheus,
            lister=CacheObjectLister(self.custom.objects),
            discovery_errors=self.discovery_errors() if self.discovery_errors else {},
            discovery_ran=registry.refreshed_at is not None,
            at=queries.clock(),
            max_query_bytes=self.custom.max_query_bytes,
        ).to_dict()
