"""Rules compiled once: naming, series filters, resource association and query templates.

:func:`compile_config` takes a loaded :class:`~adapter.config.RulesConfig` and a
:class:`~adapter.resources.ResourceCatalog` and returns a :class:`CompiledConfig` whose rules
answer, with prometheus-adapter's semantics, the questions discovery and request handling ask:

- does this rule handle a series name (``accepts``: every ``seriesFilters`` entry plus
  ``name.matches`` as an implicit ``is`` filter, unanchored), and under which API name
  (``api_name``: ``name.as`` expanded like Go's ``regexp.Expand``)?
- which resource does a label name (``resource_for_label``: overrides first, then the template
  regex, normalized through the catalog), and which label holds a resource
  (``label_for_resource``: override reverse lookup, else the template rendered with the singular
  resource and the group with ``.``/``-`` → ``_``)?
- what PromQL does a request produce (``render_query`` with the context built by adapter.promql)?

Everything here is pure. Problems that need the catalog (an override naming a resource the
cluster does not have, resource rules without a pod/node/namespace label) are raised as a
:class:`~adapter.config.ConfigError`, like load problems; suspicious but servable rules are
returned as ``CompiledConfig.warnings``.

Exception tree::

    QueryRenderError     a template failed or rendered nothing; names the rule and field
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from adapter.config import (
    ConfigError,
    ConfigProblem,
    DiscoveryRule,
    QueryTemplate,
    ResourceMapping,
    ResourceRule,
    RulesConfig,
    SeriesFilter,
)
from adapter.gotemplate import TemplateError
from adapter.resources import (
    NAMESPACES,
    NODES,
    PERSISTENT_VOLUMES,
    PODS,
    GroupResource,
    ResourceCatalog,
)

__all__ = [
    "CompiledConfig",
    "CompiledResourceRule",
    "CompiledResourceRules",
    "CompiledRule",
    "QueryRenderError",
    "ResourceAssociation",
    "compile_config",
    "go_regexp_expand",
]

# Resources prometheus-adapter always registers as not namespaced.
_CLUSTER_SCOPED: Final = frozenset({NAMESPACES, NODES, PERSISTENT_VOLUMES})
_NAME_CHAR_RE: Final = re.compile(r"\w+")


class QueryRenderError(Exception):
    """A rule's template could not produce a query or label; the message names the rule."""


