"""Providers: a typed metrics request in, a Kubernetes JSON object out.

Each provider resolves the objects a request is about (from ``adapter.kube_cache``), plans the
PromQL (rules + ``adapter.promql``), runs it on Prometheus (``PrometheusAPI``) and maps the
samples back to objects (``adapter.objects``). The API layer only sees requests, JSON objects
and ``ProviderError``; it never sees PromQL.

What they guarantee, because the HPA and ``kubectl top`` depend on it:

- ``timestamp`` is the sample time Prometheus returns; the query is evaluated at the
  provider's clock, so one answer has one time;
- ``window`` is the rule's real window: ``resourceRules.window`` for metrics.k8s.io, and for
  custom / external metrics the single range (``[2m]``) in the rendered query (no window when
  the query has none or several, so the HPA assumes its default);
- a pod whose containers lack CPU or memory is left out, never reported as zero; NaN and
  infinite samples are dropped;
- ``*`` answers exactly the objects that match ``labelSelector`` in the namespace (from the
  cache), nothing else; an object request answers exactly one item or 404.

Exception tree::

    ProviderError                 carries the ``Status`` to answer with (``status``)
    ├── BadRequestError           400: a selector that cannot become a query
    ├── NotFoundError             404: unknown metric / object, with what to fix
    ├── UpstreamUnavailableError  503: Prometheus or the Kubernetes API cannot be reached
    └── InternalProviderError     500: a rule or Prometheus answer that cannot be used
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

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
    status_bad_request,
    status_internal,
    status_metric_not_found,
    status_object_not_found,
    status_service_unavailable,
)
from adapter.prometheus import (
    PrometheusAPI,
    PrometheusError,
    PrometheusQueryError,
    PrometheusUnavailableError,
    QueryResult,
    Sample,
    VectorResult,
)
from adapter.promql import (
    DEFAULT_MAX_QUERY_BYTES,
    PlannedQuery,
    PromQLError,
    plan_custom_queries,
    plan_external_query,
    plan_node_resource_queries,
)
from adapter.registry import MetricRegistry, RegistryEntry
from adapter.request_paths import (
    ALL_OBJECTS,
    CustomMetricsRequest,
    ExternalMetricsRequest,
    ResourceMetricsRequest,
)
from adapter.resources import NODES, PODS, GroupResource
from adapter.rules import CompiledResourceRule, CompiledResourceRules, QueryRenderError
from adapter.selectors import LabelSelector

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


def selector_requirements(selector: LabelSelector) -> list[SelectorRequirement]:
    """A parsed selector as the objects module's requirements (for the echoed ``selector``)."""
    return [
        SelectorRequirement(r.key, r.operator.value, tuple(r.values)) for r in selector.requirements
    ]


def _finite_samples(result: QueryResult) -> list[Sample]:
    if not isinstance(result, VectorResult):
        return []
    return [s for s in result.samples if math.isfinite(s.value)]


# --- shared plumbing ---------------------------------------------------------------------------


@dataclass
class QueryRunner:
    """Runs planned queries at one evaluation time and turns failures into ProviderErrors."""

    prometheus: PrometheusAPI
    clock: Clock = time.time

    def run(self, plans: Sequence[PlannedQuery], what: str, at: float) -> list[Sample]:
        samples: list[Sample] = []
        for plan in plans:
            keep = set(plan.names_to_keep)
            label = plan.context["GroupBySlice"][0] if plan.context["GroupBySlice"] else ""
            for sample in _finite_samples(self.query(plan.query, what, at)):
                if not keep or sample.labels.get(label) in keep:
                    samples.append(sample)
        return samples

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


# --- metrics.k8s.io ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Usage:
    value: float
    timestamp: float


def _usage_by(
    samples: Iterable[Sample], key: Callable[[Mapping[str, str]], tuple[str, ...] | None]
) -> dict[tuple[str, ...], _Usage]:
    found: dict[tuple[str, ...], _Usage] = {}
    for sample in samples:
        k = key(sample.labels)
        if k is not None and k not in found:
            found[k] = _Usage(sample.value, sample.timestamp)
    return found


