"""Quantity, duration and timestamp formatting against apimachinery's and Go's own cases."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.quantity import (
    INT64_MAX,
    Quantity,
    QuantityFormat,
    QuantityParseError,
    QuantityRangeError,
    cpu_quantity,
    format_duration,
    format_duration_ns,
    format_timestamp,
    memory_quantity,
    milli_quantity,
    parse_quantity,
)

DEC = QuantityFormat.DECIMAL_SI
BIN = QuantityFormat.BINARY_SI
EXP = QuantityFormat.DECIMAL_EXPONENT

# (unscaled, exponent, format) -> canonical string; apimachinery's TestQuantityString cases plus
# the samples quoted in the reference notes.
CANONICAL_CASES = [
    (1024**3, 0, BIN, "1Gi"),
    (300 * 1024**2, 0, BIN, "300Mi"),
    (6 * 1024, 0, BIN, "6Ki"),
    (1001 * 1024**3, 0, BIN, "1001Gi"),
    (1024**4, 0, BIN, "1Ti"),
    (5, 0, BIN, "5"),
    (500, -3, BIN, "500m"),
    (1234567, -3, BIN, "1234567m"),
    (1025, 0, BIN, "1025"),
    (1536, 0, BIN, "1536"),
    (2048, 0, BIN, "2Ki"),
    (1023, 0, BIN, "1023"),
    (-1023, 0, BIN, "-1023"),
    (-2048, 0, BIN, "-2Ki"),
    (3 * 1024**3 // 2, 0, BIN, "1536Mi"),
    (45735936, 0, BIN, "44664Ki"),
    (12345678, 0, BIN, "12345678"),
    (1, 9, DEC, "1G"),
    (1000, 6, DEC, "1G"),
    (1000000, 3, DEC, "1G"),
    (1000000000, 0, DEC, "1G"),
    (1, -3, DEC, "1m"),
    (80, -3, DEC, "80m"),
    (1080, -3, DEC, "1080m"),
    (108, -2, DEC, "1080m"),
    (10800, -4, DEC, "1080m"),
    (300, 6, DEC, "300M"),
    (1, 12, DEC, "1T"),
    (1234567, 6, DEC, "1234567M"),
    (3, 3, DEC, "3k"),
    (15, -1, DEC, "1500m"),
    (5, -1, DEC, "500m"),
    (1234000, 0, DEC, "1234k"),
    (123456789, -9, DEC, "123456789n"),
    (1000000, -9, DEC, "1m"),
    (2000000000, -9, DEC, "2"),
    (1, 18, DEC, "1E"),
    (1, 21, DEC, "1e21"),
    (0, 0, DEC, "0"),
    (0, 0, BIN, "0"),
    (0, 0, EXP, "0"),
    (0, -9, DEC, "0"),
    (1, 9, EXP, "1e9"),
    (1, -3, EXP, "1e-3"),
    (1, -9, EXP, "1e-9"),
    (80, -3, EXP, "80e-3"),
    (300, 6, EXP, "300e6"),
    (1, 3, EXP, "1e3"),
    (13, 5, EXP, "1300e3"),
    (1, 0, EXP, "1"),
    (-15, -1, DEC, "-1500m"),
]


@pytest.mark.parametrize(
    ("unscaled", "exponent", "value_format", "expected"),
    CANONICAL_CASES,
    ids=[f"{u}e{e}-{f.value}" for u, e, f, _ in CANONICAL_CASES],
)
def test_canonical_string_matches_apimachinery(
    unscaled: int, exponent: int, value_format: QuantityFormat, expected: str
) -> None:
    assert str(Quantity(unscaled, exponent, value_format)) == expected


CPU_CASES = [
    (0.002459003, "2459003n"),
    (0.110691045, "110691045n"),
    (0.231053413, "231053413n"),
    (0.000967539, "967539n"),
    (0.025366453, "25366453n"),
    (0.000215384, "215384n"),
    (0.522536968, "522536968n"),
    (0.001, "1m"),
    (0.25, "250m"),
    (0.128, "128m"),
    (2, "2"),
    (2.0, "2"),
    (0, "0"),
    (0.0, "0"),
    (1.9999999999, "1999999999n"),
    (4e-10, "0"),
    (1.5e-9, "1n"),
    (64, "64"),
    (12.436, "12436m"),
    (Decimal("0.000000001"), "1n"),
    (9.3e9, "9300M"),  # beyond int64 nanocores: metrics-server drops a digit
]


@pytest.mark.parametrize(("cores", "expected"), CPU_CASES, ids=[repr(c) for c, _ in CPU_CASES])
def test_cpu_is_truncated_nanocores(cores: float, expected: str) -> None:
    assert str(cpu_quantity(cores)) == expected


MEMORY_CASES = [
    (45735936, "44664Ki"),
    (12533760, "12240Ki"),
    (1198508 * 1024, "1198508Ki"),
    (801112 * 1024, "801112Ki"),
    (1972348 * 1024, "1972348Ki"),
    (4620 * 1024, "4620Ki"),
    (884 * 1024**2, "884Mi"),
    (12345678, "12345678"),
    (1234567, "1234567"),
    (1023, "1023"),
    (1024, "1Ki"),
    (512.7, "512"),
    (45735936.0, "44664Ki"),
    (0, "0"),
    (7 * 1024**6, "7Ei"),
    (2**63, "9223372036854775800"),
    (INT64_MAX, "9223372036854775807"),
    (2**64 - 1, "18446744073709551610"),
]


@pytest.mark.parametrize(("size", "expected"), MEMORY_CASES, ids=[repr(s) for s, _ in MEMORY_CASES])
def test_memory_is_binary_si_bytes(size: float, expected: str) -> None:
    assert str(memory_quantity(size)) == expected


MILLI_CASES = [
    (1.5, "1500m"),
    (2.0, "2"),
    (16.5, "16500m"),
    (42, "42"),
    (0.0, "0"),
    (-1.5, "-1500m"),
    (0.0015, "1m"),
    (0.0009, "0"),
    (1.005, "1004m"),  # 1.005 * 1000.0 is 1004.9999999999999 in float64, as in Go
    (123456.789, "123456789m"),
    (1e15, "1P"),
]


@pytest.mark.parametrize(("value", "expected"), MILLI_CASES, ids=[repr(v) for v, _ in MILLI_CASES])
def test_milli_quantity_truncates_like_int64_conversion(value: float, expected: str) -> None:
    assert str(milli_quantity(value)) == expected


RANGE_ERRORS = [
    (cpu_quantity, math.nan, "finite"),
    (cpu_quantity, math.inf, "finite"),
    (cpu_quantity, -0.5, "negative"),
    (cpu_quantity, 2e10, "uint64"),
    (memory_quantity, math.nan, "finite"),
    (memory_quantity, -1, "negative"),
    (memory_quantity, 2**64, "uint64"),
    (memory_quantity, Decimal("NaN"), "finite"),
    (milli_quantity, math.nan, "drop the sample"),
    (milli_quantity, -math.inf, "drop the sample"),
    (milli_quantity, 1e17, "int64"),
]


@pytest.mark.parametrize(
    ("builder", "value", "message"),
    RANGE_ERRORS,
    ids=[f"{b.__name__}-{v!r}" for b, v, _ in RANGE_ERRORS],
)
def test_unrepresentable_values_raise_with_reason(
    builder: object, value: float, message: str
) -> None:
    assert callable(builder)
    with pytest.raises(QuantityRangeError, match=message):
        builder(value)


PARSE_CASES = [
    ("0", "0", DEC),
    ("1.5", "1500m", DEC),
    ("0.5", "500m", DEC),
    ("1000", "1k", DEC),
    ("1080m", "1080m", DEC),
    ("1e3", "1e3", EXP),
    ("1E6", "1e6", EXP),
    ("1.3E+6", "1300e3", EXP),
    ("108e-2", "1080e-3", EXP),
    ("1E", "1E", DEC),
    ("1000E", "1e21", DEC),
    ("1.5Gi", "1536Mi", BIN),
    ("1024Mi", "1Gi", BIN),
    ("1Ki", "1Ki", BIN),
    (".001Ki", "1024m", BIN),  # 1.024 is not below 1, so it stays BinarySI
    (".000001Ki", "1024u", DEC),
    (".000000001Ki", "1024n", DEC),
    (".000000000001Ki", "2n", DEC),
    ("9Ei", "9223372036854775807", BIN),
    ("-9Ei", "-9223372036854775807", BIN),
    ("3.001n", "4n", DEC),
    ("-3.001n", "-4n", DEC),
    ("0.0000000001", "1n", DEC),
    ("1000M", "1G", DEC),
    ("2459003n", "2459003n", DEC),
    ("44664Ki", "44664Ki", BIN),
    ("+1", "1", DEC),
    ("1.G", "1G", DEC),
    (".5", "500m", DEC),
    ("-0", "0", DEC),
]


@pytest.mark.parametrize(
    ("text", "canonical", "value_format"), PARSE_CASES, ids=[t for t, _, _ in PARSE_CASES]
)
def test_parse_then_emit(text: str, canonical: str, value_format: QuantityFormat) -> None:
    parsed = parse_quantity(text)
    assert (str(parsed), parsed.format) == (canonical, value_format)


BAD_TEXT = ["", " 1", "1 ", "1i", "0.1mi", "1.1.M", ".", "1e", "1K", "abc", "1e99999", "--1"]


@pytest.mark.parametrize("text", BAD_TEXT, ids=[repr(t) for t in BAD_TEXT])
def test_parse_rejects_malformed_text(text: str) -> None:
    with pytest.raises(QuantityParseError, match=r"quantit|exponent|digits"):
        parse_quantity(text)


READ_CASES = [
    ("1500u", 2, 1),  # the HPA reads with ceiling semantics
    ("1500m", 1500, 2),
    ("2459003n", 3, 1),
    ("-1500u", -2, -1),
    ("44664Ki", 45735936000, 45735936),
    ("0", 0, 0),
]


@pytest.mark.parametrize(("text", "milli", "whole"), READ_CASES, ids=[t for t, _, _ in READ_CASES])
def test_milli_value_and_value_round_away_from_zero(text: str, milli: int, whole: int) -> None:
    parsed = parse_quantity(text)
    assert (parsed.milli_value(), parsed.value()) == (milli, whole)


quantities = st.builds(
    Quantity,
    unscaled=st.integers(min_value=-(10**20), max_value=10**20),
    exponent=st.integers(min_value=-9, max_value=12),
    format=st.sampled_from([DEC, EXP]),
) | st.builds(
    Quantity,
    unscaled=st.integers(min_value=-INT64_MAX, max_value=INT64_MAX),
    exponent=st.just(0),
    format=st.just(BIN),
)


@given(quantities)
def test_canonical_text_parses_back_to_the_same_value(quantity: Quantity) -> None:
    text = str(quantity)
    parsed = parse_quantity(text)
    assert parsed.as_fraction() == quantity.as_fraction()
    # A BinarySI value that is not a multiple of 1024 prints without a suffix, and a suffix-less
    # string parses as DecimalSI (as in apimachinery), so only same-format texts must match.
    if parsed.format == quantity.format:
        assert str(parsed) == text


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_memory_round_trips_exactly(size: int) -> None:
    assert parse_quantity(str(memory_quantity(size))).value() == size


@given(st.integers(min_value=0, max_value=10**15))
def test_nanocores_round_trip_exactly(nanocores: int) -> None:
    parsed = parse_quantity(str(cpu_quantity(Decimal(nanocores).scaleb(-9))))
    assert parsed.as_fraction() == Fraction(nanocores, 10**9)


# Values stay within int64, where parse_quantity does not cap binary text.
binary_quantities = st.builds(
    Quantity,
    unscaled=st.integers(min_value=-INT64_MAX, max_value=INT64_MAX),
    exponent=st.integers(min_value=-9, max_value=0),
    format=st.just(BIN),
) | st.builds(
    Quantity,
    unscaled=st.integers(min_value=-(10**12), max_value=10**12),
    exponent=st.integers(min_value=0, max_value=6),
    format=st.just(BIN),
)


@given(binary_quantities)
def test_binary_si_uses_a_binary_form_only_for_whole_values_from_1024(quantity: Quantity) -> None:
    value = quantity.as_fraction()
    text = str(quantity)
    if value.denominator == 1 and abs(value) >= 1024:
        assert parse_quantity(text).as_fraction() == value
        assert text.endswith("i") == (value % 1024 == 0)
        assert "." not in text
        assert "e" not in text
    else:
        assert text == str(Quantity(quantity.unscaled, quantity.exponent, DEC))


def _outcome(builder: Callable[[float | Decimal], Quantity], value: float | Decimal) -> object:
    try:
        quantity = builder(value)
    except QuantityRangeError:
        return QuantityRangeError
    return quantity, str(quantity)


# Where the float fast path could slip: signs, subnormals, the 2^53 and repr fixed/exponent
# switches (1e16, 1e-4), nanocore and byte rounding edges, and the int64/uint64 limits.
BOUNDARY_FLOATS = [
    -0.0,
    0.0,
    5e-324,
    2.2250738585072014e-308,
    sys.float_info.max,
    1e-10,
    9.99999999e-10,
    1e-9,
    1.0000000000000002e-09,
    1e-4,
    9.999999999999999e-05,
    0.1,
    0.3,
    1.9999999999,
    1023.9999999999999,
    1024.0,
    1e15,
    1e16,
    9999999999999998.0,
    float(2**53 - 1),
    float(2**53),
    float(2**53 + 2),
    9.223372036854775e9,
    9.223372036854776e9,
    1.8446744073709552e10,
    float(2**63),
    float(2**64),
    1.8446744073709550e19,
    -1e-300,
    -1.0,
    math.inf,
    -math.inf,
    math.nan,
]
BUILDERS = [cpu_quantity, memory_quantity]


@pytest.mark.parametrize("builder", BUILDERS, ids=[b.__name__ for b in BUILDERS])
@pytest.mark.parametrize("value", BOUNDARY_FLOATS, ids=[repr(v) for v in BOUNDARY_FLOATS])
def test_float_fast_path_matches_the_exact_decimal_path_at_boundaries(
    builder: Callable[[float | Decimal], Quantity], value: float
) -> None:
    # A Decimal always takes the exact Fraction path; a float takes the fast one.
    assert _outcome(builder, value) == _outcome(builder, Decimal(repr(value)))


@pytest.mark.parametrize("builder", BUILDERS, ids=[b.__name__ for b in BUILDERS])
@settings(max_examples=2000)
@given(
    value=st.floats()
    | st.floats(min_value=0, max_value=64)
    | st.floats(min_value=0, max_value=2**40)
    | st.floats(min_value=1e-12, max_value=1e-3)
    | st.integers(min_value=0, max_value=2**66).map(float)
    | st.integers(min_value=0, max_value=10**12).map(lambda nanos: nanos / 10**9)
)
def test_float_fast_path_matches_the_exact_decimal_path(
    builder: Callable[[float | Decimal], Quantity], value: float
) -> None:
    assert _outcome(builder, value) == _outcome(builder, Decimal(repr(value)))


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_milli_quantity_round_trips_integral_millis(millis: int) -> None:
    assert parse_quantity(str(milli_quantity(millis / 1000))).milli_value() == int(
        (millis / 1000) * 1000.0
    )


DURATION_CASES = [
    (30, "30s"),
    (60, "1m0s"),
    (17.913, "17.913s"),
    (60.996, "1m0.996s"),
    (59.889, "59.889s"),
    (15.012, "15.012s"),
    (20.035, "20.035s"),
    (300, "5m0s"),
    (240, "4m0s"),
    (0.5, "500ms"),
    (0.0015, "1.5ms"),
    (1.5e-6, "1.5µs"),
    (1e-9, "1ns"),
    (0, "0s"),
    (3600, "1h0m0s"),
    (3725.5, "1h2m5.5s"),
    (-90, "-1m30s"),
    (timedelta(minutes=5), "5m0s"),
    (timedelta(seconds=1, microseconds=996000), "1.996s"),
    (Decimal("0.000000000"), "0s"),
]


@pytest.mark.parametrize(
    ("seconds", "expected"), DURATION_CASES, ids=[repr(s) for s, _ in DURATION_CASES]
)
def test_duration_strings_match_go(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


@pytest.mark.parametrize(
    ("nanoseconds", "expected"),
    [(2**63 - 1, "2562047h47m16.854775807s"), (-(2**63), "-2562047h47m16.854775808s")],
    ids=["max", "min"],
)
def test_duration_extremes_match_go(nanoseconds: int, expected: str) -> None:
    assert format_duration_ns(nanoseconds) == expected


def test_duration_beyond_int64_is_rejected() -> None:
    with pytest.raises(QuantityRangeError, match="Duration"):
        format_duration(10**11)


TIMESTAMP_CASES = [
    (datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), "2024-05-01T12:00:00Z"),
    (datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=UTC), "2024-05-01T12:00:00Z"),
    (datetime(2024, 5, 1, 14, 0, 5, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T12:00:05Z"),
    (1714564800, "2024-05-01T12:00:00Z"),
    (1714564800.999, "2024-05-01T12:00:00Z"),
    (1628850266.0, "2021-08-13T10:24:26Z"),
    (0, "1970-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(
    ("moment", "expected"), TIMESTAMP_CASES, ids=[repr(m) for m, _ in TIMESTAMP_CASES]
)
def test_timestamps_are_rfc3339_seconds_utc(moment: datetime | float, expected: str) -> None:
    assert format_timestamp(moment) == expected


@pytest.mark.parametrize("moment", [datetime(2024, 5, 1), math.nan], ids=["naive-datetime", "nan"])
def test_timestamps_without_a_zone_or_value_are_rejected(moment: datetime | float) -> None:
    with pytest.raises(QuantityRangeError, match=r"time zone|finite"):
        format_timestamp(moment)
