"""The sandbox on the wire: Status bodies for bad input, gzip, negotiation, watch framing,
authentication and TLS."""

from __future__ import annotations

import gzip
import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from sandbox_wire_helpers import connect, request, send

from kubesandbox.server import Sandbox

CMS = "/api/v1/namespaces/default/configmaps"


@pytest.mark.parametrize("method, path, body, code, reason, message", [
    ("POST", CMS, b"{not json", 400, "BadRequest",
     "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
     "version/kind; json parse error: invalid character 'n' looking for beginning of object "
     "key string ({not json)"),
    ("GET", "/api/v1/frobnicators", b"", 404, "NotFound",
     "the server could not find the requested resource"),
    ("GET", "/apis/nope.example.com/v1/things", b"", 404, "NotFound",
     "the server could not find the requested resource"),
    ("GET", "/api/v1/pods?labelSelector=app%20web", b"", 400, "BadRequest",
     "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("GET", "/api/v1/pods?fieldSelector=spec.color%3Dred", b"", 400, "BadRequest",
     "field label not supported: spec.color"),
    ("PUT", CMS, b"{}", 405, "MethodNotAllowed",
     "the server does not allow this method on the requested resource"),
])
def test_bad_input_gets_kube_apiservers_status_and_the_server_keeps_serving(
        sandbox, method, path, body, code, reason, message):
    r = request(sandbox.url, method, path, {"Content-Type": "application/json"}, body)
    assert r.status == code and r.headers["content-type"] == "application/json"
    status = r.json()
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code}
    assert request(sandbox.url, "GET", "/api/v1/nodes").status == 200


def test_invalid_name_is_422_with_causes(sandbox):
    r = request(sandbox.url, "POST", CMS, body={"metadata": {"name": "No_Good"}})
    status = r.json()
    assert (r.status, status["reason"], status["code"]) == (422, "Invalid", 422)
    assert status["message"].startswith('ConfigMap "No_Good" is invalid: metadata.name: '
                                        'Invalid value: "No_Good": a lowercase RFC 1123 '
                                        "subdomain must consist of lower case alphanumeric")
    assert status["details"]["kind"] == "ConfigMap"
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert request(sandbox.url, "GET", CMS).status == 200


@pytest.fixture
def big_sandbox():
    sb = Sandbox(nodes=4, pods_per_node=10).start()
    yield sb
    sb.stop()


