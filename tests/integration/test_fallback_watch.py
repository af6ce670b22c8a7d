"""A watch that fell back to the cache while the cloud counted as healthy: one connection
failed (here a TLS handshake), the probe that followed found the cloud well, so no health
change ends the watch.  It must not stay on the cache: the multiplexer's upstream watch is
the only source of every local client's Services, and it must be back on the cloud within
moments (YurtHub's local watch looks at the cloud's health every 2 s and ends)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import WaitTimeout, wait_for
from tests.integration.test_mux import MUX, SVC, service, watch_lines

TOKEN = "fallback-watch-token"


class Forwarder:
    """A TCP relay in front of the apiserver that can garble the next connection (its TLS
    handshake fails: the hub "cannot connect") and cut every open one."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.garble = 0
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                garble, self.garble = self.garble > 0, max(0, self.garble - 1)
            if garble:
                with conn:
                    conn.recv(4096)  # the ClientHello; a plain-HTTP answer is no TLS
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                continue
            up = socket.create_connection(self.target)
            with self.lock:
                self.open += [conn, up]
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self.lock:
            conns, self.open = self.open, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def feed_failed(log: str) -> bool:
    """The feed's watch could not connect (its handshake failed)."""
    return any(f"{MUX} watch {SVC}?" in line and "TLS failed" in line
               for line in log.splitlines())


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(token=TOKEN, self_signed_dir=str(tmp_path / "pki"), bookmark_interval=60.0,
                 control_port=0).start()
    yield sb
    sb.stop()


def test_the_shared_watch_leaves_the_cache_once_the_cloud_answers(secure, hub_factory,
                                                                  tmp_path):
    relay = Forwarder(int(secure.url.rsplit(":", 1)[1]))
    token = tmp_path / "token"
    token.write_text(TOKEN)
    # No routine probe meanwhile: only the one a failed connection asks for.
    hub = hub_factory(f"https://127.0.0.1:{relay.port}",
                      extra=["--token-file", str(token), "--ca-file",
                             str(tmp_path / "pki" / "ca.crt"),
                             "--heartbeat-interval-seconds", "30"])
    try:
        status, _, body = hub.get(SVC, ua="proxy-agent/1")
        assert status == 200, body
        rv = json.loads(body)["metadata"]["resourceVersion"]
        wait_for(lambda: f"cached list {MUX}/services.v1.core" in hub.log(), 10,
                 what="the shared list cached (the fallback answers from it)")
        with watch_lines(hub.url, SVC, "proxy-agent/1", resourceVersion=rv,
                         timeoutSeconds="120") as lines:
            wait_for(lambda: hub.metric("yurthub_open_watches", source="shared") == 1, 10,
                     what="the client's watch is open")
            # The feed's upstream watch breaks; its next connection fails its handshake,
            # so that one watch is answered from the cache; the probe that follows finds
            # the cloud well.
            for _ in range(5):  # (a hub's own watch may take the garbled connection)
                relay.garble = 1
                relay.cut()
                try:
                    wait_for(lambda: feed_failed(hub.log()), 3, what="the feed's failure")
                    break
                except WaitTimeout:
                    pass
            wait_for(lambda: hub.metric("yurthub_open_watches", source="local") == 1, 10,
                     what="the feed's watch answered from the cache")
            assert hub.metric("node_yurthub_server_healthy_status") == 1
            secure.put(service("after", app="web"))
            ev = next(lines)  # (the connection's 30 s timeout ends a wait for nothing)
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "after")
        assert "the cloud answers again; ending it" in hub.log()
    finally:
        relay.close()
