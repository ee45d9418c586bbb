"""The query planner: typed metrics request → PromQL plan, and query results → per-object values.

Pure. The API layer (and ``explain``) calls :func:`plan_request`, runs every query of the plan
with the Prometheus client, and hands the results back to :func:`map_custom_result`,
:func:`map_external_result` or :func:`map_resource_result`; it never sees a rule or PromQL.

Planning follows prometheus-adapter (reference notes §2.2):

- custom metrics: the path's resource is normalized through the ResourceCatalog; the registry
  entry for (resource, metric, namespaced) gives the rule and the series; the matchers are the
  ``metricLabelSelector`` requirements, the namespace, then the object names (``=`` for one,
  ``=~`` for several, in request order), grouped by the resource label;
- external metrics: looked up by name; selector requirements, then the namespace unless the rule
  says ``namespaced: false``; no group-by;
- resource metrics: the ``containerQuery`` per namespace (grouped by pod and container) or the
  ``nodeQuery`` (grouped by node), CPU and memory.

Each query stays within ``max_query_bytes`` (adapter.promql splits long name lists, or matches
the namespace and filters). For ``*`` and list requests the caller passes the object names it
resolved from the cluster; without them (``objects=None``) the plan matches on the namespace
only (``<resource label>!=""``) and keeps every object Prometheus knows, and says so in its
notes.

Mapping results back keeps only the requested objects, in request order; the first sample per
object wins. A NaN or infinite value is dropped (``adapter.quantity.milli_quantity`` refuses
them: the HPA treats a missing object as missing data, but a zero as a reading); negative CPU
or memory usage becomes 0 as in prometheus-adapter. A pod is answered only when every one of
its containers has both CPU and memory (as metrics-server; prometheus-adapter would write 0 for
the missing one); series of the pod's own cgroup (container ``""`` or ``"POD"``) are not
containers. A pod's or node's timestamp is its earliest sample time (as both upstreams).
External values carry every sample label but ``__name__``.

Exception tree::

    PlanError          the request cannot be planned or answered; ``status``/``reason`` give
                       the Status to send, ``message`` says why, ``hints`` what to fix,
                       ``candidates`` the closest metric names
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Final

from adapter.prometheus import QueryResult, ScalarResult, VectorResult
from adapter.promql import (
    DEFAULT_MAX_QUERY_BYTES,
    PlannedQuery,
    PromQLError,
    QueryBudgetError,
    QueryContext,
    RenderQuery,
    SplitStrategy,
    label_matcher,
    plan_custom_queries,
    plan_external_query,
    plan_node_resource_queries,
    plan_pod_resource_queries,
    query_context,
    quote_string,
    selector_matchers,
    validate_label_name,
)
from adapter.registry import MetricRegistry, RegistryEntry
from adapter.request_paths import (
    CustomMetricsRequest,
    ExternalMetricsRequest,
    MetricsRequest,
    ResourceMetricsRequest,
)
from adapter.resources import NODES, GroupResource, ResourceCatalog
from adapter.rules import (
    CompiledResourceRule,
    CompiledResourceRules,
    CompiledRule,
    QueryRenderError,
    go_regexp_expand,
)
from adapter.selectors import LabelSelector

__all__ = [
    "ContainerValues",
    "CustomValues",
    "ExternalValue",
    "ExternalValues",
    "NodeValues",
    "ObjectRef",
    "ObjectValue",
    "PlanError",
    "PlanErrorReason",
    "PlannedStep",
    "PodValues",
    "QueryPlan",
    "QueryRole",
    "ResourceValues",
    "map_custom_result",
    "map_external_result",
    "map_resource_result",
    "plan_request",
    "plan_resource_request",
]

CANDIDATE_LIMIT: Final = 5


class PlanErrorReason(StrEnum):
    NOT_SERVED = "NotServed"  # the rules file has no rules for this API
    UNKNOWN_RESOURCE = "UnknownResource"
    METRIC_NOT_FOUND = "MetricNotFound"
    OBJECT_NOT_FOUND = "ObjectNotFound"  # no value for the one object asked for
    BAD_REQUEST = "BadRequest"  # the request cannot become a query (gt/lt, bad label names)
    RULE_ERROR = "RuleError"  # the rule cannot render a query (template, query length)
    BAD_RESULT = "BadResult"  # Prometheus' answer cannot be mapped (scalar, ...)


_STATUS: Final = {
    PlanErrorReason.NOT_SERVED: (404, "NotFound"),
    PlanErrorReason.UNKNOWN_RESOURCE: (404, "NotFound"),
    PlanErrorReason.METRIC_NOT_FOUND: (404, "NotFound"),
    PlanErrorReason.OBJECT_NOT_FOUND: (404, "NotFound"),
    PlanErrorReason.BAD_REQUEST: (400, "BadRequest"),
    PlanErrorReason.RULE_ERROR: (500, "InternalError"),
    PlanErrorReason.BAD_RESULT: (500, "InternalError"),
}


class PlanError(Exception):
    """Why a request has no answer: ``message`` (upstream wording where there is one),
    ``hints`` (what to change), ``candidates`` (closest metric names)."""

    def __init__(
        self,
        reason: PlanErrorReason,
        message: str,
        hints: Sequence[str] = (),
        candidates: Sequence[str] = (),
    ) -> None:
        self.reason = reason
        self.message = message
        self.hints = tuple(hints)
        self.candidates = tuple(candidates)
        self.status, self.status_reason = _STATUS[reason]
        text = message
        if self.hints:
            text += "; " + "; ".join(self.hints)
        if self.candidates:
            text += "; closest metric names: " + ", ".join(self.candidates)
        super().__init__(text)


@dataclass(frozen=True, order=True, slots=True)
class ObjectRef:
    """An object a request asks about; ``namespace`` is None for cluster-scoped objects."""

    namespace: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


_Key = tuple[str | None, str]
"""``(namespace, name)``: an ObjectRef's fields as a plain tuple, whose hash is computed in C;
mapping a 5,000-pod result looks each object up about ten times."""


class QueryRole(StrEnum):
    VALUE = "value"  # custom or external metric
    CPU = "cpu"
    MEMORY = "memory"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One query of a plan. ``names`` are the objects whose samples it answers for; empty when
    names were not resolved (keep every object) or for external metrics."""

    role: QueryRole
    query: str
    context: QueryContext
    names: tuple[str, ...]
    namespace: str | None


