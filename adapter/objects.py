"""Kubernetes JSON objects the adapter serves: metrics, custom/external metric values, Status.

Pure builders: plain values in, ``dict`` out, keys in the order Go's ``encoding/json`` writes
them (struct field order; maps sorted), optional fields left out exactly where the Go types say
``omitempty``. Routes serialize the result with ``encode_json`` and never add fields.

Wire contracts (k8s.io/metrics types, checked against the upstream sources):

- ``metrics.k8s.io/v1beta1``: NodeMetrics / PodMetrics with ``window`` as a Go duration string,
  ``usage`` as canonical quantities (nanocores, bytes), lists sorted like metrics-server.
- ``custom.metrics.k8s.io``: v1beta2 items carry ``metric{name, selector}`` and
  ``windowSeconds``; v1beta1 items carry ``metricName``, ``window`` and a top-level
  ``selector``. Both serialize an absent selector as ``null`` and omit an absent window.
- ``external.metrics.k8s.io/v1beta1``: ``metricName``, ``metricLabels`` (always a map),
  ``timestamp``, ``window`` (omitted when absent), ``value``.
- ``Status`` (``v1``) for every error, shaped like ``k8s.io/apimachinery/pkg/api/errors``.

Exception tree::

    ObjectBuildError (ValueError)     the values cannot form a valid object; says which one
    ├── DuplicateObjectError          the same node / pod / object appears twice in one list
    └── UnsupportedSelectorError      a selector operator metav1.LabelSelector cannot express

Quantity problems (NaN, negative usage) surface as ``adapter.quantity.QuantityError``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from adapter.quantity import (
    QuantityError,
    cpu_quantity,
    format_duration,
    format_timestamp,
    memory_quantity,
    milli_quantity,
)

JsonObject = dict[str, Any]
Moment = datetime | float

METRICS_GROUP: Final = "metrics.k8s.io"
CUSTOM_METRICS_GROUP: Final = "custom.metrics.k8s.io"
EXTERNAL_METRICS_GROUP: Final = "external.metrics.k8s.io"
METRICS_API_VERSION: Final = "metrics.k8s.io/v1beta1"
EXTERNAL_METRICS_API_VERSION: Final = "external.metrics.k8s.io/v1beta1"
CUSTOM_METRICS_VERSIONS: Final = ("v1beta2", "v1beta1")


class ObjectBuildError(ValueError):
    """The given values cannot form a valid Kubernetes object."""


class DuplicateObjectError(ObjectBuildError):
    """One object appears twice in a list."""


class UnsupportedSelectorError(ObjectBuildError):
    """A selector requirement that metav1.LabelSelector cannot express (e.g. ``gt``)."""


# --- metrics.k8s.io ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    """One container's usage: CPU in cores (a rate), memory working set in bytes."""

    name: str
    cpu_cores: float
    memory_bytes: float


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """A node's usage, the Node object's labels, and when / over which window it was measured."""

    name: str
    labels: Mapping[str, str]
    timestamp: Moment
    window_seconds: float
    cpu_cores: float
    memory_bytes: float


