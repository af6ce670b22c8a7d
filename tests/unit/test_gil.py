"""gil: which requests make the cache writer's long jobs give way, and that the count of
them, the collector and the switch interval always come back."""

from __future__ import annotations

import gc
import sys
import threading

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from yurthub import gil


@pytest.mark.parametrize("path, query, upgrade, streaming", [
    ("/api/v1/pods", "", "", False),
    ("/api/v1/pods", "watch=true&resourceVersion=5", "", True),
    ("/api/v1/pods", "resourceVersion=5&watch=1", "", True),
    ("/api/v1/pods", "watch=True", "", True),
    ("/api/v1/pods", "watch=false", "", False),
    ("/api/v1/pods", "watch=0", "", False),
    ("/api/v1/pods", "watch=", "", True),  # kube-apiserver: anything but 0 or false
    ("/api/v1/pods", "limit=5&watch", "", True),
    ("/api/v1/pods", "watch=FALSE", "", False),
    ("/api/v1/pods", "allowWatchBookmarks=true", "", False),
    ("/api/v1/pods", "labelSelector=watch%3Dtrue", "", False),
    ("/api/v1/watch/pods", "", "", True),
    ("/api/v1/namespaces/a/pods/p/log", "follow=true", "", True),
    ("/api/v1/namespaces/a/pods/p/log", "follow=false", "", False),
    ("/api/v1/namespaces/a/pods/p/exec", "command=sh", "SPDY/3.1", True),
    ("/v1/readyz", "", "", False),
    # read as kube-apiserver reads the query (Go's ParseQuery): keys decoded, the first
    # value, pairs with ";" dropped
    ("/api/v1/pods", "wat%63h=1", "", True),
    ("/api/v1/pods", "%77atch=true&resourceVersion=5", "", True),
    ("/api/v1/namespaces/a/pods/p/log", "fo%6Clow=true", "", True),
    ("/api/v1/pods", "watch=0&watch=1", "", False),
    ("/api/v1/pods", "watch=1;x=y", "", False),
])
def test_only_short_requests_count_as_foreground(path, query, upgrade, streaming):
    environ = {"PATH_INFO": path, "QUERY_STRING": query}
    if upgrade:
        environ["HTTP_UPGRADE"] = upgrade
    assert gil.streams(environ) is streaming


def _app(seen: list[int], fail: bool = False):
    def app(environ, start_response):
        if fail:
            raise RuntimeError("boom")
        seen.append(gil.foreground.count)

        def body():
            yield b"a"
            seen.append(gil.foreground.count)
            yield b"b"
        return Response(body())(environ, start_response)
    return app


def test_a_short_request_counts_until_its_response_is_closed():
    seen: list[int] = []
    client = Client(gil.counted(_app(seen)))
    before = gil.foreground.count
    resp = client.get("/api/v1/pods", buffered=False)
    assert gil.foreground.count == before + 1  # the body is not read yet
    assert b"".join(resp.response) == b"ab"
    assert seen == [before + 1, before + 1]
    resp.close()
    assert gil.foreground.count == before
    resp.close()  # closing twice leaves once
    assert gil.foreground.count == before


def test_watches_are_not_counted_and_a_failing_app_leaves():
    seen: list[int] = []
    before = gil.foreground.count
    resp = Client(gil.counted(_app(seen))).get("/api/v1/pods?watch=true", buffered=True)
    assert resp.data == b"ab" and seen == [before, before]
    with pytest.raises(RuntimeError):
        Client(gil.counted(_app(seen, fail=True))).get("/api/v1/pods")
    assert gil.foreground.count == before


def test_counting_from_many_threads_loses_nothing():
    before = gil.foreground.count

    def work():
        for _ in range(2000):
            gil.foreground.enter()
            gil.foreground.leave()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gil.foreground.count == before


def test_pace_sleeps_only_while_short_requests_are_served(monkeypatch):
    slept: list[float] = []
    ms = [0]

    def clock() -> float:  # a millisecond per reading
        ms[0] += 1
        return ms[0] / 1000

    monkeypatch.setattr(gil.time, "sleep", slept.append)
    monkeypatch.setattr(gil.time, "perf_counter", clock)
    monkeypatch.setattr(gil, "_paced_at", 0.0)
    fg = gil.Foreground()
    monkeypatch.setattr(gil, "foreground", fg)
    for _ in range(20):
        gil.pace()
    assert slept == []  # a quiet node: the job runs at full speed
    fg.enter()
    for _ in range(20):
        gil.pace()
    assert len(slept) >= 5 and set(slept) == {gil.PACE_PAUSE}
    fg.leave()
    slept.clear()
    for _ in range(20):  # 20 ms later: the next request of a keep-alive connection may come
        gil.pace()
    assert len(slept) >= 5
    ms[0] += int(gil.RECENT * 1000)
    slept.clear()
    for _ in range(20):
        gil.pace()
    assert slept == []


def test_a_long_job_restores_the_collector_and_switch_interval_when_it_fails():
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    with pytest.raises(ValueError), gil.long_job():
        assert gc.get_threshold()[2] == gil.NO_FULL_COLLECTION
        assert sys.getswitchinterval() <= gil.LONG_JOB_SWITCH
        raise ValueError("the job broke")
    assert gc.get_threshold() == threshold
    assert sys.getswitchinterval() == interval
