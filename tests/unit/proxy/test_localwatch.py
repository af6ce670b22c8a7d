"""A local watch's first events are read as the client takes them (proxy/localwatch.py):
a file found damaged on the way ends the watch with an ERROR event, never a traceback; its
last bookmark comes right before its timeout, as kube-apiserver's."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from types import SimpleNamespace

from yurthub.cache.reader import Freshness, WatchStart
from yurthub.errors import ServiceUnavailable
from yurthub.proxy.localwatch import LocalWatch


def test_a_file_damaged_after_the_start_was_checked_ends_the_watch_with_an_error(registry):
    def events() -> Iterator[tuple[str, bytes]]:
        yield "ADDED", b'{"metadata":{"name":"a"}}'
        raise ServiceUnavailable("the cached pods 'default/b' cannot be trusted")

    ours, theirs = socket.socketpair()
    try:
        ctx = SimpleNamespace(component="kubelet", path_qs="/api/v1/pods?watch=true",
                              client_socket=ours)
        watch = LocalWatch(registry, ctx, WatchStart(events(), 7, Freshness(0)), timeout=300,
                           bookmark=None, bookmark_interval=30)
        lines = list(watch)  # ends at once: no waiting for the timeout
        watch.close()
    finally:
        ours.close()
        theirs.close()
    assert lines[0] == b""
    assert json.loads(lines[1]) == {"type": "ADDED", "object": {"metadata": {"name": "a"}}}
    error = json.loads(lines[2])
    assert error["type"] == "ERROR" and error["object"]["code"] == 503
    assert "cannot be trusted" in error["object"]["message"]
    assert len(lines) == 3


def test_a_bookmark_comes_right_before_the_timeout_as_kube_apiservers(registry):
    bookmark = b'{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1",' \
        b'"metadata":{"resourceVersion":"7"}}}\n'
    ours, theirs = socket.socketpair()
    try:
        ctx = SimpleNamespace(component="kubelet", path_qs="/api/v1/pods?watch=true",
                              client_socket=ours)
        # A 3 s watch, bookmarks every 60 s: the only one is due 2 s before the end.
        watch = LocalWatch(registry, ctx, WatchStart(iter([]), 7, Freshness(0)), timeout=3,
                           bookmark=bookmark, bookmark_interval=60)
        lines = list(watch)
        watch.close()
    finally:
        ours.close()
        theirs.close()
    assert lines == [b"", bookmark]
