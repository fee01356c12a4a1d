"""Kubernetes resource quantities: "100m", "1.5Gi", "1e3", 2.

A quantity is a decimal number with an optional suffix: a decimal SI suffix
(n u m k M G T P E), a binary suffix (Ki Mi Gi Ti Pi Ei) or a decimal exponent
(e3, E-2). Values are exact `Decimal`s so that "0.1" cpu is 100 millicores,
not 99.99999.
"""
from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, localcontext

Quantity = str | int | float | Decimal

_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12,
                     "P": 15, "E": 18}
# The exponent form is tried first so that "1E3" is 1000 and "1E" is one exa.
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:[eE](?P<exponent>[+-]?\d+)|(?P<suffix>[KMGTPE]i|[numkMGTPE])?)",
    re.ASCII,
)
# Far beyond any real resource amount; keeps "1e999999999" from becoming a
# number with a billion digits.
MAX_EXPONENT = 64


def parse_quantity(value: Quantity) -> Decimal:
    """The exact value of a quantity; ValueError("invalid quantity '12x'") if it is not one."""
    if isinstance(value, str):
        return _parse_string(value)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"invalid quantity {value!r}")
    # repr() so that 0.1 is 0.1, not 0.1000000000000000055511151231257827.
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"invalid quantity {value!r}")
    return number


def _parse_string(text: str) -> Decimal:
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    number = Decimal(match["number"])
    exponent = int(match["exponent"] or _DECIMAL_SUFFIXES.get(match["suffix"] or "", 0))
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"invalid quantity {text!r}: exponent out of range")
    # Enough digits that neither the shift nor the power of two rounds anything.
    with localcontext(prec=len(text) + 20):
        if match["suffix"] in _BINARY_SUFFIXES:
            return number * (1 << _BINARY_SUFFIXES[match["suffix"]])
        return number.scaleb(exponent)


def is_valid_quantity(value: object) -> bool:
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def cpu_millis(value: Quantity) -> int:
    """Millicores, rounded up: "100m" -> 100, "0.5" -> 500, "1u" -> 1."""
    number = parse_quantity(value)
    with localcontext(prec=len(str(number)) + 3):
        return _ceil(number.scaleb(3))


def to_bytes(value: Quantity) -> int:
    """Whole units (bytes for memory), rounded up as Kubernetes does: "1.5Gi" -> 1610612736."""
    return _ceil(parse_quantity(value))


def _ceil(number: Decimal) -> int:
    return int(number.to_integral_value(rounding=ROUND_CEILING))
