"""Compiled rules: naming, filters, resource association, namespacing and rendered queries.

Expected queries are prometheus-adapter's own (its series_registry_test.go and resourceprovider
tests with config-gen's DefaultConfig at 1m, and its documentation's worked examples).
"""

from __future__ import annotations

import re

import pytest

from adapter.config import ConfigError, compile_go_regex, load_config, load_config_file
from adapter.resources import (
    BUILTIN_RESOURCES,
    NAMESPACES,
    NODES,
    PERSISTENT_VOLUMES,
    PODS,
    BuiltinResourceCatalog,
    GroupResource,
    ResourceInfo,
)
from adapter.rules import (
    CompiledConfig,
    CompiledRule,
    QueryRenderError,
    compile_config,
    go_regexp_expand,
)
from tests.conftest import FIXTURES_DIR, REPO_ROOT, UPSTREAM_TEST_CATALOG

UPSTREAM = FIXTURES_DIR / "prometheus-adapter"

EXT_INGRESSES = GroupResource("extensions", "ingresses")
EXT_DEPLOYMENTS = GroupResource("extensions", "deployments")
SERVICES = GroupResource("", "services")


def compiled(name: str, catalog: BuiltinResourceCatalog | None = None) -> CompiledConfig:
    return compile_config(load_config_file(UPSTREAM / name), catalog or BuiltinResourceCatalog())


def matchers(*parts: tuple[str, list[str]]) -> str:
    """prometheus-adapter's LabelMatchers: l="v" for one value, l=~"a|b" for several."""
    return ",".join(
        f'{label}="{values[0]}"' if len(values) == 1 else f'{label}=~"{"|".join(values)}"'
        for label, values in parts
    )


def context(series: str, label_matchers: str, group_by: list[str]) -> dict[str, object]:
    return {
        "Series": series,
        "LabelMatchers": label_matchers,
        "LabelValuesByName": {},
        "GroupBy": ",".join(group_by),
        "GroupBySlice": group_by,
    }