@dataclass(frozen=True)
class QueryPlan:
    """Everything needed to run a request and map its answer back, and to explain it."""

    request: MetricsRequest
    rule_location: str
    """``rules[2]``, ``externalRules[0]``, ``resourceRules``."""
    rule_line: int
    series: str
    """``.Series``: the discovered Prometheus metric name ("" for resource metrics)."""
    group_resource: GroupResource | None
    """The normalized resource (None for external metrics)."""
    resource_label: str | None
    namespace_label: str | None
    container_label: str | None
    objects: tuple[ObjectRef, ...]
    """The requested objects in request order (empty when not resolved)."""
    names_resolved: bool
    steps: tuple[PlannedStep, ...]
    window: timedelta | None = None
    notes: tuple[str, ...] = ()

    @property
    def queries(self) -> tuple[str, ...]:
        return tuple(step.query for step in self.steps)


# --- planning ----------------------------------------------------------------------------------


def _custom_not_found_message(request: CustomMetricsRequest, gr: GroupResource | str) -> str:
    # custom-metrics-apiserver's wording (pkg/provider/errors.go).
    message = f"the server could not find the metric {request.metric} for {gr}"
    if not request.all_objects:
        message += f" {request.name}"
    elif not request.label_selector.empty:
        message += f" with selector {request.label_selector}"
    return message


def _rule_where(rule: CompiledRule) -> str:
    return f"{rule.location} (line {rule.line})" if rule.line else rule.location


def _name_rejected_by_filters(rule: CompiledRule, series_name: str, metric: str) -> bool:
    """Whether ``rule`` would name ``series_name`` as ``metric`` if its seriesFilters let it."""
    match = rule.name_pattern.search(series_name)
    return (
        match is not None
        and go_regexp_expand(rule.name_as, match) == metric
        and not rule.accepts(series_name)
    )


