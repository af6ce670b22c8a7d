"""A damaged cache file never silently shrinks or alters an offline answer (issue 18).

The hub caches ten pods for kubelet; then files are damaged, with the hub stopped (startup
recovery finds them) or while it runs offline (the reader finds them).  kubelet's offline
list must never come back shorter or with a pod under another name: it gets a 503 Status
naming the reason, a get of a set-aside pod gets 503 (not 404), readyz and /metrics name
the incomplete view, and the cloud's next list heals it.
"""

from __future__ import annotations

import http.client as http_client
import json
import os
import threading
from pathlib import Path

import pytest

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from yurthub.storage.collection import decode_state

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"
NODE = "node-0000"
PODS = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}"
GVR = "pods.v1.core"


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "nginx"}]}}


def cached(hub, name: str) -> Path:
    return hub.cache_dir / "kubelet" / GVR / "default" / name


def kubelet_list(hub) -> tuple[int, dict]:
    status, _, body = http(hub.url + PODS, headers={"User-Agent": KUBELET}, timeout=10)
    return status, json.loads(body)


def kubelet_get(hub, name: str) -> tuple[int, dict]:
    status, _, body = http(hub.url + f"/api/v1/namespaces/default/pods/{name}",
                           headers={"User-Agent": KUBELET}, timeout=10)
    return status, json.loads(body)


@pytest.fixture
def node(sandbox, hub_factory):
    """A hub whose cache holds kubelet's ten pods of node-0000 (and their view)."""
    for p in sandbox.list_objects("pods"):
        sandbox.delete("pods", p["metadata"]["name"], namespace=p["metadata"]["namespace"])
    for i in range(10):
        sandbox.put(pod(f"p{i}"))
    hub = hub_factory(sandbox.url, node=NODE)
    status, doc = kubelet_list(hub)
    assert status == 200 and len(doc["items"]) == 10
    wait_for(lambda: all(cached(hub, f"p{i}").exists() for i in range(10)),
             what="the ten pods on disk")
    hub.get("/version")  # the writer took the list's entry
    return hub


def go_offline(sandbox, hub) -> None:
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")


def restart_offline(sandbox, hub) -> None:
    """The hub is stopped; start it again with the cloud gone (it cannot become ready)."""
    sandbox.offline()
    hub.start(wait=False)
    wait_for(lambda: _healthz(hub), timeout=20, what="the restarted hub's healthz")
    wait_for(hub.started, timeout=20, what="the restarted hub to recover its cache")
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the restarted hub to see the cloud gone")


def _healthz(hub) -> bool:
    try:
        return http(hub.hub_url + "/v1/healthz", timeout=1)[0] == 200
    except OSError:
        return False


def assert_refused(status: int, doc: dict, *words: str) -> None:
    assert status == 503, doc
    assert doc["kind"] == "Status" and doc["reason"] == "ServiceUnavailable", doc
    for w in words:
        assert w in doc["message"], doc["message"]


def test_torn_and_misnamed_files_found_at_startup_refuse_the_list_not_shorten_it(
        sandbox, node):
    hub = node
    assert hub.stop() == 0
    cached(hub, "p3").write_bytes(b'{"kind": "Pod", "metad')
    other = pod("p7")
    other["metadata"].update(namespace="x", name="intruder")
    cached(hub, "p7").write_text(json.dumps(other))
    restart_offline(sandbox, hub)

    status, doc = kubelet_list(hub)
    assert_refused(status, doc, "incomplete", "damaged")  # never 200 with 8 or 9 items
    status, doc = kubelet_get(hub, "p3")
    assert_refused(status, doc, "default/p3", "damaged")    # not 404: it may well exist
    assert doc["message"].count("set aside as damaged") == 1, doc["message"]  # said once
    assert_refused(*kubelet_get(hub, "p7"), "damaged")
    status, good = kubelet_get(hub, "p5")
    assert status == 200 and good["metadata"]["name"] == "p5"
    # Nothing is ever served under another name.
    assert not cached(hub, "p7").exists()
    quarantine = hub.cache_dir / "_quarantine" / "kubelet" / GVR / "default"
    assert sorted(os.listdir(quarantine)) == ["p3", "p7"]
    assert hub.metric("yurthub_cache_quarantined_files") == 2
    assert hub.metric("yurthub_cache_view_incomplete", component="kubelet",
                      resource=GVR) == 1
    status, _, body = http(hub.hub_url + "/v1/readyz")
    assert status == 503 and b"incomplete" in body and GVR.encode() in body

    # The cloud returns: the next list heals the view and the answers are whole again.
    sandbox.online()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 1, timeout=15,
             what="the cloud healthy again")
    status, doc = kubelet_list(hub)
    assert status == 200 and len(doc["items"]) == 10
    wait_for(lambda: hub.metric("yurthub_cache_view_incomplete", component="kubelet",
                                resource=GVR) == 0, what="the view healed")
    wait_for(lambda: http(hub.hub_url + "/v1/readyz")[0] == 200, what="readyz 200 again")
    go_offline(sandbox, hub)
    status, doc = kubelet_list(hub)
    assert status == 200
    assert sorted(p["metadata"]["name"] for p in doc["items"]) == [f"p{i}" for i in range(10)]
    assert kubelet_get(hub, "p7")[1]["metadata"]["namespace"] == "default"


