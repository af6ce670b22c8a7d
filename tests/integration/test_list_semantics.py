"""What kube-apiserver answers to a list's or a watch's options, the hub answers too: through
the multiplexer, from the cache while the cloud is away, and once it is back.

Each case here was a tester's report: ``timeoutSeconds=0`` ended watches at once, list
options the cloud refuses were answered 200, ``limit=-1`` offline dropped items, the cache's
continue token went to the cloud (400), and a watch-list "not older than" a version sent an
older state.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.test_mux import SVC, service, watch_lines

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
PODS = "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000"
BAD_OPTIONS = ["resourceVersionMatch=NotOlderThan", "resourceVersionMatch=bogus",
               "resourceVersion=0&resourceVersionMatch=Exact", "resourceVersion=abc",
               "sendInitialEvents=true"]
BAD_WATCH_OPTIONS = ["watch=1&sendInitialEvents=true&allowWatchBookmarks=true",
                     "watch=1&resourceVersion=5&resourceVersionMatch=NotOlderThan",
                     "watch=1&sendInitialEvents=true&resourceVersionMatch=Exact",
                     "watch=1&resourceVersion=abc",
                     "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"]


def answer(base: Any, path: str, ua: str = KUBELET) -> tuple[int, dict[str, Any]]:
    status, _, body = http(base + path, headers={"User-Agent": ua})
    return status, json.loads(body)


def outcome(base: Any, path: str, ua: str = KUBELET) -> tuple[int, str, str]:
    status, doc = answer(base, path, ua)
    if doc.get("kind") == "Status":
        return status, doc["reason"], doc["message"]
    return status, doc["kind"], ""


def names(doc: dict[str, Any]) -> list[str]:
    return [i["metadata"]["name"] for i in doc["items"]]


def feed_requests(sandbox: Any, verb: str) -> list[Any]:
    """The multiplexer's lists ("") or watches ("watch") of Services in the cloud."""
    return [r for r in sandbox.requests("GET /api/v1/services?")
            if r.user_agent.startswith("yurthub-multiplexer")
            and (r.query.startswith("watch=") if verb else not r.query)]


def stall_feed(sandbox: Any, hub: Any) -> None:
    """Make the multiplexer's upstream watch of Services stall (the cloud answers all else).

    Its watch is cut and the re-watch stalled; a canary written then must not reach the
    shared state (the re-watch may find a pooled connection the cut closed and come again,
    past the stall: then once more).
    """
    for attempt in range(3):
        sandbox.stall_next(match="/api/v1/services?watch=true&resourceVersion=")
        sandbox.cut_connections()
        time.sleep(1.5)
        sandbox.put(service(f"canary-{attempt}", app="canary"))
        time.sleep(1.5)
        doc = answer(hub.url, SVC + "?resourceVersion=0&labelSelector=app%3Dcanary",
                     "proxy-agent/1")[1]  # "any" version: the state as it is
        if f"canary-{attempt}" not in names(doc):
            return
        sandbox.clear_faults()
    raise AssertionError("the multiplexer's watch could not be stalled")


def healthy(hub: Any, up: bool) -> None:
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == (1 if up else 0),
             20, what=f"the hub to see the cloud {'back' if up else 'gone'}")


def bookmarks(lines: Any, n: int) -> list[dict[str, Any]]:
    """The first ``n`` events of a watch."""
    got = []
    for ev in lines:
        got.append(ev)
        if len(got) == n:
            break
    return got


def test_timeout_seconds_zero_is_unset(sandbox, hub_factory):
    """kube-apiserver: timeoutSeconds=0 is minRequestTimeout * [1, 2), not "end now"."""
    hub = hub_factory(sandbox.url, extra=["--watch-bookmark-interval", "1"])
    sandbox.put(service("quiet", app="quiet"))
    assert hub.get(SVC, ua="proxy-agent/1")[0] == 200
    assert hub.get(PODS)[0] == 200
    started = time.monotonic()
    with watch_lines(hub.url, SVC, "proxy-agent/1", timeoutSeconds="0",
                     allowWatchBookmarks="true", resourceVersion="0",
                     labelSelector="app=quiet") as lines:
        got = bookmarks(lines, 4)  # ADDED quiet, then bookmarks a second apart
    assert [e["type"] for e in got] == ["ADDED", "BOOKMARK", "BOOKMARK", "BOOKMARK"]
    assert time.monotonic() - started > 2