def test_gzip_over_128_kib_when_asked(big_sandbox):
    plain = request(big_sandbox.url, "GET", "/api/v1/pods")
    assert len(plain.body) > 128 * 1024 and "content-encoding" not in plain.headers
    packed = request(big_sandbox.url, "GET", "/api/v1/pods", {"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert len(packed.body) < len(plain.body) // 3
    assert gzip.decompress(packed.body) == plain.body
    small = request(big_sandbox.url, "GET", "/api/v1/nodes", {"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers and small.json()["kind"] == "NodeList"


@pytest.mark.parametrize("accept, code", [
    ("application/vnd.kubernetes.protobuf, */*", 200),
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json", 200),
    ("application/vnd.kubernetes.protobuf", 406),
])
def test_protobuf_is_answered_with_json_or_406(sandbox, accept, code):
    r = request(sandbox.url, "GET", "/api/v1/pods", {"Accept": accept})
    assert r.status == code and r.headers["content-type"] == "application/json"
    assert r.json()["kind"] == ("PodList" if code == 200 else "Status")


def test_watch_is_chunked_one_event_per_chunk(sandbox):
    rv = request(sandbox.url, "GET", CMS).json()["metadata"]["resourceVersion"]
    for name in ("a", "b", "c"):
        sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": name, "namespace": "default"}})
    sandbox.delete("configmaps", "b", "default")
    r = request(sandbox.url, "GET", f"{CMS}?watch=true&resourceVersion={rv}&timeoutSeconds=1",
                {"Accept-Encoding": "gzip"})
    assert r.status == 200 and r.complete
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers["content-type"] == "application/json"
    assert "content-encoding" not in r.headers
    events = [json.loads(c) for c in r.chunks]
    assert all(c.endswith(b"\n") and c.count(b"\n") == 1 for c in r.chunks)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("DELETED", "b")]


def test_keep_alive_serves_several_requests_on_one_connection(sandbox):
    with connect(sandbox.url) as sock:
        f = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(b"GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\n\r\n")
            status = f.readline()
            assert status.startswith(b"HTTP/1.1 200")
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert json.loads(f.read(length))["kind"] == "NodeList"


def test_head_has_no_body(sandbox):
    with connect(sandbox.url) as sock:
        send(sock, "HEAD", "/api/v1/nodes")
        data = sock.makefile("rb").read()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head and body == b""


def test_bearer_token(caplog):
    caplog.set_level("DEBUG")
    with Sandbox(token="t0ps3cret") as sb:
        denied = request(sb.url, "GET", "/api/v1/nodes")
        assert denied.status == 401
        assert denied.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                 "status": "Failure", "message": "Unauthorized",
                                 "reason": "Unauthorized", "code": 401}
        wrong = request(sb.url, "GET", "/api/v1/nodes", {"Authorization": "Bearer nope"})
        assert wrong.status == 401
        ok = request(sb.url, "GET", "/api/v1/nodes", {"Authorization": "Bearer t0ps3cret"})
        assert ok.status == 200
        assert request(sb.url, "GET", "/healthz").body == b"ok"  # anonymous, as in a cluster
        assert request(sb.url, "GET", "/_sandbox/state").status == 401
    assert "t0ps3cret" not in caplog.text


def test_tls_with_self_signed_material_and_client_certificates(tmp_path):
    pki = tmp_path / "pki"
    with Sandbox(self_signed_dir=str(pki), nodes=1) as sb:
        assert sb.url.startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(sb.url + "/api/v1/nodes", context=ctx, timeout=10)
        assert e.value.code == 401
        ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
        with urllib.request.urlopen(sb.url + "/api/v1/nodes", context=ctx, timeout=10) as r:
            assert [n["metadata"]["name"] for n in json.load(r)["items"]] == ["node-0000"]
        kubeconfig = sb.write_kubeconfig(tmp_path / "kubeconfig")
        out = subprocess.run(["/usr/bin/kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                              str(tmp_path / "cache"), "get", "nodes", "-o", "name"],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout.split() == ["node/node-0000"], out.stderr
    # the material is reused by the next start
    before = (pki / "ca.crt").read_bytes()
    with Sandbox(self_signed_dir=str(pki)):
        pass
    assert (pki / "ca.crt").read_bytes() == before


def test_writes_from_python_are_visible_on_the_wire(sandbox):
    sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "py", "namespace": "default"}, "data": {"a": "1"}})
    got = request(sandbox.url, "GET", f"{CMS}/py").json()
    assert got["data"] == {"a": "1"} and int(got["metadata"]["resourceVersion"]) == \
        sandbox.resource_version
    sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "py", "namespace": "default"}, "data": {"a": "2"}})
    assert request(sandbox.url, "GET", f"{CMS}/py").json()["data"] == {"a": "2"}
    assert sandbox.delete("configmaps", "py", "default")["data"] == {"a": "2"}
    assert request(sandbox.url, "GET", f"{CMS}/py").status == 404
    assert sandbox.delete("configmaps", "py", "default") is None


def test_the_query_is_read_as_kube_apiserver_reads_it(sandbox):
    """Go's url.ParseQuery drops a pair holding ";" or a bad escape, and the conversions take
    a parameter's first value; ?watch on one object's GET is no watch (GetOptions has none)."""
    for name in ("a", "b"):
        sandbox.put({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": name, "namespace": "default",
                                  "labels": {"q": "1"}}})
    # the object, whole, not a stream that never ends
    r = request(sandbox.url, "GET", f"{CMS}/a?watch=1")
    assert r.status == 200 and r.complete
    assert (r.json()["kind"], r.json()["metadata"]["name"]) == ("ConfigMap", "a")

    def listed(query):
        r = request(sandbox.url, "GET", f"{CMS}?labelSelector=q&{query}")
        doc = r.json()
        return r.status, doc.get("message") or sorted(i["metadata"]["name"] for i in doc["items"])

    assert listed("fieldSelector=metadata.name%3Da;") == (200, ["a", "b"])
    assert listed("limit=1;x") == (200, ["a", "b"])
    assert listed("limit=%zz") == (200, ["a", "b"])
    assert listed("fieldSelector=metadata.name%3Da&fieldSelector=metadata.name%3Db") == \
        (200, ["a"])
    assert listed("watch=0&watch=1") == (200, ["a", "b"])
    assert listed("limit=") == (400, 'strconv.ParseInt: parsing "": invalid syntax')
    # all of ListOptions is decoded, for a list and a watch alike, timeoutSeconds first
    # a watch of one object by its path: its field selector may pin that name only
    r = request(sandbox.url, "GET", f"/api/v1/watch{CMS[7:]}/a?fieldSelector=metadata.name%3Db")
    assert (r.status, r.json()["message"]) == (
        400, "fieldSelector metadata.name doesn't match requested name")
    bad = 'strconv.ParseInt: parsing "{}": invalid syntax'.format
    assert listed("timeoutSeconds=abc") == (400, bad("abc"))
    assert listed("watch=1&limit=abc") == (400, bad("abc"))
    assert listed("limit=x&timeoutSeconds=y") == (400, bad("y"))