def _why_custom_missing(
    registry: MetricRegistry, gr: GroupResource, request: CustomMetricsRequest
) -> list[str]:
    metric = request.metric
    hints: list[str] = []
    same_resource = [
        info for info in registry.custom_metrics_named(metric) if info.group_resource == gr
    ]
    for info in same_resource:
        if info.namespaced:
            hints.append(
                f"{gr}/{metric} is namespaced: ask at namespaces/NAMESPACE/{gr}/NAME/{metric}"
            )
        else:
            hints.append(f"{gr}/{metric} is not namespaced: ask at {gr}/NAME/{metric}")
    others = [info for info in registry.custom_metrics_named(metric) if info.group_resource != gr]
    if others:
        hints.append(
            f"the metric exists for {', '.join(sorted({str(i.group_resource) for i in others}))}"
        )
    seen_rules: set[str] = set()
    for info in others:
        entry = registry.lookup_custom(info.group_resource, info.metric, info.namespaced)
        if entry is None or entry.rule.location in seen_rules:
            continue
        seen_rules.add(entry.rule.location)
        rule = entry.rule
        label = rule.label_for_resource(gr)
        if label is None:
            hints.append(
                f"rule {_rule_where(rule)} produces {metric} from series {entry.series_name} but"
                f" maps no label to {gr}: add an override (LABEL: {{group: {gr.group!r},"
                f" resource: {gr.resource!r}}}) or a template to its resources"
            )
        else:
            hints.append(
                f"rule {_rule_where(rule)} maps label {label!r} to {gr}, but no series"
                f" {entry.series_name} in Prometheus has a non-empty {label!r} label"
            )
    if not same_resource and not others:
        hints.extend(_why_metric_unknown(registry, metric))
    return hints


def _why_metric_unknown(registry: MetricRegistry, metric: str) -> list[str]:
    """For a metric no resource has: discovered series a rule names so but cannot serve."""
    hints: list[str] = []
    for rule in registry.config.rules:
        result = registry.discovered.get(rule.series_query)
        if result is None:
            hints.append(
                f"rule {_rule_where(rule)}: discovery has no data for its seriesQuery"
                f" {rule.series_query} (not run yet, or Prometheus failed)"
            )
            continue
        for series_name, labels in sorted(result.names.items()):
            if _name_rejected_by_filters(rule, series_name, metric):
                hints.append(
                    f"rule {_rule_where(rule)} would name series {series_name} {metric}, but its"
                    " seriesFilters reject it"
                )
            elif rule.api_name(series_name) == metric and not labels:
                hints.append(
                    f"rule {_rule_where(rule)} names series {series_name} {metric}, but none of"
                    " its labels maps to a resource through the rule's resources"
                )
    if not hints:
        hints.append(f"no rule in {registry.config.source_name} produces a metric named {metric}")
    return hints


def _render_for(rule: CompiledRule) -> RenderQuery:
    return rule.render_query


def _unresolved_context(
    series: str,
    metric_selector: LabelSelector,
    *,
    namespace_label: str | None,
    namespace: str | None,
    resource_label: str,
    group_by: Sequence[str],
) -> QueryContext:
    """Matchers for "every object of the namespace": the caller could not list the objects."""
    matchers = selector_matchers(metric_selector)
    values = {r.key: quote_string("|".join(r.values))[1:-1] for r in metric_selector.requirements}
    if namespace_label is not None:
        if namespace:
            matchers.append(label_matcher(namespace_label, "=", namespace))
            values[namespace_label] = quote_string(namespace)[1:-1]
        elif namespace_label in group_by:
            matchers.append(label_matcher(namespace_label, "!=", ""))
    matchers.append(label_matcher(validate_label_name(resource_label), "!=", ""))
    groups = [validate_label_name(g, "group-by label") for g in group_by]
    return query_context(series, matchers, values, groups)


def _unresolved_step(
    role: QueryRole,
    render: RenderQuery,
    context: QueryContext,
    namespace: str | None,
    max_query_bytes: int,
) -> PlannedStep:
    query = render(context)
    if len(query.encode("utf-8", "surrogatepass")) > max_query_bytes:
        raise QueryBudgetError(
            f"the query is {len(query.encode())} bytes, more than max_query_bytes"
            f" ({max_query_bytes})"
        )
    return PlannedStep(role, query, context, (), namespace)


def _steps(
    role: QueryRole, planned: Iterable[PlannedQuery], namespace: str | None
) -> list[PlannedStep]:
    return [PlannedStep(role, p.query, p.context, p.names_to_keep, namespace) for p in planned]


_UNRESOLVED_NOTE: Final = (
    "object names were not resolved from the cluster (no --kubeconfig): the query matches every"
    " object with a non-empty {label} label{where}, so labelSelector is not applied"
)


