"""Nothing partial, nothing torn, nothing outside the cache root: whatever the cloud or we do."""

from __future__ import annotations

import http.client as httpclient
import itertools
import json
import os
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.hub import Hub
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

KUBELET = "kubelet/v1.32.4 (linux/amd64) kubernetes/abc"


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes; a file the running hub replaced while the walk
    went by (its temporary file renamed away) is left out."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                out[os.path.relpath(p, root)] = Path(p).read_bytes()
            except FileNotFoundError:
                continue
    return out


def objects(root: Path, component: str = "kubelet", gvr: str = "pods.v1.core") -> set[str]:
    """Committed object files (staging and bookkeeping left out), as <ns>/<name>."""
    base = root / component / gvr
    out = set()
    for dirpath, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        out.update(os.path.relpath(os.path.join(dirpath, f), base) for f in files
                   if not f.startswith(("_", ".")))
    return out


def pod(name: str, node: str = "node-0000", pad: int = 0) -> dict:
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "labels": {"app": "bulk"}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}}
    if pad:
        p["metadata"]["annotations"] = {"pad": "p" * pad}
    return p


def test_a_list_reset_mid_body_leaves_the_previous_cache_intact(sandbox, hub):
    assert hub.get("/api/v1/pods")[0] == 200
    before = wait_for(lambda: objects(hub.cache_dir) if len(objects(hub.cache_dir)) == 6
                      else None, what="the first list in the cache")
    for i in range(30):
        sandbox.put(pod(f"new-{i}", pad=8000))
    # Part of the body goes out, then the apiserver's connection dies mid-body.
    sandbox.stall_next(after_bytes=150_000, match="/api/v1/pods")
    conn = httpclient.HTTPConnection("127.0.0.1", hub.proxy_port, timeout=20)
    conn.request("GET", "/api/v1/pods", headers={"User-Agent": KUBELET})
    resp = conn.getresponse()
    assert resp.status == 200
    assert len(resp.read(100_000)) == 100_000  # the client is streaming ...
    sandbox.cut_connections()
    with pytest.raises((httpclient.IncompleteRead, ConnectionError)):
        resp.read()  # ... and sees the break: the body never looks complete
    conn.close()
    sandbox.release()
    status, _, body = hub.get("/version")  # let the writer finish with the broken entry
    assert status == 200
    assert objects(hub.cache_dir) == before
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: len(objects(hub.cache_dir)) == 36, what="the next whole list")


def _pods_view_committed(hub: Hub) -> bool:
    """The list's view is published (its files are renamed in before it is)."""
    doc = json.loads(http(hub.hub_url + "/v1/status")[2])
    return any(c["resource"] == "pods" and any(v["selector"] == "*" and not v["stale"]
                                               for v in c["views"])
               for c in doc["cache"]["collections"])


def test_a_list_reset_before_its_first_bytes_is_answered_from_the_cache(sandbox, hub):
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: len(objects(hub.cache_dir)) == 6 and _pods_view_committed(hub),
             what="the first list in the cache")
    sandbox.put(pod("late"))
    sandbox.reset_next(after_bytes=0, match="/api/v1/pods")
    status, headers, body = hub.get("/api/v1/pods")
    assert status == 200
    assert "served from the yurthub cache" in headers["Warning"]
    assert {i["metadata"]["name"] for i in json.loads(body)["items"]} == \
        {n.split("/")[1] for n in objects(hub.cache_dir)}


def test_a_writer_far_behind_never_truncates_the_client_nor_commits_a_part(sandbox,
                                                                          hub_factory):
    for i in range(1500):
        sandbox.put(pod(f"big-{i:04d}", pad=10_000))
    hub = hub_factory(sandbox.url, extra=["--cache-tee-budget", "1Mi"])
    status, _, through = hub.get("/api/v1/pods")
    assert status == 200
    assert through == http(sandbox.url + "/api/v1/pods", headers={"User-Agent": KUBELET})[2]
    assert hub.get("/version")[0] == 200
    overflowed = hub.metric("yurthub_cache_tee_overflows_total")
    if overflowed:
        # The writer fell behind past the budget: the entry was dropped, never half-written.
        assert objects(hub.cache_dir) == set()
        assert hub.metric("yurthub_cache_entries_dropped_total", reason="overflow") >= 1
    else:
        # 15 MB committed by a writer that shares 2 cores with the suite: seconds, or more
        wait_for(lambda: len(objects(hub.cache_dir)) == 1506, 60, what="the whole list")


