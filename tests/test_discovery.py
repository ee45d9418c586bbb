"""Discovery: the selector rewriter, discovery over a stand-in Prometheus (pytest-httpserver
answering the metadata endpoints in their real JSON shapes), failure handling, the background
thread, and the same discovery against a real Prometheus.

Expected registries are prometheus-adapter's: the 17-entry ``ListAllMetrics`` list of its
series_registry_test.go for config-gen's defaults (with and without the ``kube_`` prefix).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from adapter.config import load_config, load_config_file
from adapter.discovery import (
    DiscoverySettings,
    MetricDiscovery,
    SelectorRewriteError,
    add_label_matcher,
    fetch_series_query,
    require_label,
    resource_label_candidates,
)
from adapter.prometheus import PrometheusClient, PrometheusSettings
from adapter.promql import quote_string
from adapter.registry import CustomMetricInfo
from adapter.resources import (
    NAMESPACES,
    NODES,
    PERSISTENT_VOLUMES,
    PODS,
    BuiltinResourceCatalog,
    GroupResource,
)
from adapter.rules import CompiledConfig, compile_config
from tests.conftest import FIXTURES_DIR, UPSTREAM_TEST_CATALOG
from tests.prometheus_server import PrometheusServer, running_prometheus

UPSTREAM = FIXTURES_DIR / "prometheus-adapter"
NOW = 1_700_000_000.0
SERVICES = GroupResource("", "services")
EXT_INGRESSES = GroupResource("extensions", "ingresses")
EXT_DEPLOYMENTS = GroupResource("extensions", "deployments")


# --- the selector rewriter -----------------------------------------------------------------------

REWRITES = [
    (
        "braces",
        '{__name__=~"^container_.*",namespace!=""}',
        '{__name__=~"^container_.*",namespace!="",pod!=""}',
    ),
    ("name and braces", 'http_requests_total{job="a"}', 'http_requests_total{job="a",pod!=""}'),
    ("bare name", "http_requests_total", 'http_requests_total{pod!=""}'),
    ("name with colon", "job:requests:rate5m", 'job:requests:rate5m{pod!=""}'),
    ("spaces kept", '  up { job = "a" }  ', '  up { job = "a",pod!=""}'),
    ("empty braces after name", "up{}", 'up{pod!=""}'),
    ("trailing comma", 'up{job="a",}', 'up{job="a",pod!=""}'),
    ("brace inside double quotes", '{a="}",b="{"}', '{a="}",b="{",pod!=""}'),
    ("escaped quote", '{a="x\\"}"}', '{a="x\\"}",pod!=""}'),
    ("single quotes", "{a='}'}", "{a='}',pod!=\"\"}"),
    ("raw string", "{a=`\\`}", '{a=`\\`,pod!=""}'),
    ("quoted metric name inside braces", '{"my.metric",a="b"}', '{"my.metric",a="b",pod!=""}'),
]


@pytest.mark.parametrize(
    ("selector", "expected"), [c[1:] for c in REWRITES], ids=[c[0] for c in REWRITES]
)
def test_require_label_rewrites(selector: str, expected: str) -> None:
    assert require_label(selector, "pod") == expected


REWRITE_ERRORS = [
    ("expression", "up or down", "expected '{' at offset 3"),
    ("function", "sum(up)", "expected '{' at offset 3"),
    ("unclosed", '{a="b"', "missing '}' for the '{' at offset 0"),
    ("unterminated string", '{a="b}', "unterminated string starting at offset 3"),
    ("offset after selector", '{a="b"} offset 5m', "unexpected 'offset 5m' at offset 8"),
    ("empty", "   ", "empty series selector"),
    ("nested brace", "{a{", "unexpected '{' at offset 2"),
]


@pytest.mark.parametrize(
    ("selector", "message"), [c[1:] for c in REWRITE_ERRORS], ids=[c[0] for c in REWRITE_ERRORS]
)
def test_require_label_rejects_what_is_not_a_selector(selector: str, message: str) -> None:
    with pytest.raises(SelectorRewriteError, match=message.replace("{", "\\{").replace("(", "\\(")):
        require_label(selector, "pod")


@given(values=st.lists(st.text(max_size=12), min_size=1, max_size=3), name=st.booleans())
def test_require_label_keeps_any_quoted_value_intact(values: list[str], name: bool) -> None:
    # Values quoted as the adapter quotes them may hold braces, commas and quotes of any kind.
    matchers = ",".join(f"l{i}={quote_string(v)}" for i, v in enumerate(values))
    prefix = "metric" if name else ""
    assert require_label(f"{prefix}{{{matchers}}}", "pod") == f'{prefix}{{{matchers},pod!=""}}'


def test_require_label_rejects_a_bad_label_name() -> None:
    with pytest.raises(SelectorRewriteError, match="'a-b' is not a Prometheus label name"):
        require_label("up", "a-b")


def test_add_label_matcher_takes_any_matcher() -> None:
    assert add_label_matcher('{a="b"}', 'c=~"x|y"') == '{a="b",c=~"x|y"}'


@pytest.mark.e2e
def test_rewritten_selectors_are_accepted_by_real_prometheus(
    prometheus_server: PrometheusServer,
) -> None:
    # Prometheus 2.42 has no quoted metric names; every other rewrite must parse.
    for case_id, selector, _ in REWRITES:
        if case_id == "quoted metric name inside braces":
            continue
        response = requests.get(
            f"{prometheus_server.url}/api/v1/labels",
            params={"match[]": require_label(selector, "pod")},
            timeout=10,
        )
        assert response.status_code == 200, (case_id, response.text)


# --- the stand-in Prometheus ---------------------------------------------------------------------

Series = dict[str, str]


def series(metric: str, **labels: str) -> Series:
    return {"__name__": metric, **labels}


@dataclass
class StandIn:
    """Answers /api/v1/labels and /api/v1/label/__name__/values like Prometheus for the series
    given per seriesQuery; a restricted query is recognised as Q with ``,L!=""`` before the
    closing brace (every query used here is a ``{...}`` selector)."""

    by_query: dict[str, list[Series]]
    failing: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _answer(self, match: str, path: str) -> list[str] | None:
        for query, members in self.by_query.items():
            if query in self.failing and match.startswith(query[:-1]):
                raise LookupError(query)
            if path == "/api/v1/labels" and match == query:
                return sorted({label for s in members for label in s})
            if path == "/api/v1/label/__name__/values":
                if match == query:
                    return sorted({s["__name__"] for s in members})
                prefix, suffix = query[:-1] + ",", '!=""}'
                if match.startswith(prefix) and match.endswith(suffix):
                    label = match[len(prefix) : -len(suffix)]
                    return sorted({s["__name__"] for s in members if label in s})
        return None

    def handle(self, request: Request) -> Response:
        args = dict(parse_qsl(request.query_string.decode(), keep_blank_values=True))
        with self.lock:
            self.calls.append((request.path, args))
        try:
            data = self._answer(args.get("match[]", ""), request.path)
        except LookupError as err:
            body = {"status": "error", "errorType": "unavailable", "error": f"{err} is down"}
            return Response(json.dumps(body), 503, content_type="application/json")
        if data is None or "start" not in args or "end" not in args:
            with self.lock:
                self.unexpected.append(f"{request.path} {args}")
            body = {"status": "error", "errorType": "bad_data", "error": "unexpected request"}
            return Response(json.dumps(body), 400, content_type="application/json")
        return Response(
            json.dumps({"status": "success", "data": data}), content_type="application/json"
        )

    def paths(self) -> list[str]:
        with self.lock:
            return [path for path, _ in self.calls]


def bind(server: HTTPServer, standin: StandIn) -> None:
    server.expect_request("/api/v1/labels").respond_with_handler(standin.handle)
    server.expect_request("/api/v1/label/__name__/values").respond_with_handler(standin.handle)


StandInFactory = Callable[[dict[str, list[Series]]], StandIn]


@pytest.fixture
def standin_factory(httpserver: HTTPServer) -> Iterator[StandInFactory]:
    made: list[StandIn] = []

    def make(by_query: dict[str, list[Series]]) -> StandIn:
        standin = StandIn(by_query)
        bind(httpserver, standin)
        made.append(standin)
        return standin

    yield make
    for standin in made:
        assert standin.unexpected == [], "discovery sent requests the stand-in did not expect"
        assert "/api/v1/series" not in standin.paths()


def client_for(httpserver: HTTPServer) -> PrometheusClient:
    return PrometheusClient(PrometheusSettings(url=httpserver.url_for("/"), timeout=5.0))


def compiled(name: str, catalog: BuiltinResourceCatalog | None = None) -> CompiledConfig:
    return compile_config(load_config_file(UPSTREAM / name), catalog or BuiltinResourceCatalog())


def compiled_text(text: str, catalog: BuiltinResourceCatalog | None = None) -> CompiledConfig:
    return compile_config(load_config(text), catalog or BuiltinResourceCatalog())


# series_registry_test.go's series, split by the seriesQuery that would return them.
CONTAINER_QUERY = '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'


def upstream_series(prefix: str) -> dict[str, list[Series]]:
    def k(**labels: str) -> dict[str, str]:
        return {(prefix + key): value for key, value in labels.items()}

    container = {"pod": "somepod", "namespace": "somens", "container": "somecont"}
    return {
        CONTAINER_QUERY: [
            series("container_some_time_seconds_total", **container),
            series("container_some_count_total", **container),
            series("container_some_usage", **container),
        ],
        f'{{{prefix}namespace!="",__name__!~"^container_.*"}}': [
            series("node_gigawatts", **k(node="somenode")),
            series("service_proxy_packets", **k(service="somesvc", namespace="somens")),
            series(
                "ingress_hits_total",
                **k(ingress="someingress", service="somesvc", pod="backend1", namespace="somens"),
            ),
            series(
                "ingress_hits_total",
                **k(ingress="someingress", service="somesvc", pod="backend2", namespace="somens"),
            ),
            series("volume_claims_total", **k(persistentvolume="somepv")),
            series("work_queue_wait_seconds_total", **k(deployment="somedep", namespace="somens")),
            series("node_fan_seconds_total", **k(node="somenode")),
        ],
    }


def info(gr: GroupResource, metric: str, namespaced: bool) -> CustomMetricInfo:
    return CustomMetricInfo(gr, metric, namespaced)


# series_registry_test.go "should list all metrics" (ConsistOf: any order).
UPSTREAM_LIST_ALL_METRICS = sorted(
    [
        info(PODS, "some_count", True),
        info(NAMESPACES, "some_count", False),
        info(PODS, "some_time", True),
        info(NAMESPACES, "some_time", False),
        info(PODS, "some_usage", True),
        info(NAMESPACES, "some_usage", False),
        info(SERVICES, "ingress_hits", True),
        info(EXT_INGRESSES, "ingress_hits", True),
        info(PODS, "ingress_hits", True),
        info(NAMESPACES, "ingress_hits", False),
        info(SERVICES, "service_proxy_packets", True),
        info(NAMESPACES, "service_proxy_packets", False),
        info(EXT_DEPLOYMENTS, "work_queue_wait", True),
        info(NAMESPACES, "work_queue_wait", False),
        info(NODES, "node_gigawatts", False),
        info(PERSISTENT_VOLUMES, "volume_claims", False),
        info(NODES, "node_fan", False),
    ]
)

CONFIG_GEN_CASES = [
    ("config-gen kube_ prefix", "config-gen-1m-kube-prefix.yaml", "kube_"),
    ("config-gen no prefix", "config-gen-1m.yaml", ""),
]


@pytest.mark.parametrize(
    ("config_name", "prefix"),
    [c[1:] for c in CONFIG_GEN_CASES],
    ids=[c[0] for c in CONFIG_GEN_CASES],
)
def test_config_gen_defaults_list_upstreams_17_metrics(
    httpserver: HTTPServer, standin_factory: StandInFactory, config_name: str, prefix: str
) -> None:
    by_query = upstream_series(prefix)
    standin = standin_factory(by_query)
    config = compiled(config_name, UPSTREAM_TEST_CATALOG)
    discovery = MetricDiscovery(client_for(httpserver), config, clock=lambda: NOW)

    registry = discovery.refresh()

    assert registry.custom_metrics() == UPSTREAM_LIST_ALL_METRICS
    assert len(registry.custom_metrics()) == 17
    assert registry.external_metrics() == []
    assert discovery.errors() == {}
    assert discovery.last_success == datetime.fromtimestamp(NOW, UTC)
    assert registry.refreshed_at == datetime.fromtimestamp(NOW, UTC)
    # The entry keeps the Prometheus series name and the rule that names it.
    entry = registry.lookup_custom(SERVICES, "ingress_hits", True)
    assert entry is not None
    assert (entry.series_name, entry.rule.location) == ("ingress_hits_total", "rules[4]")
    some_time = registry.lookup_custom(NAMESPACES, "some_time", False)
    assert some_time is not None
    assert (some_time.series_name, some_time.rule.location) == (
        "container_some_time_seconds_total",
        "rules[0]",
    )
    # Cost: per query, names + labels + one restricted names call per resource label present.
    resource_labels = {
        CONTAINER_QUERY: 2,  # namespace, pod (container maps to nothing)
        f'{{{prefix}namespace!="",__name__!~"^container_.*"}}': 7,
    }
    assert len(standin.calls) == sum(2 + n for n in resource_labels.values())
    starts = {args["start"] for _, args in standin.calls}
    assert starts == {f"{NOW - 60:.3f}"}  # max age defaults to the 1m relist interval


def test_discovered_data_is_names_and_resource_labels_only(
    httpserver: HTTPServer, standin_factory: StandInFactory
) -> None:
    by_query = upstream_series("kube_")
    standin_factory(by_query)
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    registry = MetricDiscovery(client_for(httpserver), config, clock=lambda: NOW).refresh()
    result = registry.discovered['{kube_namespace!="",__name__!~"^container_.*"}']
    assert dict(result.names)["ingress_hits_total"] == frozenset(
        {"kube_ingress", "kube_service", "kube_pod", "kube_namespace"}
    )
    # Two ingress_hits_total series, one pair set: the data does not grow with series.
    assert result.pair_count == 1 + 2 + 4 + 1 + 2 + 1


RULE_SET_CASES = [
    (
        "later rule overrides earlier for the same key",
        """
