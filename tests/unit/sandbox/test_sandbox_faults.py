"""The fault table: rules are consumed in order, by matching requests, one per request."""

from __future__ import annotations

import pytest

from kubesandbox.faults import DROP, FAIL, RESET, STALL, Faults, reason_for


def test_rules_are_consumed_in_order_and_by_match():
    f = Faults()
    f.add(FAIL, 2, status=500)
    f.add(RESET, 1, match="/api/v1/pods", after_bytes=10)
    assert f.take("GET /api/v1/nodes").status == 500
    assert f.take("GET /api/v1/pods").kind == FAIL
    rule = f.take("GET /api/v1/pods?watch=1")
    assert (rule.kind, rule.after_bytes) == (RESET, 10)
    assert f.take("GET /api/v1/pods") is None


def test_match_skips_other_requests():
    f = Faults()
    f.add(DROP, 1, match="watch=1")
    assert f.take("GET /api/v1/pods") is None
    assert f.take("GET /api/v1/pods?watch=1").kind == DROP
    assert f.describe()["rules"] == []


def test_stall_release_and_clear():
    f = Faults()
    f.add(STALL, 1)
    assert not f.released.is_set() and f.describe()["stalled"]
    f.release()
    assert f.released.is_set()
    f.add(STALL, 1)
    f.latency = 0.5
    f.clear()
    assert f.released.is_set() and f.latency == 0 and f.take("GET /") is None


@pytest.mark.parametrize("kwargs", [dict(kind="explode"), dict(kind=FAIL, count=0),
                                    dict(kind=FAIL, status=42), dict(kind=STALL, after_bytes=-1)])
def test_bad_rules(kwargs):
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError):
        Faults().add(kind, **kwargs)


@pytest.mark.parametrize("status, reason", [(503, "ServiceUnavailable"), (500, "InternalError"),
                                            (429, "TooManyRequests"), (504, "Timeout"),
                                            (418, "BadRequest"), (599, "InternalError")])
def test_reasons(status, reason):
    assert reason_for(status)[0] == reason
