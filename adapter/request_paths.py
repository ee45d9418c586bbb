"""Metrics API request paths → typed requests (pure).

The API server, ``kubemetrics-adapter explain`` and the debug endpoint all start from a request
path and its raw query string, as kube-aggregator forwards them:

- every path segment is percent-decoded (the HPA's ``*`` arrives as ``%2A``);
- the query string is form-decoded (the aggregator re-encodes it: ``app%3Dweb``,
  ``tier+in+%28a%2Cb%29``); the first value of a repeated parameter wins, as in
  apimachinery's parameter codec; parameters this API does not use (``timeout``, ``pretty``,
  ``resourceVersion``) are ignored.

Paths served (after ``/apis/``):

- ``metrics.k8s.io/v1beta1``: ``nodes``, ``nodes/NAME``, ``pods``, ``namespaces/NS/pods``,
  ``namespaces/NS/pods/NAME`` (``labelSelector``, ``fieldSelector``);
- ``custom.metrics.k8s.io/{v1beta1,v1beta2}``: ``namespaces/NS/RESOURCE/NAME/METRIC``,
  ``RESOURCE/NAME/METRIC`` (root-scoped), ``namespaces/NS/metrics/METRIC`` (the namespace
  itself), where ``NAME`` may be ``*`` (every object matching ``labelSelector``) and
  ``RESOURCE`` may be qualified (``deployments.apps``, split at the first ``.``);
  ``metricLabelSelector`` selects among the metric's series;
- ``external.metrics.k8s.io/v1beta1``: ``namespaces/NS/METRIC`` (``labelSelector``).

Exception tree::

    RequestPathError (ValueError)    the request cannot be served; ``status`` and ``reason``
    │                                say how the API layer answers (a ``Status`` object)
    ├── BadRequestError              400 BadRequest: malformed name, selector or encoding
    └── PathNotFoundError            404 NotFound: no metrics API serves this path
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Final
from urllib.parse import parse_qs, unquote, urlsplit

from adapter.resources import NODES, PODS, GroupResource
from adapter.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

__all__ = [
    "ALL_OBJECTS",
    "RESOURCE_FIELD_SELECTOR_FIELDS",
    "BadRequestError",
    "CustomMetricsRequest",
    "ExternalMetricsRequest",
    "MetricsAPI",
    "MetricsRequest",
    "PathNotFoundError",
    "RequestPathError",
    "ResourceMetricsRequest",
    "parse_request",
    "parse_request_target",
]

ALL_OBJECTS: Final = "*"
"""The object name meaning "every object matching labelSelector" (``v1beta1.AllObjects``)."""

RESOURCE_FIELD_SELECTOR_FIELDS: Final = ("metadata.name", "metadata.namespace")
"""Fields metrics-server evaluates in ``fieldSelector`` for pods and nodes."""

_CUSTOM_VERSIONS: Final = ("v1beta1", "v1beta2")
_EVERYTHING: Final = LabelSelector()
_NO_FIELDS: Final = FieldSelector()


class RequestPathError(ValueError):
    """A request that no metrics API can serve; ``str(err)`` says what is wrong and where."""

    status: ClassVar[int] = 400
    reason: ClassVar[str] = "BadRequest"


class BadRequestError(RequestPathError):
    """The path has the right shape but a part of it, or of the query, is malformed."""


class PathNotFoundError(RequestPathError):
    """No metrics API serves a path of this shape."""

    status = 404
    reason = "NotFound"


class MetricsAPI(StrEnum):
    """The three API groups, by their group name."""

    RESOURCE = "metrics.k8s.io"
    CUSTOM = "custom.metrics.k8s.io"
    EXTERNAL = "external.metrics.k8s.io"


@dataclass(frozen=True, slots=True)
class ResourceMetricsRequest:
    """A ``metrics.k8s.io/v1beta1`` request for nodes or pods."""

    api: ClassVar[MetricsAPI] = MetricsAPI.RESOURCE
    version: str
    resource: GroupResource
    """NODES or PODS."""
    namespace: str | None
    """The pods' namespace; None for nodes and for pods across all namespaces."""
    name: str | None
    """One object (a GET); None for a list."""
    label_selector: LabelSelector = _EVERYTHING
    field_selector: FieldSelector = _NO_FIELDS

    @property
    def is_list(self) -> bool:
        return self.name is None


