"""``resource.Quantity`` as kube-apiserver prints it: ``Quantity.String()``, the canonical form.

A quantity is read as apimachinery's ``ParseQuantity`` reads it (a decimal number, then a
binary suffix ``Ki``..``Ei``, a decimal one ``n``..``E`` or an exponent ``e3``), rounded up to
the nanounit and capped at 2^63-1, and written back canonically: in the suffix family it was
written in, with the largest suffix that keeps the number whole (``1024Mi`` is ``1Gi``,
``1.5Gi`` is ``1536Mi``, ``1500m`` stays ``1500m``, ``0.5Gi`` is ``512Mi``); a binary quantity
under 1024 or not whole in bytes falls back to the decimal suffixes.  Exact integer arithmetic:
no float ever touches a value.
"""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"^([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
            "E": 18}
_DECIMAL_SUFFIX = {e: s for s, e in _DECIMAL.items()}
_BINARY_SUFFIX = {e: s for s, e in _BINARY.items()} | {0: ""}
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")
_MAX = (1 << 63) - 1
_NANO = 9


def parse(text: str) -> tuple[int, int, str] | None:
    """``(unscaled, scale, format)``: the value ``unscaled * 10**-scale`` and its format
    (``BinarySI``, ``DecimalSI``, ``DecimalExponent``); None where Go refuses the text."""
    m = _NUMBER.match(text.strip())
    if m is None:
        return None
    sign, whole, frac, suffix = m.groups()
    frac = frac or ""
    if not whole and not frac:
        return None
    unscaled, scale = int(whole + frac or "0"), len(frac)
    if suffix in _BINARY:
        unscaled *= 1024 ** _BINARY[suffix]
        fmt = "BinarySI"
    elif suffix in _DECIMAL:
        scale -= _DECIMAL[suffix]
        fmt = "DecimalSI"
    elif (e := _EXPONENT.match(suffix)) is not None:
        scale -= int(e.group(1))
        fmt = "DecimalExponent"
    else:
        return None
    if scale > _NANO:  # rounded up (away from zero) to the nanounit
        div = 10 ** (scale - _NANO)
        unscaled, scale = -(-unscaled // div), _NANO
    if scale < 0:
        unscaled, scale = unscaled * 10 ** -scale, 0
    if unscaled > _MAX * 10 ** scale:
        unscaled, scale = _MAX, 0
    if fmt == "BinarySI" and 0 < unscaled < 10 ** scale:
        fmt = "DecimalSI"
    return (-unscaled if sign == "-" else unscaled), scale, fmt


def canonical(text: Any) -> str:
    """``Quantity.String()`` of a serialized quantity; a quantity Go would refuse, or none,
    prints as the zero quantity ``0``."""
    parsed = parse(text) if isinstance(text, str) else None
    if parsed is None or parsed[0] == 0:
        return "0"
    unscaled, scale, fmt = parsed
    sign, magnitude = ("-" if unscaled < 0 else ""), abs(unscaled)
    if fmt == "BinarySI":
        whole, rest = divmod(magnitude, 10 ** scale)
        if rest == 0 and whole >= 1024:
            exponent = 0
            while whole % 1024 == 0 and exponent < 6:
                whole //= 1024
                exponent += 1
            return f"{sign}{whole}{_BINARY_SUFFIX[exponent]}"
        fmt = "DecimalSI"
    exponent = -scale
    while magnitude % 10 == 0:
        magnitude //= 10
        exponent += 1
    shift = exponent % 3  # down to a multiple of three: 1.5 is 1500m
    magnitude, exponent = magnitude * 10 ** shift, exponent - shift
    if fmt == "DecimalExponent":
        return f"{sign}{magnitude}" + (f"e{exponent}" if exponent else "")
    return f"{sign}{magnitude}{_DECIMAL_SUFFIX.get(exponent, '')}"