rules:
- seriesQuery: '{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: ^(.*)_total$, as: "${1}_per_second"}
  metricsQuery: first
- seriesQuery: '{namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: ^(.*)_total$, as: "${1}_per_second"}
  metricsQuery: second
""",
        {'{namespace!=""}': [series("http_requests_total", namespace="a", pod="p")]},
        {
            (PODS, "http_requests_per_second", True): ("rules[1]", "http_requests_total"),
            (NAMESPACES, "http_requests_per_second", False): ("rules[1]", "http_requests_total"),
        },
        {},
    ),
    (
        "filters and names; no resource label means not listed",
        """
rules:
- seriesQuery: '{app="shop"}'
  seriesFilters: [{isNot: ^debug_}]
  resources: {template: <<.Resource>>}
  name: {matches: ^(.*)_seconds_total$, as: "${1}_seconds_per_second"}
  metricsQuery: q
""",
        {
            '{app="shop"}': [
                series("work_seconds_total", app="shop", namespace="n", service="s"),
                series("debug_seconds_total", app="shop", namespace="n", service="s"),
                series("orphan_seconds_total", app="shop", method="GET"),
                series("gauge", app="shop", namespace="n"),
            ]
        },
        {
            (SERVICES, "work_seconds_per_second", True): ("rules[0]", "work_seconds_total"),
            (NAMESPACES, "work_seconds_per_second", False): ("rules[0]", "work_seconds_total"),
        },
        {},
    ),
    (
        "cluster-scoped CRD keeps upstream's namespaced quirk",
        """
