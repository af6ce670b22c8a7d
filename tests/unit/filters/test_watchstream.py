"""The watch filter: what each upstream event becomes for one client (rules by hand)."""

from __future__ import annotations

import json

import pytest

from tests.unit.filters.sandbox_objects import ctx, list_body, obj, scope
from yurthub.errors import DecodeError
from yurthub.filters.chain import Chain
from yurthub.filters.discardcloudservice import DiscardCloudService
from yurthub.filters.liststream import filter_list
from yurthub.filters.masterservice import MasterService
from yurthub.filters.servicetopology import ServiceTopology
from yurthub.filters.visibility import Visibility
from yurthub.filters.watchstream import filter_watch

SVC = ("", "v1", "services")
KUBE_PROXY = ("kube-proxy", "", "services")


def ev(etype: str, o: dict) -> bytes:
    return json.dumps({"type": etype, "object": o}, separators=(",", ":")).encode() + b"\n"


def lb(discard: bool, rv: int) -> dict:
    o = obj("services", "default", "web-lb")
    o["metadata"]["resourceVersion"] = str(rv)
    o["metadata"]["annotations"] = {"svc.openyurt.io/discard": "true" if discard else "false"}
    return o


def run(lines: list[bytes], chain: Chain, visibility=None, size: int = 0) -> list[tuple]:
    body = b"".join(lines)
    chunks = [body[i:i + size] for i in range(0, len(body), size)] if size else lines
    out = b"".join(filter_watch(chunks, chain, visibility))
    events = [json.loads(line) for line in out.splitlines()]
    return [(e["type"], e["object"]["metadata"].get("name"),
             e["object"]["metadata"].get("resourceVersion")) for e in events]


def discard_chain() -> Chain:
    return Chain([DiscardCloudService()], scope(*SVC))


@pytest.mark.parametrize("size", [0, 1, 50])
def test_drop_and_pass_again(size):
    # The client listed web-lb while it passed (discard=false), then it is discarded, changed
    # while discarded, passes again, and is deleted.
    lines = [ev("MODIFIED", lb(True, 11)), ev("MODIFIED", lb(True, 12)),
             ev("MODIFIED", lb(False, 13)), ev("MODIFIED", lb(False, 14)),
             ev("DELETED", lb(False, 15))]
    assert run(lines, discard_chain(), size=size) == [
        ("DELETED", "web-lb", "11"),     # dropped: the client had it, so it goes
        ("ADDED", "web-lb", "13"),       # passes again: new to the client
        ("MODIFIED", "web-lb", "14"),
        ("DELETED", "web-lb", "15"),
    ]


def test_added_while_dropped_is_never_seen_and_its_delete_neither():
    lines = [ev("ADDED", lb(True, 11)), ev("MODIFIED", lb(True, 12)),
             ev("DELETED", lb(True, 13))]
    assert run(lines, discard_chain()) == []


def test_what_the_list_dropped_is_not_deleted_again():
    vis = Visibility()
    view = vis.view(KUBE_PROXY)
    body = list_body("/api/v1/services")
    list(filter_list([body], discard_chain(), on_dropped=lambda k, rv: view.mark(k, True, rv)))
    # (each watch reads the record as it stood when it began: after the list)
    assert vis.view(KUBE_PROXY).is_dropped(("default", "web-lb"))
    # The seeded web-lb (discard=true) changes while still discarded: nothing for the client.
    assert run([ev("MODIFIED", lb(True, 50))], discard_chain(), vis.view(KUBE_PROXY)) == []
    # Then it stops being discarded: it arrives as ADDED, and the ledger forgets it.
    assert run([ev("MODIFIED", lb(False, 51))], discard_chain(), vis.view(KUBE_PROXY)) == [
        ("ADDED", "web-lb", "51")]
    assert not vis.view(KUBE_PROXY).is_dropped(("default", "web-lb"))
    # Another client's record is its own.
    assert not vis.view(("kubelet", "", "services")).is_dropped(("default", "web-lb"))


def test_two_watches_of_one_client_each_delete_what_they_had():
    # kube-proxy watches Services twice (two selectors) from a list that kept web-lb; it is
    # then discarded.  The first watch's decision must not make the second one skip the
    # DELETED its client needs (it would keep a discarded Service for good).
    from yurthub.filters.watchstream import WatchFilter
    from yurthub.kube.framing import WatchFramer
    vis = Visibility()
    first = WatchFilter(discard_chain(), vis.view(KUBE_PROXY))
    second = WatchFilter(discard_chain(), vis.view(KUBE_PROXY))
    [event] = WatchFramer().feed(ev("MODIFIED", lb(True, 20)))
    assert first.decide(event)[0] == "DELETED"
    assert second.decide(event)[0] == "DELETED"
    # A watch begun after that (the client resumed) knows the client no longer has it.
    third = WatchFilter(discard_chain(), vis.view(KUBE_PROXY))
    [event] = WatchFramer().feed(ev("MODIFIED", lb(True, 21)))
    assert third.decide(event) is None
    [event] = WatchFramer().feed(ev("MODIFIED", lb(False, 22)))
    assert third.decide(event)[0] == "ADDED"