# series_registry_test.go, config-gen DefaultConfig(1m, "kube_"):
# (series, labels, API name, resources, namespaced, resource asked, namespace, names, query)
REGISTRY = [
    (
        "container gauge",
        "container_some_usage",
        ["pod", "namespace", "container"],
        "some_usage",
        {PODS, NAMESPACES},
        True,
        PODS,
        "somens",
        ["somepod1", "somepod2"],
        'sum(container_some_usage{namespace="somens",pod=~"somepod1|somepod2",'
        'container!="POD"}) by (pod)',
    ),
    (
        "container counter",
        "container_some_count_total",
        ["pod", "namespace", "container"],
        "some_count",
        {PODS, NAMESPACES},
        True,
        PODS,
        "somens",
        ["somepod1", "somepod2"],
        'sum(rate(container_some_count_total{namespace="somens",pod=~"somepod1|somepod2",'
        'container!="POD"}[1m])) by (pod)',
    ),
    (
        "container seconds counter",
        "container_some_time_seconds_total",
        ["pod", "namespace", "container"],
        "some_time",
        {PODS, NAMESPACES},
        True,
        PODS,
        "somens",
        ["somepod1", "somepod2"],
        'sum(rate(container_some_time_seconds_total{namespace="somens",pod=~"somepod1|somepod2",'
        'container!="POD"}[1m])) by (pod)',
    ),
    (
        "namespaced counter on service",
        "ingress_hits_total",
        ["kube_ingress", "kube_service", "kube_pod", "kube_namespace"],
        "ingress_hits",
        {EXT_INGRESSES, SERVICES, PODS, NAMESPACES},
        True,
        SERVICES,
        "somens",
        ["somesvc"],
        'sum(rate(ingress_hits_total{kube_namespace="somens",kube_service="somesvc"}[1m])) '
        "by (kube_service)",
    ),
    (
        "namespaced counter on ingress",
        "ingress_hits_total",
        ["kube_ingress", "kube_service", "kube_pod", "kube_namespace"],
        "ingress_hits",
        {EXT_INGRESSES, SERVICES, PODS, NAMESPACES},
        True,
        EXT_INGRESSES,
        "somens",
        ["someingress"],
        'sum(rate(ingress_hits_total{kube_namespace="somens",kube_ingress="someingress"}[1m])) '
        "by (kube_ingress)",
    ),
    (
        "namespaced gauge",
        "service_proxy_packets",
        ["kube_service", "kube_namespace"],
        "service_proxy_packets",
        {SERVICES, NAMESPACES},
        True,
        SERVICES,
        "somens",
        ["somesvc"],
        'sum(service_proxy_packets{kube_namespace="somens",kube_service="somesvc"}) '
        "by (kube_service)",
    ),
    (
        "namespaced seconds counter",
        "work_queue_wait_seconds_total",
        ["kube_deployment", "kube_namespace"],
        "work_queue_wait",
        {EXT_DEPLOYMENTS, NAMESPACES},
        True,
        EXT_DEPLOYMENTS,
        "somens",
        ["somedep"],
        'sum(rate(work_queue_wait_seconds_total{kube_namespace="somens",kube_deployment="somedep"}'
        "[1m])) by (kube_deployment)",
    ),
    (
        "root scoped gauge",
        "node_gigawatts",
        ["kube_node"],
        "node_gigawatts",
        {NODES},
        False,
        NODES,
        "",
        ["somenode"],
        'sum(node_gigawatts{kube_node="somenode"}) by (kube_node)',
    ),
    (
        "root scoped counter",
        "volume_claims_total",
        ["kube_persistentvolume"],
        "volume_claims",
        {PERSISTENT_VOLUMES},
        False,
        PERSISTENT_VOLUMES,
        "",
        ["somepv"],
        'sum(rate(volume_claims_total{kube_persistentvolume="somepv"}[1m])) '
        "by (kube_persistentvolume)",
    ),
    (
        "root scoped seconds counter",
        "node_fan_seconds_total",
        ["kube_node"],
        "node_fan",
        {NODES},
        False,
        NODES,
        "",
        ["somenode"],
        'sum(rate(node_fan_seconds_total{kube_node="somenode"}[1m])) by (kube_node)',
    ),
]


@pytest.mark.parametrize(
    (
        "series",
        "labels",
        "api_name",
        "resources",
        "namespaced",
        "asked",
        "namespace",
        "names",
        "query",
    ),
    [c[1:] for c in REGISTRY],
    ids=[c[0] for c in REGISTRY],
)
def test_config_gen_rules_like_upstream_series_registry(
    series: str,
    labels: list[str],
    api_name: str,
    resources: set[GroupResource],
    namespaced: bool,
    asked: GroupResource,
    namespace: str,
    names: list[str],
    query: str,
) -> None:
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    # Exactly one rule takes each series (the rules are mutually exclusive).
    # Rules only see the series of their own seriesQuery: container_* or everything else.
    candidates = config.rules[:3] if series.startswith("container_") else config.rules[3:]
    [rule] = [r for r in candidates if r.api_name(series) is not None]
    assert rule.api_name(series) == api_name
    found, is_namespaced = rule.association.resources_for_labels(["__name__", *labels])
    assert (set(found), is_namespaced) == (resources, namespaced)
    resource_label = rule.label_for_resource(asked)
    assert resource_label is not None
    parts = [(rule.namespace_label or "", [namespace])] if namespace else []
    parts.append((resource_label, names))
    assert rule.render_query(context(series, matchers(*parts), [resource_label])) == query