@dataclass(frozen=True, slots=True)
class PodUsage:
    """A pod's per-container usage, the Pod object's labels, sample time and window."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    timestamp: Moment
    window_seconds: float
    containers: Sequence[ContainerUsage]


class _TimeTexts:
    """``format_timestamp`` and ``format_duration`` remembered for the items of one list.

    The items of a list share the creation time, the window and (nearly always) the query
    time, so 5,000 items need a handful of conversions instead of 15,000. A value that fails
    (NaN) is never stored, so it raises for every item as before.
    """

    __slots__ = ("_durations", "_timestamps")

    def __init__(self) -> None:
        self._timestamps: dict[Moment, str] = {}
        self._durations: dict[float, str] = {}

    def timestamp(self, moment: Moment) -> str:
        text = self._timestamps.get(moment)
        if text is None:
            text = self._timestamps[moment] = format_timestamp(moment)
        return text

    def duration(self, seconds: float) -> str:
        text = self._durations.get(seconds)
        if text is None:
            text = self._durations[seconds] = format_duration(seconds)
        return text


def _object_meta(
    name: str, namespace: str | None, labels: Mapping[str, str], created: str
) -> JsonObject:
    # ObjectMeta field order: name, namespace, creationTimestamp, labels (omitempty).
    meta: JsonObject = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = created
    if labels:
        meta["labels"] = dict(sorted(labels.items()))
    return meta


def _usage(cpu_cores: float, memory_bytes: float, where: str) -> JsonObject:
    try:
        return {"cpu": str(cpu_quantity(cpu_cores)), "memory": str(memory_quantity(memory_bytes))}
    except QuantityError as err:
        raise QuantityError(f"{where}: {err}") from err


def _node_item(usage: NodeUsage, created: Moment, times: _TimeTexts) -> JsonObject:
    return {
        "metadata": _object_meta(usage.name, None, usage.labels, times.timestamp(created)),
        "timestamp": times.timestamp(usage.timestamp),
        "window": times.duration(usage.window_seconds),
        "usage": _usage(usage.cpu_cores, usage.memory_bytes, f"node {usage.name}"),
    }


def _pod_item(usage: PodUsage, created: Moment, times: _TimeTexts) -> JsonObject:
    seen: set[str] = set()
    for container in usage.containers:
        if container.name in seen:
            raise DuplicateObjectError(
                f"pod {usage.namespace}/{usage.name}: container {container.name!r} appears twice"
            )
        seen.add(container.name)
    containers = [
        {
            "name": container.name,
            "usage": _usage(
                container.cpu_cores,
                container.memory_bytes,
                f"pod {usage.namespace}/{usage.name} container {container.name}",
            ),
        }
        for container in sorted(usage.containers, key=lambda c: c.name)
    ]
    return {
        "metadata": _object_meta(
            usage.name, usage.namespace, usage.labels, times.timestamp(created)
        ),
        "timestamp": times.timestamp(usage.timestamp),
        "window": times.duration(usage.window_seconds),
        "containers": containers,
    }


def node_metrics(usage: NodeUsage, *, created: Moment) -> JsonObject:
    """``GET /apis/metrics.k8s.io/v1beta1/nodes/NAME``. ``created`` is "now", as metrics-server."""
    return {
        "kind": "NodeMetrics",
        "apiVersion": METRICS_API_VERSION,
        **_node_item(usage, created, _TimeTexts()),
    }


def node_metrics_list(usages: Iterable[NodeUsage], *, created: Moment) -> JsonObject:
    """``GET /apis/metrics.k8s.io/v1beta1/nodes``: items sorted by node name."""
    ordered = sorted(usages, key=lambda u: u.name)
    _reject_duplicates([u.name for u in ordered], "node")
    times = _TimeTexts()
    return {
        "kind": "NodeMetricsList",
        "apiVersion": METRICS_API_VERSION,
        "metadata": {},
        "items": [_node_item(u, created, times) for u in ordered],
    }


def pod_metrics(usage: PodUsage, *, created: Moment) -> JsonObject:
    """``GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods/NAME``."""
    return {
        "kind": "PodMetrics",
        "apiVersion": METRICS_API_VERSION,
        **_pod_item(usage, created, _TimeTexts()),
    }


def pod_metrics_list(usages: Iterable[PodUsage], *, created: Moment) -> JsonObject:
    """``GET .../pods`` (all namespaces) or ``.../namespaces/NS/pods``: sorted by (ns, name)."""
    ordered = sorted(usages, key=lambda u: (u.namespace, u.name))
    _reject_duplicates([f"{u.namespace}/{u.name}" for u in ordered], "pod")
    times = _TimeTexts()
    return {
        "kind": "PodMetricsList",
        "apiVersion": METRICS_API_VERSION,
        "metadata": {},
        "items": [_pod_item(u, created, times) for u in ordered],
    }


def _reject_duplicates(sorted_keys: Sequence[str], what: str) -> None:
    for previous, current in itertools.pairwise(sorted_keys):
        if previous == current:
            raise DuplicateObjectError(f"{what} {current} appears twice in one list")


# --- label selectors -----------------------------------------------------------------------------

_EXPRESSION_OPERATORS: Final = {
    "in": "In",
    "notin": "NotIn",
    "!=": "NotIn",
    "exists": "Exists",
    "!": "DoesNotExist",
}


@dataclass(frozen=True, slots=True)
class SelectorRequirement:
    """One parsed label-selector requirement, with operators spelled as in selector text.

    ``operator`` is one of ``=``, ``==``, ``!=``, ``in``, ``notin``, ``exists``, ``!``.
    """

    key: str
    operator: str
    values: tuple[str, ...] = field(default=())


def label_selector(requirements: Sequence[SelectorRequirement]) -> JsonObject | None:
    """``metav1.LabelSelector`` JSON for a parsed selector, or None when it is empty.

    Follows ``metav1.ParseToLabelSelector``: equality goes to ``matchLabels``, the rest to
    ``matchExpressions`` in key order with sorted values. ``!=`` becomes ``NotIn`` with one value
    (upstream rejects it; it means the same thing).
    """
    match_labels: dict[str, str] = {}
    expressions: list[JsonObject] = []
    for requirement in sorted(requirements, key=lambda r: r.key):
        if requirement.operator in ("=", "=="):
            if len(requirement.values) != 1:
                raise UnsupportedSelectorError(
                    f"selector key {requirement.key!r}: {requirement.operator} needs exactly one "
                    f"value, got {len(requirement.values)}"
                )
            match_labels[requirement.key] = requirement.values[0]
            continue
        operator = _EXPRESSION_OPERATORS.get(requirement.operator)
        if operator is None:
            raise UnsupportedSelectorError(
                f"selector key {requirement.key!r}: operator {requirement.operator!r} cannot be "
                "written as a metav1.LabelSelector (use =, !=, in, notin, exists or !)"
            )
        expression: JsonObject = {"key": requirement.key, "operator": operator}
        if requirement.values:
            expression["values"] = sorted(set(requirement.values))
        expressions.append(expression)
    if not match_labels and not expressions:
        return None
    selector: JsonObject = {}
    if match_labels:
        selector["matchLabels"] = dict(sorted(match_labels.items()))
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


# --- custom.metrics.k8s.io -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectReference:
    """The object a custom metric describes (``describedObject``).

    ``api_version`` is the object's group/version, ``v1`` for core kinds. (prometheus-adapter
    writes ``/v1`` there; the HPA only reads ``name``.)
    """

    kind: str
    name: str
    namespace: str | None = None
    api_version: str = "v1"

    def to_json(self) -> JsonObject:
        # ObjectReference field order: kind, namespace, name, uid, apiVersion; all omitempty.
        reference: JsonObject = {"kind": self.kind}
        if self.namespace:
            reference["namespace"] = self.namespace
        reference["name"] = self.name
        if self.api_version:
            reference["apiVersion"] = self.api_version
        return reference


@dataclass(frozen=True, slots=True)
class CustomMetricSample:
    """One value of a custom metric for one object."""

    described_object: ObjectReference
    timestamp: Moment
    value: float
    window_seconds: int | None = None


def metric_value_list(
    version: str,
    metric_name: str,
    samples: Iterable[CustomMetricSample],
    metric_selector: Sequence[SelectorRequirement] = (),
) -> JsonObject:
    """``custom.metrics.k8s.io`` ``MetricValueList`` in ``v1beta2`` or ``v1beta1``.

    Used for every custom-metrics answer, single objects included (one item). Items are sorted
    by (namespace, name); ``metric_selector`` is the request's ``metricLabelSelector``, echoed
    in each item. Values are milli-quantities (``milli_quantity``); a NaN raises QuantityError.
    """
    if version not in CUSTOM_METRICS_VERSIONS:
        raise ObjectBuildError(
            f"custom metrics version {version!r} is not served; use one of "
            f"{', '.join(CUSTOM_METRICS_VERSIONS)}"
        )
    selector = label_selector(metric_selector)
    ordered = sorted(
        samples, key=lambda s: (s.described_object.namespace or "", s.described_object.name)
    )
    keys = [
        f"{s.described_object.kind} {s.described_object.namespace or ''}/{s.described_object.name}"
        for s in ordered
    ]
    _reject_duplicates(keys, "object")
    times = _TimeTexts()
    items = [_metric_value(version, metric_name, sample, selector, times) for sample in ordered]
    return {
        "kind": "MetricValueList",
        "apiVersion": f"{CUSTOM_METRICS_GROUP}/{version}",
        "metadata": {},
        "items": items,
    }


def _metric_value(
    version: str,
    metric_name: str,
    sample: CustomMetricSample,
    selector: JsonObject | None,
    times: _TimeTexts,
) -> JsonObject:
    reference = sample.described_object
    try:
        value = str(milli_quantity(sample.value))
    except QuantityError as err:
        raise QuantityError(
            f"metric {metric_name} for {reference.kind} {reference.name}: {err}"
        ) from err
    item: JsonObject = {"describedObject": reference.to_json()}
    if version == "v1beta2":
        item["metric"] = {"name": metric_name, "selector": selector}
    else:
        item["metricName"] = metric_name
    item["timestamp"] = times.timestamp(sample.timestamp)
    if sample.window_seconds is not None:
        item["windowSeconds" if version == "v1beta2" else "window"] = sample.window_seconds
    item["value"] = value
    if version == "v1beta1":
        item["selector"] = selector
    return item


# --- external.metrics.k8s.io ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExternalMetricSample:
    """One series of an external metric: its labels, sample time and value."""

    labels: Mapping[str, str]
    timestamp: Moment
    value: float
    window_seconds: int | None = None


def external_metric_value_list(
    metric_name: str, samples: Iterable[ExternalMetricSample]
) -> JsonObject:
    """``external.metrics.k8s.io/v1beta1`` ``ExternalMetricValueList``, items sorted by labels."""
    ordered = sorted(samples, key=lambda s: sorted(s.labels.items()))
    items: list[JsonObject] = []
    for sample in ordered:
        try:
            value = str(milli_quantity(sample.value))
        except QuantityError as err:
            raise QuantityError(
                f"external metric {metric_name} series {dict(sample.labels)}: {err}"
            ) from err
        item: JsonObject = {
            "metricName": metric_name,
            "metricLabels": dict(sorted(sample.labels.items())),
            "timestamp": format_timestamp(sample.timestamp),
        }
        if sample.window_seconds is not None:
            item["window"] = sample.window_seconds
        item["value"] = value
        items.append(item)
    return {
        "kind": "ExternalMetricValueList",
        "apiVersion": EXTERNAL_METRICS_API_VERSION,
        "metadata": {},
        "items": items,
    }


# --- Status --------------------------------------------------------------------------------------


def status(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> JsonObject:
    """A failure ``Status``; ``details`` is left out when None (it is a pointer, omitempty)."""
    body: JsonObject = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = dict(details)
    body["code"] = code
    return body


def _status_details(
    name: str = "", group: str = "", kind: str = "", causes: Sequence[str] = ()
) -> JsonObject:
    # StatusDetails field order: name, group, kind, uid, causes, retryAfterSeconds; omitempty.
    details: JsonObject = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    if causes:
        details["causes"] = [{"message": cause} for cause in causes]
    return details


def _with_hint(message: str, hint: str | None) -> str:
    return f"{message}; {hint}" if hint else message


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def status_bad_request(message: str) -> JsonObject:
    """400 BadRequest (``NewBadRequest``): e.g. a selector that does not parse."""
    return status(400, "BadRequest", message)


_HTML_SANITIZER: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def status_unauthorized(message: str = "Unauthorized") -> JsonObject:
    """401 Unauthorized, as the authentication filter writes it."""
    return status(401, "Unauthorized", message)


def status_forbidden(
    *,
    user: str,
    verb: str,
    group: str = "",
    resource: str = "",
    subresource: str = "",
    name: str = "",
    namespace: str = "",
    path: str = "",
    reason: str = "",
) -> JsonObject:
    """403 Forbidden worded like kube-apiserver's authorization filter.

    A resource request (``resource`` set) gives e.g. ``pods.custom.metrics.k8s.io "*" is
    forbidden: User "alice" cannot get resource "pods/http_requests" in API group
    "custom.metrics.k8s.io" in the namespace "default"``; otherwise the non-resource ``path``
    form is used. ``reason`` (the SubjectAccessReview's) is appended after a colon.
    """
    if resource:
        full_resource = f"{resource}/{subresource}" if subresource else resource
        scope = f"in the namespace {_go_quote(namespace)}" if namespace else "at the cluster scope"
        denial = (
            f"User {_go_quote(user)} cannot {verb} resource {_go_quote(full_resource)} "
            f"in API group {_go_quote(group)} {scope}"
        )
    else:
        denial = f"User {_go_quote(user)} cannot {verb} path {_go_quote(path)}"
    # kube-apiserver HTML-escapes the denial (not the authorizer's reason) so a crafted path or
    # user name cannot turn the message into markup in a browser.
    denial = denial.translate(_HTML_SANITIZER)
    if reason:
        denial = f"{denial}: {reason}"
    if not resource and not group:
        message = f"forbidden: {denial}"
    elif name:
        message = f"{_qualified(resource, group)} {_go_quote(name)} is forbidden: {denial}"
    else:
        message = f"{_qualified(resource, group)} is forbidden: {denial}"
    return status(403, "Forbidden", message, _status_details(name=name, group=group, kind=resource))


def status_not_found(
    message: str, *, name: str = "", group: str = "", kind: str = ""
) -> JsonObject:
    """404 NotFound with a free message; details only when name/group/kind are given."""
    details = (
        _status_details(name=name, group=group, kind=kind) if (name or group or kind) else None
    )
    return status(404, "NotFound", message, details)


def status_object_not_found(resource: str, group: str, name: str) -> JsonObject:
    """404 like ``NewNotFound``: ``podmetrics.metrics.k8s.io "default/web-1" not found``."""
    return status(
        404,
        "NotFound",
        f"{_qualified(resource, group)} {_go_quote(name)} not found",
        _status_details(name=name, group=group, kind=resource),
    )


def status_metric_not_found(
    metric: str,
    group_resource: str,
    *,
    name: str = "",
    selector: str = "",
    hint: str | None = None,
) -> JsonObject:
    """404 for a custom or external metric, worded like custom-metrics-apiserver.

    ``the server could not find the metric M for pods[ NAME][ with selector S]``, then ``hint``
    (what to fix, e.g. the rules that could serve it) after a semicolon. No details, as upstream.
    """
    message = f"the server could not find the metric {metric} for {group_resource}"
    if name:
        message += f" {name}"
    if selector:
        message += f" with selector {selector}"
    return status(404, "NotFound", _with_hint(message, hint))


def status_method_not_allowed(method: str, path: str) -> JsonObject:
    """405 MethodNotAllowed: every metrics API is read-only (GET)."""
    return status(
        405,
        "MethodNotAllowed",
        f"{method} is not supported on {path}; the metrics APIs are read-only, use GET",
    )


def status_not_acceptable(accepted: Sequence[str] = ("application/json",)) -> JsonObject:
    """406 NotAcceptable, worded like the apiserver's content negotiation."""
    return status(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: {', '.join(accepted)}",
    )


def status_internal(cause: str, *, hint: str | None = None) -> JsonObject:
    """500 InternalError (``NewInternalError``). ``cause`` must be safe to show to clients."""
    return status(
        500,
        "InternalError",
        _with_hint(f"Internal error occurred: {cause}", hint),
        _status_details(causes=[cause]),
    )


def status_service_unavailable(
    message: str, *, retry_after_seconds: int | None = None
) -> JsonObject:
    """503 ServiceUnavailable (e.g. Prometheus unreachable); optional retry hint in details."""
    details = None if retry_after_seconds is None else {"retryAfterSeconds": retry_after_seconds}
    return status(503, "ServiceUnavailable", message, details)


def status_timeout(message: str, *, retry_after_seconds: int | None = None) -> JsonObject:
    """504 Timeout (``NewTimeoutError``): the upstream query ran out of time."""
    details = None if retry_after_seconds is None else {"retryAfterSeconds": retry_after_seconds}
    return status(504, "Timeout", f"Timeout: {message}", details)


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the printable strings Kubernetes names and users are made of."""
    return json.dumps(text, ensure_ascii=False)


# --- serialization -------------------------------------------------------------------------------


def encode_json(document: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON in the builders' key order, as the response body."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