rules:
- seriesQuery: '{storageclass!=""}'
  resources:
    overrides:
      storageclass: {group: storage.k8s.io, resource: storageclass}
      node: {resource: node}
  metricsQuery: q
""",
        {'{storageclass!=""}': [series("provisioned_bytes", storageclass="fast", node="n1")]},
        {
            (GroupResource("storage.k8s.io", "storageclasses"), "provisioned_bytes", True): (
                "rules[0]",
                "provisioned_bytes",
            ),
            (NODES, "provisioned_bytes", False): ("rules[0]", "provisioned_bytes"),
        },
        {},
    ),
    (
        "external rules: API names only, de-duplicated, later rule wins",
        """
externalRules:
- seriesQuery: '{__name__=~"^queue_.*"}'
  resources: {overrides: {namespace: {resource: namespace}}}
  name: {matches: ^queue_(.*)_(lag|depth)$, as: "queue_$2"}
  metricsQuery: first
- seriesQuery: '{__name__=~"^queue_.*",name!=""}'
  resources: {namespaced: false}
  name: {matches: ^queue_consumer_(lag)$, as: "queue_$1"}
  metricsQuery: second
""",
        {
            '{__name__=~"^queue_.*"}': [
                series("queue_consumer_lag", namespace="a", name="q1"),
                series("queue_producer_lag", namespace="a", name="q1"),
                series("queue_consumer_depth", namespace="b"),
            ],
            '{__name__=~"^queue_.*",name!=""}': [
                series("queue_consumer_lag", namespace="a", name="q1"),
            ],
        },
        {},
        {
            "queue_depth": ("externalRules[0]", "queue_consumer_depth"),
            "queue_lag": ("externalRules[1]", "queue_consumer_lag"),
        },
    ),
]


@pytest.mark.parametrize(
    ("rules_text", "by_query", "custom", "external"),
    [c[1:] for c in RULE_SET_CASES],
    ids=[c[0] for c in RULE_SET_CASES],
)
def test_rule_sets(
    httpserver: HTTPServer,
    standin_factory: StandInFactory,
    rules_text: str,
    by_query: dict[str, list[Series]],
    custom: dict[tuple[GroupResource, str, bool], tuple[str, str]],
    external: dict[str, tuple[str, str]],
) -> None:
    standin = standin_factory(by_query)
    registry = MetricDiscovery(
        client_for(httpserver), compiled_text(rules_text), clock=lambda: NOW
    ).refresh()
    assert {
        (i.group_resource, i.metric, i.namespaced): (e.rule.location, e.series_name)
        for i, e in registry.custom.items()
    } == custom
    assert {
        name: (e.rule.location, e.series_name) for name, e in registry.external.items()
    } == external
    if not custom:
        # External-only queries need the names, not the label names.
        assert set(standin.paths()) == {"/api/v1/label/__name__/values"}


def test_resource_label_candidates_only_keep_mapped_labels() -> None:
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    labels = [
        "__name__",
        "kube_pod",
        "kube_container",
        "job",
        "kube_node",
        "http.method",
        "kube_deployment",
    ]
    assert resource_label_candidates(config.rules[3:], labels) == (
        "kube_deployment",
        "kube_node",
        "kube_pod",
    )
    assert resource_label_candidates(config.rules[:3], labels) == ()


class FakeSource:
    """A LabelSource without HTTP, to check the request sequence of one seriesQuery."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def label_names(
        self, matchers: Sequence[str] = (), start: float | None = None, end: float | None = None
    ) -> list[str]:
        self.calls.append(("labels", tuple(matchers)))
        return ["__name__", "pod", "method"]

    def label_values(
        self,
        label: str,
        matchers: Sequence[str] = (),
        start: float | None = None,
        end: float | None = None,
    ) -> list[str]:
        self.calls.append((label, tuple(matchers)))
        # A series that appears between the two calls still counts.
        return ["a_total"] if matchers == ("x",) else ["a_total", "late_total"]


