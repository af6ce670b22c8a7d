"""proxy/tokens.py: kubelet's TokenRequests read, keyed, kept and answered offline."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.waiting import wait_for
from yurthub.errors import BadRequest
from yurthub.kube.requestinfo import parse_request_info
from yurthub.proxy import tokens as t
from yurthub.storage import DiskStore

INFO = parse_request_info("POST", "/api/v1/namespaces/ns/serviceaccounts/sa/token", "")


def _field(number: int, value: bytes | int) -> bytes:
    def varint(n: int) -> bytes:
        out = b""
        while True:
            b, n = n & 0x7F, n >> 7
            out += bytes([b | (0x80 if n else 0)])
            if not n:
                return out
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def protobuf_request(audiences: list[str], seconds: int, pod: str, uid: str) -> bytes:
    ref = _field(1, b"Pod") + _field(2, b"v1") + _field(3, pod.encode()) + _field(4, uid.encode())
    spec = b"".join(_field(1, a.encode()) for a in audiences) + _field(4, seconds) + \
        _field(3, ref)
    raw = _field(1, b"") + _field(2, spec)
    unknown = _field(1, _field(1, b"authentication.k8s.io/v1") + _field(2, b"TokenRequest")) \
        + _field(2, raw) + _field(4, b"application/vnd.kubernetes.protobuf")
    return t.PROTOBUF_MAGIC + unknown


def json_request(audiences: list[str] | None, seconds: int, pod: str, uid: str) -> bytes:
    return json.dumps({"apiVersion": t.GROUP_VERSION, "kind": "TokenRequest", "spec": {
        "audiences": audiences, "expirationSeconds": seconds,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid}}}
    ).encode()


def jwt(exp: int) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'ES256'})}.{b64({'exp': exp, 'iat': int(time.time())})}.c2ln"


def answer(token: str, stamp: str = "2099-01-01T00:00:00Z") -> bytes:
    return json.dumps({"kind": "TokenRequest", "apiVersion": t.GROUP_VERSION,
                       "spec": {"expirationSeconds": 3607},
                       "status": {"token": token, "expirationTimestamp": stamp}}).encode()


def test_kubelets_protobuf_request_keys_as_its_json_one():
    """kubelet sends protobuf; the same request in JSON (audiences in another order) is
    the same token; another pod, uid, audience or lifetime is not."""
    key = t.token_key(INFO, t.read_request(protobuf_request(["b", "a"], 3607, "p", "u1")))
    assert key == t.token_key(INFO, t.read_request(json_request(["a", "b"], 3607, "p", "u1")))
    for other in (json_request(["a", "b"], 3607, "p", "u2"), json_request(["a"], 3607, "p", "u1"),
                  json_request(["a", "b"], 600, "p", "u1"), json_request(["a", "b"], 3607, "q",
                                                                        "u1")):
        assert t.token_key(INFO, t.read_request(other)) != key
    spec = t.read_request(protobuf_request(["x"], 3607, "p", "u1"))["spec"]
    assert spec == {"audiences": ["x"], "expirationSeconds": 3607,
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p",
                                       "uid": "u1"}}
    with pytest.raises(BadRequest):
        t.read_request(t.PROTOBUF_MAGIC + b"\x12\xff")
    with pytest.raises(BadRequest):
        t.read_request(b"[1]")


def test_only_a_token_valid_past_the_next_minute_is_kept():
    kept = t.KeptTokens()
    assert not kept.keep("k", answer(jwt(int(time.time()) + 30)))
    assert not kept.keep("k", b"k8s\x00protobuf")
    assert not kept.keep("k", answer("not-a-jwt"))
    assert kept.keep("k", answer(jwt(int(time.time()) + 3600)))


def test_the_soonest_to_expire_go_first_past_the_bound():
    kept = t.KeptTokens(max_kept=2)
    now = int(time.time())
    for i, life in enumerate((3000, 1000, 2000)):
        kept.keep(f"k{i}", answer(jwt(now + life)))
    assert sorted(kept._kept) == ["k0", "k2"]


class _Ctx:
    def __init__(self, body: bytes) -> None:
        self.info = INFO
        self.body = body

    def read_body(self) -> bytes:
        return self.body


def test_an_extended_token_past_its_stated_expiry_is_served_asking_for_a_refresh():
    """The apiserver extends kubelet's 3607 s tokens to a year and says 3607 s: the JWT's
    exp decides, and the answer tells kubelet to ask again soon."""
    kept = t.KeptTokens()
    body = json_request(None, 3607, "p", "u1")
    token = jwt(int(time.time()) + 365 * 86400)
    kept.keep(t.token_key(INFO, t.read_request(body)), answer(token, "2020-01-01T00:00:00Z"))
    out = json.loads(kept.answer(_Ctx(body)).get_data())  # type: ignore[arg-type]
    assert out["status"]["token"] == token
    stamp = time.mktime(time.strptime(out["status"]["expirationTimestamp"],
                                      "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert time.time() < stamp <= time.time() + t.LOCAL_TTL + 1


def test_local_tokens_are_short_marked_and_unverifiable_by_anyone_else():
    body = json_request(["vault"], 3607, "p", "u1")
    a = json.loads(t.KeptTokens().answer(_Ctx(body)).get_data())  # type: ignore[arg-type]
    ca = t.jwt_claims(a["status"]["token"])
    assert ca is not None and ca["iss"] == "yurthub-offline" and ca["aud"] == ["vault"]
    assert ca["exp"] - ca["iat"] == t.LOCAL_TTL
    # each hub signs with a key of its own, made at start and never stored
    req, now = t.read_request(body), time.time()
    one = t.KeptTokens()._local(INFO, req, now)["status"]["token"].split(".")
    two = t.KeptTokens()._local(INFO, req, now)["status"]["token"].split(".")
    assert one[:2] == two[:2] and one[2] != two[2]


def cache(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YURTHUB_CONFIG": os.devnull}
    return subprocess.run([sys.executable, "-m", "yurthub", "cache", "--disk-cache-path",
                           str(root), *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_cache_verify_checks_the_kept_tokens_file(tmp_path):
    """They are secrets: ``yurthub cache verify`` names a file others could read, and one
    the hub cannot load."""
    root = tmp_path / "cache"
    with DiskStore(str(root)) as store:
        store.write_bookkeeping(t.KEEP_FILE, {"tokens": {}})
    assert cache(root, "verify").returncode == 0
    (root / "_tokens").chmod(0o644)
    r = cache(root, "verify")
    assert r.returncode == 1 and r.stdout.startswith("_tokens: file mode 0644, not 0600"), r.stdout
    (root / "_tokens").chmod(0o600)
    (root / "_tokens").write_bytes(b"\x00garbage")
    r = cache(root, "verify")
    assert r.returncode == 1 and "offline, kubelet gets short-lived local" in r.stdout


class _SlowStore:
    """Bookkeeping whose first write waits for ``release``; every document written kept."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.written: list[dict[str, Any]] = []

    def read_bookkeeping(self, name: str) -> Any:
        return None

    def write_bookkeeping(self, name: str, doc: Any) -> None:
        if not self.written and not self.release.is_set():
            self.release.wait(30)
        self.written.append(json.loads(json.dumps(doc)))