@pytest.mark.parametrize("replacement", ["directory", "fifo"])
def test_a_file_replaced_by_a_directory_or_a_fifo_is_set_aside_at_startup(
        sandbox, node, replacement):
    hub = node
    assert hub.stop() == 0
    target = cached(hub, "p4")
    target.unlink()
    if replacement == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)
    restart_offline(sandbox, hub)  # a FIFO must not hang recovery
    assert_refused(*kubelet_list(hub), "incomplete", "p4")
    assert_refused(*kubelet_get(hub, "p4"), "damaged")
    assert not target.exists()
    assert (hub.cache_dir / "_quarantine" / "kubelet" / GVR / "default" / "p4").exists()


@pytest.mark.parametrize("damage", ["deleted", "namespace-file", "namespace-symlink"])
def test_an_indexed_file_gone_at_startup_refuses_the_list_not_shortens_it(
        sandbox, node, tmp_path, damage):
    """The saved index listed the pod; its file (or its whole namespace directory) is gone
    or replaced when the hub starts: lost, like a quarantined one, never just absent."""
    hub = node
    assert hub.stop() == 0
    target = cached(hub, "p4")
    if damage == "deleted":
        target.unlink()
    else:
        ns_dir = target.parent
        ns_dir.rename(tmp_path / "moved")
        if damage == "namespace-file":
            ns_dir.write_text("x")
        else:
            ns_dir.symlink_to(tmp_path / "moved")
    restart_offline(sandbox, hub)
    status, doc = kubelet_list(hub)
    # never 200 with 9 (or 0) items
    assert_refused(status, doc, "incomplete", "p4" if damage == "deleted" else "default/p0")
    assert_refused(*kubelet_get(hub, "p4"), "damaged")  # not 404: it may well exist
    if damage != "deleted":
        assert_refused(*kubelet_get(hub, "p0"), "namespace directory")
    assert hub.metric("yurthub_cache_view_incomplete", component="kubelet",
                      resource=GVR) == 1
    status, _, body = http(hub.hub_url + "/v1/readyz")
    assert status == 503 and b"incomplete" in body and GVR.encode() in body


def rot(target: Path, damage: str) -> None:
    """Bit rot: the bytes change, the inode, size and mtime the index recorded do not."""
    st = target.stat()
    data = bytearray(target.read_bytes())
    if damage == "name":
        i = data.index(b'"name":"p3"') + len(b'"name":"p')
        data[i:i + 1] = b"9"
    elif damage == "kind":
        i = data.index(b'"kind":"Pod"') + len(b'"kind":"Po')
        data[i:i + 1] = b"x"
    else:  # a torn tail of the same size
        data[-3:] = b"\x00\x00\x00"
    with open(target, "r+b") as f:
        f.write(data)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (target.stat().st_ino, target.stat().st_size) == (st.st_ino, st.st_size)