def _plan_custom(
    request: CustomMetricsRequest,
    *,
    registry: MetricRegistry,
    catalog: ResourceCatalog,
    objects: Sequence[ObjectRef] | None,
    max_query_bytes: int,
    strategy: SplitStrategy,
) -> QueryPlan:
    if not registry.config.rules:
        raise PlanError(
            PlanErrorReason.NOT_SERVED,
            _custom_not_found_message(request, request.resource),
            [f"{registry.config.source_name} has no rules, so no custom metrics are served"],
        )
    gr = catalog.normalize(request.resource.group, request.resource.resource)
    if gr is None:
        raise PlanError(
            PlanErrorReason.UNKNOWN_RESOURCE,
            _custom_not_found_message(request, request.resource),
            [f"the cluster has no resource {request.resource} (see kubectl api-resources)"],
        )
    namespaced = request.namespaced
    entry = registry.lookup_custom(gr, request.metric, namespaced)
    if entry is None:
        raise PlanError(
            PlanErrorReason.METRIC_NOT_FOUND,
            _custom_not_found_message(request, gr),
            _why_custom_missing(registry, gr, request),
            # The name itself is no suggestion when it exists for other resources.
            [
                c
                for c in registry.candidates(request.metric, CANDIDATE_LIMIT)
                if c != request.metric
            ],
        )
    rule = entry.rule
    resource_label = rule.label_for_resource(gr)
    if resource_label is None:  # the registry only holds resources the rule maps
        raise PlanError(
            PlanErrorReason.RULE_ERROR,
            f"rule {_rule_where(rule)} maps no label to {gr}",
        )
    namespace_label = rule.namespace_label if namespaced else None
    namespace = request.namespace
    notes: list[str] = []
    if request.all_objects and objects is None:
        where = f" in namespace {namespace}" if namespace else ""
        notes.append(_UNRESOLVED_NOTE.format(label=resource_label, where=where))
        context = _unresolved_context(
            entry.series_name,
            request.metric_selector,
            namespace_label=namespace_label,
            namespace=namespace,
            resource_label=resource_label,
            group_by=(resource_label,),
        )
        steps = [
            _unresolved_step(
                QueryRole.VALUE, _render_for(rule), context, namespace, max_query_bytes
            )
        ]
        refs: tuple[ObjectRef, ...] = ()
    else:
        if request.all_objects:
            assert objects is not None
            refs = tuple(dict.fromkeys(objects))
            strays = [str(o) for o in refs if o.namespace != namespace]
            if strays:
                raise ValueError(
                    f"objects outside namespace {namespace!r} passed for a * request: {strays}"
                )
        else:
            refs = (ObjectRef(namespace, request.name),)
        if not refs:
            notes.append(
                f"no {gr} match labelSelector {str(request.label_selector) or '(everything)'}"
                + (f" in namespace {namespace}" if namespace else "")
                + ": the answer is an empty list"
            )
            steps = []
        else:
            planned = plan_custom_queries(
                _render_for(rule),
                entry.series_name,
                request.metric_selector,
                namespace_label=namespace_label,
                namespace=namespace,
                resource_label=resource_label,
                names=[o.name for o in refs],
                max_query_bytes=max_query_bytes,
                strategy=strategy,
            )
            steps = _steps(QueryRole.VALUE, planned, namespace)
    if len(steps) > 1:
        notes.append(f"the names did not fit in one query of {max_query_bytes} bytes: split")
    return QueryPlan(
        request,
        rule.location,
        rule.line,
        entry.series_name,
        gr,
        resource_label,
        namespace_label,
        None,
        refs,
        objects is not None or not request.all_objects,
        tuple(steps),
        notes=tuple(notes),
    )


