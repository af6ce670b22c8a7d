"""A cache writer far behind many watches: one memory bound for all of them, and
identical events of several watches of one view applied once.

Everything is real but the network: tees and pipes, the writer thread (held back by a
task of its own queue where a test needs it behind), the DiskStore on tmp_path.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.cache.conftest import PODS, event_line, list_body, pod, running_manager
from yurthub.cache import list_handler
from yurthub.cache.manager import CacheManager
from yurthub.cache.tee import Outcome, Tee
from yurthub.cache.views import parse_selectors
from yurthub.kube.requestinfo import parse_request_info
from yurthub.kube.resources import builtin
from yurthub.storage import CollectionKey

POD_RT = builtin("", "v1", "pods")
NODE_SEL = "fieldSelector=spec.nodeName%3Dnode-a"
PROXY_PODS = CollectionKey("kube-proxy", "", "v1", "pods", True)
MiB = 1 << 20


@pytest.fixture
def small_manager(tmp_path: Path) -> Iterator[CacheManager]:
    with running_manager(tmp_path, cache_memory_limit="1Mi") as m:
        yield m


def respond(m: CacheManager, path: str, body: bytes, ua: str = "kubelet") -> None:
    tee = open_tee(m, path, ua)
    tee.write(body)
    tee.close(True)
    assert m.writer.wait_idle(10)


def open_tee(m: CacheManager, path: str, ua: str = "kubelet") -> Tee:
    p, _, q = path.partition("?")
    tee = m.tee_for(parse_request_info("GET", p, q), ua, "application/json", 200,
                    {"Content-Type": "application/json"})
    assert tee is not None
    return tee


def hold_writer(m: CacheManager, gate: threading.Event) -> None:
    """Keep the writer thread busy (a task of its own queue) until ``gate`` is set."""

    def hold() -> None:
        gate.wait(30)

    m.writer.call(hold)


def freshness(m: CacheManager, ck: CollectionKey, fields: str = "") -> str:
    want = parse_selectors("", "", fields, POD_RT)
    return m.reader.list(ck, POD_RT, want, limit=None, continue_token="").freshness.stale


def metric(m: CacheManager, name: str, **labels: str) -> float:
    value = m.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


def padded(name: str, rv: int) -> bytes:
    """A MODIFIED event of about 30 KB (copied into the pipe, not lent)."""
    line = event_line("MODIFIED", pod(name, rv=rv))
    assert 20_000 < len(line) < 32_768
    return line


def test_past_the_memory_limit_the_largest_watch_backlog_goes_and_its_view_is_stale(
        small_manager, caplog):
    m = small_manager
    respond(m, "/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5)], 9))
    respond(m, "/api/v1/pods", list_body([pod("a", rv=5)], 9), ua="kube-proxy")
    gate = threading.Event()
    hold_writer(m, gate)
    kubelet = open_tee(m, "/api/v1/pods?watch=1&resourceVersion=9&" + NODE_SEL)
    proxy = open_tee(m, "/api/v1/pods?watch=1&resourceVersion=9", ua="kube-proxy")
    rv = 10
    try:
        while kubelet.queued < 600_000:  # past what its pipe holds, then in memory
            kubelet.write(padded("a", rv))
            rv += 1
        while proxy.queued < 300_000:
            proxy.write(padded("a", rv))
            rv += 1
        assert kubelet.outcome is Outcome.OPEN and proxy.outcome is Outcome.OPEN
        with caplog.at_level("WARNING", logger="yurthub.cache.tee"):
            while proxy.queued < 700_000 and kubelet.outcome is Outcome.OPEN:
                proxy.write(padded("a", rv))  # past the limit of 1 MiB for all tees
                rv += 1
    finally:
        gate.set()
    assert kubelet.outcome is Outcome.OVERFLOW  # the largest went; the writing tee stayed
    assert proxy.outcome is Outcome.OPEN
    assert m.budget.used <= m.budget.limit
    kubelet.close(True)
    proxy.close(True)
    assert m.writer.wait_idle(20)
    assert "cache writer behind" in freshness(m, PODS, "spec.nodeName=node-a")
    assert freshness(m, PROXY_PODS) == ""
    assert m.store.entries(PROXY_PODS)[("default", "a")].meta["rv"] == rv - 1
    assert metric(m, "yurthub_cache_tee_overflows_total") == 1
    assert metric(m, "yurthub_cache_entries_dropped_total", component="kubelet",
                  resource="pods", reason="overflow") == 1
    assert len([r for r in caplog.records if "dropping cache entry" in r.getMessage()]) == 1
    assert json.loads(m.store.read(PROXY_PODS, "default", "a"))["kind"] == "Pod"


@pytest.fixture
def fresh_manager(tmp_path: Path) -> Iterator[CacheManager]:
    with running_manager(tmp_path) as m:
        yield m


def watch_all(m: CacheManager, bodies: dict[str, list[bytes]], whole: dict[str, bool]
              | None = None) -> None:
    """Open one watch per path at once (``#n`` suffixes tell twins apart), write each its
    events, close them: the writer reads the pipes in whatever order it likes."""
    tees = {key: open_tee(m, key.split("#")[0]) for key in bodies}
    for key, lines in bodies.items():
        for line in lines:
            tees[key].write(line)
    for key, tee in tees.items():
        tee.close((whole or {}).get(key, True))
    assert m.writer.wait_idle(20)


def stream(*rvs: int, name: str = "a") -> list[bytes]:
    return [event_line("MODIFIED", pod(name, rv=rv)) for rv in rvs]


def test_identical_events_of_many_watches_of_one_view_are_applied_once(fresh_manager):
    m = fresh_manager
    respond(m, "/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5)], 9))
    events = stream(*range(10, 30))
    watch_all(m, {f"/api/v1/pods?watch=1&resourceVersion=9&{NODE_SEL}#{i}": events
                  for i in range(10)})
    assert metric(m, "yurthub_cache_watch_events_total", result="applied") == 20
    assert metric(m, "yurthub_cache_watch_events_total", result="duplicate") == 180
    assert m.store.entries(PODS)[("default", "a")].meta["rv"] == 29
    want = parse_selectors("", "", "spec.nodeName=node-a", POD_RT)
    start = m.reader.watch_start(PODS, POD_RT, want, "9")
    assert [json.loads(o)["metadata"]["resourceVersion"] for _, o in start.events] == \
        [str(rv) for rv in range(10, 30)]  # each event once in the history
    assert start.resource_version == 29


def test_watches_with_other_selectors_keep_their_own_views_current(fresh_manager):
    m = fresh_manager
    respond(m, "/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5)], 9))
    respond(m, "/api/v1/pods", list_body([pod("a", rv=5)], 9))
    events = stream(*range(10, 20))
    watch_all(m, {f"/api/v1/pods?watch=1&resourceVersion=9&{NODE_SEL}": events,
                  f"/api/v1/pods?watch=1&resourceVersion=9&{NODE_SEL}#2": events,
                  "/api/v1/pods?watch=1&resourceVersion=9": events})
    # The same bytes in another view are that view's events: applied there too.
    assert metric(m, "yurthub_cache_watch_events_total", result="applied") == 20
    assert metric(m, "yurthub_cache_watch_events_total", result="duplicate") == 10
    for fields in ("", "spec.nodeName=node-a"):
        assert freshness(m, PODS, fields) == ""
        want = parse_selectors("", "", fields, POD_RT)
        assert m.reader.watch_start(PODS, POD_RT, want, "9").resource_version == 19


def test_a_watch_that_started_later_or_broke_takes_nothing_from_its_twins(fresh_manager):
    m = fresh_manager
    respond(m, "/api/v1/pods?" + NODE_SEL, list_body([pod("a", rv=5), pod("b", rv=6)], 9))
    early = stream(*range(10, 16))
    late = stream(*range(13, 16)) + stream(16, 17, name="b")
    # then its client went away; (two 32 KB events: what a broken watch had not yet
    # piped is dropped with it, and a watch's pipe holds 64 KiB)
    broken = stream(10, 11)
    base = f"/api/v1/pods?watch=1&{NODE_SEL}&resourceVersion="
    watch_all(m, {base + "9": early, base + "12": late, base + "9#b": broken},
              whole={base + "9#b": False})
    entries = m.store.entries(PODS)
    assert entries[("default", "a")].meta["rv"] == 15
    assert entries[("default", "b")].meta["rv"] == 17  # only the later watch carried these
    assert metric(m, "yurthub_cache_watch_events_total", result="applied") == 8
    assert metric(m, "yurthub_cache_watch_events_total", result="duplicate") == 5
    assert freshness(m, PODS, "spec.nodeName=node-a") == ""
    want = parse_selectors("", "", "spec.nodeName=node-a", POD_RT)
    start = m.reader.watch_start(PODS, POD_RT, want, "9")
    assert [(json.loads(o)["metadata"]["name"], json.loads(o)["metadata"]["resourceVersion"])
            for _, o in start.events] == [("a", str(rv)) for rv in range(10, 16)] + \
        [("b", "16"), ("b", "17")]


def test_a_parked_list_whose_client_went_away_lets_its_pipe_go_at_once(fresh_manager,
                                                                        monkeypatch):
    """A list waiting for another list of its collection (here a pager that stopped after
    its first page) holds a pipe and a spool; once its response broke it can never be
    committed, and they go at once, not when its turn would come."""
    monkeypatch.setattr(list_handler, "PAGE_GAP", 600.0)  # the pager holds the collection
    m = fresh_manager
    first = open_tee(m, "/api/v1/pods?limit=1")
    first.write(b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9",'
                b'"continue":"t1"},"items":[]}')
    first.close(True)
    parked = open_tee(m, "/api/v1/pods")
    parked.write(b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9"},')
    parked.close(False)  # the client went away mid-list
    assert m.writer.wait_idle(10)
    assert parked.read_fd == -1