def test_two_answers_kept_at_once_leave_both_on_disk():
    store = _SlowStore()
    kept = t.KeptTokens()
    kept.start(store)  # type: ignore[arg-type]
    exp = int(time.time()) + 3600
    first = threading.Thread(target=kept.keep, args=("k1", answer(jwt(exp))))
    first.start()
    wait_for(lambda: "k1" in kept._kept, 10, "the first answer kept in memory")
    second = threading.Thread(target=kept.keep, args=("k2", answer(jwt(exp))))
    second.start()
    second.join(1)  # the old code wrote its (newer) document here, before the first's
    store.release.set()
    first.join(30)
    second.join(30)
    assert sorted(store.written[-1]["tokens"]) == ["k1", "k2"]


def test_a_burst_of_answers_waits_for_one_write_not_one_each():
    # A node starting its pods: kubelet's TokenRequests arrive together.  Each kept answer
    # used to rewrite (and fsync) the whole document in turn, every request thread queued
    # behind the one writing; now the writer takes the answers kept meanwhile with it.
    store = _SlowStore()
    kept = t.KeptTokens()
    kept.start(store)  # type: ignore[arg-type]
    exp = int(time.time()) + 3600
    first = threading.Thread(target=kept.keep, args=("k0", answer(jwt(exp))))
    first.start()
    wait_for(lambda: kept._write_lock.locked(), 10, "the first answer being written")
    burst = [threading.Thread(target=kept.keep, args=(f"k{i}", answer(jwt(exp))))
             for i in range(1, 21)]
    for thread in burst:
        thread.start()
    for thread in burst:
        thread.join(10)
    held = sum(thread.is_alive() for thread in burst)
    store.release.set()
    for thread in [first, *burst]:
        thread.join(30)
    assert held == 0, f"{held} request threads waited for another answer's write"
    assert len(store.written) == 2
    assert sorted(store.written[-1]["tokens"]) == sorted(f"k{i}" for i in range(21))
