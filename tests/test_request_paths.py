"""Request path parsing: every path shape of the three metrics APIs, encodings, bad paths."""

from __future__ import annotations

import pytest

from adapter.request_paths import (
    BadRequestError,
    CustomMetricsRequest,
    ExternalMetricsRequest,
    MetricsRequest,
    PathNotFoundError,
    RequestPathError,
    ResourceMetricsRequest,
    parse_request,
    parse_request_target,
)
from adapter.resources import NAMESPACES, NODES, PODS, GroupResource
from adapter.selectors import parse_field_selector, parse_label_selector

CM1 = "/apis/custom.metrics.k8s.io/v1beta1"
CM2 = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"
RM = "/apis/metrics.k8s.io/v1beta1"
SEL = parse_label_selector
NOTHING = SEL("")
FIELDS = ("metadata.name", "metadata.namespace")


def custom(
    version: str,
    resource: GroupResource,
    namespace: str | None,
    name: str,
    metric: str,
    label_selector: str = "",
    metric_selector: str = "",
) -> CustomMetricsRequest:
    return CustomMetricsRequest(
        version, resource, namespace, name, metric, SEL(label_selector), SEL(metric_selector)
    )


def resource(
    gr: GroupResource,
    namespace: str | None,
    name: str | None,
    label_selector: str = "",
    field_selector: str = "",
) -> ResourceMetricsRequest:
    return ResourceMetricsRequest(
        "v1beta1",
        gr,
        namespace,
        name,
        SEL(label_selector),
        parse_field_selector(field_selector, FIELDS),
    )


# (id, path, raw query, expected request)
PARSED: list[tuple[str, str, str, MetricsRequest]] = [
    ("rm nodes list", f"{RM}/nodes", "", resource(NODES, None, None)),
    ("rm nodes list trailing slash", f"{RM}/nodes/", "", resource(NODES, None, None)),
    (
        "rm nodes list selector",
        f"{RM}/nodes",
        "labelSelector=kubernetes.io%2Fos%3Dlinux",
        resource(NODES, None, None, "kubernetes.io/os=linux"),
    ),
    ("rm node get", f"{RM}/nodes/node-1", "", resource(NODES, None, "node-1")),
    ("rm pods all namespaces", f"{RM}/pods", "", resource(PODS, None, None)),
    ("rm pods in namespace", f"{RM}/namespaces/default/pods", "", resource(PODS, "default", None)),
    (
        "rm pods field selector",
        f"{RM}/namespaces/default/pods",
        "fieldSelector=metadata.name%3Dweb-1&labelSelector=app%3Dweb",
        resource(PODS, "default", None, "app=web", "metadata.name=web-1"),
    ),
    ("rm pod get", f"{RM}/namespaces/default/pods/web-1", "", resource(PODS, "default", "web-1")),
    (
        "rm kubectl timeout ignored",
        f"{RM}/namespaces/default/pods",
        "timeout=32s",
        resource(PODS, "default", None),
    ),
    (
        "cm v1beta2 pods * percent encoded",
        f"{CM2}/namespaces/default/pods/%2A/http_requests",
        "labelSelector=app%3Dweb",
        custom("v1beta2", PODS, "default", "*", "http_requests", "app=web"),
    ),
    (
        "cm v1beta1 pods * literal",
        f"{CM1}/namespaces/default/pods/*/http_requests",
        "labelSelector=app%3Dweb",
        custom("v1beta1", PODS, "default", "*", "http_requests", "app=web"),
    ),
    (
        "cm form encoded set selector",
        f"{CM2}/namespaces/ns1/pods/%2A/m",
        "labelSelector=tier+in+%28a%2Cb%29%2Capp%3Dweb",
        custom("v1beta2", PODS, "ns1", "*", "m", "app=web,tier in (a,b)"),
    ),
    (
        "cm single namespaced object",
        f"{CM2}/namespaces/ns1/services/svc1/http_requests",
        "",
        custom("v1beta2", GroupResource("", "services"), "ns1", "svc1", "http_requests"),
    ),
    (
        "cm qualified resource split at first dot",
        f"{CM2}/namespaces/ns1/ingresses.networking.k8s.io/main/hits",
        "",
        custom("v1beta2", GroupResource("networking.k8s.io", "ingresses"), "ns1", "main", "hits"),
    ),
    (
        "cm deployments.apps",
        f"{CM1}/namespaces/ns1/deployments.apps/web/http_requests",
        "",
        custom("v1beta1", GroupResource("apps", "deployments"), "ns1", "web", "http_requests"),
    ),
    (
        "cm root scoped node",
        f"{CM2}/nodes/node-1/node_load",
        "",
        custom("v1beta2", NODES, None, "node-1", "node_load"),
    ),
    (
        "cm root scoped all nodes",
        f"{CM2}/nodes/%2A/node_load",
        "labelSelector=role%3Dworker",
        custom("v1beta2", NODES, None, "*", "node_load", "role=worker"),
    ),
    (
        "cm namespace metric",
        f"{CM2}/namespaces/ns1/metrics/http_requests",
        "",
        custom("v1beta2", NAMESPACES, None, "ns1", "http_requests"),
    ),
    (
        "cm metricLabelSelector",
        f"{CM2}/namespaces/ns1/pods/web-1/http_requests",
        "metricLabelSelector=verb%3DGET%2Ccode%21%3D500",
        custom("v1beta2", PODS, "ns1", "web-1", "http_requests", "", "code!=500,verb=GET"),
    ),
    (
        "cm repeated parameter first wins",
        f"{CM2}/namespaces/ns1/pods/%2A/m",
        "labelSelector=app%3Da&labelSelector=app%3Db",
        custom("v1beta2", PODS, "ns1", "*", "m", "app=a"),
    ),
    (
        "cm percent-encoded metric name",
        f"{CM2}/namespaces/ns1/pods/web-1/requests%3Atotal",
        "",
        custom("v1beta2", PODS, "ns1", "web-1", "requests:total"),
    ),
    (
        "em with selector",
        f"{EM}/namespaces/ns1/queue_depth",
        "labelSelector=name%3Dq1",
        ExternalMetricsRequest("v1beta1", "ns1", "queue_depth", SEL("name=q1")),
    ),
    (
        "em without selector",
        f"{EM}/namespaces/default/queue_depth",
        "",
        ExternalMetricsRequest("v1beta1", "default", "queue_depth", NOTHING),
    ),
    (
        "em exists and notin",
        f"{EM}/namespaces/default/queue_depth",
        "labelSelector=queue%2C%21legacy%2Ctier+notin+%28x%29",
        ExternalMetricsRequest(
            "v1beta1", "default", "queue_depth", SEL("queue,!legacy,tier notin (x)")
        ),
    ),
]


