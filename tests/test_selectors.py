"""Label and field selectors parse, validate and match like apimachinery's."""

from __future__ import annotations

import pytest

from adapter.selectors import (
    FieldRequirement,
    Operator,
    Requirement,
    SelectorError,
    label_selector_from_labels,
    parse_field_selector,
    parse_label_selector,
)

R = Requirement
EQ, EQ2, NE = Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS
IN, NOTIN = Operator.IN, Operator.NOT_IN
EXISTS, NOT_EXISTS = Operator.EXISTS, Operator.DOES_NOT_EXIST
GT, LT = Operator.GREATER_THAN, Operator.LESS_THAN

PARSE_CASES = [
    ("equals", "a=b", [R("a", EQ, ("b",))]),
    ("double_equals", "a==b", [R("a", EQ2, ("b",))]),
    ("not_equals", "a!=b", [R("a", NE, ("b",))]),
    ("in", "a in (y,x)", [R("a", IN, ("x", "y"))]),
    ("notin", "a notin (x)", [R("a", NOTIN, ("x",))]),
    ("exists", "a", [R("a", EXISTS)]),
    ("does_not_exist", "!a", [R("a", NOT_EXISTS)]),
    ("greater_than", "a>1", [R("a", GT, ("1",))]),
    ("less_than", "a<10", [R("a", LT, ("10",))]),
    ("empty_selector", "", []),
    ("only_whitespace", " \t\n", []),
    ("empty_value", "x=", [R("x", EQ, ("",))]),
    ("empty_value_then_more", "x=,z= ", [R("x", EQ, ("",)), R("z", EQ, ("",))]),
    (
        "whitespace_everywhere",
        "  a  =  b ,  c  in ( d , e )  ",
        [R("a", EQ, ("b",)), R("c", IN, ("d", "e"))],
    ),
    ("tabs_and_newlines", "a\t!=\nb", [R("a", NE, ("b",))]),
    ("sorted_by_key", "z=1,a=2,m", [R("a", EQ, ("2",)), R("m", EXISTS), R("z", EQ, ("1",))]),
    ("duplicate_keys_keep_order", "x=b,x=a", [R("x", EQ, ("b",)), R("x", EQ, ("a",))]),
    ("values_sorted_and_unique", "a in (c,b,c,a)", [R("a", IN, ("a", "b", "c"))]),
    ("empty_set_is_empty_value", "z notin ()", [R("z", NOTIN, ("",))]),
    ("empty_slots_in_set", "x in (foo,,baz)", [R("x", IN, ("", "baz", "foo"))]),
    ("leading_comma_in_set", "x in (,a)", [R("x", IN, ("", "a"))]),
    ("trailing_comma_in_set", "x in (a,)", [R("x", IN, ("", "a"))]),
    ("keywords_as_values", "a in (in,notin)", [R("a", IN, ("in", "notin"))]),
    ("keyword_as_exact_value", "a=in", [R("a", EQ, ("in",))]),
    ("prefixed_key", "app.kubernetes.io/name=web", [R("app.kubernetes.io/name", EQ, ("web",))]),
    ("value_chars", "a=A-b_c.9", [R("a", EQ, ("A-b_c.9",))]),
    (
        "apimachinery_example",
        "x in (foo,,baz),y,z notin ()",
        [R("x", IN, ("", "baz", "foo")), R("y", EXISTS), R("z", NOTIN, ("",))],
    ),
    ("gt_and_lt", "x>1,z<5", [R("x", GT, ("1",)), R("z", LT, ("5",))]),
]


@pytest.mark.parametrize(
    ("text", "requirements"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES]
)
def test_parse_label_selector(text: str, requirements: list[Requirement]) -> None:
    assert list(parse_label_selector(text).requirements) == requirements


