"""Go text/template subset: printing like Go, builtins, control flow, errors with positions."""

from __future__ import annotations

import pytest

from adapter.gotemplate import (
    DEFAULT_DELIMS,
    RULES_DELIMS,
    Template,
    TemplateExecError,
    TemplateSyntaxError,
    go_format,
    go_quote,
)

# The arguments prometheus-adapter gives a metricsQuery template (queryTemplateArgs).
ARGS: dict[str, object] = {
    "Series": "http_requests_total",
    "LabelMatchers": 'namespace="ns",pod=~"a|b"',
    "LabelValuesByName": {"pod": "a|b", "namespace": "ns"},
    "GroupBy": "pod,container",
    "GroupBySlice": ["pod", "container"],
}

RENDER_CASES = [
    ("literal", "sum(x)", "sum(x)"),
    (
        "fields",
        "<<.Series>>{<<.LabelMatchers>>} by (<<.GroupBy>>)",
        'http_requests_total{namespace="ns",pod=~"a|b"} by (pod,container)',
    ),
    ("slice prints like Go", "<<.GroupBySlice>>", "[pod container]"),
    ("map prints sorted like Go", "<<.LabelValuesByName>>", "map[namespace:ns pod:a|b]"),
    ("index map", '<<index .LabelValuesByName "pod">>', "a|b"),
    ("index missing key gives the zero value", '[<<index .LabelValuesByName "x">>]', "[]"),
    ("index slice", "<<index .GroupBySlice 1>>", "container"),
    ("nested field on map", "<<.LabelValuesByName.namespace>>", "ns"),
    ("missing map key prints no value", "<<.LabelValuesByName.x>>", "<no value>"),
    ("nested index", '<<index .Nested "a" "b">>', "deep"),
    ("printf", '<<printf "%s[%d]%q" .Series 5 "x">>', 'http_requests_total[5]"x"'),
    ("pipeline into printf", '<<.GroupBy | printf "by (%s)">>', "by (pod,container)"),
    ("parenthesized", '<<printf "%s" (index .LabelValuesByName "pod")>>', "a|b"),
    ("len", "<<len .GroupBySlice>> <<len .Series>>", "2 19"),
    ("slice builtin", "<<slice .Series 0 4>>", "http"),
    ("trim markers", "a  <<- .GroupBy ->>  \n b", "apod,containerb"),
    ("minus without space is a number", "<<-3>>", "-3"),
    ("comment", "a<</* note */>>b", "ab"),
    ("trimmed comment", "a <<- /* note */ ->> b", "ab"),
    ("if true", "<<if .Series>>yes<<else>>no<<end>>", "yes"),
    ("if empty", "<<if .Empty>>yes<<else>>no<<end>>", "no"),
    ("else if", '<<if .Empty>>1<<else if eq .Series "x">>2<<else>>3<<end>>', "3"),
    ("range slice", "<<range .GroupBySlice>>[<<.>>]<<end>>", "[pod][container]"),
    (
        "range map sorted",
        "<<range $k, $v := .LabelValuesByName>><<$k>>=<<$v>>;<<end>>",
        "namespace=ns;pod=a|b;",
    ),
    (
        "range index and value",
        "<<range $i, $v := .GroupBySlice>><<$i>><<$v>><<end>>",
        "0pod1container",
    ),
    ("range else", "<<range .EmptyList>>x<<else>>none<<end>>", "none"),
    ("range break", "<<range .GroupBySlice>><<.>><<break>><<end>>", "pod"),
    (
        "range continue",
        '<<range .GroupBySlice>><<if eq . "pod">><<continue>><<end>><<.>><<end>>',
        "container",
    ),
    ("with", "<<with .LabelValuesByName>><<.pod>><<end>>", "a|b"),
    ("with else", "<<with .Empty>>x<<else>>empty<<end>>", "empty"),
    (
        "root variable inside with",
        "<<with .LabelValuesByName>><<$.Series>><<end>>",
        "http_requests_total",
    ),
    ("variables", '<<$s := .Series>><<$s = "y">><<$s>>', "y"),
    ("and or not", '<<and 1 0>> <<or 0 "" "x">> <<not .Empty>>', "0 x true"),
    ("comparisons", '<<eq 1 2 1>> <<ne "a" "b">> <<lt 1 2>> <<ge 2.5 2.5>>', "true true true true"),
    ("print spacing", '<<print 1 2 "a" 3>> <<println "x" 1>>', "1 2a3 x 1\n"),
    (
        "escapers",
        '<<html "<a&\'>">> <<js "a\'b<">> <<urlquery "a b&c">>',
        "&lt;a&amp;&#39;&gt; a\\'b\\u003C a+b%26c",
    ),
    (
        "numbers and bools",
        "<<1.5>> <<1e6>> <<100000.0>> <<0x1F>> <<true>> <<'a'>>",
        "1.5 1e+06 100000 31 true 97",
    ),
    ("raw string", "<<`a\\n`>>", "a\\n"),
    ("nil prints", "<<.Nil>>", "<nil>"),
]


@pytest.mark.parametrize(
    ("template", "expected"), [c[1:] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES]
)
def test_render(template: str, expected: str) -> None:
    context = {
        **ARGS,
        "Empty": "",
        "EmptyList": [],
        "Nested": {"a": {"b": "deep"}},
        "Nil": None,
    }
    assert Template.parse(template, RULES_DELIMS).render(context) == expected


