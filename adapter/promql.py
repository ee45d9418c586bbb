"""Safe PromQL building: quoting, selector → matcher translation, template contexts, query plans.

This is the pure core between a metrics API request and the text sent to Prometheus. Nothing a
request carries (namespace, object names, label selector values) can change the structure of a
query: values only ever appear inside string literals made by :func:`quote_string`, regex
values are escaped with :func:`quote_regex_literal` first, and label names must match
Prometheus' ``[a-zA-Z_][a-zA-Z0-9_]*``. docs/promql-safety.md explains the choices.

Template contexts are plain dicts with prometheus-adapter's field names (``Series``,
``LabelMatchers``, ``LabelValuesByName``, ``GroupBy``, ``GroupBySlice``) so that rules files
written for prometheus-adapter render the same queries. The ``plan_*`` functions take the
rule's compiled template as a ``render`` callable and keep every query within a byte budget by
splitting long name lists into several queries (or, on request, by matching on the namespace
only and filtering the result).

Exception tree::

    PromQLError (ValueError)          a request cannot be turned into a safe query
    ├── LabelNameError                a label name is not a valid Prometheus label name
    ├── UnsupportedRequirementError   a selector requirement has no PromQL equivalent (gt, lt)
    └── QueryBudgetError              a query cannot be made to fit max_query_bytes
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from adapter.selectors import LabelSelector, Operator, Requirement

__all__ = [
    "DEFAULT_MAX_QUERY_BYTES",
    "LabelNameError",
    "PlannedQuery",
    "PromQLError",
    "QueryBudgetError",
    "QueryContext",
    "RenderQuery",
    "SplitStrategy",
    "UnsupportedRequirementError",
    "custom_query_context",
    "external_query_context",
    "label_matcher",
    "node_resource_query_context",
    "plan_custom_queries",
    "plan_external_query",
    "plan_node_resource_queries",
    "plan_pod_resource_queries",
    "pod_resource_query_context",
    "query_context",
    "quote_regex_literal",
    "quote_string",
    "requirement_matcher",
    "selector_matchers",
    "validate_label_name",
]

DEFAULT_MAX_QUERY_BYTES = 16 * 1024
"""Below VictoriaMetrics' default ``-search.maxQueryLen`` (16 KiB), the tightest common limit."""


class PromQLError(ValueError):
    """A request cannot be turned into a safe PromQL query; the message says what to change."""


class LabelNameError(PromQLError):
    """A label name (from a selector key or a rule) is not a valid Prometheus label name."""


class UnsupportedRequirementError(PromQLError):
    """A label selector requirement has no PromQL equivalent."""


class QueryBudgetError(PromQLError):
    """A query exceeds ``max_query_bytes`` and cannot be split further."""


class QueryContext(TypedDict):
    """Template arguments, named as in prometheus-adapter's ``queryTemplateArgs``."""

    Series: str
    LabelMatchers: str
    LabelValuesByName: dict[str, str]
    GroupBy: str
    GroupBySlice: list[str]


RenderQuery = Callable[[QueryContext], str]
"""A compiled ``metricsQuery`` / ``containerQuery`` / ``nodeQuery`` template."""


def query_context(
    series: str, matchers: Sequence[str], values: dict[str, str], group_by: Sequence[str]
) -> QueryContext:
    """The template arguments from already escaped matchers and validated group-by labels."""
    groups = list(group_by)
    return QueryContext(
        Series=series,
        LabelMatchers=",".join(matchers),
        LabelValuesByName=values,
        GroupBy=",".join(groups),
        GroupBySlice=groups,
    )


# --- quoting -----------------------------------------------------------------------------------

_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}
_SURROGATES = range(0xD800, 0xE000)
_REPLACEMENT_CHARACTER = "\ufffd"