class ResourceMetricsProvider:
    """``metrics.k8s.io/v1beta1``: NodeMetrics and PodMetrics from ``resourceRules``."""

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

    def _current_rules(self) -> CompiledResourceRules:
        rules = self._rules()
        if rules is None:
            raise NotFoundError(
                status_metric_not_found(
                    "cpu/memory",
                    "metrics.k8s.io",
                    hint="the rules file has no resourceRules, so resource metrics are not served",
                )
            )
        return rules

    def handle(self, request: ResourceMetricsRequest) -> JsonObject:
        rules = self._current_rules()
        now = self._queries.clock()
        if request.resource == NODES:
            return self._nodes(request, rules, now)
        return self._pods(request, rules, now)

    # nodes

    def _nodes(
        self, request: ResourceMetricsRequest, rules: CompiledResourceRules, now: float
    ) -> JsonObject:
        if request.name is not None:
            node = self._objects.nodes.get("", request.name)
            if node is None:
                raise NotFoundError(status_object_not_found("nodes", "", request.name))
            usages = self._node_usages([node], rules, now)
            if not usages:
                raise NotFoundError(
                    status_object_not_found("nodemetrics", "metrics.k8s.io", request.name)
                )
            return node_metrics(usages[0], created=now)
        nodes = [
            n
            for n in self._objects.nodes.select(None, request.label_selector)
            if request.field_selector.matches({"metadata.name": n.name})
        ]
        return node_metrics_list(self._node_usages(nodes, rules, now), created=now)

    def _node_usages(
        self, nodes: Sequence[KubeObject], rules: CompiledResourceRules, now: float
    ) -> list[NodeUsage]:
        if not nodes:
            return []
        names = [n.name for n in nodes]
        cpu = self._node_values(rules.cpu, names, "node CPU", now)
        memory = self._node_values(rules.memory, names, "node memory", now)
        window = rules.window.total_seconds()
        usages = []
        for node in nodes:
            node_cpu, node_memory = cpu.get((node.name,)), memory.get((node.name,))
            if node_cpu is None or node_memory is None:
                continue
            usages.append(
                NodeUsage(
                    node.name,
                    node.labels,
                    max(node_cpu.timestamp, node_memory.timestamp),
                    window,
                    max(node_cpu.value, 0.0),
                    max(node_memory.value, 0.0),
                )
            )
        return usages

    def _node_values(
        self, rule: CompiledResourceRule, names: Sequence[str], what: str, now: float
    ) -> dict[tuple[str, ...], _Usage]:
        try:
            plans = plan_node_resource_queries(
                rule.render_node_query,
                rule.node_label,
                names,
                max_query_bytes=self._max_query_bytes,
            )
        except (PromQLError, QueryRenderError) as err:
            raise InternalProviderError(status_internal(f"{rule.location}: {err}")) from None
        samples = self._queries.run(plans, what, now)
        label = rule.node_label
        return _usage_by(samples, lambda labels: (labels[label],) if label in labels else None)

    # pods

    def _pods(
        self, request: ResourceMetricsRequest, rules: CompiledResourceRules, now: float
    ) -> JsonObject:
        if request.name is not None:
            namespace = request.namespace or ""
            pod = self._objects.pods.get(namespace, request.name)
            if pod is None:
                raise NotFoundError(status_object_not_found("pods", "", request.name))
            usages = self._pod_usages([pod], rules, now)
            if not usages:
                raise NotFoundError(
                    status_object_not_found(
                        "podmetrics", "metrics.k8s.io", f"{namespace}/{request.name}"
                    )
                )
            return pod_metrics(usages[0], created=now)
        pods = [
            p
            for p in self._objects.select(PODS, request.namespace, request.label_selector)
            if request.field_selector.matches(
                {"metadata.name": p.name, "metadata.namespace": p.namespace}
            )
        ]
        return pod_metrics_list(self._pod_usages(pods, rules, now), created=now)

    def _pod_usages(
        self, pods: Sequence[KubeObject], rules: CompiledResourceRules, now: float
    ) -> list[PodUsage]:
        if not pods:
            return []
        cpu = self._container_values(rules.cpu, pods, "pod CPU", now)
        memory = self._container_values(rules.memory, pods, "pod memory", now)
        window = rules.window.total_seconds()
        usages = []
        for pod in pods:
            key = (pod.namespace, pod.name)
            containers = sorted(
                {c for (ns, name, c) in cpu if (ns, name) == key}
                | {c for (ns, name, c) in memory if (ns, name) == key}
            )
            measured = [(cpu.get((*key, c)), memory.get((*key, c)), c) for c in containers]
            if not measured or any(c is None or m is None for c, m, _ in measured):
                continue  # a pod missing CPU or memory is left out, never zeroed
            usages.append(
                PodUsage(
                    pod.namespace,
                    pod.name,
                    pod.labels,
                    max(u.timestamp for c, m, _ in measured for u in (c, m) if u is not None),
                    window,
                    [
                        ContainerUsage(name, max(c.value, 0.0), max(m.value, 0.0))
                        for c, m, name in measured
                        if c is not None and m is not None
                    ],
                )
            )
        return usages

    def _container_values(
        self, rule: CompiledResourceRule, pods: Sequence[KubeObject], what: str, now: float
    ) -> dict[tuple[str, ...], _Usage]:
        by_namespace: dict[str, list[str]] = {}
        for pod in pods:
            by_namespace.setdefault(pod.namespace, []).append(pod.name)
        plans: list[PlannedQuery] = []
        try:
            for namespace, names in sorted(by_namespace.items()):
                plans.extend(
                    plan_custom_queries(
                        rule.render_container_query,
                        "",
                        LabelSelector(),
                        namespace_label=rule.namespace_label,
                        namespace=namespace,
                        resource_label=rule.pod_label,
                        names=names,
                        extra_group_by=(rule.container_label, rule.namespace_label),
                        max_query_bytes=self._max_query_bytes,
                    )
                )
        except (PromQLError, QueryRenderError) as err:
            raise InternalProviderError(status_internal(f"{rule.location}: {err}")) from None
        samples = self._queries.run(plans, what, now)
        ns_label, pod_label, container_label = (
            rule.namespace_label,
            rule.pod_label,
            rule.container_label,
        )

        def key(labels: Mapping[str, str]) -> tuple[str, ...] | None:
            container = labels.get(container_label, "")
            # cAdvisor-style series for the pod cgroup ("" or "POD") are not containers.
            if container in ("", "POD") or ns_label not in labels or pod_label not in labels:
                return None
            return (labels[ns_label], labels[pod_label], container)

        return _usage_by(samples, key)


