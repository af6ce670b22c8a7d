"""The cloud's response headers reach the client as the cloud sent them: every value of a
repeated one (kube-apiserver sends a ``Warning`` per warning, kubectl prints each), and an
answer with a header line no server may send still arrives (without that line), as through
Go's server (YurtHub), never as a 500.  A real hub and kubectl; a relay in front of the
sandbox adds the headers to the answers whose path contains a chosen text."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.fixtures.kubectl import Kubectl
from tests.fixtures.web import http, recv_until


class HeaderRelay:
    """Relays each connection to ``upstream`` (one request per connection), adding ``extra``
    header lines to the answers of requests whose target contains ``match``."""

    def __init__(self, upstream: str, match: str, extra: bytes) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.match, self.extra = match.encode(), extra
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.lsock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        with conn, socket.create_connection(self.upstream) as up:
            head = recv_until(conn, b"\r\n\r\n")
            if b"\r\n\r\n" not in head:
                return
            first = head.split(b"\r\n", 1)[0]
            lines = [ln for ln in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
                     if not ln.lower().startswith(b"connection:")]
            up.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"
                       + head.split(b"\r\n\r\n", 1)[1])
            threading.Thread(target=self._pipe, args=(conn, up), daemon=True).start()
            answer = recv_until(up, b"\r\n\r\n")
            if b"\r\n\r\n" not in answer:
                return
            if self.match in first:
                status, rest = answer.split(b"\r\n", 1)
                answer = status + b"\r\n" + self.extra + rest
            conn.sendall(answer)
            self._pipe(up, conn)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.lsock.close()


@pytest.fixture
def relay(sandbox, request) -> Iterator[HeaderRelay]:
    r = HeaderRelay(sandbox.url, "/configmaps", request.param)
    yield r
    r.close()


WARNINGS = (b'Warning: 299 - "first warning"\r\nWarning: 299 - "second warning"\r\n'
            b'Warning: 299 - "third warning"\r\n')


@pytest.mark.parametrize("relay", [WARNINGS], indirect=True, ids=["warnings"])
def test_kubectl_prints_every_warning_the_cloud_sent(relay, hub_factory, tmp_path):
    hub = hub_factory(relay.url)
    r = Kubectl(tmp_path, hub.url)("get", "configmaps", "-n", "default")
    assert "kube-root-ca.crt" in r.stdout
    warned = [ln for ln in r.stderr.splitlines() if ln.startswith("Warning:")]
    # Only "third warning" arrived: the hub kept one value per header name.
    assert warned == ["Warning: first warning", "Warning: second warning",
                      "Warning: third warning"], r.stderr


@pytest.mark.parametrize("relay", [b"X-Control: a\x01b\r\nX-Delete: a\x7fb\r\n"
                                   b"X-Kept: yes\r\n"], indirect=True, ids=["control"])
def test_a_header_no_server_may_send_is_dropped_not_a_500(relay, hub_factory):
    hub = hub_factory(relay.url)
    status, headers, body = hub.get("/api/v1/namespaces/default/configmaps",
                                    ua="someagent/1.0")
    assert status == 200, body  # was a 500 InternalError (gunicorn refused the header)
    assert b"kube-root-ca.crt" in body
    names = {k.lower() for k in headers}
    assert "x-control" not in names and "x-delete" not in names
    assert headers.get("X-Kept") == "yes"
    assert http(hub.hub_url + "/v1/healthz")[0] == 200
