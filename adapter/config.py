"""Load and validate a prometheus-adapter rules file (YAML) into frozen dataclasses.

The format is prometheus-adapter's (``rules``, ``externalRules``, ``resourceRules``); files
written for it load unchanged. Loading is strict like its ``yaml.UnmarshalStrict``: unknown and
duplicate keys are errors. Unlike it, every problem in the file is collected and reported at once,
each with the rule and field (``rules[2].name.as``) and the YAML line, and more mistakes are caught
at load time: regular expressions and templates are compiled here, template field names are
checked, and fields without which a rule can never work (``seriesQuery``, ``metricsQuery``, the
resource queries, ``window``) are required. docs/rules.md lists every field and difference.

Regular expressions in rules are Go RE2 syntax; :func:`compile_go_regex` translates them to
Python's ``re`` and rejects what Python would read differently or cannot express.

Exception tree::

    ConfigError          the file has problems; ``problems`` lists every ConfigProblem
    GoRegexError         (ValueError) a Go regular expression cannot be translated
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Final

import yaml

from adapter.gotemplate import RULES_DELIMS, Template, TemplateError

__all__ = [
    "CUSTOM_QUERY_FIELDS",
    "LABEL_TEMPLATE_FIELDS",
    "ConfigError",
    "ConfigProblem",
    "DiscoveryRule",
    "GoRegexError",
    "NameMapping",
    "QueryTemplate",
    "ResourceMapping",
    "ResourceOverride",
    "ResourceRule",
    "ResourceRules",
    "RulesConfig",
    "SeriesFilter",
    "compile_go_regex",
    "load_config",
    "load_config_file",
    "parse_duration",
    "translate_go_regex",
]

# The fields prometheus-adapter's queryTemplateArgs struct offers to metricsQuery templates.
CUSTOM_QUERY_FIELDS: Final = (
    "GroupBy",
    "GroupBySlice",
    "LabelMatchers",
    "LabelValuesByName",
    "Series",
)
# The fields of the GroupResource struct a resources.template is rendered with.
LABEL_TEMPLATE_FIELDS: Final = ("Group", "Resource")

_LABEL_NAME_RE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One problem: where (``rules[2].name.as``), the 1-based YAML line (0 if unknown), what."""

    location: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.location}: {self.message}" if self.location else where + self.message


class ConfigError(Exception):
    """A rules file has one or more problems; all of them are in ``problems``."""

    def __init__(self, problems: list[ConfigProblem], source_name: str = "") -> None:
        self.problems = list(problems)
        self.source_name = source_name
        count = len(self.problems)
        header = f"{source_name}: " if source_name else ""
        header += f"{count} problem{'s' if count != 1 else ''} in the rules"
        super().__init__("\n  ".join([header, *(str(p) for p in self.problems)]))


class GoRegexError(ValueError):
    """A Go (RE2) regular expression is invalid or cannot be expressed in Python."""


# --------------------------------------------------------------------------------------------
# Go RE2 → Python re
# --------------------------------------------------------------------------------------------

_POSIX_CLASSES: Final = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_SAME_ESCAPES: Final = frozenset("afntrvdDsSwWbBA")
_CLASS_ESCAPES: Final = frozenset("afntrvdDsSwW")
_MAX_REPEAT: Final = 1000
_REPEAT_RE: Final = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAG_GROUP_RE: Final = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")
_NAMED_GROUP_RE: Final = re.compile(r"\(\?P?<([^>]*)>")