def test_fetch_series_query_request_sequence_for_a_bare_name() -> None:
    config = compiled_text(
        "rules: [{seriesQuery: x, resources: {template: <<.Resource>>}, metricsQuery: q}]"
    )
    source = FakeSource()
    result = fetch_series_query(source, "x", config.rules, start=1.0, end=2.0)
    assert source.calls == [("__name__", ("x",)), ("labels", ("x",)), ("__name__", ('x{pod!=""}',))]
    assert dict(result.names) == {"a_total": frozenset({"pod"}), "late_total": frozenset({"pod"})}
    assert result.fetched_at == 2.0


# --- failures ------------------------------------------------------------------------------------


def test_one_failing_series_query_keeps_the_others_and_its_previous_result(
    httpserver: HTTPServer, standin_factory: StandInFactory
) -> None:
    by_query = upstream_series("kube_")
    standin = standin_factory(by_query)
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    clock = [NOW]
    discovery = MetricDiscovery(client_for(httpserver), config, clock=lambda: clock[0])
    first = discovery.refresh()
    other_query = '{kube_namespace!="",__name__!~"^container_.*"}'

    # Next pass: the container query changed, the other query fails.
    by_query[CONTAINER_QUERY].append(series("container_new_usage", pod="p", namespace="n"))
    standin.failing.add(other_query)
    clock[0] = NOW + 60
    second = discovery.refresh()

    assert second.generation == first.generation + 1
    assert info(PODS, "new_usage", True) in second.custom_metrics()
    assert set(first.custom_metrics()) < set(second.custom_metrics())
    assert info(NODES, "node_fan", False) in second.custom_metrics()  # kept from the first pass
    errors = discovery.errors()
    assert list(errors) == [other_query]
    assert "HTTP 503 unavailable" in errors[other_query]
    statuses = discovery.query_statuses()
    assert statuses[other_query].last_success == NOW  # the result in use is the first pass'
    assert statuses[other_query].names == 6
    assert statuses[CONTAINER_QUERY].last_success == NOW + 60
    assert statuses[CONTAINER_QUERY].error is None
    assert discovery.last_success == datetime.fromtimestamp(NOW, UTC)  # not every query succeeded
    assert second.refreshed_at == datetime.fromtimestamp(NOW + 60, UTC)