def _plan_external(
    request: ExternalMetricsRequest, registry: MetricRegistry, max_query_bytes: int
) -> QueryPlan:
    message = f"the server could not find the metric {request.metric} for namespaces"
    if not registry.config.external_rules:
        raise PlanError(
            PlanErrorReason.NOT_SERVED,
            message,
            [
                f"{registry.config.source_name} has no externalRules, so no external metrics"
                " are served"
            ],
        )
    entry: RegistryEntry | None = registry.lookup_external(request.metric)
    if entry is None:
        hints: list[str] = []
        if request.metric in {info.metric for info in registry.custom_metrics()}:
            hints.append(
                f"{request.metric} is a custom metric (rules), not an external one (externalRules)"
            )
        if not registry.external_metrics():
            hints.append("discovery found no external metrics")
        raise PlanError(
            PlanErrorReason.METRIC_NOT_FOUND,
            message,
            hints,
            registry.candidates(request.metric, CANDIDATE_LIMIT, external=True),
        )
    rule = entry.rule
    namespace = request.namespace if rule.namespaced else None
    notes = (
        []
        if rule.namespaced
        else [
            f"rule {_rule_where(rule)} has namespaced: false: the request namespace is not matched"
        ]
    )
    planned = plan_external_query(
        _render_for(rule),
        entry.series_name,
        request.selector,
        namespace_label=rule.namespace_label,
        namespace=namespace,
        max_query_bytes=max_query_bytes,
    )
    return QueryPlan(
        request,
        rule.location,
        rule.line,
        entry.series_name,
        None,
        None,
        rule.namespace_label if rule.namespaced else None,
        None,
        (),
        True,
        (PlannedStep(QueryRole.VALUE, planned.query, planned.context, (), namespace),),
        notes=tuple(notes),
    )


def _group_by_namespace(objects: Sequence[ObjectRef]) -> dict[str | None, list[str]]:
    grouped: dict[str | None, list[str]] = {}
    for ref in dict.fromkeys(objects):
        grouped.setdefault(ref.namespace, []).append(ref.name)
    return grouped


def _plan_resource(
    request: ResourceMetricsRequest,
    rules: CompiledResourceRules | None,
    *,
    source_name: str,
    objects: Sequence[ObjectRef] | None,
    max_query_bytes: int,
    strategy: SplitStrategy,
) -> QueryPlan:
    if rules is None:
        raise PlanError(
            PlanErrorReason.NOT_SERVED,
            f"{request.resource} metrics are not served",
            [f"{source_name} has no resourceRules, so metrics.k8s.io serves nothing"],
        )
    cpu, memory = rules.cpu, rules.memory
    roles: tuple[tuple[QueryRole, CompiledResourceRule], ...] = (
        (QueryRole.CPU, cpu),
        (QueryRole.MEMORY, memory),
    )
    notes: list[str] = []
    steps: list[PlannedStep] = []
    nodes = request.resource == NODES
    if request.name is not None:
        refs: tuple[ObjectRef, ...] = (ObjectRef(request.namespace, request.name),)
    elif objects is not None:
        refs = tuple(dict.fromkeys(objects))
    else:
        refs = ()
    resolved = request.name is not None or objects is not None
    if not resolved:
        label = cpu.node_label if nodes else cpu.pod_label
        where = f" in namespace {request.namespace}" if request.namespace else ""
        notes.append(_UNRESOLVED_NOTE.format(label=label, where=where))
        for role, rule in roles:
            if nodes:
                context = _unresolved_context(
                    "",
                    LabelSelector(),
                    namespace_label=None,
                    namespace=None,
                    resource_label=rule.node_label,
                    group_by=(rule.node_label,),
                )
                render: RenderQuery = rule.render_node_query
            else:
                # Across namespaces the namespace label is grouped too, so that pods of the
                # same name in two namespaces stay apart.
                group_by = [rule.pod_label, rule.container_label]
                if request.namespace is None:
                    group_by.append(rule.namespace_label)
                context = _unresolved_context(
                    "",
                    LabelSelector(),
                    namespace_label=rule.namespace_label,
                    namespace=request.namespace,
                    resource_label=rule.pod_label,
                    group_by=group_by,
                )
                render = rule.render_container_query
            steps.append(
                _unresolved_step(role, render, context, request.namespace, max_query_bytes)
            )
    elif not refs:
        notes.append(f"no {request.resource} match the selectors: the answer is an empty list")
    elif nodes:
        names = [ref.name for ref in refs]
        for role, rule in roles:
            planned = plan_node_resource_queries(
                rule.render_node_query, rule.node_label, names, max_query_bytes=max_query_bytes
            )
            steps.extend(_steps(role, planned, None))
    else:
        for namespace, names in _group_by_namespace(refs).items():
            if namespace is None:
                raise ValueError(f"pods need a namespace: {names}")
            for role, rule in roles:
                planned = plan_pod_resource_queries(
                    rule.render_container_query,
                    namespace_label=rule.namespace_label,
                    namespace=namespace,
                    pod_label=rule.pod_label,
                    container_label=rule.container_label,
                    pod_names=names,
                    max_query_bytes=max_query_bytes,
                    strategy=strategy,
                )
                steps.extend(_steps(role, planned, namespace))
    return QueryPlan(
        request,
        "resourceRules",
        0,
        "",
        request.resource,
        cpu.node_label if nodes else cpu.pod_label,
        None if nodes else cpu.namespace_label,
        None if nodes else cpu.container_label,
        refs,
        resolved,
        tuple(steps),
        window=rules.window,
        notes=tuple(notes),
    )


