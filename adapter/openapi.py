"""OpenAPI documents for ``/openapi/v2`` and ``/openapi/v3``, describing the served types.

Pure builders. kube-apiserver's aggregator downloads ``/openapi/v2`` (merging it into the
cluster's spec; a 404 is skipped) and ``/openapi/v3`` (an index of group-versions whose
``serverRelativeURL`` it fetches on demand), and ``kubectl explain`` reads the v3 document of a
group-version, finding a kind by its ``x-kubernetes-group-version-kind`` extension. So every
served kind carries that extension and every path names the kind it returns.

Schema names follow the Go packages (``io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics``)
so the cluster's merged spec reads like metrics-server's and prometheus-adapter's.

Raises ``adapter.discovery_docs.UnknownGroupError`` for a group or version that is not served.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from adapter.discovery_docs import GROUP_VERSIONS, UnknownGroupError

JsonObject = dict[str, Any]

_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1"
_QUANTITY: Final = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_OBJECT_REFERENCE: Final = "io.k8s.api.core.v1.ObjectReference"
_RESOURCE_METRICS: Final = "io.k8s.metrics.pkg.apis.metrics.v1beta1"
_EXTERNAL_METRICS: Final = "io.k8s.metrics.pkg.apis.external_metrics.v1beta1"
_V2_REF_PREFIX: Final = "#/definitions/"
_V3_REF_PREFIX: Final = "#/components/schemas/"


def _custom_package(version: str) -> str:
    return f"io.k8s.metrics.pkg.apis.custom_metrics.{version}"


def _ref(name: str) -> JsonObject:
    return {"$ref": _V2_REF_PREFIX + name}


def _string(description: str) -> JsonObject:
    return {"description": description, "type": "string"}


def _gvk(group: str, version: str, kind: str) -> list[JsonObject]:
    return [{"group": group, "kind": kind, "version": version}]


def _type_meta(api_version: str, kind: str) -> JsonObject:
    return {
        "apiVersion": _string(f"Always {api_version!r} for this kind."),
        "kind": _string(f"Always {kind!r}."),
    }


def _object(
    description: str,
    properties: JsonObject,
    required: list[str] | None = None,
    gvk: list[JsonObject] | None = None,
) -> JsonObject:
    schema: JsonObject = {"description": description, "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if gvk:
        schema["x-kubernetes-group-version-kind"] = gvk
    return schema


def _list_kind(group: str, version: str, kind: str, item: str, description: str) -> JsonObject:
    api_version = f"{group}/{version}"
    return _object(
        description,
        {
            **_type_meta(api_version, kind),
            "metadata": _ref(f"{_META}.ListMeta"),
            "items": {"type": "array", "items": _ref(item)},
        },
        ["items"],
        _gvk(group, version, kind),
    )


def _shared_definitions() -> JsonObject:
    return {
        _QUANTITY: _string(
            "A Kubernetes quantity in canonical form, e.g. 2459003n (nanocores), 44664Ki "
            "(bytes) or 1500m; read it with ceiling semantics as the HPA does."
        ),
        f"{_META}.Time": {
            "description": "RFC 3339 time in UTC with whole seconds, e.g. 2024-05-01T12:00:00Z.",
            "type": "string",
            "format": "date-time",
        },
        f"{_META}.ObjectMeta": _object(
            "Identity of the measured object, copied from the Node or Pod.",
            {
                "name": _string("Name of the node or pod."),
                "namespace": _string("Namespace of the pod; absent for nodes."),
                "labels": {
                    "description": "Labels of the node or pod.",
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                },
                "creationTimestamp": {
                    **_ref(f"{_META}.Time"),
                    "description": "When this metrics object was built (request time).",
                },
            },
        ),
        f"{_META}.ListMeta": _object(
            "List metadata; empty for metrics lists.",
            {
                "resourceVersion": _string("Unused by the metrics APIs."),
                "continue": _string("Unused: metrics lists are never paginated."),
            },
        ),
        f"{_META}.LabelSelectorRequirement": _object(
            "One selector requirement.",
            {
                "key": _string("Label key."),
                "operator": _string("In, NotIn, Exists or DoesNotExist."),
                "values": {"type": "array", "items": {"type": "string"}},
            },
            ["key", "operator"],
        ),
        f"{_META}.LabelSelector": _object(
            "A label selector; the requirements are ANDed.",
            {
                "matchLabels": {
                    "description": "Equality requirements.",
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                },
                "matchExpressions": {
                    "type": "array",
                    "items": _ref(f"{_META}.LabelSelectorRequirement"),
                },
            },
        ),
        f"{_META}.StatusCause": _object(
            "One cause of an error.",
            {
                "reason": _string("Machine-readable cause."),
                "message": _string("Human-readable cause."),
                "field": _string("Field the cause refers to, if any."),
            },
        ),
        f"{_META}.StatusDetails": _object(
            "Extra data about an error.",
            {
                "name": _string("Name of the object the error is about."),
                "group": _string("API group of that object."),
                "kind": _string("Resource or kind of that object."),
                "causes": {"type": "array", "items": _ref(f"{_META}.StatusCause")},
                "retryAfterSeconds": {"type": "integer", "format": "int32"},
            },
        ),
        f"{_META}.Status": _object(
            "Returned for every error; message says what to fix.",
            {
                **_type_meta("v1", "Status"),
                "metadata": _ref(f"{_META}.ListMeta"),
                "status": _string("Always Failure for errors."),
                "message": _string("What went wrong and what to fix."),
                "reason": _string("NotFound, BadRequest, Forbidden, ServiceUnavailable, ..."),
                "details": _ref(f"{_META}.StatusDetails"),
                "code": {"description": "HTTP status code.", "type": "integer", "format": "int32"},
            },
            gvk=_gvk("", "v1", "Status"),
        ),
        _OBJECT_REFERENCE: _object(
            "The object a custom metric describes.",
            {
                "kind": _string("Kind of the object, e.g. Pod."),
                "namespace": _string("Namespace of the object; absent for cluster-scoped ones."),
                "name": _string("Name of the object."),
                "apiVersion": _string("Group/version of the object, e.g. v1 or apps/v1."),
            },
        ),
    }


def _resource_metrics_definitions() -> JsonObject:
    group, version = "metrics.k8s.io", "v1beta1"
    api_version = f"{group}/{version}"
    usage = {
        "description": "Usage by resource name: cpu in cores (nanocore precision), memory in "
        "bytes (working set).",
        "type": "object",
        "additionalProperties": _ref(_QUANTITY),
    }
    window = _string(
        "Go duration (e.g. 1m0s, 15.012s): usage is averaged over [timestamp-window, timestamp]."
    )
    timestamp = {**_ref(f"{_META}.Time"), "description": "End of the measured window."}
    return {
        f"{_RESOURCE_METRICS}.ContainerMetrics": _object(
            "Usage of one container.",
            {"name": _string("Container name from the pod spec."), "usage": usage},
            ["name", "usage"],
        ),
        f"{_RESOURCE_METRICS}.NodeMetrics": _object(
            "Resource usage of a node.",
            {
                **_type_meta(api_version, "NodeMetrics"),
                "metadata": _ref(f"{_META}.ObjectMeta"),
                "timestamp": timestamp,
                "window": window,
                "usage": usage,
            },
            ["timestamp", "window", "usage"],
            _gvk(group, version, "NodeMetrics"),
        ),
        f"{_RESOURCE_METRICS}.PodMetrics": _object(
            "Resource usage of a pod's containers, all over the same window.",
            {
                **_type_meta(api_version, "PodMetrics"),
                "metadata": _ref(f"{_META}.ObjectMeta"),
                "timestamp": timestamp,
                "window": window,
                "containers": {
                    "type": "array",
                    "items": _ref(f"{_RESOURCE_METRICS}.ContainerMetrics"),
                    "x-kubernetes-list-type": "atomic",
                },
            },
            ["timestamp", "window", "containers"],
            _gvk(group, version, "PodMetrics"),
        ),
        f"{_RESOURCE_METRICS}.NodeMetricsList": _list_kind(
            group, version, "NodeMetricsList", f"{_RESOURCE_METRICS}.NodeMetrics", "Node usage."
        ),
        f"{_RESOURCE_METRICS}.PodMetricsList": _list_kind(
            group, version, "PodMetricsList", f"{_RESOURCE_METRICS}.PodMetrics", "Pod usage."
        ),
    }


def _custom_metrics_definitions(version: str) -> JsonObject:
    group = "custom.metrics.k8s.io"
    package = _custom_package(version)
    api_version = f"{group}/{version}"
    value_properties: JsonObject = {
        "describedObject": _ref(_OBJECT_REFERENCE),
    }
    definitions: JsonObject = {}
    selector_doc = "The metricLabelSelector of the request, or null."
    if version == "v1beta2":
        definitions[f"{package}.MetricIdentifier"] = _object(
            "Names a metric and the selector used to pick its series.",
            {
                "name": _string("Metric name."),
                "selector": {**_ref(f"{_META}.LabelSelector"), "description": selector_doc},
            },
            ["name"],
        )
        value_properties["metric"] = _ref(f"{package}.MetricIdentifier")
    else:
        value_properties["metricName"] = _string("Metric name.")
    value_properties["timestamp"] = {**_ref(f"{_META}.Time"), "description": "Sample time."}
    window_key = "windowSeconds" if version == "v1beta2" else "window"
    value_properties[window_key] = {
        "description": "Seconds of the rate window, when the value is a rate.",
        "type": "integer",
        "format": "int64",
    }
    value_properties["value"] = _ref(_QUANTITY)
    required = ["describedObject", "timestamp", "value"]
    if version == "v1beta1":
        value_properties["selector"] = {
            **_ref(f"{_META}.LabelSelector"),
            "description": selector_doc,
        }
        required.insert(1, "metricName")
    else:
        required.insert(1, "metric")
    definitions[f"{package}.MetricValue"] = _object(
        "The value of a metric for one object.",
        {**_type_meta(api_version, "MetricValue"), **value_properties},
        required,
        _gvk(group, version, "MetricValue"),
    )
    definitions[f"{package}.MetricValueList"] = _list_kind(
        group,
        version,
        "MetricValueList",
        f"{package}.MetricValue",
        "Values of one metric for the described objects (one item for a named object).",
    )
    return definitions


def _external_metrics_definitions() -> JsonObject:
    group, version = "external.metrics.k8s.io", "v1beta1"
    return {
        f"{_EXTERNAL_METRICS}.ExternalMetricValue": _object(
            "The value of one series of an external metric.",
            {
                **_type_meta(f"{group}/{version}", "ExternalMetricValue"),
                "metricName": _string("Metric name."),
                "metricLabels": {
                    "description": "Labels identifying the series.",
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                },
                "timestamp": {**_ref(f"{_META}.Time"), "description": "Sample time."},
                "window": {
                    "description": "Seconds of the rate window, when the value is a rate.",
                    "type": "integer",
                    "format": "int64",
                },
                "value": _ref(_QUANTITY),
            },
            ["metricName", "metricLabels", "timestamp", "value"],
            _gvk(group, version, "ExternalMetricValue"),
        ),
        f"{_EXTERNAL_METRICS}.ExternalMetricValueList": _list_kind(
            group,
            version,
            "ExternalMetricValueList",
            f"{_EXTERNAL_METRICS}.ExternalMetricValue",
            "Values of one external metric, one item per series.",
        ),
    }


def _all_definitions(group_versions: Iterable[tuple[str, str]]) -> JsonObject:
    definitions = _shared_definitions()
    for group, version in group_versions:
        if group == "metrics.k8s.io":
            definitions.update(_resource_metrics_definitions())
        elif group == "custom.metrics.k8s.io":
            definitions.update(_custom_metrics_definitions(version))
        else:
            definitions.update(_external_metrics_definitions())
    return definitions


# --- paths ---------------------------------------------------------------------------------------

_LABEL_SELECTOR: Final = {
    "name": "labelSelector",
    "in": "query",
    "description": "Selects the described objects by their labels (e.g. app=web).",
}
_FIELD_SELECTOR: Final = {
    "name": "fieldSelector",
    "in": "query",
    "description": "Selects by metadata.name or metadata.namespace (=, ==, !=).",
}
_METRIC_LABEL_SELECTOR: Final = {
    "name": "metricLabelSelector",
    "in": "query",
    "description": "Selects among the metric's series by their labels.",
}


def _path_parameter(name: str, description: str) -> JsonObject:
    return {"name": name, "in": "path", "required": True, "description": description}


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """One GET operation: what it returns and which parameters it takes."""

    operation_id: str
    description: str
    action: str  # x-kubernetes-action: get or list
    kind: str
    response: str  # definition name of the 200 body
    parameters: tuple[JsonObject, ...]


def _endpoints(group: str, version: str) -> dict[str, _Endpoint]:
    """The served paths of one group-version."""
    base = f"/apis/{group}/{version}"
    namespace = _path_parameter("namespace", "Namespace of the objects.")
    if group == "metrics.k8s.io":
        nodes = f"{_RESOURCE_METRICS}.NodeMetrics"
        pods = f"{_RESOURCE_METRICS}.PodMetrics"
        node_name = _path_parameter("name", "Node name.")
        pod_name = _path_parameter("name", "Pod name.")
        selectors = (_LABEL_SELECTOR, _FIELD_SELECTOR)
        return {
            f"{base}/nodes": _Endpoint(
                "listMetricsV1beta1NodeMetrics",
                "List node usage.",
                "list",
                "NodeMetrics",
                f"{nodes}List",
                selectors,
            ),
            f"{base}/nodes/{{name}}": _Endpoint(
                "readMetricsV1beta1NodeMetrics",
                "Read one node's usage.",
                "get",
                "NodeMetrics",
                nodes,
                (node_name,),
            ),
            f"{base}/pods": _Endpoint(
                "listMetricsV1beta1PodMetricsForAllNamespaces",
                "List pod usage in all namespaces.",
                "list",
                "PodMetrics",
                f"{pods}List",
                selectors,
            ),
            f"{base}/namespaces/{{namespace}}/pods": _Endpoint(
                "listMetricsV1beta1NamespacedPodMetrics",
                "List pod usage in a namespace.",
                "list",
                "PodMetrics",
                f"{pods}List",
                (namespace, *selectors),
            ),
            f"{base}/namespaces/{{namespace}}/pods/{{name}}": _Endpoint(
                "readMetricsV1beta1NamespacedPodMetrics",
                "Read one pod's usage.",
                "get",
                "PodMetrics",
                pods,
                (namespace, pod_name),
            ),
        }
    if group == "custom.metrics.k8s.io":
        values = f"{_custom_package(version)}.MetricValueList"
        suffix = version.capitalize()
        resource = _path_parameter(
            "resource", "Resource of the objects, e.g. pods, nodes, deployments.apps."
        )
        name = _path_parameter("name", "Object name, or * for all objects matching labelSelector.")
        metric = _path_parameter("metric", "Metric name.")
        selectors = (_LABEL_SELECTOR, _METRIC_LABEL_SELECTOR)
        return {
            f"{base}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}": _Endpoint(
                f"readCustomMetrics{suffix}NamespacedMetricValue",
                "Read a metric of one namespaced object, or of all (*) matching labelSelector.",
                "get",
                "MetricValueList",
                values,
                (namespace, resource, name, metric, *selectors),
            ),
            f"{base}/{{resource}}/{{name}}/{{metric}}": _Endpoint(
                f"readCustomMetrics{suffix}MetricValue",
                "Read a metric of one cluster-scoped object (e.g. a node), or of all (*).",
                "get",
                "MetricValueList",
                values,
                (resource, name, metric, *selectors),
            ),
            f"{base}/namespaces/{{namespace}}/metrics/{{metric}}": _Endpoint(
                f"readCustomMetrics{suffix}NamespaceMetricValue",
                "Read a metric describing the namespace itself.",
                "get",
                "MetricValueList",
                values,
                (namespace, metric, _METRIC_LABEL_SELECTOR),
            ),
        }
    return {
        f"{base}/namespaces/{{namespace}}/{{metric}}": _Endpoint(
            "listExternalMetricsV1beta1NamespacedExternalMetricValue",
            "List the series of an external metric, filtered by labelSelector.",
            "list",
            "ExternalMetricValueList",
            f"{_EXTERNAL_METRICS}.ExternalMetricValueList",
            (namespace, _path_parameter("metric", "Metric name."), _LABEL_SELECTOR),
        )
    }


def _operation(
    endpoint: _Endpoint, group: str, version: str, parameters: list[JsonObject]
) -> JsonObject:
    return {
        "description": endpoint.description,
        "operationId": endpoint.operation_id,
        "tags": [f"{group.split('.', maxsplit=1)[0]}_{version}"],
        "parameters": parameters,
        "x-kubernetes-action": endpoint.action,
        "x-kubernetes-group-version-kind": _gvk(group, version, endpoint.kind)[0],
    }


def _v2_path(endpoint: _Endpoint, group: str, version: str) -> JsonObject:
    parameters = [{**p, "type": "string", "uniqueItems": True} for p in endpoint.parameters]
    operation = _operation(endpoint, group, version, parameters)
    operation["consumes"] = ["*/*"]
    operation["produces"] = ["application/json"]
    operation["schemes"] = ["https"]
    operation["responses"] = {
        "200": {"description": "OK", "schema": _ref(endpoint.response)},
        "401": {"description": "Unauthorized"},
    }
    return {"get": operation}


def _v3_path(endpoint: _Endpoint, group: str, version: str) -> JsonObject:
    parameters = [
        {**p, "schema": {"type": "string", "uniqueItems": True}} for p in endpoint.parameters
    ]
    operation = _operation(endpoint, group, version, parameters)
    schema = {"$ref": _V3_REF_PREFIX + endpoint.response}
    operation["responses"] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "401": {"description": "Unauthorized"},
    }
    return {"get": operation}


def served_group_versions(groups: Iterable[str]) -> list[tuple[str, str]]:
    """(group, version) pairs for the served groups, in discovery order."""
    wanted = set(groups)
    unknown = sorted(wanted - set(GROUP_VERSIONS))
    if unknown:
        raise UnknownGroupError(
            f"API groups {', '.join(unknown)} are not served; "
            f"served groups: {', '.join(GROUP_VERSIONS)}"
        )
    return [(g, v) for g, versions in GROUP_VERSIONS.items() if g in wanted for v in versions]


def _check_served(group: str, version: str) -> None:
    if version not in GROUP_VERSIONS.get(group, ()):
        raise UnknownGroupError(f"{group}/{version} is not a served group-version")


def openapi_v2(groups: Iterable[str], *, build_version: str = "unversioned") -> JsonObject:
    """``GET /openapi/v2``: a Swagger 2.0 document of the served groups' paths and kinds."""
    group_versions = served_group_versions(groups)
    paths: JsonObject = {}
    for group, version in group_versions:
        paths.update(
            {p: _v2_path(e, group, version) for p, e in _endpoints(group, version).items()}
        )
    return {
        "swagger": "2.0",
        "info": {"title": "kubemetrics", "version": build_version},
        "paths": paths,
        "definitions": dict(sorted(_all_definitions(group_versions).items())),
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer token authentication",
                "type": "apiKey",
                "name": "authorization",
                "in": "header",
            }
        },
        "security": [{"BearerToken": []}],
    }


