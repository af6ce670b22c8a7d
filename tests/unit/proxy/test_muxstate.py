"""The multiplexer's shared state: versions, history, relist differences, resume points."""

from __future__ import annotations

import copy
import gc
import json
import tracemalloc
from typing import Any

from tests.fixtures import K8S_TESTDATA
from yurthub.kube.resources import builtin
from yurthub.proxy.muxstate import SharedState, make_obj

RT = builtin("", "v1", "services")
assert RT is not None


def svc(name: str, rv: int, ns: str = "default", **labels: str) -> Any:
    body = {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv),
                         "labels": labels}, "spec": {"type": "ClusterIP"}}
    return make_obj(RT, body)


def changes(state: SharedState, seq: int = 0) -> list[tuple[str, str, int]]:
    return [(c.type, c.obj.name, c.rv) for c in state.read(seq, 0).changes]


def test_encodings_with_and_without_type_meta():
    o = svc("a", 5, app="web")
    assert o.event.startswith(b'{"kind":"Service","apiVersion":"v1",')
    assert o.item.startswith(b'{"metadata":')
    assert o.fields["spec.type"] == "ClusterIP" and o.labels == {"app": "web"}
    # A list item (no type meta) gets it for events.
    item = make_obj(RT, {"metadata": {"name": "b", "namespace": "x", "resourceVersion": "7"}},
                    item=b'{"metadata":{"name":"b","namespace":"x","resourceVersion":"7"}}')
    assert item.event.startswith(b'{"kind":"Service","apiVersion":"v1","metadata"')
    # A pretty-printed item (as some list bodies come) still makes a valid event.
    pretty = b'{\n  "metadata": {"name": "c", "namespace": "x", "resourceVersion": "8"}\n}'
    o = make_obj(RT, json.loads(pretty), item=pretty)
    assert json.loads(o.event) == {"kind": "Service", "apiVersion": "v1", **json.loads(pretty)}
    assert o.event.startswith(b'{"kind":"Service","apiVersion":"v1","metadata"')


def test_events_apply_in_order_and_stale_ones_are_ignored():
    state = SharedState(RT, 100)
    state.replace([svc("a", 5)], 10)
    assert state.apply("ADDED", svc("b", 11))
    assert not state.apply("MODIFIED", svc("b", 11))   # a duplicate after a re-watch
    assert not state.apply("MODIFIED", svc("a", 9))    # older than the state
    assert state.apply("DELETED", svc("a", 12))
    assert changes(state) == [("ADDED", "b", 11), ("DELETED", "a", 12)]
    assert state.rv == 12 and sorted(state.objects) == [("default", "b")]
    state.bookmark(20)
    assert state.rv == 20


def test_relist_sends_the_differences_deletions_last_at_the_list_version():
    state = SharedState(RT, 100)
    state.replace([svc("a", 5), svc("b", 6), svc("c", 7)], 10)
    made = state.replace([svc("a", 5), svc("b", 14), svc("d", 12)], 20)
    assert made == 3
    assert changes(state) == [("ADDED", "d", 12), ("MODIFIED", "b", 14), ("DELETED", "c", 20)]
    deleted = state.read(0, 0).changes[-1]
    assert deleted.obj.body["metadata"]["resourceVersion"] == "20"
    assert deleted.prev is not None and deleted.prev.rv == 7
    assert state.rv == 20


def test_resume_points_and_the_history_window():
    state = SharedState(RT, 16)
    state.replace([], 100)
    assert state.seq_after(100) == 0 and state.seq_after(99) is None
    for i in range(40):
        state.apply("ADDED", svc(f"s{i}", 101 + i))
    assert state.base_rv > 100
    assert state.seq_after(100) is None                 # too old: the watch gets 410
    seq = state.seq_after(state.base_rv)
    assert seq is not None
    got = state.read(seq, 0)
    assert [c.rv for c in got.changes] == list(range(state.base_rv + 1, 141))
    assert state.read(0, 0).lost                        # a watcher left behind must end
    assert state.seq_after(500) == got.next_seq         # a future version: wait for it


def test_objects_at_a_past_version():
    state = SharedState(RT, 100)
    state.replace([svc("a", 5, app="web"), svc("b", 6)], 10)
    seq = state.seq_after(10)
    assert seq == 0
    state.apply("MODIFIED", svc("a", 11, app="db"))
    state.apply("ADDED", svc("c", 12))
    state.apply("DELETED", svc("b", 13))
    past = {o.name: o for o in state.objects_at(seq)}
    assert sorted(past) == ["a", "b"] and past["a"].labels == {"app": "web"}
    later = state.seq_after(12)
    assert later is not None
    assert sorted(o.name for o in state.objects_at(later)) == ["a", "b", "c"]



