"""Kubernetes resource quantities (``100m``, ``128Mi``, ``1e3``) read exactly, as apimachinery does.

The grammar and rounding follow ``k8s.io/apimachinery/pkg/api/resource`` (``ParseQuantity``):

    quantity  = [sign] digits [ "." [digits] ] | [sign] "." [digits]   then an optional suffix
    suffix    = "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"                 binary (2^10 .. 2^60)
              | "n" | "u" | "m" | "" | "k" | "M" | "G" | "T" | "P" | "E" decimal SI (10^-9 .. 10^18)
              | ("e" | "E") [sign] digits                             decimal exponent

Like apimachinery, a non-zero value is rounded away from zero to a whole nano-unit (``3.001n`` is
``4n``), a binary-suffixed value is capped at 2^63-1, ``1E`` is exa while ``1E3`` is an exponent,
and the odd forms apimachinery accepts (``1.``, ``.5``, ``1.G``, ``.``, ``-``) are accepted with
the same value. Whitespace anywhere is an error. The one deliberate difference: an exponent that
does not fit in 32 bits is an error here, where Go silently wraps it.

Pure: no IO, no globals beyond constant tables.

Exception tree::

    ValueError
     └── QuantityError     not a Kubernetes quantity; ``str(err)`` quotes the text and says why
"""

from __future__ import annotations

from decimal import ROUND_UP, Context, Decimal, localcontext

_DECIMAL_SUFFIX_EXPONENTS: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIX_EXPONENTS: dict[str, int] = {
    "Ki": 10,
    "Mi": 20,
    "Gi": 30,
    "Ti": 40,
    "Pi": 50,
    "Ei": 60,
}
# apimachinery scans the suffix with this character set before it checks the suffix as a whole.
_SUFFIX_START_CHARACTERS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")
_NANO = Decimal("1e-9")
_BINARY_MAXIMUM = Decimal(2**63 - 1)
_INT32_RANGE = range(-(2**31), 2**31)


class QuantityError(ValueError):
    """A string that is not a valid Kubernetes quantity."""


def parse_quantity(text: str) -> Decimal:
    """The exact value of a Kubernetes quantity string, e.g. ``"1500m"`` -> ``Decimal("1.5")``.

    Raises QuantityError (a ValueError) naming the text and the problem.
    """
    if text == "":
        raise QuantityError('invalid quantity "": empty string')
    negative, integer_digits, fraction_digits, suffix = _split(text)
    base, exponent = _interpret_suffix(text, suffix)
    mantissa = int(integer_digits + fraction_digits)
    if mantissa == 0:
        return Decimal(0)
    if base == 10:
        exact = _exact_decimal(mantissa, exponent - len(fraction_digits))
    else:
        exact = _exact_decimal(mantissa * 2**exponent, -len(fraction_digits))
    magnitude = _round_up_to_nano(exact)
    if base == 2 and magnitude > _BINARY_MAXIMUM:
        magnitude = _BINARY_MAXIMUM
    return -magnitude if negative else magnitude


def _split(text: str) -> tuple[bool, str, str, str]:
    """Sign, integer digits, fraction digits and suffix, as apimachinery's parseQuantityString."""
    position = 0
    negative = False
    if text[0] in "+-":
        negative = text[0] == "-"
        position = 1
    integer_start = position
    while position < len(text) and text[position] in _DIGITS:
        position += 1
    integer_digits = text[integer_start:position] or "0"
    fraction_digits = ""
    if position < len(text) and text[position] == ".":
        position += 1
        fraction_start = position
        while position < len(text) and text[position] in _DIGITS:
            position += 1
        fraction_digits = text[fraction_start:position]
    suffix_start = position
    while position < len(text) and text[position] in _SUFFIX_START_CHARACTERS:
        position += 1
    if position < len(text) and text[position] in "+-":
        position += 1
    while position < len(text) and text[position] in _DIGITS:
        position += 1
    if position < len(text):
        raise QuantityError(
            f"invalid quantity {text!r}: unexpected {text[position]!r} at position {position}; "
            "expected a number such as 100m, 1.5, 128Mi, 1e3 or 2G"
        )
    return negative, integer_digits, fraction_digits, text[suffix_start:]


def _interpret_suffix(text: str, suffix: str) -> tuple[int, int]:
    if suffix in _DECIMAL_SUFFIX_EXPONENTS:
        return 10, _DECIMAL_SUFFIX_EXPONENTS[suffix]
    if suffix in _BINARY_SUFFIX_EXPONENTS:
        return 2, _BINARY_SUFFIX_EXPONENTS[suffix]
    if len(suffix) > 1 and suffix[0] in "eE":
        exponent_text = suffix[1:]
        digits = exponent_text.removeprefix("+").removeprefix("-")
        if digits and set(digits) <= _DIGITS:
            exponent = int(exponent_text)
            if exponent not in _INT32_RANGE:
                raise QuantityError(f"invalid quantity {text!r}: exponent {exponent} is too large")
            return 10, exponent
    raise QuantityError(
        f"invalid quantity {text!r}: unknown suffix {suffix!r}; expected one of "
        "n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or an exponent such as e3"
    )


def _exact_decimal(coefficient: int, exponent: int) -> Decimal:
    """coefficient * 10**exponent with no rounding (Decimal arithmetic would round to 28 digits)."""
    return Decimal((0, tuple(int(digit) for digit in str(coefficient)), exponent))


def _round_up_to_nano(value: Decimal) -> Decimal:
    """Round a positive value away from zero to a multiple of 1e-9, exactly."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite by construction
    if exponent >= -9:
        return value
    digits = len(value.as_tuple().digits)
    # Enough precision that quantize never rounds anything but the digits below a nano.
    with localcontext(Context(prec=digits + 12)):
        return value.quantize(_NANO, rounding=ROUND_UP)
