"""kubelet's ServiceAccount tokens (TokenRequest) through a cloud outage.

After a node reboot with the cloud away, kubelet cannot start a pod whose projected
ServiceAccount token it cannot get: nearly every pod.  So:

- Online, the cloud's 201 answer to kubelet's ``POST .../serviceaccounts/<sa>/token`` is
  kept, keyed by what makes two tokens interchangeable: namespace, ServiceAccount, the
  audiences (as a set), the bound object (kind, name, uid) and the lifetime asked.  A token
  is a secret: the answers live in one bookkeeping document at the cache root (0600, written
  atomically), bounded in count, expired ones dropped, and never logged.
- Offline, kubelet's request that matches a kept answer whose JWT ``exp`` (not only
  ``status.expirationTimestamp``: the apiserver extends kubelet's 3607 s tokens to a year
  and says 3607 s) is still a minute away gets that answer again: the same token the cloud
  issued to this node for this pod, which kubelet had already.
- Otherwise kubelet gets a local token, as YurtHub does (PR #868), so the volume mounts and
  the pod starts: marked (``iss`` ``yurthub-offline``), valid ``LOCAL_TTL`` seconds, so
  kubelet asks again soon and gets a real token once the cloud is back.  It is signed with a
  random key made at start and never stored: nobody can verify it, so nothing can take it
  for proof of anything; the hub itself accepts a token offline only when the cloud was seen
  to accept it (access/guard.py), and this one never reached the cloud.

Only kubelet (its User-Agent from kubelet's user) gets these answers; anyone else gets what
other writes get offline (503).  The cloud is asked for JSON (client-go decodes by the
answer's Content-Type); kubelet's request body may be protobuf, read by ``_proto_request``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.wrappers import Response

from yurthub.access.guard import Bookkeeping
from yurthub.errors import BadRequest, StorageError
from yurthub.kube import protowire
from yurthub.kube.requestinfo import RequestInfo
from yurthub.proxy.context import RequestContext

log = logging.getLogger(__name__)

KEEP_FILE = "tokens"
GROUP_VERSION = "authentication.k8s.io/v1"
MAX_KEPT = 2048          # answers kept; the soonest to expire go first past it
MAX_ANSWER = 64 * 1024   # a TokenRequest answer is ~1.5 KiB
MIN_LEFT = 60            # seconds a kept token must still be valid to be served
LOCAL_TTL = 60           # seconds a local token lasts (YurtHub's minute)
LOCAL_ISSUER = "yurthub-offline"
PROTOBUF_MAGIC = protowire.MAGIC
_WARNING_KEPT = ('299 - "yurthub: the cloud is unreachable; this token is the one the cloud '
                 'issued for this request earlier"')
_WARNING_LOCAL = ('299 - "yurthub: the cloud is unreachable; this is a short-lived local '
                  'token that no apiserver accepts, asked again once the cloud is back"')


def is_token_request(info: RequestInfo) -> bool:
    return (info.is_resource_request and info.verb == "create" and info.api_group == ""
            and info.resource == "serviceaccounts" and info.subresource == "token"
            and bool(info.namespace) and bool(info.name))


def jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def _stamp(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


# -- kubelet's request -----------------------------------------------------------------------

def _fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, value) of a protobuf message: varints as int, the rest as bytes."""
    return [(n, v) for n, _wire, v in protowire.fields(data)]


def _proto_request(body: bytes) -> dict[str, Any]:
    """The spec of a protobuf TokenRequest (``k8s\\0`` + runtime.Unknown{raw = 2}):
    TokenRequest{spec = 2}, TokenRequestSpec{audiences = 1, boundObjectRef = 3,
    expirationSeconds = 4}, BoundObjectReference{kind, apiVersion, name, uid = 1..4}."""
    raw = next((v for n, v in _fields(body[len(PROTOBUF_MAGIC):]) if n == 2), b"")
    spec: dict[str, Any] = {}
    for n, v in _fields(raw if isinstance(raw, bytes) else b""):
        if n != 2 or not isinstance(v, bytes):
            continue
        for sn, sv in _fields(v):
            if sn == 1 and isinstance(sv, bytes):
                spec.setdefault("audiences", []).append(sv.decode())
            elif sn == 4 and isinstance(sv, int):
                spec["expirationSeconds"] = sv
            elif sn == 3 and isinstance(sv, bytes):
                names = {1: "kind", 2: "apiVersion", 3: "name", 4: "uid"}
                spec["boundObjectRef"] = {names[bn]: bv.decode() for bn, bv in _fields(sv)
                                          if bn in names and isinstance(bv, bytes)}
    return {"apiVersion": GROUP_VERSION, "kind": "TokenRequest", "metadata": {},
            "spec": spec}


