"""The registry built from discovery results: keys, namespacing, override order, lookups,
candidates and immutability (pure, no Prometheus)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from adapter.config import load_config
from adapter.registry import (
    CustomMetricInfo,
    MetricRegistry,
    SeriesQueryResult,
    build_registry,
)
from adapter.resources import NAMESPACES, NODES, PODS, BuiltinResourceCatalog, GroupResource
from adapter.rules import CompiledConfig, compile_config

SERVICES = GroupResource("", "services")
RULES = """
rules:
- seriesQuery: '{namespace!=""}'
  resources: {template: <<.Resource>>}
  name: {matches: ^(.*)_total$, as: "${1}_per_second"}
  metricsQuery: rate
- seriesQuery: '{namespace!=""}'
  seriesFilters: [{isNot: _total$}]
  resources: {template: <<.Resource>>}
  metricsQuery: gauge
- seriesQuery: '{node!=""}'
  resources: {overrides: {node: {resource: node}}}
  name: {matches: ^node_(.*), as: "$1"}
  metricsQuery: node
externalRules:
- seriesQuery: '{__name__=~"^queue_.*"}'
  resources: {namespaced: false}
  metricsQuery: ext
"""


def config() -> CompiledConfig:
    return compile_config(load_config(RULES), BuiltinResourceCatalog())


def result(query: str, names: dict[str, set[str]]) -> SeriesQueryResult:
    return SeriesQueryResult(query, {n: frozenset(labels) for n, labels in names.items()}, 1.0)


RESULTS = {
    '{namespace!=""}': result(
        '{namespace!=""}',
        {
            "http_requests_total": {"namespace", "pod", "service"},
            "queue_length": {"namespace", "service"},
            "no_resource_total": set(),
        },
    ),
    '{node!=""}': result('{node!=""}', {"node_load1": {"node"}, "node_": {"node"}}),
    '{__name__=~"^queue_.*"}': result(
        '{__name__=~"^queue_.*"}', {"queue_length": set(), "queue_age": set()}
    ),
    "{stale}": result("{stale}", {"gone": {"pod"}}),
}


@pytest.fixture
def registry() -> MetricRegistry:
    return build_registry(
        config(), RESULTS, generation=3, refreshed_at=datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_custom_metrics_sorted_with_upstream_namespacing(registry: MetricRegistry) -> None:
    assert [(str(i), i.namespaced) for i in registry.custom_metrics()] == [
        ("namespaces/http_requests_per_second", False),
        ("namespaces/queue_length", False),
        ("nodes/load1", False),
        ("pods/http_requests_per_second", True),
        ("services/http_requests_per_second", True),
        ("services/queue_length", True),
    ]
    # "node_" names an empty API metric ("$1" of nothing): not servable, not listed.
    assert registry.external_metrics() == ["queue_age", "queue_length"]
    assert (registry.generation, registry.refreshed_at) == (3, datetime(2026, 1, 1, tzinfo=UTC))
    assert list(registry.discovered) == [q for q in RESULTS if q != "{stale}"]


LOOKUPS = [
    (
        "pods namespaced",
        PODS,
        "http_requests_per_second",
        True,
        ("rules[0]", "http_requests_total"),
    ),
    ("namespaces not namespaced", NAMESPACES, "queue_length", False, ("rules[1]", "queue_length")),
    ("namespaces asked as namespaced", NAMESPACES, "queue_length", True, None),
    ("nodes", NODES, "load1", False, ("rules[2]", "node_load1")),
    ("series name is not the API name", PODS, "http_requests_total", True, None),
    ("resource without that metric", PODS, "queue_length", True, None),
]


@pytest.mark.parametrize(
    ("resource", "metric", "namespaced", "expected"),
    [c[1:] for c in LOOKUPS],
    ids=[c[0] for c in LOOKUPS],
)
def test_lookup_custom(
    registry: MetricRegistry,
    resource: GroupResource,
    metric: str,
    namespaced: bool,
    expected: tuple[str, str] | None,
) -> None:
    entry = registry.lookup_custom(resource, metric, namespaced)
    found = None if entry is None else (entry.rule.location, entry.series_name)
    assert found == expected


def test_lookup_external_and_metric_resources(registry: MetricRegistry) -> None:
    entry = registry.lookup_external("queue_age")
    assert entry is not None
    assert (entry.rule.location, entry.series_name, entry.rule.namespaced) == (
        "externalRules[0]",
        "queue_age",
        False,
    )
    assert registry.lookup_external("queue") is None
    assert registry.custom_metrics_named("queue_length") == [
        CustomMetricInfo(NAMESPACES, "queue_length", False),
        CustomMetricInfo(SERVICES, "queue_length", True),
    ]


CANDIDATES = [
    ("typo", "http_request_per_second", 5, False, ["http_requests_per_second"]),
    (
        "series name finds the API name",
        "http_requests_total",
        5,
        False,
        ["http_requests_per_second"],
    ),
    ("limit", "queue_lengths", 1, True, ["queue_length"]),
    ("external", "queue_ag", 5, True, ["queue_age", "queue_length"]),
    ("zero limit", "queue_length", 0, True, []),
    ("nothing close", "zzz", 5, False, []),
]


@pytest.mark.parametrize(
    ("metric", "limit", "external", "expected"),
    [c[1:] for c in CANDIDATES],
    ids=[c[0] for c in CANDIDATES],
)
def test_candidates(
    registry: MetricRegistry, metric: str, limit: int, external: bool, expected: list[str]
) -> None:
    assert registry.candidates(metric, limit, external=external) == expected


def test_later_series_name_wins_within_a_rule() -> None:
    text = """
rules:
- seriesQuery: '{pod!=""}'
  resources: {overrides: {pod: {resource: pod}}}
  name: {matches: ^(app|web)_requests_total$, as: requests}
  metricsQuery: q
"""
    compiled = compile_config(load_config(text), BuiltinResourceCatalog())
    found = result('{pod!=""}', {"web_requests_total": {"pod"}, "app_requests_total": {"pod"}})
    entry = build_registry(compiled, {'{pod!=""}': found}).lookup_custom(PODS, "requests", True)
    assert entry is not None
    # Names are processed in sorted order (Prometheus returns series sorted), so "web_" wins.
    assert entry.series_name == "web_requests_total"


def test_snapshot_is_immutable(registry: MetricRegistry) -> None:
    assert isinstance(registry.custom, MappingProxyType)
    assert isinstance(registry.external, MappingProxyType)
    with pytest.raises(TypeError):
        registry.custom[CustomMetricInfo(PODS, "x", True)] = registry.custom[  # type: ignore[index]
            CustomMetricInfo(PODS, "http_requests_per_second", True)
        ]
    with pytest.raises(AttributeError):
        registry.generation = 4  # type: ignore[misc]


def test_empty_registry_before_discovery() -> None:
    empty = build_registry(config(), {})
    assert (empty.custom_metrics(), empty.external_metrics(), empty.refreshed_at) == ([], [], None)
    assert empty.candidates("anything") == []
    assert empty.config.resource_rules is None
