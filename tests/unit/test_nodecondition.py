"""The Autonomy reporter against a real sandbox: what reaches the Node, when, and what a
refused report costs (one log line and a pause, not a request and a warning every tick)."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from yurthub import config
from yurthub.credentials import Credentials
from yurthub.nodecondition import AutonomyReporter
from yurthub.storage import DiskStore
from yurthub.upstream import Upstream

NODE = "node-0000"


@pytest.fixture
def reporter(sandbox: Sandbox, tmp_path):
    cfg = config.load(None, {"server_addr": sandbox.url, "node_name": NODE,
                             "heartbeat_interval_seconds": "1"})
    store = DiskStore(str(tmp_path / "cache"))
    store.open()
    r = AutonomyReporter(cfg, store, Upstream(cfg, Credentials(servers=(sandbox.url,))),
                         cloud_healthy=lambda: True, ready=lambda: True)
    yield r
    store.close()


def condition(sandbox: Sandbox) -> dict | None:
    node = sandbox.get("nodes", NODE)
    return next((c for c in node["status"]["conditions"] if c["type"] == "Autonomy"), None)


def test_a_refused_report_pauses_and_logs_once(sandbox, reporter, caplog):
    sandbox.fail_next(100, status=403, match=f"/nodes/{NODE}/status")
    caplog.set_level(logging.WARNING, logger="yurthub.nodecondition")
    sandbox.clear_requests()
    for _ in range(5):
        reporter.tick()
    assert condition(sandbox) is None
    assert "403" in reporter.status()["reportError"]
    assert reporter.status()["reportedToNode"] is False
    # The sandbox logs a request just after answering it.
    wait_for(lambda: sandbox.requests(f"/nodes/{NODE}/status"), what="the refused report")
    assert len(sandbox.requests(f"/nodes/{NODE}/status")) == 1   # then it waits
    assert len([r for r in caplog.records if "cannot report" in r.getMessage()]) == 1
    sandbox.clear_faults()
    reporter._retry_at = 0.0  # the pause is over
    reporter.tick()
    cond = condition(sandbox)
    assert cond is not None and cond["status"] == "False"
    assert "kubelet: pods not cached" in cond["message"]
    assert reporter.status()["reportedToNode"] is True and reporter.status()["reportError"] == ""


def test_an_unreachable_cloud_is_one_line_in_words_not_one_per_retry(tmp_path, caplog):
    # Before the health checker notices: the report fails at every pause, the same way.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    cfg = config.load(None, {"server_addr": url, "node_name": NODE,
                             "heartbeat_interval_seconds": "1"})
    store = DiskStore(str(tmp_path / "cache"))
    store.open()
    up = Upstream(cfg, Credentials(servers=(url,)))
    r = AutonomyReporter(cfg, store, up, cloud_healthy=lambda: True, ready=lambda: True)
    caplog.set_level(logging.WARNING, logger="yurthub.nodecondition")
    try:
        r.tick()
        # The first failure to connect is the health checker's to tell (it is about to).
        assert [m for m in caplog.messages if "cannot report" in m] == []
        for _ in range(3):
            r._retry_at = 0.0  # the pause is over
            r.tick()
    finally:
        up.close()
        store.close()
    said = [m for m in caplog.messages if "cannot report" in m]
    assert len(said) == 1, said
    assert said[0].endswith("cannot connect: [Errno 111] Connection refused"), said[0]
    assert r.status()["reportError"] == "cannot connect: [Errno 111] Connection refused"


def test_an_unchanged_verdict_is_not_resent_and_keeps_its_transition_time(sandbox, reporter):
    kubelet = [c for c in sandbox.get("nodes", NODE)["status"]["conditions"]]
    reporter.tick()
    first = condition(sandbox)
    wait_for(lambda: len(sandbox.requests(f"/nodes/{NODE}/status")) == 2,
             what="the first report (GET, PATCH) in the sandbox's log")
    sandbox.clear_requests()
    for _ in range(3):
        reporter.tick()
    assert sandbox.requests(f"/nodes/{NODE}") == []       # nothing changed: nothing sent
    reporter._sent_at -= 10_000                             # five minutes later: renewed
    reporter.tick()
    wait_for(lambda: sandbox.requests(f"/nodes/{NODE}/status"), what="the renewal")
    again = condition(sandbox)
    assert again["lastTransitionTime"] == first["lastTransitionTime"]
    others = [c for c in sandbox.get("nodes", NODE)["status"]["conditions"]
              if c["type"] != "Autonomy"]
    assert others == kubelet                                # kubelet's, untouched


@pytest.mark.parametrize("answer", [b"[]", b'"x"', b"null", b'{"status":[]}',
                                    b'{"status":{"conditions":[1,null,"x"]}}'])
def test_a_node_answer_of_another_shape_is_a_report_error_not_a_crash(tmp_path, answer):
    """A misbehaving apiserver (or a proxy before it) answering the Node's status with JSON
    of another shape: the reporter's thread raised AttributeError, which ends the worker
    (a background thread that dies takes the hub down), every heartbeat."""
    class Odd(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_PATCH = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    cfg = config.load(None, {"server_addr": url, "node_name": NODE,
                             "heartbeat_interval_seconds": "1"})
    store = DiskStore(str(tmp_path / "cache"))
    store.open()
    try:
        r = AutonomyReporter(cfg, store, Upstream(cfg, Credentials(servers=(url,))),
                             cloud_healthy=lambda: True, ready=lambda: True)
        r.tick()
        status = r.status()
        assert status is not None
        if answer.startswith(b"{"):  # a Node without the condition: reported as new
            assert status["reportedToNode"] is True, status
        else:
            assert "not a Node object" in status["reportError"]
            assert status["reportedToNode"] is False
    finally:
        store.close()
        server.shutdown()
