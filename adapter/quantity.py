"""Kubernetes wire formats for numbers, durations and times, as apimachinery writes them.

Everything here is pure: values in, strings out. It reproduces
``k8s.io/apimachinery/pkg/api/resource.Quantity`` canonical strings (``CanonicalizeBytes``),
Go's ``time.Duration.String()`` and ``metav1.Time`` JSON, because the HPA and ``kubectl top``
decode these with the real Go code and any deviation is either rejected or read differently.

Values from Prometheus arrive as floats. They are converted through their shortest decimal
representation (``repr``), which is exactly the string Prometheus put in its JSON response, so
``0.002459003`` cores become ``2459003n`` and not ``2459002n`` from binary noise.

Exception tree::

    QuantityError (ValueError)      a value cannot become a Kubernetes quantity
    ├── QuantityParseError          text is not a valid quantity (parse_quantity)
    └── QuantityRangeError          NaN, infinite, negative where usage cannot be, or too large
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

# apimachinery keeps at most nanos; finer parsed values are rounded away from zero to 1n.
_NANO_EXPONENT = -9
# Bounds the exponent of parsed text so "1e999999999" cannot build a giant integer. Go's limit is
# int32; nothing real comes near 1000.
_MAX_PARSE_EXPONENT = 1000

_DECIMAL_SUFFIX_BY_EXPONENT = {
    -9: "n",
    -6: "u",
    -3: "m",
    0: "",
    3: "k",
    6: "M",
    9: "G",
    12: "T",
    15: "P",
    18: "E",
}
_DECIMAL_EXPONENT_BY_SUFFIX = {suffix: exp for exp, suffix in _DECIMAL_SUFFIX_BY_EXPONENT.items()}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_BINARY_POWER_BY_SUFFIX = {suffix: 10 * index for index, suffix in enumerate(_BINARY_SUFFIXES)}

_QUANTITY_RE = re.compile(
    r"(?P<sign>[+-]?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE]?)"
)


class QuantityError(ValueError):
    """A value cannot be written or read as a Kubernetes quantity."""


class QuantityParseError(QuantityError):
    """Text is not a valid Kubernetes quantity."""


class QuantityRangeError(QuantityError):
    """A number is NaN, infinite, negative where usage cannot be, or out of range."""


class QuantityFormat(StrEnum):
    """How a quantity prefers to be written (``resource.Format``)."""

    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact value ``unscaled * 10**exponent`` and its preferred format."""

    unscaled: int
    exponent: int
    format: QuantityFormat

    def as_fraction(self) -> Fraction:
        if self.exponent >= 0:
            return Fraction(self.unscaled * 10**self.exponent)
        return Fraction(self.unscaled, 10**-self.exponent)

    def canonical(self) -> str:
        """The string apimachinery emits for this quantity (``Quantity.String()``)."""
        return _canonical(self)

    def __str__(self) -> str:
        return _canonical(self)

    def milli_value(self) -> int:
        """``Quantity.MilliValue()``: value * 1000, rounded away from zero (the HPA reads this)."""
        return _round_away_from_zero(self.as_fraction() * 1000)

    def value(self) -> int:
        """``Quantity.Value()``: the value rounded away from zero (kubectl top reads memory so)."""
        return _round_away_from_zero(self.as_fraction())


def _round_away_from_zero(value: Fraction) -> int:
    magnitude = math.ceil(abs(value))
    return -magnitude if value < 0 else magnitude