@pytest.mark.parametrize("damage", ["name", "kind", "torn-tail"])
def test_bit_rot_that_keeps_the_files_stat_is_found_at_startup(sandbox, node, damage):
    hub = node
    assert hub.stop() == 0  # the index records each file's stat and checksum
    rot(cached(hub, "p3"), damage)
    restart_offline(sandbox, hub)
    assert_refused(*kubelet_list(hub), "incomplete", "p3")  # not a pod under another name
    assert_refused(*kubelet_get(hub, "p3"), "damaged")
    assert kubelet_get(hub, "p5")[0] == 200
    assert (hub.cache_dir / "_quarantine" / "kubelet" / GVR / "default" / "p3").exists()


@pytest.mark.parametrize("damage", ["name", "torn-tail"])
def test_bit_rot_while_the_hub_runs_is_never_served(sandbox, node, damage):
    hub = node
    go_offline(sandbox, hub)
    assert kubelet_list(hub)[0] == 200
    rot(cached(hub, "p3"), damage)
    # A list streaming when it meets the file is broken off (never ended short, never with
    # the rotten item); a get is refused.
    try:
        status, doc = kubelet_list(hub)
    except http_client.IncompleteRead:
        pass  # broken off
    else:
        assert_refused(status, doc, "p3")
    assert_refused(*kubelet_get(hub, "p3"))
    wait_for(lambda: hub.metric("yurthub_cache_view_incomplete", component="kubelet",
                                resource=GVR) == 1, what="the view marked incomplete")
    assert_refused(*kubelet_list(hub), "incomplete", "p3")


@pytest.mark.parametrize("damage", ["newer-field", "wrong-types", "directory"])
def test_a_state_this_version_cannot_read_is_set_aside_not_a_crash(sandbox, node, damage):
    """A view with a field a newer version wrote (a downgrade), or wrong types, crashed the
    worker on every request (pods 500); a directory as _state cost the whole collection
    (gets 404).  The state is set aside: lists refused (no view vouches), the objects kept."""
    hub = node
    assert hub.stop() == 0
    state = hub.cache_dir / "kubelet" / GVR / "_state"
    doc = json.loads(decode_state(state.read_bytes()))
    if damage == "newer-field":
        doc["views"][0]["checksum"] = "x"
        state.write_text(json.dumps(doc))
    elif damage == "wrong-types":
        state.write_text(json.dumps({**doc, "views": [{"key": {"namespace": 5}, "rv": "x"}]}))
    else:
        state.unlink()
        state.mkdir()
    restart_offline(sandbox, hub)
    for _ in range(3):  # and again: nothing crashes in between
        assert_refused(*kubelet_list(hub), "no complete list")
        status, got = kubelet_get(hub, "p5")
        assert status == 200 and got["metadata"]["name"] == "p5"
    assert (hub.cache_dir / "_quarantine" / "kubelet" / GVR / "_state").exists()
    assert "Traceback" not in hub.log()


def test_one_flipped_bit_in_the_state_never_alters_the_offline_list(sandbox, node):
    """The disk flips one bit of _state, in a digit of the view's resourceVersion: still
    JSON, and it was served -- kubelet's offline list claimed a resourceVersion the cache
    never saw (a client re-watching from it misses what happened in between).  The state
    is framed with its CRC now: it is set aside and the list refused, the objects kept."""
    hub = node
    rv = kubelet_list(hub)[1]["metadata"]["resourceVersion"]
    assert hub.stop() == 0
    state = hub.cache_dir / "kubelet" / GVR / "_state"
    data = state.read_bytes()
    flipped = rv[:-1] + chr(ord(rv[-1]) ^ 1)  # one bit of the last digit
    assert data.count(b'"rv":%s,' % rv.encode()) == 1
    state.write_bytes(data.replace(b'"rv":%s,' % rv.encode(), b'"rv":%s,' % flipped.encode()))
    restart_offline(sandbox, hub)
    status, doc = kubelet_list(hub)
    assert doc.get("metadata", {}).get("resourceVersion") != flipped, doc
    assert_refused(status, doc, "no complete list")
    assert kubelet_get(hub, "p5")[0] == 200
    assert (hub.cache_dir / "_quarantine" / "kubelet" / GVR / "_state").exists()
    # Where the operator looks: the collection says why it has no view (it was shown as
    # 'no view, not stale', as if kubelet had never listed its pods).
    doc = json.loads(http(hub.hub_url + "/v1/status")[2])
    pods = next(c for c in doc["cache"]["collections"] if c["resource"] == "pods")
    assert pods["views"] == [] and pods["stale"] and pods["objects"] == 10
    assert pods["staleReason"] == (
        "state unreadable: set aside at the hub's start (ValueError: yurthub-state document "
        "is torn or damaged): its lists are refused offline until the cloud's next list")
    page = http(hub.hub_url + "/status")[2].decode()
    assert "none: state unreadable: set aside at the hub&#x27;s start" in page
    sandbox.online()  # the cloud's next list heals it, and the note goes

    def healed() -> bool:
        if kubelet_list(hub)[0] != 200:
            return False
        rows = json.loads(http(hub.hub_url + "/v1/status")[2])["cache"]["collections"]
        row = next(c for c in rows if c["resource"] == "pods")
        return bool(row["views"]) and not row["stale"]
    wait_for(healed, timeout=20, what="the next list to heal the view")