def test_kill_9_during_heavy_commits_leaves_no_torn_or_leftover_files(sandbox, hub_factory,
                                                                      tmp_path):
    for i in range(1500):
        sandbox.put(pod(f"heavy-{i:04d}", pad=3000))
    cache = tmp_path / "cache"
    rng = random.Random(7)
    for _round in range(3):
        hub = hub_factory(sandbox.url, cache_dir=cache)
        done = threading.Event()

        def hammer(h: Hub = hub, done: threading.Event = done) -> None:
            while not done.is_set():
                try:
                    h.get("/api/v1/pods")
                except (OSError, httpclient.HTTPException):
                    return  # the hub was killed under us: that is the point
        workers = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
        for w in workers:
            w.start()
        threading.Event().wait(0.8 + rng.random())
        hub.kill()
        done.set()
        for w in workers:
            w.join(10)
    hub = hub_factory(sandbox.url, cache_dir=cache)  # recovery runs before readiness
    files = tree(cache)
    # .spare.<id> dirs hold files a big commit replaced, kept for the next one: not debris
    spare = {k for k in files if any(part.startswith(".spare.") for part in k.split("/"))}
    leftovers = [k for k in files if k not in spare
                 and any(part.startswith(".") for part in k.split("/"))]
    assert leftovers == []
    assert not any(k.endswith("_journal") for k in files)
    names = set()
    for rel, body in ((k, v) for k, v in files.items() if k not in spare):
        base = os.path.basename(rel)
        if base.startswith("_") or rel.startswith("_"):
            continue
        obj = json.loads(body)  # every object file is whole JSON
        assert obj["kind"] == "Pod"
        names.add(obj["metadata"]["name"])
    # A list commit is atomic: the pods are all there, or none are.
    assert len([n for n in names if n.startswith("heavy-")]) in (0, 1500)
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: len(objects(cache)) == 1506, timeout=30, what="a whole list after all")


NOT_FOUND = b'{"kind":"Status","apiVersion":"v1","code":404}'


class _Crafted(BaseHTTPRequestHandler):
    """A misbehaving apiserver: objects whose names try to leave the cache root."""

    protocol_version = "HTTP/1.1"
    bodies: dict[str, bytes] = {}

    def answer(self) -> tuple[int, bytes]:
        if self.path in self.bodies:
            return 200, self.bodies[self.path]
        return 404, NOT_FOUND

    def do_GET(self) -> None:
        status, body = self.answer()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def evil_pod(ns: str, name: str) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "5"},
            "spec": {"nodeName": "node-0000"}}