def _char_escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _go_escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape at ``pattern[i] == '\\'``; return (python text, next index)."""
    if i + 1 >= len(pattern):
        raise GoRegexError("trailing backslash at end of expression")
    char = pattern[i + 1]
    if char == "x":
        match = re.compile(r"x(?:\{([0-9a-fA-F]+)\}|([0-9a-fA-F]{2}))").match(pattern, i + 1)
        if not match:
            raise GoRegexError(f"invalid escape sequence at offset {i}: {pattern[i : i + 4]!r}")
        code = int(match.group(1) or match.group(2), 16)
        if code > 0x10FFFF:
            raise GoRegexError(f"invalid escape sequence: {match.group(0)!r}")
        return _char_escape(chr(code)), match.end()
    if char in "01234567":
        match = re.compile(r"[0-7]{1,3}").match(pattern, i + 1)
        assert match is not None
        digits = match.group(0)
        if char != "0" and len(digits) == 1:
            raise GoRegexError(f"backreferences are not supported (\\{char} at offset {i})")
        return _char_escape(chr(int(digits, 8))), match.end()
    if char in "pP":
        raise GoRegexError(f"Unicode classes such as \\{char} are not supported (offset {i})")
    if char == "z" and not in_class:
        return "\\Z", i + 2
    allowed = _CLASS_ESCAPES if in_class else _SAME_ESCAPES
    if char in allowed:
        return "\\" + char, i + 2
    if char.isascii() and not char.isalnum():
        return "\\" + char, i + 2
    raise GoRegexError(f"invalid escape sequence \\{char} at offset {i}")


def _translate_class(pattern: str, start: int) -> tuple[str, int]:
    """Translate ``[...]`` starting at ``start``; return (python text, index after ``]``)."""
    i = start + 1
    out = ["["]
    if pattern[i : i + 1] == "^":
        out.append("^")
        i += 1
    first = True
    last_was_char = False
    while True:
        if i >= len(pattern):
            raise GoRegexError(f"missing closing ] for the class at offset {start}")
        char = pattern[i]
        if char == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        first = False
        if char == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end >= 0 else ""
            if name.startswith("^"):
                raise GoRegexError(f"negated POSIX class [:{name}:] is not supported")
            if name not in _POSIX_CLASSES:
                raise GoRegexError(f"invalid character class range [:{name}:]")
            out.append(_POSIX_CLASSES[name])
            i = end + 2
            last_was_char = False
            continue
        if char == "\\":
            text, i = _go_escape(pattern, i, in_class=True)
            out.append(text)
            last_was_char = not text.startswith("\\") or text[1] in "xuU" or not text[1].isalpha()
            continue
        if char == "-" and last_was_char and pattern[i + 1 : i + 2] not in ("]", "-", ""):
            out.append("-")
            last_was_char = False
            i += 1
            continue
        # Escape what Python would read as set syntax (and warn about): [ & ~ | and stray -.
        out.append("\\" + char if char in "[&~|-" else char)
        last_was_char = True
        i += 1


def translate_go_regex(pattern: str) -> str:
    """Go RE2 syntax → an equivalent Python ``re`` pattern (compile it with ``re.ASCII``).

    Raises GoRegexError for syntax Go rejects (backreferences, lookaround, ``\\Z``) or that
    Python cannot express the same way (``\\p{...}``, the ``U`` flag).
    """
    out: list[str] = []
    # Per open group: how many scoped-flag groups we opened for a mid-group "(?i)".
    closers: list[int] = [0]
    i = 0
    uses_multiline = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if pattern.startswith("\\Q", i):
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(
                    "".join(_char_escape(c) if c in "\n\t" else re.escape(c) for c in literal)
                )
                i = len(pattern) if end < 0 else end + 2
                continue
            text, i = _go_escape(pattern, i, in_class=False)
            out.append(text)
            continue
        if char == "[":
            text, i = _translate_class(pattern, i)
            out.append(text)
            continue
        if char == "(" and pattern.startswith("(?", i):
            named = _NAMED_GROUP_RE.match(pattern, i)
            if named:
                name = named.group(1)
                if not name.isidentifier() or not name.isascii():
                    raise GoRegexError(f"invalid or unsupported capture group name {name!r}")
                out.append(f"(?P<{name}>")
                closers.append(0)
                i = named.end()
                continue
            flags = _FLAG_GROUP_RE.match(pattern, i)
            if not flags or set(flags.group(1) + (flags.group(2) or "")) - set("imsU"):
                raise GoRegexError(
                    f"invalid or unsupported Perl syntax at offset {i}: {pattern[i : i + 3]!r}"
                )
            on, off, end_char = flags.group(1), flags.group(2) or "", flags.group(3)
            if "U" in on + off:
                raise GoRegexError("the U (ungreedy) flag is not supported")
            if not on and not off and end_char == ")":
                raise GoRegexError(f"missing flags in {flags.group(0)!r}")
            uses_multiline = uses_multiline or "m" in on
            scoped = f"(?{on}{'-' + off if off else ''}:" if on or off else "(?:"
            if end_char == ":":
                out.append(scoped)
                closers.append(0)
            elif not out and len(closers) == 1 and not off:
                out.append(f"(?{on})")  # flags at the very start apply to the whole pattern
            else:
                # Go applies mid-group flags to the rest of the group; Python only at the start.
                out.append(scoped)
                closers[-1] += 1
            i = flags.end()
            continue
        if char == "(":
            out.append("(")
            closers.append(0)
            i += 1
            continue
        if char == ")":
            if len(closers) == 1:
                raise GoRegexError(f"unexpected ) at offset {i}")
            out.append(")" * (closers.pop() + 1))
            i += 1
            continue
        if char == "{":
            repeat = _REPEAT_RE.match(pattern, i)
            if repeat:
                low, high = int(repeat.group(1)), repeat.group(3)
                if low > _MAX_REPEAT or (high and int(high) > _MAX_REPEAT):
                    raise GoRegexError(f"invalid repeat count {repeat.group(0)}")
                if high and int(high) < low:
                    raise GoRegexError(f"invalid repeat count {repeat.group(0)}")
                out.append(repeat.group(0))
                i = repeat.end()
            else:
                out.append("\\{")  # Go reads a '{' that starts no repeat as a literal
                i += 1
            continue
        if char == "$":
            out.append("$" if uses_multiline or "(?m" in pattern else "\\Z")
            i += 1
            continue
        out.append(char)
        i += 1
    if len(closers) != 1:
        raise GoRegexError("missing closing )")
    out.append(")" * closers[0])
    return "".join(out)


def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Go RE2 pattern; raises GoRegexError with a message naming the problem."""
    translated = translate_go_regex(pattern)
    try:
        return re.compile(translated, re.ASCII)
    except re.error as err:
        raise GoRegexError(str(err)) from None