def go_regexp_expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``.

    ``$name`` takes the longest run of letters, digits and ``_`` (so ``$1x`` names group
    ``1x``); an unknown or unmatched group expands to nothing; a ``$`` not followed by a name is
    kept as is.
    """
    out: list[str] = []
    i = 0
    while i < len(template):
        dollar = template.find("$", i)
        if dollar < 0:
            out.append(template[i:])
            break
        out.append(template[i:dollar])
        rest = template[dollar + 1 :]
        if rest.startswith("$"):
            out.append("$")
            i = dollar + 2
            continue
        brace = rest.startswith("{")
        name_match = _NAME_CHAR_RE.match(rest, 1 if brace else 0)
        if name_match is None or (brace and not rest.startswith("}", name_match.end())):
            out.append("$")  # malformed reference: Go keeps the '$' as text
            i = dollar + 1
            continue
        name = name_match.group(0)
        i = dollar + 1 + name_match.end() + (1 if brace else 0)
        value: str | None = None
        if name.isascii() and name.isdigit() and not (name[0] == "0" and len(name) > 1):
            number = int(name)
            if number <= (match.re.groups or 0):
                value = match.group(number)
        elif name in match.re.groupindex:
            value = match.group(name)
        out.append(value or "")
    return "".join(out)


def _sanitize_group(group: str) -> str:
    return group.replace(".", "_").replace("-", "_")


@dataclass(frozen=True)
class ResourceAssociation:
    """Label ↔ resource mapping of one rule (``resources``), normalized through the catalog."""

    location: str
    overrides: Mapping[str, GroupResource]
    template: QueryTemplate | None
    label_pattern: re.Pattern[str] | None
    catalog: ResourceCatalog = field(compare=False, repr=False)

    @property
    def labels_by_resource(self) -> dict[GroupResource, str]:
        return {gr: label for label, gr in self.overrides.items()}

    def resource_for_label(self, label: str) -> GroupResource | None:
        """The resource whose object names ``label`` holds, or None."""
        if label in self.overrides:
            return self.overrides[label]
        if self.label_pattern is None:
            return None
        match = self.label_pattern.match(label)
        if match is None:
            return None
        group = match.groupdict().get("group") or ""
        return self.catalog.normalize(group, match.group("resource"))

    def label_for_resource(self, gr: GroupResource) -> str | None:
        """The label that holds names of ``gr``, or None when the rule does not map it."""
        for label, mapped in self.overrides.items():
            if mapped == gr:
                return label
        if self.template is None:
            return None
        try:
            singular = self.catalog.singular(gr)
        except KeyError:
            return None
        try:
            label = self.template.template.render(
                {"Group": _sanitize_group(gr.group), "Resource": singular}
            )
        except TemplateError as err:
            raise QueryRenderError(f"{self.template.location}: {err}") from None
        return label or None

    def resources_for_labels(self, labels: Iterable[str]) -> tuple[tuple[GroupResource, ...], bool]:
        """The resources a series with these label names is about, and whether it is
        namespaced, with prometheus-adapter's rule: namespaced unless every label is a namespace,
        node or persistentvolume label (a label that maps to nothing counts as namespaced)."""
        resources: list[GroupResource] = []
        namespaced = False
        for label in labels:
            if label == "__name__":
                continue
            gr = self.resource_for_label(label)
            if gr is not None and gr not in resources:
                resources.append(gr)
            if gr not in _CLUSTER_SCOPED:
                namespaced = True
        return tuple(resources), namespaced


def _render(template: QueryTemplate, context: Mapping[str, object]) -> str:
    try:
        text = template.template.render(context)
    except TemplateError as err:
        raise QueryRenderError(f"{template.location}: {err}") from None
    if not text:
        raise QueryRenderError(f"{template.location}: the template produced an empty query")
    return text


@dataclass(frozen=True)
class CompiledRule:
    """One ``rules`` or ``externalRules`` entry, ready to use."""

    location: str
    line: int
    series_query: str
    filters: tuple[SeriesFilter, ...]
    name_pattern: re.Pattern[str] = field(compare=False)
    name_as: str
    association: ResourceAssociation
    metrics_query: QueryTemplate
    # External rules: whether the request's namespace becomes a matcher (default true).
    namespaced: bool
    is_external: bool

    def accepts(self, series_name: str) -> bool:
        """Whether every series filter (including ``name.matches``) lets the name through."""
        return all(f.accepts(series_name) for f in self.filters)

    def api_name(self, series_name: str) -> str | None:
        """The metric name in the API for a series, or None when this rule does not take it."""
        if not self.accepts(series_name):
            return None
        match = self.name_pattern.search(series_name)
        if match is None:
            return None
        return go_regexp_expand(self.name_as, match)

    def resource_for_label(self, label: str) -> GroupResource | None:
        return self.association.resource_for_label(label)

    def label_for_resource(self, gr: GroupResource) -> str | None:
        return self.association.label_for_resource(gr)

    @property
    def namespace_label(self) -> str | None:
        """The label holding the namespace, or None when the rule maps none."""
        return self.association.label_for_resource(NAMESPACES)

    def render_query(self, context: Mapping[str, object]) -> str:
        """Render ``metricsQuery``; raises QueryRenderError (also for an empty result)."""
        return _render(self.metrics_query, context)


@dataclass(frozen=True)
class CompiledResourceRule:
    """``resourceRules.cpu`` or ``.memory`` with its labels resolved."""

    location: str
    container_query: QueryTemplate
    node_query: QueryTemplate
    association: ResourceAssociation
    container_label: str
    namespace_label: str
    pod_label: str
    node_label: str

    def render_container_query(self, context: Mapping[str, object]) -> str:
        return _render(self.container_query, context)

    def render_node_query(self, context: Mapping[str, object]) -> str:
        return _render(self.node_query, context)


@dataclass(frozen=True)
class CompiledResourceRules:
    cpu: CompiledResourceRule
    memory: CompiledResourceRule
    window: timedelta


@dataclass(frozen=True)
class CompiledConfig:
    """Every rule of a file, compiled; ``warnings`` are problems that do not stop serving."""

    source_name: str
    rules: tuple[CompiledRule, ...]
    external_rules: tuple[CompiledRule, ...]
    resource_rules: CompiledResourceRules | None
    warnings: tuple[ConfigProblem, ...] = ()

    @property
    def custom_series_queries(self) -> dict[str, tuple[CompiledRule, ...]]:
        """Distinct ``seriesQuery`` → the custom rules sharing it, in file order."""
        return _by_series_query(self.rules)

    @property
    def external_series_queries(self) -> dict[str, tuple[CompiledRule, ...]]:
        return _by_series_query(self.external_rules)


def _by_series_query(rules: Iterable[CompiledRule]) -> dict[str, tuple[CompiledRule, ...]]:
    grouped: dict[str, list[CompiledRule]] = {}
    for rule in rules:
        grouped.setdefault(rule.series_query, []).append(rule)
    return {query: tuple(group) for query, group in grouped.items()}


@dataclass
class _Compiler:
    catalog: ResourceCatalog
    problems: list[ConfigProblem] = field(default_factory=list)
    warnings: list[ConfigProblem] = field(default_factory=list)

    def association(self, mapping: ResourceMapping, location: str) -> ResourceAssociation:
        overrides: dict[str, GroupResource] = {}
        for override in mapping.overrides:
            gr = self.catalog.normalize(override.group, override.resource)
            if gr is None:
                written = (
                    f"{override.resource}.{override.group}" if override.group else override.resource
                )
                self.problems.append(
                    ConfigProblem(
                        override.location,
                        override.line,
                        f"unknown resource {written!r}: the cluster has no such resource "
                        "(see kubectl api-resources)",
                    )
                )
                continue
            overrides[override.label] = gr
        return ResourceAssociation(
            location, overrides, mapping.template, mapping.label_pattern, self.catalog
        )

    def rule(self, rule: DiscoveryRule, *, external: bool) -> CompiledRule:
        association = self.association(rule.resources, f"{rule.location}.resources")
        filters = rule.series_filters
        if rule.name.matches:
            filters = (*filters, SeriesFilter(rule.name.matches, False, rule.name.pattern))
        namespaced = rule.resources.namespaced is not False
        compiled = CompiledRule(
            rule.location,
            rule.line,
            rule.series_query,
            filters,
            rule.name.pattern,
            rule.name.as_,
            association,
            rule.metrics_query,
            namespaced,
            external,
        )
        if external and namespaced and compiled.namespace_label is None:
            self.warnings.append(
                ConfigProblem(
                    f"{rule.location}.resources",
                    rule.line,
                    "is namespaced (the default) but no label maps to namespaces, so requests "
                    "will fail; add overrides: {namespace: {resource: namespace}} or set "
                    "namespaced: false",
                )
            )
        elif not external and not association.overrides and association.template is None:
            self.warnings.append(
                ConfigProblem(
                    f"{rule.location}.resources",
                    rule.line,
                    "maps no label to a resource (no overrides, no template), so it serves nothing",
                )
            )
        return compiled

    def resource_rule(self, rule: ResourceRule) -> CompiledResourceRule | None:
        location = f"{rule.location}.resources"
        association = self.association(rule.resources, location)
        labels: dict[GroupResource, str] = {}
        for gr in (NAMESPACES, PODS, NODES):
            label = association.label_for_resource(gr)
            if label is None:
                self.problems.append(
                    ConfigProblem(
                        location,
                        rule.line,
                        f"must map a label to {gr} (e.g. overrides: "
                        f"{{{gr.resource[:-1]}: {{resource: {gr.resource[:-1]}}}}})",
                    )
                )
            else:
                labels[gr] = label
        if len(labels) != 3:
            return None
        return CompiledResourceRule(
            rule.location,
            rule.container_query,
            rule.node_query,
            association,
            rule.container_label,
            labels[NAMESPACES],
            labels[PODS],
            labels[NODES],
        )


def compile_config(config: RulesConfig, catalog: ResourceCatalog) -> CompiledConfig:
    """Compile every rule; raises ConfigError listing every problem that needs the catalog."""
    compiler = _Compiler(catalog)
    rules = tuple(compiler.rule(rule, external=False) for rule in config.rules)
    external = tuple(compiler.rule(rule, external=True) for rule in config.external_rules)
    resource_rules = None
    if config.resource_rules is not None:
        cpu = compiler.resource_rule(config.resource_rules.cpu)
        memory = compiler.resource_rule(config.resource_rules.memory)
        if cpu is not None and memory is not None:
            resource_rules = CompiledResourceRules(cpu, memory, config.resource_rules.window)
    if compiler.problems:
        raise ConfigError(sorted(compiler.problems, key=lambda p: p.line), config.source_name)
    return CompiledConfig(
        config.source_name, rules, external, resource_rules, tuple(compiler.warnings)
    )
