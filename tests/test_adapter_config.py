"""Loading rules files: upstream configs load unchanged, every problem is reported with location."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from adapter.config import (
    ConfigError,
    ConfigProblem,
    GoRegexError,
    compile_go_regex,
    load_config,
    load_config_file,
    parse_duration,
)
from tests.conftest import FIXTURES_DIR, REPO_ROOT

UPSTREAM = FIXTURES_DIR / "prometheus-adapter"

# file → (rules, externalRules, has resourceRules)
LOADABLE = {
    "config-gen-default.yaml": (6, 0, True),
    "config-gen-1m.yaml": (6, 0, True),
    "config-gen-1m-kube-prefix.yaml": (6, 0, True),
    "helm-chart-default.yaml": (6, 0, False),
    "helm-chart-values-examples.yaml": (1, 1, True),
    "deploy-manifests-resource-rules.yaml": (0, 0, True),
    "docs-config-examples.yaml": (5, 0, False),
    "docs-config-walkthrough.yaml": (1, 0, False),
    "docs-externalmetrics.yaml": (0, 2, False),
    "docs-sample-config-corrected.yaml": (4, 2, False),
}


@pytest.mark.parametrize(("name", "counts"), LOADABLE.items(), ids=list(LOADABLE))
def test_upstream_configs_load_unchanged(name: str, counts: tuple[int, int, bool]) -> None:
    config = load_config_file(UPSTREAM / name)
    assert (
        len(config.rules),
        len(config.external_rules),
        config.resource_rules is not None,
    ) == counts


def test_every_fixture_is_covered() -> None:
    broken = {"docs-sample-config.yaml", "docs-config-basic.yaml"}
    assert {p.name for p in UPSTREAM.glob("*.yaml")} == set(LOADABLE) | broken


# prometheus-adapter's own docs ship two files that are not valid YAML (a "," after flow
# mappings); its loader rejects them too. We report the exact line and column.
@pytest.mark.parametrize(
    ("name", "line"),
    [("docs-sample-config.yaml", 23), ("docs-config-basic.yaml", 12)],
    ids=["sample-config", "config-md-basic"],
)
def test_upstream_docs_with_invalid_yaml_report_the_line(name: str, line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_file(UPSTREAM / name)
    [problem] = caught.value.problems
    assert problem.line == line
    assert problem.message.startswith("invalid YAML at column 41:")
    assert "found ','" in problem.message


def test_loaded_values() -> None:
    config = load_config_file(UPSTREAM / "config-gen-1m.yaml")
    rule = config.rules[1]
    assert rule.location == "rules[1]"
    assert rule.series_query == '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
    assert [(f.regex, f.negate) for f in rule.series_filters] == [
        ("^container_.*_seconds_total$", True)
    ]
    assert [(o.label, o.group, o.resource) for o in rule.resources.overrides] == [
        ("namespace", "", "namespace"),
        ("pod", "", "pod"),
    ]
    assert (rule.name.matches, rule.name.as_) == ("^container_(.*)_total$", "$1")
    assert config.rules[3].name.as_ == "$0"  # matches "" means .* with no group
    assert config.resource_rules is not None
    assert config.resource_rules.window == timedelta(minutes=1)
    assert config.resource_rules.cpu.container_label == "container"
    ext = load_config_file(UPSTREAM / "docs-externalmetrics.yaml").external_rules
    assert [r.resources.namespaced for r in ext] == [None, False]


def test_default_rules_load() -> None:
    config = load_config_file(REPO_ROOT / "config" / "rules.yaml")
    assert len(config.rules) == 3
    assert len(config.external_rules) == 1
    assert config.resource_rules is not None
    assert config.resource_rules.window == timedelta(minutes=1)


RULE = """\
- seriesQuery: 'x{namespace!=""}'
  resources: {template: <<.Resource>>}
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
"""

BROKEN = [
    (
        "unknown key with suggestion",
        "rules:\n- seriesQuery: x\n  metricQuery: y\n",
        [
            ("rules[0].metricsQuery", 2, "must be set"),
            (
                "rules[0].metricQuery",
                3,
                "unknown field (expected one of: seriesQuery, "
                "seriesFilters, resources, name, metricsQuery); did you mean metricsQuery?",
            ),
        ],
    ),
    (
        "unknown top-level key",
        "rule:\n" + RULE,
        [("rule", 1, "did you mean rules?")],
    ),
    (
        "both is and isNot",
        RULE.replace("  resources:", "  seriesFilters:\n  - {is: a, isNot: b}\n  resources:"),
        [("rules[0].seriesFilters[0]", 4, "set either is or isNot, not both")],
    ),
    (
        "neither is nor isNot",
        RULE.replace("  resources:", "  seriesFilters:\n  - {}\n  resources:"),
        [("rules[0].seriesFilters[0]", 4, "must have either an is or an isNot regex")],
    ),
    (
        "bad regex",
        RULE.replace("  resources:", "  seriesFilters:\n  - isNot: 'a(b'\n  resources:"),
        [("rules[0].seriesFilters[0].isNot", 4, "invalid regular expression 'a(b'")],
    ),
    (
        "regex Go rejects",
        RULE.replace("  resources:", "  name: {matches: '(a)\\1'}\n  resources:"),
        [("rules[0].name.matches", 3, "backreferences are not supported")],
    ),
    (
        "missing as with two groups",
        RULE.replace("  resources:", "  name:\n    matches: ^(a)_(b)$\n  resources:"),
        [("rules[0].name.as", 4, "must be set when matches has 2 capture groups")],
    ),
    (
        "template syntax error on its own line",
        "rules:\n- seriesQuery: x\n  metricsQuery: |\n    sum(\n      <<.Series\n    )\n",
        [("rules[0].metricsQuery", 5, "template: line 2, column 3: unclosed action")],
    ),
    (
        "template reads a field that does not exist",
        RULE.replace("<<.GroupBy>>", "<<.GroupBY>>"),
        [("rules[0].metricsQuery", 4, "template reads .GroupBY, which does not exist")],
    ),
    (
        "label template without Resource",
        RULE.replace("<<.Resource>>", "kube_<<.Group>>"),
        [("rules[0].resources.template", 3, "must include at least <<.Resource>>")],
    ),
    (
        "wrong types",
        "rules:\n- seriesQuery: {a: b}\n  seriesFilters: nope\n  resources:\n"
        "    namespaced: maybe\n"
        "  metricsQuery: [x]\n",
        [
            ("rules[0].seriesQuery", 2, "must be a string, not a mapping"),
            ("rules[0].seriesFilters", 3, "must be a list, not a string"),
            ("rules[0].resources.namespaced", 5, "must be true or false, not a string"),
            ("rules[0].metricsQuery", 6, "must be a string, not a list"),
        ],
    ),
    (
        "rules is not a list",
        "rules: {}\nexternalRules: 3\n",
        [
            ("rules", 1, "must be a list, not a mapping"),
            ("externalRules", 2, "must be a list, not a number"),
        ],
    ),
    (
        "override without resource, bad label",
        RULE.replace(
            "{template: <<.Resource>>}",
            "\n    overrides:\n      pod: {group: x}\n      bad-label: {resource: pod}",
        ),
        [
            ("rules[0].resources.overrides.pod.resource", 5, "must be set"),
            ("rules[0].resources.overrides.bad-label", 6, "not a valid Prometheus label name"),
        ],
    ),
    (
        "duplicate key",
        "rules:\n- seriesQuery: x\n  seriesQuery: y\n  metricsQuery: z\n",
        [("rules[0].seriesQuery", 3, "duplicate key")],
    ),
    (
        "bad window",
        "resourceRules:\n  window: 5 minutes\n",
        [
            ("resourceRules.cpu", 2, "must be set"),
            ("resourceRules.memory", 2, "must be set"),
            ("resourceRules.window", 2, "not a valid duration string: '5 minutes'"),
        ],
    ),
    (
        "resource rule without queries or container label",
        "resourceRules:\n  cpu:\n    resources: {template: <<.Resource>>}\n  memory: {}\n"
        "  window: 0\n",
        [
            ("resourceRules.cpu.containerQuery", 3, "must be set"),
            ("resourceRules.cpu.nodeQuery", 3, "must be set"),
            ("resourceRules.cpu.containerLabel", 3, "must be set"),
            ("resourceRules.memory.containerQuery", 4, "must be set"),
            ("resourceRules.memory.nodeQuery", 4, "must be set"),
            ("resourceRules.memory.containerLabel", 4, "must be set"),
            ("resourceRules.window", 5, "must be longer than 0s"),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_configs_report_every_problem(
    text: str, expected: list[tuple[str, int, str]]
) -> None:
    if not text.startswith(("rules", "rule:", "resourceRules", "externalRules")):
        text = "rules:\n" + text
    with pytest.raises(ConfigError) as caught:
        load_config(text, "test.yaml")
    got = [(p.location, p.line, p.message) for p in caught.value.problems]
    assert len(got) == len(expected), got
    for (location, line, message), problem in zip(expected, caught.value.problems, strict=True):
        assert (problem.location, problem.line) == (location, line), got
        assert message in problem.message, got


def test_all_problems_of_a_file_come_together() -> None:
    text = "\n".join(
        [
            "rules:",
            "- seriesQuery: x",  # 2: no metricsQuery
            "  metricsQuery: <<.Nope>>",  # 3: unknown field
            "- seriesQuery: y",
            "  seriesFilters: [{is: a, isNot: b}]",  # 5
            "  metricsQuery: q",
            "externalRules:",
            "- extra: 1",  # 8
            "resourceRules:",
            "  window: 1m",  # 9: cpu/memory missing
        ]
    )
    with pytest.raises(ConfigError) as caught:
        load_config(text, "many.yaml")
    locations = [p.location for p in caught.value.problems]
    assert locations == [
        "rules[0].metricsQuery",
        "rules[1].seriesFilters[0]",
        "externalRules[0].extra",
        "externalRules[0].seriesQuery",
        "externalRules[0].metricsQuery",
        "resourceRules.cpu",
        "resourceRules.memory",
    ]
    message = str(caught.value)
    assert message.startswith(
        "many.yaml: 7 problems in the rules\n  line 3: rules[0].metricsQuery:"
    )


def test_problem_and_error_text() -> None:
    problem = ConfigProblem("rules[2].name.as", 14, "must be set")
    assert str(problem) == "line 14: rules[2].name.as: must be set"
    assert str(ConfigError([problem], "f.yaml")) == (
        "f.yaml: 1 problem in the rules\n  line 14: rules[2].name.as: must be set"
    )


def test_empty_file_is_an_empty_config() -> None:
    config = load_config("# nothing yet\n", "empty.yaml")
    assert (config.rules, config.external_rules, config.resource_rules) == ((), (), None)


def test_numbers_in_string_fields_keep_their_text_like_yaml_v2() -> None:
    config = load_config(
        RULE.replace("  resources:", "  name: {matches: x, as: 123}\n  resources:").join(
            ["rules:\n", ""]
        )
    )
    assert config.rules[0].name.as_ == "123"


def test_merge_keys_and_anchors() -> None:
    text = (
        "rules:\n- &base\n  seriesQuery: 'x{pod!=\"\"}'\n  resources: {template: <<.Resource>>}\n"
        "  metricsQuery: sum(<<.Series>>)\n- <<: *base\n  seriesQuery: 'y{pod!=\"\"}'\n"
    )
    config = load_config(text)
    assert [r.series_query for r in config.rules] == ['x{pod!=""}', 'y{pod!=""}']
    assert config.rules[1].metrics_query.text == "sum(<<.Series>>)"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the rules file"):
        load_config_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)),
        ("1m30s", timedelta(seconds=90)),
        ("1h", timedelta(hours=1)),
        ("500ms", timedelta(milliseconds=500)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("0", timedelta(0)),
    ],
    ids=["minutes", "compound", "hours", "millis", "days", "weeks", "zero"],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "5", "5 m", "1s1m", "-1m", "1.5m"],
    ids=["empty", "no unit", "space", "wrong order", "negative", "fraction"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


# Go RE2 semantics: (pattern, subject, does an unanchored search match?)
GO_REGEX = [
    ("named group", "(?P<x>a)", "a", True),
    ("go 1.22 named group", "(?<x>a)b", "ab", True),
    ("dollar is end of text", "a$", "a\n", False),
    ("backslash z", "a\\z", "a", True),
    ("mid-pattern flags", "a(?i)b", "aB", True),
    ("mid-pattern flags scoped to group", "(a(?i)b)c", "aBC", False),
    ("leading flags", "(?i)abc", "ABC", True),
    ("posix class", "^[[:alpha:]]+$", "abc", True),
    ("literal brace", "a{,2}", "a{,2}", True),
    ("repeat", "^a{2}$", "aa", True),
    ("quoted literal", "\\Qa.b\\E", "a.b", True),
    ("quoted literal is literal", "\\Qa.b\\E", "axb", False),
    ("hex escape", "\\x{41}", "A", True),
    ("octal escape", "\\101", "A", True),
    ("class with set-like chars", "[a&&b]", "&", True),
    ("ascii word class", "^\\w$", "é", False),
]


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"), [c[1:] for c in GO_REGEX], ids=[c[0] for c in GO_REGEX]
)
def test_go_regex(pattern: str, subject: str, matches: bool) -> None:
    assert (compile_go_regex(pattern).search(subject) is not None) == matches


GO_REGEX_ERRORS = [
    ("backreference", "(a)\\1", "backreferences"),
    ("lookahead", "a(?=b)", "unsupported Perl syntax"),
    ("python-only escape", "a\\Z", "invalid escape"),
    ("unicode class", "\\pL", "Unicode classes"),
    ("ungreedy flag", "(?U)a*", "U (ungreedy)"),
    ("repeat too large", "a{1001}", "invalid repeat count"),
    ("unbalanced", "(a", "missing closing )"),
    ("unbalanced close", "a)", "unexpected )"),
    ("unclosed class", "[a", "missing closing ]"),
    ("nested repeat", "a**", "multiple repeat"),
]


@pytest.mark.parametrize(
    ("pattern", "message"), [c[1:] for c in GO_REGEX_ERRORS], ids=[c[0] for c in GO_REGEX_ERRORS]
)
def test_go_regex_errors(pattern: str, message: str) -> None:
    with pytest.raises(GoRegexError, match=re.escape(message)):
        compile_go_regex(pattern)
