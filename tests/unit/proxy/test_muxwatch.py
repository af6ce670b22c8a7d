"""A client's shared watch takes what it missed in bounded batches (proxy/muxwatch.py): a
watch far behind the shared state never holds a copy of the whole history at once."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

from yurthub.cache.views import parse_selectors
from yurthub.kube.resources import builtin
from yurthub.proxy.muxstate import SharedState, make_obj
from yurthub.proxy.muxwatch import SharedWatch

RT = builtin("", "v1", "services")
assert RT is not None
PAD = "y" * 20_000  # a Service with a 20 KB annotation, as a busy cloud patches it


def svc(rv: int) -> object:
    return make_obj(RT, {"kind": "Service", "apiVersion": "v1",
                         "metadata": {"name": "big", "namespace": "default",
                                      "resourceVersion": str(rv),
                                      "annotations": {"x": f"{rv}{PAD}"}}})


def test_a_read_takes_at_most_its_bytes_and_the_next_one_goes_on_from_there():
    state = SharedState(RT, 1024)
    state.replace([], 10)
    for rv in range(11, 61):
        state.apply("MODIFIED", svc(rv))
    got = state.read(0, 0, max_bytes=100_000)
    assert [c.rv for c in got.changes] == [11, 12, 13, 14, 15]   # 5 x ~20 KB
    assert not got.caught_up and got.rv == 15 and got.next_seq == 5
    rvs = []
    seq = 0
    while True:
        got = state.read(seq, 0, max_bytes=100_000)
        rvs += [c.rv for c in got.changes]
        seq = got.next_seq
        if got.caught_up:
            break
    assert rvs == list(range(11, 61)) and got.rv == 60          # no gap, no duplicate
    assert len(state.read(0, 0).changes) == 50                    # unbounded as before


def test_a_watch_far_behind_gets_every_event_in_batches_of_bounded_size(registry):
    state = SharedState(RT, 1024)
    state.replace([svc(10)], 10)
    seq = state.seq_after(10)
    for rv in range(11, 511):  # 500 changes of ~20 KB: ~10 MB the watch has not taken
        state.apply("MODIFIED", svc(rv))
    ours, theirs = socket.socketpair()
    ctx = SimpleNamespace(component="kube-proxy", client_socket=ours,
                          info=SimpleNamespace(allow_watch_bookmarks=False))
    watch = SharedWatch(registry, ctx, state, parse_selectors("", "", "", RT), None, None,
                        seq=seq, initial=[], start_rv=10, timeout=300, bookmark_interval=60,
                        end_initial=False)
    body = iter(watch)
    rvs: list[int] = []
    biggest = 0
    try:
        assert next(body) == b""
        while len(rvs) < 500:
            chunk = next(body)
            biggest = max(biggest, len(chunk))
            for line in chunk.splitlines():
                event = json.loads(line)
                assert event["type"] == "MODIFIED"
                rvs.append(int(event["object"]["metadata"]["resourceVersion"]))
    finally:
        body.close()  # type: ignore[attr-defined]
        watch.close()
        ours.close()
        theirs.close()
    assert rvs == list(range(11, 511))
    # One write holds at most a batch (256 KiB and the event that passed it), not all 10 MB.
    assert biggest < 300_000


def test_a_watch_open_when_the_cloud_went_back_ends_with_410(registry):
    state = SharedState(RT, 1024)
    state.replace([svc(10)], 10)
    state.apply("MODIFIED", svc(30))
    ours, theirs = socket.socketpair()
    ctx = SimpleNamespace(component="kube-proxy", client_socket=ours,
                          info=SimpleNamespace(allow_watch_bookmarks=False))
    watch = SharedWatch(registry, ctx, state, parse_selectors("", "", "", RT), None, None,
                        seq=state.seq_after(30), initial=[], start_rv=30, timeout=5,
                        bookmark_interval=60, end_initial=False)
    body = iter(watch)
    try:
        assert next(body) == b""
        state.replace([svc(8)], 12)  # etcd restored: the relist is older than the state
        state.apply("MODIFIED", svc(13))
        event = json.loads(next(body))
        assert event["type"] == "ERROR" and event["object"]["code"] == 410
        assert "went back" in event["object"]["message"]
        assert next(body, None) is None
    finally:
        body.close()  # type: ignore[attr-defined]
        watch.close()
        ours.close()
        theirs.close()