def test_config_gen_resource_rules_like_upstream_resource_provider() -> None:
    rules = compiled("config-gen-1m.yaml").resource_rules
    assert rules is not None
    cpu, memory = rules.cpu, rules.memory
    assert (cpu.namespace_label, cpu.pod_label, cpu.node_label, cpu.container_label) == (
        "namespace",
        "pod",
        "instance",
        "container",
    )
    pods = context(
        "", matchers(("namespace", ["some-ns"]), ("pod", ["pod1", "pod3"])), ["pod", "container"]
    )
    assert cpu.render_container_query(pods) == (
        'sum(rate(container_cpu_usage_seconds_total{namespace="some-ns",pod=~"pod1|pod3"}[1m])) '
        "by (pod,container)"
    )
    assert memory.render_container_query(pods) == (
        'sum(container_memory_working_set_bytes{namespace="some-ns",pod=~"pod1|pod3"}) '
        "by (pod,container)"
    )
    nodes = context("", matchers(("instance", ["node1", "node2"])), ["instance"])
    assert cpu.render_node_query(nodes) == (
        'sum(1 - rate(node_cpu_seconds_total{instance=~"node1|node2", mode="idle"}[1m])) '
        "by (instance)"
    )
    assert rules.window.total_seconds() == 60


def test_deploy_manifests_resource_rules() -> None:
    rules = compiled("deploy-manifests-resource-rules.yaml").resource_rules
    assert rules is not None
    nodes = context("", matchers(("node", ["n1"])), ["node"])
    assert rules.memory.render_node_query(nodes) == (
        'sum by (node) (\n  node_memory_working_set_bytes{node="n1"}\n)\n'
    )
    assert rules.cpu.node_label == "node"


def test_docs_walkthrough_example() -> None:
    [rule] = compiled("docs-config-walkthrough.yaml").rules
    assert rule.api_name("http_requests_total") == "http_requests_per_second"
    pod_label = rule.label_for_resource(PODS)
    assert (rule.namespace_label, pod_label) == ("kubernetes_namespace", "kubernetes_pod_name")
    parts = matchers(
        ("kubernetes_namespace", ["production"]),
        ("kubernetes_pod_name", ["frontend-server-abcd-0123", "fronted-server-abcd-4567"]),
    )
    assert rule.render_query(context("http_requests_total", parts, ["kubernetes_pod_name"])) == (
        'sum(rate(http_requests_total{kubernetes_namespace="production",kubernetes_pod_name=~'
        '"frontend-server-abcd-0123|fronted-server-abcd-4567"}[2m])) by (kubernetes_pod_name)'
    )


def test_docs_external_metrics_namespaced_and_not() -> None:
    namespaced, global_ = compiled("docs-externalmetrics.yaml").external_rules
    assert (namespaced.is_external, namespaced.namespaced, namespaced.namespace_label) == (
        True,
        True,
        "namespace",
    )
    assert (global_.namespaced, global_.namespace_label) == (False, None)
    assert namespaced.api_name("queue_consumer_lag") == "queue_consumer_lag"
    # reference §2.2(e): selector name=q1, then the namespace matcher, GroupBy always empty
    query = namespaced.render_query(
        context("queue_consumer_lag", matchers(("name", ["q1"]), ("namespace", ["ns1"])), [])
    )
    assert query == 'sum(queue_consumer_lag{name="q1",namespace="ns1"}) by (name)'


def test_sample_config_external_rule_without_namespace_label_is_a_warning() -> None:
    catalog = BuiltinResourceCatalog(
        [*BUILTIN_RESOURCES, ResourceInfo("cheese.io", "brands", "brand", "Brand", True)]
    )
    config = compiled("docs-sample-config-corrected.yaml", catalog)
    assert config.rules[3].api_name("cheddar") == "cheesy_goodness"
    assert config.rules[3].resource_for_label("brand") == GroupResource("cheese.io", "brands")
    assert config.rules[3].label_for_resource(GroupResource("cheese.io", "brands")) == "brand"
    [warning] = config.warnings
    assert warning.location == "externalRules[0].resources"
    assert "no label maps to namespaces" in warning.message


