"""Discovery documents: ``/apis``, ``/apis/GROUP`` and ``/apis/GROUP/VERSION``.

Pure builders. kube-apiserver answers clients' discovery itself from the APIService objects; the
adapter's own documents are read by the aggregator, whose availability check needs a 2xx from
``/apis/GROUP/VERSION`` and whose discovery merge needs an ``APIResourceList`` there. Without it
the whole group-version is marked unavailable, so these must never fail at request time for
data reasons: build them when the metric list changes and keep the result.

Versions are listed preferred first; custom.metrics.k8s.io prefers ``v1beta2``, matching the
usual APIService priorities (v1beta2 versionPriority 200 over v1beta1's 100).

Exception tree::

    DiscoveryError (ValueError)     the inputs cannot form a consistent discovery document
    ├── UnknownGroupError           a group or group/version this adapter does not serve
    └── ScopeConflictError          one resource listed both namespaced and cluster-scoped
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

JsonObject = dict[str, Any]

GROUP_VERSIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "metrics.k8s.io": ("v1beta1",),
    "custom.metrics.k8s.io": ("v1beta2", "v1beta1"),
    "external.metrics.k8s.io": ("v1beta1",),
}

_MEDIA_JSON: Final = "application/json"


class DiscoveryError(ValueError):
    """The inputs cannot form a consistent discovery document."""


class UnknownGroupError(DiscoveryError):
    """A group or group/version that this adapter does not serve."""


class ScopeConflictError(DiscoveryError):
    """The same resource is listed as both namespaced and cluster-scoped."""


@dataclass(frozen=True, slots=True)
class CustomMetricResource:
    """One (resource, metric) pair of custom.metrics.k8s.io.

    ``group_resource`` is ``GroupResource.String()``: ``pods``, ``nodes``, ``deployments.apps``.
    ``namespaced`` is the resource's scope (pods: True; nodes, namespaces: False).
    """

    group_resource: str
    metric: str
    namespaced: bool


def _versions(group: str) -> tuple[str, ...]:
    versions = GROUP_VERSIONS.get(group)
    if versions is None:
        raise UnknownGroupError(
            f"API group {group!r} is not served; served groups: {', '.join(GROUP_VERSIONS)}"
        )
    return versions


def _group_version_entry(group: str, version: str) -> JsonObject:
    return {"groupVersion": f"{group}/{version}", "version": version}


def _group_body(group: str) -> JsonObject:
    versions = _versions(group)
    return {
        "name": group,
        "versions": [_group_version_entry(group, v) for v in versions],
        "preferredVersion": _group_version_entry(group, versions[0]),
    }


def api_group(group: str) -> JsonObject:
    """``GET /apis/GROUP``: an ``APIGroup`` listing the served versions, preferred first."""
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_body(group)}


def api_group_list(groups: Iterable[str]) -> JsonObject:
    """``GET /apis``: an ``APIGroupList`` of the served groups (those with rules configured)."""
    ordered = [g for g in GROUP_VERSIONS if g in set(groups)]
    unknown = sorted(set(groups) - set(GROUP_VERSIONS))
    if unknown:
        raise UnknownGroupError(
            f"API groups {', '.join(unknown)} are not served; "
            f"served groups: {', '.join(GROUP_VERSIONS)}"
        )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_body(g) for g in ordered]}


def _resource(name: str, namespaced: bool, kind: str, verbs: list[str]) -> JsonObject:
    # APIResource field order; singularName has no omitempty upstream, so it is always present.
    return {
        "name": name,
        "singularName": "",
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    }


def _resource_list(group: str, version: str, resources: list[JsonObject]) -> JsonObject:
    if version not in _versions(group):
        raise UnknownGroupError(
            f"{group}/{version} is not served; versions of {group}: {', '.join(_versions(group))}"
        )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}",
        "resources": resources,
    }


def metrics_resource_list() -> JsonObject:
    """``GET /apis/metrics.k8s.io/v1beta1``: ``nodes`` and ``pods``, get and list."""
    return _resource_list(
        "metrics.k8s.io",
        "v1beta1",
        [
            _resource("nodes", False, "NodeMetrics", ["get", "list"]),
            _resource("pods", True, "PodMetrics", ["get", "list"]),
        ],
    )


def custom_metrics_resource_list(
    version: str, metrics: Iterable[CustomMetricResource]
) -> JsonObject:
    """``GET /apis/custom.metrics.k8s.io/VERSION``: one ``RESOURCE/METRIC`` entry per pair.

    Entries are de-duplicated and sorted by name. All entries of one resource must share one
    scope: the aggregator reads ``pods/x`` as subresource ``x`` of ``pods`` and drops the whole
    group-version from discovery when a parent's scopes disagree, so that raises
    ScopeConflictError naming the resource and metrics.
    """
    scope_by_resource: dict[str, tuple[bool, str]] = {}
    unique: dict[str, bool] = {}
    for entry in metrics:
        known = scope_by_resource.setdefault(entry.group_resource, (entry.namespaced, entry.metric))
        if known[0] != entry.namespaced:
            raise ScopeConflictError(
                f"resource {entry.group_resource!r} is namespaced={known[0]} for metric "
                f"{known[1]!r} but namespaced={entry.namespaced} for metric {entry.metric!r}; "
                "one resource has one scope"
            )
        unique[f"{entry.group_resource}/{entry.metric}"] = entry.namespaced
    resources = [
        _resource(name, namespaced, "MetricValueList", ["get"])
        for name, namespaced in sorted(unique.items())
    ]
    return _resource_list("custom.metrics.k8s.io", version, resources)


def external_metrics_resource_list(metric_names: Iterable[str]) -> JsonObject:
    """``GET /apis/external.metrics.k8s.io/v1beta1``: one namespaced entry per metric name."""
    resources = [
        _resource(name, True, "ExternalMetricValueList", ["get"])
        for name in sorted(set(metric_names))
    ]
    return _resource_list("external.metrics.k8s.io", "v1beta1", resources)


def negotiate_discovery(accept_header: str | None) -> Literal["json", "not_acceptable"]:
    """Whether a discovery request can be answered with plain JSON, or must get a 406.

    The aggregator asks ``/apis`` for aggregated discovery only
    (``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``). Kubernetes
    1.28.0-1.28.1 fall back to per-version discovery only on 406, so such a request gets
    ``not_acceptable``. Plain ``application/json`` (any parameters except ``as``/``g``/``v``),
    ``application/*`` or ``*/*`` with a non-zero q gets ``json``; a missing or empty header too.
    """
    if accept_header is None or not accept_header.strip():
        return "json"
    for media_range in accept_header.split(","):
        media_type, parameters = _parse_media_range(media_range)
        if parameters.get("q") in ("0", "0.0", "0.00", "0.000"):
            continue
        if media_type in ("*/*", "application/*"):
            return "json"
        if media_type == _MEDIA_JSON and not {"as", "g", "v"} & parameters.keys():
            return "json"
    return "not_acceptable"


def _parse_media_range(media_range: str) -> tuple[str, dict[str, str]]:
    media_type, *raw_parameters = media_range.split(";")
    parameters: dict[str, str] = {}
    for raw in raw_parameters:
        key, _, value = raw.partition("=")
        parameters[key.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower(), parameters
