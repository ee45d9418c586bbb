"""Kubernetes label and field selectors, parsed the way apimachinery parses them.

The metrics APIs receive selectors as query parameters (``labelSelector``,
``metricLabelSelector``, ``fieldSelector``). This module turns those strings into immutable
values that the PromQL builder (``adapter.promql``) and the object filters use. It is pure: no
IO, no globals beyond constant tables.

Label selectors follow ``k8s.io/apimachinery/pkg/labels.Parse``: the same grammar, the same
operators, the same key and value validation, requirements sorted by key (stable) and values
sorted and de-duplicated. Field selectors follow ``k8s.io/apimachinery/pkg/fields``: comma
separated ``field=value``, ``field==value`` and ``field!=value`` terms with ``\\,``, ``\\=`` and
``\\\\`` escapes in values.

Exception tree::

    SelectorError (ValueError)     a selector string is malformed or names an invalid key/value;
                                   the message quotes the selector and says where and what to fix
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "label_selector_from_labels",
    "parse_field_selector",
    "parse_label_selector",
]


class SelectorError(ValueError):
    """A label or field selector cannot be used; ``str(err)`` tells the user what to change."""


class Operator(StrEnum):
    """Selector operators, with apimachinery's ``selection.Operator`` string values."""

    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_SET_OPERATORS = frozenset({Operator.IN, Operator.NOT_IN})
_EXACT_OPERATORS = frozenset({Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS})
_UNARY_OPERATORS = frozenset({Operator.EXISTS, Operator.DOES_NOT_EXIST})
_NUMERIC_OPERATORS = frozenset({Operator.GREATER_THAN, Operator.LESS_THAN})

# apimachinery's validation limits (k8s.io/apimachinery/pkg/util/validation).
_QUALIFIED_NAME_MAX = 63
_LABEL_VALUE_MAX = 63
_DNS_SUBDOMAIN_MAX = 253
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Go's strconv.ParseInt(s, 10, 64) grammar; Python's int() also takes "_" and spaces.
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _label_key_problems(key: str) -> list[str]:
    """Why ``key`` is not a qualified name (``[prefix/]name``); empty when it is one."""
    problems: list[str] = []
    parts = key.split("/")
    if len(parts) > 2:
        return [
            "a label key is a name of at most 63 characters of [A-Za-z0-9_.-] that starts and ends"
            " with an alphanumeric, with an optional DNS subdomain prefix and '/'"
            " (e.g. 'app' or 'app.kubernetes.io/name')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must not be empty")
        elif len(prefix) > _DNS_SUBDOMAIN_MAX:
            problems.append(f"prefix part must be no more than {_DNS_SUBDOMAIN_MAX} characters")
        elif not _DNS_SUBDOMAIN.fullmatch(prefix):
            problems.append(
                "prefix part must be a lowercase DNS subdomain (e.g. 'example.com'):"
                " [a-z0-9] and '-' separated by '.'"
            )
    if not name:
        problems.append("name part must not be empty")
    elif len(name) > _QUALIFIED_NAME_MAX:
        problems.append(f"name part must be no more than {_QUALIFIED_NAME_MAX} characters")
    if name and not _QUALIFIED_NAME.fullmatch(name):
        problems.append(
            "name part must consist of alphanumerics, '-', '_' or '.', and must start and end"
            " with an alphanumeric (e.g. 'MyName', 'my.name', '123-abc')"
        )
    return problems


def _label_value_problems(value: str) -> list[str]:
    problems: list[str] = []
    if len(value) > _LABEL_VALUE_MAX:
        problems.append(f"must be no more than {_LABEL_VALUE_MAX} characters")
    if not _LABEL_VALUE.fullmatch(value):
        problems.append(
            "a label value must be empty or consist of alphanumerics, '-', '_' or '.', and must"
            " start and end with an alphanumeric (e.g. 'MyValue', 'my_value', '12345')"
        )
    return problems