def plan_request(
    request: MetricsRequest,
    *,
    registry: MetricRegistry,
    catalog: ResourceCatalog,
    objects: Sequence[ObjectRef] | None = None,
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
    strategy: SplitStrategy = SplitStrategy.CHUNK,
) -> QueryPlan:
    """The queries answering ``request`` with the rules of ``registry.config``.

    ``objects`` are the objects a ``*`` custom request or a metrics.k8s.io list selects, as the
    caller resolved them from the cluster (labelSelector, fieldSelector), in the order to
    answer in; None when they could not be resolved. Single-object requests ignore it.
    Raises :class:`PlanError` (never a bare PromQL or template error).
    """
    if isinstance(request, ResourceMetricsRequest):
        config = registry.config
        return plan_resource_request(
            request,
            config.resource_rules,
            source_name=config.source_name,
            objects=objects,
            max_query_bytes=max_query_bytes,
            strategy=strategy,
        )
    with _plan_errors():
        if isinstance(request, CustomMetricsRequest):
            return _plan_custom(
                request,
                registry=registry,
                catalog=catalog,
                objects=objects,
                max_query_bytes=max_query_bytes,
                strategy=strategy,
            )
        return _plan_external(request, registry, max_query_bytes)


def plan_resource_request(
    request: ResourceMetricsRequest,
    rules: CompiledResourceRules | None,
    *,
    source_name: str = "the rules file",
    objects: Sequence[ObjectRef] | None = None,
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
    strategy: SplitStrategy = SplitStrategy.CHUNK,
) -> QueryPlan:
    """:func:`plan_request` for metrics.k8s.io, which needs only the ``resourceRules``."""
    with _plan_errors():
        return _plan_resource(
            request,
            rules,
            source_name=source_name,
            objects=objects,
            max_query_bytes=max_query_bytes,
            strategy=strategy,
        )


@contextmanager
def _plan_errors() -> Iterator[None]:
    """PromQL and template errors as PlanErrors."""
    try:
        yield
    except QueryBudgetError as err:
        raise PlanError(PlanErrorReason.RULE_ERROR, str(err), ["raise --max-query-bytes"]) from None
    except PromQLError as err:
        # Label names and operators come from the request's selectors; anything else the
        # rule maps (namespace labels) is named in the message.
        raise PlanError(PlanErrorReason.BAD_REQUEST, str(err)) from None
    except QueryRenderError as err:
        raise PlanError(PlanErrorReason.RULE_ERROR, str(err)) from None


# --- mapping results back ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectValue:
    """A custom metric's value for one object, with the sample's time and labels."""

    object: ObjectRef
    value: float
    timestamp: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomValues:
    values: tuple[ObjectValue, ...]
    missing: tuple[ObjectRef, ...]
    """Requested objects without a (finite) value."""
    dropped: tuple[str, ...] = ()
    """Why samples were not used (NaN values), for logs and explain."""


@dataclass(frozen=True, slots=True)
class ExternalValue:
    labels: Mapping[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True)
class ExternalValues:
    values: tuple[ExternalValue, ...]
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerValues:
    name: str
    cpu_cores: float
    memory_bytes: float


@dataclass(frozen=True, slots=True)
class PodValues:
    object: ObjectRef
    timestamp: float
    """The earliest sample time over the pod's samples."""
    containers: tuple[ContainerValues, ...]


@dataclass(frozen=True, slots=True)
class NodeValues:
    object: ObjectRef
    timestamp: float
    cpu_cores: float
    memory_bytes: float


@dataclass(frozen=True)
class ResourceValues:
    pods: tuple[PodValues, ...] = ()
    nodes: tuple[NodeValues, ...] = ()
    missing: tuple[tuple[ObjectRef, str], ...] = ()
    """Objects left out, with the reason ("no CPU samples")."""
    dropped: tuple[str, ...] = ()