def _canonical(quantity: Quantity) -> str:
    unscaled = quantity.unscaled
    if unscaled == 0:
        return "0"
    sign = "-" if unscaled < 0 else ""
    mantissa = abs(unscaled)
    exponent = quantity.exponent
    value_format = quantity.format
    if value_format is QuantityFormat.BINARY_SI:
        # Small or fractional binary values would lose precision in a binary suffix. Integer
        # arithmetic instead of Fractions: this runs once per number of a 5,000-pod answer.
        if exponent >= 0:
            whole, fractional = mantissa * 10**exponent, 0
        else:
            whole, fractional = divmod(mantissa, 10**-exponent)
        if whole >= 1024 and fractional == 0:
            return sign + _binary_digits(whole)
        value_format = QuantityFormat.DECIMAL_SI
    while mantissa >= 10 and mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    # Lower the exponent to a multiple of three, moving digits into the mantissa.
    remainder = exponent % 3
    mantissa *= 10**remainder
    exponent -= remainder
    suffix = _DECIMAL_SUFFIX_BY_EXPONENT.get(exponent)
    if value_format is not QuantityFormat.DECIMAL_SI or suffix is None:
        # DecimalSI has no suffix beyond E (10^18); current apimachinery falls back to "e<n>".
        suffix = "" if exponent == 0 else f"e{exponent}"
    return f"{sign}{mantissa}{suffix}"


def _binary_digits(magnitude: int) -> str:
    power = 0
    while magnitude >= 1024 and magnitude % 1024 == 0:
        magnitude //= 1024
        power += 1
    if power >= len(_BINARY_SUFFIXES):
        raise QuantityRangeError(f"value {magnitude}*1024^{power} is beyond the Ei binary suffix")
    return f"{magnitude}{_BINARY_SUFFIXES[power]}"


def _exact(value: float | int | Decimal, what: str) -> Fraction:
    """A finite, non-negative number as an exact fraction of its shortest decimal form."""
    if isinstance(value, bool):
        raise QuantityRangeError(f"{what} must be a number, got a bool")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityRangeError(f"{what} is {value!r}; only finite numbers are quantities")
        exact = Fraction(Decimal(repr(value)))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise QuantityRangeError(f"{what} is {value}; only finite numbers are quantities")
        exact = Fraction(value)
    else:
        exact = Fraction(value)
    if exact < 0:
        raise QuantityRangeError(f"{what} is negative ({value!r}); usage cannot be below zero")
    return exact


def _truncated_shortest_decimal(value: float, shift: int) -> int:
    """``int(_exact(value) * 10**shift)`` for a finite float >= 0 (or -0.0), without Fractions.

    The same digits (``repr``) shifted as text: ``Fraction(Decimal(repr(v)))`` costs about 5 µs a
    value, which is a tenth of a second for the ~11,000 numbers of ``kubectl top pod -A`` at 5,000
    pods. tests/test_quantity.py checks this against the exact path over arbitrary floats.
    """
    if shift == 0 and value < 2**53 and value.is_integer():
        return int(value)  # whole floats below 2^53 print exactly: repr would give the same digits
    mantissa, _, exponent_text = repr(value).partition("e")
    integer_digits, _, fraction_digits = mantissa.partition(".")
    digits = int(integer_digits + fraction_digits)  # "-00" for -0.0 is 0: no sign survives
    exponent = shift - len(fraction_digits) + (int(exponent_text) if exponent_text else 0)
    scale: int = 10 ** abs(exponent)
    if exponent >= 0:
        return digits * scale
    return digits // scale  # digits >= 0, so flooring truncates


def cpu_quantity(cores: float | int | Decimal) -> Quantity:
    """CPU usage in cores as metrics-server writes it: whole nanocores, DecimalSI.

    Fractions of a nanocore are truncated, as metrics-server's ``uint64(cpuUsage)`` does, so
    ``2.459003e-3`` gives ``2459003n``, ``1e-3`` gives ``1m``, ``2`` gives ``2`` and ``0`` gives
    ``0``. NaN, infinite and negative values raise QuantityRangeError.
    """
    if type(cores) is float and 0.0 <= cores < math.inf:
        nanocores = _truncated_shortest_decimal(cores, 9)
    else:
        nanocores = int(_exact(cores, "CPU usage") * 10**9)
    if nanocores > UINT64_MAX:
        raise QuantityRangeError(f"CPU usage {cores!r} cores does not fit in uint64 nanocores")
    return _uint64_quantity(nanocores, _NANO_EXPONENT, QuantityFormat.DECIMAL_SI)