def _escape_char(char: str) -> str:
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code in _SURROGATES:
        # A lone surrogate stands for bytes that are not UTF-8; Prometheus rejects \ud800-style
        # escapes, so write the bytes, as Go's %q does for invalid UTF-8.
        return "".join(f"\\x{b:02x}" for b in char.encode("utf-8", "surrogatepass"))
    if char == _REPLACEMENT_CHARACTER:
        # Prometheus' lexer reads a raw U+FFFD as "invalid UTF-8 rune"; Go's %q leaves it raw.
        return "\\ufffd"
    if char.isprintable():
        return char
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quote_string(value: str) -> str:
    """A double-quoted PromQL string literal whose content is exactly ``value``.

    Same output as Go's ``strconv.Quote`` (prometheus-adapter's ``%q``) for valid text, except
    that U+FFFD is written ``\\ufffd``. Lone surrogates (undecodable bytes) become ``\\xNN``.
    """
    if value.isascii() and value.isprintable():
        # Printable ASCII needs only two escapes; this path carries every regex of names.
        if '"' not in value and "\\" not in value:
            return f'"{value}"'
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + "".join(_escape_char(c) for c in value) + '"'


def _string_body(value: str) -> str:
    """:func:`quote_string` without the surrounding quotes (safe inside ``"..."``)."""
    return quote_string(value)[1:-1]