@pytest.mark.parametrize(
    ("path", "query", "expected"), [c[1:] for c in PARSED], ids=[c[0] for c in PARSED]
)
def test_parse_request(path: str, query: str, expected: MetricsRequest) -> None:
    assert parse_request(path, query) == expected


# (id, path, raw query, error class, text the message must contain)
ERRORS: list[tuple[str, str, str, type[RequestPathError], str]] = [
    ("not apis", "/api/v1/pods", "", PathNotFoundError, "not under /apis/GROUP/VERSION/"),
    (
        "other group",
        "/apis/apps/v1/deployments",
        "",
        PathNotFoundError,
        "'apps' is not a metrics API",
    ),
    ("discovery path", CM2, "", PathNotFoundError, "discovery path"),
    ("rm other version", "/apis/metrics.k8s.io/v1/nodes", "", PathNotFoundError, "only v1beta1"),
    ("rm unknown resource", f"{RM}/services", "", PathNotFoundError, "only nodes and pods"),
    (
        "rm namespaced nodes",
        f"{RM}/namespaces/ns/nodes",
        "",
        PathNotFoundError,
        "no namespaced resource",
    ),
    (
        "rm pod without namespace",
        f"{RM}/pods/web-1",
        "",
        PathNotFoundError,
        "namespaces/NS/pods/NAME",
    ),
    ("rm too deep", f"{RM}/namespaces/ns/pods/a/b", "", PathNotFoundError, "only nodes and pods"),
    (
        "rm selector on get",
        f"{RM}/nodes/n1",
        "labelSelector=a%3Db",
        BadRequestError,
        "apply to lists",
    ),
    (
        "rm unsupported field",
        f"{RM}/nodes",
        "fieldSelector=spec.nodeName%3Dx",
        BadRequestError,
        "fieldSelector",
    ),
    (
        "cm v1 version",
        "/apis/custom.metrics.k8s.io/v1/nodes/a/m",
        "",
        PathNotFoundError,
        "v1beta2 and v1beta1",
    ),
    (
        "cm bare namespace metric",
        f"{CM2}/namespaces/ns1/http_requests",
        "",
        PathNotFoundError,
        "namespaces/ns1/metrics/http_requests",
    ),
    (
        "cm missing object name",
        f"{CM2}/namespaces/ns1/pods/http_requests",
        "",
        PathNotFoundError,
        "object name (or *) is missing",
    ),
    ("cm too short", f"{CM2}/pods/m", "", PathNotFoundError, "not a custom metrics object path"),
    (
        "cm too long",
        f"{CM2}/namespaces/a/pods/b/c/d",
        "",
        PathNotFoundError,
        "not a custom metrics",
    ),
    (
        "cm empty segment",
        f"{CM2}/namespaces//pods/a/m",
        "",
        PathNotFoundError,
        "empty path segment",
    ),
    ("cm dot dot name", f"{CM2}/namespaces/ns/pods/../m", "", BadRequestError, "may not be '..'"),
    ("cm encoded slash", f"{CM2}/namespaces/ns/pods/a%2Fb/m", "", BadRequestError, "'/' or '%'"),
    ("cm star metric", f"{CM2}/namespaces/ns/pods/a/%2A", "", BadRequestError, "metric name '*'"),
    ("cm star namespace", f"{CM2}/namespaces/%2A/pods/a/m", "", BadRequestError, "namespace '*'"),
    (
        "cm bad utf8",
        f"{CM2}/namespaces/ns/pods/%FF/m",
        "",
        BadRequestError,
        "percent-encoded UTF-8",
    ),
    (
        "cm leading dot resource",
        f"{CM2}/namespaces/ns/.apps/a/m",
        "",
        BadRequestError,
        "no resource name",
    ),
    (
        "cm bad label selector",
        f"{CM2}/namespaces/ns/pods/%2A/m",
        "labelSelector=app%3D%3D%3Dx",
        BadRequestError,
        "query parameter labelSelector",
    ),
    (
        "cm bad metric selector",
        f"{CM2}/namespaces/ns/pods/a/m",
        "metricLabelSelector=tier+in+a",
        BadRequestError,
        "query parameter metricLabelSelector",
    ),
    (
        "cm bad query utf8",
        f"{CM2}/namespaces/ns/pods/a/m",
        "labelSelector=%FF",
        BadRequestError,
        "query string",
    ),
    ("em no namespace", f"{EM}/queue_depth", "", PathNotFoundError, "namespaces/NS/METRIC"),
    ("em too deep", f"{EM}/namespaces/ns/pods/a", "", PathNotFoundError, "namespaces/NS/METRIC"),
    (
        "em other version",
        "/apis/external.metrics.k8s.io/v1beta2/namespaces/ns/m",
        "",
        PathNotFoundError,
        "only v1beta1",
    ),
]


