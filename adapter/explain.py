"""``kubemetrics-adapter explain``: what the adapter does with one metrics API request, and why.

For a request path it reports, stage by stage, the parsed request, what discovery found, the
rule that matched (or why none did, with the closest metric names), the objects a ``*`` or list
request selects, the exact PromQL, and the values Prometheus returned per object. The same data
is a JSON-ready dict (``--output json``; the API server's debug endpoint serves it).

:func:`explain_request` is the core: it takes the registry, the catalog, a Prometheus client and
an optional object lister behind small protocols, so tests and the server hand it what they
have. :func:`run_explain` is the CLI shell (rules file, discovery once, kubeconfig).

Exit codes (:attr:`Explanation.exit_code`): 0 values found, 1 not found / no values / a query
or the cluster failed, 2 a usage or configuration error (bad path or selector, broken rules).

Exception tree::

    ObjectListError     the cluster could not list the objects a request selects
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TextIO

from adapter.config import ConfigError, load_config_file
from adapter.discovery import DiscoverySettings, MetricDiscovery
from adapter.planner import (
    CustomValues,
    ExternalValues,
    ObjectRef,
    PlanError,
    PlanErrorReason,
    QueryPlan,
    ResourceValues,
    map_custom_result,
    map_external_result,
    map_resource_result,
    plan_request,
)
from adapter.prometheus import (
    PrometheusAPI,
    PrometheusClient,
    PrometheusConfigError,
    PrometheusError,
    PrometheusSettings,
    QueryResult,
    VectorResult,
)
from adapter.promql import DEFAULT_MAX_QUERY_BYTES
from adapter.quantity import format_timestamp
from adapter.registry import MetricRegistry
from adapter.request_paths import (
    CustomMetricsRequest,
    ExternalMetricsRequest,
    MetricsRequest,
    RequestPathError,
    ResourceMetricsRequest,
    parse_request_target,
)
from adapter.resources import BuiltinResourceCatalog, GroupResource, ResourceCatalog
from adapter.rules import compile_config
from adapter.selectors import FieldSelector, LabelSelector

__all__ = [
    "EXIT_FOUND",
    "EXIT_NOT_FOUND",
    "EXIT_USAGE",
    "Explanation",
    "KubernetesObjectLister",
    "ObjectListError",
    "ObjectLister",
    "explain_request",
    "render_text",
]

EXIT_FOUND: Final = 0
EXIT_NOT_FOUND: Final = 1
EXIT_USAGE: Final = 2

_USAGE_REASONS: Final = frozenset({PlanErrorReason.BAD_REQUEST, PlanErrorReason.RULE_ERROR})


class ObjectListError(Exception):
    """Listing objects from the cluster failed; the message names the request."""


class ObjectLister(Protocol):
    """Resolves a ``*`` custom request or a metrics.k8s.io list to object names."""

    def list_objects(
        self,
        resource: GroupResource,
        namespace: str | None,
        label_selector: LabelSelector,
        field_selector: FieldSelector,
    ) -> list[ObjectRef]: ...


@dataclass
class Explanation:
    """Everything explain found out, stage by stage; ``to_dict`` is the JSON form."""

    target: str
    request: MetricsRequest | None = None
    discovery: dict[str, Any] = field(default_factory=dict)
    objects_source: str = ""
    plan: QueryPlan | None = None
    queries: list[dict[str, Any]] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_USAGE if self.error.get("usage") else EXIT_NOT_FOUND
        return EXIT_FOUND if self.values else EXIT_NOT_FOUND

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return f"{self.error['stage']} failed"
        if self.values:
            return f"found {len(self.values)} value{'s' if len(self.values) != 1 else ''}"
        return "no values"

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "target": self.target,
            "request": _describe_request(self.request) if self.request else None,
            "discovery": self.discovery,
            "rule": None
            if plan is None
            else {
                "location": plan.rule_location,
                "line": plan.rule_line,
                "series": plan.series,
                "groupResource": str(plan.group_resource) if plan.group_resource else None,
                "resourceLabel": plan.resource_label,
                "namespaceLabel": plan.namespace_label,
                "containerLabel": plan.container_label,
            },
            "objects": None
            if plan is None
            else {
                "source": self.objects_source,
                "resolved": plan.names_resolved,
                "names": [str(o) for o in plan.objects],
            },
            "notes": list(plan.notes) if plan else [],
            "queries": self.queries,
            "values": self.values,
            "missing": self.missing,
            "dropped": self.dropped,
            "error": self.error,
            "outcome": self.outcome,
            "exitCode": self.exit_code,
        }


def _describe_request(request: MetricsRequest) -> dict[str, Any]:
    described: dict[str, Any] = {"api": f"{request.api}/{request.version}"}
    if isinstance(request, CustomMetricsRequest):
        described |= {
            "resource": str(request.resource),
            "namespace": request.namespace,
            "name": request.name,
            "metric": request.metric,
            "labelSelector": str(request.label_selector),
            "metricLabelSelector": str(request.metric_selector),
        }
    elif isinstance(request, ExternalMetricsRequest):
        described |= {
            "namespace": request.namespace,
            "metric": request.metric,
            "labelSelector": str(request.selector),
        }
    else:
        described |= {
            "resource": str(request.resource),
            "namespace": request.namespace,
            "name": request.name,
            "labelSelector": str(request.label_selector),
            "fieldSelector": str(request.field_selector),
        }
    return described


def describe_discovery(
    registry: MetricRegistry, errors: dict[str, str], *, ran: bool = True
) -> dict[str, Any]:
    return {
        "ran": ran,
        "seriesQueries": len(
            {r.series_query for r in (*registry.config.rules, *registry.config.external_rules)}
        ),
        "customMetrics": len(registry.custom_metrics()),
        "externalMetrics": len(registry.external_metrics()),
        "errors": dict(sorted(errors.items())),
    }


def _plan_error(stage: str, err: PlanError) -> dict[str, Any]:
    return {
        "stage": stage,
        "status": err.status,
        "reason": err.status_reason,
        "message": err.message,
        "hints": list(err.hints),
        "candidates": list(err.candidates),
        "usage": err.reason in _USAGE_REASONS,
    }


def _simple_error(stage: str, status: int, message: str, *, usage: bool) -> dict[str, Any]:
    reason = {400: "BadRequest", 404: "NotFound", 503: "ServiceUnavailable"}.get(
        status, "InternalError"
    )
    return {
        "stage": stage,
        "status": status,
        "reason": reason,
        "message": message,
        "hints": [],
        "candidates": [],
        "usage": usage,
    }


def _objects_to_list(
    request: MetricsRequest, catalog: ResourceCatalog
) -> tuple[GroupResource, str | None, LabelSelector, FieldSelector] | None:
    """What to list for a request that selects objects, or None for one that names them."""
    if isinstance(request, CustomMetricsRequest) and request.all_objects:
        gr = catalog.normalize(request.resource.group, request.resource.resource)
        if gr is None:
            return None  # the planner explains the unknown resource
        return gr, request.namespace, request.label_selector, FieldSelector()
    if isinstance(request, ResourceMetricsRequest) and request.is_list:
        return request.resource, request.namespace, request.label_selector, request.field_selector
    return None


def _format_value(value: float) -> str:
    return repr(value) if value != int(value) else str(int(value))


def explain_request(
    target: str,
    *,
    registry: MetricRegistry,
    catalog: ResourceCatalog,
    prometheus: PrometheusAPI,
    lister: ObjectLister | None,
    discovery_errors: dict[str, str] | None = None,
    discovery_ran: bool = True,
    at: float | None = None,
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
) -> Explanation:
    """Parse, plan, query and map one request; every failure is recorded, never raised."""
    result = Explanation(
        target,
        discovery=describe_discovery(registry, discovery_errors or {}, ran=discovery_ran),
    )
    try:
        request = parse_request_target(target)
    except RequestPathError as err:
        result.error = _simple_error("request", err.status, str(err), usage=True)
        return result
    result.request = request
    objects: list[ObjectRef] | None = None
    to_list = _objects_to_list(request, catalog)
    if to_list is None:
        result.objects_source = "the request"
    elif lister is None:
        result.objects_source = "not resolved (no --kubeconfig)"
    else:
        try:
            objects = lister.list_objects(*to_list)
        except ObjectListError as err:
            result.error = _simple_error("cluster", 503, str(err), usage=False)
            return result
        result.objects_source = "the cluster"
    try:
        plan = plan_request(
            request,
            registry=registry,
            catalog=catalog,
            objects=objects,
            max_query_bytes=max_query_bytes,
        )
    except PlanError as err:
        result.error = _plan_error("plan", err)
        return result
    result.plan = plan
    answers: list[QueryResult] = []
    for step in plan.steps:
        entry: dict[str, Any] = {"role": str(step.role), "query": step.query}
        if step.namespace:
            entry["namespace"] = step.namespace
        result.queries.append(entry)
        try:
            answer = prometheus.query(step.query, at)
        except PrometheusError as err:
            result.error = _simple_error("query", 503, str(err), usage=False)
            return result
        entry["samples"] = len(answer.samples) if isinstance(answer, VectorResult) else 1
        if answer.warnings:
            entry["warnings"] = list(answer.warnings)
        answers.append(answer)
    try:
        if isinstance(request, CustomMetricsRequest):
            _record_custom(result, map_custom_result(plan, answers))
        elif isinstance(request, ExternalMetricsRequest):
            _record_external(result, map_external_result(plan, answers))
        else:
            _record_resource(result, map_resource_result(plan, answers))
    except PlanError as err:
        result.error = _plan_error("result", err)
    return result


def _record_custom(result: Explanation, values: CustomValues) -> None:
    result.values = [
        {
            "object": str(v.object),
            "value": _format_value(v.value),
            "timestamp": format_timestamp(v.timestamp),
        }
        for v in values.values
    ]
    result.missing = [f"{ref}: no sample" for ref in values.missing]
    result.dropped = list(values.dropped)


def _record_external(result: Explanation, values: ExternalValues) -> None:
    result.values = [
        {
            "labels": dict(sorted(v.labels.items())),
            "value": _format_value(v.value),
            "timestamp": format_timestamp(v.timestamp),
        }
        for v in values.values
    ]
    result.dropped = list(values.dropped)


def _record_resource(result: Explanation, values: ResourceValues) -> None:
    for node in values.nodes:
        result.values.append(
            {
                "object": str(node.object),
                "cpuCores": _format_value(node.cpu_cores),
                "memoryBytes": _format_value(node.memory_bytes),
                "timestamp": format_timestamp(node.timestamp),
            }
        )
    for pod in values.pods:
        result.values.append(
            {
                "object": str(pod.object),
                "containers": [
                    {
                        "name": c.name,
                        "cpuCores": _format_value(c.cpu_cores),
                        "memoryBytes": _format_value(c.memory_bytes),
                    }
                    for c in pod.containers
                ],
                "timestamp": format_timestamp(pod.timestamp),
            }
        )
    result.missing = [f"{ref}: {why}" for ref, why in values.missing]
    result.dropped = list(values.dropped)


# --- text rendering ----------------------------------------------------------------------------


def _value_line(value: dict[str, Any]) -> list[str]:
    if "labels" in value:
        labels = ",".join(f"{k}={v}" for k, v in value["labels"].items()) or "(no labels)"
        return [f"  {labels}  {value['value']}  at {value['timestamp']}"]
    if "containers" in value:
        lines = [f"  {value['object']}  at {value['timestamp']}"]
        lines += [
            f"    {c['name'] or '(no container)'}: cpu {c['cpuCores']} cores,"
            f" memory {c['memoryBytes']} bytes"
            for c in value["containers"]
        ]
        return lines
    if "cpuCores" in value:
        return [
            f"  {value['object']}  cpu {value['cpuCores']} cores, memory {value['memoryBytes']}"
            f" bytes  at {value['timestamp']}"
        ]
    return [f"  {value['object']}  {value['value']}  at {value['timestamp']}"]


def render_text(explanation: Explanation) -> str:
    """The human-readable report (stable: used as a golden)."""
    data = explanation.to_dict()
    lines = [f"request:    {data['target']}"]
    request = data["request"]
    if request is not None:
        parts = [f"{k}={v}" for k, v in request.items() if k != "api" and v not in (None, "")]
        lines.append(f"parsed:     {request['api']} {' '.join(parts)}")
    discovery = data["discovery"]
    if discovery.get("ran", True):
        lines.append(
            f"discovery:  {discovery['customMetrics']} custom and"
            f" {discovery['externalMetrics']} external metrics from"
            f" {discovery['seriesQueries']} seriesQueries"
        )
    else:
        lines.append("discovery:  not needed (metrics.k8s.io uses resourceRules only)")
    for query, error in discovery["errors"].items():
        lines.append(f"            failed for {query}: {error}")
    rule = data["rule"]
    if rule is not None:
        where = f" (line {rule['line']})" if rule["line"] else ""
        series = f", series {rule['series']}" if rule["series"] else ""
        lines.append(f"rule:       {rule['location']}{where}{series}")
        labels = [
            f"{name} label {rule[key]}"
            for name, key in (
                ("resource", "resourceLabel"),
                ("namespace", "namespaceLabel"),
                ("container", "containerLabel"),
            )
            if rule[key]
        ]
        if labels:
            lines.append(f"labels:     {', '.join(labels)}")
    objects = data["objects"]
    if objects is not None and not objects["resolved"]:
        lines.append(f"objects:    {objects['source']}")
    elif objects is not None and objects["names"]:
        lines.append(f"objects:    from {objects['source']}: {', '.join(objects['names'])}")
    elif objects is not None and objects["source"] != "the request":
        lines.append(f"objects:    from {objects['source']}: none match")
    for index, query in enumerate(data["queries"], start=1):
        role = f" [{query['role']}]" if query["role"] != "value" else ""
        lines.append(f"query {index}{role}: ".ljust(12) + query["query"])
        if "samples" in query:
            count = query["samples"]
            lines.append(f"            -> {count} sample{'s' if count != 1 else ''}")
        for warning in query.get("warnings", []):
            lines.append(f"            warning: {warning}")
    if data["values"]:
        lines.append("values:")
        for value in data["values"]:
            lines.extend(_value_line(value))
    for title, key in (("missing", "missing"), ("dropped", "dropped"), ("note", "notes")):
        for item in data[key]:
            lines.append(f"{title}:".ljust(12) + item)
    error = data["error"]
    if error is not None:
        lines.append(f"error:      {error['status']} {error['reason']}: {error['message']}")
        for hint in error["hints"]:
            lines.append(f"  why:      {hint}")
        if error["candidates"]:
            lines.append(f"  closest:  {', '.join(error['candidates'])}")
    lines.append(f"outcome:    {data['outcome']} (exit {data['exitCode']})")
    return "\n".join(lines) + "\n"


def write_explanation(explanation: Explanation, output: str, stream: TextIO) -> None:
    if output == "json":
        stream.write(json.dumps(explanation.to_dict(), indent=2) + "\n")
    else:
        stream.write(render_text(explanation))


# --- the cluster shell -------------------------------------------------------------------------


class KubernetesObjectLister:
    """Lists objects with the official ``kubernetes`` client (one LIST per call, names only)."""

    def __init__(self, kubeconfig: str | Path, timeout_seconds: float = 10.0) -> None:
        from kubernetes import config  # noqa: PLC0415 - only explain with --kubeconfig

        self._api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
        self._timeout = timeout_seconds

    def close(self) -> None:
        self._api.close()

    def _get(self, path: str, query: list[tuple[str, str]], what: str) -> Any:
        request = self._api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response: Any = self._api.call_api(*request, _request_timeout=self._timeout)
            status = int(response.status)
            body = response.read()
        except Exception as err:
            raise ObjectListError(f"listing {what}: {type(err).__name__}: {err}"[:300]) from None
        if not 200 <= status <= 299:
            hint = "; the kubeconfig's user needs list on it" if status in (401, 403) else ""
            raise ObjectListError(f"listing {what}: the API server answered {status}{hint}")
        try:
            return json.loads(body)
        except ValueError:
            raise ObjectListError(f"listing {what}: the answer is not JSON") from None

    def _collection_path(self, resource: GroupResource, namespace: str | None) -> str:
        if resource.group:
            group = self._get(f"/apis/{resource.group}", [], f"API group {resource.group}")
            try:
                group_version = str(group["preferredVersion"]["groupVersion"])
            except (KeyError, TypeError):
                raise ObjectListError(
                    f"API group {resource.group} has no preferred version"
                ) from None
            prefix = f"/apis/{group_version}"
        else:
            prefix = "/api/v1"
        scope = f"/namespaces/{namespace}" if namespace else ""
        return f"{prefix}{scope}/{resource.resource}"

    def list_objects(
        self,
        resource: GroupResource,
        namespace: str | None,
        label_selector: LabelSelector,
        field_selector: FieldSelector,
    ) -> list[ObjectRef]:
        what = f"{resource}" + (f" in namespace {namespace}" if namespace else "")
        query = []
        if not label_selector.empty:
            query.append(("labelSelector", str(label_selector)))
        if not field_selector.empty:
            query.append(("fieldSelector", str(field_selector)))
        body = self._get(self._collection_path(resource, namespace), query, what)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ObjectListError(f"listing {what}: the answer has no items list")
        found: list[ObjectRef] = []
        for item in items:
            metadata = item.get("metadata") if isinstance(item, dict) else None
            if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
                raise ObjectListError(f"listing {what}: an item has no metadata.name")
            item_namespace = metadata.get("namespace")
            found.append(
                ObjectRef(
                    item_namespace if isinstance(item_namespace, str) and item_namespace else None,
                    metadata["name"],
                )
            )
        return found


# --- the CLI shell -----------------------------------------------------------------------------


def run_explain(
    *,
    config_file: str,
    prometheus_settings: PrometheusSettings,
    target: str,
    kubeconfig: str | None,
    output: str,
    at: float | None,
    max_query_bytes: int,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    lister: ObjectLister | None = None,
) -> int:
    """Load the rules, discover once, explain ``target`` and print it; returns the exit code.

    ``lister`` replaces the one built from ``kubeconfig`` (tests pass a fake cluster).
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    catalog = BuiltinResourceCatalog()
    try:
        config = compile_config(load_config_file(config_file), catalog)
    except ConfigError as err:
        print(f"kubemetrics-adapter explain: {err}", file=stderr)
        return EXIT_USAGE
    try:
        client = PrometheusClient(prometheus_settings)
    except PrometheusConfigError as err:
        print(f"kubemetrics-adapter explain: {err}", file=stderr)
        return EXIT_USAGE
    own_lister: KubernetesObjectLister | None = None
    if lister is None and kubeconfig is not None:
        try:
            own_lister = lister = KubernetesObjectLister(kubeconfig)
        except Exception as err:
            print(f"kubemetrics-adapter explain: --kubeconfig {kubeconfig!r}: {err}", file=stderr)
            return EXIT_USAGE
    try:
        clock = (lambda: at) if at is not None else time.time
        discovery = MetricDiscovery(client, config, DiscoverySettings(), clock=clock)
        needs_discovery = not _is_resource_target(target)
        registry = discovery.refresh() if needs_discovery else discovery.registry
        explanation = explain_request(
            target,
            registry=registry,
            catalog=catalog,
            prometheus=client,
            lister=lister,
            discovery_errors=discovery.errors(),
            discovery_ran=needs_discovery,
            at=at,
            max_query_bytes=max_query_bytes,
        )
    finally:
        client.close()
        if own_lister is not None:
            own_lister.close()
    write_explanation(explanation, output, stdout)
    return explanation.exit_code


def _is_resource_target(target: str) -> bool:
    try:
        return isinstance(parse_request_target(target), ResourceMetricsRequest)
    except RequestPathError:
        return True  # nothing to discover for a request that will not parse