def test_unknown_override_resource_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        compiled("docs-sample-config-corrected.yaml")
    [problem] = caught.value.problems
    assert problem.location == "rules[3].resources.overrides.brand"
    assert problem.line == 69
    assert "unknown resource 'brand.cheese.io'" in problem.message


def test_resource_rules_must_map_pods_nodes_and_namespaces() -> None:
    text = (UPSTREAM / "deploy-manifests-resource-rules.yaml").read_text()
    text = text.replace('        "node":\n          "resource": "node"\n', "", 1)
    with pytest.raises(ConfigError) as caught:
        compile_config(load_config(text), BuiltinResourceCatalog())
    [problem] = caught.value.problems
    assert problem.location == "resourceRules.cpu.resources"
    assert problem.message.startswith("must map a label to nodes")


TEMPLATE_CASES = [
    (
        "kube prefix, group and resource",
        "kube_<<.Group>>_<<.Resource>>",
        "kube_apps_deployment",
        GroupResource("apps", "deployments"),
    ),
    # (?P<group>.+?) needs one character, so core resources never match, as upstream.
    ("kube prefix, core group cannot match", "kube_<<.Group>>_<<.Resource>>", "kube__pod", None),
    ("resource only", "<<.Resource>>", "deployment", GroupResource("apps", "deployments")),
    ("resource only, plural label", "<<.Resource>>", "pods", PODS),
    ("prefix", "kube_<<.Resource>>", "kube_namespace", NAMESPACES),
    ("unknown resource", "<<.Resource>>", "method", None),
    ("prefix not matching", "kube_<<.Resource>>", "pod", None),
]


@pytest.mark.parametrize(
    ("template", "label", "resource"),
    [c[1:] for c in TEMPLATE_CASES],
    ids=[c[0] for c in TEMPLATE_CASES],
)
def test_template_label_to_resource(
    template: str, label: str, resource: GroupResource | None
) -> None:
    rule = one_rule(f"resources: {{template: '{template}'}}")
    assert rule.resource_for_label(label) == resource


@pytest.mark.parametrize(
    ("template", "resource", "label"),
    [
        (
            "kube_<<.Group>>_<<.Resource>>",
            GroupResource("apps", "deployments"),
            "kube_apps_deployment",
        ),
        (
            "kube_<<.Group>>_<<.Resource>>",
            GroupResource("networking.k8s.io", "ingresses"),
            "kube_networking_k8s_io_ingress",
        ),
        ("kube_<<.Group>>_<<.Resource>>", PODS, "kube__pod"),
        (
            "<<.Resource>>",
            GroupResource("autoscaling", "horizontalpodautoscalers"),
            "horizontalpodautoscaler",
        ),
        ("<<.Resource>>", GroupResource("nope", "things"), None),
    ],
    ids=["group", "dotted group sanitized", "core group", "singular", "unknown resource"],
)
def test_template_resource_to_label(
    template: str, resource: GroupResource, label: str | None
) -> None:
    assert one_rule(f"resources: {{template: '{template}'}}").label_for_resource(resource) == label


def test_dotted_group_label_does_not_map_back_like_upstream() -> None:
    # The template regex is (?P<group>.+?)_(?P<resource>.+?): the lazy group stops at the first
    # "_", so kube_networking_k8s_io_ingress is read as group "networking", as upstream does.
    rule = one_rule("resources: {template: 'kube_<<.Group>>_<<.Resource>>'}")
    assert rule.resource_for_label("kube_networking_k8s_io_ingress") is None


def test_overrides_both_directions_and_before_template() -> None:
    rule = one_rule(
        "resources:\n    template: <<.Resource>>\n    overrides:\n"
        "      microservice: {group: apps, resource: deployment}\n"
        "      pod_name: {resource: Pod}\n"
    )
    deployments = GroupResource("apps", "deployments")
    assert rule.resource_for_label("microservice") == deployments
    assert rule.label_for_resource(deployments) == "microservice"
    assert rule.resource_for_label("pod_name") == PODS
    assert rule.label_for_resource(PODS) == "pod_name"
    assert rule.resource_for_label("service") == SERVICES  # template still applies
    assert rule.label_for_resource(SERVICES) == "service"


