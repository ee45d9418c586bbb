"""Kubernetes objects: goldens, real responses from the reference notes, official client models."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client import ApiClient

from adapter.objects import (
    ContainerUsage,
    CustomMetricSample,
    DuplicateObjectError,
    ExternalMetricSample,
    NodeUsage,
    ObjectBuildError,
    ObjectReference,
    PodUsage,
    SelectorRequirement,
    UnsupportedSelectorError,
    encode_json,
    external_metric_value_list,
    label_selector,
    metric_value_list,
    node_metrics,
    node_metrics_list,
    pod_metrics,
    pod_metrics_list,
    status_bad_request,
    status_forbidden,
    status_internal,
    status_method_not_allowed,
    status_metric_not_found,
    status_not_acceptable,
    status_not_found,
    status_object_not_found,
    status_service_unavailable,
    status_timeout,
    status_unauthorized,
)
from adapter.quantity import QuantityError

SAMPLE_TIME = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CREATED = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


def pretty(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def compact(document: dict[str, Any]) -> str:
    return encode_json(document).decode("utf-8")


@pytest.fixture
def k8s_client() -> Iterator[ApiClient]:
    client = ApiClient()
    yield client
    client.close()


def through_official_model(client: ApiClient, document: Any, model: str) -> Any:
    """Decode with the official client's model and encode again: unknown keys and bad types
    do not survive, so equality means the shape is one Kubernetes knows."""
    decoded = client.deserialize(json.dumps(document), model, "application/json")
    return _zulu(client.sanitize_for_serialization(decoded))


def _zulu(node: Any) -> Any:
    """The client writes datetimes back as ``+00:00``; Kubernetes writes ``Z``."""
    if isinstance(node, dict):
        return {key: _zulu(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_zulu(item) for item in node]
    if isinstance(node, str) and node.endswith("+00:00"):
        return node.removesuffix("+00:00") + "Z"
    return node


NODES = [
    NodeUsage(
        "node-b", {"kubernetes.io/hostname": "node-b"}, 1714564790.5, 15.012, 0.25, 884 * 1024**2
    ),
    NodeUsage("node-a", {}, SAMPLE_TIME, 20.035, 0.128, 2 * 1024**3),
]
PODS = [
    PodUsage(
        "kube-system",
        "metrics-server-0",
        {"k8s-app": "metrics-server"},
        SAMPLE_TIME,
        60.996,
        [
            ContainerUsage("metrics-server-nanny", 0.025366453, 7568 * 1024),
            ContainerUsage("metrics-server", 0.000215384, 14928 * 1024),
        ],
    ),
    PodUsage(
        "default",
        "web-1",
        {"app": "web"},
        SAMPLE_TIME,
        15.012,
        [ContainerUsage("app", 0.002459003, 45735936)],
    ),
    PodUsage("default", "idle", {}, SAMPLE_TIME, 17.913, [ContainerUsage("sleep", 0, 4620 * 1024)]),
]
METRIC_SELECTOR = [
    SelectorRequirement("verb", "in", ("POST", "GET")),
    SelectorRequirement("code", "=", ("200",)),
]
CUSTOM_SAMPLES = [
    CustomMetricSample(ObjectReference("Pod", "web-2", "default"), SAMPLE_TIME, 16.5, 60),
    CustomMetricSample(ObjectReference("Pod", "web-1", "default"), SAMPLE_TIME, 2.0, 60),
]

OBJECT_CASES: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("metrics/node-metrics", lambda: node_metrics(NODES[0], created=CREATED)),
    ("metrics/node-metrics-list", lambda: node_metrics_list(NODES, created=CREATED)),
    ("metrics/node-metrics-list-empty", lambda: node_metrics_list([], created=CREATED)),
    ("metrics/pod-metrics", lambda: pod_metrics(PODS[0], created=CREATED)),
    ("metrics/pod-metrics-list", lambda: pod_metrics_list(PODS, created=CREATED)),
    *[
        (
            f"custom-{version}/{name}",
            builder,
        )
        for version in ("v1beta2", "v1beta1")
        for name, builder in [
            (
                "pods-selector",
                lambda version=version: metric_value_list(version, "http_requests", CUSTOM_SAMPLES),
            ),
            (
                "pods-metric-selector",
                lambda version=version: metric_value_list(
                    version, "http_requests", CUSTOM_SAMPLES, METRIC_SELECTOR
                ),
            ),
            (
                "object-deployment",
                lambda version=version: metric_value_list(
                    version,
                    "queue_length",
                    [
                        CustomMetricSample(
                            ObjectReference("Deployment", "worker", "jobs", "apps/v1"),
                            SAMPLE_TIME,
                            1234.5678,
                        )
                    ],
                ),
            ),
            (
                "root-node",
                lambda version=version: metric_value_list(
                    version,
                    "node_load1",
                    [
                        CustomMetricSample(
                            ObjectReference("Node", "node-a"), SAMPLE_TIME, 0.42, None
                        )
                    ],
                ),
            ),
            (
                "namespace",
                lambda version=version: metric_value_list(
                    version,
                    "http_requests",
                    [
                        CustomMetricSample(
                            ObjectReference("Namespace", "default"), SAMPLE_TIME, 7, 300
                        )
                    ],
                ),
            ),
            ("empty", lambda version=version: metric_value_list(version, "http_requests", [])),
        ]
    ],
    (
        "external/queue-depth",
        lambda: external_metric_value_list(
            "queue_depth",
            [
                ExternalMetricSample({"queue": "mail", "name": "q2"}, SAMPLE_TIME, 3),
                ExternalMetricSample({"queue": "jobs", "name": "q1"}, SAMPLE_TIME, 42.25, 60),
            ],
        ),
    ),
    ("external/empty", lambda: external_metric_value_list("queue_depth", [])),
]


@pytest.mark.parametrize(("name", "build"), OBJECT_CASES, ids=[n for n, _ in OBJECT_CASES])
def test_object_goldens(
    golden: Callable[[str, str], None], name: str, build: Callable[[], dict[str, Any]]
) -> None:
    document = build()
    assert {"kind", "apiVersion"} <= document.keys()
    golden(f"objects/{name}.json", pretty(document))


# Real responses quoted in the reference notes; selfLink is gone since Kubernetes 1.20.
REAL_NODE_ITEMS = [
    (
        "gke-metrics-server-0.3.6",
        NodeUsage(
            "gke-cluster-3-default-pool-76fd57f7-l83v",
            {},
            datetime(2021, 8, 13, 10, 24, 26, tzinfo=UTC),
            30,
            0.110691045,
            801112 * 1024,
        ),
        datetime(2021, 8, 13, 10, 24, 45, tzinfo=UTC),
        '{"metadata":{"name":"gke-cluster-3-default-pool-76fd57f7-l83v",'
        '"creationTimestamp":"2021-08-13T10:24:45Z"},"timestamp":"2021-08-13T10:24:26Z",'
        '"window":"30s","usage":{"cpu":"110691045n","memory":"801112Ki"}}',
    ),
    (
        "minikube-2024",
        NodeUsage(
            "minikube",
            {"kubernetes.io/hostname": "minikube"},
            datetime(2024, 4, 24, 12, 40, 16, tzinfo=UTC),
            60.996,
            0.231053413,
            1972348 * 1024,
        ),
        datetime(2024, 4, 24, 12, 41, 13, tzinfo=UTC),
        '{"metadata":{"name":"minikube","creationTimestamp":"2024-04-24T12:41:13Z",'
        '"labels":{"kubernetes.io/hostname":"minikube"}},"timestamp":"2024-04-24T12:40:16Z",'
        '"window":"1m0.996s","usage":{"cpu":"231053413n","memory":"1972348Ki"}}',
    ),
]


@pytest.mark.parametrize(
    ("usage", "created", "expected"),
    [case[1:] for case in REAL_NODE_ITEMS],
    ids=[case[0] for case in REAL_NODE_ITEMS],
)
def test_node_items_match_real_metrics_server_responses(
    usage: NodeUsage, created: datetime, expected: str
) -> None:
    item = node_metrics_list([usage], created=created)["items"][0]
    assert compact(item) == expected


def test_pod_item_matches_real_zero_cpu_response() -> None:
    # metrics-server issue #1623: an idle container reports cpu "0", not "0n".
    usage = PodUsage(
        "default",
        "idle",
        {},
        datetime(2025, 1, 9, 13, 45, 39, tzinfo=UTC),
        17.913,
        [ContainerUsage("sleep", 0.0, 4620 * 1024)],
    )
    item = pod_metrics(usage, created=datetime(2025, 1, 9, 13, 46, 4, tzinfo=UTC))
    assert (item["metadata"]["creationTimestamp"], item["timestamp"], item["window"]) == (
        "2025-01-09T13:46:04Z",
        "2025-01-09T13:45:39Z",
        "17.913s",
    )
    assert item["containers"] == [{"name": "sleep", "usage": {"cpu": "0", "memory": "4620Ki"}}]


def test_multi_container_pod_matches_real_gke_response() -> None:
    containers = pod_metrics(PODS[0], created=CREATED)["containers"]
    assert containers == [
        {"name": "metrics-server", "usage": {"cpu": "215384n", "memory": "14928Ki"}},
        {"name": "metrics-server-nanny", "usage": {"cpu": "25366453n", "memory": "7568Ki"}},
    ]


def test_custom_metrics_match_the_contract_literals() -> None:
    sample = CustomMetricSample(
        ObjectReference("Pod", "web-7d9c-abcde", "default", "/v1"), SAMPLE_TIME, 16.5, 60
    )
    v1beta2 = metric_value_list("v1beta2", "http_requests", [sample])
    v1beta1 = metric_value_list("v1beta1", "http_requests", [sample])
    assert compact(v1beta2) == (
        '{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{},'
        '"items":[{"describedObject":{"kind":"Pod","namespace":"default",'
        '"name":"web-7d9c-abcde","apiVersion":"/v1"},'
        '"metric":{"name":"http_requests","selector":null},'
        '"timestamp":"2024-05-01T12:00:00Z","windowSeconds":60,"value":"16500m"}]}'
    )
    assert compact(v1beta1) == (
        '{"kind":"MetricValueList","apiVersion":"custom.metrics.k8s.io/v1beta1","metadata":{},'
        '"items":[{"describedObject":{"kind":"Pod","namespace":"default",'
        '"name":"web-7d9c-abcde","apiVersion":"/v1"},'
        '"metricName":"http_requests","timestamp":"2024-05-01T12:00:00Z","window":60,'
        '"value":"16500m","selector":null}]}'
    )


def test_external_metrics_match_the_contract_literal() -> None:
    document = external_metric_value_list(
        "queue_depth", [ExternalMetricSample({"queue": "jobs"}, SAMPLE_TIME, 42, 60)]
    )
    assert compact(document) == (
        '{"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1",'
        '"metadata":{},"items":[{"metricName":"queue_depth","metricLabels":{"queue":"jobs"},'
        '"timestamp":"2024-05-01T12:00:00Z","window":60,"value":"42"}]}'
    )


@pytest.mark.parametrize("version", ["v1beta2", "v1beta1"])
def test_absent_window_is_omitted(version: str) -> None:
    sample = CustomMetricSample(ObjectReference("Node", "node-a"), SAMPLE_TIME, 1)
    item = metric_value_list(version, "load", [sample])["items"][0]
    assert not {"window", "windowSeconds"} & item.keys()


def test_object_metadata_decodes_with_official_models(k8s_client: ApiClient) -> None:
    for item in pod_metrics_list(PODS, created=CREATED)["items"]:
        assert (
            through_official_model(k8s_client, item["metadata"], "V1ObjectMeta") == item["metadata"]
        )
    for version in ("v1beta2", "v1beta1"):
        document = metric_value_list(version, "http_requests", CUSTOM_SAMPLES, METRIC_SELECTOR)
        for item in document["items"]:
            reference = item["describedObject"]
            assert through_official_model(k8s_client, reference, "V1ObjectReference") == reference
            selector = item["metric"]["selector"] if version == "v1beta2" else item["selector"]
            assert through_official_model(k8s_client, selector, "V1LabelSelector") == selector


SELECTOR_CASES = [
    ([], None),
    ([SelectorRequirement("app", "=", ("web",))], {"matchLabels": {"app": "web"}}),
    ([SelectorRequirement("app", "==", ("web",))], {"matchLabels": {"app": "web"}}),
    (
        [SelectorRequirement("tier", "notin", ("b", "a", "a"))],
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a", "b"]}]},
    ),
    (
        [SelectorRequirement("env", "!=", ("prod",))],
        {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
    ),
    (
        [SelectorRequirement("z", "exists"), SelectorRequirement("a", "!")],
        {
            "matchExpressions": [
                {"key": "a", "operator": "DoesNotExist"},
                {"key": "z", "operator": "Exists"},
            ]
        },
    ),
    (
        [SelectorRequirement("b", "in", ("x",)), SelectorRequirement("a", "=", ("1",))],
        {
            "matchLabels": {"a": "1"},
            "matchExpressions": [{"key": "b", "operator": "In", "values": ["x"]}],
        },
    ),
]


@pytest.mark.parametrize(
    ("requirements", "expected"),
    SELECTOR_CASES,
    ids=["empty", "equals", "double-equals", "notin-sorted", "not-equals", "exists", "mixed"],
)
def test_label_selector_like_parse_to_label_selector(
    requirements: list[SelectorRequirement], expected: dict[str, Any] | None
) -> None:
    assert label_selector(requirements) == expected


@pytest.mark.parametrize(
    "requirement",
    [SelectorRequirement("n", "gt", ("3",)), SelectorRequirement("a", "=", ("1", "2"))],
    ids=["gt", "equals-two-values"],
)
def test_label_selector_rejects_what_label_selector_cannot_express(
    requirement: SelectorRequirement,
) -> None:
    with pytest.raises(UnsupportedSelectorError, match=repr(requirement.key)):
        label_selector([requirement])


BAD_INPUTS: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "duplicate-node",
        lambda: node_metrics_list([NODES[1], NODES[1]], created=CREATED),
        DuplicateObjectError,
        "node node-a appears twice",
    ),
    (
        "duplicate-pod",
        lambda: pod_metrics_list([PODS[1], PODS[1]], created=CREATED),
        DuplicateObjectError,
        "pod default/web-1 appears twice",
    ),
    (
        "duplicate-container",
        lambda: pod_metrics(
            PodUsage("ns", "p", {}, SAMPLE_TIME, 1, [ContainerUsage("c", 0, 0)] * 2),
            created=CREATED,
        ),
        DuplicateObjectError,
        "container 'c' appears twice",
    ),
    (
        "duplicate-object",
        lambda: metric_value_list("v1beta2", "m", [CUSTOM_SAMPLES[0]] * 2),
        DuplicateObjectError,
        "Pod default/web-2 appears twice",
    ),
    (
        "unknown-version",
        lambda: metric_value_list("v1", "m", []),
        ObjectBuildError,
        "version 'v1' is not served",
    ),
    (
        "nan-custom-value",
        lambda: metric_value_list(
            "v1beta2",
            "m",
            [CustomMetricSample(ObjectReference("Pod", "p", "ns"), SAMPLE_TIME, float("nan"))],
        ),
        QuantityError,
        "metric m for Pod p",
    ),
    (
        "nan-external-value",
        lambda: external_metric_value_list(
            "m", [ExternalMetricSample({"a": "b"}, SAMPLE_TIME, float("inf"))]
        ),
        QuantityError,
        "external metric m series",
    ),
    (
        "negative-cpu",
        lambda: node_metrics(NodeUsage("n", {}, SAMPLE_TIME, 1, -1, 0), created=CREATED),
        QuantityError,
        "node n: CPU usage is negative",
    ),
    (
        "nan-timestamp-after-a-good-one",  # list builders remember converted times
        lambda: node_metrics_list(
            [NODES[1], NodeUsage("n", {}, float("nan"), 1, 1, 0)], created=CREATED
        ),
        QuantityError,
        "timestamp nan is not a finite Unix time",
    ),
    (
        "naive-created",
        lambda: node_metrics(NODES[1], created=datetime(2024, 1, 1)),
        QuantityError,
        "no time zone",
    ),
]


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_says_where(
    build: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build()


STATUS_CASES: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "bad-request",
        status_bad_request(
            "unable to parse labelSelector: found '(', expected: !, identifier, or 'end of string'"
        ),
        400,
        "BadRequest",
    ),
    ("unauthorized", status_unauthorized(), 401, "Unauthorized"),
    (
        "forbidden-namespaced",
        status_forbidden(
            user="alice",
            verb="get",
            group="custom.metrics.k8s.io",
            resource="pods",
            subresource="http_requests",
            name="*",
            namespace="default",
        ),
        403,
        "Forbidden",
    ),
    (
        "forbidden-cluster",
        status_forbidden(
            user="bob",
            verb="list",
            group="metrics.k8s.io",
            resource="nodes",
            reason="no RBAC policy matched",
        ),
        403,
        "Forbidden",
    ),
    (
        "forbidden-path",
        status_forbidden(user="system:anonymous", verb="get", path="/openapi/v2"),
        403,
        "Forbidden",
    ),
    (
        "not-found-metric",
        status_metric_not_found(
            "http_requests",
            "pods",
            hint="no rule serves it; rules serve: http_requests_per_second, queue_length",
        ),
        404,
        "NotFound",
    ),
    (
        "not-found-metric-object",
        status_metric_not_found("http_requests", "services", name="frontend"),
        404,
        "NotFound",
    ),
    (
        "not-found-metric-selector",
        status_metric_not_found("http_requests", "pods", name="*", selector="app=web"),
        404,
        "NotFound",
    ),
    (
        "not-found-pod-metrics",
        status_object_not_found("podmetrics", "metrics.k8s.io", "default/web-1"),
        404,
        "NotFound",
    ),
    (
        "not-found-node-metrics",
        status_object_not_found("nodemetrics", "metrics.k8s.io", "node-9"),
        404,
        "NotFound",
    ),
    (
        "not-found-plain",
        status_not_found("the server could not find the requested resource"),
        404,
        "NotFound",
    ),
    (
        "method-not-allowed",
        status_method_not_allowed("POST", "/apis/metrics.k8s.io/v1beta1/nodes"),
        405,
        "MethodNotAllowed",
    ),
    ("not-acceptable", status_not_acceptable(), 406, "NotAcceptable"),
    (
        "internal",
        status_internal(
            "unable to fetch metrics",
            hint="Prometheus returned a matrix; "
            "the rule's metricsQuery must return an instant vector",
        ),
        500,
        "InternalError",
    ),
    (
        "service-unavailable",
        status_service_unavailable(
            "Prometheus at http://prometheus:9090 is unreachable (connection refused); "
            "check --prometheus-url",
            retry_after_seconds=5,
        ),
        503,
        "ServiceUnavailable",
    ),
    ("timeout", status_timeout("the Prometheus query took longer than 10s"), 504, "Timeout"),
]


@pytest.mark.parametrize(
    ("name", "document", "code", "reason"), STATUS_CASES, ids=[case[0] for case in STATUS_CASES]
)
def test_status_goldens_decode_with_official_model(
    golden: Callable[[str, str], None],
    k8s_client: ApiClient,
    name: str,
    document: dict[str, Any],
    code: int,
    reason: str,
) -> None:
    assert (document["code"], document["reason"], document["status"]) == (code, reason, "Failure")
    assert through_official_model(k8s_client, document, "V1Status") == document
    golden(f"objects/status/{name}.json", pretty(document))


def test_forbidden_message_matches_kube_apiserver_wording() -> None:
    document = status_forbidden(
        user="alice",
        verb="get",
        group="custom.metrics.k8s.io",
        resource="pods",
        subresource="http_requests",
        name="*",
        namespace="default",
    )
    assert document["message"] == (
        'pods.custom.metrics.k8s.io "*" is forbidden: User "alice" cannot get resource '
        '"pods/http_requests" in API group "custom.metrics.k8s.io" in the namespace "default"'
    )
    assert document["details"] == {"name": "*", "group": "custom.metrics.k8s.io", "kind": "pods"}


def test_metric_not_found_keeps_the_upstream_text_first() -> None:
    message = status_metric_not_found("http_requests", "pods", hint="rules serve: x")["message"]
    assert message.startswith("the server could not find the metric http_requests for pods;")


def test_list_items_equal_single_objects_with_shared_and_distinct_times() -> None:
    # Lists convert each distinct time once; the items must not change for it.
    pods = [
        PodUsage("ns", f"p{i}", {}, when, window, [ContainerUsage("c", 0.5, 1024)])
        for i, (when, window) in enumerate(
            [(SAMPLE_TIME, 60.0), (SAMPLE_TIME, 30.5), (1714564805.9, 60.0), (1714564805.0, 60.0)]
        )
    ]
    listed = pod_metrics_list(pods, created=CREATED)["items"]
    single = [pod_metrics(p, created=CREATED) for p in pods]
    assert listed == [
        {k: v for k, v in s.items() if k not in ("kind", "apiVersion")} for s in single
    ]
    assert [i["window"] for i in listed] == ["1m0s", "30.5s", "1m0s", "1m0s"]
    assert [i["timestamp"] for i in listed] == [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:05Z",
        "2024-05-01T12:00:05Z",
    ]
