"""The metric registry: which custom and external metrics exist, and which rule serves each.

A :class:`MetricRegistry` is an immutable snapshot built by :func:`build_registry` from the
compiled rules and what discovery learned about each ``seriesQuery``
(:class:`SeriesQueryResult`). Discovery builds a new snapshot on every refresh and swaps it in
with one reference assignment, so a request always sees one consistent registry.

The semantics are prometheus-adapter's (``SetSeries`` in its series registry):

- a custom metric is registered once per resource that one of its labels maps to, under the
  rule's API name; ``namespaces``, ``nodes`` and ``persistentvolumes`` are registered as not
  namespaced, every other resource as namespaced (upstream's per-series flag always comes out
  that way, because the resource label itself makes the series namespaced);
- a metric whose series carry the rule's namespace label is therefore also listed on
  ``namespaces``;
- when two rules (or two series names of one rule) produce the same key, the later rule (the
  later name in sorted order) wins, as upstream's map assignment does;
- external metrics are keyed by API name alone, de-duplicated, the later rule winning.

Resource rules (metrics.k8s.io) need no discovery; they are reachable via ``registry.config``.
Everything here is pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from adapter.resources import NAMESPACES, NODES, PERSISTENT_VOLUMES, GroupResource
from adapter.rules import CompiledConfig, CompiledRule

__all__ = [
    "CLUSTER_SCOPED_RESOURCES",
    "CustomMetricInfo",
    "MetricRegistry",
    "RegistryEntry",
    "SeriesQueryResult",
    "build_registry",
]

CLUSTER_SCOPED_RESOURCES: Final = frozenset({NAMESPACES, NODES, PERSISTENT_VOLUMES})
"""Resources prometheus-adapter always registers as not namespaced."""


@dataclass(frozen=True, order=True)
class CustomMetricInfo:
    """One custom metric as listed by custom.metrics.k8s.io: resource, API name, namespaced."""

    group_resource: GroupResource
    metric: str
    namespaced: bool

    def __str__(self) -> str:
        # The APIResource name in the discovery list: "pods/x", "ingresses.extensions/y".
        return f"{self.group_resource}/{self.metric}"


@dataclass(frozen=True)
class RegistryEntry:
    """The rule serving a metric and the Prometheus series name it was discovered from
    (``.Series`` in the rule's ``metricsQuery``)."""

    rule: CompiledRule
    series_name: str


@dataclass(frozen=True)
class SeriesQueryResult:
    """What discovery learned about one ``seriesQuery``.

    ``names`` maps every metric name matching the query to the labels, among those that some
    rule sharing the query maps to a resource, that at least one of its series carries. A name
    with an empty set exists but names no object. Its size grows with distinct (name, label)
    pairs, never with the number of series.
    """

    series_query: str
    names: Mapping[str, frozenset[str]]
    fetched_at: float  # unix seconds

    @property
    def pair_count(self) -> int:
        return sum(len(labels) for labels in self.names.values())


@dataclass(frozen=True)
class MetricRegistry:
    """An immutable snapshot of the metrics the adapter serves.

    ``generation`` grows by one with every snapshot a discovery builds; ``refreshed_at`` is
    when the discovery data it was built from was fetched (None before the first refresh).
    """

    config: CompiledConfig
    custom: Mapping[CustomMetricInfo, RegistryEntry] = field(default_factory=dict, repr=False)
    external: Mapping[str, RegistryEntry] = field(default_factory=dict, repr=False)
    discovered: Mapping[str, SeriesQueryResult] = field(default_factory=dict, repr=False)
    generation: int = 0
    refreshed_at: datetime | None = None

    def __post_init__(self) -> None:
        # Read-only views over private copies: a snapshot never changes after it is built.
        object.__setattr__(self, "custom", MappingProxyType(dict(self.custom)))
        object.__setattr__(self, "external", MappingProxyType(dict(self.external)))
        object.__setattr__(self, "discovered", MappingProxyType(dict(self.discovered)))

    def custom_metrics(self) -> list[CustomMetricInfo]:
        """Every custom metric, sorted by resource, then name."""
        return sorted(self.custom)

    def lookup_custom(
        self, group_resource: GroupResource, metric: str, namespaced: bool
    ) -> RegistryEntry | None:
        """The entry for exactly this key; the caller normalizes the resource first."""
        return self.custom.get(CustomMetricInfo(group_resource, metric, namespaced))

    def custom_metrics_named(self, metric: str) -> list[CustomMetricInfo]:
        """Every resource ``metric`` is served for ("exists for services, not for pods")."""
        return sorted(info for info in self.custom if info.metric == metric)

    def external_metrics(self) -> list[str]:
        """Every external metric name, sorted."""
        return sorted(self.external)

    def lookup_external(self, metric: str) -> RegistryEntry | None:
        return self.external.get(metric)

    def candidates(self, metric: str, limit: int = 5, *, external: bool = False) -> list[str]:
        """The known metric names closest to ``metric`` (difflib ratio ≥ 0.6), best first,
        for "not found" messages; custom names unless ``external``."""
        if limit <= 0:
            return []
        names = self.external if external else {info.metric for info in self.custom}
        return difflib.get_close_matches(metric, sorted(names), n=limit)


def _custom_entries(
    rules: Iterable[CompiledRule], results: Mapping[str, SeriesQueryResult]
) -> dict[CustomMetricInfo, RegistryEntry]:
    entries: dict[CustomMetricInfo, RegistryEntry] = {}
    for rule in rules:
        result = results.get(rule.series_query)
        if result is None:
            continue
        for name in sorted(result.names):
            api_name = rule.api_name(name)
            if not api_name:
                continue
            for label in sorted(result.names[name]):
                resource = rule.resource_for_label(label)
                if resource is None:
                    continue
                info = CustomMetricInfo(
                    resource, api_name, resource not in CLUSTER_SCOPED_RESOURCES
                )
                entries[info] = RegistryEntry(rule, name)
    return entries


def _external_entries(
    rules: Iterable[CompiledRule], results: Mapping[str, SeriesQueryResult]
) -> dict[str, RegistryEntry]:
    entries: dict[str, RegistryEntry] = {}
    for rule in rules:
        result = results.get(rule.series_query)
        if result is None:
            continue
        for name in sorted(result.names):
            api_name = rule.api_name(name)
            if api_name:
                entries[api_name] = RegistryEntry(rule, name)
    return entries


def build_registry(
    config: CompiledConfig,
    results: Mapping[str, SeriesQueryResult],
    *,
    generation: int = 0,
    refreshed_at: datetime | None = None,
) -> MetricRegistry:
    """The registry for ``config`` given the discovery ``results`` keyed by seriesQuery.

    Queries without a result (never fetched successfully) contribute nothing.
    """
    wanted = {rule.series_query for rule in (*config.rules, *config.external_rules)}
    return MetricRegistry(
        config,
        _custom_entries(config.rules, results),
        _external_entries(config.external_rules, results),
        {query: result for query, result in results.items() if query in wanted},
        generation,
        refreshed_at,
    )
