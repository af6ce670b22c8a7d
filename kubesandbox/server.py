"""The sandbox kube-apiserver: its listeners, connections, faults and Python control API.

design: a :class:`Sandbox` owns a store, a registry, the API, a fault table and two
listeners: the API port (closed while offline, reopened on the same port) and an optional
control port for ``/_sandbox/...`` that never goes offline.  Every accepted connection gets a
:class:`ConnectionThread`; going offline closes the API listener and cuts every API connection,
open watches included.  Tests drive it from Python (``start()``, ``offline()``, ``fail_next()``,
``put()``...) or over HTTP (``kubesandbox.control``).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass, replace
from typing import Any

from kubesandbox import bootstrap, control, seed, tls
from kubesandbox.api import Api
from kubesandbox.auth import Authenticator, User
from kubesandbox.connection import Conn, Handler, RequestRecord
from kubesandbox.controllers import Controllers
from kubesandbox.discovery import Registry
from kubesandbox.faults import DROP, FAIL, RESET, STALL, Faults
from kubesandbox.identity import IdentityControls
from kubesandbox.listener import Listener, bind
from kubesandbox.objects import now_rfc3339
from kubesandbox.pki import Authority
from kubesandbox.satokens import TokenSigner
from kubesandbox.store import Store
from kubesandbox.wire import Headers, Request, Response
from yurthub.errors import ApiError, NotFound
from yurthub.kube import bootstraptoken as bt
from yurthub.kube import patch as kpatch
from yurthub.kube.resources import ResourceType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxOptions:
    """How to run a sandbox; every field has a test-friendly default."""

    host: str = "127.0.0.1"
    port: int = 0                     # 0: pick a free port
    control_port: int | None = None   # a separate /_sandbox/ port that stays up (0: pick one)
    nodes: int = 0
    pods_per_node: int = 0
    history_size: int = 10000         # watch history and continue-token window, in events
    bookmark_interval: float = 60.0   # seconds between BOOKMARK events
    watch_timeout: float = 1800.0     # server-side watch timeout when timeoutSeconds is unset
    token: str | None = None          # require "Authorization: Bearer <token>" (or a cert)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    client_ca_file: str | None = None
    self_signed_dir: str | None = None
    request_log_size: int = 10000
    bootstrap_tokens: tuple[str, ...] = ()  # join tokens (turn authentication on)
    csr_auto_approve: bool = True     # yurt-manager's CSR approver
    cert_lifetime: float = 365 * 86400.0  # seconds the CSR signer's certificates last
    sign_cluster_info: bool = True    # the bootstrap signer keeps cluster-info's JWS current


class ConnectionThread:
    """Serves one accepted connection until it closes or is cut."""

    _ids = itertools.count(1)

    def __init__(self, sandbox: Sandbox, sock: socket.socket, addr: Any,
                 control_only: bool) -> None:
        self.sandbox = sandbox
        self.conn = Conn(sock, control_only)
        self.addr = addr
        self.thread = threading.Thread(target=self.run, daemon=True,
                                       name=f"sandbox-conn-{next(self._ids)}")

    def run(self) -> None:
        sb = self.sandbox
        try:
            if sb.ssl_context is not None and not self.conn.control_only:
                self.conn.sock.settimeout(10)
                self.conn.sock = sb.ssl_context.wrap_socket(self.conn.sock, server_side=True)
                self.conn.sock.settimeout(None)
            Handler(self.conn, self.addr, sb)
        except (OSError, ssl.SSLError) as e:
            log.debug("connection from %s ended: %s", self.addr, e)
        finally:
            sb._forget(self)
            try:
                self.conn.sock.close()
            except OSError:
                pass

    def stop(self) -> None:
        self.conn.cut()


class Sandbox(IdentityControls):
    """A running (after ``start()``) sandbox kube-apiserver.  Thread-safe."""

    def __init__(self, options: SandboxOptions | None = None, **overrides: Any) -> None:
        self.options = replace(options or SandboxOptions(), **overrides)
        o = self.options
        self.store = Store(o.history_size)
        self.registry = Registry()
        self.token_signer = TokenSigner()
        self.api = Api(self.store, self.registry, bookmark_interval=o.bookmark_interval,
                       watch_timeout=o.watch_timeout, server_address=lambda: self.address,
                       signer=self.token_signer)
        self.faults = Faults()
        self.stopping = threading.Event()
        self.ssl_context: ssl.SSLContext | None = None
        self.tls: tls.TLSMaterial | None = None
        self.ca: Authority | None = None
        self.authenticator = Authenticator(
            enabled=bool(o.token or o.client_ca_file or o.self_signed_dir or
                         o.bootstrap_tokens),
            static_token=o.token, lookup=self._lookup, signer=self.token_signer)
        self.controllers: Controllers | None = None
        self.port = o.port
        self.control_port: int | None = None
        self._listener: Listener | None = None
        self._control: Listener | None = None
        self._lock = threading.Lock()
        self._threads: set[ConnectionThread] = set()
        self._requests: collections.deque[RequestRecord] = collections.deque(
            maxlen=o.request_log_size)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Sandbox:
        o = self.options
        cert, key, client_ca = o.tls_cert_file, o.tls_key_file, o.client_ca_file
        for token in o.bootstrap_tokens:
            bt.parse_token(token)  # a bad token is a ValueError before anything starts
        if o.self_signed_dir:
            self.tls = tls.make_self_signed(o.self_signed_dir)
            cert, key = self.tls.server_cert, self.tls.server_key
            client_ca = client_ca or self.tls.ca_cert
            self.ca = Authority.load(self.tls.ca_cert, self.tls.ca_key)
        else:
            self.ca = Authority.create()  # signs CSRs; nothing verifies it over plain HTTP
        if cert or key:
            if not (cert and key):
                raise ValueError("TLS needs both a certificate and a private key")
            self.ssl_context = tls.server_context(cert, key, client_ca)
        elif client_ca:
            raise ValueError("client certificate authentication needs TLS")
        sock = bind(o.host, o.port)
        self.port = int(sock.getsockname()[1])
        self._seed()
        self._seed_identity()
        self.controllers = Controllers(
            self.store, self.registry, self.api.writer, ca=self.ca,
            cert_lifetime=o.cert_lifetime, auto_approve=o.csr_auto_approve,
            sign_cluster_info=o.sign_cluster_info).start()
        self._listener = Listener(sock, self._on_api, "sandbox-listener").start()
        if o.control_port is not None:
            csock = bind(o.host, o.control_port)
            self.control_port = int(csock.getsockname()[1])
            self._control = Listener(csock, self._on_control, "sandbox-control").start()
        log.info("sandbox apiserver serving on %s (resourceVersion %d)", self.url, self.store.rv)
        return self

    def _seed(self) -> None:
        o = self.options
        seed.install(self.store, self.registry, o.host, self.port, o.nodes, o.pods_per_node,
                     now_rfc3339())

    def _seed_identity(self) -> None:
        """cluster-info (the cluster's kubeconfig) and a Secret per bootstrap token."""
        ca_pem = open(self.tls.ca_cert, "rb").read() if self.tls is not None else None
        self.create(bootstrap.cluster_info(self.url, ca_pem))
        for token in self.options.bootstrap_tokens:
            self.add_bootstrap_token(token)

    def stop(self) -> None:
        """Stop listening, end every watch cleanly, then cut every connection."""
        self.stopping.set()
        if self.controllers is not None:
            self.controllers.stop()
        for listener in (self._listener, self._control):
            if listener is not None:
                listener.stop()
        self._listener = self._control = None
        self.store.close()  # watches end with their terminal chunk
        self.faults.release()
        ended = threading.Event()
        for _ in range(50):
            if self.open_watches == 0 or ended.wait(0.02):
                break
        for t in self._snapshot_threads():
            t.stop()
        for t in self._snapshot_threads():
            t.thread.join(2)

    def __enter__(self) -> Sandbox:
        return self.start() if self._listener is None and not self.stopping.is_set() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        host = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return ("https://" if self.ssl_context else "http://") + self.address

    @property
    def control_url(self) -> str:
        """Where ``/_sandbox/`` is served while offline (the API URL without a control port)."""
        if self.control_port is None:
            return self.url
        host = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
        return f"http://{host}:{self.control_port}"

    def write_kubeconfig(self, path: str | os.PathLike[str], *, token: str | None = None,
                         client_cert: bool = True, admin: bool = False) -> str:
        """Write a kubeconfig for this sandbox (its CA, token and client cert when it has them;
        ``admin`` uses the ``system:masters`` certificate instead of the node's)."""
        cluster = [f"    server: {self.url}"]
        if self.tls is not None:
            cluster.append(f"    certificate-authority: {self.tls.ca_cert}")
        elif self.options.tls_cert_file:
            cluster.append("    insecure-skip-tls-verify: true")
        user: list[str] = []
        token = token if token is not None else self.options.token
        if token:
            user.append(f"    token: {token}")
        if (client_cert or admin) and self.tls is not None:
            cert, key = ((self.tls.admin_cert, self.tls.admin_key) if admin else
                         (self.tls.client_cert, self.tls.client_key))
            user += [f"    client-certificate: {cert}", f"    client-key: {key}"]
        text = "\n".join([
            "apiVersion: v1", "kind: Config", "clusters:", "- name: sandbox", "  cluster:",
            *cluster, "users:", "- name: sandbox", "  user:" + ("" if user else " {}"), *user,
            "contexts:", "- name: sandbox", "  context:", "    cluster: sandbox",
            "    user: sandbox", "current-context: sandbox", ""])
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return os.fspath(path)

    # -- connections -----------------------------------------------------------------------

    def _on_api(self, sock: socket.socket, addr: Any) -> None:
        self._spawn(sock, addr, control_only=False)

    def _on_control(self, sock: socket.socket, addr: Any) -> None:
        self._spawn(sock, addr, control_only=True)

    def _spawn(self, sock: socket.socket, addr: Any, control_only: bool) -> None:
        t = ConnectionThread(self, sock, addr, control_only)
        with self._lock:
            self._threads.add(t)
        t.thread.start()

    def _forget(self, t: ConnectionThread) -> None:
        with self._lock:
            self._threads.discard(t)

    def _snapshot_threads(self) -> list[ConnectionThread]:
        with self._lock:
            return list(self._threads)

    # Host protocol (used by connection.Handler)
    def handle_api(self, req: Request, is_closed: Any) -> Response:
        return self.api.handle(req, is_closed)

    def handle_control(self, req: Request) -> Response:
        return control.handle(self, req)

    def authenticate(self, headers: Headers, peercert: Any, method: str,
                     path: str) -> User | None:
        return self.authenticator.authenticate(headers.get("Authorization"), peercert,
                                               method, path)

    def _lookup(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(resource, name, namespace)

    def record(self, rec: RequestRecord) -> None:
        self._requests.append(rec)

    # -- faults ------------------------------------------------------------------------------

    @property
    def is_online(self) -> bool:
        return self._listener is not None

    def offline(self) -> None:
        """Refuse new connections (ECONNREFUSED) and cut every open one, watches included."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        n = self.cut_connections()
        log.info("sandbox offline (cut %d connections)", n)

    def online(self) -> None:
        """Listen again, on the same port."""
        with self._lock:
            if self._listener is not None or self.stopping.is_set():
                return
            sock = bind(self.options.host, self.port)
            self._listener = Listener(sock, self._on_api, "sandbox-listener").start()
        log.info("sandbox online again on %s", self.url)

    def cut_connections(self) -> int:
        """Cut every open API connection (the listener stays as it is)."""
        threads = [t for t in self._snapshot_threads() if not t.conn.control_only]
        for t in threads:
            t.stop()
        self.store.wake()
        return len(threads)

    def set_latency(self, ms: float) -> None:
        if ms < 0:
            raise ValueError("latency must not be negative")
        self.faults.latency = ms / 1000.0

    def fail_next(self, count: int = 1, status: int = 503, *, match: str = "",
                  retry_after: int | None = None) -> None:
        """Answer the next ``count`` requests (containing ``match``) with a ``status`` Status."""
        self.faults.add(FAIL, count, match=match, status=status, retry_after=retry_after)

    def stall_next(self, count: int = 1, *, after_bytes: int = 0, match: str = "") -> None:
        """Send ``after_bytes`` of the next responses' bodies, then hang until ``release()``."""
        self.faults.add(STALL, count, match=match, after_bytes=after_bytes)

    def release(self) -> None:
        self.faults.release()

    def reset_next(self, count: int = 1, *, after_bytes: int = 0, match: str = "") -> None:
        """Send ``after_bytes`` of the next responses' bodies, then reset (RST) the connection."""
        self.faults.add(RESET, count, match=match, after_bytes=after_bytes)

    def drop_next(self, count: int = 1, *, match: str = "") -> None:
        """Reset the connection of the next requests before any byte of a response."""
        self.faults.add(DROP, count, match=match)

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- objects -----------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self.store.rv

    def compact(self, rv: int | None = None) -> int:
        """Forget the history up to ``rv`` (default: now); older versions then get 410."""
        return self.store.compact(rv)

    def _type_of(self, obj: dict[str, Any]) -> ResourceType:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        for t in self.registry.all():
            if t.kind == kind and t.group_version == api_version:
                return t
        raise NotFound(f"no resource serves {api_version} {kind}")

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj``, or replace the object of that name (status included), unconditionally."""
        rt = self._type_of(obj)
        meta = obj.get("metadata") or {}
        with self.store.lock:
            current = self.store.get(rt, meta.get("namespace", ""), meta.get("name", ""))
            if current is None:
                return self.api.writer.create_object(rt, obj).obj()
            new = kpatch.copy_json(obj)
            new.setdefault("metadata", {}).pop("resourceVersion", None)
            new["metadata"].pop("uid", None)
            entry = self.api.writer.update_object(rt, current, new)
            if "status" in rt.subresources and "status" in obj:
                entry = self.api.writer.update_object(rt, entry, new, "status")
            return entry.obj()

    def put_subresource(self, obj: dict[str, Any], subresource: str) -> dict[str, Any]:
        """Write ``obj``'s ``status`` (or approval conditions) as that subresource would."""
        rt = self._type_of(obj)
        meta = obj.get("metadata") or {}
        with self.store.lock:
            current = self.store.get(rt, meta.get("namespace", ""), meta.get("name", ""))
            if current is None:
                raise NotFound(f'{rt.resource} "{meta.get("name")}" not found')
            return self.api.writer.update_object(rt, current, obj, subresource).obj()

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.api.writer.create_object(self._type_of(obj), obj).obj()

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        rt = self.registry.resolve(resource)
        entry = self.store.get(rt, namespace, name)
        return entry.obj() if entry is not None else None

    def list_objects(self, resource: str, namespace: str = "") -> list[dict[str, Any]]:
        rt = self.registry.resolve(resource)
        return [e.obj() for e in self.store.entries(rt, namespace or None)]

    def patch(self, resource: str, name: str, patch: Any, namespace: str = "", *,
              patch_type: str = "strategic", subresource: str = "") -> dict[str, Any]:
        """Patch an object (``strategic``, ``merge`` or ``json``) as a client's PATCH would."""
        rt = self.registry.resolve(resource)
        media = {"strategic": kpatch.STRATEGIC_MERGE_PATCH, "merge": kpatch.MERGE_PATCH,
                 "json": kpatch.JSON_PATCH}[patch_type]
        schema = self.registry.patch_schema(rt)
        kind = None if self.registry.is_custom(rt) and schema is None else rt.kind
        with self.store.lock:
            current = self.store.get(rt, namespace, name)
            if current is None:
                raise NotFound(f'{rt.resource} "{name}" not found')
            body = json.dumps(patch).encode()
            obj = kpatch.apply_patch(current.obj(), body, media, kind, schema=schema)
            return self.api.writer.update_object(rt, current, obj, subresource).obj()

    def delete(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        """Delete an object (finalizers still hold it); None when there was none."""
        rt = self.registry.resolve(resource)
        with self.store.lock:
            current = self.store.get(rt, namespace, name)
            if current is None:
                return None
            return self.api.writer.delete_object(rt, current)[0].obj()

    # -- introspection -----------------------------------------------------------------------

    def requests(self, match: str = "") -> list[RequestRecord]:
        """The logged API requests whose ``METHOD path?query`` contains ``match``."""
        out = []
        for r in list(self._requests):
            target = f"{r.method} {r.path}?{r.query}"
            if match in target:
                out.append(r)
        return out

    def clear_requests(self) -> None:
        self._requests.clear()

    @property
    def open_watches(self) -> int:
        return sum(1 for t in self._snapshot_threads() if t.conn.watching)

    @property
    def client_watches(self) -> int:
        """Open watches other than a yurthub's own (its filters' inputs), which a hub
        keeps open as long as it runs."""
        return sum(1 for t in self._snapshot_threads()
                   if t.conn.watching and not t.conn.watcher.startswith("yurthub"))

    def state(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "online": self.is_online,
            "resourceVersion": self.store.rv,
            "historyFloor": self.store.log.floor,
            "connections": sum(1 for t in self._snapshot_threads() if not t.conn.control_only),
            "openWatches": self.open_watches,
            "clientWatches": self.client_watches,
            "faults": self.faults.describe(),
        }


def start(options: SandboxOptions | None = None, **overrides: Any) -> Sandbox:
    """Start a sandbox in background threads; call ``stop()`` (or use ``with``) when done."""
    return Sandbox(options, **overrides).start()


__all__ = ["ApiError", "Sandbox", "SandboxOptions", "start"]
