"""A crash shortly after a relist removed objects: they are gone, not lost.

The index is saved lazily (5 s after a commit), so after a kill -9 or a power cut it may
still list objects whose files a committed list removed.  Recovery used to report each one
lost ("its file is missing"): the view became incomplete, and a node rebooting without the
cloud got a 503 for kubelet's whole pod list and a readyz that said the cache was damaged.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cache.conftest import PODS, Feeder, event_line, list_body, pod
from yurthub import config
from yurthub.cache.manager import CacheManager
from yurthub.cache.mutation import load_meta
from yurthub.cache.reader import _event_for
from yurthub.cache.views import parse_selectors
from yurthub.kube.resources import builtin
from yurthub.metrics import Metrics
from yurthub.storage import DiskStore, removed_record

POD_RT = builtin("", "v1", "pods")
MINE = "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a"


def _run(tmp_path: Path, bodies: list[bytes]) -> tuple[CacheManager, DiskStore, list]:
    cfg = config.load(None, {"node_name": "node-a", "disk_cache_path": str(tmp_path / "c")})
    store = DiskStore(cfg.disk_cache_path, history_limit=cfg.watch_history_size,
                      meta_loader=load_meta)
    report = store.open()
    m = CacheManager(cfg, store, Metrics())
    m.start(report.lost)
    for body in bodies:
        assert Feeder(m).respond(MINE, body)
    return m, store, report.lost


def _stop(m: CacheManager, store: DiskStore) -> None:
    m.stop()
    store.close()


def test_objects_a_relist_removed_just_before_a_crash_are_gone_not_lost(tmp_path):
    m, store, _ = _run(tmp_path, [list_body([pod("a", rv=5), pod("b", rv=6),
                                             pod("c", rv=7)], 9)])
    _stop(m, store)
    index = tmp_path / "c" / "kubelet" / "pods.v1.core" / "_index"
    saved = index.read_bytes()  # lists a, b and c
    # kubelet relists (the cloud deleted b while no watch was open), then the node dies
    # before the index is saved again: the index on disk still lists b.
    m, store, _ = _run(tmp_path, [list_body([pod("a", rv=5), pod("c", rv=7)], 12)])
    _stop(m, store)
    index.write_bytes(saved)
    m, store, lost = _run(tmp_path, [])
    try:
        want = parse_selectors("", "", "spec.nodeName=node-a", POD_RT)
        page = m.reader.list(PODS, POD_RT, want, limit=None, continue_token="")
        names = [json.loads(b)["metadata"]["name"] for b in m.reader.bodies(PODS, page.keys)]
        assert names == ["a", "c"]
        assert not page.freshness.stale and page.resource_version == 12
        assert lost == []
    finally:
        _stop(m, store)


def test_a_file_removed_behind_the_stores_back_after_a_relist_is_still_lost(tmp_path):
    """The record explains only what the list removed: a file deleted by hand is lost."""
    m, store, _ = _run(tmp_path, [list_body([pod("a", rv=5), pod("b", rv=6),
                                             pod("c", rv=7)], 9),
                                  list_body([pod("a", rv=5), pod("c", rv=7)], 12)])
    _stop(m, store)
    (tmp_path / "c" / "kubelet" / "pods.v1.core" / "default" / "c").unlink()
    m, store, lost = _run(tmp_path, [])
    try:
        assert [(o.namespace, o.name) for o in lost] == [("default", "c")]
    finally:
        _stop(m, store)


def test_the_record_of_a_lists_removals_is_no_watch_event():
    """A watch resumed from the history skips it (it names objects, not one object)."""
    rec = removed_record(12, [("default", "b")])
    assert _event_for(rec, parse_selectors("", "", "", POD_RT)) is None


def test_a_release_that_does_not_know_the_record_sends_no_event_for_it(tmp_path, monkeypatch):
    """A downgrade: 7dd5470's reader is this one without the REMOVED skip.  It took the
    record for a watch event and sent a watch of unassigned pods resumed across a kubelet
    relist ``{"type":"ADDED","object":}``, which no client can decode."""
    unassigned = "/api/v1/pods?fieldSelector=spec.nodeName%3D"
    m, store, _ = _run(tmp_path, [list_body([pod("a", rv=5), pod("b", rv=6)], 9)])
    try:
        feed = Feeder(m)
        assert feed.respond(unassigned, list_body([pod("u", node="", rv=7)], 9))
        assert feed.respond(MINE, list_body([pod("a", rv=5)], 12))  # b went: REMOVED at 12
        assert feed.respond(unassigned + "&watch=true&resourceVersion=9",
                            [event_line("MODIFIED", pod("u", node="", rv=15))])
        monkeypatch.setattr("yurthub.cache.reader.REMOVED", "a type this release lacks")
        want = parse_selectors("", "", "spec.nodeName=", POD_RT)
        start = m.reader.watch_start(PODS, POD_RT, want, "10")
        events = [(t, json.loads(b)["metadata"]["name"]) for t, b in start.events]
        assert events == [("MODIFIED", "u")] and start.resource_version == 15
    finally:
        _stop(m, store)