# --- custom.metrics.k8s.io -----------------------------------------------------------------------


class RegistrySource(Protocol):
    def __call__(self) -> MetricRegistry: ...


@dataclass(frozen=True)
class CustomPlan:
    """How a custom metrics request is answered (also what the debug endpoint shows)."""

    group_resource: GroupResource
    namespace: str | None
    names: tuple[str, ...]
    entry: RegistryEntry
    resource_label: str
    queries: tuple[PlannedQuery, ...] = field(default=())


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

    def plan(self, request: CustomMetricsRequest) -> CustomPlan:
        """Resolve objects and rule and build the queries; raises NotFoundError with why."""
        registry = self._registry()
        catalog = self._objects.catalog
        gr = catalog.normalize(request.resource.group, request.resource.resource)
        described = str(request.resource)
        if gr is None:
            raise NotFoundError(
                status_metric_not_found(
                    request.metric,
                    described,
                    hint=f"the cluster has no resource {described!r} (see kubectl api-resources)",
                )
            )
        namespaced = request.namespace is not None
        entry = registry.lookup_custom(gr, request.metric, namespaced)
        if entry is None:
            raise NotFoundError(self._metric_not_found(registry, request, gr, namespaced))
        label = entry.rule.label_for_resource(gr)
        if label is None:
            raise NotFoundError(
                status_metric_not_found(
                    request.metric,
                    str(gr),
                    hint=f"rule {entry.rule.location} maps no label to {gr}",
                )
            )
        if request.name == ALL_OBJECTS:
            try:
                objects = self._objects.select(gr, request.namespace, request.label_selector)
            except KubeCacheError as err:
                raise _kube_failure(err, request.metric) from None
            names = tuple(o.name for o in objects)
        else:
            names = (request.name,)
        if not names:
            return CustomPlan(gr, request.namespace, names, entry, label)
        try:
            plans = plan_custom_queries(
                entry.rule.render_query,
                entry.series_name,
                request.metric_selector,
                namespace_label=entry.rule.namespace_label,
                namespace=request.namespace,
                resource_label=label,
                names=names,
                max_query_bytes=self._max_query_bytes,
            )
        except PromQLError as err:
            raise BadRequestError(status_bad_request(f"metric {request.metric}: {err}")) from None
        except QueryRenderError as err:
            raise InternalProviderError(status_internal(str(err))) from None
        return CustomPlan(gr, request.namespace, names, entry, label, tuple(plans))

    def _metric_not_found(
        self,
        registry: MetricRegistry,
        request: CustomMetricsRequest,
        gr: GroupResource,
        namespaced: bool,
    ) -> JsonObject:
        others = [str(i.group_resource) for i in registry.custom_metrics_named(request.metric)]
        if others:
            hint = f"the metric exists for {', '.join(others)}"
        else:
            close = registry.candidates(request.metric, 3)
            hint = "no rule produces it from the series in Prometheus"
            if close:
                hint += f"; similar metrics: {', '.join(close)}"
        name = "" if request.name == ALL_OBJECTS else request.name
        selector = str(request.label_selector) if request.name == ALL_OBJECTS else ""
        return status_metric_not_found(
            request.metric, str(gr), name=name, selector=selector, hint=hint
        )

    def handle(self, request: CustomMetricsRequest) -> JsonObject:
        plan = self.plan(request)
        now = self._queries.clock()
        samples = self._queries.run(plan.queries, f"metric {request.metric}", now)
        by_name: dict[str, Sample] = {}
        for sample in samples:
            by_name.setdefault(sample.labels.get(plan.resource_label, ""), sample)
        catalog = self._objects.catalog
        kind = catalog.kind(plan.group_resource)
        try:
            version = catalog.version(plan.group_resource)
        except KeyError:
            version = "v1"
        api_version = (
            f"{plan.group_resource.group}/{version}" if plan.group_resource.group else version
        )
        windows = {query_window_seconds(q.query) for q in plan.queries}
        window = windows.pop() if len(windows) == 1 else None
        items = [
            CustomMetricSample(
                ObjectReference(kind, name, plan.namespace, api_version),
                by_name[name].timestamp,
                by_name[name].value,
                window,
            )
            for name in plan.names
            if name in by_name
        ]
        if request.name != ALL_OBJECTS and not items:
            raise NotFoundError(
                status_metric_not_found(
                    request.metric,
                    str(plan.group_resource),
                    name=request.name,
                    hint="Prometheus has no sample for this object now",
                )
            )
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

    def plan(self, request: ExternalMetricsRequest) -> tuple[RegistryEntry, PlannedQuery]:
        registry = self._registry()
        entry = registry.lookup_external(request.metric)
        if entry is None:
            close = registry.candidates(request.metric, 3, external=True)
            hint = "no external rule produces it from the series in Prometheus"
            if close:
                hint += f"; similar metrics: {', '.join(close)}"
            raise NotFoundError(
                status_metric_not_found(request.metric, "external metrics", hint=hint)
            )
        try:
            plan = plan_external_query(
                entry.rule.render_query,
                entry.series_name,
                request.selector,
                namespace_label=entry.rule.namespace_label,
                namespace=request.namespace if entry.rule.namespaced else None,
                max_query_bytes=self._max_query_bytes,
            )
        except PromQLError as err:
            raise BadRequestError(status_bad_request(f"metric {request.metric}: {err}")) from None
        except QueryRenderError as err:
            raise InternalProviderError(status_internal(str(err))) from None
        return entry, plan

    def handle(self, request: ExternalMetricsRequest) -> JsonObject:
        _entry, plan = self.plan(request)
        now = self._queries.clock()
        samples = self._queries.run([plan], f"external metric {request.metric}", now)
        window = query_window_seconds(plan.query)
        return external_metric_value_list(
            request.metric,
            [
                ExternalMetricSample(
                    {k: v for k, v in s.labels.items() if k != "__name__"},
                    s.timestamp,
                    s.value,
                    window,
                )
                for s in samples
            ],
        )


