"""Offline lists held open at once share the cache's key order instead of copying it.

A slow client holds its list's page (the keys still to send) for as long as it reads; 230
such clients of a 10,000-pod list once took the worker from 70 to 234 MB RSS, every page a
fresh sorted copy of the collection's keys.  Pages now share one order per snapshot.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from tests.unit.cache.conftest import PODS, list_body
from yurthub.cache.views import parse_selectors
from yurthub.kube.resources import builtin

POD_RT = builtin("", "v1", "pods")
NAMESPACES = ("default", "kube-system", "monitoring")


def _fill(feed, n: int) -> list[tuple[str, str]]:
    pods = [_pod(f"p{i:05d}", NAMESPACES[i % 3], 10 + i, "web" if i % 2 else "db")
            for i in range(n)]
    assert feed.respond("/api/v1/pods", list_body(pods, 10 + n))
    return sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods)


def _pod(name: str, ns: str, rv: int, app: str) -> dict[str, Any]:
    """A small pod (the fixture's is 16 KB: 3,000 of them would overflow the tee)."""
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv),
                         "uid": f"uid-{name}", "labels": {"app": app}},
            "spec": {"nodeName": "node-a"}, "status": {"phase": "Running"}}


def _page(manager, ns: str = "", labels: str = "", limit: int | None = None, cont: str = ""):
    want = parse_selectors(ns, labels, "", POD_RT)
    return manager.reader.list(PODS, POD_RT, want, limit=limit, continue_token=cont)


def test_many_whole_lists_held_at_once_share_one_key_order(manager, feed):
    _fill(feed, 3000)
    _page(manager)  # the order is sorted once per snapshot, by the first list
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        pages = [_page(manager, ns=NAMESPACES[i % 2] if i % 3 else "") for i in range(40)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert sum(len(p.keys) for p in pages) > 40 * 1000
    # Per-page copies: 40 x 1,000-3,000 keys, 64 bytes each, about 5 MB.
    assert held < 200_000, f"40 open list pages hold {held:,} bytes"


@pytest.mark.parametrize("ns", ["", "default", "monitoring", "absent", "zzz"])
@pytest.mark.parametrize("labels", ["", "app=web"])
@pytest.mark.parametrize("limit", [None, 7, 1000])
def test_pages_of_a_namespace_are_its_keys_in_order(manager, feed, ns, labels, limit):
    everything = _fill(feed, 60 if limit in (None, 1, 7) else 3000)
    want = parse_selectors(ns, labels, "", POD_RT)
    entries = manager.store.entries(PODS)
    expected = [k for k in everything
                if want.matches(k[0], k[1], entries[k].meta.get("labels") or {},
                                entries[k].meta.get("fields") or {})]
    got: list[tuple[str, str]] = []
    cont = ""
    for _ in range(len(expected) + 2):
        page = _page(manager, ns, labels, limit, cont)
        keys = list(page.keys)
        assert page.keys == keys and len(page.keys) == len(keys)
        if limit:
            assert len(keys) <= limit
        got += keys
        assert page.remaining == (len(expected) - len(got) if page.continue_token else 0)
        cont = page.continue_token
        if not cont:
            break
    assert got == expected
    bodies = [json.loads(b)["metadata"]["name"] for b in manager.reader.bodies(PODS, got[:3])]
    assert bodies == [name for _, name in got[:3]]
