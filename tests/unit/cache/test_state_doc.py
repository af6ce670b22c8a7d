"""A collection's state document: what this version reads, and what startup sets aside.

A state this version cannot read (a view with a field it does not know, as a newer version
would write; a missing key; wrong types) is refused whole, never half-trusted, and startup
quarantines it like one that is not JSON: its lists are refused offline (503) until the
cloud's next list, instead of the worker crashing on every request.
"""

from __future__ import annotations

import json
import time

import pytest

from yurthub.cache.mutation import load_meta
from yurthub.cache.views import CollectionState, ViewKey, check_state
from yurthub.storage import CollectionKey, DiskStore

PODS = CollectionKey("kubelet", "", "v1", "pods", True)


def good() -> dict:
    state = CollectionState("Pod", "v1", "PodList")
    state.synced(ViewKey("", "", "spec.nodeName=node-a"), 100, now=time.time())
    state.mark_incomplete(ViewKey("", "", "spec.nodeName=node-a"), "default/p1 was set aside")
    state.lost[("default", "p1")] = "torn"
    state.rewrite.add(ViewKey("", "", "spec.nodeName=node-a"))  # after a filter change
    return state.to_json()


def test_what_to_json_writes_reads_back():
    doc = good()
    assert CollectionState.from_json(doc).to_json() == doc
    check_state(doc)


def test_a_state_of_an_older_version_reads_with_defaults():
    doc = good()
    del doc["lost"]
    del doc["views"][0]["incomplete"]  # before issue 18
    del doc["views"][0]["from_rv"]
    view = next(iter(CollectionState.from_json(doc).views.values()))
    assert (view.incomplete, view.from_rv, view.rv) == ("", 0, 100)


def _views(doc, **change):
    doc["views"][0].update(change)
    return doc


@pytest.mark.parametrize("damage, words", [
    (lambda d: _views(d, checksum="x"), "does not know: ['checksum']"),
    (lambda d: {**d, "future": 1}, "does not know: ['future']"),
    (lambda d: _views(d, rv="x"), "rv is str"),
    (lambda d: _views(d, rv=True), "rv is bool"),
    (lambda d: _views(d, stale=None), "stale is NoneType"),
    (lambda d: _views(d, key={"namespace": 5, "labels": "", "fields": ""}), "key"),
    (lambda d: {**d, "views": [{"rv": 1}]}, "key"),
    (lambda d: {**d, "views": [[1]]}, "not a JSON object"),
    (lambda d: {**d, "views": {}}, "not lists"),
    (lambda d: {**d, "lost": [["a", "b"]]}, "lost object"),
    (lambda d: {**d, "kind": 5}, "kind"),
    (lambda d: [1, 2, 3], "not a JSON object"),
])
def test_anything_else_is_refused_with_a_reason(damage, words):
    with pytest.raises(ValueError) as e:
        CollectionState.from_json(damage(good()))
    assert words in str(e.value)


@pytest.mark.parametrize("doc", [
    {"kind": "Pod", "apiVersion": "v1", "listKind": "PodList",
     "views": [{"key": {"namespace": 5}, "rv": "x"}]},
    {**good(), "views": [{**good()["views"][0], "checksum": "x"}]},
])
def test_startup_sets_an_unreadable_state_aside(tmp_path, doc):
    with DiskStore(str(tmp_path), meta_loader=load_meta, state_check=check_state) as store:
        with store.transaction(PODS) as txn:
            txn.put("default", "p2", json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": {
                "name": "p2", "namespace": "default"}}).encode(), {})
            txn.set_state(good())
            txn.commit()
    (tmp_path / "kubelet" / "pods.v1.core" / "_state").write_text(json.dumps(doc))
    store = DiskStore(str(tmp_path), meta_loader=load_meta, state_check=check_state)
    report = store.open()
    try:
        assert report.quarantined_paths == ["_quarantine/kubelet/pods.v1.core/_state"]
        assert store.state(PODS) == {}  # no view: its lists are refused offline
        assert set(store.entries(PODS)) == {("default", "p2")}  # the objects are kept
    finally:
        store.close()