_REGEX_METACHARACTERS = "\\.+*?()|[]{}^$"
_REGEX_METACHARACTER = re.compile("[" + re.escape(_REGEX_METACHARACTERS) + "]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def quote_regex_literal(value: str) -> str:
    """An RE2 pattern matching exactly ``value`` (Go's ``regexp.QuoteMeta``).

    The result is regex text, not a string literal: pass it through :func:`quote_string`.
    Prometheus anchors every ``=~`` pattern, so no ``^``/``$`` are added. A value holding lone
    surrogates (bytes that were not UTF-8) is refused: RE2 rejects invalid UTF-8, and such a
    value can never equal a Prometheus label value anyway.
    """
    if not value.isascii() and _SURROGATE.search(value):
        raise PromQLError(
            f"value {value!r} is not valid UTF-8 and cannot be matched by a regular expression"
        )
    if _REGEX_METACHARACTER.search(value) is None:  # most names: nothing to escape, no copy
        return value
    return _REGEX_METACHARACTER.sub(r"\\\g<0>", value)


def _regex_alternation(values: Sequence[str]) -> str:
    return "|".join(quote_regex_literal(v) for v in values)


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def validate_label_name(name: str, what: str = "label name") -> str:
    """Return ``name`` if it is a valid Prometheus label name, else raise :class:`LabelNameError`.

    ``what`` names the source in the message (e.g. "label selector key").
    """
    if _LABEL_NAME.fullmatch(name):
        return name
    hint = ""
    if "/" in name or "." in name or "-" in name:
        hint = (
            "; Kubernetes-style keys such as 'app.kubernetes.io/name' are not Prometheus label"
            " names: select on the label Prometheus stores (e.g. 'app_kubernetes_io_name')"
        )
    raise LabelNameError(
        f"{what} {name!r} is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*){hint}"
    )


def label_matcher(label: str, operator: str, value: str) -> str:
    """``label<op>"value"`` with ``label`` validated and ``value`` quoted (never regex-escaped)."""
    if operator not in ("=", "!=", "=~", "!~"):
        raise PromQLError(f"unknown PromQL matcher operator {operator!r}")
    return f"{validate_label_name(label)}{operator}{quote_string(value)}"


# --- label selector → matchers -----------------------------------------------------------------

_POSITIVE = frozenset({Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN})
_NEGATIVE = frozenset({Operator.NOT_EQUALS, Operator.NOT_IN})


def requirement_matcher(requirement: Requirement) -> str:
    """One PromQL matcher for a selector requirement, in prometheus-adapter's operators.

    ``=``/``==`` one value → ``l="v"``; ``!=`` → ``l!="v"``; ``in`` → ``l=~"v1|v2"``;
    ``notin`` → ``l!~"v1|v2"``; more than one value under ``=``/``!=`` also becomes a regex;
    exists → ``l!=""``; does-not-exist → ``l=""``. Unlike prometheus-adapter, every value under
    ``=~``/``!~`` is regex-escaped, including a single ``in`` value (which it passes through
    as a regex): Kubernetes label values cannot hold a regex anyway, and an unescaped ``.``
    over-matches.
    """
    key, op, values = requirement.key, requirement.operator, requirement.values
    label = validate_label_name(key, "label selector key")
    if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        raise UnsupportedRequirementError(
            f"label selector requirement {str(requirement)!r}: operator {op.value!r} is not"
            " supported by prometheus (PromQL label matchers compare strings, not numbers)"
        )
    if op is Operator.EXISTS or op is Operator.DOES_NOT_EXIST:
        if values:
            raise UnsupportedRequirementError(
                f"label selector requirement for {key!r}: operator {op.value!r} does not"
                " support values"
            )
        return label_matcher(label, "!=" if op is Operator.EXISTS else "=", "")
    if not values:
        raise UnsupportedRequirementError(
            f"label selector requirement for {key!r}: operator {op.value!r} requires values"
        )
    negative = op in _NEGATIVE
    if len(values) == 1 and op is not Operator.IN and op is not Operator.NOT_IN:
        return label_matcher(label, "!=" if negative else "=", values[0])
    return label_matcher(label, "!~" if negative else "=~", _regex_alternation(values))


def selector_matchers(selector: LabelSelector) -> list[str]:
    """Matchers for every requirement, in the selector's order (sorted by key)."""
    return [requirement_matcher(r) for r in selector.requirements]


def _names_matcher(label: str, names: Sequence[str]) -> str:
    # prometheus-adapter: one name → equality, several → a regex, in request order.
    if len(names) == 1:
        return label_matcher(label, "=", names[0])
    return label_matcher(label, "=~", _regex_alternation(names))


# --- template contexts -------------------------------------------------------------------------


def _selector_parts(selector: LabelSelector) -> tuple[list[str], dict[str, str]]:
    matchers = selector_matchers(selector)
    # prometheus-adapter joins the raw values; we keep them safe inside a "..." literal.
    values = {r.key: _string_body("|".join(r.values)) for r in selector.requirements}
    return matchers, values


def _namespace_part(namespace_label: str | None, namespace: str, what: str) -> tuple[str, str]:
    if namespace_label is None:
        raise PromQLError(
            f"{what} asks for namespace {namespace!r} but the rule maps no Prometheus label to"
            " namespaces; add a 'namespace' override or template to its 'resources'"
        )
    return label_matcher(namespace_label, "=", namespace), namespace_label


def custom_query_context(
    series: str,
    metric_selector: LabelSelector,
    *,
    namespace_label: str | None,
    namespace: str | None,
    resource_label: str,
    names: Sequence[str],
    extra_group_by: Sequence[str] = (),
) -> QueryContext:
    """Context for a custom.metrics.k8s.io query (prometheus-adapter's ``Build``).

    ``LabelMatchers`` = metric selector matchers, then ``<namespace_label>="<namespace>"`` when
    ``namespace`` is given, then the resource matcher (``=`` for one name, ``=~`` for several).
    ``GroupBy`` = resource label then ``extra_group_by``. ``names`` keep their order.
    """
    if not names:
        raise PromQLError(
            f"no object names to query for label {resource_label!r}; a request that matches no"
            " objects has no metric values"
        )
    matchers, values = _selector_parts(metric_selector)
    if namespace:
        matcher, ns_label = _namespace_part(namespace_label, namespace, "the request")
        matchers.append(matcher)
        values[ns_label] = _string_body(namespace)
    validate_label_name(resource_label, "resource label")
    matchers.append(_names_matcher(resource_label, names))
    values[resource_label] = _string_body("|".join(names))
    group_by = [resource_label, *(validate_label_name(g, "group-by label") for g in extra_group_by)]
    return query_context(series, matchers, values, group_by)


def external_query_context(
    series: str,
    selector: LabelSelector,
    *,
    namespace_label: str | None,
    namespace: str | None,
    group_by: Sequence[str] = (),
) -> QueryContext:
    """Context for an external.metrics.k8s.io query (prometheus-adapter's ``BuildExternal``).

    Pass ``namespace=None`` for a rule with ``namespaced: false``. prometheus-adapter always
    passes an empty ``group_by`` for external metrics; the parameter exists for parity with
    ``BuildExternal``.
    """
    matchers, values = _selector_parts(selector)
    if namespace:
        matcher, ns_label = _namespace_part(namespace_label, namespace, "the external metric")
        matchers.append(matcher)
        values[ns_label] = _string_body(namespace)
    groups = [validate_label_name(g, "group-by label") for g in group_by]
    return query_context(series, matchers, values, groups)


def pod_resource_query_context(
    *,
    namespace_label: str,
    namespace: str,
    pod_label: str,
    container_label: str,
    pod_names: Sequence[str],
) -> QueryContext:
    """metrics.k8s.io pods: ``<ns>="<namespace>",<pod>=~"p1|p2"``, grouped by pod, container."""
    return custom_query_context(
        "",
        LabelSelector(),
        namespace_label=namespace_label,
        namespace=namespace,
        resource_label=pod_label,
        names=pod_names,
        extra_group_by=(container_label,),
    )


def node_resource_query_context(*, node_label: str, node_names: Sequence[str]) -> QueryContext:
    """metrics.k8s.io nodes: ``<node>=~"n1|n2"``, grouped by node; ``Series`` is empty."""
    return custom_query_context(
        "",
        LabelSelector(),
        namespace_label=None,
        namespace=None,
        resource_label=node_label,
        names=node_names,
    )


def _namespace_only_context(
    series: str,
    metric_selector: LabelSelector,
    *,
    namespace_label: str | None,
    namespace: str,
    resource_label: str,
    extra_group_by: Sequence[str],
) -> QueryContext:
    matchers, values = _selector_parts(metric_selector)
    matcher, ns_label = _namespace_part(namespace_label, namespace, "the request")
    matchers.append(matcher)
    values[ns_label] = _string_body(namespace)
    validate_label_name(resource_label, "resource label")
    # The resource label must still be present for the result to be mapped back to objects.
    matchers.append(label_matcher(resource_label, "!=", ""))
    group_by = [resource_label, *(validate_label_name(g, "group-by label") for g in extra_group_by)]
    return query_context(series, matchers, values, group_by)


# --- query plans within a byte budget ----------------------------------------------------------


class SplitStrategy(StrEnum):
    """What to do when all the names do not fit in one query."""

    CHUNK = "chunk"
    """Split the names into as few queries as fit; results are concatenated."""
    NAMESPACE = "namespace"
    """Match the whole namespace, keep only the requested names (falls back to CHUNK for
    cluster-scoped requests). Cheaper for Prometheus when most of a namespace is requested."""


@dataclass(frozen=True, slots=True)
class PlannedQuery:
    """One query to run: its template context, its rendered text, and the names to keep.

    ``names_to_keep`` is the set of object names whose samples belong to the answer; samples
    for other names (possible in namespace-only mode) must be dropped. Empty for external
    metrics, which have no names.
    """

    context: QueryContext
    query: str
    names_to_keep: tuple[str, ...]


def _size(query: str) -> int:
    return len(query.encode("utf-8", "surrogatepass"))


def _render_checked(render: RenderQuery, context: QueryContext) -> str:
    query = render(context)
    if not query:
        raise PromQLError("empty query produced by metrics query template")
    return query


def _plan_names(
    render: RenderQuery,
    context_for: Callable[[Sequence[str]], QueryContext],
    *,
    namespace_only: Callable[[], QueryContext] | None,
    names: Sequence[str],
    max_query_bytes: int,
    strategy: SplitStrategy,
    what: str,
) -> list[PlannedQuery]:
    if max_query_bytes <= 0:
        raise ValueError(f"max_query_bytes must be positive, got {max_query_bytes}")
    ordered = tuple(dict.fromkeys(names))  # duplicates would only lengthen the regex
    whole_context = context_for(ordered)
    whole = _render_checked(render, whole_context)
    if _size(whole) <= max_query_bytes:
        return [PlannedQuery(whole_context, whole, ordered)]
    if strategy is SplitStrategy.NAMESPACE and namespace_only is not None:
        context = namespace_only()
        query = _render_checked(render, context)
        if _size(query) <= max_query_bytes:
            return [PlannedQuery(context, query, ordered)]
    cost = _NameCostModel.measure(render, context_for)
    if cost is None:
        return _chunk_by_search(
            render, context_for, ordered, start=0, max_query_bytes=max_query_bytes, what=what
        )
    plans: list[PlannedQuery] = []
    start = 0
    for chunk in cost.pack(ordered, max_query_bytes):
        if len(chunk) == 1:  # one name is an equality matcher, which the model does not cover
            plans.extend(
                _chunk_by_search(
                    render, context_for, chunk, start=0, max_query_bytes=max_query_bytes, what=what
                )
            )
        else:
            context = context_for(chunk)
            query = _render_checked(render, context)
            if _size(query) > max_query_bytes:
                # The template is not linear in the names after all: render to find the rest.
                plans.extend(
                    _chunk_by_search(
                        render,
                        context_for,
                        ordered,
                        start=start,
                        max_query_bytes=max_query_bytes,
                        what=what,
                    )
                )
                return plans
            plans.append(PlannedQuery(context, query, chunk))
        start += len(chunk)
    return plans


# Probe names: ``_PROBE_LONG`` escapes to itself, ``_PROBE_DOTS`` doubles-and-one in a regex
# literal (``.`` → ``\\.``, 3 bytes) and stays 1 byte in a plain string body.
_PROBE_PAIR = ("a", "b")
_PROBE_LONG = ("a" * 101, "b")
_PROBE_DOTS = ("." * 101, "b")


@dataclass(frozen=True, slots=True)
class _NameCostModel:
    """Query bytes as a function of the names of one chunk (two or more names).

    For the contexts built here the names appear in two places: escaped in the ``=~`` regex of
    ``LabelMatchers`` and escaped as plain text in the resource's ``LabelValuesByName`` entry,
    each joined with ``|``. A template may use either any number of times, so a query of a
    chunk of two or more names is ``fixed + in_regex * regex_bytes + in_values * value_bytes``,
    where ``*_bytes`` are the joined texts' sizes. Three probe renders give the coefficients;
    a template that does anything else with the names (the probes disagree) gets no model.
    """

    fixed: int
    in_regex: int
    in_values: int

    @classmethod
    def measure(
        cls, render: RenderQuery, context_for: Callable[[Sequence[str]], QueryContext]
    ) -> _NameCostModel | None:
        def size(names: Sequence[str]) -> int:
            return _size(_render_checked(render, context_for(names)))

        pair, long, dots = size(_PROBE_PAIR), size(_PROBE_LONG), size(_PROBE_DOTS)
        both, rest = divmod(long - pair, 100)  # each name byte costs in_regex + in_values
        in_regex2, rest2 = divmod(dots - long, 2 * 101)  # 303 vs 101 regex bytes, same text
        if rest or rest2 or in_regex2 < 0 or both < in_regex2:
            return None
        model = cls(pair - 3 * both, in_regex2, both - in_regex2)
        if model.fixed < 0:
            return None
        return model

    def name_cost(self, name: str) -> int:
        """Bytes one more name adds to a chunk of two or more, its ``|`` separators included."""
        cost = 0
        if self.in_regex:
            cost += self.in_regex * (_size(_string_body(quote_regex_literal(name))) + 1)
        if self.in_values:
            cost += self.in_values * (_size(_string_body(name)) + 1)
        return cost

    def pack(self, names: tuple[str, ...], budget: int) -> list[tuple[str, ...]]:
        """Consecutive chunks, each as long as the model says fits ``budget`` (at least one)."""
        # A chunk of names costs fixed + Σ name_cost - one separator per place.
        base = self.fixed - self.in_regex - self.in_values
        chunks: list[tuple[str, ...]] = []
        start, used = 0, base
        for index, name in enumerate(names):
            cost = self.name_cost(name)
            if index > start and used + cost > budget:
                chunks.append(names[start:index])
                start, used = index, base
            used += cost
        if start < len(names):
            chunks.append(names[start:])
        return chunks


def _chunk_by_search(
    render: RenderQuery,
    context_for: Callable[[Sequence[str]], QueryContext],
    names: tuple[str, ...],
    *,
    start: int,
    max_query_bytes: int,
    what: str,
) -> list[PlannedQuery]:
    """Chunks found by rendering candidate prefixes: O(log n) renders per chunk.

    The fallback for templates whose length the cost model cannot predict, and the check that
    a single name fits.
    """
    plans: list[PlannedQuery] = []
    # Each pass emits one chunk of at least one name, so there are at most len(names) passes.
    while start < len(names):
        fits_up_to = _largest_fitting_end(render, context_for, names, start, max_query_bytes)
        if fits_up_to == start:
            raise QueryBudgetError(
                f"the query for {what} {names[start]!r} alone is longer than max_query_bytes"
                f" ({max_query_bytes}); raise the limit or shorten the rule's query"
            )
        chunk = names[start:fits_up_to]
        context = context_for(chunk)
        plans.append(PlannedQuery(context, _render_checked(render, context), chunk))
        start = fits_up_to
    return plans


def _largest_fitting_end(
    render: RenderQuery,
    context_for: Callable[[Sequence[str]], QueryContext],
    names: tuple[str, ...],
    start: int,
    budget: int,
) -> int:
    """Largest ``end`` with ``names[start:end]`` rendering within ``budget`` (``start`` if none).

    Query length grows with every added name, so a galloping then binary search needs only
    O(log n) renders per chunk.
    """

    def fits(end: int) -> bool:
        return _size(_render_checked(render, context_for(names[start:end]))) <= budget

    if not fits(start + 1):
        return start
    good, step = start + 1, 1  # names[start:good] fits
    bad = len(names) + 1  # names[start:bad] does not fit (or is past the end)
    # Gallop: `good` strictly grows each pass until it reaches the end or a candidate fails.
    while good < len(names):
        candidate = min(good + step, len(names))
        if not fits(candidate):
            bad = candidate
            break
        good, step = candidate, step * 2
    # Binary search: the gap halves each pass.
    while bad - good > 1 and bad <= len(names):
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


def plan_custom_queries(
    render: RenderQuery,
    series: str,
    metric_selector: LabelSelector,
    *,
    namespace_label: str | None,
    namespace: str | None,
    resource_label: str,
    names: Sequence[str],
    extra_group_by: Sequence[str] = (),
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
    strategy: SplitStrategy = SplitStrategy.CHUNK,
) -> list[PlannedQuery]:
    """Queries answering a custom metrics request for ``names``, each within the byte budget.

    One query when everything fits (the common case, identical to prometheus-adapter's);
    otherwise see :class:`SplitStrategy`. Run every query and keep, from each result, the
    samples whose resource label is in that query's ``names_to_keep``.
    """

    def context_for(chunk: Sequence[str]) -> QueryContext:
        return custom_query_context(
            series,
            metric_selector,
            namespace_label=namespace_label,
            namespace=namespace,
            resource_label=resource_label,
            names=chunk,
            extra_group_by=extra_group_by,
        )

    namespace_only: Callable[[], QueryContext] | None = None
    if namespace:
        ns = namespace

        def namespace_context() -> QueryContext:
            return _namespace_only_context(
                series,
                metric_selector,
                namespace_label=namespace_label,
                namespace=ns,
                resource_label=resource_label,
                extra_group_by=extra_group_by,
            )

        namespace_only = namespace_context

    return _plan_names(
        render,
        context_for,
        namespace_only=namespace_only,
        names=names,
        max_query_bytes=max_query_bytes,
        strategy=strategy,
        what=resource_label,
    )


def plan_pod_resource_queries(
    render: RenderQuery,
    *,
    namespace_label: str,
    namespace: str,
    pod_label: str,
    container_label: str,
    pod_names: Sequence[str],
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
    strategy: SplitStrategy = SplitStrategy.CHUNK,
) -> list[PlannedQuery]:
    """Like :func:`plan_custom_queries` for a ``containerQuery`` over pods of one namespace."""
    return plan_custom_queries(
        render,
        "",
        LabelSelector(),
        namespace_label=namespace_label,
        namespace=namespace,
        resource_label=pod_label,
        names=pod_names,
        extra_group_by=(container_label,),
        max_query_bytes=max_query_bytes,
        strategy=strategy,
    )


def plan_node_resource_queries(
    render: RenderQuery,
    node_label: str,
    node_names: Sequence[str],
    *,
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
) -> list[PlannedQuery]:
    """Like :func:`plan_custom_queries` for a ``nodeQuery``; nodes are always chunked."""
    return plan_custom_queries(
        render,
        "",
        LabelSelector(),
        namespace_label=None,
        namespace=None,
        resource_label=node_label,
        names=node_names,
        max_query_bytes=max_query_bytes,
    )


def plan_external_query(
    render: RenderQuery,
    series: str,
    selector: LabelSelector,
    *,
    namespace_label: str | None,
    namespace: str | None,
    max_query_bytes: int = DEFAULT_MAX_QUERY_BYTES,
) -> PlannedQuery:
    """The single query for an external metric; too long is an error (nothing to split)."""
    context = external_query_context(
        series, selector, namespace_label=namespace_label, namespace=namespace
    )
    query = _render_checked(render, context)
    if _size(query) > max_query_bytes:
        raise QueryBudgetError(
            f"the query for external metric {series!r} is {_size(query)} bytes, more than"
            f" max_query_bytes ({max_query_bytes}); use a shorter metric selector"
        )
    return PlannedQuery(context, query, ())