def memory_quantity(size_bytes: float | int | Decimal) -> Quantity:
    """Memory in bytes as metrics-server writes it: whole bytes, BinarySI.

    ``45735936`` gives ``44664Ki``, ``12345678`` gives ``12345678``; fractions of a byte are
    truncated. NaN, infinite and negative values raise QuantityRangeError.
    """
    if type(size_bytes) is float and 0.0 <= size_bytes < math.inf:
        whole_bytes = _truncated_shortest_decimal(size_bytes, 0)
    else:
        whole_bytes = int(_exact(size_bytes, "memory usage"))
    if whole_bytes > UINT64_MAX:
        raise QuantityRangeError(f"memory usage {size_bytes!r} bytes does not fit in uint64")
    return _uint64_quantity(whole_bytes, 0, QuantityFormat.BINARY_SI)


def _uint64_quantity(value: int, exponent: int, value_format: QuantityFormat) -> Quantity:
    # metrics-server's uint64Quantity: an int64 Quantity cannot hold more, so it drops one digit.
    if value > INT64_MAX:
        return Quantity(value // 10, exponent + 1, value_format)
    return Quantity(value, exponent, value_format)


def milli_quantity(value: float) -> Quantity:
    """A custom or external metric value as prometheus-adapter writes it.

    prometheus-adapter builds ``resource.NewMilliQuantity(int64(v*1000), DecimalSI)``: the float
    product is truncated toward zero, so ``1.5`` gives ``1500m`` and ``2.0`` gives ``2``. Negative
    values are legitimate metrics and are kept.

    NaN and infinities raise QuantityRangeError instead of becoming ``0`` (prometheus-adapter's
    custom provider) or ``-9223372036854775808m`` (its external provider): the HPA treats an
    absent item as missing data but a zero as a real reading, so callers drop such samples.
    """
    if isinstance(value, bool) or not math.isfinite(value):
        raise QuantityRangeError(
            f"metric value {value!r} is not a finite number; drop the sample instead of serving it"
        )
    millis = value * 1000.0
    if not -(2**63) <= millis < 2**63:
        raise QuantityRangeError(f"metric value {value!r} overflows an int64 milli-quantity")
    return Quantity(int(millis), -3, QuantityFormat.DECIMAL_SI)


def parse_quantity(text: str) -> Quantity:
    """Parse Kubernetes quantity text like ``ParseQuantity`` does.

    The format comes from the suffix (binary, decimal SI, or ``e<n>`` exponent); values finer than
    a nano are rounded away from zero to ``1n``; binary values are capped at 2^63-1 and binary
    values between -1 and 1 become DecimalSI. Unlike Go, the original text is never re-emitted:
    ``str()`` is always canonical (Go keeps e.g. ``"+1"`` verbatim).
    """
    if text == "":
        raise QuantityParseError("empty string is not a quantity")
    if text == "0":
        return Quantity(0, 0, QuantityFormat.DECIMAL_SI)
    match = _QUANTITY_RE.fullmatch(text)
    if match is None:
        raise QuantityParseError(
            f"{text!r} is not a quantity: expected <number><suffix> such as 100m, 1.5Gi or 1e3"
        )
    integer_digits = match["int"]
    fraction_digits = match["frac"] or ""
    if not integer_digits and not fraction_digits:
        raise QuantityParseError(f"{text!r} is not a quantity: the number has no digits")
    suffix = match["suffix"]
    unscaled = int((integer_digits or "0") + fraction_digits)
    exponent = -len(fraction_digits)
    binary_power = 0
    if suffix in _BINARY_POWER_BY_SUFFIX and suffix != "":
        value_format = QuantityFormat.BINARY_SI
        binary_power = _BINARY_POWER_BY_SUFFIX[suffix]
    elif suffix[:1] in ("e", "E") and len(suffix) > 1:
        value_format = QuantityFormat.DECIMAL_EXPONENT
        exponent_shift = int(suffix[1:])
        if abs(exponent_shift) > _MAX_PARSE_EXPONENT:
            raise QuantityParseError(f"{text!r}: exponent {exponent_shift} is out of range")
        exponent += exponent_shift
    else:
        value_format = QuantityFormat.DECIMAL_SI
        exponent += _DECIMAL_EXPONENT_BY_SUFFIX[suffix]

    value = Fraction(unscaled) * Fraction(10) ** exponent * 2**binary_power
    if value != 0:
        nanos = value * 10**9
        value = Fraction(math.ceil(nanos), 10**9)  # away from zero: the magnitude is still >= 0
    if value_format is QuantityFormat.BINARY_SI:
        value = min(value, Fraction(INT64_MAX))
        if 0 < value < 1:
            value_format = QuantityFormat.DECIMAL_SI
    negative = match["sign"] == "-"
    unscaled_out, exponent_out = _decimal_parts(value)
    return Quantity(-unscaled_out if negative else unscaled_out, exponent_out, value_format)


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """``value`` (a non-negative terminating decimal) as (unscaled, exponent)."""
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    return value.numerator, exponent


def _nanoseconds(duration: timedelta | float | int | Decimal) -> int:
    if isinstance(duration, timedelta):
        whole = (duration.days * 86_400 + duration.seconds) * 10**9
        return whole + duration.microseconds * 1000
    if isinstance(duration, bool):
        raise QuantityRangeError("a duration must be a number of seconds, got a bool")
    if isinstance(duration, float):
        if not math.isfinite(duration):
            raise QuantityRangeError(f"duration {duration!r} is not a finite number of seconds")
        exact = Fraction(Decimal(repr(duration)))
    elif isinstance(duration, Decimal):
        if not duration.is_finite():
            raise QuantityRangeError(f"duration {duration} is not a finite number of seconds")
        exact = Fraction(duration)
    else:
        exact = Fraction(duration)
    return round(exact * 10**9)


def format_duration(duration: timedelta | float | int | Decimal) -> str:
    """Go's ``time.Duration.String()`` for a duration in seconds (or a timedelta).

    ``30`` gives ``30s``, ``60`` gives ``1m0s``, ``60.996`` gives ``1m0.996s``, ``0.5`` gives
    ``500ms``; the value is rounded to whole nanoseconds, Go's resolution.
    """
    nanos = _nanoseconds(duration)
    if not -(2**63) <= nanos < 2**63:
        raise QuantityRangeError(f"duration {duration!r} does not fit in a Go time.Duration")
    return format_duration_ns(nanos)


def format_duration_ns(nanoseconds: int) -> str:
    """Go's ``time.Duration.String()`` for an int64 count of nanoseconds."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    magnitude = abs(nanoseconds)
    if magnitude < 10**9:
        # Below one second Go switches to the largest unit that keeps an integer part.
        for unit_nanos, unit, precision in ((10**6, "ms", 6), (10**3, "µs", 3), (1, "ns", 0)):
            if magnitude >= unit_nanos:
                return f"{sign}{_with_fraction(magnitude, precision)}{unit}"
    seconds_text = _with_fraction(magnitude % (60 * 10**9), 9)
    minutes = magnitude // (60 * 10**9)
    if minutes == 0:
        return f"{sign}{seconds_text}s"
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return f"{sign}{minutes}m{seconds_text}s"
    return f"{sign}{hours}h{minutes}m{seconds_text}s"


def _with_fraction(value: int, precision: int) -> str:
    """``value / 10**precision`` with trailing fractional zeros (and a bare point) removed."""
    if precision == 0:
        return str(value)
    whole, fraction = divmod(value, 10**precision)
    digits = f"{fraction:0{precision}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def format_timestamp(moment: datetime | float | int) -> str:
    """``metav1.Time`` JSON: RFC 3339 in UTC, whole seconds (truncated), ``Z`` suffix.

    Accepts an aware datetime or Unix seconds (a Prometheus sample time). A naive datetime is
    rejected because its zone is unknown.
    """
    if isinstance(moment, datetime):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise QuantityRangeError(
                f"timestamp {moment.isoformat()} has no time zone; pass an aware datetime (UTC)"
            )
        utc = moment.astimezone(UTC)
    else:
        if isinstance(moment, bool) or not math.isfinite(moment):
            raise QuantityRangeError(f"timestamp {moment!r} is not a finite Unix time")
        utc = datetime.fromtimestamp(math.floor(moment), tz=UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
    )