def openapi_v3_path(group: str, version: str) -> str:
    """Key of a group-version in the v3 index, and its URL after ``/openapi/v3/``."""
    return f"apis/{group}/{version}"


def _to_v3_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                value.replace(_V2_REF_PREFIX, _V3_REF_PREFIX)
                if key == "$ref" and isinstance(value, str)
                else _to_v3_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_to_v3_refs(item) for item in node]
    return node


def _referenced(definitions: Mapping[str, Any], roots: Iterable[str]) -> list[str]:
    """Names of the definitions reachable from ``roots`` through ``$ref``."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(_refs_in(definitions[name]))
    return sorted(seen)


def _refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value.removeprefix(_V2_REF_PREFIX))
            else:
                found.extend(_refs_in(value))
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _refs_in(item)]
    return []


def openapi_v3_group_version(
    group: str, version: str, *, build_version: str = "unversioned"
) -> JsonObject:
    """``GET /openapi/v3/apis/GROUP/VERSION``: an OpenAPI 3.0 document for one group-version."""
    _check_served(group, version)
    endpoints = _endpoints(group, version)
    definitions = _all_definitions([(group, version)])
    roots = [endpoint.response for endpoint in endpoints.values()]
    roots.append(f"{_META}.Status")
    schemas = {name: _to_v3_refs(definitions[name]) for name in _referenced(definitions, roots)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "kubemetrics", "version": build_version},
        "paths": {p: _v3_path(e, group, version) for p, e in endpoints.items()},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer token authentication",
                    "name": "authorization",
                    "in": "header",
                }
            },
        },
        "security": [{"BearerToken": []}],
    }


def document_hash(document: Mapping[str, Any]) -> str:
    """Upper-case hex SHA-512 of a document's canonical JSON (the v3 index's ``hash``)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha512(canonical.encode("utf-8")).hexdigest().upper()


def openapi_v3_index(groups: Iterable[str], *, build_version: str = "unversioned") -> JsonObject:
    """``GET /openapi/v3``: each served group-version and the URL of its document.

    The URL carries the document's hash, so clients (and the aggregator) cache it until the
    content changes; the per-group-version route should ignore the ``hash`` query parameter.
    """
    paths: JsonObject = {}
    for group, version in served_group_versions(groups):
        document = openapi_v3_group_version(group, version, build_version=build_version)
        path = openapi_v3_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={document_hash(document)}"}
    return {"paths": paths}