PARSE_ERRORS = [
    ("double_pipe", "x=a||y=b", "value 'a||y': a label value"),
    ("double_equals_twice", "x==a==b", "'==' at position 4, expected: ',' or end of string"),
    ("not_with_operator", "!x=a", "'=' at position 2"),
    ("gt_not_integer", "x<a", "must be an integer"),
    ("gt_negative_not_a_label_value", "x>-1", "a label value must be empty or consist of"),
    ("gt_out_of_int64", "x>99999999999999999999", "must be an integer"),
    ("unclosed_set", "a in (b", "found end of string, expected: ',' or ')'"),
    ("set_without_parens", "a in b", "found 'b' at position 5, expected: '('"),
    ("space_inside_value_list", "a in (b c)", "found 'c' at position 8, expected: ',' or ')'"),
    ("missing_comma", "a=b c=d", "found 'c' at position 4, expected: ',' or end of string"),
    ("leading_comma", ",a", "found ',' at position 0"),
    ("trailing_comma", "a,", "expected: a key after ','"),
    ("double_comma", "a,,b", "expected: a key after ','"),
    ("operator_first", "=a", "found '=' at position 0"),
    ("unknown_operator", "a=>b", "found '>' at position 2, expected: a value"),
    ("lonely_bang_operator", "a ! b", "found '!' at position 2"),
    ("value_with_slash", "a=b/c", "a label value must be empty or consist of"),
    ("value_too_long", "a=" + "v" * 64, "must be no more than 63 characters"),
    ("value_bad_start", "a=-b", "must start and end with an alphanumeric"),
    ("value_unicode", "a=ü", "a label value must be empty or consist of"),
    ("key_uppercase_prefix", "Example.com/a=b", "prefix part must be a lowercase DNS subdomain"),
    ("key_empty_prefix", "/a=b", "prefix part must not be empty"),
    ("key_empty_name", "example.com/=b", "name part must not be empty"),
    ("key_two_slashes", "a/b/c=d", "optional DNS subdomain prefix"),
    ("key_too_long", "k" * 64 + "=v", "name part must be no more than 63 characters"),
    ("key_bad_chars", "a*b=c", "name part must consist of alphanumerics"),
    ("in_value_invalid", "a in (b,c*)", "value 'c*'"),
    ("exact_then_paren", "a=(b)", "found '(' at position 2, expected: a value"),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in PARSE_ERRORS], ids=[c[0] for c in PARSE_ERRORS]
)
def test_parse_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"invalid label selector {text!r}")