@pytest.fixture(scope="module")
def crafted_hub(tmp_path_factory):
    """A hub in front of ``_Crafted``, in a directory of its own (the test below checks that
    nothing but the cache and the hub's own files is written there)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Crafted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = tmp_path_factory.mktemp("crafted")
    (tmp / "outside").mkdir()
    hub = Hub(tmp, f"http://127.0.0.1:{server.server_port}", cache_dir=tmp / "deep" / "cache",
              extra=["--working-mode", "cloud"])
    try:
        yield hub.start()
    finally:
        hub.kill()
        server.shutdown()


_LIST_VERSIONS = itertools.count(10)


@pytest.mark.parametrize("ns, name", [
    ("default", "../../../../escape"),
    ("..", "passwd"),
    ("default", "a/b"),
    ("default", "nul\u0000byte"),
    ("default", ".hidden"),
    ("default", "_index"),
    ("default", ""),
    ("Default", "upper"),
    ("default", "x" * 300),
])
def test_names_that_would_leave_or_confuse_the_cache_are_never_cached(crafted_hub, ns, name):
    # One hub for every name: each list has a valid pod of another name, at a newer version,
    # so the cache holding exactly that one pod shows this list was committed without the bad.
    hub = crafted_hub
    rv = next(_LIST_VERSIONS)
    good = evil_pod("default", f"fine-{rv}")
    bad = evil_pod(ns, name)
    _Crafted.bodies = {
        "/api/v1/pods": json.dumps({"kind": "PodList", "apiVersion": "v1",
                                    "metadata": {"resourceVersion": str(rv)},
                                    "items": [good, bad]}).encode(),
    }
    cache = hub.cache_dir
    invalid = hub.metric("yurthub_cache_invalid_keys_total", component="kubelet")
    status, _, body = hub.get("/api/v1/pods")
    assert status == 200 and json.loads(body)["items"][1]["metadata"]["name"] == name
    wait_for(lambda: objects(cache) == {f"default/fine-{rv}"}, what="only the valid pod cached")
    assert hub.metric("yurthub_cache_invalid_keys_total", component="kubelet") >= invalid + 1
    for dirpath, _dirs, files in os.walk(hub.tmp):
        for f in files:
            p = Path(dirpath, f)
            assert p.is_relative_to(cache) or p.name.startswith(("hub-", "kubeconfig")), p


@pytest.mark.parametrize("list_kind, api_version", [
    ("ServiceList", "v1"), ("PodList", "apps/v1"), ("SecretList", "")])
def test_a_pods_list_of_another_kind_is_passed_on_but_never_filed_as_pods(crafted_hub,
                                                                          list_kind,
                                                                          api_version):
    # Built-in lists carry no kind in their items: the list's own kind is what would be
    # written into each file (and served offline as the PodList kubelet asked for).
    hub = crafted_hub
    ns = f"other-{next(_LIST_VERSIONS)}"
    path = f"/api/v1/namespaces/{ns}/pods"
    head = {"kind": list_kind, "metadata": {"resourceVersion": "9"}}
    if api_version:
        head["apiVersion"] = api_version
    item = evil_pod(ns, "not-a-pod")
    _Crafted.bodies = {path: json.dumps({**head, "items": [item]}).encode()}
    dropped = hub.metric("yurthub_cache_entries_dropped_total", component="kubelet",
                         resource="pods", reason="undecodable")
    status, _, body = hub.get(path)
    assert status == 200 and body == _Crafted.bodies[path]  # passed on untouched
    wait_for(lambda: f"{ns}/not-a-pod" in objects(hub.cache_dir)
             or hub.metric("yurthub_cache_entries_dropped_total", component="kubelet",
                           resource="pods", reason="undecodable") > dropped,
             what="the list handled by the cache writer")
    assert f"{ns}/not-a-pod" not in objects(hub.cache_dir)


def test_pages_of_two_snapshots_are_never_cached_as_one_list(crafted_hub):
    # A cloud whose second page comes from another resourceVersion (kube-apiserver serves
    # every page of a list from the snapshot its continue token names): offline, the union
    # was served as the complete list at the first page's version.
    hub = crafted_hub
    ns = f"paged-{next(_LIST_VERSIONS)}"
    path = f"/api/v1/namespaces/{ns}/pods"

    def page(rv: int, name: str, token: str) -> bytes:
        md = {"resourceVersion": str(rv), **({"continue": token} if token else {})}
        return json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": md,
                           "items": [evil_pod(ns, name)]}).encode()

    _Crafted.bodies = {path + "?limit=1": page(20, "first", "next-page"),
                       path + "?limit=1&continue=next-page": page(10, "second", "")}
    for query in ("?limit=1", "?limit=1&continue=next-page"):
        status, _, body = hub.get(path + query)
        assert status == 200 and body == _Crafted.bodies[path + query]
    wait_for(lambda: f"list of kubelet/pods.v1.core {ns}" in hub.log()
             or f"cached list kubelet/pods.v1.core {ns}:" in hub.log(),
             what="the pages handled by the cache writer")
    assert not {f"{ns}/first", f"{ns}/second"} & objects(hub.cache_dir)


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/%2e%2e/pods/x",
    "/api/v1/namespaces/default/pods/%2e%2e%2f%2e%2e%2fetc",
    "/api/v1/namespaces/default/pods/a%2Fb",
    "/api/v1/namespaces/default/pods/a%00b",
    "/api/v1/namespaces/default/pods/..",
    "/api/v1/nodes/%2e%2e",
])
def test_traversal_in_the_url_is_proxied_but_never_cached(module_hub, path):
    # One hub for every path: none of them may leave a file, so none can hide another's.
    hub = module_hub
    status, _, body = hub.get(path)
    assert status in (400, 404, 422), body
    assert json.loads(body)["kind"] == "Status"
    assert http(hub.url + "/version")[0] == 200
    files = tree(hub.cache_dir) if hub.cache_dir.exists() else {}
    assert not any(".." in k or "etc" in k.split("/") for k in files)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


class _Deep(_Crafted):
    """An apiserver that serves objects nested deeper than Python's decoders recurse
    (kube-apiserver keeps up to 10,000 levels in a custom resource that preserves unknown
    fields): the hub's own ConfigMap list, and a list of custom resources."""

    widgets = b""

    def answer(self) -> tuple[int, bytes]:
        if "watch=" in self.path:
            return 404, NOT_FOUND
        if self.path.startswith("/api/v1/namespaces/kube-system/configmaps"):
            return 200, (b'{"kind":"ConfigMapList","apiVersion":"v1","metadata":'
                         b'{"resourceVersion":"9"},"items":[{"metadata":{"name":'
                         b'"yurt-hub-cfg","namespace":"kube-system","resourceVersion":"8"},'
                         b'"data":{"x":' + _nested(4000).encode() + b'}}]}')
        if self.path.startswith("/apis/example.com/v1/namespaces/default/widgets"):
            return 200, self.widgets
        return 404, NOT_FOUND


