"""Certificate rotation under load: short-lived certificates, 20 open watches, GETs all along."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

from cryptography import x509

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import read_watch_events
from tests.integration.identity.conftest import TOKEN, token_args

WATCHES = 20
# Seconds.  The sandbox backdates a certificate by a tenth of its lifetime and x509 keeps
# whole seconds, so a renewal due at 70-90 % of it leaves 11-33 % of LIFETIME to ask, be
# approved, poll and install before the old one ends: at 6 s that was 0.6-2 s, which a loaded
# machine overran (a GET then met an expired certificate).  The test runs until the hub has
# renewed RENEWALS times, not for a fixed time: about 1.6 LIFETIME.
LIFETIME = 10.0
RENEWALS = 2
# The serving certificate is asked for with the client one, which renews too.  The sandbox
# backdates by a tenth of the lifetime and renewal comes at 70-90 % of it, so a renewal has
# 10-30 % of the lifetime to be asked, approved, polled and installed: at 10 s that was 1-3 s,
# which a loaded machine overran (clients then met an expired certificate).
SERVING_LIFETIME = 30.0


def _watch(port: int, out: list) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(b"GET /api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=300 "
                 b"HTTP/1.1\r\nHost: hub\r\nUser-Agent: kubectl/v1.32.4\r\n"
                 b"Accept: application/json\r\n\r\n")
    threading.Thread(target=read_watch_events, args=(sock, out), daemon=True).start()
    return sock


def _serial(root: Path) -> str:
    pem = (root / "pki" / "yurthub-current.pem").read_bytes()
    return f"x509:{x509.load_pem_x509_certificate(pem).serial_number:x}"


def _credentials_used(sb: Sandbox) -> set[str]:
    return {r.credential for r in sb.requests() if r.user == "system:node:node-0000"}


def test_rotation_every_few_seconds_loses_no_request_and_no_watch(tmp_path, hub_factory):
    with Sandbox(self_signed_dir=str(tmp_path / "pki"), bootstrap_tokens=(TOKEN,), nodes=1,
                 pods_per_node=2, cert_lifetime=LIFETIME) as sb:
        hub = hub_factory(sb.url, extra=token_args(sb, tmp_path))
        first = _serial(hub.root_dir)
        events: list[list] = [[] for _ in range(WATCHES)]
        socks = [_watch(hub.proxy_port, out) for out in events]
        wait_for(lambda: sb.open_watches >= WATCHES, 20, "20 watches upstream")

        failures: list[str] = []
        done = threading.Event()
        gets = [0]

        def keep_getting() -> None:
            while not done.is_set():
                for path in ("/api/v1/namespaces/default/configmaps", "/api/v1/nodes"):
                    status, _, body = hub.get(path)
                    gets[0] += 1
                    if status != 200:
                        failures.append(f"{path}: {status} {body[:200]!r}")

        getter = threading.Thread(target=keep_getting, daemon=True)
        getter.start()
        rv = ""
        installed = hub.log().count("client certificate installed")
        deadline = time.monotonic() + (RENEWALS + 2) * LIFETIME
        i = 0
        # Changes and GETs go on until the hub renewed RENEWALS times and a GET went with
        # the newest certificate (or the deadline: the assertions below then say what lacked).
        while time.monotonic() < deadline and not (
                hub.log().count("client certificate installed") >= installed + RENEWALS
                and len(_credentials_used(sb)) >= 1 + RENEWALS):
            obj = sb.put({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": f"tick-{i % 3}", "namespace": "default"},
                          "data": {"i": str(i)}})
            rv = obj["metadata"]["resourceVersion"]
            i += 1
            time.sleep(0.25)
        done.set()
        getter.join(30)

        assert not failures, failures[:5]
        assert gets[0] > 20
        # every watch is still open and saw the last change
        wait_for(lambda: all(any(e["object"]["metadata"].get("resourceVersion") == rv
                                 for _, e in out) for out in events), 10,
                 "every watch to see the last change")
        assert sb.open_watches >= WATCHES
        # rotated at least twice; what the hub sends now carries the newest certificate
        current = _serial(hub.root_dir)
        used = _credentials_used(sb)
        assert current != first and len(used) >= 1 + RENEWALS, used
        sb.clear_requests()
        before = _serial(hub.root_dir)
        assert hub.get("/api/v1/nodes")[0] == 200
        sent = {r.credential for r in wait_for(lambda: sb.requests("/api/v1/nodes"), 10,
                                               "the request record")}
        assert sent and sent <= {before, _serial(hub.root_dir)}  # (a renewal may fall between)
        assert hub.log().count("client certificate installed") >= installed + RENEWALS
        for s in socks:
            s.close()


def _serving_serial(port: int, ca: str) -> int:
    """The serial of the certificate a new connection to 10268 is shown (verified)."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, \
            ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_the_serving_certificate_rotates_without_a_restart_or_a_cut_watch(tmp_path,
                                                                          hub_factory):
    with Sandbox(self_signed_dir=str(tmp_path / "pki"), bootstrap_tokens=(TOKEN,), nodes=1,
                 pods_per_node=1, cert_lifetime=SERVING_LIFETIME) as sb:
        hub = hub_factory(sb.url, extra=token_args(sb, tmp_path), secure=True)
        ca = sb.tls.ca_cert
        wait_for(lambda: (hub.root_dir / "pki" / "yurthub-server-current.pem").exists(), 20,
                 "the serving certificate")
        first = _serving_serial(hub.secure_port, ca)
        # a pod's watch over TLS, opened with the first certificate
        token = sb.service_account_token("default", "default")
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", hub.secure_port), timeout=60)
        tls = ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc")
        tls.sendall(b"GET /api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=300 "
                    b"HTTP/1.1\r\nHost: kubernetes.default.svc\r\nUser-Agent: pod/1.0\r\n"
                    b"Authorization: Bearer " + token.encode() + b"\r\n"
                    b"Accept: application/json\r\n\r\n")
        events: list = []
        reader = threading.Thread(target=read_watch_events, args=(tls, events), daemon=True)
        reader.start()
        wait_for(lambda: sb.open_watches >= 1, 20, "the pod's watch upstream")
        # new connections get the renewed certificate, with no restart
        seen = {first}
        wait_for(lambda: seen.add(_serving_serial(hub.secure_port, ca)) or len(seen) >= 2,
                 4 * SERVING_LIFETIME, "a serving certificate renewal")
        assert hub.proc is not None and hub.proc.poll() is None
        assert hub.log().count("serving certificate installed") >= 2
        # the watch opened before them is intact
        sb.put({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "after-rotation", "namespace": "default"}})
        wait_for(lambda: any(e["object"]["metadata"]["name"] == "after-rotation"
                             for _, e in events), 20, "the old watch to see the change")
        assert reader.is_alive()
        tls.close()