@dataclass(frozen=True, slots=True)
class CustomMetricsRequest:
    """A ``custom.metrics.k8s.io`` request for one object or every object matching a selector.

    ``/namespaces/NS/metrics/METRIC`` is the metric of the namespace object ``NS``:
    ``resource`` is ``namespaces``, ``name`` is ``NS`` and ``namespace`` is None, as
    custom-metrics-apiserver rewrites it.
    """

    api: ClassVar[MetricsAPI] = MetricsAPI.CUSTOM
    version: str
    resource: GroupResource
    """As written in the path (``pods``, ``deployments.apps``), not yet normalized."""
    namespace: str | None
    """None for root-scoped objects (nodes, namespaces)."""
    name: str
    """An object name, or ALL_OBJECTS."""
    metric: str
    label_selector: LabelSelector = _EVERYTHING
    metric_selector: LabelSelector = _EVERYTHING

    @property
    def all_objects(self) -> bool:
        return self.name == ALL_OBJECTS

    @property
    def namespaced(self) -> bool:
        return self.namespace is not None


@dataclass(frozen=True, slots=True)
class ExternalMetricsRequest:
    """An ``external.metrics.k8s.io/v1beta1`` request: a metric in a namespace."""

    api: ClassVar[MetricsAPI] = MetricsAPI.EXTERNAL
    version: str
    namespace: str
    metric: str
    selector: LabelSelector = _EVERYTHING


MetricsRequest = ResourceMetricsRequest | CustomMetricsRequest | ExternalMetricsRequest

_SHAPES: Final = (
    "/apis/metrics.k8s.io/v1beta1/{nodes[/NAME] | pods | namespaces/NS/pods[/NAME]}, "
    "/apis/custom.metrics.k8s.io/{v1beta1|v1beta2}/{namespaces/NS/RESOURCE/NAME|RESOURCE/NAME|"
    "namespaces/NS/metrics}/METRIC (NAME may be *), "
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/NS/METRIC"
)


def _not_found(path: str, why: str) -> PathNotFoundError:
    return PathNotFoundError(f"path {path!r}: {why}; metrics paths are {_SHAPES}")


def _segments(path: str) -> list[str]:
    # apiserver's RequestInfoFactory trims leading and trailing slashes before splitting.
    trimmed = path.strip("/")
    raw = trimmed.split("/") if trimmed else []
    decoded: list[str] = []
    for index, segment in enumerate(raw):
        if not segment:
            raise _not_found(path, f"empty path segment at position {index + 1}")
        try:
            decoded.append(unquote(segment, errors="strict"))
        except UnicodeDecodeError:
            raise BadRequestError(
                f"path {path!r}: segment {segment!r} is not valid percent-encoded UTF-8"
            ) from None
    return decoded


def _check_name(path: str, value: str, what: str, *, allow_all: bool = False) -> str:
    """Reject what apimachinery's IsValidPathSegmentName rejects (and ``*`` unless allowed)."""
    if value == ALL_OBJECTS and allow_all:
        return value
    problem = None
    if value in (".", ".."):
        problem = f"may not be {value!r}"
    elif "/" in value or "%" in value:
        problem = "may not contain '/' or '%'"
    elif value == ALL_OBJECTS:
        problem = "may not be '*' here"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        problem = "may not contain control characters"
    if problem:
        raise BadRequestError(f"path {path!r}: {what} {value!r} {problem}")
    return value


