"""The contract between the exporter and the adapter's default rules: metric and label names.

exporter/ and adapter/ import nothing from each other; this test is the one place that sees both.
It fails when the exporter renames a metric or label that config/rules.yaml relies on, or when a
rule is edited so that it matches nothing the exporter produces.
"""

from __future__ import annotations

import re

import pytest

from adapter.config import load_config_file
from adapter.resources import BuiltinResourceCatalog
from adapter.rules import CompiledConfig, CompiledRule, compile_config
from exporter.metrics import METRICS, SCOPE_LABELS
from tests.conftest import REPO_ROOT

EXPORTED: dict[str, frozenset[str]] = {
    row.name: frozenset(SCOPE_LABELS[row.scope]) | {label for label, _ in row.extra_labels}
    for row in METRICS
}
# label op "value": enough of PromQL's selector syntax for our own default rules.
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


@pytest.fixture(scope="module")
def rules() -> CompiledConfig:
    return compile_config(
        load_config_file(REPO_ROOT / "config" / "rules.yaml"), BuiltinResourceCatalog()
    )


def series_query_matches(series_query: str, name: str, labels: frozenset[str]) -> bool:
    """Whether a series named `name` carrying non-empty `labels` is selected by `series_query`."""
    head, _, body = series_query.partition("{")
    matchers = [("__name__", "=", head.strip())] if head.strip() else []
    for part in body.rstrip().removesuffix("}").split(","):
        if part.strip():
            found = MATCHER.fullmatch(part)
            assert found, f"cannot read matcher {part!r} in {series_query!r}"
            matchers.append((found[1], found[2], found[3]))
    for label, op, value in matchers:
        actual = name if label == "__name__" else ("x" if label in labels else "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def served_series(rule: CompiledRule) -> dict[str, frozenset[str]]:
    return {
        name: labels
        for name, labels in EXPORTED.items()
        if series_query_matches(rule.series_query, name, labels) and rule.api_name(name)
    }


def test_every_metric_named_in_the_rules_is_exported() -> None:
    text = (REPO_ROOT / "config" / "rules.yaml").read_text(encoding="utf-8")
    literal_names = set(re.findall(r"\bkubestats_[a-z0-9_]+[a-z0-9]\b", text))
    # Names inside regexes (seriesQuery / name.matches) are prefixes, not metric names.
    exact = {n for n in literal_names if n.endswith(("_total", "_bytes", "_seconds"))}
    assert exact, "the default rules should name exporter metrics"
    assert sorted(exact - EXPORTED.keys()) == []


@pytest.mark.parametrize("kind", ["rules", "external_rules"])
def test_every_rule_serves_exported_series_with_the_labels_it_maps(
    rules: CompiledConfig, kind: str
) -> None:
    for rule in getattr(rules, kind):
        series = served_series(rule)
        assert series, f"{rule.location} matches no metric the exporter produces"
        mapped = set(rule.association.overrides)
        for name, labels in series.items():
            assert mapped <= labels, f"{rule.location}: {name} lacks labels {mapped - labels}"


def test_resource_rules_use_exported_series_and_labels(rules: CompiledConfig) -> None:
    resource = rules.resource_rules
    assert resource is not None
    for rule in (resource.cpu, resource.memory):
        for query, needed in (
            (
                rule.container_query.text,
                {rule.namespace_label, rule.pod_label, rule.container_label},
            ),
            (rule.node_query.text, {rule.node_label}),
        ):
            names = re.findall(r"\bkubestats_[a-z0-9_]+\b", query)
            assert names, query
            for name in names:
                assert name in EXPORTED, f"{name} is not exported"
                assert needed <= EXPORTED[name], f"{name} lacks {needed - EXPORTED[name]}"


def test_the_api_names_the_docs_promise(rules: CompiledConfig) -> None:
    api_names = {rule.api_name(name) for rule in rules.rules for name in served_series(rule)}
    for promised in (
        "container_cpu_usage_seconds_per_second",
        "container_memory_working_set_bytes",
        "pod_network_receive_bytes_per_second",
        "volume_used_bytes",
    ):
        assert promised in api_names
    external = {rule.api_name(n) for rule in rules.external_rules for n in served_series(rule)}
    assert external == {"node_cpu_usage_cores"}
