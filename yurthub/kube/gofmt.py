"""Values written as Go writes them: ``fmt.Print`` (``%v``) and ``encoding/json``.

A CRD's printer column of type string shows what client-go's JSONPath prints for the value,
and that is Go's formatting: ``1e+06`` for a float of a million, map keys sorted in JSON,
``<`` escaped as ``\\u003c``.  Python's own ``str``/``json.dumps`` differ in each of these.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _digits(f: float) -> tuple[str, int]:
    """The shortest decimal digits of |f| that read back as f, and the point's position:
    |f| = 0.<digits> x 10^dp (Go's ``decimalSlice``)."""
    # repr() is the shortest round-tripping form, as Go's strconv finds it.
    _sign, digits, exponent = Decimal(repr(abs(f))).normalize().as_tuple()
    assert isinstance(exponent, int)
    return "".join(map(str, digits)), len(digits) + exponent


def _fixed(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def _exponent(digits: str, dp: int, min_exp_digits: int = 2) -> str:
    x = dp - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if x < 0 else '+'}{abs(x):0{min_exp_digits}d}"


def _special(f: float) -> str | None:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    return None


def float_v(f: float) -> str:
    """``fmt.Sprint(f)`` of a float64: %g with the shortest digits, exponent from 1e+06."""
    special = _special(f)
    if special is not None:
        return special
    digits, dp = _digits(f)
    text = _exponent(digits, dp) if not -4 <= dp - 1 < 6 else _fixed(digits, dp)
    return "-" + text if f < 0 else text


def float_json(f: float) -> str:
    """How ``encoding/json`` writes a float64 (no exponent between 1e-6 and 1e21)."""
    special = _special(f)
    if special is not None:
        return special if special in ("0", "-0") else "null"
    digits, dp = _digits(f)
    if 1e-6 <= abs(f) < 1e21:
        text = _fixed(digits, dp)
    else:
        text = _exponent(digits, dp, 1 if dp - 1 < 0 else 2)
    return "-" + text if f < 0 else text


_QUOTE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f",
                  "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quote(s: str) -> str:
    """``strconv.Quote``: what Go's ``%q`` and strconv's errors show of a string."""
    out = ['"']
    for ch in s:
        esc = _QUOTE_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def json_string(s: str) -> str:
    out = ['"']
    for ch in s:
        esc = _JSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_json(value: Any) -> str:
    """``json.Marshal`` of a decoded JSON value: compact, map keys sorted, HTML escaped."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_json(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json_string(str(k))}:{to_json(value[k])}"
                              for k in sorted(value, key=str)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json_string(str(value))


def sprint(value: Any) -> str:
    """``fmt.Sprint`` of a decoded JSON scalar (maps and lists are written as JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_v(value)
    if isinstance(value, (dict, list)):
        return to_json(value)
    return str(value)