@pytest.mark.parametrize("depth", [1500, 6000])
def test_objects_nested_too_deep_to_decode_pass_through_and_crash_nothing(tmp_path,
                                                                          hub_factory, depth):
    def widget(name: str, rv: int, spec: str) -> str:
        return ('{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"' + name
                + '","namespace":"default","resourceVersion":"' + str(rv) + '"},"spec":'
                + spec + "}")

    _Deep.widgets = ('{"apiVersion":"example.com/v1","kind":"WidgetList","metadata":'
                     '{"resourceVersion":"7"},"items":[' + widget("plain", 5, "{}") + ","
                     + widget("deep", 6, _nested(depth)) + "]}").encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Deep)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hub = hub_factory(f"http://127.0.0.1:{server.server_port}", wait=False)
    wait_for(lambda: "nests too deep" in hub.log(), timeout=20,
             what="the hub reading its filter configuration")
    wait_for(hub.started, timeout=20, what="the hub serving")
    path = "/apis/example.com/v1/namespaces/default/widgets"
    for _ in range(3):
        status, _, body = hub.get(path)
        assert status == 200 and body == _Deep.widgets  # untouched, whole
    wait_for(lambda: hub.metric("yurthub_cache_entries_dropped_total", component="kubelet",
                                resource="widgets", reason="undecodable") >= 3,
             what="the list dropped from the cache, counted")
    # The hub's own readers retried (the filters stay unknown: readyz says why) and nothing
    # died: no background thread, no worker.
    status, _, why = http(hub.hub_url + "/v1/readyz")
    assert status == 503 and b"filter" in why.lower()
    log = hub.log()
    assert "crashed" not in log and "exited with code" not in log
    assert "Traceback" not in log and "RecursionError" not in log
    assert hub.proc is not None and hub.proc.poll() is None
    server.shutdown()
