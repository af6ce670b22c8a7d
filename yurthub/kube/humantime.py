"""Timestamps as kube-apiserver reads them, and ages as its printers write them ("5m", "3d").

Pure: the caller passes ``now`` (seconds since the epoch, as ``time.time()`` gives it), so a
Table rendered twice from the same objects at the same instant is the same Table.  Times are
kept as integer nanoseconds, the unit of Go's ``time.Duration``, so the truncations of
apimachinery's ``duration.HumanDuration`` come out exactly as in Go.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

NS = 1_000_000_000
_MINUTE = 60 * NS
_HOUR = 60 * _MINUTE
UNKNOWN = "<unknown>"
INVALID = "<invalid>"
# RFC 3339 as Go's time.Parse reads it: a fraction of a second is accepted when parsing.
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                      r"(Z|[+-]\d{2}:\d{2})$")


def now_ns(now: float) -> int:
    """``time.time()`` in nanoseconds, to the microsecond (what a float holds of it)."""
    return round(now * 1_000_000) * 1000


def parse_rfc3339(text: str) -> int | None:
    """An RFC 3339 timestamp in nanoseconds since the epoch; ValueError when malformed.

    Go's zero time (``0001-01-01T00:00:00Z``) is None, as ``metav1.Time.IsZero`` says.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    zone = m.group(8)
    offset = 0
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    try:
        base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as e:
        raise ValueError(f"not an RFC 3339 time: {text!r}: {e}") from None
    frac = m.group(7) or ""
    nanos = int((frac[1:] + "000000000")[:9]) if frac else 0
    if (year, month, day, hour, minute, second, nanos, offset) == (1, 1, 1, 0, 0, 0, 0, 0):
        return None
    epoch = int((base - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return (epoch - offset) * NS + nanos


def timestamp(value: Any) -> int | None:
    """A ``metav1.Time``/``MicroTime`` field of a decoded object, or None when zero.

    Absent, null, empty and malformed values all read as the zero time: kube-apiserver
    never stores a malformed one, and its printers show a zero time as ``<unknown>``.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def human_duration(d: int) -> str:
    """apimachinery's ``duration.HumanDuration`` of ``d`` nanoseconds (2-3 significant figures).

    Up to two seconds into the future reads as ``0s`` (clocks disagree a little); further
    ahead is ``<invalid>``.
    """
    seconds = _trunc(d, NS)
    if seconds < -1:
        return INVALID
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = d // _MINUTE
    if minutes < 10:
        s = (d // NS) % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = d // _HOUR
    if hours < 8:
        m = (d // _MINUTE) % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: float) -> str:
    """The printers' ``translateTimestampSince``: the age of a timestamp field, or
    ``<unknown>`` when it is zero."""
    ts = timestamp(value)
    if ts is None:
        return UNKNOWN
    return human_duration(now_ns(now) - ts)


def _trunc(a: int, b: int) -> int:
    """Go's integer division of a by b (b > 0): truncated toward zero."""
    q = abs(a) // b
    return q if a >= 0 else -q
