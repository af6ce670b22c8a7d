"""Golden Tables from Kubernetes' own tests (see README.md here), and reading their times.

Times in the cases are written relative to the instant the printer runs, as the Go tests
build them from ``time.Now()``: ``"$now-3d"``, ``"$now+1.9s"``.  ``resolve`` turns them into
RFC 3339 timestamps relative to the file's fixed ``now``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.golden import load

_REL = re.compile(r"^\$now(?:([+-])([0-9.]+)([smhdy]))?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_now(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def at(now: datetime, spec: str) -> str:
    """The timestamp a relative time spec names (``y`` is a calendar year, as AddDate)."""
    m = _REL.match(spec)
    assert m is not None, spec
    sign, amount, unit = m.groups()
    when = now
    if sign:
        n = float(amount) * (1 if sign == "+" else -1)
        if unit == "y":
            when = now.replace(year=now.year + int(n))
        else:
            when = now + timedelta(seconds=n * _UNITS[unit])
    if when.microsecond:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve(value: Any, now: datetime) -> Any:
    """``value`` with every ``$now…`` string replaced by its timestamp."""
    if isinstance(value, str) and value.startswith("$now"):
        return at(now, value)
    if isinstance(value, dict):
        return {k: resolve(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, now) for v in value]
    return value


def table_golden(name: str) -> tuple[dict[str, Any], float]:
    """A golden file of this folder, and its ``now`` as seconds since the epoch."""
    doc = load(f"tables/{name}")
    now = parse_now(doc["now"]) if "now" in doc else datetime(2025, 1, 1, tzinfo=UTC)
    return doc, now.timestamp()
