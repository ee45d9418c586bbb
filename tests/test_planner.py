"""Query planner: request → exact PromQL (prometheus-adapter's worked examples), "not found"
explanations, and query results → per-object values."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from adapter.config import load_config_file
from adapter.planner import (
    ContainerValues,
    ExternalValue,
    NodeValues,
    ObjectRef,
    ObjectValue,
    PlanError,
    PlanErrorReason,
    PodValues,
    QueryPlan,
    QueryRole,
    map_custom_result,
    map_external_result,
    map_resource_result,
    plan_request,
)
from adapter.prometheus import QueryResult, Sample, ScalarResult, VectorResult
from adapter.promql import SplitStrategy
from adapter.registry import MetricRegistry, SeriesQueryResult, build_registry
from adapter.request_paths import parse_request_target
from adapter.resources import BuiltinResourceCatalog
from adapter.rules import compile_config
from tests.conftest import FIXTURES_DIR, REPO_ROOT, UPSTREAM_TEST_CATALOG

UPSTREAM = FIXTURES_DIR / "prometheus-adapter"
CM = "/apis/custom.metrics.k8s.io/v1beta2"
EM = "/apis/external.metrics.k8s.io/v1beta1"
RM = "/apis/metrics.k8s.io/v1beta1"

BUILTIN = BuiltinResourceCatalog()

CONTAINER_QUERY = '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
KUBE_QUERY = '{kube_namespace!="",__name__!~"^container_.*"}'
# series_registry_test.go's series, as discovery reports them: name → resource labels present.
KUBE_SERIES = {
    CONTAINER_QUERY: {
        "container_some_usage": {"pod", "namespace"},
        "container_some_count_total": {"pod", "namespace"},
    },
    KUBE_QUERY: {
        "ingress_hits_total": {"kube_ingress", "kube_service", "kube_pod", "kube_namespace"},
        "service_proxy_packets": {"kube_service", "kube_namespace"},
        "work_queue_wait_seconds_total": {"kube_deployment", "kube_namespace"},
        "node_gigawatts": {"kube_node"},
    },
}
WALKTHROUGH_QUERY = 'http_requests_total{kubernetes_namespace!="",kubernetes_pod_name!=""}'
DEFAULT_QUERY = '{__name__=~"kubestats_(container|pod)_.+",namespace!="",pod!=""}'


def registry_for(
    path: str,
    series: Mapping[str, Mapping[str, set[str]]],
    catalog: BuiltinResourceCatalog = BUILTIN,
) -> MetricRegistry:
    config = compile_config(load_config_file(path), catalog)
    results = {
        query: SeriesQueryResult(
            query, {name: frozenset(labels) for name, labels in names.items()}, 0.0
        )
        for query, names in series.items()
    }
    return build_registry(config, results)


KUBE = registry_for(
    str(UPSTREAM / "config-gen-1m-kube-prefix.yaml"), KUBE_SERIES, UPSTREAM_TEST_CATALOG
)
CONFIG_GEN = registry_for(str(UPSTREAM / "config-gen-1m.yaml"), {})
WALKTHROUGH = registry_for(
    str(UPSTREAM / "docs-config-walkthrough.yaml"),
    {WALKTHROUGH_QUERY: {"http_requests_total": {"kubernetes_namespace", "kubernetes_pod_name"}}},
)
EXTERNAL = registry_for(
    str(UPSTREAM / "docs-externalmetrics.yaml"),
    {
        '{__name__="queue_consumer_lag",name!=""}': {"queue_consumer_lag": {"namespace"}},
        '{__name__="queue_depth",name!=""}': {"queue_depth": set()},
    },
)
DEFAULT_RULES = registry_for(
    str(REPO_ROOT / "config" / "rules.yaml"),
    {
        DEFAULT_QUERY: {
            "kubestats_container_memory_working_set_bytes": {"namespace", "pod"},
            "kubestats_container_cpu_usage_seconds_total": {"namespace", "pod"},
            "kubestats_container_start_time_seconds": {"namespace", "pod"},
        }
    },
)
REGISTRIES = {
    "kube": (KUBE, UPSTREAM_TEST_CATALOG),
    "config-gen": (CONFIG_GEN, BUILTIN),
    "walkthrough": (WALKTHROUGH, BUILTIN),
    "external": (EXTERNAL, BUILTIN),
    "default": (DEFAULT_RULES, BUILTIN),
}


def refs(namespace: str | None, *names: str) -> list[ObjectRef]:
    return [ObjectRef(namespace, name) for name in names]


def plan(
    registry: str,
    target: str,
    objects: list[ObjectRef] | None = None,
    **kwargs: object,
) -> QueryPlan:
    reg, catalog = REGISTRIES[registry]
    return plan_request(
        parse_request_target(target),
        registry=reg,
        catalog=catalog,
        objects=objects,
        **kwargs,  # type: ignore[arg-type]
    )


# (id, registry, request target, objects, expected queries, expected rule)
PLANS: list[tuple[str, str, str, list[ObjectRef] | None, list[str], str]] = [
    (
        "(a) pods * with labelSelector, container gauge",
        "kube",
        f"{CM}/namespaces/somens/pods/%2A/some_usage?labelSelector=app%3Dweb",
        refs("somens", "somepod1", "somepod2"),
        [
            'sum(container_some_usage{namespace="somens",pod=~"somepod1|somepod2",'
            'container!="POD"}) by (pod)'
        ],
        "rules[2]",
    ),
    (
        "(a) pods * counter, one pod is an equality",
        "kube",
        f"{CM}/namespaces/somens/pods/%2A/some_count",
        refs("somens", "somepod1"),
        [
            'sum(rate(container_some_count_total{namespace="somens",pod="somepod1",'
            'container!="POD"}[1m])) by (pod)'
        ],
        "rules[1]",
    ),
    (
        "(b) single service",
        "kube",
        f"{CM}/namespaces/somens/services/somesvc/ingress_hits",
        None,
        [
            'sum(rate(ingress_hits_total{kube_namespace="somens",kube_service="somesvc"}[1m])) '
            "by (kube_service)"
        ],
        "rules[4]",
    ),
    (
        "(b) service gauge",
        "kube",
        f"{CM}/namespaces/somens/services/somesvc/service_proxy_packets",
        None,
        [
            'sum(service_proxy_packets{kube_namespace="somens",kube_service="somesvc"}) '
            "by (kube_service)"
        ],
        "rules[3]",
    ),
    (
        "(c) the namespace's own metric",
        "kube",
        f"{CM}/namespaces/somens/metrics/ingress_hits",
        None,
        ['sum(rate(ingress_hits_total{kube_namespace="somens"}[1m])) by (kube_namespace)'],
        "rules[4]",
    ),
    (
        "(d) root-scoped node",
        "kube",
        f"{CM}/nodes/somenode/node_gigawatts",
        None,
        ['sum(node_gigawatts{kube_node="somenode"}) by (kube_node)'],
        "rules[3]",
    ),
    (
        "(d) all nodes",
        "kube",
        f"{CM}/nodes/%2A/node_gigawatts?labelSelector=role%3Dgpu",
        refs(None, "n1", "n2"),
        ['sum(node_gigawatts{kube_node=~"n1|n2"}) by (kube_node)'],
        "rules[3]",
    ),
    (
        "qualified resource ingresses.extensions",
        "kube",
        f"{CM}/namespaces/somens/ingresses.extensions/someingress/ingress_hits",
        None,
        [
            'sum(rate(ingress_hits_total{kube_namespace="somens",kube_ingress="someingress"}'
            "[1m])) by (kube_ingress)"
        ],
        "rules[4]",
    ),
    (
        "qualified resource by singular name",
        "kube",
        f"{CM}/namespaces/somens/deployment.extensions/somedep/work_queue_wait",
        None,
        [
            'sum(rate(work_queue_wait_seconds_total{kube_namespace="somens",'
            'kube_deployment="somedep"}[1m])) by (kube_deployment)'
        ],
        "rules[5]",
    ),
    (
        "metricLabelSelector comes first, sorted by key",
        "walkthrough",
        f"{CM}/namespaces/production/pods/%2A/http_requests_per_second"
        "?metricLabelSelector=verb%3DGET%2Ccode+in+%28200%2C201%29",
        refs("production", "frontend-server-abcd-0123", "fronted-server-abcd-4567"),
        [
            'sum(rate(http_requests_total{code=~"200|201",verb="GET",'
            'kubernetes_namespace="production",'
            'kubernetes_pod_name=~"frontend-server-abcd-0123|fronted-server-abcd-4567"}[2m])) '
            "by (kubernetes_pod_name)"
        ],
        "rules[0]",
    ),
    (
        "default rules: memory of pods",
        "default",
        f"{CM}/namespaces/default/pods/%2A/container_memory_working_set_bytes",
        refs("default", "web-1", "web-2"),
        [
            'sum by (pod) (kubestats_container_memory_working_set_bytes{namespace="default",'
            'pod=~"web-1|web-2"})'
        ],
        "rules[1]",
    ),
    (
        "default rules: CPU rate of one pod",
        "default",
        f"{CM}/namespaces/default/pods/web-1/container_cpu_usage_seconds_per_second",
        None,
        [
            'sum by (pod) (rate(kubestats_container_cpu_usage_seconds_total{namespace="default",'
            'pod="web-1"}[1m]))'
        ],
        "rules[0]",
    ),
    (
        "names not resolved: the namespace only",
        "kube",
        f"{CM}/namespaces/somens/pods/%2A/some_usage?labelSelector=app%3Dweb",
        None,
        ['sum(container_some_usage{namespace="somens",pod!="",container!="POD"}) by (pod)'],
        "rules[2]",
    ),
    (
        "(e) external, namespaced",
        "external",
        f"{EM}/namespaces/ns1/queue_consumer_lag?labelSelector=name%3Dq1",
        None,
        ['sum(queue_consumer_lag{name="q1",namespace="ns1"}) by (name)'],
        "externalRules[0]",
    ),
    (
        "(e) external, namespaced: false takes the namespace from the selector",
        "external",
        f"{EM}/namespaces/ns1/queue_depth?labelSelector=namespace%3Dother",
        None,
        ['sum(queue_depth{namespace="other"}) by (name)'],
        "externalRules[1]",
    ),
    (
        "(f) pods of one namespace",
        "config-gen",
        f"{RM}/namespaces/some-ns/pods",
        refs("some-ns", "pod1", "pod3"),
        [
            'sum(rate(container_cpu_usage_seconds_total{namespace="some-ns",pod=~"pod1|pod3"}'
            "[1m])) by (pod,container)",
            'sum(container_memory_working_set_bytes{namespace="some-ns",pod=~"pod1|pod3"}) '
            "by (pod,container)",
        ],
        "resourceRules",
    ),
    (
        "(f) one pod",
        "config-gen",
        f"{RM}/namespaces/some-ns/pods/pod1",
        None,
        [
            'sum(rate(container_cpu_usage_seconds_total{namespace="some-ns",pod="pod1"}[1m])) '
            "by (pod,container)",
            'sum(container_memory_working_set_bytes{namespace="some-ns",pod="pod1"}) '
            "by (pod,container)",
        ],
        "resourceRules",
    ),
    (
        "(f) pods of all namespaces: queries per namespace",
        "config-gen",
        f"{RM}/pods",
        [*refs("a", "p1"), *refs("b", "p2", "p3")],
        [
            'sum(rate(container_cpu_usage_seconds_total{namespace="a",pod="p1"}[1m])) '
            "by (pod,container)",
            'sum(container_memory_working_set_bytes{namespace="a",pod="p1"}) by (pod,container)',
            'sum(rate(container_cpu_usage_seconds_total{namespace="b",pod=~"p2|p3"}[1m])) '
            "by (pod,container)",
            'sum(container_memory_working_set_bytes{namespace="b",pod=~"p2|p3"}) '
            "by (pod,container)",
        ],
        "resourceRules",
    ),
    (
        "(f) nodes",
        "config-gen",
        f"{RM}/nodes",
        refs(None, "node1", "node2"),
        [
            'sum(1 - rate(node_cpu_seconds_total{instance=~"node1|node2", mode="idle"}[1m])) '
            "by (instance)",
            'sum(node_memory_MemTotal_bytes{instance=~"node1|node2") - '
            'node_memory_MemAvailable_bytes{instance=~"node1|node2") by (instance)',
        ],
        "resourceRules",
    ),
    (
        "(f) nodes not resolved",
        "config-gen",
        f"{RM}/nodes",
        None,
        [
            'sum(1 - rate(node_cpu_seconds_total{instance!="", mode="idle"}[1m])) by (instance)',
            'sum(node_memory_MemTotal_bytes{instance!="") - '
            'node_memory_MemAvailable_bytes{instance!="") by (instance)',
        ],
        "resourceRules",
    ),
    (
        "(f) pods of all namespaces not resolved: grouped by namespace too",
        "config-gen",
        f"{RM}/pods",
        None,
        [
            'sum(rate(container_cpu_usage_seconds_total{namespace!="",pod!=""}[1m])) '
            "by (pod,container,namespace)",
            'sum(container_memory_working_set_bytes{namespace!="",pod!=""}) '
            "by (pod,container,namespace)",
        ],
        "resourceRules",
    ),
    (
        "no object matches: no query",
        "kube",
        f"{CM}/namespaces/somens/pods/%2A/some_usage?labelSelector=app%3Dnone",
        [],
        [],
        "rules[2]",
    ),
]


@pytest.mark.parametrize(
    ("registry", "target", "objects", "queries", "rule"),
    [c[1:] for c in PLANS],
    ids=[c[0] for c in PLANS],
)
def test_plan_queries(
    registry: str, target: str, objects: list[ObjectRef] | None, queries: list[str], rule: str
) -> None:
    result = plan(registry, target, objects)
    assert list(result.queries) == queries
    assert result.rule_location == rule


def test_plan_records_how_to_map_back() -> None:
    custom = plan("kube", f"{CM}/namespaces/somens/pods/%2A/some_usage", refs("somens", "a", "b"))
    assert (custom.series, custom.resource_label, custom.namespace_label) == (
        "container_some_usage",
        "pod",
        "namespace",
    )
    assert custom.objects == tuple(refs("somens", "a", "b"))
    assert custom.names_resolved
    assert [s.names for s in custom.steps] == [("a", "b")]
    unresolved = plan("kube", f"{CM}/namespaces/somens/pods/%2A/some_usage")
    assert not unresolved.names_resolved
    assert "not resolved" in unresolved.notes[0]
    pods = plan("config-gen", f"{RM}/namespaces/ns/pods/p")
    assert (pods.resource_label, pods.container_label, pods.window) == (
        "pod",
        "container",
        pods.window,
    )
    assert pods.window is not None
    assert pods.window.total_seconds() == 60
    assert [s.role for s in pods.steps] == [QueryRole.CPU, QueryRole.MEMORY]


def test_plan_splits_long_name_lists_within_the_budget() -> None:
    names = [f"pod-{i:04d}" for i in range(400)]
    result = plan(
        "kube",
        f"{CM}/namespaces/somens/pods/%2A/some_usage",
        refs("somens", *names),
        max_query_bytes=1024,
    )
    assert len(result.steps) > 1
    assert all(len(q.encode()) <= 1024 for q in result.queries)
    assert [n for s in result.steps for n in s.names] == names
    assert any("split" in note for note in result.notes)


def test_plan_namespace_strategy_matches_the_namespace() -> None:
    names = [f"pod-{i:04d}" for i in range(400)]
    result = plan(
        "kube",
        f"{CM}/namespaces/somens/pods/%2A/some_usage",
        refs("somens", *names),
        max_query_bytes=1024,
        strategy=SplitStrategy.NAMESPACE,
    )
    assert result.queries == (
        'sum(container_some_usage{namespace="somens",pod!="",container!="POD"}) by (pod)',
    )
    assert result.steps[0].names == tuple(names)


# (id, registry, target, reason, status, texts the error must contain)
NOT_FOUND: list[tuple[str, str, str, PlanErrorReason, int, list[str]]] = [
    (
        "unknown resource",
        "kube",
        f"{CM}/namespaces/somens/widgets/w1/some_usage",
        PlanErrorReason.UNKNOWN_RESOURCE,
        404,
        ["could not find the metric some_usage for widgets w1", "no resource widgets"],
    ),
    (
        "metric on another resource, template maps a label nobody has",
        "kube",
        f"{CM}/namespaces/somens/pods/p1/service_proxy_packets",
        PlanErrorReason.METRIC_NOT_FOUND,
        404,
        [
            "could not find the metric service_proxy_packets for pods p1",
            "the metric exists for namespaces, services",
            "rules[3] (line 44) maps label 'kube_pod' to pods, but no series"
            " service_proxy_packets in Prometheus has a non-empty 'kube_pod' label",
        ],
    ),
    (
        "metric on another resource, overrides map no label",
        "walkthrough",
        f"{CM}/namespaces/production/services/%2A/http_requests_per_second?labelSelector=a%3Db",
        PlanErrorReason.METRIC_NOT_FOUND,
        404,
        [
            "for services with selector a=b",
            "the metric exists for namespaces, pods",
            "rule rules[0] (line 4) produces http_requests_per_second from series"
            " http_requests_total but maps no label to services",
        ],
    ),
    (
        "root-scoped metric asked in a namespace",
        "kube",
        f"{CM}/namespaces/somens/nodes/n1/node_gigawatts",
        PlanErrorReason.METRIC_NOT_FOUND,
        404,
        ["nodes/node_gigawatts is not namespaced: ask at nodes/NAME/node_gigawatts"],
    ),
    (
        "namespaced metric asked root-scoped",
        "kube",
        f"{CM}/services/s1/service_proxy_packets",
        PlanErrorReason.METRIC_NOT_FOUND,
        404,
        ["services/service_proxy_packets is namespaced: ask at namespaces/NAMESPACE/services"],
    ),
    (
        "typo gets candidates",
        "kube",
        f"{CM}/namespaces/somens/pods/p1/some_usag",
        PlanErrorReason.METRIC_NOT_FOUND,
        404,
        ["closest metric names: some_usage", "no rule in"],
    ),
    (
        "series rejected by seriesFilters",
        "default",
        f"{CM}/namespaces/default/pods/p1/container_start_time_seconds",
        PlanErrorReason.METRIC_NOT_FOUND,
        404,
        [
            "rule rules[1] (line ",
            ") would name series kubestats_container_start_time_seconds"
            " container_start_time_seconds, but its seriesFilters reject it",
        ],
    ),
    (
        "no custom rules",
        "external",
        f"{CM}/namespaces/ns/pods/p1/x",
        PlanErrorReason.NOT_SERVED,
        404,
        ["has no rules, so no custom metrics are served"],
    ),
    (
        "external unknown with candidates",
        "external",
        f"{EM}/namespaces/ns1/queue_dept",
        PlanErrorReason.METRIC_NOT_FOUND,
        404,
        [
            "could not find the metric queue_dept for namespaces",
            "closest metric names: queue_depth",
        ],
    ),
    (
        "external asked for a custom metric",
        "kube",
        f"{EM}/namespaces/ns1/some_usage",
        PlanErrorReason.NOT_SERVED,
        404,
        ["has no externalRules"],
    ),
    (
        "no resource rules",
        "walkthrough",
        f"{RM}/nodes",
        PlanErrorReason.NOT_SERVED,
        404,
        ["has no resourceRules"],
    ),
    (
        "gt selector cannot be PromQL",
        "kube",
        f"{CM}/namespaces/somens/pods/p1/some_usage?metricLabelSelector=size%3E3",
        PlanErrorReason.BAD_REQUEST,
        400,
        ["not supported by prometheus"],
    ),
    (
        "Kubernetes-style key is not a Prometheus label",
        "external",
        f"{EM}/namespaces/ns1/queue_depth?labelSelector=app.kubernetes.io%2Fname%3Dx",
        PlanErrorReason.BAD_REQUEST,
        400,
        ["not a valid Prometheus label name"],
    ),
]


@pytest.mark.parametrize(
    ("registry", "target", "reason", "status", "texts"),
    [c[1:] for c in NOT_FOUND],
    ids=[c[0] for c in NOT_FOUND],
)
def test_plan_errors_say_why(
    registry: str, target: str, reason: PlanErrorReason, status: int, texts: list[str]
) -> None:
    with pytest.raises(PlanError) as caught:
        plan(registry, target, [])
    assert caught.value.reason is reason
    assert caught.value.status == status
    for text in texts:
        assert text in str(caught.value)


def test_plan_error_for_a_query_that_cannot_fit() -> None:
    with pytest.raises(PlanError) as caught:
        plan("kube", f"{CM}/namespaces/somens/pods/some-pod/some_usage", max_query_bytes=20)
    assert caught.value.reason is PlanErrorReason.RULE_ERROR
    assert "max_query_bytes" in str(caught.value)


def test_objects_outside_the_namespace_are_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="outside namespace"):
        plan("kube", f"{CM}/namespaces/somens/pods/%2A/some_usage", refs("other", "a"))


# --- mapping results back ------------------------------------------------------------------


def vector(*samples: tuple[dict[str, str], float, float]) -> VectorResult:
    return VectorResult(tuple(Sample(labels, value, ts) for labels, value, ts in samples))


def pod(name: str, **extra: str) -> dict[str, str]:
    return {"pod": name, **extra}


NAN = math.nan
INF = math.inf
STAR = f"{CM}/namespaces/somens/pods/%2A/some_usage"

# (id, objects (None: unresolved), result, expected values, expected missing)
CUSTOM_MAPPING: list[
    tuple[str, list[ObjectRef] | None, VectorResult, list[tuple[str, float]], list[str]]
] = [
    (
        "request order, not result order",
        refs("somens", "b", "a"),
        vector((pod("a"), 1.0, 10.0), (pod("b"), 2.0, 10.0)),
        [("b", 2.0), ("a", 1.0)],
        [],
    ),
    (
        "missing names are reported",
        refs("somens", "a", "b", "c"),
        vector((pod("b"), 2.0, 10.0)),
        [("b", 2.0)],
        ["a", "c"],
    ),
    (
        "names not asked for are dropped",
        refs("somens", "a"),
        vector((pod("a"), 1.0, 10.0), (pod("zz"), 9.0, 10.0)),
        [("a", 1.0)],
        [],
    ),
    (
        "NaN is dropped, not zeroed",
        refs("somens", "a", "b"),
        vector((pod("a"), NAN, 10.0), (pod("b"), 0.5, 10.0)),
        [("b", 0.5)],
        ["a"],
    ),
    (
        "first sample per name wins",
        refs("somens", "a"),
        vector((pod("a", x="1"), 1.0, 10.0), (pod("a", x="2"), 2.0, 10.0)),
        [("a", 1.0)],
        [],
    ),
    (
        "a sample without the resource label is ignored",
        refs("somens", "a"),
        vector(({}, 5.0, 10.0), (pod("a"), 1.0, 10.0)),
        [("a", 1.0)],
        [],
    ),
    (
        "unresolved: everything found, sorted",
        None,
        vector((pod("b"), 2.0, 10.0), (pod("a"), 1.0, 10.0)),
        [("a", 1.0), ("b", 2.0)],
        [],
    ),
]


@pytest.mark.parametrize(
    ("objects", "result", "expected", "missing"),
    [c[1:] for c in CUSTOM_MAPPING],
    ids=[c[0] for c in CUSTOM_MAPPING],
)
def test_map_custom_result(
    objects: list[ObjectRef] | None,
    result: VectorResult,
    expected: list[tuple[str, float]],
    missing: list[str],
) -> None:
    mapped = map_custom_result(plan("kube", STAR, objects), [result])
    assert [(v.object.name, v.value) for v in mapped.values] == expected
    assert [m.name for m in mapped.missing] == missing
    assert all(v.object.namespace == "somens" for v in mapped.values)


def test_map_custom_result_keeps_sample_time_and_labels() -> None:
    mapped = map_custom_result(
        plan("kube", STAR, refs("somens", "a")), [vector((pod("a", namespace="somens"), 3, 42.5))]
    )
    assert mapped.values == (
        ObjectValue(ObjectRef("somens", "a"), 3.0, 42.5, {"pod": "a", "namespace": "somens"}),
    )


def test_map_custom_result_across_split_queries() -> None:
    names = [f"pod-{i:04d}" for i in range(300)]
    split = plan("kube", STAR, refs("somens", *names), max_query_bytes=1024)
    results: list[QueryResult] = [
        vector(*((pod(n), float(i), 1.0) for i, n in enumerate(step.names))) for step in split.steps
    ]
    mapped = map_custom_result(split, results)
    assert [v.object.name for v in mapped.values] == names


@pytest.mark.parametrize(
    ("result", "text"),
    [
        (vector(), "no finite sample with pod='p1'"),
        (vector((pod("p1"), NAN, 1.0)), "is not a finite number"),
        (vector((pod("other"), 1.0, 1.0)), "no finite sample"),
    ],
    ids=["empty", "nan", "other object"],
)
def test_single_object_without_value_is_not_found(result: VectorResult, text: str) -> None:
    single = plan("kube", f"{CM}/namespaces/somens/pods/p1/some_usage")
    with pytest.raises(PlanError) as caught:
        map_custom_result(single, [result])
    assert caught.value.reason is PlanErrorReason.OBJECT_NOT_FOUND
    assert "the server could not find the metric some_usage for pods p1" in str(caught.value)
    assert text in str(caught.value)


def test_scalar_result_for_a_custom_metric_is_an_error() -> None:
    with pytest.raises(PlanError) as caught:
        map_custom_result(plan("kube", STAR, refs("somens", "a")), [ScalarResult(1.0, 1.0)])
    assert caught.value.reason is PlanErrorReason.BAD_RESULT
    assert caught.value.status == 500


def test_map_external_result_keeps_every_label_but_the_name() -> None:
    ext = plan("external", f"{EM}/namespaces/ns1/queue_consumer_lag?labelSelector=name%3Dq1")
    mapped = map_external_result(
        ext,
        [vector(({"name": "q1", "topic": "t"}, 4.0, 7.0), ({"name": "q2"}, NAN, 7.0))],
    )
    assert mapped.values == (ExternalValue({"name": "q1", "topic": "t"}, 4.0, 7.0),)
    named = map_external_result(
        ext, [vector(({"__name__": "queue_depth", "name": "q1"}, 1.0, 7.0))]
    )
    assert named.values == (ExternalValue({"name": "q1"}, 1.0, 7.0),)
    assert len(mapped.dropped) == 1
    scalar = map_external_result(ext, [ScalarResult(2.5, 9.0)])
    assert scalar.values == (ExternalValue({}, 2.5, 9.0),)


def usage(
    name: str, container: str, value: float, ts: float = 100.0, **extra: str
) -> tuple[dict[str, str], float, float]:
    return ({"pod": name, "container": container, **extra}, value, ts)


def test_map_resource_pods() -> None:
    pods_plan = plan(
        "config-gen", f"{RM}/namespaces/ns/pods", refs("ns", "p1", "p2", "p3", "p4", "p5")
    )
    cpu = vector(
        usage("p2", "app", 0.25, ts=101.0),
        usage("p2", "sidecar", -0.01, ts=99.0),  # rate() across a reset: read as 0
        usage("p1", "app", 0.5),
        usage("p1", "POD", 9.0),  # the pod's own cgroup: not a container
        usage("p1", "", 9.0),
        usage("p3", "app", 0.1),
        usage("p4", "app", 0.1),
        usage("p5", "app", INF),
    )
    memory = vector(
        usage("p2", "app", 1024.0, ts=100.0),
        usage("p2", "sidecar", 512.0, ts=100.0),
        usage("p1", "app", 2048.0),
        usage("p3", "app", NAN),  # NaN is no value: p3 lacks memory
        usage("p4", "app", 10.0),
        usage("p4", "init", 10.0),  # memory only: p4 is left out, not given 0 CPU
        usage("p5", "app", 10.0),
    )
    mapped = map_resource_result(pods_plan, [cpu, memory])
    assert mapped.pods == (
        PodValues(ObjectRef("ns", "p1"), 100.0, (ContainerValues("app", 0.5, 2048.0),)),
        PodValues(
            ObjectRef("ns", "p2"),
            99.0,
            (ContainerValues("app", 0.25, 1024.0), ContainerValues("sidecar", 0.0, 512.0)),
        ),
    )
    assert mapped.missing == (
        (ObjectRef("ns", "p3"), "no memory samples"),
        (ObjectRef("ns", "p4"), "container init has no CPU samples"),
        (ObjectRef("ns", "p5"), "no CPU samples"),
    )
    assert len(mapped.dropped) == 2


def test_a_sample_of_another_namespace_lends_no_value() -> None:
    # A same-named pod elsewhere (other/p1) must not answer for ns/p1, even if a query
    # returned it (a rule whose query drops the namespace matcher, a stand-in Prometheus).
    pods_plan = plan("config-gen", f"{RM}/namespaces/ns/pods", refs("ns", "p1"))
    cpu = vector(
        usage("p1", "app", 5.0, namespace="other"), usage("p1", "app", 0.5, namespace="ns")
    )
    memory = vector(usage("p1", "app", 7.0, namespace="other"), usage("p1", "app", 2.0))
    mapped = map_resource_result(pods_plan, [cpu, memory])
    assert mapped.pods == (
        PodValues(ObjectRef("ns", "p1"), 100.0, (ContainerValues("app", 0.5, 2.0),)),
    )
    custom = plan("kube", STAR, refs("somens", "a"))
    values = map_custom_result(
        custom, [vector((pod("a", namespace="x"), 9.0, 1.0), (pod("a"), 1.0, 1.0))]
    )
    assert [v.value for v in values.values] == [1.0]


def test_map_resource_pods_unresolved_across_namespaces() -> None:
    all_pods = plan("config-gen", f"{RM}/pods")
    cpu = vector(usage("web", "app", 0.5, namespace="b"), usage("web", "app", 0.1, namespace="a"))
    memory = vector(
        usage("web", "app", 5.0, namespace="a"), usage("web", "app", 6.0, namespace="b")
    )
    mapped = map_resource_result(all_pods, [cpu, memory])
    assert [(p.object, p.containers[0].cpu_cores) for p in mapped.pods] == [
        (ObjectRef("a", "web"), 0.1),
        (ObjectRef("b", "web"), 0.5),
    ]


def test_map_resource_nodes() -> None:
    nodes_plan = plan("config-gen", f"{RM}/nodes", refs(None, "n1", "n2", "n3"))
    cpu = vector(({"instance": "n2"}, 1.5, 50.0), ({"instance": "n1"}, 0.5, 60.0))
    memory = vector(
        ({"instance": "n1"}, 100.0, 55.0),
        ({"instance": "n1"}, 999.0, 55.0),  # the first sample per node is used
        ({"instance": "n3"}, 7.0, 55.0),
    )
    mapped = map_resource_result(nodes_plan, [cpu, memory])
    assert mapped.nodes == (NodeValues(ObjectRef(None, "n1"), 55.0, 0.5, 100.0),)
    assert mapped.missing == (
        (ObjectRef(None, "n2"), "no memory samples"),
        (ObjectRef(None, "n3"), "no CPU samples"),
    )


def test_map_resource_single_pod_missing_is_not_found() -> None:
    one = plan("config-gen", f"{RM}/namespaces/ns/pods/p1")
    with pytest.raises(PlanError) as caught:
        map_resource_result(one, [vector(usage("p1", "app", 1.0)), vector()])
    assert str(caught.value).startswith('podmetrics.metrics.k8s.io "ns/p1" not found')
    assert "no memory samples" in str(caught.value)


def test_result_count_must_match_the_plan() -> None:
    with pytest.raises(ValueError, match="results for a plan of 1 queries"):
        map_custom_result(plan("kube", STAR, refs("somens", "a")), [])