NAMING = [
    ("default is the whole name", "", "", "http_requests_total", "http_requests_total"),
    ("one group defaults to $1", "^(.*)_total$", "", "http_requests_total", "http_requests"),
    (
        "per second",
        "^(.*)_total$",
        "${1}_per_second",
        "http_requests_total",
        "http_requests_per_second",
    ),
    ("dollar one", "^container_(.*)$", "$1", "container_cpu", "cpu"),
    ("named group", "^(?P<base>.*)_seconds_total$", "$base", "work_seconds_total", "work"),
    ("$0 is the match, not the name", "_total$", "", "http_requests_total", "_total"),
    ("$1x names group 1x", "^(.*)_total$", "$1x", "a_total", ""),
    ("double dollar", "^(.*)$", "$$$1", "a", "$a"),
    ("two groups with as", "^(a)_(b)$", "${2}_${1}", "a_b", "b_a"),
    ("unanchored match", "requests", "", "http_requests_total", "requests"),
]


@pytest.mark.parametrize(
    ("matches", "as_", "series", "expected"), [c[1:] for c in NAMING], ids=[c[0] for c in NAMING]
)
def test_naming(matches: str, as_: str, series: str, expected: str) -> None:
    name = f"name: {{matches: '{matches}', as: '{as_}'}}"
    assert one_rule(name).api_name(series) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$1", "ab"),
        ("${1}x", "abx"),
        ("$1x", ""),
        ("$3", ""),
        ("$", "$"),
        ("${1", "${1"),
        ("$name!", "c!"),
        ("$01", ""),
        ("a$$b", "a$b"),
    ],
    ids=[
        "number",
        "braced",
        "name swallows letters",
        "missing group",
        "lone dollar",
        "unclosed brace",
        "named",
        "leading zero",
        "escaped dollar",
    ],
)
def test_go_regexp_expand(template: str, expected: str) -> None:
    match = compile_go_regex("(ab)(?P<name>c)?").search("abc")
    assert match is not None
    assert go_regexp_expand(template, match) == expected


FILTERS = [
    ("is keeps matches", "[{is: '^a'}]", "", "abc", True),
    ("is drops others", "[{is: '^a'}]", "", "bc", False),
    ("isNot", "[{isNot: '_total$'}]", "", "x_total", False),
    ("unanchored", "[{is: 'b'}]", "", "abc", True),
    ("all must pass", "[{is: a}, {isNot: c}]", "", "abc", False),
    ("name.matches is an implicit filter", "[]", "^container_(.*)$", "node_cpu", False),
    ("name.matches passes", "[]", "^container_(.*)$", "container_cpu", True),
]


@pytest.mark.parametrize(
    ("filters", "matches", "series", "accepted"),
    [c[1:] for c in FILTERS],
    ids=[c[0] for c in FILTERS],
)
def test_filters(filters: str, matches: str, series: str, accepted: bool) -> None:
    rule = one_rule(f"seriesFilters: {filters}\n  name: {{matches: '{matches}'}}")
    assert rule.accepts(series) is accepted
    assert (rule.api_name(series) is not None) is accepted


def test_render_errors_name_the_rule() -> None:
    rule = one_rule("", query="<<if .Series>><<.Series>><<end>>")
    with pytest.raises(
        QueryRenderError,
        match=re.escape("rules[0].metricsQuery: the template produced an empty query"),
    ):
        rule.render_query(context("", "", []))
    bad = one_rule("", query="<<index .GroupBySlice 3>>")
    with pytest.raises(QueryRenderError, match=r"rules\[0\]\.metricsQuery: line 1, column 3"):
        bad.render_query(context("x", "", ["pod"]))


def test_rules_sharing_a_series_query_are_grouped() -> None:
    config = compiled("config-gen-default.yaml")
    groups = config.custom_series_queries
    assert [len(rules) for rules in groups.values()] == [3, 3]
    assert config.external_series_queries == {}


