"""The store: revisions, events, pages, snapshots at older revisions, compaction."""

from __future__ import annotations

import json

import pytest

from kubesandbox.history import EventLog
from kubesandbox.objects import make_entry, render
from kubesandbox.store import Store
from yurthub.kube.resources import builtin

CM = builtin("", "v1", "configmaps")
NODES = builtin("", "v1", "nodes")


def cm(name, ns="default", **data):
    return {"metadata": {"name": name, "namespace": ns, "labels": {"n": name}}, "data": data}


def put(store, obj, rt=CM):
    meta = obj["metadata"]
    return store.put(rt, obj, store.get(rt, meta.get("namespace", ""), meta["name"]))


def test_every_write_bumps_the_global_revision_and_records_an_event():
    store = Store(history_size=100)
    start = store.rv
    a = put(store, cm("a"))
    b = put(store, {"metadata": {"name": "n1"}}, NODES)
    a2 = put(store, cm("a", x="1"))
    gone = store.remove(CM, a2)
    assert [a.rv, b.rv, a2.rv, gone.rv] == [start + 1, start + 2, start + 3, start + 4]
    assert [e.type for e in store.log.since(start)] == ["ADDED", "ADDED", "MODIFIED", "DELETED"]
    assert json.loads(gone.data)["metadata"]["resourceVersion"] == str(start + 4)
    assert store.get(CM, "default", "a") is None


def test_entries_render_kind_first_and_items_without_it():
    data, start = render({"metadata": {"resourceVersion": "5", "name": "x"}, "data": {}},
                         "ConfigMap", "v1")
    assert data.startswith(b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x",')
    entry = make_entry(json.loads(data), CM, 5)
    assert json.loads(b"".join(entry.item())) == {"metadata": {"name": "x",
                                                               "resourceVersion": "5"},
                                                  "data": {}}
    empty, start = render({}, "ConfigMap", "v1")
    assert empty == b'{"kind":"ConfigMap","apiVersion":"v1"}'
    assert b"{" + empty[start:] == b"{}"


def test_page_orders_by_namespace_and_name_and_continues():
    store = Store()
    for ns in ("b", "a"):
        for name in ("y", "x", "z"):
            put(store, cm(name, ns))
    page = store.page(CM, rv=None, namespace=None, match=None, limit=4)
    assert [e.key for e in page.items] == ["a/x", "a/y", "a/z", "b/x"]
    assert page.remaining == 2 and page.continue_key == "b/x\x00"
    rest = store.page(CM, rv=page.rv, namespace=None, match=None, start=page.continue_key)
    assert [e.key for e in rest.items] == ["b/y", "b/z"] and rest.continue_key is None
    only_b = store.page(CM, rv=None, namespace="b", match=lambda e: e.name != "y")
    assert [e.key for e in only_b.items] == ["b/x", "b/z"]


def test_page_at_an_older_revision_rolls_the_history_back():
    store = Store()
    put(store, cm("a", v="1"))
    put(store, cm("b"))
    at = store.rv
    put(store, cm("a", v="2"))
    store.remove(CM, store.get(CM, "default", "b"))
    put(store, cm("c"))
    old = store.page(CM, rv=at, namespace=None, match=None)
    assert [(e.name, json.loads(e.data)["data"]) for e in old.items] == [("a", {"v": "1"}),
                                                                         ("b", {})]
    now = store.page(CM, rv=None, namespace=None, match=None)
    assert [e.name for e in now.items] == ["a", "c"]


def test_history_window_and_compaction():
    store = Store(history_size=4)
    base = store.rv
    for i in range(40):
        put(store, cm(f"c{i}"))
    assert len(store.log) <= 4 + 16
    assert store.can_serve(store.rv) and not store.can_serve(base)
    floor = store.compact()
    assert floor == store.rv and not store.can_serve(store.rv - 1)
    assert store.log.since(0) == []


def test_load_bulk_entries_starts_the_history_after_them():
    store = Store()
    entries = [make_entry({"metadata": {"name": f"n{i}", "resourceVersion": str(10 + i)}},
                          NODES, 10 + i) for i in range(3)]
    store.load(NODES, entries, 12)
    assert store.rv == 12 and store.log.floor == 12
    assert [e.name for e in store.entries(NODES)] == ["n0", "n1", "n2"]


def test_event_log_read_reports_lost_positions():
    log = EventLog(size=2)
    with pytest.raises(ValueError):
        EventLog(size=0)
    assert log.read(0) == ([], 0, False)
    assert log.read(-1)[2] is True


def test_the_controllers_stop_at_once_between_two_resyncs(monkeypatch):
    """Stopping the controllers ends their thread even while it waits out a resync: it
    once waited for the next one (a second), in every test's teardown of a sandbox."""
    from kubesandbox import controllers
    from kubesandbox.server import Sandbox

    monkeypatch.setattr(controllers, "RESYNC", 3600.0)
    sb = Sandbox(nodes=1, pods_per_node=0).start()
    try:
        ctl = sb.controllers
        assert ctl is not None
        ctl.store.wait_for_rv(sb.store.rv, 10)  # seeded; the thread now waits for changes
        ctl.stop()
        assert not ctl._thread.is_alive()
    finally:
        sb.stop()