def test_a_watch_resuming_from_before_another_watchs_decision_still_deletes():
    # kube-proxy listed web-lb (kept) at 19; before its watch from 19 begins, another
    # kube-proxy watch (another process, or one that broke before sending the event) sees
    # it discarded at 20.  The watch from 19 gets the same event: its client has web-lb.
    from yurthub.filters.watchstream import WatchFilter
    from yurthub.kube.framing import WatchFramer
    vis = Visibility()
    other = WatchFilter(discard_chain(), vis.view(KUBE_PROXY))
    [event] = WatchFramer().feed(ev("MODIFIED", lb(True, 20)))
    assert other.decide(event)[0] == "DELETED"
    view = vis.view(KUBE_PROXY)
    view.since = 19
    got = WatchFilter(discard_chain(), view).decide(event)
    assert got is not None and got[0] == "DELETED"
    # A watch from 20 on (its list already left web-lb out) is told nothing of it.
    view = vis.view(KUBE_PROXY)
    view.since = 20
    [later] = WatchFramer().feed(ev("MODIFIED", lb(True, 21)))
    assert WatchFilter(discard_chain(), view).decide(later) is None


def test_a_list_with_selectors_that_showed_an_object_outdates_an_older_drop():
    # A kube-proxy watch saw web-lb discarded at 20 and ended; web-lb was kept again at 21
    # with no watch to see it.  A new kube-proxy lists (with its label selectors) at 21:
    # web-lb is in it.  Discarded again at 22, it must go from that client too.
    from yurthub.filters.watchstream import WatchFilter
    from yurthub.kube.framing import WatchFramer
    vis = Visibility()
    [event] = WatchFramer().feed(ev("MODIFIED", lb(True, 20)))
    assert WatchFilter(discard_chain(), vis.view(KUBE_PROXY)).decide(event)[0] == "DELETED"
    listing = vis.view(KUBE_PROXY)
    listing.lists = ""  # a list of every namespace, with selectors: it did not drop web-lb
    listing.served("21")
    view = vis.view(KUBE_PROXY)
    view.since = 21
    [event] = WatchFramer().feed(ev("MODIFIED", lb(True, 22)))
    got = WatchFilter(discard_chain(), view).decide(event)
    assert got is not None and got[0] == "DELETED"


def test_bookmark_and_error_pass_untouched_and_unchanged_events_keep_their_bytes():
    bookmark = b'{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1",' \
               b'"metadata":{"resourceVersion":"77"}}}\n'
    error = b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},' \
            b'"status":"Failure","message":"too old","reason":"Expired","code":410}}\n'
    plain = ev("MODIFIED", obj("services", "default", "web-plain"))
    body = bookmark + plain + error
    for chain in (discard_chain(), Chain([MasterService()], scope(*SVC))):
        assert b"".join(filter_watch([body], chain)) == body


def test_changing_filters_rewrite_and_keep_types():
    chain = Chain([MasterService()], scope(*SVC, ctx(hub_host="169.254.2.1")))
    k = obj("services", "default", "kubernetes")
    out = b"".join(filter_watch([ev("ADDED", k), ev("MODIFIED", k), ev("DELETED", k)], chain))
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert {e["object"]["spec"]["clusterIP"] for e in events} == {"169.254.2.1"}


def test_topology_events_as_kube_proxy():
    context = ctx(node_name="node-0001", pool="pool-a",
                  pool_nodes=frozenset({"node-0000", "node-0001"}),
                  service_topology={("default", "web-pool"): "openyurt.io/nodepool"})
    chain = Chain([ServiceTopology()], scope("discovery.k8s.io", "v1", "endpointslices",
                                             context))
    s = obj("endpointslices", "default", "web-pool-sbx01")
    moved = json.loads(json.dumps(s))
    moved["endpoints"][0]["nodeName"] = "node-0003"  # node-0000's endpoint moves to pool-b
    out = b"".join(filter_watch([ev("ADDED", s), ev("MODIFIED", moved)], chain))
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["type"], [a for ep in e["object"]["endpoints"] for a in ep["addresses"]])
            for e in events] == [("ADDED", ["10.128.0.206", "10.128.4.206"]),
                                 ("MODIFIED", ["10.128.4.206"])]


def test_a_torn_or_bad_stream_is_an_error():
    with pytest.raises(DecodeError):
        list(filter_watch([ev("ADDED", lb(False, 1))[:-5]], discard_chain()))
    with pytest.raises(DecodeError):
        list(filter_watch([b'{"type":"NOPE","object":{}}\n'], discard_chain()))


def test_visibility_is_bounded_and_forgets_clients():
    vis = Visibility(maxsize=3)
    for i in range(5):
        vis.mark(KUBE_PROXY, ("ns", str(i)), True)
    assert len(vis) == 3 and vis.is_dropped(KUBE_PROXY, ("ns", "4"))
    assert not vis.is_dropped(KUBE_PROXY, ("ns", "0"))
    vis.forget({KUBE_PROXY})
    assert len(vis) == 0


def test_a_whole_list_replaces_what_earlier_answers_dropped():
    # web-lb was dropped (discarded), passed again while no watch saw it, and a new list
    # showed it: the watch after that list must delete it when it is discarded again.
    vis = Visibility()
    vis.view(KUBE_PROXY).mark(("default", "web-lb"), True)
    relist = vis.view(KUBE_PROXY)
    relist.covers = ""           # every namespace, no selectors: the whole truth
    relist.served("60")
    assert run([ev("MODIFIED", lb(True, 61))], discard_chain(), vis.view(KUBE_PROXY)) == [
        ("DELETED", "web-lb", "61")]
    # A list with a selector (or of another namespace) shows only part: the record stays.
    vis.view(KUBE_PROXY).mark(("default", "web-lb"), True)
    partial = vis.view(KUBE_PROXY)
    partial.covers = "other"
    partial.served("62")
    assert vis.view(KUBE_PROXY).is_dropped(("default", "web-lb"))
