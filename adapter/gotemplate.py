"""A subset of Go's ``text/template``, enough for prometheus-adapter rules files.

prometheus-adapter renders ``metricsQuery`` and ``resources.template`` with Go's ``text/template``
using ``<<`` ``>>`` delimiters, so a rules file may use any of its actions and builtin functions.
This module re-implements the parts real configurations use, with Go's printing rules, so the
same template produces the same PromQL here as it does there.

Supported: literal text; ``.``, ``.Field`` and ``.A.B``; ``$`` and variables (``$x := pipeline``,
``$x = pipeline``); pipelines with ``|``; parenthesized pipelines; string (``"..."``, raw
`` `...` ``), character, number, ``true``/``false``/``nil`` literals; ``{{- ``/`` -}}`` trim
markers; ``{{/* comments */}}``; ``if``/``else if``/``else``/``end``; ``range`` (with ``$i, $v :=``,
``else``, ``break``, ``continue``); ``with``/``else with``/``else``. Builtins: ``and or not len
index slice print printf println eq ne lt le gt ge html js urlquery``. Not supported (a syntax
error says so): ``define``, ``template``, ``block``, ``call`` and custom functions.

Data model. The context given to :meth:`Template.render` behaves like a Go struct: a missing field
is an execution error (``can't evaluate field X in type context``), as with prometheus-adapter's
``queryTemplateArgs``. Nested mappings behave like Go maps (a missing key prints ``<no value>``,
``index`` returns the zero value). ``str`` is ``string``, ``list``/``tuple`` are slices, ``int``,
``float`` and ``bool`` are Go's basic kinds and ``None`` is ``nil``. Values print like Go's ``fmt``
(``[a b]``, ``map[k:v k2:v2]`` with sorted keys).

Exception tree::

    TemplateError               base; ``line`` and ``column`` (1-based) point into the template
    ├── TemplateSyntaxError     the text cannot be parsed (raised by Template.parse)
    └── TemplateExecError       rendering failed, e.g. a missing field (raised by Template.render)
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

__all__ = [
    "DEFAULT_DELIMS",
    "RULES_DELIMS",
    "Template",
    "TemplateError",
    "TemplateExecError",
    "TemplateSyntaxError",
    "go_format",
    "go_quote",
    "go_sprint",
]

DEFAULT_DELIMS: Final = ("{{", "}}")
RULES_DELIMS: Final = ("<<", ">>")

_SPACE_CHARS: Final = " \t\r\n"
_KEYWORDS: Final = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)
_UNSUPPORTED_ACTIONS: Final = frozenset({"define", "template", "block"})


class TemplateError(Exception):
    """A template could not be parsed or rendered; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.message = message
        self.line = line
        self.column = column


class TemplateSyntaxError(TemplateError):
    """The template text is not valid (for the supported subset of) Go template syntax."""


class TemplateExecError(TemplateError):
    """Rendering failed: a missing field, a bad function argument, an index out of range, ..."""


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class _Struct:
    """The render context: field access on it behaves like a Go struct, not a map."""

    fields: Mapping[str, object]


# --------------------------------------------------------------------------------------------
# Printing, the way Go's fmt does it
# --------------------------------------------------------------------------------------------


def _go_float(value: float, verb: str = "g", precision: int | None = None) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if verb in "fF":
        return f"{value:.{6 if precision is None else precision}f}"
    if verb in "eE":
        text = f"{value:.{6 if precision is None else precision}e}"
        return text.upper() if verb == "E" else text
    if precision is not None:
        text = f"{value:.{max(precision, 1)}g}"
        return text.upper() if verb == "G" else text
    # Shortest representation that round-trips, with Go's %g exponent threshold (precision 6).
    _sign, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    digit_text = "".join(str(d) for d in digits) or "0"
    if digit_text == "0":
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    decimal_point = len(digit_text) + exponent
    exp = decimal_point - 1
    prefix = "-" if value < 0 else ""
    # strconv's shortest %g switches to an exponent below 1e-4 and from 1e+06 (precision 6).
    if exp < -4 or exp >= 6:
        mantissa = digit_text[0] + ("." + digit_text[1:] if len(digit_text) > 1 else "")
        e_sign = "-" if exp < 0 else "+"
        text = f"{prefix}{mantissa}e{e_sign}{abs(exp):02d}"
        return text.upper() if verb == "G" else text
    if decimal_point <= 0:
        return f"{prefix}0.{'0' * -decimal_point}{digit_text}"
    if decimal_point >= len(digit_text):
        return prefix + digit_text + "0" * (decimal_point - len(digit_text))
    return f"{prefix}{digit_text[:decimal_point]}.{digit_text[decimal_point:]}"


def go_quote(text: str) -> str:
    """Go's strconv.Quote: a double-quoted Go string literal."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_type_name(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Struct):
        return "context"
    if isinstance(value, Mapping):
        values = list(value.values())
        inner = "string" if all(isinstance(v, str) for v in values) else "interface {}"
        return f"map[string]{inner}"
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, str) for v in value):
            return "[]string"
        return "[]interface {}"
    return type(value).__name__


def _format_value(value: object) -> str:
    """fmt's %v."""
    if value is None:
        return "<nil>"
    if value is MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, _Struct):
        return "{" + " ".join(_format_value(v) for v in value.fields.values()) + "}"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{_format_value(k)}:{_format_value(v)}" for k, v in items) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_format_value(v) for v in value) + "]"
    return str(value)