def test_timeout_seconds_zero_is_unset_offline(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, extra=["--watch-bookmark-interval", "1"])
    assert hub.get(PODS)[0] == 200
    sandbox.offline()
    healthy(hub, False)
    rv = answer(hub.url, PODS)[1]["metadata"]["resourceVersion"]
    started = time.monotonic()
    with watch_lines(hub.url, PODS.split("?")[0], KUBELET, timeoutSeconds="0",
                     allowWatchBookmarks="true", resourceVersion=rv,
                     fieldSelector="spec.nodeName=node-0000") as lines:
        got = bookmarks(lines, 3)
    assert [e["type"] for e in got] == ["BOOKMARK"] * 3
    assert time.monotonic() - started > 1.5


@pytest.mark.parametrize("queries", [BAD_OPTIONS, BAD_WATCH_OPTIONS], ids=["list", "watch"])
def test_options_are_checked_as_the_cloud_checks_them(sandbox, hub_factory, queries):
    hub = hub_factory(sandbox.url, extra=["--watch-bookmark-interval", "1"])
    assert hub.get(SVC, ua="proxy-agent/1")[0] == 200
    for q in queries:
        cloud = outcome(sandbox.url, f"{SVC}?{q}")
        assert cloud[0] in (400, 422), (q, cloud)
        assert outcome(hub.url, f"{SVC}?{q}", "proxy-agent/1") == cloud, q  # multiplexer
        assert outcome(hub.url, f"{PODS}&{q}") == outcome(sandbox.url, f"{PODS}&{q}"), q


def test_list_options_are_checked_offline(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, extra=["--watch-bookmark-interval", "1"])
    assert hub.get(PODS)[0] == 200
    assert hub.get(SVC, ua="proxy-agent/1")[0] == 200
    sandbox.offline()
    healthy(hub, False)
    for q in BAD_OPTIONS:
        status, reason, message = outcome(hub.url, f"{PODS}&{q}")
        assert (status, reason) == ((400, "BadRequest") if "abc" in q else (422, "Invalid")), q
        assert message, q
        assert outcome(hub.url, f"{SVC}?{q}", "proxy-agent/1")[:2] == (status, reason), q