@pytest.mark.parametrize("damage", ["truncated", "misnamed", "directory", "fifo", "deleted"])
def test_a_file_damaged_while_the_hub_runs_is_never_served(sandbox, node, damage):
    hub = node
    go_offline(sandbox, hub)
    assert kubelet_list(hub)[0] == 200  # whole, before the damage
    target = cached(hub, "p6")
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:40])
    elif damage == "misnamed":
        other = json.loads(target.read_bytes())
        other["metadata"]["name"] = "someone-else"
        target.write_text(json.dumps(other))
    else:
        target.unlink()
        if damage == "directory":
            target.mkdir()
        elif damage == "fifo":
            os.mkfifo(target)
    # The first list after the damage already refuses: files are checked before answering.
    assert_refused(*kubelet_list(hub), "p6")
    assert_refused(*kubelet_get(hub, "p6"))
    # The writer sets the file aside and marks the view incomplete; it stays refused.
    wait_for(lambda: hub.metric("yurthub_cache_view_incomplete", component="kubelet",
                                resource=GVR) == 1, what="the view marked incomplete")
    assert_refused(*kubelet_list(hub), "incomplete", "p6")
    # Refused all along; once the file is set aside (a moment after the view is marked)
    # the get says the object was damaged rather than what the file holds.
    assert_refused(*kubelet_get(hub, "p6"))
    wait_for(lambda: "damaged" in kubelet_get(hub, "p6")[1]["message"],
             what="the get naming the damage")
    assert_refused(*kubelet_get(hub, "p6"), "damaged")
    assert kubelet_get(hub, "p2")[0] == 200
    wait_for(lambda: hub.metric("yurthub_cache_damaged_files_total", component="kubelet",
                                resource=GVR) == 1, what="the damage counted")


def test_a_watch_resumes_over_an_incomplete_view_but_never_starts_from_it(sandbox, node):
    """Resuming from a resourceVersion the history covers is served (the events are whole);
    a watch that needs the current state first (no resourceVersion) is refused."""
    hub = node
    status, doc = kubelet_list(hub)
    rv = doc["metadata"]["resourceVersion"]
    online: dict[str, bytes] = {}

    def watch() -> None:  # kubelet's watch after its list: the change lands in the history
        online["body"] = http(hub.url + PODS + f"&watch=true&resourceVersion={rv}"
                              "&timeoutSeconds=3", headers={"User-Agent": KUBELET})[2]
    watcher = threading.Thread(target=watch)
    watcher.start()
    wait_for(lambda: sandbox.open_watches >= 1, what="kubelet's watch upstream")
    changed = pod("p1")
    changed["metadata"]["labels"]["v"] = "2"
    sandbox.put(changed)
    watcher.join(10)
    assert b'"MODIFIED"' in online["body"]
    wait_for(lambda: json.loads(cached(hub, "p1").read_bytes())["metadata"]["labels"]
             .get("v") == "2", what="the change cached")
    go_offline(sandbox, hub)
    cached(hub, "p8").write_bytes(b"{")
    assert kubelet_list(hub)[0] == 503
    wait_for(lambda: hub.metric("yurthub_cache_view_incomplete", component="kubelet",
                                resource=GVR) == 1, what="the view marked incomplete")
    status, _, body = http(hub.url + PODS + f"&watch=true&resourceVersion={rv}"
                           "&timeoutSeconds=1", headers={"User-Agent": KUBELET})
    assert status == 200
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("MODIFIED", "p1")]
    status, _, body = http(hub.url + PODS + "&watch=true&timeoutSeconds=1",
                           headers={"User-Agent": KUBELET})
    assert_refused(status, json.loads(body), "incomplete")