def _sort_key(key: object) -> tuple[int, object]:
    # fmt sorts map keys: numbers numerically, strings lexically.
    if isinstance(key, bool):
        return (0, int(key))
    if isinstance(key, int | float):
        return (1, key)
    return (2, str(key))


def go_sprint(*args: object) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_format_value(arg))
    return "".join(out)


def _go_sprintln(*args: object) -> str:
    return " ".join(_format_value(a) for a in args) + "\n"


_VERB_RE: Final = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?(.?)", re.DOTALL)


def go_format(fmt: str, *args: object) -> str:
    """fmt.Sprintf for the verbs templates use: v s q d f F e E g G x X t c %."""
    out: list[str] = []
    arg_index = 0
    pos = 0
    remaining = list(args)
    while pos < len(fmt):
        percent = fmt.find("%", pos)
        if percent < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:percent])
        match = _VERB_RE.match(fmt, percent)
        assert match is not None
        flags, width_text, precision_text, verb = match.groups()
        pos = match.end()
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        width: int | None = None
        precision: int | None = None
        if width_text == "*":
            width_arg = remaining[arg_index] if arg_index < len(remaining) else None
            arg_index += 1
            width = width_arg if isinstance(width_arg, int) else None
        elif width_text:
            width = int(width_text)
        if precision_text == "*":
            precision_arg = remaining[arg_index] if arg_index < len(remaining) else None
            arg_index += 1
            precision = precision_arg if isinstance(precision_arg, int) else None
        elif precision_text is not None:
            precision = int(precision_text)
        elif "." in match.group(0)[1:]:
            precision = 0
        if arg_index >= len(remaining):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = remaining[arg_index]
        arg_index += 1
        out.append(_pad(_format_verb(verb, arg, precision, flags), width, flags, arg))
    if arg_index < len(remaining):
        extra = ", ".join(f"{_go_type_name(a)}={_format_value(a)}" for a in remaining[arg_index:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad(text: str, width: int | None, flags: str, arg: object) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    numeric = isinstance(arg, int | float) and not isinstance(arg, bool)
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in ("-", "+") else ""
        return sign + text[len(sign) :].rjust(width - len(sign), "0")
    return text.rjust(width)


def _bad_verb(verb: str, arg: object) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_go_type_name(arg)}={_format_value(arg)})"


def _format_verb(verb: str, arg: object, precision: int | None, flags: str) -> str:
    if isinstance(arg, list | tuple) and verb not in "vT":
        return "[" + " ".join(_format_verb(verb, a, precision, flags) for a in arg) + "]"
    if verb == "v":
        if isinstance(arg, float) and precision is not None:
            return _go_float(arg, "g", precision)
        return _signed(_format_value(arg), arg, flags)
    if verb == "T":
        return "<nil>" if arg is None else _go_type_name(arg)
    if verb == "s":
        if isinstance(arg, str):
            return arg if precision is None else arg[:precision]
        if isinstance(arg, Mapping):
            return _format_value(arg)
        return _bad_verb(verb, arg)
    if verb == "q":
        if isinstance(arg, str):
            return go_quote(arg)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return "'" + go_quote(chr(arg))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'"
        return _bad_verb(verb, arg)
    if verb == "t":
        return ("true" if arg else "false") if isinstance(arg, bool) else _bad_verb(verb, arg)
    if isinstance(arg, bool) or arg is None:
        return _bad_verb(verb, arg)
    if verb in "dxXobc":
        if isinstance(arg, int):
            if verb == "d":
                return _signed(str(arg), arg, flags)
            if verb == "c":
                return chr(arg)
            text = format(abs(arg), {"x": "x", "X": "X", "o": "o", "b": "b"}[verb])
            return ("-" if arg < 0 else "") + text
        if isinstance(arg, str) and verb in "xX":
            hex_text = arg.encode().hex()
            return hex_text.upper() if verb == "X" else hex_text
        return _bad_verb(verb, arg)
    if verb in "fFeEgG":
        if isinstance(arg, float):
            return _signed(_go_float(arg, verb, precision), arg, flags)
        return _bad_verb(verb, arg)
    return _bad_verb(verb, arg)


def _signed(text: str, arg: object, flags: str) -> str:
    numeric = isinstance(arg, int | float) and not isinstance(arg, bool)
    if numeric and "+" in flags and not text.startswith("-"):
        return "+" + text
    if numeric and " " in flags and not text.startswith("-"):
        return " " + text
    return text


# --------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # field, dot, var, ident, string, number, char, pipe, lparen, rparen, comma,
    # declare, assign
    text: str
    pos: int
    value: object = None
    chain: tuple[str, ...] = ()


_NUMBER_RE: Final = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|"
    r"(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?|\d[\d_]*\.)"
)
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD_CHAIN_RE: Final = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass
class _Action:
    tokens: list[_Token]
    pos: int


@dataclass
class _Text:
    text: str
    pos: int


