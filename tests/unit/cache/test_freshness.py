"""The age an answer from the cache states (its Warning header, which kubectl prints)."""

from __future__ import annotations

import pytest

from yurthub.cache.reader import Freshness

CACHED = 1_780_000_000.0   # 2026-05-28


@pytest.mark.parametrize(("now", "said"), [
    (CACHED + 5, "age 5s"),
    (CACHED + 600, "age 10m"),
    (CACHED + 3 * 86400, "age 72h"),
])
def test_the_age_is_how_long_ago_the_view_was_current(now, said):
    assert Freshness(CACHED).warning(now) == f'299 - "served from the yurthub cache, {said}"'


def test_a_node_clock_behind_the_cache_does_not_call_it_fresh():
    """A node without a real-time clock rebooted offline: its clock says 1970 (or the
    last shutdown), behind when the cache was written.  kubectl printed "age 0s" for an
    answer days old."""
    text = Freshness(CACHED).warning(86400.0)
    assert "age 0s" not in text
    assert "age unknown" in text and "2026-05-28T" in text and "1970-01-02T" in text
    # a second or two behind (the writer's and the reader's clock calls) is still "now"
    assert Freshness(CACHED).warning(CACHED - 1).endswith('age 0s"')