def test_failing_query_on_first_pass_still_serves_the_others(
    httpserver: HTTPServer, standin_factory: StandInFactory
) -> None:
    standin = standin_factory(upstream_series("kube_"))
    standin.failing.add(CONTAINER_QUERY)
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    discovery = MetricDiscovery(client_for(httpserver), config, clock=lambda: NOW)
    registry = discovery.refresh()
    assert [i for i in UPSTREAM_LIST_ALL_METRICS if i not in registry.custom_metrics()] == [
        i for i in UPSTREAM_LIST_ALL_METRICS if i.metric.startswith("some_")
    ]
    assert discovery.query_statuses()[CONTAINER_QUERY].last_success is None
    assert discovery.last_success is None


def test_unrewritable_series_query_is_a_per_query_error(
    httpserver: HTTPServer, standin_factory: StandInFactory
) -> None:
    bad = "sum(up)"
    standin_factory(
        {'{pod!=""}': [series("a", pod="p", namespace="n")], bad: [series("b", pod="p")]}
    )
    config = compiled_text(
        f"""
rules:
- {{seriesQuery: '{{pod!=""}}', resources: {{template: <<.Resource>>}}, metricsQuery: q}}
- {{seriesQuery: '{bad}', resources: {{template: <<.Resource>>}}, metricsQuery: q}}
"""
    )
    discovery = MetricDiscovery(client_for(httpserver), config, clock=lambda: NOW)
    registry = discovery.refresh()
    assert [str(i) for i in registry.custom_metrics()] == ["namespaces/a", "pods/a"]
    assert "expected '{' at offset 3" in discovery.errors()[bad]