def read_request(body: bytes) -> dict[str, Any]:
    """kubelet's TokenRequest, JSON or protobuf (400 when it is neither)."""
    try:
        if body.startswith(PROTOBUF_MAGIC):
            return _proto_request(body)
        obj = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"the request body is no TokenRequest: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("spec", {}), dict):
        raise BadRequest("the request body is no TokenRequest")
    return obj


def token_key(info: RequestInfo, request: dict[str, Any]) -> str:
    """What makes two tokens interchangeable, as one string."""
    spec = request.get("spec") or {}
    ref: dict[str, Any] = spec["boundObjectRef"] \
        if isinstance(spec.get("boundObjectRef"), dict) else {}
    audiences: list[Any] = spec["audiences"] if isinstance(spec.get("audiences"), list) else []
    parts = [info.namespace, info.name, sorted({str(a) for a in audiences}),
             [str(ref.get(k) or "") for k in ("kind", "name", "uid")],
             spec.get("expirationSeconds")]
    return json.dumps(parts, separators=(",", ":"))


# -- what is kept ----------------------------------------------------------------------------

class KeptTokens:
    """The cloud's answers to kubelet's TokenRequests, and the offline answers built on them."""

    def __init__(self, max_kept: int = MAX_KEPT,
                 rotated: Callable[[str, str], object] | None = None) -> None:
        self.max_kept = max_kept
        # (old, new): the Authorization of the token an answer replaces, and of the new
        # one, both issued by the cloud for the same key (the token memory's ``inherit``)
        self.rotated = rotated
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._dirty = False   # kept answers not yet written (see _persist)
        self._kept: dict[str, dict[str, Any]] = {}   # key -> {"exp": int, "answer": {...}}
        self._store: Bookkeeping | None = None
        self._key = os.urandom(32)   # signs local tokens; never stored nor shown

    def start(self, store: Bookkeeping) -> None:
        self._store = store
        try:
            doc = store.read_bookkeeping(KEEP_FILE)
        except (StorageError, ValueError) as e:
            log.warning("kept ServiceAccount tokens not read (%s): offline, kubelet gets "
                        "local tokens until the cloud answers again", type(e).__name__)
            return
        now = time.time()
        with self._lock:
            kept = doc.get("tokens") if isinstance(doc, dict) else None
            for key, entry in (kept if isinstance(kept, dict) else {}).items():
                if isinstance(entry, dict) and isinstance(entry.get("exp"), int) \
                        and entry["exp"] > now and isinstance(entry.get("answer"), dict):
                    self._kept[key] = entry

    def applies(self, ctx: RequestContext) -> bool:
        return ctx.caller.kubelet and is_token_request(ctx.info)

    def kept_answer(self, ctx: RequestContext, answer: Any) -> Any:
        """``answer`` (the cloud's, a Passthrough) with its body kept once it ended whole."""
        if getattr(answer, "status", None) != 201 or not hasattr(answer, "body") \
                or not ctx.body_buffered:
            return answer
        try:
            key = token_key(ctx.info, read_request(ctx.read_body()))
        except BadRequest:
            return answer
        headers = {k.lower(): v for k, v in getattr(answer, "headers", [])}
        gzipped = headers.get("content-encoding", "").strip().lower() == "gzip"
        answer.body = _Keeping(answer.body, lambda body: self.keep(key, body, gzipped))
        return answer

    def keep(self, key: str, body: bytes, gzipped: bool = False) -> bool:
        try:
            if gzipped:
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                body = d.decompress(body, MAX_ANSWER)
                if d.unconsumed_tail:
                    return False
            obj = json.loads(body)
        except (ValueError, zlib.error):
            return False   # protobuf, or not whole: nothing kept
        token = ((obj if isinstance(obj, dict) else {}).get("status") or {}).get("token")
        claims = jwt_claims(token) if isinstance(token, str) else None
        exp = (claims or {}).get("exp")
        if not isinstance(exp, int) or exp <= time.time() + MIN_LEFT:
            return False
        with self._lock:
            before = self._kept.get(key)
            self._kept[key] = {"exp": exp, "answer": obj}
            self._prune()
        previous = ((before or {}).get("answer") or {}).get("status") or {}
        if self.rotated is not None and isinstance(previous.get("token"), str) \
                and previous["token"] != token:
            self.rotated(f"Bearer {previous['token']}", f"Bearer {token}")
        self._persist()
        return True

    def _prune(self) -> None:
        now = time.time()
        for key in [k for k, e in self._kept.items() if e["exp"] <= now]:
            del self._kept[key]
        if len(self._kept) > self.max_kept:
            for key in sorted(self._kept, key=lambda k: self._kept[k]["exp"])[
                    :len(self._kept) - self.max_kept]:
                del self._kept[key]

    def _persist(self) -> None:
        """Write the kept answers, or leave it to the thread writing them now.

        One writer at a time, and it writes until the document holds every answer kept
        meanwhile: two answers kept at once never leave the older document on disk, and a
        burst of kubelet's TokenRequests (a node starting its pods) costs a few rewrites of
        the document, not one each.  Each rewrite is the whole document (up to MAX_KEPT
        answers) with an fsync: one per request queued every other request thread behind
        the lock, and with them the proxy's answers.
        """
        if self._store is None:
            return
        with self._lock:
            self._dirty = True
        while self._write_lock.acquire(blocking=False):
            try:
                while True:
                    with self._lock:
                        if not self._dirty:
                            break
                        self._dirty = False
                        doc = {"tokens": dict(self._kept)}
                    try:
                        self._store.write_bookkeeping(KEEP_FILE, doc)
                    except StorageError as e:
                        log.warning("kept ServiceAccount tokens not saved: %s", e)
            finally:
                self._write_lock.release()
            # An answer kept between the last check and the release found the lock held
            # and left its write to this thread.
            with self._lock:
                if not self._dirty:
                    return

    # -- offline -----------------------------------------------------------------------------

    def answer(self, ctx: RequestContext) -> Response:
        request = read_request(ctx.read_body())
        now = time.time()
        with self._lock:
            entry = self._kept.get(token_key(ctx.info, request))
        if entry is not None and entry["exp"] > now + MIN_LEFT:
            out = json.loads(json.dumps(entry["answer"]))
            status = out.setdefault("status", {})
            stamp = _parse_stamp(status.get("expirationTimestamp"))
            if stamp is None or stamp <= now:
                # kubelet refreshes by this time: past it, it asks again at once
                status["expirationTimestamp"] = _stamp(min(entry["exp"], now + LOCAL_TTL))
            warning = _WARNING_KEPT
        else:
            out = self._local(ctx.info, request, now)
            warning = _WARNING_LOCAL
        return Response(json.dumps(out).encode(), status=201, content_type="application/json",
                        headers=[("Warning", warning)])

    def _local(self, info: RequestInfo, request: dict[str, Any], now: float) -> dict[str, Any]:
        spec = dict(request.get("spec") or {})
        ref = spec.get("boundObjectRef") if isinstance(spec.get("boundObjectRef"), dict) \
            else None
        iat = int(now)
        k8s: dict[str, Any] = {"namespace": info.namespace,
                               "serviceaccount": {"name": info.name}}
        if ref and ref.get("kind") == "Pod":
            k8s["pod"] = {"name": ref.get("name", ""), "uid": ref.get("uid", "")}
        claims = {"iss": LOCAL_ISSUER,
                  "sub": f"system:serviceaccount:{info.namespace}:{info.name}",
                  "aud": spec.get("audiences") or [], "iat": iat, "nbf": iat,
                  "exp": iat + LOCAL_TTL, "kubernetes.io": k8s}
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": LOCAL_ISSUER},
                               separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        meta: dict[str, Any] = request["metadata"] \
            if isinstance(request.get("metadata"), dict) else {}
        return {"kind": "TokenRequest", "apiVersion": GROUP_VERSION,
                "metadata": {**meta, "name": info.name, "namespace": info.namespace,
                             "creationTimestamp": None},
                "spec": spec,
                "status": {"token": f"{head}.{body}.{sig}",
                           "expirationTimestamp": _stamp(iat + LOCAL_TTL)}}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Keeping:
    """A response body passed on as it is, and handed whole to ``done`` once it ended
    (never a body that broke, nor one past ``MAX_ANSWER``)."""

    __slots__ = ("_body", "_done")

    def __init__(self, body: Iterable[bytes], done: Any) -> None:
        self._body = body
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        seen: list[bytes] = []
        size = 0
        for chunk in self._body:
            size += len(chunk)
            if size <= MAX_ANSWER:
                seen.append(bytes(chunk))
            yield chunk
        if size <= MAX_ANSWER:
            self._done(b"".join(seen))

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