@pytest.mark.parametrize("query, message", [
    ("limit=abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("limit=", 'strconv.ParseInt: parsing "": invalid syntax'),
    ("watch=1&timeoutSeconds=", 'strconv.ParseInt: parsing "": invalid syntax'),
    ("limit=99999999999999999999",
     'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
])
def test_malformed_integer_options_offline_are_the_clouds_400(sandbox, hub_factory, query,
                                                             message):
    """kube-apiserver converts a present ``limit``/``timeoutSeconds`` with strconv.ParseInt,
    an empty one too: 400 with strconv's words (the hub said "is not an integer", and served
    ``limit=`` as a whole list)."""
    hub = hub_factory(sandbox.url)
    assert hub.get(PODS)[0] == 200
    sandbox.offline()
    healthy(hub, False)
    assert outcome(hub.url, f"{PODS}&{query}") == (400, "BadRequest", message)


def test_a_get_of_one_object_with_watch_is_the_object_online_and_offline(sandbox,
                                                                         hub_factory):
    """kube-apiserver reads ?watch on a GET of a collection only (one object's GET decodes
    GetOptions): ``.../pods/x?watch=1`` is the pod.  The sandbox streamed it as a watch, and
    the hub, teeing what it took for a get, never answered."""
    hub = hub_factory(sandbox.url)
    pod = answer(hub.url, PODS)[1]["items"][0]["metadata"]
    path = f"/api/v1/namespaces/{pod['namespace']}/pods/{pod['name']}?watch=1"

    def got() -> tuple[int, str, str]:
        status, _, body = http(hub.url + path, headers={"User-Agent": KUBELET}, timeout=10)
        doc = json.loads(body)
        return status, doc["kind"], doc["metadata"]["name"]

    assert got() == (200, "Pod", pod["name"])
    sandbox.offline()
    healthy(hub, False)
    assert got() == (200, "Pod", pod["name"])


def test_a_watch_of_one_object_may_pin_only_its_name_online_and_offline(sandbox,
                                                                         hub_factory):
    """``/watch/.../pods/<name>`` with a field selector that pins anything but that name is
    kube-apiserver's 400 (ListResource); the sandbox and the hub offline streamed it."""
    hub = hub_factory(sandbox.url)
    pod = answer(hub.url, PODS)[1]["items"][0]["metadata"]
    path = (f"/api/v1/watch/namespaces/{pod['namespace']}/pods/{pod['name']}"
            "?timeoutSeconds=1&fieldSelector=spec.nodeName%3Dnode-0000")
    refused = (400, "BadRequest", "fieldSelector metadata.name doesn't match requested name")
    assert outcome(hub.url, path) == refused
    sandbox.offline()
    healthy(hub, False)
    assert outcome(hub.url, path) == refused


def test_a_negative_limit_is_no_limit_offline(sandbox, hub_factory):
    hub = hub_factory(sandbox.url)
    full = names(answer(hub.url, PODS)[1])
    assert len(full) >= 2
    sandbox.offline()
    healthy(hub, False)
    # limit <= 0 is no limit (Python's keys[:-1] dropped the last pod: kubelet kills it).
    for limit in ("-1", "-4", "0"):
        status, doc = answer(hub.url, f"{PODS}&limit={limit}")
        assert status == 200 and names(doc) == full, limit
        assert "continue" not in doc["metadata"]


def test_a_continue_token_of_the_cache_is_expired_once_the_cloud_is_back(sandbox,
                                                                         hub_factory):
    hub = hub_factory(sandbox.url)
    full = names(answer(hub.url, PODS)[1])
    sandbox.offline()
    healthy(hub, False)
    status, page = answer(hub.url, PODS + "&limit=1")
    token = page["metadata"]["continue"]
    assert status == 200 and token
    sandbox.online()
    healthy(hub, True)
    status, doc = answer(hub.url, f"{PODS}&limit=1&continue={token}")
    # 410 (not the cloud's 400 for a token it cannot read): client-go's pager lists again.
    assert (status, doc["reason"]) == (410, "Expired"), doc
    assert not sandbox.requests("continue=")
    # The cloud's own tokens still go to the cloud.
    status, page = answer(hub.url, PODS + "&limit=1")
    status, rest = answer(hub.url, f"{PODS}&limit=5&continue={page['metadata']['continue']}")
    assert status == 200 and names(page) + names(rest) == full


def test_watch_list_not_older_than_a_version_the_state_lacks_is_answered(sandbox,
                                                                         hub_factory):
    hub = hub_factory(sandbox.url, extra=["--watch-bookmark-interval", "1"])
    assert hub.get(SVC, ua="proxy-agent/1")[0] == 200
    stall_feed(sandbox, hub)  # the shared state lags the next write
    x = sandbox.put(service("late", app="late"))["metadata"]["resourceVersion"]
    query = {"sendInitialEvents": "true", "allowWatchBookmarks": "true",
             "resourceVersionMatch": "NotOlderThan", "resourceVersion": x,
             "labelSelector": "app=late", "timeoutSeconds": "10"}
    with watch_lines(hub.url, SVC, "proxy-agent/1", **query) as lines:
        first, second = next(lines), next(lines)
    # Not an older state, and not a 504 while the cloud answers: the cloud answers it.
    assert [first["type"], second["type"]] == ["ADDED", "BOOKMARK"], first
    assert first["object"]["metadata"]["name"] == "late"
    assert int(second["object"]["metadata"]["resourceVersion"]) >= int(x)
    # Answered the same while the feed catches up.
    got: list[dict[str, Any]] = []

    def watch() -> None:
        with watch_lines(hub.url, SVC, "proxy-agent/1", **query) as lines:
            got.extend([next(lines), next(lines)])
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(1)
    sandbox.release()
    t.join(15)
    assert [e["type"] for e in got] == ["ADDED", "BOOKMARK"], got
    assert got[0]["object"]["metadata"]["name"] == "late"
    assert int(got[1]["object"]["metadata"]["resourceVersion"]) >= int(x)


def test_a_list_without_resource_version_is_a_consistent_read(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, extra=["--watch-bookmark-interval", "1"])
    assert hub.get(SVC, ua="proxy-agent/1")[0] == 200
    time.sleep(1)  # the feed learns the apiserver's bookmark cadence (0.3 s here)
    stall_feed(sandbox, hub)  # the state lags the cloud for as long
    lists = len(feed_requests(sandbox, ""))
    sandbox.put(service("fresh", app="fresh"))
    started = time.monotonic()
    status, doc = answer(hub.url, SVC + "?labelSelector=app%3Dfresh", "proxy-agent/1")
    assert status == 200 and names(doc) == ["fresh"]  # from the cloud
    assert time.monotonic() - started < 3
    # The feed's stalled watch was ended (silent past its bookmark cadence): it watched
    # again from its version (no list), so the shared state, watches included, caught up
    # and the next lists are answered from it at once.  (The stalled request is still
    # open in the sandbox, which logs a request once it has answered it.)
    wait_for(lambda: "fresh" in names(answer(
        hub.url, SVC + "?resourceVersion=0&labelSelector=app%3Dfresh", "proxy-agent/1")[1]),
        5, what="the shared state caught up")
    assert len(feed_requests(sandbox, "")) == lists
    # Read-your-writes: an object written just before the list is in it; each list costs
    # the cloud one small probe (a list of one item), and no list.
    probes = len(sandbox.requests("limit=1"))
    took = []
    for i in range(20):
        sandbox.put(service(f"ryw-{i}", app="ryw"))
        started = time.monotonic()
        status, doc = answer(hub.url, SVC + "?labelSelector=app%3Dryw", "proxy-agent/1")
        took.append(time.monotonic() - started)
        assert status == 200 and f"ryw-{i}" in names(doc), (i, names(doc))
    assert sorted(took)[len(took) // 2] < 0.5, took
    wait_for(lambda: len(sandbox.requests("limit=1")) == probes + 20, 5, what="20 probes")
    assert len(feed_requests(sandbox, "")) == lists
    # A list whose write's event reached the state after the probe's answer (a loaded
    # machine) is rightly asked of the cloud; most are not.
    to_cloud = [r for r in sandbox.requests() if r.path == SVC
                and r.user_agent.startswith("proxy-agent") and "fresh" not in r.query]
    assert len(to_cloud) <= 5, to_cloud
    # A list from "any" version (resourceVersion=0) is not a consistent read: no probe.
    probes = len(sandbox.requests("limit=1"))
    assert answer(hub.url, SVC + "?resourceVersion=0", "proxy-agent/1")[0] == 200
    time.sleep(0.2)
    assert len(sandbox.requests("limit=1")) == probes
    # Ten clients at once (a slow cloud: each request takes 0.3 s) share their probes: the
    # first one's, and one sent once it answered, for all who asked meanwhile.
    sandbox.set_latency(300)
    probes = len(sandbox.requests("limit=1"))
    got: list[int] = []

    def one(ua: str) -> None:
        got.append(len(names(answer(hub.url, SVC + "?labelSelector=app%3Dryw", ua)[1])))
    threads = [threading.Thread(target=one, args=(f"agent-{i}/1",)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    sandbox.set_latency(0)
    assert got == [20] * 10
    time.sleep(0.2)
    assert 1 <= len(sandbox.requests("limit=1")) - probes <= 3
    # Offline, the state answers as it is.
    sandbox.offline()
    healthy(hub, False)
    status, doc = answer(hub.url, SVC + "?labelSelector=app%3Dryw", "proxy-agent/1")
    assert status == 200 and len(names(doc)) == 20


@pytest.fixture
def quiet_sandbox() -> Iterator[Sandbox]:
    """kube-apiserver's bookmark cadence: no bookmark comes while a test runs, so a quiet
    collection's shared state stays behind the cloud's version, which writes elsewhere
    move on."""
    sandbox = Sandbox(nodes=1, pods_per_node=1, bookmark_interval=60, control_port=0).start()
    yield sandbox
    sandbox.stop()


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}}


def test_a_consistent_read_of_a_quiet_collection_is_answered_at_once(quiet_sandbox,
                                                                      hub_factory):
    sandbox = quiet_sandbox
    hub = hub_factory(sandbox.url)
    sandbox.put(service("quiet", app="quiet"))
    assert "quiet" in names(answer(hub.url, SVC + "?resourceVersion=0", "proxy-agent/1")[1])
    # A feed that has watched for a while: no bookmark is due any moment (at the start of
    # its watch one might be, and a consistent read waits a moment for it).
    time.sleep(1.5)
    took = []
    for i in range(5):
        written = int(sandbox.put(configmap(f"cm-{i}"))["metadata"]["resourceVersion"])
        started = time.monotonic()
        status, doc = answer(hub.url, SVC + "?labelSelector=app%3Dquiet", "proxy-agent/1")
        took.append(time.monotonic() - started)
        assert status == 200 and names(doc) == ["quiet"], doc
        assert int(doc["metadata"]["resourceVersion"]) >= written
        # Read-your-writes: a Service written just before the list is in it.
        sandbox.put(service(f"new-{i}", app="new"))
        status, doc = answer(hub.url, SVC + "?labelSelector=app%3Dnew", "proxy-agent/1")
        assert status == 200 and f"new-{i}" in names(doc), (i, doc)
    # Answered at once, not after waiting for a bookmark that is a minute away (each
    # of these lists took 1 s).
    assert sorted(took)[len(took) // 2] < 0.5, took


def test_a_list_at_the_version_a_consistent_read_gave_is_answered(quiet_sandbox,
                                                                  hub_factory):
    # client-go relists "not older than" the last version it saw; when that came from a
    # consistent list the cloud answered, the quiet collection's state has not seen it.
    sandbox = quiet_sandbox
    hub = hub_factory(sandbox.url)
    sandbox.put(service("quiet", app="quiet"))
    assert "quiet" in names(answer(hub.url, SVC + "?resourceVersion=0", "proxy-agent/1")[1])
    sandbox.put(configmap("moves-the-version"))
    status, doc = answer(hub.url, SVC + "?labelSelector=app%3Dquiet", "proxy-agent/1")
    assert status == 200 and names(doc) == ["quiet"]
    rv = doc["metadata"]["resourceVersion"]
    # (it was a 504 "Too large resource version" after 3 s)
    status, doc = answer(hub.url, f"{SVC}?resourceVersion={rv}&labelSelector=app%3Dquiet",
                         "proxy-agent/1")
    assert status == 200 and names(doc) == ["quiet"], doc
    assert int(doc["metadata"]["resourceVersion"]) >= int(rv)
    # Offline the state answers what it has, as before: a version it never reached waits
    # for it, then 504 (nothing newer can come).
    sandbox.offline()
    healthy(hub, False)
    status, doc = answer(hub.url, f"{SVC}?resourceVersion={rv}", "proxy-agent/1")
    assert status == 504 and doc["reason"] == "Timeout", doc


@pytest.mark.parametrize("refusal", [429, 500])
def test_a_consistent_read_the_cloud_gave_no_version_for_is_the_clouds(sandbox, hub_factory,
                                                                       refusal):
    hub = hub_factory(sandbox.url, extra=["--watch-bookmark-interval", "1"])
    assert hub.get(SVC, ua="proxy-agent/1")[0] == 200
    stall_feed(sandbox, hub)  # the shared state lags the next write
    sandbox.put(service("late", app="late"))
    # The probe of the cloud's version is refused (priority and fairness' 429, a 5xx): the
    # state cannot be shown to hold the write, so it does not answer (it answered an empty
    # list: the write acknowledged before the list was not in it).
    sandbox.fail_next(1, refusal, match="limit=1", retry_after=1)
    status, doc = answer(hub.url, SVC + "?labelSelector=app%3Dlate", "proxy-agent/1")
    assert status == 200 and names(doc) == ["late"], doc
    sandbox.release()


def test_a_list_at_a_version_the_cache_cannot_answer_says_so_offline(sandbox, hub_factory):
    """Offline, a list "not older than" a version past the cached one, or at exactly a
    version the cache does not hold, was answered with the cached state (another version):
    kube-apiserver answers 504 "Too large resource version" (client-go then lists from
    any version) and 410 Expired for an Exact version it no longer holds."""
    hub = hub_factory(sandbox.url)
    status, doc = answer(hub.url, PODS)
    full, rv = names(doc), int(doc["metadata"]["resourceVersion"])
    assert status == 200 and full and rv > 2
    exact_old = "resourceVersion=1&resourceVersionMatch=Exact"
    cloud_old = outcome(sandbox.url, f"{PODS}&{exact_old}")  # compacted away
    sandbox.offline()
    healthy(hub, False)
    for q in (f"resourceVersion={rv}", f"resourceVersion={rv}&resourceVersionMatch=Exact",
              f"resourceVersion={rv - 1}", "resourceVersion=1&resourceVersionMatch=NotOlderThan",
              "resourceVersion=0"):
        status, doc = answer(hub.url, f"{PODS}&{q}")
        assert status == 200 and names(doc) == full, (q, doc)
    # A continue token carries its own version.
    status, page = answer(hub.url, f"{PODS}&resourceVersion={rv}&limit=1")
    status, rest = answer(hub.url, f"{PODS}&limit=50&continue={page['metadata']['continue']}")
    assert status == 200 and names(page) + names(rest) == full
    for q in (f"resourceVersion={rv + 50}", f"resourceVersion={rv + 50}&limit=1",
              f"resourceVersion={rv + 50}&resourceVersionMatch=NotOlderThan",
              f"resourceVersion={rv + 50}&resourceVersionMatch=Exact"):
        status, doc = answer(hub.url, f"{PODS}&{q}")
        assert (status, doc["reason"]) == (504, "Timeout"), (q, doc)
        assert doc["message"] == f"Timeout: Too large resource version: {rv + 50}, current: {rv}"
        assert doc["details"]["causes"] == [{"reason": "ResourceVersionTooLarge",
                                             "message": "Too large resource version"}]
    assert cloud_old[:2] == (410, "Expired")
    assert outcome(hub.url, f"{PODS}&{exact_old}") == cloud_old
    # The cache holds no state but its own: at an older version, as if compacted away.
    exact = f"resourceVersion={rv - 1}&resourceVersionMatch=Exact"
    assert outcome(hub.url, f"{PODS}&{exact}") == cloud_old


def test_a_continue_with_a_resource_version_is_refused_offline_as_online(sandbox,
                                                                        hub_factory):
    hub = hub_factory(sandbox.url)
    assert answer(hub.url, PODS)[0] == 200  # the whole list, for the cache
    token = answer(hub.url, PODS + "&limit=1")[1]["metadata"]["continue"]
    cloud = outcome(hub.url, f"{PODS}&limit=1&continue={token}&resourceVersion=5")
    assert cloud == (400, "BadRequest",
                     "specifying resource version is not allowed when using continue")
    sandbox.offline()
    healthy(hub, False)
    token = answer(hub.url, PODS + "&limit=1")[1]["metadata"]["continue"]
    assert outcome(hub.url, f"{PODS}&limit=1&continue={token}&resourceVersion=5") == cloud
    # "0" is no version: the page is served, as the cloud serves it.
    status, doc = answer(hub.url, f"{PODS}&limit=1&continue={token}&resourceVersion=0")
    assert status == 200 and doc["items"]


def test_what_remains_of_a_selected_list_is_not_counted_offline_as_online(sandbox,
                                                                          hub_factory):
    """kube-apiserver sets remainingItemCount only for a list without selectors."""
    hub = hub_factory(sandbox.url, extra=["--cache-agents", "edge-operator"])
    ua = "edge-operator/1"
    every, labelled = "/api/v1/pods", "/api/v1/pods?labelSelector=app"
    assert answer(hub.url, every, ua)[0] == 200
    online = [answer(hub.url, f"{p}{'&' if '?' in p else '?'}limit=1", ua)[1]["metadata"]
              for p in (every, labelled)]
    assert "remainingItemCount" in online[0] and "remainingItemCount" not in online[1]
    sandbox.offline()
    healthy(hub, False)
    offline = [answer(hub.url, f"{p}{'&' if '?' in p else '?'}limit=1", ua)[1]["metadata"]
               for p in (every, labelled)]
    assert [set(m) for m in offline] == [set(m) for m in online]
    assert offline[0]["remainingItemCount"] == online[0]["remainingItemCount"]