def test_prometheus_down_keeps_the_last_registry() -> None:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    standin = StandIn(upstream_series("kube_"))
    bind(server, standin)
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    discovery = MetricDiscovery(client_for(server), config, clock=lambda: NOW)
    before = discovery.refresh()
    server.stop()

    after = discovery.refresh()

    assert after is before
    assert after.custom_metrics() == UPSTREAM_LIST_ALL_METRICS
    errors = discovery.errors()
    assert len(errors) == 2
    assert all("cannot reach Prometheus" in message for message in errors.values())
    assert discovery.last_success == datetime.fromtimestamp(NOW, UTC)
    assert standin.unexpected == []


def test_set_config_rebuilds_from_the_results_at_hand(
    httpserver: HTTPServer, standin_factory: StandInFactory
) -> None:
    standin_factory(upstream_series("kube_"))
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    discovery = MetricDiscovery(client_for(httpserver), config, clock=lambda: NOW)
    discovery.refresh()
    # Keep only the container rules: the other query's result is dropped, no request needed.
    fewer = CompiledConfig(config.source_name, config.rules[:3], (), None)
    registry = discovery.set_config(fewer)
    assert registry.custom_metrics() == [
        i for i in UPSTREAM_LIST_ALL_METRICS if i.metric.startswith("some_")
    ]
    assert list(registry.discovered) == [CONTAINER_QUERY]
    assert registry.refreshed_at == datetime.fromtimestamp(NOW, UTC)