def _query_values(path: str, query: str) -> Mapping[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise BadRequestError(
            f"request {path!r}: the query string is not valid percent-encoded UTF-8"
        ) from None
    return {key: values[0] for key, values in parsed.items() if values}


def _label_selector(params: Mapping[str, str], key: str) -> LabelSelector:
    try:
        return parse_label_selector(params.get(key, ""))
    except SelectorError as err:
        raise BadRequestError(f"query parameter {key}: {err}") from None


def _field_selector(params: Mapping[str, str]) -> FieldSelector:
    try:
        return parse_field_selector(params.get("fieldSelector", ""), RESOURCE_FIELD_SELECTOR_FIELDS)
    except SelectorError as err:
        raise BadRequestError(f"query parameter fieldSelector: {err}") from None


def _resource_request(
    path: str, version: str, parts: list[str], params: Mapping[str, str]
) -> ResourceMetricsRequest:
    if version != "v1beta1":
        raise _not_found(path, f"metrics.k8s.io serves only v1beta1, not {version!r}")
    namespace: str | None = None
    if parts[:1] == ["namespaces"] and len(parts) >= 3:
        namespace = _check_name(path, parts[1], "namespace")
        parts = parts[2:]
        if parts[0] != "pods":
            raise _not_found(path, f"metrics.k8s.io has no namespaced resource {parts[0]!r}")
    if not parts or parts[0] not in ("nodes", "pods") or len(parts) > 2:
        raise _not_found(path, "metrics.k8s.io serves only nodes and pods")
    resource = NODES if parts[0] == "nodes" else PODS
    if resource == PODS and len(parts) == 2 and namespace is None:
        raise _not_found(path, "a pod is read at namespaces/NS/pods/NAME")
    name = _check_name(path, parts[1], "object name") if len(parts) == 2 else None
    selector = _label_selector(params, "labelSelector")
    fields = _field_selector(params)
    if name is not None and not (selector.empty and fields.empty):
        raise BadRequestError(
            f"request {path!r}: labelSelector and fieldSelector apply to lists, not to one object"
        )
    return ResourceMetricsRequest(version, resource, namespace, name, selector, fields)


def _custom_request(
    path: str, version: str, parts: list[str], params: Mapping[str, str]
) -> CustomMetricsRequest:
    if version not in _CUSTOM_VERSIONS:
        raise _not_found(path, f"custom.metrics.k8s.io serves v1beta2 and v1beta1, not {version!r}")
    namespace: str | None
    if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "metrics":
        namespace_name = _check_name(path, parts[1], "namespace")
        metric = _check_name(path, parts[3], "metric name")
        return CustomMetricsRequest(
            version,
            GroupResource("", "namespaces"),
            None,
            namespace_name,
            metric,
            _label_selector(params, "labelSelector"),
            _label_selector(params, "metricLabelSelector"),
        )
    if len(parts) == 5 and parts[0] == "namespaces":
        namespace = _check_name(path, parts[1], "namespace")
        resource_text, name, metric = parts[2:]
    elif len(parts) == 3 and parts[0] != "namespaces":
        namespace = None
        resource_text, name, metric = parts
    elif len(parts) == 3:
        raise _not_found(
            path,
            f"a namespace's own metric is read at namespaces/{parts[1]}/metrics/{parts[2]}",
        )
    elif len(parts) == 4 and parts[0] == "namespaces":
        raise _not_found(
            path,
            f"an object name (or *) is missing between {parts[2]!r} and {parts[3]!r}",
        )
    else:
        raise _not_found(path, "not a custom metrics object path")
    _check_name(path, resource_text, "resource")
    resource = GroupResource.parse(resource_text)
    if not resource.resource:
        raise BadRequestError(f"path {path!r}: resource {resource_text!r} has no resource name")
    return CustomMetricsRequest(
        version,
        resource,
        namespace,
        _check_name(path, name, "object name", allow_all=True),
        _check_name(path, metric, "metric name"),
        _label_selector(params, "labelSelector"),
        _label_selector(params, "metricLabelSelector"),
    )


def _external_request(
    path: str, version: str, parts: list[str], params: Mapping[str, str]
) -> ExternalMetricsRequest:
    if version != "v1beta1":
        raise _not_found(path, f"external.metrics.k8s.io serves only v1beta1, not {version!r}")
    if len(parts) != 3 or parts[0] != "namespaces":
        raise _not_found(path, "external metrics are read at namespaces/NS/METRIC")
    return ExternalMetricsRequest(
        version,
        _check_name(path, parts[1], "namespace"),
        _check_name(path, parts[2], "metric name"),
        _label_selector(params, "labelSelector"),
    )


def parse_request(path: str, query: str = "") -> MetricsRequest:
    """Parse a request path (still percent-encoded) and its raw query string.

    Raises :class:`PathNotFoundError` for paths no metrics API serves (including discovery
    paths such as ``/apis/custom.metrics.k8s.io/v1beta2``, which are not metric requests) and
    :class:`BadRequestError` for malformed names, encodings and selectors.
    """
    segments = _segments(path)
    if len(segments) < 3 or segments[0] != "apis":
        raise _not_found(path, "not under /apis/GROUP/VERSION/")
    group, version, parts = segments[1], segments[2], segments[3:]
    try:
        api = MetricsAPI(group)
    except ValueError:
        raise _not_found(path, f"API group {group!r} is not a metrics API") from None
    if not parts:
        raise _not_found(path, f"{group}/{version} is a discovery path, not a metrics request")
    params = _query_values(path, query)
    if api is MetricsAPI.RESOURCE:
        return _resource_request(path, version, parts, params)
    if api is MetricsAPI.CUSTOM:
        return _custom_request(path, version, parts, params)
    return _external_request(path, version, parts, params)


def parse_request_target(target: str) -> MetricsRequest:
    """Parse ``PATH[?QUERY]`` or a whole ``https://host/PATH?QUERY`` URL (as given to explain)."""
    parts = urlsplit(target)
    if parts.fragment:
        raise BadRequestError(f"request {target!r}: a request path has no #fragment")
    return parse_request(parts.path, parts.query)