def _parse_go_int64(text: str) -> int | None:
    if not _GO_INT.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <operator> values`` term of a label selector (apimachinery ``Requirement``).

    Build it with :meth:`create`, which validates like ``labels.NewRequirement`` and stores the
    values sorted and de-duplicated.
    """

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def create(cls, key: str, operator: Operator, values: Collection[str] = ()) -> Requirement:
        """A validated requirement; :class:`SelectorError` lists every problem at once."""
        problems = [f"key {key!r}: {p}" for p in _label_key_problems(key)]
        unique = tuple(sorted(set(values)))
        if operator in _SET_OPERATORS and not unique:
            problems.append(f"operator {operator.value!r} needs at least one value")
        elif operator in _EXACT_OPERATORS and len(unique) != 1:
            problems.append(f"operator {operator.value!r} needs exactly one value")
        elif operator in _UNARY_OPERATORS and unique:
            problems.append(f"operator {operator.value!r} takes no values")
        elif operator in _NUMERIC_OPERATORS:
            if len(unique) != 1:
                problems.append(f"operator {operator.value!r} needs exactly one value")
            problems.extend(
                f"value {v!r} for operator {operator.value!r} must be an integer"
                for v in unique
                if _parse_go_int64(v) is None
            )
        for value in unique:
            problems.extend(f"value {value!r}: {p}" for p in _label_value_problems(value))
        if problems:
            raise SelectorError("; ".join(problems))
        return cls(key, operator, unique)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` satisfies this requirement (apimachinery rules)."""
        op = self.operator
        present = self.key in labels
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return present
        if op is Operator.DOES_NOT_EXIST:
            return not present
        if not present or len(self.values) != 1:
            return False
        have, want = _parse_go_int64(labels[self.key]), _parse_go_int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        """The canonical text form, as apimachinery's ``Requirement.String``."""
        op = self.operator
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        if op is Operator.EXISTS:
            return self.key
        joined = ",".join(self.values)
        if op in _SET_OPERATORS:
            return f"{self.key} {op.value} ({joined})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """An AND of requirements, sorted by key like apimachinery's parsed selectors."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the selector selects everything."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def label_selector_from_labels(labels: Mapping[str, str]) -> LabelSelector:
    """The selector ``k1=v1,k2=v2`` matching exactly ``labels`` (``ValidatedSelectorFromSet``)."""
    requirements = [Requirement.create(k, Operator.EQUALS, (v,)) for k, v in labels.items()]
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


# --- label selector lexer and parser (mirrors apimachinery's token set) -----------------------

