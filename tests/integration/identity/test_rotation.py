"""Certificate rotation under load: short-lived certificates, 20 open watches, GETs all along."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from cryptography import x509

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import read_watch_events
from tests.integration.identity.conftest import TOKEN, token_args

WATCHES = 20
LIFETIME = 6.0  # seconds: a renewal every 4-5.5 s


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
        deadline = time.monotonic() + 2.4 * LIFETIME
        i = 0
        while time.monotonic() < deadline:
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
        used = {r.credential for r in sb.requests() if r.user == "system:node:node-0000"}
        assert current != first and len(used) >= 3, used
        sb.clear_requests()
        before = _serial(hub.root_dir)
        assert hub.get("/api/v1/nodes")[0] == 200
        sent = {r.credential for r in sb.requests("/api/v1/nodes")}
        assert sent and sent <= {before, _serial(hub.root_dir)}  # (a renewal may fall between)
        assert hub.log().count("client certificate installed") >= 2
        for s in socks:
            s.close()
