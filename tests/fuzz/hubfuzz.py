"""Differential fuzzer, by hand (not in the suite): the hub against the sandbox apiserver,
online, with the cloud cut, and after a restart offline.

    python -m tests.fuzz.hubfuzz --count 2000 --seed 1 --out /tmp/hfuzz

Generates requests from the sandbox's own discovery (every resource, named and listed,
subresources), verbs, query parameters, headers and odd paths; prints each case that breaks
an oracle (see ``check_online`` and ``check_offline``) and writes them to ``--out``.

Ports: four consecutive free ones from ``--port`` (a sandbox, its control port, the hub's
proxy and serve ports).  Known differences it still reports, all by design or the sandbox's:
OPTIONS (the sandbox answers http.server's HTML 501, the hub passes it on), Accept types the
sandbox refuses with 406 (yaml, text/html: the hub asks for JSON where it caches or filters),
two invalid things at once (the hub checks the query before the media type), bodies a
filter changed (coredns, kube-proxy) and a cache agent's Table rows carrying whole objects.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import socket
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tests.fixtures.hub import Hub
from tests.fixtures.sandboxes import SandboxProcess

UAS = ["kubelet/v1.32.4 (linux/amd64) kubernetes/abc", "kube-proxy/v1.32.4 (linux/amd64)",
       "coredns/1.11.1 (linux/amd64)", "kubectl/v1.32.4 (linux/amd64) kubernetes/abc",
       "OpenAPI-Generator/31.0.0/python", "unknown-agent/0.1", "", "flannel/v0.25"]
ACCEPTS = ["", "application/json", "*/*", "application/json;as=Table;v=v1;g=meta.k8s.io",
           "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
           "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
           "application/vnd.kubernetes.protobuf", "application/vnd.kubernetes.protobuf,"
           "application/json", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
           "text/html", "application/yaml", "application/json;stream=watch", "garbage;;"]
CTYPES = {"POST": ["application/json"], "PUT": ["application/json"],
          "PATCH": ["application/merge-patch+json", "application/strategic-merge-patch+json",
                    "application/json-patch+json", "application/apply-patch+yaml",
                    "application/json", "text/plain"]}
LABELS = ["app=x", "app!=x", "app in (a,b)", "!app", "app", "app=", "=x", "app in (",
          "a b", "app==x", "kubernetes.io/hostname=node-0000", "x=" + "y" * 70, ",", "%"]
FIELDS = ["metadata.name=node-0000", "spec.nodeName=node-0000", "spec.nodeName=",
          "metadata.namespace=default", "status.phase!=Running", "bogus.field=x", "a",
          "metadata.name==x", "spec.nodeName=node-0000,status.phase=Running", ""]
NAMES = ["a b", "node-0000", "default", "kubernetes", "nonexistent", "a" * 300, "UPPER", "a.b",
         "..", ".", "%2F", "a%2Fb", "caf%C3%A9", "a b", "%00", "x:y", "-x"]
NAMESPACES = ["default", "kube-system", "nonexistent", "..", "UPPER", "%2F", "a" * 70]


class Resp:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, secs: float):
        self.status, self.headers, self.body, self.secs = status, headers, body, secs

    def json(self) -> Any:
        body = self.body
        if "gzip" in self.headers.get("content-encoding", ""):
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                return "<broken gzip>"
        try:
            return json.loads(body)
        except ValueError:
            return None


def send(base: str, req: dict[str, Any], timeout: float = 20) -> Resp:
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                      timeout=timeout)
    t = time.monotonic()
    try:
        conn.putrequest(req["method"], req["path"], skip_accept_encoding=True)
        body = req.get("body")
        for k, v in req["headers"].items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data,
                    time.monotonic() - t)
    except (OSError, http.client.HTTPException) as e:
        return Resp(-1, {}, repr(e).encode(), time.monotonic() - t)
    finally:
        conn.close()


def discover(base: str) -> list[dict[str, Any]]:
    out = []
    def res(prefix: str, gv: str) -> None:
        r = send(base, {"method": "GET", "path": prefix, "headers": {}})
        for x in (r.json() or {}).get("resources", []):
            out.append({"prefix": prefix, "gv": gv, "name": x["name"],
                        "namespaced": x["namespaced"], "verbs": x.get("verbs", [])})
    res("/api/v1", "v1")
    for g in (send(base, {"method": "GET", "path": "/apis", "headers": {}}).json() or {}
              ).get("groups", []):
        for v in g["versions"]:
            res(f"/apis/{v['groupVersion']}", v["groupVersion"])
    return out


def gen(rng: random.Random, resources: list[dict[str, Any]]) -> dict[str, Any]:
    r = rng.choice(resources)
    base, _, sub = r["name"].partition("/")
    named = bool(sub) or rng.random() < 0.45
    path = r["prefix"]
    if r["namespaced"] and rng.random() < 0.8:
        path += "/namespaces/" + rng.choice(NAMESPACES)
    path += "/" + base
    if named:
        path += "/" + rng.choice(NAMES)
        if sub:
            path += "/" + sub
    q: list[tuple[str, str]] = []
    method = rng.choices(["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"],
                         [60, 5, 3, 8, 6, 10, 8])[0]
    if method == "GET":
        if not named and rng.random() < 0.2:
            q += [("watch", rng.choice(["true", "1", "false"])), ("timeoutSeconds", "1")]
            if rng.random() < 0.5:
                q.append(("allowWatchBookmarks", "true"))
            if rng.random() < 0.2:
                q += [("sendInitialEvents", "true"), ("resourceVersionMatch", "NotOlderThan")]
        if rng.random() < 0.3:
            q.append(("labelSelector", rng.choice(LABELS)))
        if rng.random() < 0.3:
            q.append(("fieldSelector", rng.choice(FIELDS)))
        if rng.random() < 0.2:
            q.append(("limit", rng.choice(["1", "2", "0", "-1", "x", "500"])))
        if rng.random() < 0.1:
            q.append(("continue", rng.choice(["", "abc", "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"])))
        if rng.random() < 0.3:
            q.append(("resourceVersion", rng.choice(["0", "", "1", "999999999", "x", "-5"])))
        if rng.random() < 0.1:
            q.append(("resourceVersionMatch", rng.choice(["Exact", "NotOlderThan", "bad"])))
    if rng.random() < 0.1:
        q.append(("pretty", rng.choice(["true", "false", "x"])))
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        if True:
            # (the sandbox takes dryRun=bogus as no dry run: keep the store as it is)
            q.append(("dryRun", "All"))
        if rng.random() < 0.3:
            q.append(("fieldManager", rng.choice(["fuzz", "", "x" * 200])))
        if method == "PATCH" and rng.random() < 0.5:
            q.append(("force", "true"))
    if rng.random() < 0.05:
        q.append(("timeout", rng.choice(["1s", "x", "-1s"])))
    qs = urllib.parse.urlencode(q)
    odd = rng.random()
    if odd < 0.04:
        path = path.replace("/", "//", 1)
    elif odd < 0.07:
        path += "/"
    elif odd < 0.09:
        path = path.replace("/namespaces/", "/namespaces/./", 1)
    elif odd < 0.10:
        path = "/%C3%A9" + path
    full = urllib.parse.quote(path, safe="/%:@!$&'()*+,;=-._~") + ("?" + qs if qs else "")
    headers: dict[str, str] = {}
    ua = rng.choice(UAS)
    if ua:
        headers["User-Agent"] = ua
    acc = rng.choice(ACCEPTS)
    if acc:
        headers["Accept"] = acc
    if rng.random() < 0.3:
        headers["Accept-Encoding"] = "gzip"
    body = None
    if method in CTYPES:
        ct = rng.choice(CTYPES[method])
        headers["Content-Type"] = ct
        body = make_body(rng, method, ct, r, base)
    elif method == "DELETE" and rng.random() < 0.5:
        headers["Content-Type"] = "application/json"
        body = rng.choice([b'{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}',
                           b'{"propagationPolicy":"Bogus","dryRun":["All"]}', b"{", b""])
    return {"method": method, "path": full, "headers": headers, "body": body,
            "watch": any(k == "watch" and v in ("true", "1") for k, v in q)}


def make_body(rng: random.Random, method: str, ct: str, r: dict[str, Any], base: str) -> bytes:
    kinds = {"pods": "Pod", "configmaps": "ConfigMap", "nodes": "Node", "services": "Service"}
    obj = {"apiVersion": r["gv"], "kind": kinds.get(base, "Thing"),
           "metadata": {"name": "fuzz-" + str(rng.randrange(1000)), "labels": {"a": "b"}}}
    choice = rng.random()
    if choice < 0.1:
        return rng.choice([b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"a":' * 50, b"1"])
    if ct == "application/json-patch+json":
        return json.dumps(rng.choice([[{"op": "add", "path": "/metadata/labels/x",
                                        "value": "y"}], [{"op": "bogus"}], {"a": 1}])).encode()
    if ct == "application/apply-patch+yaml":
        return rng.choice([json.dumps(obj).encode(), b"a: [", b"metadata:\n  labels: {x: y}\n"])
    if method == "PATCH":
        return json.dumps({"metadata": {"labels": {"fuzz": "1"}}}).encode()
    return json.dumps(obj).encode()


VOLATILE = ("date", "audit-id", "x-kubernetes-pf-flowschema-uid",
            "x-kubernetes-pf-prioritylevel-uid", "content-length", "connection",
            "keep-alive", "server", "transfer-encoding", "cache-control")


def norm(body: bytes) -> Any:
    try:
        j = json.loads(body)
    except ValueError:
        return body[:200]
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items()
                    if k not in ("creationTimestamp", "uid", "resourceVersion",
                                 "continue", "managedFields", "remainingItemCount")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return strip(j)


def is_status(r: Resp) -> bool:
    j = r.json()
    return isinstance(j, dict) and j.get("kind") == "Status"


def json_downgrade(req: dict[str, Any]) -> bool:
    """The hub asks upstream for JSON where a client asked for protobuf (DESIGN.md)."""
    return "protobuf" in req["headers"].get("Accept", "")


def check_online(req: dict[str, Any], cloud: Resp, hub: Resp) -> list[str]:
    bad = []
    if json_downgrade(req):
        return [] if hub.status < 500 else [f"hub {hub.status}"]
    if hub.status != cloud.status:
        bad.append(f"status hub {hub.status} != cloud {cloud.status}")
    elif not req["watch"] and req["method"] not in ("POST", "PUT", "PATCH") \
            and norm(hub.body) != norm(cloud.body) \
            and "gzip" not in hub.headers.get("content-encoding", ""):
        bad.append("body differs")
    if cloud.status >= 400 and is_status(cloud) and not is_status(hub) \
            and req["method"] != "HEAD":
        bad.append("cloud gave a Status, the hub did not")
    return bad


def names(r: Resp) -> Any:
    """What a 200 says: its kind and the names in it (a list's, a Table's rows', an object's)."""
    j = r.json()
    if not isinstance(j, dict):
        return None
    if "rows" in j:
        return j.get("kind"), sorted(str(x.get("cells", [""])[0]) for x in j["rows"])
    if isinstance(j.get("items"), list):
        return j.get("kind"), sorted((i.get("metadata") or {}).get("name", "")
                                     for i in j["items"])
    return j.get("kind"), (j.get("metadata") or {}).get("name")


def check_offline(req: dict[str, Any], online: Resp | None, hub: Resp,
                  hub_online: Resp | None = None) -> list[str]:
    bad = []
    if hub.status == 200 and hub_online is not None and hub_online.status == 200 \
            and req["method"] == "GET" and not req["watch"] \
            and "limit" not in req["path"] and names(hub) != names(hub_online):
        bad.append(f"offline 200 says {names(hub)!s:.300}, online {names(hub_online)!s:.300}")
    if hub.status == -1:
        bad.append("no answer: " + hub.body.decode(errors="replace")[:200])
    if hub.status >= 500 and hub.status not in (503, 504):
        bad.append(f"offline {hub.status}")
    if hub.status >= 400 and req["method"] != "HEAD" and not is_status(hub):
        bad.append(f"offline error {hub.status} is not a Status: {hub.body[:120]!r}")
    if hub.status == 200 and online is not None and online.status != 200 \
            and not json_downgrade(req) \
            and req["method"] in ("GET",):
        bad.append(f"offline 200 where the cloud said {online.status}")
    if hub.json() == "<broken gzip>":
        bad.append("Content-Encoding: gzip on a body that is no gzip")
    if hub.secs > 15:
        bad.append(f"slow: {hub.secs:.1f}s")
    return bad


def free_base(start: int) -> int:
    """The first of four consecutive ports from ``start`` (in steps of 10) that bind now."""
    for base in range(start, start + 1000, 10):
        socks = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise SystemExit(f"no four free ports from {start}")


def idle(hub: Hub) -> tuple[int, int]:
    """The gunicorn worker's open fds and threads (after its timeouts had time to pass)."""
    time.sleep(3)
    assert hub.proc is not None
    kids = [int(p) for p in os.popen(f"pgrep -P {hub.proc.pid}").read().split()]
    if not kids:
        return -1, -1
    return (len(os.listdir(f"/proc/{kids[0]}/fd")), len(os.listdir(f"/proc/{kids[0]}/task")))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="/tmp/hfuzz")
    ap.add_argument("--port", type=int, default=53000)
    a = ap.parse_args()
    a.port = free_base(a.port)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="hfuzz-"))
    sb = SandboxProcess(nodes=2, pods_per_node=3,
                        extra=["--port", str(a.port), "--control-port", str(a.port + 1)])
    sb.start()
    sb.url = f"http://127.0.0.1:{a.port}"
    hub = Hub(tmp, sb.url)
    hub.proxy_port, hub.serve_port = a.port + 2, a.port + 3
    try:
        hub.start()
    except BaseException:
        sb.stop()
        raise
    findings: list[dict[str, Any]] = []
    def report(phase: str, req: dict[str, Any], bad: list[str], extra: str) -> None:
        rec = {"phase": phase, "req": {**req, "body": (req["body"] or b"").decode("latin-1")},
               "bad": bad, "extra": extra}
        findings.append(rec)
        print(phase, req["method"], req["path"], req["headers"].get("Accept", ""),
              req["headers"].get("User-Agent", "")[:10], bad, extra[:300], flush=True)
    try:
        rng = random.Random(a.seed)
        resources = discover(sb.url)
        pods = send(sb.url, {"method": "GET", "path": "/api/v1/pods", "headers": {}}).json()
        NAMES.extend(p["metadata"]["name"] for p in pods["items"][:3])
        NAMESPACES.extend({p["metadata"]["namespace"] for p in pods["items"]})
        print(len(resources), "resources", flush=True)
        reqs = [gen(rng, resources) for _ in range(a.count)]
        online: list[Resp] = []
        hub_online: list[Resp] = []
        for req in reqs:
            c = send(sb.url, req)
            ho = send(hub.url, req)
            online.append(c)
            hub_online.append(ho)
            bad = check_online(req, c, ho)
            if bad:
                report("online", req, bad, f"cloud={c.body[:200]!r} hub={ho.body[:200]!r}")
        print("online: worker fds/threads after the phase:", idle(hub), flush=True)
        sb.offline()
        time.sleep(4)
        for phase in ("offline", "restarted"):
            if phase == "restarted":
                hub.stop()
                hub.start(wait=False)
                time.sleep(6)
            for req, c, ho in zip(reqs, online, hub_online, strict=True):
                h = send(hub.url, req)
                bad = check_offline(req, c, h, ho)
                if bad:
                    report(phase, req, bad, f"hub={h.body[:200]!r}")
            fds = idle(hub)
            print(phase, "worker fds/threads after the phase:", fds, flush=True)
        log = hub.log()
        if "Traceback" in log:
            print("TRACEBACK in the hub's log:", log[log.index("Traceback"):][:3000])
    finally:
        (out / "findings.json").write_text(json.dumps(findings, indent=1))
        (out / "hub.log").write_text(hub.log())
        hub.stop()
        sb.stop()
    print(len(findings), "findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