@pytest.mark.parametrize(
    ("settings", "problems"),
    [
        (DiscoverySettings(), []),
        (
            DiscoverySettings(timedelta(0)),
            ["--metrics-relist-interval must be positive, got 0:00:00"],
        ),
        (
            DiscoverySettings(timedelta(minutes=5), timedelta(minutes=1)),
            [
                "--metrics-max-age (0:01:00) must not be less than "
                "--metrics-relist-interval (0:05:00)"
            ],
        ),
    ],
    ids=["defaults", "zero interval", "max age below interval"],
)
def test_settings_problems(settings: DiscoverySettings, problems: list[str]) -> None:
    assert settings.problems() == problems


# --- the background thread -----------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def test_thread_refreshes_on_the_interval_and_stops(
    httpserver: HTTPServer, standin_factory: StandInFactory
) -> None:
    standin_factory(upstream_series("kube_"))
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    discovery = MetricDiscovery(
        client_for(httpserver),
        config,
        DiscoverySettings(timedelta(milliseconds=20), timedelta(minutes=1)),
    )
    discovery.start()
    try:
        wait_for(lambda: discovery.registry.generation >= 3, "three refreshes")
        with pytest.raises(RuntimeError, match="already running"):
            discovery.start()
    finally:
        discovery.stop()
    stopped_at = discovery.registry.generation
    time.sleep(0.1)
    assert discovery.registry.generation == stopped_at
    assert discovery.registry.custom_metrics() == UPSTREAM_LIST_ALL_METRICS
    assert not [t for t in threading.enumerate() if t.name == "metric-discovery"]


def test_set_config_wakes_the_thread(
    httpserver: HTTPServer, standin_factory: StandInFactory
) -> None:
    by_query = upstream_series("kube_")
    standin = standin_factory(by_query)
    config = compiled("config-gen-1m-kube-prefix.yaml", UPSTREAM_TEST_CATALOG)
    discovery = MetricDiscovery(
        client_for(httpserver), CompiledConfig("x", config.rules[:3], (), None)
    )
    discovery.start()
    try:
        wait_for(lambda: discovery.registry.refreshed_at is not None, "the first refresh")
        assert len(discovery.registry.custom_metrics()) == 6
        discovery.set_config(config)  # adds the other query; the interval is a minute
        wait_for(
            lambda: len(discovery.registry.custom_metrics()) == 17, "the refresh after set_config"
        )
    finally:
        discovery.stop()
    assert any(args.get("match[]", "").startswith("{kube_namespace") for _, args in standin.calls)


# --- against a real Prometheus -------------------------------------------------------------------


def openmetrics(now: float, rows: Sequence[tuple[str, dict[str, str]]]) -> str:
    lines = []
    for name, labels in rows:
        text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for age in (120, 60):
            lines.append(f"{name}{{{text}}} 1 {now - age:.0f}")
    return "\n".join(lines) + "\n# EOF\n"