def _vector(plan: QueryPlan, step: PlannedStep, result: QueryResult) -> VectorResult:
    if isinstance(result, ScalarResult):
        raise PlanError(
            PlanErrorReason.BAD_RESULT,
            f"the query of {plan.rule_location} returned a scalar; it must return a vector"
            f" with the {plan.resource_label!r} label",
            [f"query: {step.query}"],
        )
    return result


def _other_namespace(plan: QueryPlan, step: PlannedStep, labels: Mapping[str, str]) -> bool:
    """Whether a sample names another namespace than its step's: a same-named object there
    (``default/web-1`` vs ``other/web-1``) must not lend it its value, whatever the query."""
    if step.namespace is None or plan.namespace_label is None:
        return False
    found = labels.get(plan.namespace_label)
    return found is not None and found != step.namespace


def _check_lengths(plan: QueryPlan, results: Sequence[QueryResult]) -> None:
    if len(results) != len(plan.steps):
        raise ValueError(f"{len(results)} results for a plan of {len(plan.steps)} queries")


def map_custom_result(plan: QueryPlan, results: Sequence[QueryResult]) -> CustomValues:
    """Per-object values from the results of ``plan.steps`` (same order).

    Raises PlanError(OBJECT_NOT_FOUND) when a single-object request got no usable value.
    """
    _check_lengths(plan, results)
    label = plan.resource_label or ""
    found: dict[_Key, ObjectValue] = {}
    dropped: list[str] = []
    for step, result in zip(plan.steps, results, strict=True):
        keep = set(step.names)
        for sample in _vector(plan, step, result).samples:
            name = sample.labels.get(label)
            if name is None or (keep and name not in keep):
                continue
            if _other_namespace(plan, step, sample.labels):
                continue
            key = (step.namespace, name)
            if key in found:
                continue
            ref = ObjectRef(step.namespace, name)
            if not math.isfinite(sample.value):
                dropped.append(f"{ref}: value {sample.value} is not a finite number")
                continue
            found[key] = ObjectValue(ref, sample.value, sample.timestamp, dict(sample.labels))
    if plan.names_resolved:
        values_found: list[ObjectValue] = []
        missing_list: list[ObjectRef] = []
        for ref in plan.objects:
            value = found.get((ref.namespace, ref.name))
            if value is None:
                missing_list.append(ref)
            else:
                values_found.append(value)
        values, missing = tuple(values_found), tuple(missing_list)
    else:
        values, missing = tuple(sorted(found.values(), key=lambda v: v.object)), ()
    request = plan.request
    if isinstance(request, CustomMetricsRequest) and not request.all_objects and not values:
        why = (
            f"Prometheus returned no finite sample with {label}={request.name!r}"
            if not dropped
            else dropped[0]
        )
        raise PlanError(
            PlanErrorReason.OBJECT_NOT_FOUND,
            _custom_not_found_message(request, plan.group_resource or request.resource),
            [why],
        )
    return CustomValues(values, missing, tuple(dropped))


def map_external_result(plan: QueryPlan, results: Sequence[QueryResult]) -> ExternalValues:
    """Every sample becomes a value with all its labels; a scalar becomes one unlabeled value."""
    _check_lengths(plan, results)
    values: list[ExternalValue] = []
    dropped: list[str] = []
    for result in results:
        samples: Iterable[tuple[Mapping[str, str], float, float]]
        if isinstance(result, ScalarResult):
            samples = [({}, result.value, result.timestamp)]
        else:
            samples = [(s.labels, s.value, s.timestamp) for s in result.samples]
        for labels, value, timestamp in samples:
            if not math.isfinite(value):
                dropped.append(f"{dict(labels)}: value {value} is not a finite number")
                continue
            # __name__ is no label an HPA selects on (and absent after aggregation anyway).
            kept = {k: v for k, v in labels.items() if k != "__name__"}
            values.append(ExternalValue(kept, value, timestamp))
    return ExternalValues(tuple(values), tuple(dropped))


_Usage = dict[_Key, dict[str, float]]