@pytest.mark.parametrize(
    ("path", "query", "error", "text"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_parse_request_errors(
    path: str, query: str, error: type[RequestPathError], text: str
) -> None:
    with pytest.raises(error) as caught:
        parse_request(path, query)
    assert text in str(caught.value)
    assert caught.value.status == (404 if error is PathNotFoundError else 400)


TARGETS = [
    ("path with query", f"{CM2}/namespaces/ns/pods/%2A/m?labelSelector=app%3Dweb"),
    (
        "full url",
        f"https://adapter.example:6443{CM2}/namespaces/ns/pods/%2A/m?labelSelector=app%3Dweb",
    ),
    ("unencoded star and selector", f"{CM2}/namespaces/ns/pods/*/m?labelSelector=app=web"),
]


@pytest.mark.parametrize("target", [t[1] for t in TARGETS], ids=[t[0] for t in TARGETS])
def test_parse_request_target(target: str) -> None:
    assert parse_request_target(target) == custom("v1beta2", PODS, "ns", "*", "m", "app=web")


def test_parse_request_target_rejects_fragment() -> None:
    with pytest.raises(BadRequestError, match="fragment"):
        parse_request_target(f"{CM2}/namespaces/ns/pods/a/m#x")


def test_request_properties() -> None:
    star = parse_request(f"{CM2}/namespaces/ns/pods/%2A/m")
    assert isinstance(star, CustomMetricsRequest)
    assert star.all_objects
    assert star.namespaced
    node = parse_request(f"{CM2}/nodes/n1/m")
    assert isinstance(node, CustomMetricsRequest)
    assert not node.all_objects
    assert not node.namespaced
    listing = parse_request(f"{RM}/pods")
    assert isinstance(listing, ResourceMetricsRequest)
    assert listing.is_list