REAL_SERIES = [
    (
        "container_cpu_usage_seconds_total",
        {"namespace": "shop", "pod": "web-1", "container": "app"},
    ),
    (
        "container_cpu_usage_seconds_total",
        {"namespace": "shop", "pod": "web-2", "container": "app"},
    ),
    (
        "container_memory_working_set_bytes",
        {"namespace": "shop", "pod": "web-1", "container": "app"},
    ),
    ("container_network_errors_total", {"namespace": "shop", "pod": "web-1", "container": "app"}),
    ("container_pause_bytes", {"namespace": "shop", "pod": "web-1", "container": "POD"}),
    ("http_requests_total", {"namespace": "shop", "pod": "web-1", "service": "web", "job": "app"}),
    ("http_request_duration_seconds_total", {"namespace": "shop", "deployment": "web"}),
    ("queue_depth", {"namespace": "shop", "queue": "orders"}),
    ("node_temperature_celsius", {"node": "n1", "namespace": "kube-system"}),
    ("unrelated_metric", {"job": "x"}),
]

REAL_EXPECTED = sorted(
    [
        info(PODS, "cpu_usage", True),
        info(NAMESPACES, "cpu_usage", False),
        info(PODS, "memory_working_set_bytes", True),
        info(NAMESPACES, "memory_working_set_bytes", False),
        info(PODS, "network_errors", True),
        info(NAMESPACES, "network_errors", False),
        info(PODS, "http_requests", True),
        info(SERVICES, "http_requests", True),
        info(NAMESPACES, "http_requests", False),
        # The job label maps to jobs.batch through the <<.Resource>> template, as upstream.
        info(GroupResource("batch", "jobs"), "http_requests", True),
        info(GroupResource("apps", "deployments"), "http_request_duration", True),
        info(NAMESPACES, "http_request_duration", False),
        info(NAMESPACES, "queue_depth", False),
        info(NODES, "node_temperature_celsius", False),
        info(NAMESPACES, "node_temperature_celsius", False),
    ]
)

EXTERNAL_RULES = """
externalRules:
- seriesQuery: '{__name__=~"^queue_.*",namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)
"""


@pytest.fixture(scope="module")
def loaded_prometheus(
    prometheus_binary: str, promtool: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusServer, float]]:
    now = time.time()
    directory = tmp_path_factory.mktemp("discovery-prometheus")
    with running_prometheus(
        prometheus_binary, directory, openmetrics=openmetrics(now, REAL_SERIES), promtool=promtool
    ) as server:
        yield server, now


@pytest.mark.e2e
def test_same_discovery_against_a_real_prometheus(
    loaded_prometheus: tuple[PrometheusServer, float],
) -> None:
    server, _ = loaded_prometheus
    defaults = Path(UPSTREAM / "config-gen-1m.yaml").read_text(encoding="utf-8")
    config = compiled_text(defaults.split("resourceRules:")[0] + EXTERNAL_RULES)
    client = PrometheusClient(PrometheusSettings(url=server.url, timeout=10.0))
    discovery = MetricDiscovery(
        client, config, DiscoverySettings(timedelta(minutes=1), timedelta(hours=1))
    )

    registry = discovery.refresh()

    assert discovery.errors() == {}
    assert registry.custom_metrics() == REAL_EXPECTED
    assert registry.external_metrics() == ["queue_depth"]
    entry = registry.lookup_custom(SERVICES, "http_requests", True)
    assert entry is not None
    assert (entry.series_name, entry.rule.location) == ("http_requests_total", "rules[4]")
    # The pause container is excluded by the seriesQuery itself (container!="POD").
    assert "container_pause_bytes" not in registry.discovered[CONTAINER_QUERY].names
    assert registry.candidates("http_request", 2) == ["http_requests", "http_request_duration"]


@pytest.mark.e2e
def test_real_prometheus_max_age_hides_old_series(
    loaded_prometheus: tuple[PrometheusServer, float],
) -> None:
    server, now = loaded_prometheus
    defaults = Path(UPSTREAM / "config-gen-1m.yaml").read_text(encoding="utf-8")
    config = compiled_text(defaults.split("resourceRules:")[0])
    client = PrometheusClient(PrometheusSettings(url=server.url, timeout=10.0))
    # Every sample is at least a minute old; a clock an hour later with a 1m max age sees none.
    discovery = MetricDiscovery(client, config, clock=lambda: now + 3600)
    assert discovery.refresh().custom_metrics() == []
    assert discovery.errors() == {}