# The exporter's metric names (contract in the exporter brief) and the API names they get.
DEFAULT_RULE_NAMES = [
    ("kubestats_container_cpu_usage_seconds_total", "container_cpu_usage_seconds_per_second"),
    ("kubestats_pod_cpu_usage_seconds_total", "pod_cpu_usage_seconds_per_second"),
    ("kubestats_pod_network_receive_bytes_total", "pod_network_receive_bytes_per_second"),
    ("kubestats_pod_network_transmit_errors_total", "pod_network_transmit_errors_per_second"),
    ("kubestats_container_memory_working_set_bytes", "container_memory_working_set_bytes"),
    ("kubestats_pod_memory_working_set_bytes", "pod_memory_working_set_bytes"),
    ("kubestats_pod_ephemeral_storage_used_bytes", "pod_ephemeral_storage_used_bytes"),
    ("kubestats_container_start_time_seconds", None),
    ("kubestats_node_cpu_usage_seconds_total", None),
    ("kubestats_exporter_scrape_success", None),
]


@pytest.mark.parametrize(
    ("series", "api_name"), DEFAULT_RULE_NAMES, ids=[c[0] for c in DEFAULT_RULE_NAMES]
)
def test_default_rules_naming(series: str, api_name: str | None) -> None:
    config = compile_config(
        load_config_file(REPO_ROOT / "config" / "rules.yaml"), BuiltinResourceCatalog()
    )
    names = [n for n in (r.api_name(series) for r in config.rules) if n is not None]
    assert names == ([api_name] if api_name else [])


def test_default_rules_queries() -> None:
    config = compile_config(
        load_config_file(REPO_ROOT / "config" / "rules.yaml"), BuiltinResourceCatalog()
    )
    assert config.warnings == ()
    counters, gauges, volumes = config.rules
    assert counters.series_query == gauges.series_query  # one discovery query for both
    claims = matchers(("namespace", ["ns"]), ("persistentvolumeclaim", ["data"]))
    assert volumes.render_query(
        context("kubestats_volume_used_bytes", claims, ["persistentvolumeclaim"])
    ) == (
        "max by (persistentvolumeclaim) "
        '(kubestats_volume_used_bytes{namespace="ns",persistentvolumeclaim="data"})'
    )
    [node_cpu] = config.external_rules
    assert node_cpu.api_name("kubestats_node_cpu_usage_seconds_total") == "node_cpu_usage_cores"
    assert not node_cpu.namespaced
    pods = matchers(("namespace", ["ns"]), ("pod", ["a", "b"]))
    assert counters.render_query(
        context("kubestats_pod_network_receive_bytes_total", pods, ["pod"])
    ) == (
        'sum by (pod) (rate(kubestats_pod_network_receive_bytes_total{namespace="ns",pod=~"a|b"}'
        "[1m]))"
    )
    resource = config.resource_rules
    assert resource is not None
    assert (resource.cpu.pod_label, resource.cpu.node_label, resource.window.total_seconds()) == (
        "pod",
        "node",
        60,
    )
    assert resource.cpu.render_node_query(context("", matchers(("node", ["n1"])), ["node"])) == (
        'sum by (node) (rate(kubestats_node_cpu_usage_seconds_total{node="n1"}[1m]))'
    )
    assert resource.memory.render_container_query(context("", pods, ["pod", "container"])) == (
        "sum by (pod,container) "
        '(kubestats_container_memory_working_set_bytes{namespace="ns",pod=~"a|b"})'
    )


def one_rule(
    extra: str, query: str = "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"
) -> CompiledRule:
    text = f"rules:\n- seriesQuery: 'x{{namespace!=\"\"}}'\n  {extra}\n  metricsQuery: '{query}'\n"
    [rule] = compile_config(load_config(text), BuiltinResourceCatalog()).rules
    return rule
