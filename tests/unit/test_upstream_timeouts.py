"""How long the hub waits for an upstream answer that is not coming."""

from __future__ import annotations

from yurthub import upstream as up


def test_a_watch_with_timeout_seconds_zero_has_no_idle_bound():
    # kube-apiserver takes 0 as unset (minRequestTimeout * [1, 2)): 30 s idle would cut it.
    assert up.read_timeout_for(True, 0) is None
    assert up.read_timeout_for(True, None) is None
    assert up.read_timeout_for(True, 60) == 60 + up.WATCH_TIMEOUT_SLACK
    assert up.read_timeout_for(False, 0) == up.REQUEST_READ_TIMEOUT