STRING_CASES = [
    ("exact", "a=b", "a=b"),
    ("double", "a==b", "a==b"),
    ("set_sorted", "x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("not_exists", "!a", "!a"),
    ("gt_lt", "b<2,a>1", "a>1,b<2"),
    ("whitespace_normalised", "  a !=  b ", "a!=b"),
]


@pytest.mark.parametrize(
    ("text", "canonical"), [c[1:] for c in STRING_CASES], ids=[c[0] for c in STRING_CASES]
)
def test_selector_string_form(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical
    assert parse_label_selector(canonical) == parse_label_selector(text)


MATCH_CASES = [
    ("equals_hit", "a=b", {"a": "b"}, True),
    ("equals_miss", "a=b", {"a": "c"}, False),
    ("equals_absent", "a=b", {}, False),
    ("not_equals_absent_matches", "a!=b", {}, True),
    ("not_equals_other", "a!=b", {"a": "c"}, True),
    ("not_equals_same", "a!=b", {"a": "b"}, False),
    ("in_hit", "a in (b,c)", {"a": "c"}, True),
    ("in_absent", "a in (b,c)", {}, False),
    ("notin_absent_matches", "a notin (b)", {}, True),
    ("notin_hit", "a notin (b)", {"a": "b"}, False),
    ("exists_hit", "a", {"a": ""}, True),
    ("exists_miss", "a", {"b": "x"}, False),
    ("does_not_exist_hit", "!a", {"b": "x"}, True),
    ("does_not_exist_miss", "!a", {"a": ""}, False),
    ("gt_hit", "a>5", {"a": "6"}, True),
    ("gt_equal", "a>5", {"a": "5"}, False),
    ("gt_not_a_number", "a>5", {"a": "x"}, False),
    ("gt_absent", "a>5", {}, False),
    ("lt_hit", "a<5", {"a": "-3"}, True),
    ("empty_value_equals_empty", "a=", {"a": ""}, True),
    ("and_all", "a=b,c", {"a": "b", "c": "d"}, True),
    ("and_one_fails", "a=b,c", {"a": "b"}, False),
    ("everything", "", {"any": "thing"}, True),
]


@pytest.mark.parametrize(
    ("text", "labels", "expected"), [c[1:] for c in MATCH_CASES], ids=[c[0] for c in MATCH_CASES]
)
def test_label_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("key", "operator", "values", "message"),
    [
        ("a", EQ, (), "needs exactly one value"),
        ("a", EQ, ("b", "c"), "needs exactly one value"),
        ("a", IN, (), "needs at least one value"),
        ("a", EXISTS, ("b",), "takes no values"),
        ("a", GT, ("1", "2"), "needs exactly one value"),
        ("bad key", EQ, ("b",), "key 'bad key'"),
    ],
    ids=["eq_none", "eq_two", "in_none", "exists_values", "gt_two", "bad_key"],
)
def test_requirement_create_validates(
    key: str, operator: Operator, values: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SelectorError, match=message):
        Requirement.create(key, operator, values)


def test_selector_from_labels() -> None:
    selector = label_selector_from_labels({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert selector.matches({"a": "1", "b": "2", "c": "3"})
    with pytest.raises(SelectorError, match="a label value"):
        label_selector_from_labels({"a": "not valid!"})


# --- field selectors ---------------------------------------------------------------------------

F = FieldRequirement

FIELD_CASES = [
    ("equals", "metadata.name=x", [F("metadata.name", EQ, "x")]),
    ("double_equals", "metadata.name==x", [F("metadata.name", EQ, "x")]),
    ("not_equals", "metadata.namespace!=y", [F("metadata.namespace", NE, "y")]),
    (
        "two_terms_sorted_as_text",
        "metadata.namespace!=y,metadata.name=x",
        [F("metadata.name", EQ, "x"), F("metadata.namespace", NE, "y")],
    ),
    ("empty", "", []),
    ("empty_terms_skipped", ",metadata.name=x,", [F("metadata.name", EQ, "x")]),
    ("empty_value", "metadata.name=", [F("metadata.name", EQ, "")]),
    ("escaped_comma", "metadata.name=a\\,b", [F("metadata.name", EQ, "a,b")]),
    ("escaped_equals_backslash", "metadata.name=a\\=b\\\\", [F("metadata.name", EQ, "a=b\\")]),
    ("first_operator_wins", "a!=b", [F("a", NE, "b")]),
]


@pytest.mark.parametrize(
    ("text", "requirements"), [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
)
def test_parse_field_selector(text: str, requirements: list[FieldRequirement]) -> None:
    assert list(parse_field_selector(text).requirements) == requirements


FIELD_ERRORS = [
    ("no_operator", "metadata.name", "cannot understand term 'metadata.name'"),
    ("set_syntax", "metadata.name in (a)", "cannot understand term"),
    ("unescaped_equals", "metadata.name=a=b", "unescaped '=' in the value"),
    ("bad_escape", "metadata.name=a\\b", "invalid escape sequence '\\b'"),
    ("trailing_backslash", "metadata.name=a\\", "lone backslash"),
    ("no_field", "=x", "has no field name"),
    ("unsupported_field", "spec.nodeName=n1", "field 'spec.nodeName' is not supported"),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in FIELD_ERRORS], ids=[c[0] for c in FIELD_ERRORS]
)
def test_parse_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match="invalid field selector") as caught:
        parse_field_selector(text, allowed_fields={"metadata.name", "metadata.namespace"})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fields", "expected"),
    [
        ("metadata.name=x", {"metadata.name": "x"}, True),
        ("metadata.name=x", {"metadata.name": "y"}, False),
        ("metadata.name!=x", {}, True),
        ("metadata.name=", {}, True),
        ("metadata.name=x,metadata.namespace=ns", {"metadata.name": "x"}, False),
    ],
    ids=["equal", "differs", "not_equal_missing", "missing_is_empty", "and"],
)
def test_field_selector_matches(text: str, fields: dict[str, str], expected: bool) -> None:
    assert parse_field_selector(text).matches(fields) is expected


def test_field_selector_required_value_and_string() -> None:
    selector = parse_field_selector("metadata.name==a\\,b,metadata.namespace!=x")
    assert selector.required_value("metadata.name") == "a,b"
    assert selector.required_value("metadata.namespace") is None
    assert str(selector) == "metadata.name=a\\,b,metadata.namespace!=x"
    assert parse_field_selector(str(selector)) == selector