def test_one_flipped_bit_in_the_filters_inputs_never_refilters_the_offline_answer(
        sandbox4, hub_factory):
    """The filters' inputs are cached under _nonresource/ (the node's pool, the pools'
    members).  One flipped bit there, "pool-a" -> "pool-c", is still JSON: the restarted
    hub took it and gave kube-proxy, offline, the pool-scoped Service with every pool's
    endpoints (online: its own pool's two).  The documents are framed with their CRC now:
    a damaged one is not used, and filtered requests wait for the cloud (503), as before the
    configuration was known."""
    slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    kube_proxy = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/abc"
    hub = hub_factory(sandbox4.url, node="node-0001")

    def web_pool() -> tuple[int, list[str] | None]:
        status, _, body = http(hub.url + slices, headers={"User-Agent": kube_proxy},
                               timeout=10)
        items = json.loads(body).get("items")
        if items is None:
            return status, None
        return status, sorted(a for i in items if i["metadata"]["name"] == "web-pool-sbx01"
                              for ep in i["endpoints"] for a in ep["addresses"])

    assert web_pool() == (200, ["10.128.0.206", "10.128.4.206"])
    inputs = hub.cache_dir / "_nonresource" / "%2F_yurthub%2Ffilter-inputs"
    wait_for(lambda: inputs.exists() and b'"node":["pool-a"' in inputs.read_bytes(),
             what="the filters' inputs on disk")
    assert hub.stop() == 0
    data = inputs.read_bytes()
    assert data.count(b'"node":["pool-a"') == 1
    inputs.write_bytes(data.replace(b'"node":["pool-a"', b'"node":["pool-c"'))  # 0x61 -> 0x63
    restart_offline(sandbox4, hub)
    status, addresses = web_pool()
    assert addresses != ["10.128.0.206", "10.128.12.206", "10.128.4.206", "10.128.8.206"], \
        "the pool-scoped Service offline got pool-b's endpoints too"
    assert status == 503 and addresses is None
    readyz = http(hub.hub_url + "/v1/readyz")[2].decode()
    assert "filter configuration is not known" in readyz
    assert "filter-inputs is damaged" in hub.log()
    # Where the operator looks, the why: not a configuration never had, a damaged copy.
    assert ("the cached copy /_yurthub/filter-inputs was found damaged and is not used until "
            "the cloud sends it again") in readyz
    doc = json.loads(http(hub.hub_url + "/v1/status")[2])
    assert doc["ready"]["reason"] == readyz.splitlines()[0].removeprefix("not ready: ")
    assert doc["cache"]["damagedDocuments"] == ["/_yurthub/filter-inputs"]
    page = http(hub.hub_url + "/status")[2].decode()
    assert ("damaged, not used until the cloud sends them again: "
            "<code>/_yurthub/filter-inputs</code>") in page


def test_a_restart_does_not_hide_the_files_in_quarantine(sandbox, node):
    """An operator in an outage restarts the hub: /metrics, /v1/status and the status page
    still count the files set aside before (`yurthub cache verify` lists them), until they
    remove them."""
    hub = node
    assert hub.stop() == 0
    cached(hub, "p3").write_bytes(b'{"kind": "Pod", "metad')
    restart_offline(sandbox, hub)
    assert hub.metric("yurthub_cache_quarantined_files") == 1
    assert hub.stop() == 0
    restart_offline(sandbox, hub)
    assert hub.metric("yurthub_cache_quarantined_files") == 1
    status, _, body = http(hub.hub_url + "/v1/status")
    assert status == 200 and json.loads(body)["cache"]["quarantined"] == 1
    status, _, body = http(hub.hub_url + "/status")
    assert status == 200 and b"1 file(s) quarantined" in body
    quarantine = hub.cache_dir / "_quarantine" / "kubelet" / GVR / "default"
    (quarantine / "p3").unlink()  # inspected and removed, as `yurthub cache verify` says
    assert hub.metric("yurthub_cache_quarantined_files") == 0
    assert json.loads(http(hub.hub_url + "/v1/status")[2])["cache"]["quarantined"] == 0