_WHITESPACE = frozenset(" \t\r\n")
_SPECIAL = frozenset("=!(),><")
_SYMBOL_TOKENS = {
    ")": "close",
    ",": "comma",
    "!": "not",
    "==": "double_equals",
    "=": "equals",
    ">": "greater",
    "<": "less",
    "!=": "not_equals",
    "(": "open",
}
_KEYWORDS = {"in": "in", "notin": "notin"}
_BINARY_OPERATORS = {
    "in": Operator.IN,
    "notin": Operator.NOT_IN,
    "equals": Operator.EQUALS,
    "double_equals": Operator.DOUBLE_EQUALS,
    "not_equals": Operator.NOT_EQUALS,
    "greater": Operator.GREATER_THAN,
    "less": Operator.LESS_THAN,
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "id", "end", "error", or a name from _SYMBOL_TOKENS / _KEYWORDS
    text: str
    position: int  # 0-based character offset in the selector string

    def described(self) -> str:
        if self.kind == "end":
            return "end of string"
        return f"{self.text!r} at position {self.position}"


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    # Every iteration consumes at least one character or emits the final token.
    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(text):
            tokens.append(_Token("end", "", pos))
            return tokens
        start = pos
        if text[pos] in _SPECIAL:
            # Longest run of special characters that still forms a known symbol ("!=", "==").
            best: str | None = None
            end = pos
            while end < len(text) and text[end] in _SPECIAL:
                candidate = text[start : end + 1]
                if candidate in _SYMBOL_TOKENS:
                    best = candidate
                elif best is not None:
                    break
                end += 1
            if best is None:
                tokens.append(_Token("error", text[start:end], start))
                return tokens
            tokens.append(_Token(_SYMBOL_TOKENS[best], best, start))
            pos = start + len(best)
            continue
        while pos < len(text) and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            pos += 1
        word = text[start:pos]
        tokens.append(_Token(_KEYWORDS.get(word, "id"), word, start))


class _LabelParser:
    """Recursive descent over the token list; "in"/"notin" are identifiers where values go."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.index = 0

    def fail(self, message: str) -> SelectorError:
        return SelectorError(f"invalid label selector {self.text!r}: {message}")

    def peek(self, as_value: bool = True) -> _Token:
        return self._normalise(self.tokens[self.index], as_value)

    def take(self, as_value: bool = True) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return self._normalise(token, as_value)

    def _normalise(self, token: _Token, as_value: bool) -> _Token:
        if token.kind == "error":
            raise self.fail(
                f"unknown operator {token.text!r} at position {token.position};"
                " use =, ==, !=, in, notin, !, > or <"
            )
        if as_value and token.kind in _KEYWORDS.values():
            return _Token("id", token.text, token.position)
        return token

    def parse(self) -> tuple[Requirement, ...]:
        requirements: list[Requirement] = []
        # Each pass consumes one requirement and its separator, so it ends within len(tokens).
        for _ in range(len(self.tokens)):
            token = self.peek()
            if token.kind == "end":
                break
            if token.kind not in ("id", "not"):
                raise self.fail(f"found {token.described()}, expected: !, a key, or end of string")
            requirements.append(self.requirement())
            after = self.take()
            if after.kind == "end":
                break
            if after.kind != "comma":
                raise self.fail(f"found {after.described()}, expected: ',' or end of string")
            following = self.peek()
            if following.kind not in ("id", "not"):
                raise self.fail(f"found {following.described()}, expected: a key after ','")
        return tuple(sorted(requirements, key=lambda r: r.key))

    def requirement(self) -> Requirement:
        start = self.peek()
        negated = False
        token = self.take()
        if token.kind == "not":
            negated = True
            token = self.take()
        if token.kind != "id":
            raise self.fail(f"found {token.described()}, expected: a key")
        key = token.text
        key_problems = _label_key_problems(key)
        if key_problems:
            raise self.fail(f"key {key!r} at position {token.position}: {'; '.join(key_problems)}")
        if self.peek().kind in ("end", "comma"):
            operator = Operator.DOES_NOT_EXIST if negated else Operator.EXISTS
            return self.build(key, operator, (), start.position)
        op_token = self.take(as_value=False)
        if negated or op_token.kind not in _BINARY_OPERATORS:
            raise self.fail(
                f"found {op_token.described()}, expected one of: in, notin, =, ==, !=, >, <"
            )
        operator = _BINARY_OPERATORS[op_token.kind]
        values = self.set_values() if operator in _SET_OPERATORS else self.exact_value()
        return self.build(key, operator, values, start.position)

    def build(
        self, key: str, operator: Operator, values: tuple[str, ...], position: int
    ) -> Requirement:
        try:
            return Requirement.create(key, operator, values)
        except SelectorError as err:
            raise self.fail(f"requirement at position {position}: {err}") from None

    def set_values(self) -> tuple[str, ...]:
        opening = self.take()
        if opening.kind != "open":
            raise self.fail(f"found {opening.described()}, expected: '('")
        values: set[str] = set()
        first = self.peek()
        if first.kind == "close":  # "()" is the set holding the empty value
            self.take()
            return ("",)
        if first.kind not in ("id", "comma"):
            raise self.fail(f"found {first.described()}, expected: ',', ')' or a value")
        for _ in range(len(self.tokens)):
            token = self.take()
            if token.kind == "id":
                values.add(token.text)
                following = self.peek()
                if following.kind == "close":
                    break
                if following.kind != "comma":
                    raise self.fail(f"found {following.described()}, expected: ',' or ')'")
            elif token.kind == "comma":
                # Empty slots between commas are the empty value, as in apimachinery.
                if not values:
                    values.add("")
                if self.peek().kind in ("close", "comma"):
                    values.add("")
                    if self.peek().kind == "close":
                        break
            else:
                raise self.fail(f"found {token.described()}, expected: ',' or a value")
        closing = self.take()
        if closing.kind != "close":
            raise self.fail(f"found {closing.described()}, expected: ')'")
        return tuple(sorted(values))

    def exact_value(self) -> tuple[str, ...]:
        token = self.peek()
        if token.kind in ("end", "comma"):
            return ("",)
        token = self.take()
        if token.kind != "id":
            raise self.fail(f"found {token.described()}, expected: a value")
        return (token.text,)


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a label selector string exactly like apimachinery's ``labels.Parse``.

    An empty (or all-whitespace) string selects everything. Raises :class:`SelectorError`.
    """
    return LabelSelector(_LabelParser(text).parse())


# --- field selectors ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``field = value`` (``==`` is stored as ``=``) or ``field != value``."""

    field: str
    operator: Operator  # Operator.EQUALS or Operator.NOT_EQUALS
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        # apimachinery's Fields.Get returns "" for a missing field.
        equal = fields.get(self.field, "") == self.value
        return equal if self.operator is Operator.EQUALS else not equal

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.operator.value}{escaped}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """An AND of field requirements, in apimachinery's order (terms sorted as text)."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def required_value(self, field: str) -> str | None:
        """The value ``field`` must equal, if some ``=`` term fixes it (``RequiresExactMatch``)."""
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator is Operator.EQUALS:
                return requirement.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_FIELD_OPERATORS = (("!=", Operator.NOT_EQUALS), ("==", Operator.EQUALS), ("=", Operator.EQUALS))


def _split_field_terms(text: str) -> list[str]:
    terms: list[str] = []
    start = 0
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _unescape_field_value(value: str, selector: str, term: str) -> str:
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(
                    f"invalid field selector {selector!r}: invalid escape sequence '\\{char}' in"
                    f" term {term!r}; only \\\\, \\, and \\= are allowed"
                )
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise SelectorError(
                f"invalid field selector {selector!r}: unescaped {char!r} in the value of term"
                f" {term!r}; write it as '\\{char}'"
            )
        else:
            out.append(char)
    if escaped:
        raise SelectorError(
            f"invalid field selector {selector!r}: term {term!r} ends with a lone backslash"
        )
    return "".join(out)


def parse_field_selector(text: str, allowed_fields: Collection[str] | None = None) -> FieldSelector:
    """Parse a field selector like apimachinery's ``fields.ParseSelector``.

    ``allowed_fields``, when given, is the set of fields the caller can evaluate (for pods and
    nodes here: ``metadata.name`` and ``metadata.namespace``); any other field is an error that
    lists them, like the API server's "field label not supported".
    """
    requirements: list[FieldRequirement] = []
    for term in sorted(_split_field_terms(text)) if text else []:
        if not term:
            continue
        split = None
        for index in range(len(term)):
            for symbol, operator in _FIELD_OPERATORS:
                if term.startswith(symbol, index):
                    split = (term[:index], operator, term[index + len(symbol) :])
                    break
            if split is not None:
                break
        if split is None:
            raise SelectorError(
                f"invalid field selector {text!r}: cannot understand term {term!r};"
                " expected field=value, field==value or field!=value"
            )
        field, operator, raw_value = split
        if not field:
            raise SelectorError(f"invalid field selector {text!r}: term {term!r} has no field name")
        if allowed_fields is not None and field not in allowed_fields:
            supported = ", ".join(sorted(allowed_fields)) or "none"
            raise SelectorError(
                f"invalid field selector {text!r}: field {field!r} is not supported"
                f" (supported: {supported})"
            )
        value = _unescape_field_value(raw_value, text, term)
        requirements.append(FieldRequirement(field, operator, value))
    return FieldSelector(tuple(requirements))