def _collect_usage(
    plan: QueryPlan,
    results: Sequence[QueryResult],
    role: QueryRole,
    container_of: Callable[[Mapping[str, str]], str | None],
    dropped: list[str],
) -> tuple[_Usage, dict[_Key, float]]:
    label = plan.resource_label or ""
    usage: _Usage = {}
    times: dict[_Key, float] = {}
    for step, result in zip(plan.steps, results, strict=True):
        if step.role is not role:
            continue
        keep = set(step.names)
        for sample in _vector(plan, step, result).samples:
            name = sample.labels.get(label)
            if name is None or (keep and name not in keep):
                continue
            if _other_namespace(plan, step, sample.labels):
                continue
            namespace = step.namespace
            if namespace is None and plan.namespace_label is not None:
                namespace = sample.labels.get(plan.namespace_label)
            key = (namespace, name)
            container = container_of(sample.labels)
            containers = usage.get(key)
            if container is None or (containers is not None and container in containers):
                continue
            if not math.isfinite(sample.value):
                dropped.append(
                    f"{ObjectRef(namespace, name)} {container or '(node)'} {role}: value"
                    f" {sample.value} is not a finite number"
                )
                continue
            # prometheus-adapter: negative usage (counter resets in rate()) is read as 0.
            if containers is None:
                containers = usage[key] = {}
                times[key] = sample.timestamp
            else:
                times[key] = min(times[key], sample.timestamp)
            containers[container] = max(sample.value, 0.0)
    return usage, times


def map_resource_result(plan: QueryPlan, results: Sequence[QueryResult]) -> ResourceValues:
    """Pod or node usage from the CPU and memory results; objects missing either are left out
    (metrics-server and prometheus-adapter do the same) and listed in ``missing``.

    Raises PlanError(OBJECT_NOT_FOUND) when a single-object request got no usage.
    """
    _check_lengths(plan, results)
    request = plan.request
    if not isinstance(request, ResourceMetricsRequest):
        raise TypeError("map_resource_result needs a plan for a metrics.k8s.io request")
    nodes = request.resource == NODES
    container_label = plan.container_label or ""

    def container_of(labels: Mapping[str, str]) -> str | None:
        if nodes:
            return ""
        name = labels.get(container_label, "")
        # cAdvisor-style series of the pod's own cgroup ("" or "POD") are not containers.
        return None if name in ("", "POD") else name

    dropped: list[str] = []
    cpu, cpu_times = _collect_usage(plan, results, QueryRole.CPU, container_of, dropped)
    memory, memory_times = _collect_usage(plan, results, QueryRole.MEMORY, container_of, dropped)
    order = (
        plan.objects
        if plan.names_resolved
        else tuple(sorted(ObjectRef(*key) for key in {*cpu, *memory}))
    )
    pods: list[PodValues] = []
    node_values: list[NodeValues] = []
    missing: list[tuple[ObjectRef, str]] = []
    for ref in order:
        key = (ref.namespace, ref.name)
        cpu_of, memory_of = cpu.get(key), memory.get(key)
        if cpu_of is None or memory_of is None:
            lacking = " and ".join(
                what for what, have in (("CPU", cpu_of), ("memory", memory_of)) if have is None
            )
            missing.append((ref, f"no {lacking} samples"))
            continue
        timestamp = min(cpu_times[key], memory_times[key])
        if nodes:
            node_values.append(NodeValues(ref, timestamp, cpu_of[""], memory_of[""]))
            continue
        if cpu_of.keys() == memory_of.keys():
            names = sorted(cpu_of)
        else:
            names = sorted({*cpu_of, *memory_of})
            # metrics-server leaves such a pod out too: a zero would be read as a measurement.
            missing.append(
                (
                    ref,
                    "; ".join(
                        f"container {name} has no"
                        f" {'CPU' if name not in cpu_of else 'memory'} samples"
                        for name in names
                        if name not in cpu_of or name not in memory_of
                    ),
                )
            )
            continue
        containers = tuple(ContainerValues(name, cpu_of[name], memory_of[name]) for name in names)
        pods.append(PodValues(ref, timestamp, containers))
    if request.name is not None and missing:
        resource = "nodemetrics" if nodes else "podmetrics"
        name = str(ObjectRef(request.namespace, request.name))
        raise PlanError(
            PlanErrorReason.OBJECT_NOT_FOUND,
            f'{resource}.metrics.k8s.io "{name}" not found',
            [f"Prometheus has {missing[0][1]} for it"],
        )
    return ResourceValues(tuple(pods), tuple(node_values), tuple(missing), tuple(dropped))