# --------------------------------------------------------------------------------------------
# Durations (Prometheus model.ParseDuration)
# --------------------------------------------------------------------------------------------

_DURATION_RE: Final = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_DURATION_UNITS_MS: Final = (
    365 * 24 * 3600 * 1000,
    7 * 24 * 3600 * 1000,
    24 * 3600 * 1000,
    3600 * 1000,
    60 * 1000,
    1000,
    1,
)


def parse_duration(text: str) -> timedelta:
    """Prometheus' duration syntax: ``5m``, ``1m30s``, ``1h``, ``500ms``, ``0``."""
    if text == "0":
        return timedelta(0)
    if not text:
        raise ValueError("empty duration string")
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise ValueError(f"not a valid duration string: {text!r} (use units y w d h m s ms)")
    millis = sum(
        int(v) * unit for v, unit in zip(match.groups(), _DURATION_UNITS_MS, strict=True) if v
    )
    return timedelta(milliseconds=millis)


def format_duration(value: timedelta) -> str:
    """Inverse of :func:`parse_duration`, like Prometheus' model.Duration.String()."""
    millis = int(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, size in zip(("y", "w", "d", "h", "m", "s", "ms"), _DURATION_UNITS_MS, strict=True):
        count, millis = divmod(millis, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryTemplate:
    """A template field: its source text, the parsed template and where it was written."""

    text: str
    template: Template
    location: str
    line: int


@dataclass(frozen=True)
class SeriesFilter:
    """``is: re`` (keep names that match) or ``isNot: re`` (drop them); unanchored search."""

    regex: str
    negate: bool
    pattern: re.Pattern[str] = field(compare=False)

    def accepts(self, series_name: str) -> bool:
        return (self.pattern.search(series_name) is not None) != self.negate


@dataclass(frozen=True)
class ResourceOverride:
    """``overrides: {label: {group, resource}}``: the label holds names of that resource."""

    label: str
    group: str
    resource: str
    location: str
    line: int


@dataclass(frozen=True)
class ResourceMapping:
    """``resources``: overrides, the label template, and ``namespaced`` (None when unset)."""

    overrides: tuple[ResourceOverride, ...] = ()
    template: QueryTemplate | None = None
    # The template turned into ^...$ with (?P<group>.+?) and (?P<resource>.+?): label → resource.
    label_pattern: re.Pattern[str] | None = field(default=None, compare=False)
    namespaced: bool | None = None


@dataclass(frozen=True)
class NameMapping:
    """``name``: ``matches`` (empty means ``.*``) and the effective ``as`` expansion."""

    matches: str
    as_: str
    pattern: re.Pattern[str] = field(compare=False)


@dataclass(frozen=True)
class DiscoveryRule:
    """One entry of ``rules`` or ``externalRules``."""

    location: str
    line: int
    series_query: str
    series_filters: tuple[SeriesFilter, ...]
    resources: ResourceMapping
    name: NameMapping
    metrics_query: QueryTemplate


@dataclass(frozen=True)
class ResourceRule:
    """``resourceRules.cpu`` or ``resourceRules.memory``."""

    location: str
    line: int
    container_query: QueryTemplate
    node_query: QueryTemplate
    resources: ResourceMapping
    container_label: str


@dataclass(frozen=True)
class ResourceRules:
    """``resourceRules``: what serves metrics.k8s.io."""

    cpu: ResourceRule
    memory: ResourceRule
    window: timedelta


@dataclass(frozen=True)
class RulesConfig:
    """A loaded rules file. Empty ``rules``/``externalRules`` or no ``resourceRules`` mean that
    API is not served (as in prometheus-adapter)."""

    source_name: str
    rules: tuple[DiscoveryRule, ...] = ()
    external_rules: tuple[DiscoveryRule, ...] = ()
    resource_rules: ResourceRules | None = None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

_TAG_PREFIX: Final = "tag:yaml.org,2002:"
_TOP_FIELDS: Final = ("rules", "externalRules", "resourceRules")
_RULE_FIELDS: Final = ("seriesQuery", "seriesFilters", "resources", "name", "metricsQuery")
_FILTER_FIELDS: Final = ("is", "isNot")
_MAPPING_FIELDS: Final = ("overrides", "template", "namespaced")
_GROUP_RESOURCE_FIELDS: Final = ("group", "resource")
_NAME_FIELDS: Final = ("matches", "as")
_RESOURCE_RULES_FIELDS: Final = ("cpu", "memory", "window")
_RESOURCE_RULE_FIELDS: Final = ("containerQuery", "nodeQuery", "resources", "containerLabel")


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = str(node.tag).removeprefix(_TAG_PREFIX)
    return {"str": "a string", "int": "a number", "float": "a number", "bool": "a boolean"}.get(
        tag, f"a {tag}"
    )


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _TAG_PREFIX + "null")


@dataclass
class _Loader:
    problems: list[ConfigProblem] = field(default_factory=list)

    def problem(self, location: str, line: int, message: str) -> None:
        self.problems.append(ConfigProblem(location, line, message))

    # -- typed field access -----------------------------------------------------------------

    def mapping(
        self, node: yaml.Node | None, location: str, allowed: Iterable[str]
    ) -> dict[str, yaml.Node] | None:
        """The fields of a mapping node, reporting unknown and duplicate keys; None if not one."""
        if _is_null(node):
            return {}
        assert node is not None
        if not isinstance(node, yaml.MappingNode):
            self.problem(location, _line(node), f"must be a mapping, not {_kind(node)}")
            return None
        allowed = tuple(allowed)
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in self.flatten(node):
            key = self.key(key_node, location)
            if key is None:
                continue
            if key in fields:
                self.problem(_join(location, key), _line(key_node), "duplicate key")
                continue
            if allowed and key not in allowed:
                self.problem(
                    _join(location, key), _line(key_node), _unknown_key_message(key, allowed)
                )
                continue
            fields[key] = value_node
        return fields

    def flatten(self, node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """Key/value pairs with YAML merge keys (``<<: *anchor``) expanded, explicit keys first."""
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG_PREFIX + "merge":
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    if isinstance(source, yaml.MappingNode):
                        merged.extend(self.flatten(source))
                continue
            yield key_node, value_node
        explicit = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
        for key_node, value_node in merged:
            if key_node.value not in explicit:
                yield key_node, value_node

    def key(self, node: yaml.Node, location: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(location, _line(node), f"keys must be strings, not {_kind(node)}")
            return None
        return str(node.value)

    def string(self, node: yaml.Node | None, location: str) -> str | None:
        """A string field; numbers and booleans keep their text like Go's yaml.v2 does."""
        if _is_null(node):
            return None
        assert node is not None
        if not isinstance(node, yaml.ScalarNode):
            self.problem(location, _line(node), f"must be a string, not {_kind(node)}")
            return None
        return str(node.value)

    def boolean(self, node: yaml.Node | None, location: str) -> bool | None:
        if _is_null(node):
            return None
        assert node is not None
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG_PREFIX + "bool":
            return bool(yaml.constructor.SafeConstructor.bool_values[str(node.value).lower()])
        self.problem(location, _line(node), f"must be true or false, not {_kind(node)}")
        return None

    def sequence(self, node: yaml.Node | None, location: str) -> list[yaml.Node]:
        if _is_null(node):
            return []
        assert node is not None
        if not isinstance(node, yaml.SequenceNode):
            self.problem(location, _line(node), f"must be a list, not {_kind(node)}")
            return []
        return list(node.value)

    def template(
        self,
        node: yaml.Node | None,
        location: str,
        parent_line: int,
        known_fields: tuple[str, ...],
    ) -> QueryTemplate | None:
        """A required template field, parsed with << >> delimiters and field names checked."""
        text = self.string(node, location)
        if _is_collection(node):
            return None  # already reported as the wrong type
        if not text or not text.strip():
            line = parent_line if node is None else _line(node)
            self.problem(location, line, "must be set (a template that renders a PromQL query)")
            return None
        assert node is not None
        try:
            template = Template.parse(text, RULES_DELIMS)
        except TemplateError as err:
            self.problem(location, _template_line(node, err.line), f"template: {err}")
            return None
        unknown = [name for name in template.root_field_names() if name not in known_fields]
        for name in unknown:
            self.problem(
                location,
                _line(node),
                f"template reads .{name}, which does not exist (fields: {', '.join(known_fields)})",
            )
        if unknown:
            return None
        return QueryTemplate(text, template, location, _line(node))

    def regex(self, text: str, location: str, line: int) -> re.Pattern[str] | None:
        try:
            return compile_go_regex(text)
        except GoRegexError as err:
            self.problem(location, line, f"invalid regular expression {text!r}: {err}")
            return None

    # -- sections ---------------------------------------------------------------------------

    def load(self, root: yaml.Node | None, source_name: str) -> RulesConfig:
        top = self.mapping(root, "", _TOP_FIELDS)
        if top is None:
            return RulesConfig(source_name)
        rules = self.discovery_rules(top.get("rules"), "rules")
        external = self.discovery_rules(top.get("externalRules"), "externalRules")
        resource_rules = None
        if not _is_null(top.get("resourceRules")):
            resource_rules = self.resource_rules(top["resourceRules"], "resourceRules")
        return RulesConfig(source_name, rules, external, resource_rules)

    def discovery_rules(self, node: yaml.Node | None, section: str) -> tuple[DiscoveryRule, ...]:
        rules = []
        for index, rule_node in enumerate(self.sequence(node, section)):
            rule = self.discovery_rule(rule_node, f"{section}[{index}]")
            if rule is not None:
                rules.append(rule)
        return tuple(rules)

    def discovery_rule(self, node: yaml.Node, location: str) -> DiscoveryRule | None:
        line = _line(node)
        fields = self.mapping(node, location, _RULE_FIELDS)
        if fields is None:
            return None
        before = len(self.problems)
        series_query = self.string(fields.get("seriesQuery"), f"{location}.seriesQuery")
        if not series_query and not _is_collection(fields.get("seriesQuery")):
            self.problem(
                f"{location}.seriesQuery",
                line,
                "must be set (the Prometheus series selector that finds this rule's series)",
            )
        filters = self.series_filters(fields.get("seriesFilters"), f"{location}.seriesFilters")
        resources = self.resource_mapping(fields.get("resources"), f"{location}.resources")
        name = self.name_mapping(fields.get("name"), f"{location}.name", line)
        query = self.template(
            fields.get("metricsQuery"), f"{location}.metricsQuery", line, CUSTOM_QUERY_FIELDS
        )
        if len(self.problems) != before or not series_query:
            return None
        if resources is None or name is None or query is None:
            return None
        return DiscoveryRule(location, line, series_query, filters, resources, name, query)

    def series_filters(self, node: yaml.Node | None, location: str) -> tuple[SeriesFilter, ...]:
        filters = []
        for index, filter_node in enumerate(self.sequence(node, location)):
            where = f"{location}[{index}]"
            fields = self.mapping(filter_node, where, _FILTER_FIELDS)
            if fields is None:
                continue
            is_ = self.string(fields.get("is"), f"{where}.is") or ""
            is_not = self.string(fields.get("isNot"), f"{where}.isNot") or ""
            if is_ and is_not:
                self.problem(where, _line(filter_node), "set either is or isNot, not both")
                continue
            if not is_ and not is_not:
                self.problem(where, _line(filter_node), "must have either an is or an isNot regex")
                continue
            regex, negate = (is_, False) if is_ else (is_not, True)
            field_name = "isNot" if negate else "is"
            pattern = self.regex(regex, f"{where}.{field_name}", _line(fields[field_name]))
            if pattern is not None:
                filters.append(SeriesFilter(regex, negate, pattern))
        return tuple(filters)

    def name_mapping(
        self, node: yaml.Node | None, location: str, parent_line: int
    ) -> NameMapping | None:
        fields = self.mapping(node, location, _NAME_FIELDS)
        if fields is None:
            return None
        matches = self.string(fields.get("matches"), f"{location}.matches") or ""
        as_ = self.string(fields.get("as"), f"{location}.as") or ""
        line = parent_line if node is None else _line(node)
        if "matches" in fields:
            line = _line(fields["matches"])
        pattern = self.regex(matches or ".*", f"{location}.matches", line)
        if pattern is None:
            return None
        if not as_:
            if pattern.groups == 0:
                as_ = "$0"
            elif pattern.groups == 1:
                as_ = "$1"
            else:
                self.problem(
                    f"{location}.as",
                    line,
                    f"must be set when matches has {pattern.groups} capture groups "
                    "(say which to use, e.g. ${1}_${2})",
                )
                return None
        return NameMapping(matches, as_, pattern)

    def resource_mapping(self, node: yaml.Node | None, location: str) -> ResourceMapping | None:
        fields = self.mapping(node, location, _MAPPING_FIELDS)
        if fields is None:
            return None
        before = len(self.problems)
        overrides = self.overrides(fields.get("overrides"), f"{location}.overrides")
        namespaced = self.boolean(fields.get("namespaced"), f"{location}.namespaced")
        template = None
        label_pattern = None
        template_node = fields.get("template")
        template_text = self.string(template_node, f"{location}.template")
        if template_text and template_node is not None:
            template, label_pattern = self.label_template(
                template_text, template_node, f"{location}.template"
            )
        if len(self.problems) != before:
            return None
        return ResourceMapping(overrides, template, label_pattern, namespaced)

    def label_template(
        self, text: str, node: yaml.Node, location: str
    ) -> tuple[QueryTemplate | None, re.Pattern[str] | None]:
        line = _line(node)
        try:
            template = Template.parse(text, RULES_DELIMS)
            # The label → resource direction matches labels against the template rendered with
            # capture groups (prometheus-adapter's labelGroupResExtractor).
            rendered = template.render({"Group": "(?P<group>.+?)", "Resource": "(?P<resource>.+?)"})
        except TemplateError as err:
            self.problem(location, _template_line(node, err.line), f"template: {err}")
            return None, None
        if not rendered:
            self.problem(location, line, "template renders an empty label")
            return None, None
        pattern = self.regex(f"^{rendered}$", location, line)
        if pattern is None:
            return None, None
        if "resource" not in pattern.groupindex:
            self.problem(location, line, "template must include at least <<.Resource>>")
            return None, None
        return QueryTemplate(text, template, location, line), pattern

    def overrides(self, node: yaml.Node | None, location: str) -> tuple[ResourceOverride, ...]:
        fields = self.mapping(node, location, ())
        if not fields:
            return ()
        overrides = []
        for label, value_node in fields.items():
            where = _join(location, label)
            if not _LABEL_NAME_RE.fullmatch(label):
                self.problem(
                    where, _line(value_node), f"{label!r} is not a valid Prometheus label name"
                )
                continue
            gr = self.mapping(value_node, where, _GROUP_RESOURCE_FIELDS)
            if gr is None:
                continue
            group = self.string(gr.get("group"), f"{where}.group") or ""
            resource = self.string(gr.get("resource"), f"{where}.resource") or ""
            if not resource:
                self.problem(f"{where}.resource", _line(value_node), "must be set (e.g. pod)")
                continue
            overrides.append(ResourceOverride(label, group, resource, where, _line(value_node)))
        return tuple(overrides)

    def resource_rules(self, node: yaml.Node, location: str) -> ResourceRules | None:
        fields = self.mapping(node, location, _RESOURCE_RULES_FIELDS)
        if fields is None:
            return None
        line = _line(node)
        rules: dict[str, ResourceRule | None] = {}
        for key in ("cpu", "memory"):
            if _is_null(fields.get(key)):
                self.problem(
                    f"{location}.{key}", line, "must be set (containerQuery, nodeQuery, ...)"
                )
                rules[key] = None
            else:
                rules[key] = self.resource_rule(fields[key], f"{location}.{key}")
        window = self.window(fields.get("window"), f"{location}.window", line)
        cpu, memory = rules["cpu"], rules["memory"]
        if cpu is None or memory is None or window is None:
            return None
        return ResourceRules(cpu, memory, window)

    def resource_rule(self, node: yaml.Node, location: str) -> ResourceRule | None:
        line = _line(node)
        fields = self.mapping(node, location, _RESOURCE_RULE_FIELDS)
        if fields is None:
            return None
        before = len(self.problems)
        container = self.template(
            fields.get("containerQuery"), f"{location}.containerQuery", line, CUSTOM_QUERY_FIELDS
        )
        node_query = self.template(
            fields.get("nodeQuery"), f"{location}.nodeQuery", line, CUSTOM_QUERY_FIELDS
        )
        resources = self.resource_mapping(fields.get("resources"), f"{location}.resources")
        container_label = self.string(fields.get("containerLabel"), f"{location}.containerLabel")
        if _is_collection(fields.get("containerLabel")):
            pass  # already reported as the wrong type
        elif not container_label:
            self.problem(
                f"{location}.containerLabel",
                line,
                "must be set (the label that holds the container name, usually container)",
            )
        elif not _LABEL_NAME_RE.fullmatch(container_label):
            self.problem(
                f"{location}.containerLabel",
                _line(fields["containerLabel"]),
                f"{container_label!r} is not a valid Prometheus label name",
            )
        if len(self.problems) != before or not container_label:
            return None
        if container is None or node_query is None or resources is None:
            return None
        return ResourceRule(location, line, container, node_query, resources, container_label)

    def window(self, node: yaml.Node | None, location: str, parent_line: int) -> timedelta | None:
        text = self.string(node, location)
        if text is None:
            self.problem(
                location, parent_line, "must be set to the rate window the queries use, e.g. 5m"
            )
            return None
        assert node is not None
        try:
            window = parse_duration(text)
        except ValueError as err:
            self.problem(location, _line(node), str(err))
            return None
        if window <= timedelta(0):
            self.problem(location, _line(node), "must be longer than 0s")
            return None
        return window


def _is_collection(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.MappingNode | yaml.SequenceNode)


def _join(location: str, key: str) -> str:
    return f"{location}.{key}" if location else key


def _unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown field (expected one of: {', '.join(allowed)}){hint}"


def _template_line(node: yaml.Node, template_line: int) -> int:
    """The YAML line of a template's line, exact for block scalars and one-line strings."""
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        return _line(node) + template_line
    return _line(node) + template_line - 1


def load_config(text: str, source_name: str = "<rules>") -> RulesConfig:
    """Parse rules YAML; raises ConfigError listing every problem. Pure: no IO."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = int(mark.line) + 1 if mark is not None else 0
        column = f" at column {int(mark.column) + 1}" if mark is not None else ""
        message = ", ".join(part for part in (err.context, err.problem) if part)
        problem = ConfigProblem("", line, f"invalid YAML{column}: {message}")
        raise ConfigError([problem], source_name) from None
    except yaml.YAMLError as err:
        raise ConfigError([ConfigProblem("", 0, f"invalid YAML: {err}")], source_name) from None
    loader = _Loader()
    config = loader.load(root, source_name)
    if loader.problems:
        raise ConfigError(sorted(loader.problems, key=lambda p: p.line), source_name)
    return config


def load_config_file(path: str | Path) -> RulesConfig:
    """Read and load a rules file; an unreadable file is a ConfigError too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            [ConfigProblem("", 0, f"cannot read the rules file: {err}")], str(path)
        ) from None
    return load_config(text, str(path))


def describe_mapping(mapping: ResourceMapping) -> Mapping[str, str]:
    """Label → ``resource[.group]`` as written in the overrides (for messages and explain)."""
    return {
        o.label: (f"{o.resource}.{o.group}" if o.group else o.resource) for o in mapping.overrides
    }