# --- everything the API needs --------------------------------------------------------------------


@dataclass(frozen=True)
class Providers:
    """The providers and the discovery facts the API layer serves."""

    resource: ResourceMetricsProvider | None
    custom: CustomMetricsProvider
    external: ExternalMetricsProvider
    registry: RegistrySource

    def served_groups(self) -> list[str]:
        groups = []
        if self.resource is not None:
            groups.append("metrics.k8s.io")
        groups += ["custom.metrics.k8s.io", "external.metrics.k8s.io"]
        return groups

    def explain(self, request: Any) -> JsonObject:
        """What the debug endpoint shows: the rule and queries for a request, and the answer."""
        detail: JsonObject = {"request": _describe_request(request)}
        try:
            if isinstance(request, CustomMetricsRequest):
                plan = self.custom.plan(request)
                detail["rule"] = plan.entry.rule.location
                detail["series"] = plan.entry.series_name
                detail["objects"] = list(plan.names)
                detail["queries"] = [q.query for q in plan.queries]
                detail["result"] = self.custom.handle(request)
            elif isinstance(request, ExternalMetricsRequest):
                entry, query = self.external.plan(request)
                detail["rule"] = entry.rule.location
                detail["series"] = entry.series_name
                detail["queries"] = [query.query]
                detail["result"] = self.external.handle(request)
            elif self.resource is not None:
                detail["result"] = self.resource.handle(request)
        except ProviderError as err:
            detail["error"] = err.status
        return detail


def _describe_request(request: Any) -> JsonObject:
    described: JsonObject = {"api": str(request.api)}
    for item in dataclasses.fields(request):
        value = getattr(request, item.name)
        described[item.name] = None if value is None else str(value)
    return described