class _Source:
    """The template text with offset → line/column conversion."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_col(self, pos: int) -> tuple[int, int]:
        low, high = 0, len(self._line_starts) - 1
        while low < high:
            mid = (low + high + 1) // 2
            if self._line_starts[mid] <= pos:
                low = mid
            else:
                high = mid - 1
        return low + 1, pos - self._line_starts[low] + 1

    def error(self, pos: int, message: str) -> TemplateSyntaxError:
        line, column = self.line_col(pos)
        return TemplateSyntaxError(message, line, column)


def _lex(source: _Source, left: str, right: str) -> list[_Text | _Action]:
    text = source.text
    items: list[_Text | _Action] = []
    pos = 0
    trim_next = False
    while pos <= len(text):
        start = text.find(left, pos)
        chunk_end = len(text) if start < 0 else start
        chunk = text[pos:chunk_end]
        if trim_next:
            stripped = chunk.lstrip(_SPACE_CHARS)
            pos += len(chunk) - len(stripped)
            chunk = stripped
            trim_next = False
        if start < 0:
            if chunk:
                items.append(_Text(chunk, pos))
            break
        inner = start + len(left)
        if text[inner : inner + 1] == "-" and text[inner + 1 : inner + 2] in tuple(_SPACE_CHARS):
            chunk = chunk.rstrip(_SPACE_CHARS)
            inner += 2
        if chunk:
            items.append(_Text(chunk, pos))
        tokens, pos, trim_next = _lex_action(source, inner, right, start)
        if tokens is not None:
            items.append(_Action(tokens, start))
    return items


def _lex_action(
    source: _Source, pos: int, right: str, action_start: int
) -> tuple[list[_Token] | None, int, bool]:
    """Tokens of one action (None for a comment), the offset after it, and its right trim."""
    text = source.text
    while pos < len(text) and text[pos] in _SPACE_CHARS:
        pos += 1
    if text.startswith("/*", pos):
        close = text.find("*/", pos + 2)
        if close < 0:
            raise source.error(pos, "unclosed comment")
        after = close + 2
        trim = False
        if text.startswith(" -" + right, after) or text.startswith("\t-" + right, after):
            trim = True
            after += 2
        if not text.startswith(right, after):
            raise source.error(after, "comment ends before closing delimiter")
        return None, after + len(right), trim
    tokens: list[_Token] = []
    while True:
        if pos >= len(text):
            raise source.error(action_start, "unclosed action")
        char = text[pos]
        if char in _SPACE_CHARS:
            end = pos
            while end < len(text) and text[end] in _SPACE_CHARS:
                end += 1
            if text.startswith("-" + right, end):
                return tokens, end + 1 + len(right), True
            pos = end
            continue
        if text.startswith(right, pos):
            return tokens, pos + len(right), False
        token, pos = _lex_token(source, pos, tokens)
        tokens.append(token)


def _lex_token(source: _Source, pos: int, previous: list[_Token]) -> tuple[_Token, int]:
    text = source.text
    char = text[pos]
    follows_operand = bool(previous) and previous[-1].kind in {"var", "rparen", "field"}
    adjacent = follows_operand and previous[-1].pos + len(previous[-1].text) == pos
    if char == "." and (pos + 1 >= len(text) or not _IDENT_RE.match(text, pos + 1)):
        if pos + 1 < len(text) and text[pos + 1].isdigit():
            match = _NUMBER_RE.match(text, pos)
            if match:
                return _number_token(source, match.group(0), pos), match.end()
        return _Token("dot", ".", pos), pos + 1
    if char == ".":
        match = _FIELD_CHAIN_RE.match(text, pos)
        assert match is not None
        chain = tuple(match.group(0)[1:].split("."))
        if adjacent and previous[-1].kind in {"var", "rparen"}:
            return _Token("field", match.group(0), pos, chain=chain, value="chained"), match.end()
        return _Token("field", match.group(0), pos, chain=chain), match.end()
    if char == "$":
        match = _IDENT_RE.match(text, pos + 1)
        name = "$" + (match.group(0) if match else "")
        end = pos + len(name)
        return _Token("var", name, pos), end
    if char == '"':
        end = pos + 1
        while True:
            if end >= len(text) or text[end] == "\n":
                raise source.error(pos, "unterminated quoted string")
            if text[end] == "\\":
                end += 2
                continue
            if text[end] == '"':
                break
            end += 1
        literal = text[pos : end + 1]
        return _Token("string", literal, pos, value=_unquote(source, literal, pos)), end + 1
    if char == "`":
        end = text.find("`", pos + 1)
        if end < 0:
            raise source.error(pos, "unterminated raw quoted string")
        return _Token("string", text[pos : end + 1], pos, value=text[pos + 1 : end]), end + 1
    if char == "'":
        match = re.compile(r"'(\\.[^']*|[^'\\])'").match(text, pos)
        if not match:
            raise source.error(pos, "unterminated character constant")
        decoded = _unquote(source, '"' + match.group(1).replace('"', '\\"') + '"', pos)
        if len(decoded) != 1:
            raise source.error(pos, f"malformed character constant: {match.group(0)}")
        return _Token("char", match.group(0), pos, value=ord(decoded)), match.end()
    if char.isdigit() or (char in "+-" and pos + 1 < len(text) and text[pos + 1] in "0123456789."):
        match = _NUMBER_RE.match(text, pos)
        if match:
            end = match.end()
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                raise source.error(pos, f"bad number syntax: {text[pos : end + 1]!r}")
            return _number_token(source, match.group(0), pos), end
    if char == ":" and text.startswith(":=", pos):
        return _Token("declare", ":=", pos), pos + 2
    simple = {"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma", "=": "assign"}
    if char in simple:
        return _Token(simple[char], char, pos), pos + 1
    match = _IDENT_RE.match(text, pos)
    if match:
        return _Token("ident", match.group(0), pos), match.end()
    raise source.error(pos, f"unexpected {char!r} in action")


def _number_token(source: _Source, literal: str, pos: int) -> _Token:
    cleaned = literal.replace("_", "")
    value: object
    try:
        body = cleaned.lstrip("+-")
        negative = cleaned.startswith("-")
        if body[:2].lower() in ("0x", "0o", "0b"):
            value = int(body, 0) * (-1 if negative else 1)
        elif re.fullmatch(r"\d+", body):
            # Go treats a leading 0 as octal.
            value = int(body, 8 if len(body) > 1 and body[0] == "0" else 10)
            value = -value if negative else value
        else:
            value = float(cleaned)
    except ValueError:
        raise source.error(pos, f"bad number syntax: {literal!r}") from None
    return _Token("number", literal, pos, value=value)


_ESCAPE_RE: Final = re.compile(
    r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3})|(.))",
    re.DOTALL,
)


def _unquote(source: _Source, literal: str, pos: int) -> str:
    simple = {
        "a": "\a",
        "b": "\b",
        "f": "\f",
        "n": "\n",
        "r": "\r",
        "t": "\t",
        "v": "\v",
        "\\": "\\",
        "'": "'",
        '"': '"',
    }

    def replace(match: re.Match[str]) -> str:
        single, hex2, hex4, hex8, octal, bad = match.groups()
        if single:
            return simple[single]
        if bad is not None:
            raise source.error(pos, f"unknown escape sequence \\{bad} in {literal}")
        number = int(hex2 or hex4 or hex8, 16) if not octal else int(octal, 8)
        return chr(number)

    return _ESCAPE_RE.sub(replace, literal[1:-1])


# --------------------------------------------------------------------------------------------
# Parse tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operand:
    kind: str  # field, dot, var, func, const, pipe
    pos: int
    text: str
    name: str = ""
    chain: tuple[str, ...] = ()
    value: object = None
    pipe: _Pipeline | None = None


@dataclass(frozen=True)
class _Command:
    args: tuple[_Operand, ...]
    pos: int


@dataclass(frozen=True)
class _Pipeline:
    decl: tuple[str, ...]
    is_assign: bool
    commands: tuple[_Command, ...]
    pos: int


@dataclass(frozen=True)
class _TextNode:
    text: str


@dataclass(frozen=True)
class _PrintNode:
    pipe: _Pipeline


@dataclass(frozen=True)
class _ControlNode:
    kind: str  # if, range, with
    pipe: _Pipeline
    body: tuple[_Node, ...]
    else_body: tuple[_Node, ...] | None
    pos: int


@dataclass(frozen=True)
class _LoopControlNode:
    kind: str  # break, continue
    pos: int


_Node = _TextNode | _PrintNode | _ControlNode | _LoopControlNode

_BUILTIN_NAMES: Final = frozenset(
    {
        "and",
        "or",
        "not",
        "len",
        "index",
        "slice",
        "print",
        "printf",
        "println",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "html",
        "js",
        "urlquery",
    }
)


@dataclass
class _Parser:
    source: _Source
    items: list[_Text | _Action]
    left: str
    right: str
    index: int = 0
    scopes: list[list[str]] = field(default_factory=lambda: [["$"]])
    range_depth: int = 0

    def parse(self) -> tuple[_Node, ...]:
        nodes, terminator = self.parse_list()
        if terminator is not None:
            raise self.source.error(
                terminator.pos, f"unexpected {self.left}{terminator.tokens[0].text}{self.right}"
            )
        return nodes

    def parse_list(self) -> tuple[tuple[_Node, ...], _Action | None]:
        """Nodes up to (and consuming) an ``end`` or ``else`` action, which is returned."""
        nodes: list[_Node] = []
        while self.index < len(self.items):
            item = self.items[self.index]
            self.index += 1
            if isinstance(item, _Text):
                nodes.append(_TextNode(item.text))
                continue
            if not item.tokens:
                raise self.source.error(item.pos, "missing value for command")
            first = item.tokens[0]
            if first.kind == "ident" and first.text in ("end", "else"):
                return tuple(nodes), item
            if first.kind == "ident" and first.text in _UNSUPPORTED_ACTIONS:
                raise self.source.error(
                    first.pos,
                    f"{self.left}{first.text}{self.right} is not supported in rules templates",
                )
            if first.kind == "ident" and first.text in ("if", "range", "with"):
                nodes.append(self.parse_control(first.text, item.tokens[1:], first.pos))
            elif first.kind == "ident" and first.text in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.source.error(
                        first.pos,
                        f"{self.left}{first.text}{self.right} outside {self.left}range{self.right}",
                    )
                if len(item.tokens) > 1:
                    raise self.source.error(
                        item.tokens[1].pos, f"unexpected {item.tokens[1].text!r}"
                    )
                nodes.append(_LoopControlNode(first.text, first.pos))
            else:
                nodes.append(_PrintNode(self.parse_pipeline(item.tokens, item.pos, "command")))
        return tuple(nodes), None

    def parse_control(self, kind: str, tokens: list[_Token], pos: int) -> _ControlNode:
        self.scopes.append([])
        pipe = self.parse_pipeline(tokens, pos, kind)
        if kind == "range":
            self.range_depth += 1
        body, terminator = self.parse_list()
        if kind == "range":
            self.range_depth -= 1
        self.scopes.pop()
        if terminator is None:
            raise self.source.error(
                pos,
                f"unexpected EOF: {self.left}{kind}{self.right} has no {self.left}end{self.right}",
            )
        else_body: tuple[_Node, ...] | None = None
        if terminator.tokens[0].text == "else":
            rest = terminator.tokens[1:]
            if rest and kind != "range" and rest[0].kind == "ident" and rest[0].text == kind:
                # "else if" / "else with": a nested control that shares our {{end}}.
                else_body = (self.parse_control(kind, rest[1:], rest[0].pos),)
            else:
                if rest:
                    raise self.source.error(rest[0].pos, f"unexpected {rest[0].text!r} in else")
                self.scopes.append([])
                else_body, end = self.parse_list()
                self.scopes.pop()
                if end is None or end.tokens[0].text != "end":
                    where = pos if end is None else end.pos
                    raise self.source.error(
                        where,
                        f"expected {self.left}end{self.right} to close {kind}",
                    )
                if len(end.tokens) > 1:
                    raise self.source.error(end.tokens[1].pos, "unexpected token after end")
        elif len(terminator.tokens) > 1:
            raise self.source.error(terminator.tokens[1].pos, "unexpected token after end")
        return _ControlNode(kind, pipe, body, else_body, pos)

    def parse_pipeline(self, tokens: list[_Token], pos: int, context: str) -> _Pipeline:
        decl: list[str] = []
        is_assign = False
        index = 0
        # $x := / $x = / $i, $v := (range only)
        if tokens and tokens[0].kind == "var":
            if len(tokens) > 1 and tokens[1].kind in ("declare", "assign"):
                decl = [tokens[0].text]
                is_assign = tokens[1].kind == "assign"
                index = 2
            elif (
                context == "range"
                and len(tokens) > 3
                and tokens[1].kind == "comma"
                and tokens[2].kind == "var"
                and tokens[3].kind in ("declare", "assign")
            ):
                decl = [tokens[0].text, tokens[2].text]
                is_assign = tokens[3].kind == "assign"
                index = 4
        if is_assign:
            for name in decl:
                self.check_variable(name, tokens[0].pos)
        commands: list[_Command] = []
        current: list[_Operand] = []
        rest = tokens[index:]
        position = 0
        while position < len(rest):
            token = rest[position]
            if token.kind == "pipe":
                if not current:
                    raise self.source.error(token.pos, "missing command before '|'")
                commands.append(_Command(tuple(current), current[0].pos))
                current = []
                position += 1
                continue
            operand, position = self.parse_operand(rest, position)
            current.append(operand)
        if current:
            commands.append(_Command(tuple(current), current[0].pos))
        elif commands:
            raise self.source.error(tokens[-1].pos, "missing command after '|'")
        if not commands:
            raise self.source.error(pos, f"missing value for {context}")
        for command in commands[1:]:
            if command.args[0].kind not in ("func",):
                raise self.source.error(
                    command.pos, f"non executable command in pipeline stage: {command.args[0].text}"
                )
        for command in commands:
            first = command.args[0]
            if first.kind not in ("func",) and len(command.args) > 1:
                raise self.source.error(
                    command.args[1].pos, f"can't give argument to non-function {first.text}"
                )
        if not is_assign:
            self.scopes[-1].extend(decl)
        return _Pipeline(tuple(decl), is_assign, tuple(commands), pos)

    def check_variable(self, name: str, pos: int) -> None:
        if not any(name in scope for scope in self.scopes):
            raise self.source.error(pos, f'undefined variable "{name}"')

    def parse_operand(self, tokens: list[_Token], position: int) -> tuple[_Operand, int]:
        token = tokens[position]
        operand: _Operand
        if token.kind == "field":
            operand = _Operand("field", token.pos, token.text, chain=token.chain)
        elif token.kind == "dot":
            operand = _Operand("dot", token.pos, ".")
        elif token.kind == "var":
            self.check_variable(token.text, token.pos)
            operand = _Operand("var", token.pos, token.text, name=token.text)
        elif token.kind in ("string", "number", "char"):
            operand = _Operand("const", token.pos, token.text, value=token.value)
        elif token.kind == "ident":
            if token.text in ("true", "false"):
                operand = _Operand("const", token.pos, token.text, value=token.text == "true")
            elif token.text == "nil":
                operand = _Operand("const", token.pos, "nil", value=None)
            elif token.text in _BUILTIN_NAMES:
                operand = _Operand("func", token.pos, token.text, name=token.text)
            elif token.text == "call":
                raise self.source.error(token.pos, 'function "call" is not supported')
            elif token.text in _KEYWORDS:
                raise self.source.error(
                    token.pos, f"unexpected {self.left}{token.text}{self.right} in command"
                )
            else:
                raise self.source.error(token.pos, f'function "{token.text}" not defined')
        elif token.kind == "lparen":
            depth = 0
            end = position
            while end < len(tokens):
                if tokens[end].kind == "lparen":
                    depth += 1
                elif tokens[end].kind == "rparen":
                    depth -= 1
                    if depth == 0:
                        break
                end += 1
            if end >= len(tokens):
                raise self.source.error(token.pos, "unclosed left paren")
            inner = tokens[position + 1 : end]
            if not inner:
                raise self.source.error(token.pos, "missing value for parenthesized pipeline")
            pipe = self.parse_pipeline(inner, token.pos, "parenthesized pipeline")
            operand = _Operand("pipe", token.pos, "(...)", pipe=pipe)
            position = end
        elif token.kind == "rparen":
            raise self.source.error(token.pos, "unexpected right paren")
        else:
            raise self.source.error(token.pos, f"unexpected {token.text!r} in operand")
        position += 1
        # A field chain glued to a variable or a parenthesized pipeline: $x.A.B, (...).A
        if (
            position < len(tokens)
            and tokens[position].kind == "field"
            and tokens[position].value == "chained"
        ):
            if operand.kind not in ("var", "pipe"):
                raise self.source.error(tokens[position].pos, "unexpected field chain")
            operand = _Operand(
                operand.kind,
                operand.pos,
                operand.text + tokens[position].text,
                name=operand.name,
                chain=tokens[position].chain,
                pipe=operand.pipe,
            )
            position += 1
        return operand, position


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


class _BreakError(Exception):
    pass


class _ContinueError(Exception):
    pass


def _truth(value: object) -> bool:
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | tuple) or (
        isinstance(value, Mapping) and not isinstance(value, _Struct)
    ):
        return len(value) > 0
    return True


@dataclass
class _Executor:
    source: _Source
    root: _Struct
    variables: list[tuple[str, object]]
    out: list[str] = field(default_factory=list)

    def error(self, pos: int, message: str) -> TemplateExecError:
        line, column = self.source.line_col(pos)
        return TemplateExecError(message, line, column)

    def walk(self, nodes: Sequence[_Node], dot: object) -> None:
        for node in nodes:
            if isinstance(node, _TextNode):
                self.out.append(node.text)
            elif isinstance(node, _PrintNode):
                value = self.eval_pipeline(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(self.printable(value, node.pipe.pos))
            elif isinstance(node, _LoopControlNode):
                raise _BreakError() if node.kind == "break" else _ContinueError()
            else:
                self.walk_control(node, dot)

    def printable(self, value: object, pos: int) -> str:
        if isinstance(value, _Struct):
            return _format_value(value)
        return _format_value(value)

    def walk_control(self, node: _ControlNode, dot: object) -> None:
        mark = len(self.variables)
        try:
            value = self.eval_pipeline(node.pipe, dot)
            if node.kind == "range":
                self.walk_range(node, value, dot, mark)
                return
            if _truth(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            elif node.else_body is not None:
                del self.variables[mark:]
                self.walk(node.else_body, dot)
        finally:
            del self.variables[mark:]

    def walk_range(self, node: _ControlNode, value: object, dot: object, mark: int) -> None:
        items: list[tuple[object, object]]
        if isinstance(value, _Struct):
            raise self.error(node.pos, "range can't iterate over context")
        if isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value, key=_sort_key)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise self.error(node.pos, f"range can't iterate over {_format_value(value)}")
        if not items:
            if node.else_body is not None:
                del self.variables[mark:]
                self.walk(node.else_body, dot)
            return
        declared = node.pipe.decl
        for key, element in items:
            del self.variables[mark:]
            if len(declared) == 1:
                self.set_variable(declared[0], element, node.pipe.is_assign)
            elif len(declared) == 2:
                self.set_variable(declared[0], key, node.pipe.is_assign)
                self.set_variable(declared[1], element, node.pipe.is_assign)
            try:
                self.walk(node.body, element)
            except _ContinueError:
                continue
            except _BreakError:
                break

    def set_variable(self, name: str, value: object, is_assign: bool) -> None:
        if is_assign:
            for i in range(len(self.variables) - 1, -1, -1):
                if self.variables[i][0] == name:
                    self.variables[i] = (name, value)
                    return
        self.variables.append((name, value))

    def variable(self, name: str, pos: int) -> object:
        for var_name, value in reversed(self.variables):
            if var_name == name:
                return value
        raise self.error(pos, f"undefined variable: {name}")

    def eval_pipeline(self, pipe: _Pipeline, dot: object) -> object:
        value: object = MISSING
        for i, command in enumerate(pipe.commands):
            final = value if i > 0 else _NO_FINAL
            value = self.eval_command(command, dot, final)
        # range's two-variable form is bound per element by walk_range
        if pipe.decl and pipe.commands and (pipe.is_assign or len(pipe.decl) == 1):
            self.set_variable(pipe.decl[0], value, pipe.is_assign)
        return value

    def eval_command(self, command: _Command, dot: object, final: object) -> object:
        first = command.args[0]
        if first.kind == "func":
            return self.call(first, command.args[1:], dot, final)
        return self.eval_operand(first, dot)

    def eval_operand(self, operand: _Operand, dot: object) -> object:
        if operand.kind == "const":
            return operand.value
        if operand.kind == "dot":
            return dot
        if operand.kind == "field":
            return self.eval_chain(dot, operand.chain, operand)
        if operand.kind == "var":
            value = self.variable(operand.name, operand.pos)
            return self.eval_chain(value, operand.chain, operand)
        if operand.kind == "pipe":
            assert operand.pipe is not None
            mark = len(self.variables)
            value = self.eval_pipeline(operand.pipe, dot)
            del self.variables[mark:]
            return self.eval_chain(value, operand.chain, operand)
        assert operand.kind == "func"
        return self.call(operand, (), dot, _NO_FINAL)

    def eval_chain(self, receiver: object, chain: Sequence[str], operand: _Operand) -> object:
        value = receiver
        for name in chain:
            value = self.eval_field(value, name, operand)
        return value

    def eval_field(self, receiver: object, name: str, operand: _Operand) -> object:
        if isinstance(receiver, _Struct):
            if name in receiver.fields:
                return receiver.fields[name]
            known = ", ".join(sorted(receiver.fields)) or "none"
            raise self.error(
                operand.pos,
                f"at <{operand.text}>: can't evaluate field {name} in type context "
                f"(fields: {known})",
            )
        if isinstance(receiver, Mapping):
            return receiver.get(name, MISSING)
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            raise self.error(operand.pos, f"at <{operand.text}>: nil pointer evaluating .{name}")
        raise self.error(
            operand.pos,
            f"at <{operand.text}>: can't evaluate field {name} in type {_go_type_name(receiver)}",
        )

    def call(
        self, func: _Operand, arg_nodes: Sequence[_Operand], dot: object, final: object
    ) -> object:
        name = func.name
        if name in ("and", "or"):
            return self.call_and_or(func, arg_nodes, dot, final)
        args = [self.eval_arg(node, dot) for node in arg_nodes]
        if final is not _NO_FINAL:
            args.append(_arg_value(final))
        try:
            return _BUILTINS[name](args)
        except _FuncError as err:
            raise self.error(func.pos, f"error calling {name}: {err}") from None

    def eval_arg(self, node: _Operand, dot: object) -> object:
        return _arg_value(self.eval_operand(node, dot))

    def call_and_or(
        self, func: _Operand, arg_nodes: Sequence[_Operand], dot: object, final: object
    ) -> object:
        count = len(arg_nodes) + (0 if final is _NO_FINAL else 1)
        if count < 1:
            raise self.error(
                func.pos, f"wrong number of args for {func.name}: want at least 1 got 0"
            )
        value: object = None
        want_truth = func.name == "or"
        for node in arg_nodes:
            value = self.eval_arg(node, dot)
            if _truth(value) == want_truth:
                return value
        if final is not _NO_FINAL:
            value = _arg_value(final)
        return value


_NO_FINAL: Final = object()


def _arg_value(value: object) -> object:
    # Go passes a missing map value to a function as nil.
    return None if value is MISSING else value


class _FuncError(Exception):
    pass


def _need(args: Sequence[object], name: str, count: int) -> None:
    if len(args) != count:
        raise _FuncError(f"wrong number of args for {name}: want {count} got {len(args)}")


def _fn_not(args: Sequence[object]) -> object:
    _need(args, "not", 1)
    return not _truth(args[0])


def _fn_len(args: Sequence[object]) -> object:
    _need(args, "len", 1)
    item = args[0]
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | tuple) or (
        isinstance(item, Mapping) and not isinstance(item, _Struct)
    ):
        return len(item)
    raise _FuncError(f"len of type {_go_type_name(item)}")


def _int_index(value: object, length: int, cap: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FuncError(f"cannot index slice/array with type {_go_type_name(value)}")
    if value < 0 or value >= (length if cap is None else cap + 1):
        raise _FuncError(f"index out of range: {value}")
    return value


def _fn_index(args: Sequence[object]) -> object:
    if not args:
        raise _FuncError("wrong number of args for index: want at least 1 got 0")
    item = args[0]
    for key in args[1:]:
        if item is None:
            raise _FuncError("index of untyped nil")
        if isinstance(item, str):
            item = item.encode()[_int_index(key, len(item.encode()))]
        elif isinstance(item, list | tuple):
            item = item[_int_index(key, len(item))]
        elif isinstance(item, Mapping) and not isinstance(item, _Struct):
            if not isinstance(key, str):
                raise _FuncError(f"value has type {_go_type_name(key)}; should be string")
            if key in item:
                item = item[key]
            else:
                values = list(item.values())
                # The zero value of the map's element type: map[string]string gives "".
                item = "" if all(isinstance(v, str) for v in values) else None
        else:
            raise _FuncError(f"can't index item of type {_go_type_name(item)}")
    return item


def _fn_slice(args: Sequence[object]) -> object:
    if not args:
        raise _FuncError("wrong number of args for slice: want at least 1 got 0")
    item = args[0]
    indexes = args[1:]
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _FuncError("cannot 3-index slice a string")
        data = item.encode()
        bounds = [_int_index(i, len(data), len(data)) for i in indexes]
        start = bounds[0] if bounds else 0
        end = bounds[1] if len(bounds) > 1 else len(data)
        if start > end:
            raise _FuncError(f"invalid slice index: {start} > {end}")
        return data[start:end].decode(errors="replace")
    if isinstance(item, list | tuple):
        bounds = [_int_index(i, len(item), len(item)) for i in indexes]
        start = bounds[0] if bounds else 0
        end = bounds[1] if len(bounds) > 1 else len(item)
        if start > end:
            raise _FuncError(f"invalid slice index: {start} > {end}")
        return list(item[start:end])
    raise _FuncError(f"can't slice item of type {_go_type_name(item)}")


def _basic_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "nil"
    raise _FuncError(f"invalid type for comparison: {_go_type_name(value)}")


def _fn_eq(args: Sequence[object]) -> object:
    if len(args) < 2:
        raise _FuncError("missing argument for comparison")
    first = args[0]
    first_kind = _basic_kind(first)
    for other in args[1:]:
        other_kind = _basic_kind(other)
        if first_kind != other_kind and "nil" not in (first_kind, other_kind):
            raise _FuncError("incompatible types for comparison")
        if first == other and first_kind == other_kind:
            return True
    return False


def _fn_ne(args: Sequence[object]) -> object:
    _need(args, "ne", 2)
    return not _fn_eq(args)


def _ordered(name: str, args: Sequence[object], compare: Callable[[object, object], bool]) -> bool:
    _need(args, name, 2)
    left, right = args
    left_kind, right_kind = _basic_kind(left), _basic_kind(right)
    if left_kind in ("bool", "nil") or right_kind in ("bool", "nil"):
        raise _FuncError("invalid type for comparison")
    if left_kind != right_kind:
        raise _FuncError("incompatible types for comparison")
    return compare(left, right)


def _fn_lt(args: Sequence[object]) -> object:
    return _ordered("lt", args, lambda a, b: a < b)  # type: ignore[operator]


def _fn_le(args: Sequence[object]) -> object:
    return _ordered("le", args, lambda a, b: a <= b)  # type: ignore[operator]


def _fn_gt(args: Sequence[object]) -> object:
    return _ordered("gt", args, lambda a, b: a > b)  # type: ignore[operator]


def _fn_ge(args: Sequence[object]) -> object:
    return _ordered("ge", args, lambda a, b: a >= b)  # type: ignore[operator]


def _fn_printf(args: Sequence[object]) -> object:
    if not args:
        raise _FuncError("wrong number of args for printf: want at least 1 got 0")
    if not isinstance(args[0], str):
        raise _FuncError(f"wrong type for value; expected string; got {_go_type_name(args[0])}")
    return go_format(args[0], *args[1:])


def _escaper_input(args: Sequence[object]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return go_sprint(*args)


def _fn_html(args: Sequence[object]) -> object:
    text = _escaper_input(args)
    table = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(table.get(c, c) for c in text)


def _fn_js(args: Sequence[object]) -> object:
    out: list[str] = []
    for char in _escaper_input(args):
        if char in ("\\", "'", '"'):
            out.append("\\" + char)
        elif char in "<>&=`" or ord(char) < 0x20 or not char.isprintable():
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


def _fn_urlquery(args: Sequence[object]) -> object:
    return urllib.parse.quote_plus(_escaper_input(args), safe="")


_BUILTINS: Final[dict[str, Callable[[Sequence[object]], object]]] = {
    "not": _fn_not,
    "len": _fn_len,
    "index": _fn_index,
    "slice": _fn_slice,
    "print": lambda args: go_sprint(*args),
    "println": lambda args: _go_sprintln(*args),
    "printf": _fn_printf,
    "eq": _fn_eq,
    "ne": _fn_ne,
    "lt": _fn_lt,
    "le": _fn_le,
    "gt": _fn_gt,
    "ge": _fn_ge,
    "html": _fn_html,
    "js": _fn_js,
    "urlquery": _fn_urlquery,
}


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A parsed template: parse once with :meth:`parse`, render many times."""

    text: str
    delims: tuple[str, str]
    _nodes: tuple[_Node, ...] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, delims: tuple[str, str] = DEFAULT_DELIMS) -> Template:
        """Parse ``text``; raises TemplateSyntaxError naming the line and column."""
        left, right = delims
        if not left or not right:
            raise ValueError("template delimiters must not be empty")
        source = _Source(text)
        items = _lex(source, left, right)
        nodes = _Parser(source, items, left, right).parse()
        return cls(text, (left, right), nodes)

    def render(self, context: Mapping[str, object]) -> str:
        """Execute with ``context`` as the Go struct ``.``; raises TemplateExecError."""
        root = _Struct(context)
        executor = _Executor(_Source(self.text), root, [("$", root)])
        executor.walk(self._nodes, root)
        return "".join(executor.out)

    def root_field_names(self) -> tuple[str, ...]:
        """Fields read from the context itself (``.Series``, ``$.GroupBy``), sorted.

        Fields read where ``.`` has been rebound by ``with`` or ``range`` are not included, so a
        caller can check every name against the fields it will provide before rendering.
        """
        names = {
            operand.chain[0]
            for operand in _root_operands(self._nodes)
            if operand.chain
            and (operand.kind == "field" or (operand.kind == "var" and operand.name == "$"))
        }
        return tuple(sorted(names))


def _root_operands(nodes: Sequence[_Node]) -> Iterator[_Operand]:
    for node in nodes:
        if isinstance(node, _PrintNode):
            yield from _pipeline_operands(node.pipe)
        elif isinstance(node, _ControlNode):
            yield from _pipeline_operands(node.pipe)
            if node.kind == "if":
                yield from _root_operands(node.body)
            else:
                yield from _dollar_operands(node.body)
            if node.else_body is not None:
                yield from _root_operands(node.else_body)


def _dollar_operands(nodes: Sequence[_Node]) -> Iterator[_Operand]:
    """Only ``$``-rooted operands: inside with/range ``.`` is something else."""
    for node in nodes:
        if isinstance(node, _PrintNode | _ControlNode):
            for operand in _pipeline_operands(node.pipe):
                if operand.kind == "var":
                    yield operand
        if isinstance(node, _ControlNode):
            yield from _dollar_operands(node.body)
            if node.else_body is not None:
                yield from _dollar_operands(node.else_body)


def _pipeline_operands(pipe: _Pipeline) -> Iterator[_Operand]:
    for command in pipe.commands:
        for operand in command.args:
            yield operand
            if operand.pipe is not None:
                yield from _pipeline_operands(operand.pipe)