def test_the_list_at_an_exact_version():
    state = SharedState(RT, 16)
    state.replace([svc("a", 5, app="web"), svc("b", 6)], 10)
    state.apply("MODIFIED", svc("a", 11, app="db"))
    state.apply("ADDED", svc("c", 12))
    state.apply("DELETED", svc("b", 13))
    state.bookmark(20)

    def at(rv: int) -> list[tuple[str, int]] | None:
        got = state.snapshot_at(rv)
        return None if got is None else [(o.name, o.rv) for o in got]
    assert at(10) == [("a", 5), ("b", 6)]
    assert at(11) == [("a", 11), ("b", 6)]
    assert at(12) == [("a", 11), ("b", 6), ("c", 12)]
    assert at(13) == at(20) == [("a", 11), ("c", 12)]
    assert at(9) is None and at(21) is None     # before the history; not reached yet
    for i in range(40):
        state.apply("ADDED", svc(f"s{i:02d}", 21 + i))
    assert at(12) is None                       # the history moved on: 410


SLICES = builtin("discovery.k8s.io", "v1", "endpointslices")
assert SLICES is not None


def test_the_state_holds_objects_as_their_bytes_not_decoded():
    """kube-proxy's EndpointSlices are an edge node's biggest list: the shared state must
    cost about their bytes, not the six to eight times a decoded copy costs (a 65 MB list
    held ~500 MB), and every encoding and the decoded object must still come out right."""
    base = json.loads((K8S_TESTDATA / "discovery.k8s.io.v1.EndpointSlice.json").read_bytes())
    base.pop("kind")
    base.pop("apiVersion")
    base["endpoints"] = [{**base["endpoints"][0], "nodeName": f"node-{i:04d}",
                          "addresses": [f"10.0.{i // 250}.{i % 250}"]} for i in range(40)]
    raws = []
    for i in range(1500):
        body = copy.deepcopy(base)
        body["metadata"].update(name=f"s-{i}", namespace="default", resourceVersion=str(i + 1))
        raws.append(json.dumps(body, separators=(",", ":")).encode())
    size = sum(map(len, raws))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        objs = []
        for raw in raws:  # as the feed does: each item decoded, kept as its bytes
            objs.append(make_obj(SLICES, json.loads(raw), item=raw))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1.0 * size, f"{held} bytes held for {size} bytes of objects"
    o = objs[7]
    assert o.item is raws[7]
    typed = json.loads(o.event)
    assert typed["kind"] == "EndpointSlice" and typed["apiVersion"] == "discovery.k8s.io/v1"
    assert o.body == typed and {k: v for k, v in typed.items()
                                if k not in ("kind", "apiVersion")} == json.loads(raws[7])
    assert len(o.body["endpoints"]) == 40 and o.labels == base["metadata"].get("labels", {})


def test_a_relist_below_the_state_starts_it_again_at_the_list():
    # etcd restored from a backup: the cloud's versions went back from 30 to 12.
    state = SharedState(RT, 100)
    state.replace([svc("a", 5), svc("b", 6)], 10)
    state.apply("MODIFIED", svc("a", 20))
    state.apply("ADDED", svc("c", 30))
    open_watch = state.seq_after(30)
    assert state.replace([svc("a", 5), svc("d", 11)], 12) == 0
    assert state.rv == 12 and sorted(n for _, n in state.objects) == ["a", "d"]
    assert state.objects[("default", "a")].rv == 5
    # The cloud's new changes are taken, not ignored as older than the lost versions.
    assert state.apply("MODIFIED", svc("d", 13))
    assert state.rv == 13
    # A watch open across it is left behind (it must list again); one from the list is not.
    assert open_watch is not None and state.read(open_watch, 0).lost
    assert open_watch < state.rewound_seq
    assert state.seq_after(11) is None
    fresh = state.seq_after(12)
    assert fresh is not None and changes(state, fresh) == [("MODIFIED", "d", 13)]


def test_a_relist_of_restored_objects_reaches_watches_at_the_states_version():
    # etcd restored from a backup with --bump-revision: the cloud's versions go on upwards,
    # but its objects are the backup's (a older than held, b back after its deletion).
    state = SharedState(RT, 100)
    state.replace([svc("a", 5), svc("b", 6)], 10)
    state.apply("MODIFIED", svc("a", 20))
    state.apply("DELETED", svc("b", 25))
    watch_at = state.seq_after(30)
    state.bookmark(30)
    state.replace([svc("a", 5), svc("b", 6)], 1000)
    assert watch_at is not None
    got = [(c.type, c.obj.name, c.obj.rv) for c in state.read(watch_at, 0).changes
           if c.rv > 30]  # what a watch from 30 is sent (SharedWatch: after its version)
    assert sorted(got) == [("ADDED", "b", 6), ("MODIFIED", "a", 5)]
    assert state.rv == 1000
