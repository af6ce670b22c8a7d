"""``yurthub cache`` beside a running hub: read-only commands read its tree as it serves, and
a purge is done by the hub itself (``POST /v1/cache/purge``), never behind its back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from http.client import HTTPConnection
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.fixtures.connectproxy import ConnectProxy
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.unit.test_cachecli import PODS, files_of, make_tree
from yurthub.hubserver import HubServer
from yurthub.metrics import Metrics


def cache(hub, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YURTHUB_CONFIG": os.devnull, **(env or {})}  # not /etc's file
    return subprocess.run([sys.executable, "-m", "yurthub", "cache", "--disk-cache-path",
                           str(hub.cache_dir), "--serve-port", str(hub.serve_port), *args],
                          capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def pods_cached(hub) -> int:
    return hub.metric("yurthub_cache_objects", component="kubelet", resource="pods.v1.core")


def test_read_beside_a_running_hub_then_purge_through_it(sandbox, hub):
    status, _, body = hub.get("/api/v1/pods")
    assert status == 200
    pod = json.loads(body)["items"][0]
    wait_for(lambda: pods_cached(hub) == 6, what="pods cached")

    r = cache(hub, "ls", "kubelet")
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[1].split()
    assert row[:3] == ["kubelet", "pods", "6"] and row[-1] == "no"
    md = pod["metadata"]
    r = cache(hub, "show", "kubelet", "pods", f"{md['namespace']}/{md['name']}")
    assert json.loads(r.stdout) == {"kind": "Pod", "apiVersion": "v1", **pod}
    r = cache(hub, "verify")
    assert r.returncode == 0, r.stdout
    assert "a hub is running on this tree" in r.stderr

    r = cache(hub, "purge", "kubelet", "pods", "--yes")
    assert r.returncode == 0, r.stderr
    assert "purged 6 object(s) in 1 collection(s) of kubelet/pods (by the running hub)" \
        in r.stdout
    assert pods_cached(hub) == 0
    assert json.loads(cache(hub, "ls", "-o", "json").stdout)["items"][0]["views"] == []
    # The hub goes on serving and caching: the next list fills the collection again.
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: pods_cached(hub) == 6, what="pods cached again")
    assert "purged 6 object(s) in 1 collection(s) on request" in hub.log()


def test_a_purge_goes_to_the_hub_not_to_the_shells_http_proxy(sandbox, hub):
    # An operator's shell on a proxied site has http_proxy set: urllib sent the purge, the
    # admin token in its Authorization, to the proxy (which answered 502).
    proxy = ConnectProxy(("127.0.0.1", 9))  # records what it is sent; tunnels nowhere
    try:
        assert hub.get("/api/v1/pods")[0] == 200
        wait_for(lambda: pods_cached(hub) == 6, what="pods cached")
        r = cache(hub, "purge", "kubelet", "pods", "--yes",
                  env={"http_proxy": proxy.url, "HTTP_PROXY": proxy.url, "no_proxy": ""})
        assert r.returncode == 0, r.stderr
        assert pods_cached(hub) == 0
        assert proxy.connects == []
    finally:
        proxy.close()


def test_a_purge_ends_its_clients_watches_so_they_list_again(sandbox, hub):
    # A purged collection has no complete list: without one its client's watch would go on
    # (resumed upstream, never listing again) and the hub could answer nothing offline.
    status, _, body = hub.get("/api/v1/pods")
    assert status == 200
    rv = json.loads(body)["metadata"]["resourceVersion"]
    wait_for(lambda: pods_cached(hub) == 6, what="pods cached")
    conn = HTTPConnection("127.0.0.1", hub.proxy_port, timeout=60)
    try:
        conn.request("GET", f"/api/v1/pods?watch=1&resourceVersion={rv}",
                     headers={"User-Agent": "kubelet/v1.32.4"})
        watch = conn.getresponse()
        assert watch.status == 200
        r = cache(hub, "purge", "kubelet", "pods", "--yes")
        assert r.returncode == 0, r.stderr
        event = json.loads(watch.readline())
        assert event["type"] == "ERROR", event
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        assert "cache of it was purged" in event["object"]["message"]
        assert watch.readline() == b""  # the watch ended
    finally:
        conn.close()
    # client-go lists again on a 410: the collection is whole again, served offline.
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: pods_cached(hub) == 6, what="pods cached again")
    views = json.loads(cache(hub, "ls", "kubelet", "-o", "json").stdout)["items"][0]["views"]
    assert [v["selector"] for v in views] == ["*"]


def test_purge_endpoint_wants_the_token_and_this_hubs_tree(hub):
    url = hub.hub_url + "/v1/cache/purge"
    body = json.dumps({"cacheRoot": str(hub.cache_dir), "collections": []}).encode()
    status, _, text = http(url, method="POST", body=body)
    assert status == 401 and b"admin token" in text
    token = (hub.cache_dir / "_admin_token").read_text()
    assert (hub.cache_dir / "_admin_token").stat().st_mode & 0o777 == 0o600
    auth = {"Authorization": f"Bearer {token}"}
    status, _, text = http(url, method="POST", body=json.dumps(
        {"cacheRoot": "/var/lib/other", "collections": []}).encode(), headers=auth)
    assert status == 409 and str(hub.cache_dir).encode() in text
    status, _, text = http(url, method="POST", body=b"{", headers=auth)
    assert status == 400
    assert http(url)[0] == 405
    status, _, text = http(url, method="POST", body=body, headers=auth)
    assert (status, json.loads(text)) == (200, {"objects": 0, "collections": 0})


def test_purge_answers_loopback_clients_only():
    calls = []
    server = HubServer(Metrics(), lambda: [], purge=lambda p: calls.append(p) or 0,
                       cache_root="/tmp", admin_token=lambda: "secret")
    client = Client(server)
    for addr in ("10.1.2.3", "192.168.0.7", "::ffff:10.0.0.1", "fe80::1"):
        r = client.post("/v1/cache/purge", data=b'{"cacheRoot": "/tmp", "collections": []}',
                        headers={"Authorization": "Bearer secret"},
                        environ_base={"REMOTE_ADDR": addr})
        assert r.status_code == 403
        assert b"only to clients on this node's loopback" in r.get_data()
    for addr in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        r = client.post("/v1/cache/purge", data=b'{"cacheRoot": "/tmp", "collections": []}',
                        headers={"Authorization": "Bearer secret"},
                        environ_base={"REMOTE_ADDR": addr})
        assert r.status_code == 200, (addr, r.get_data())
    assert len(calls) == 3


def test_a_hub_restarted_on_a_full_disk_takes_purges_once_there_is_room(sandbox, tmp_path):
    from tests.fixtures.tmpfs import TmpfsHub, can_mount
    if not can_mount():
        pytest.fail("this test mounts a tmpfs in a private mount namespace: run it as root "
                    "(CI does)")
    hub = TmpfsHub(tmp_path, sandbox.url, size_kb=8192, filler_kb=0)

    def purge() -> subprocess.CompletedProcess[str]:
        # The tree is the hub's tmpfs: seen from its mount namespace only.
        assert hub.proc is not None
        return subprocess.run(
            ["nsenter", "-t", str(hub.proc.pid), "-m", sys.executable, "-m", "yurthub",
             "cache", "--disk-cache-path", str(hub.cache_dir), "--serve-port",
             str(hub.serve_port), "purge", "--yes"],
            capture_output=True, text=True, timeout=60, cwd=os.getcwd(),
            env={**os.environ, "YURTHUB_CONFIG": os.devnull})
    try:
        hub.start()
        assert hub.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-0000")[0] == 200
        wait_for(lambda: pods_cached(hub) > 0, what="pods cached")
        hub.in_namespace("sh", "-c", f"dd if=/dev/zero of={hub.cache_dir}/_filler bs=64k "
                         "2>/dev/null; true")
        # gunicorn restarts a worker that died: the hub starts again on a full disk.
        workers = subprocess.run(["pgrep", "-P", str(hub.proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        os.kill(int(workers[0]), 9)
        wait_for(lambda: hub.log().count("yurthub serving") == 2, timeout=30,
                 what="the hub serving again")
        assert "cannot write the admin token" in hub.log()
        r = purge()
        assert r.returncode != 0 and "not been able to write its admin token" in r.stderr, r
        hub.in_namespace("rm", "-f", str(hub.cache_dir / "_filler"))
        # The hub writes its token within a second or two, and the purge goes through.
        r = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(purge()),
                     timeout=15, what="a purge through the hub")
        assert "by the running hub" in r.stdout
        assert "the admin token is written" in hub.log()
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()


@pytest.mark.parametrize("dirs_mode", [0o755, 0o700])
def test_a_tree_this_user_may_not_read_is_one_line_not_an_empty_cache(dirs_mode):
    # The root is readable to all (as an operator might leave it), the rest is not: each
    # command says so, rather than "No resources found", "not in the cache", "nothing to
    # purge" with exit 0, or a traceback.  (An integration test: the command runs as nobody,
    # who must be able to read the code, which a package build's private directory is not.)
    top = Path(tempfile.mkdtemp(prefix="yurthub-denied-"))
    try:
        root = make_tree(top)
        os.chmod(top, 0o755)
        for p in [root, *root.rglob("*")]:
            if p.is_dir():
                os.chmod(p, 0o755 if p == root else dirs_mode)
        for args in (["ls"], ["ls", "kubelet"], ["show", "kubelet", "nodes", "node-a"],
                     ["verify"], ["purge", "--yes"]):
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                sys.executable, "-m", "yurthub", "cache",
                                "--disk-cache-path", str(root), *args],
                               capture_output=True, text=True, timeout=60, cwd=os.getcwd(),
                               env={**os.environ, "YURTHUB_CONFIG": os.devnull})
            assert r.returncode == 1, (args, r.stdout, r.stderr)
            assert "Traceback" not in r.stderr
            assert r.stderr.splitlines()[-1].startswith(
                f"yurthub: cannot read the cache at {root}: Permission denied"), (args, r.stderr)
        assert len(files_of(root, PODS)) == 4
    finally:
        shutil.rmtree(top)
