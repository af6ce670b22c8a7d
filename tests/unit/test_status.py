"""The status page's parts that need no hub: the bounded recorder and the page's escaping."""

from __future__ import annotations

import threading

from yurthub.recorder import FALLBACK, REFUSAL, Recorder
from yurthub.statuspage import render


def test_recorder_keeps_the_last_50_newest_first_and_bounds_text():
    r = Recorder()
    threads = [threading.Thread(target=lambda k=k: [
        r.record(FALLBACK if i % 2 else REFUSAL, "kubelet", f"GET /api/v1/pods/{k}-{i}",
                 "x" * 10_000, 503) for i in range(100)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = r.recent()
    assert len(events) == 50
    assert all(len(e.reason) == 300 and e.reason.endswith("...") for e in events)
    assert [e.time for e in events] == sorted((e.time for e in events), reverse=True)
    assert r.counts == {FALLBACK: 200, REFUSAL: 200}


def test_recorder_keeps_no_credential_of_a_url():
    r = Recorder()
    r.record(REFUSAL, "kubelet", "GET /api/v1/pods?token=abc&limit=1",
             "cannot reach https://u:hunter2@cloud:6443/api/v1/pods?access_token=abc", 503)
    e = r.recent()[0]
    assert e.request == "GET /api/v1/pods?token=<redacted>&limit=1"
    assert "abc" not in e.reason and "hunter2" not in e.reason


def doc(**over):
    base = {
        "node": "edge-1", "version": "0", "time": "2026-01-01T00:00:00Z", "mode": "edge",
        "cloud": {"online": True, "since": None, "sinceSeconds": None, "healthChecked": True,
                  "servers": []},
        "cache": {"root": "/c", "disk": {"freeBytes": 1, "totalBytes": 100,
                                         "freePercent": 1.0},
                  "objects": 0, "bytes": 0, "quarantined": 0, "collections": []},
        "watches": [], "events": [], "eventCounts": {"fallbacks": 0, "refusals": 0},
        "tee": {"overflows": 0, "budgetBytes": 1, "dropped": []},
        "filters": {"enabled": True, "disabled": [], "active": [], "pool": None,
                    "zone": None, "notReady": None},
        "identity": {"method": "none", "tls": "verified"},
    }
    base.update(over)
    return base


def test_every_value_is_escaped_and_refresh_is_off_unless_asked():
    evil = '<script>alert(1)</script>"'
    page = render(doc(node=evil, events=[{
        "time": "2026-01-01T00:00:00Z", "kind": "refusal", "component": evil,
        "request": f"GET /api/v1/pods?x={evil}", "reason": evil, "code": 503,
        "ageSeconds": 1}], eventCounts={"fallbacks": 0, "refusals": 1}))
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page
    assert 'http-equiv="refresh"' not in page
    assert '<meta http-equiv="refresh" content="30">' in render(doc(), refresh=30)
    assert "1 B free of 100 B (1.0%)" in page


def test_a_hub_not_ready_says_why_on_the_page():
    """Caching stopped on a read-only file system, an identity problem: readyz and the
    metrics said so, the page showed a hub at ease."""
    stopped = ("caching stopped (read-only): the file system of /c/kubelet/pods.v1.core is "
               "read-only ([Errno 30] Read-only file system); the hub goes on proxying")
    base = doc()
    page = render(doc(
        ready={"ready": False, "reason": stopped},
        cache={**base["cache"], "stopped": stopped},
        identity={"method": "client certificate", "tls": "verified",
                  "problem": "the client certificate is due for renewal at issue"}))
    assert f'NOT READY</span> <span class="why">{stopped}</span>' in page
    assert f'caching stopped</span> <span class="why">{stopped}</span>' in page
    assert "client certificate <span class=\"why\">the client certificate is due" in page
    fine = render(doc(ready={"ready": True, "reason": None}))
    assert "NOT READY" not in fine and "caching stopped" not in fine and ">ready<" in fine


def test_the_disk_line_names_free_inodes_where_the_file_system_counts_them():
    base = doc()
    page = render(doc(cache={**base["cache"], "disk": {
        "freeBytes": 15 << 20, "totalBytes": 16 << 20, "freePercent": 93.8,
        "freeInodes": 3, "totalInodes": 40}}))
    assert '15.0 MiB free of 16.0 MiB (93.8%)</span>, <span class="why">3 of 40 inodes free' \
        in page
    assert "inodes" not in render(doc())


def test_a_page_names_every_reason_the_hub_is_not_ready():
    page = render(doc(ready={"ready": False, "reason": "a", "reasons": ["a", "b <c>"]}))
    assert '<li class="why">a</li><li class="why">b &lt;c&gt;</li>' in page