def test_default_delimiters_and_parse_once_render_many() -> None:
    template = Template.parse("{{.A}}-{{.B}}", DEFAULT_DELIMS)
    assert [template.render({"A": i, "B": "x"}) for i in range(3)] == ["0-x", "1-x", "2-x"]


SYNTAX_ERRORS = [
    ("unclosed action", "sum(<<.Series)", 1, 5, "unclosed action"),
    ("unknown function", '<<join .GroupBySlice ",">>', 1, 3, 'function "join" not defined'),
    ("end without if", "x<<end>>", 1, 2, "unexpected <<end>>"),
    ("if without end", "<<if .A>>x", 1, 3, "has no <<end>>"),
    ("missing pipeline", "<<if>>x<<end>>", 1, 3, "missing value for if"),
    ("position on a later line", "sum(\n  <<.A>>\n  <<)>>\n", 3, 5, "unexpected right paren"),
    ("argument to a field", "<<.A .B>>", 1, 6, "can't give argument to non-function .A"),
    ("undefined variable", "<<$x>>", 1, 3, 'undefined variable "$x"'),
    ("break outside range", "<<break>>", 1, 3, "outside <<range>>"),
    ("unterminated string", '<<printf "abc>>', 1, 10, "unterminated quoted string"),
    ("define not supported", '<<define "x">>y<<end>>', 1, 3, "not supported"),
    ("bad escape", '<<"\\q">>', 1, 3, "unknown escape sequence"),
    ("pipe into a field", "<<.A | .B>>", 1, 8, "non executable command in pipeline stage"),
]


@pytest.mark.parametrize(
    ("template", "line", "column", "message"),
    [c[1:] for c in SYNTAX_ERRORS],
    ids=[c[0] for c in SYNTAX_ERRORS],
)
def test_syntax_errors_name_the_position(
    template: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        Template.parse(template, RULES_DELIMS)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert message in caught.value.message


EXEC_ERRORS = [
    (
        "missing field like Go",
        "x <<.Seriess>>",
        1,
        5,
        "can't evaluate field Seriess in type context (fields: A, Nil, Series)",
    ),
    ("field of a string", "<<.Series.X>>", 1, 3, "can't evaluate field X in type string"),
    ("field of nil", "<<.Nil.X>>", 1, 3, "nil pointer evaluating .X"),
    ("index out of range", "\n<<index .A 3>>", 2, 3, "index out of range: 3"),
    ("incompatible comparison", "<<lt 1 2.5>>", 1, 3, "incompatible types for comparison"),
    ("len of a number", "<<len 3>>", 1, 3, "len of type int"),
]


@pytest.mark.parametrize(
    ("template", "line", "column", "message"),
    [c[1:] for c in EXEC_ERRORS],
    ids=[c[0] for c in EXEC_ERRORS],
)
def test_exec_errors_name_the_position(template: str, line: int, column: int, message: str) -> None:
    parsed = Template.parse(template, RULES_DELIMS)
    with pytest.raises(TemplateExecError) as caught:
        parsed.render({"Series": "s", "A": ["x"], "Nil": None})
    assert (caught.value.line, caught.value.column) == (line, column)
    assert message in caught.value.message


FORMAT_CASES = [
    ("string", "%s", ("a",), "a"),
    ("quoted", "%q", ('a"b\n\x00é',), '"a\\"b\\n\\x00é"'),
    ("value of slice", "%v", (["a", "b"],), "[a b]"),
    ("value of map", "%v", ({"b": 1, "a": 2},), "map[a:2 b:1]"),
    ("int widths", "%5d|%-4d|%05d", (42, 7, -3), "   42|7   |-0003"),
    ("float", "%.2f %g %e", (3.14159, 0.5, 1234.5), "3.14 0.5 1.234500e+03"),
    ("percent", "100%%", (), "100%"),
    ("missing argument", "%s %d", ("a",), "a %!d(MISSING)"),
    ("extra argument", "%s", ("a", 1), "a%!(EXTRA int=1)"),
    ("wrong type", "%d", ("x",), "%!d(string=x)"),
    ("hex", "%x %X", (255, "hi"), "ff 6869"),
]


@pytest.mark.parametrize(
    ("fmt", "args", "expected"), [c[1:] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES]
)
def test_go_format(fmt: str, args: tuple[object, ...], expected: str) -> None:
    assert go_format(fmt, *args) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", '"plain"'),
        ("tab\there", '"tab\\there"'),
        ("\x7f", '"\\x7f"'),
        ("\u2028", '"\\u2028"'),
    ],
    ids=["plain", "tab", "del", "line-separator"],
)
def test_go_quote(text: str, expected: str) -> None:
    assert go_quote(text) == expected


@pytest.mark.parametrize(
    ("template", "fields"),
    [
        ("<<.Series>>{<<.LabelMatchers>>}", ("LabelMatchers", "Series")),
        (
            "<<with .LabelValuesByName>><<.pod>><<$.GroupBy>><<end>>",
            ("GroupBy", "LabelValuesByName"),
        ),
        ("<<range .GroupBySlice>><<.>><<end>><<if .X>><<.Y>><<end>>", ("GroupBySlice", "X", "Y")),
    ],
    ids=["plain", "with rebinds dot", "range and if"],
)
def test_root_field_names(template: str, fields: tuple[str, ...]) -> None:
    assert Template.parse(template, RULES_DELIMS).root_field_names() == fields
