"""yurthub's gunicorn worker under real gunicorn, with a small app (tests/fixtures/workerapp):
idle and slow clients hold no thread, limits per user and overall, kubelet's Lease and the
hub server have threads of their own, TLS listeners, send timeouts, keep-alive."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading

import pytest

from kubesandbox.tls import make_self_signed
from tests.fixtures.peers import NOBODY, request_as_nobody, spawn_as_nobody
from tests.fixtures.waiting import wait_for
from tests.fixtures.workerapp import WorkerServer

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0000"


@pytest.fixture
def worker_factory(tmp_path):
    servers: list[WorkerServer] = []

    def make(**kw) -> WorkerServer:
        w = WorkerServer(tmp_path, **kw).start()
        servers.append(w)
        return w
    yield make
    for w in servers:
        w.stop()


def get(port: int, path: str, method: str = "GET", body: bytes | None = None,
        conn: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, json.loads(data)


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_300_idle_connections_hold_no_thread(worker_factory):
    w = worker_factory(threads=2)
    idle = [socket.create_connection(("127.0.0.1", w.proxy_port)) for _ in range(300)]
    idle += [socket.create_connection(("127.0.0.1", w.hub_port)) for _ in range(10)]
    try:
        # Two threads, 310 silent connections: every kind of request is still answered.
        status, body = get(w.proxy_port, "/whoami")
        assert status == 200 and body["thread"].startswith("yurthub-req")
        status, body = get(w.proxy_port, LEASE, "PUT", b"{}")
        assert status == 200 and body["thread"].startswith("yurthub-lease")
        status, body = get(w.hub_port, "/whoami")
        assert status == 200 and body["thread"].startswith("yurthub-hubsrv")
        assert body["role"] == "hub-server"
    finally:
        for s in idle:
            s.close()


def test_a_silent_or_slow_head_is_cut_off_with_408(worker_factory):
    w = worker_factory(header_timeout=1)
    silent = socket.create_connection(("127.0.0.1", w.proxy_port))
    slow = socket.create_connection(("127.0.0.1", w.proxy_port))
    slow.sendall(b"GET /whoami HTTP/1.1\r\nHo")
    for s in (silent, slow):
        answer = read_all(s)       # ends: the worker closed it
        assert answer.startswith(b"HTTP/1.1 408 ")
        status = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert status["kind"] == "Status" and status["code"] == 408
        s.close()
    assert get(w.proxy_port, "/whoami")[0] == 200


def status_of(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\ncontent-type: application/json" in head.lower(), head
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_heads_kube_apiserver_takes_pass_and_an_oversized_head_gets_431(worker_factory):
    w = worker_factory()
    # A 4.4 KB label selector and a 9 KB bearer token (gunicorn's defaults refuse both),
    # and 900 KB of headers: kube-apiserver takes up to 1 MiB.
    selector = "app+in+(" + ",".join(f"v{i}" for i in range(1, 901)) + ")"
    assert get(w.proxy_port, f"/whoami?labelSelector={selector}")[0] == 200
    # past the 8190 bytes both gunicorns cap a request line limit at
    assert get(w.proxy_port, "/whoami?labelSelector=" + "a" * 100_000)[0] == 200
    c = http.client.HTTPConnection("127.0.0.1", w.proxy_port, timeout=20)
    c.request("GET", "/whoami", headers={"Authorization": "Bearer " + "a" * 9000,
                                         **{f"X-H{i}": "b" * 9000 for i in range(100)}})
    r = c.getresponse()
    assert r.status == 200, r.read()
    c.close()
    with socket.create_connection(("127.0.0.1", w.proxy_port)) as s:
        s.sendall(b"GET /whoami HTTP/1.1\r\n" + b"X-Big: " + b"a" * (1 << 20) + b"\r\n")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert status_of(answer)[1]["reason"] == "RequestHeaderFieldsTooLarge"


def test_what_gunicorns_parser_refuses_is_a_status(worker_factory):
    w = worker_factory()
    for head, code in [
            # more fields than gunicorn's parser takes (32,768), well within 1 MiB
            (b"GET /whoami HTTP/1.1\r\n" + b"a:b\r\n" * 33000 + b"\r\n", 431),
            (b"GET /who ami HTTP/1.1\r\n\r\n", 400),
            (b"GET /whoami HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            # a length beside chunked: refused at once, not read as a body that never comes
            (b"GET /whoami HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5"
             b"\r\n\r\n", 400)]:
        with socket.create_connection(("127.0.0.1", w.proxy_port)) as s:
            s.sendall(head)
            answer = read_all(s)
        status, body = status_of(answer)
        assert status == code and body["kind"] == "Status" and body["code"] == code, body
    assert get(w.proxy_port, "/whoami")[0] == 200


def test_large_heads_share_one_budget(worker_factory):
    w = worker_factory()
    part = b"GET /whoami HTTP/1.1\r\nX-Big: " + b"a" * (900 << 10)
    held, answers = [], []
    try:
        for _ in range(24):      # 24 x 900 KiB unfinished heads, beyond the 16 MiB budget
            s = socket.create_connection(("127.0.0.1", w.proxy_port))
            s.sendall(part)
            held.append(s)
        for s in held:
            s.settimeout(0.5)
            try:
                answers.append(s.recv(65536))
            except TimeoutError:
                answers.append(b"")
        refused = [a for a in answers if a]
        assert refused and all(a.startswith(b"HTTP/1.1 429 ") for a in refused), answers
        assert len(refused) <= 24 - 8        # one user holds half of the budget
        # Small heads are never refused for it, and the held ones still finish.
        assert get(w.proxy_port, "/whoami")[0] == 200
        waiting = [s for s, a in zip(held, answers, strict=True) if not a]
        waiting[0].sendall(b"\r\n\r\n")
        waiting[0].settimeout(20)
        assert waiting[0].recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in held:
            s.close()


_BIG_HEADS = r"""
import socket, sys
port = int(sys.argv[1])
held = []
for _ in range(18):   # 18 x 868 KiB past the small size: most of the 16 MiB budget
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /whoami HTTP/1.1\r\nX-Big: " + b"a" * (900 << 10))
    held.append(s)
print("held", flush=True)
sys.stdin.read()
"""


def test_one_user_sending_huge_requests_leaves_room_for_the_others(worker_factory):
    w = worker_factory(header_timeout=120)    # nobody's heads stay for the whole test
    nobody = spawn_as_nobody(_BIG_HEADS, str(w.proxy_port))
    try:
        assert nobody.stdout is not None and nobody.stdout.readline() == "held\n"
        wait_for(lambda: b"429" not in _post_big(w.proxy_port)[:12], timeout=10,
                 what="a 2 MiB body from root")
        assert status_of(_post_big(w.proxy_port))[1]["read"] == 2 << 20
    finally:
        nobody.kill()
        nobody.wait()


def _post_big(port: int) -> bytes:
    """A 2 MiB body; a refusal may reset the connection before the body is all sent."""
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % (2 << 20) + b"b" * (2 << 20))
            return read_all(s)
    except ConnectionError:
        return b"HTTP/1.1 429 (reset)"


_HOLD = r"""
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
extra = socket.create_connection(("127.0.0.1", port))
extra.settimeout(20)
print(extra.recv(65536).split(b"\r\n")[0].decode(), flush=True)
s = held[-1]
s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
s.settimeout(20)
print(s.recv(65536).split(b"\r\n")[0].decode(), flush=True)
sys.stdin.read()
"""


def test_connections_are_capped_per_user_and_overall_with_a_reserve_for_kubelet(
        worker_factory):
    w = worker_factory(limits={"max_connections": 8, "per_uid": 5, "kubelet_reserve": 2})
    nobody = spawn_as_nobody(_HOLD, str(w.proxy_port), "5")
    try:
        assert nobody.stdout is not None and nobody.stdin is not None
        assert nobody.stdout.readline().startswith("HTTP/1.1 429 ")   # the sixth of nobody
        assert nobody.stdout.readline().startswith("HTTP/1.1 200 ")   # the fifth works
        # Root is kubelet's user here: 3 within the total, 2 more from the reserve.
        mine = [socket.create_connection(("127.0.0.1", w.proxy_port)) for _ in range(5)]
        conn = http.client.HTTPConnection("127.0.0.1", w.proxy_port, timeout=20)
        conn.sock = mine[-1]
        assert get(w.proxy_port, "/whoami", conn=conn)[0] == 200
        with socket.create_connection(("127.0.0.1", w.proxy_port)) as over:
            answer = read_all(over)
        assert answer.startswith(b"HTTP/1.1 429 ")
        assert b"too many open connections" in answer and b"Retry-After: 1" in answer
        # The hub server has slots of its own.
        assert get(w.hub_port, "/whoami")[0] == 200
        for s in mine:
            s.close()
    finally:
        nobody.kill()
        nobody.wait()


def test_the_lease_and_the_hub_server_have_threads_no_flood_can_take(worker_factory):
    w = worker_factory(threads=2)
    done: list[str] = []

    def sleeper() -> None:
        get(w.proxy_port, "/sleep?s=3")
        done.append("sleep")

    sleepers = [threading.Thread(target=sleeper) for _ in range(3)]
    for t in sleepers:
        t.start()
    # Every general thread sleeps (and one more request waits for one): the Lease and the
    # hub server are answered at once, by threads of their own.
    status, lease = get(w.proxy_port, LEASE, "PUT", b"{}")
    done.append("lease")
    status2, hub = get(w.hub_port, "/whoami")
    done.append("hub")
    for t in sleepers:
        t.join()
    assert (status, status2) == (200, 200)
    assert lease["thread"].startswith("yurthub-lease") and hub["thread"].startswith("yurthub-hub")
    assert done[:2] == ["lease", "hub"]


def test_the_lease_lane_is_kubelets_user_only(worker_factory):
    w = worker_factory()
    status, body = request_as_nobody(f"http://127.0.0.1:{w.proxy_port}{LEASE}", method="PUT",
                                     body="{}")
    assert status == 200 and body["thread"].startswith("yurthub-req")
    assert body["uid"] == NOBODY


def test_keep_alive_pipelining_and_unread_bodies(worker_factory):
    w = worker_factory()
    conn = http.client.HTTPConnection("127.0.0.1", w.proxy_port, timeout=20)
    _, first = get(w.proxy_port, "/whoami", "POST", b"x" * 5000, conn=conn)  # body unread
    _, second = get(w.proxy_port, "/echo", "POST", b"y" * 100_000, conn=conn)
    _, third = get(w.proxy_port, "/whoami", conn=conn)
    assert first["id"] == second["id"] == third["id"]
    assert (first["requests"], second["requests"], third["requests"]) == (0, 1, 2)
    assert second["read"] == 100_000
    # More unread body than is worth draining: answered, then the connection closes.
    status, _ = get(w.proxy_port, "/whoami", "POST", b"z" * 200_000, conn=conn)
    assert status == 200
    with pytest.raises((http.client.HTTPException, OSError)):
        get(w.proxy_port, "/whoami", conn=conn)
    with socket.create_connection(("127.0.0.1", w.proxy_port)) as s:
        s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(s).count(b"HTTP/1.1 200 OK") == 2


def test_slow_bodies_hold_no_thread(worker_factory):
    # Two threads per pool and a minute per body: before the loop read bodies, four
    # connections sending theirs a byte at a time held every thread of the proxy and of the
    # hub server (healthz) until they finished; answered or not, the rest was drained.
    w = worker_factory(threads=2, body_timeout=60)
    slow = []
    for port, head in [(w.proxy_port, b"POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n"),
                       (w.proxy_port, b"GET /whoami HTTP/1.1\r\nContent-Length: 60000\r\n"),
                       (w.proxy_port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"),
                       (w.hub_port, b"GET /whoami HTTP/1.1\r\nContent-Length: 60000\r\n"),
                       (w.hub_port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n")]:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(head + b"Host: x\r\n\r\n" + (b"400\r\n" if b"chunked" in head
                                                     else b"") + b"x" * 10)
            slow.append(s)
    try:
        assert get(w.proxy_port, "/whoami")[0] == 200
        assert get(w.hub_port, "/whoami")[0] == 200
        assert get(w.proxy_port, LEASE, "PUT", b"{}")[0] == 200
        # The slow ones are served whole once their bodies are in.
        first = slow[0]
        first.sendall(b"y" * 990)
        assert status_of(read_response(first))[1]["read"] == 1000
        chunked = slow[4]
        chunked.sendall(b"z" * 1014 + b"\r\n0\r\n\r\n")
        assert status_of(read_response(chunked))[1]["read"] == 1024
    finally:
        for s in slow:
            s.close()


def read_response(sock: socket.socket) -> bytes:
    """One answer with a Content-Length, the connection kept open."""
    sock.settimeout(20)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_body_late_or_too_large_gets_a_status(worker_factory):
    w = worker_factory(body_timeout=1)
    with socket.create_connection(("127.0.0.1", w.proxy_port)) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        status, body = status_of(read_all(s))
    assert status == 408 and body["reason"] == "Timeout" and "body" in body["message"]
    with socket.create_connection(("127.0.0.1", w.proxy_port)) as s:
        s.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3145729\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        status, body = status_of(read_all(s))
    assert status == 413 and body["message"] == "Request entity too large: limit is 3145728"


def test_a_client_sending_a_refused_body_reads_the_refusal_not_a_reset(worker_factory):
    # A client (client-go, urllib) sends its whole body before it reads: closed at once,
    # with its body unread, the socket would reset and the 413 or 429 be lost.
    w = worker_factory()
    for head in (b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (4 << 20),
                 b"GET /whoami HTTP/1.1\r\nX-Big: " + b"a" * (2 << 20)):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        s.connect(("127.0.0.1", w.proxy_port))
        s.sendall(head + b"b" * (4 << 20))
        status, body = status_of(read_all(s))
        s.close()
        assert status in (413, 431) and body["kind"] == "Status"


def test_expect_100_continue_is_answered_once(worker_factory):
    w = worker_factory()
    with socket.create_connection(("127.0.0.1", w.proxy_port)) as s:
        s.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 5\r\nConnection: close\r\n\r\n")
        s.settimeout(20)
        assert s.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"100 Continue") == 0
    assert status_of(answer)[1]["read"] == 5


def test_a_client_that_stops_reading_is_cut_off_after_the_send_timeout(worker_factory):
    w = worker_factory(threads=1, send_timeout=1)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", w.proxy_port))
    stalled.sendall(b"GET /big?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n")
    # The only thread is stuck sending until the timeout frees it; then it serves others.
    status, body = get(w.proxy_port, "/whoami")
    assert status == 200
    assert "client stopped sending or reading" in w.log()
    stalled.close()


def test_a_tls_listener_handshakes_in_the_loop(worker_factory, tmp_path):
    tls = make_self_signed(tmp_path / "tls")
    w = worker_factory(tls=(tls.server_cert, tls.server_key), header_timeout=2)
    assert w.tls_port is not None
    # A client that connects and never says hello holds nothing, and is closed in time.
    mute = socket.create_connection(("127.0.0.1", w.tls_port))
    ctx = ssl.create_default_context(cafile=tls.ca_cert)
    conn = http.client.HTTPSConnection("127.0.0.1", w.tls_port, timeout=20, context=ctx)
    _, first = get(w.tls_port, "/whoami", conn=conn)
    _, second = get(w.tls_port, "/echo", "POST", b"q" * 70_000, conn=conn)
    assert first["role"] == "secure-proxy" and first["tls"] and first["scheme"] == "https"
    assert first["uid"] == 0 and first["id"] == second["id"] and second["read"] == 70_000
    assert read_all(mute) == b""
    mute.close()
    # The plain listeners stay plain.
    assert get(w.proxy_port, "/whoami")[1]["tls"] is False



def test_a_tls_client_over_the_connection_cap_reads_a_429_over_tls(worker_factory, tmp_path):
    # Pods on 10268 past the cap: client-go retries a 429 with Retry-After, but a 429 in
    # clear on a TLS connection is a protocol error to it ("wrong version number" here).
    tls = make_self_signed(tmp_path / "tls")
    w = worker_factory(tls=(tls.server_cert, tls.server_key), header_timeout=60,
                       limits={"max_connections": 2, "per_uid": 2, "kubelet_reserve": 0})
    held = [socket.create_connection(("127.0.0.1", w.tls_port)) for _ in range(2)]
    ctx = ssl.create_default_context(cafile=tls.ca_cert)
    conn = http.client.HTTPSConnection("127.0.0.1", w.tls_port, timeout=20, context=ctx)
    conn.request("GET", "/whoami")
    r = conn.getresponse()
    doc = json.loads(r.read())
    assert r.status == 429 and r.getheader("Retry-After") == "1"
    assert doc["kind"] == "Status" and "too many connections" in doc["message"]
    for s in held:
        s.close()
    # and the refusal held no slot: once the held ones are closed, the next is served
    wait_for(lambda: get(w.tls_port, "/whoami", conn=http.client.HTTPSConnection(
        "127.0.0.1", w.tls_port, timeout=20, context=ctx))[0] == 200, 20, "a free slot")

def _client_hello() -> bytes:
    out = ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), out, server_hostname="hub")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


def test_a_client_of_the_wrong_scheme_is_told_so_at_once(worker_factory, tmp_path):
    tls = make_self_signed(tmp_path / "tls")
    # a head timeout longer than read_all waits: waiting it out is a failure
    w = worker_factory(tls=(tls.server_cert, tls.server_key), header_timeout=60)
    # http:// to the TLS port: Go's answer (kube-apiserver's, YurtHub's), in clear
    plain = socket.create_connection(("127.0.0.1", w.tls_port))
    plain.sendall(b"GET /api/v1/pods HTTP/1.1\r\nHost: hub\r\n\r\n")
    head, _, body = read_all(plain).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["message"] == "Client sent an HTTP request to an HTTPS server."
    # https:// to the plain port: an HTTP answer, which TLS clients report as such (Go's:
    # "server gave HTTP response to HTTPS client"), not a wait for a head that never comes
    hello = socket.create_connection(("127.0.0.1", w.proxy_port))
    hello.sendall(_client_hello())
    head, _, body = read_all(hello).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and "use http://" in json.loads(body)["message"]
    # and both ports still serve their own scheme
    ctx = ssl.create_default_context(cafile=tls.ca_cert)
    conn = http.client.HTTPSConnection("127.0.0.1", w.tls_port, timeout=20, context=ctx)
    assert get(w.tls_port, "/whoami", conn=conn)[1]["tls"] is True
    assert get(w.proxy_port, "/whoami")[1]["tls"] is False


def test_the_owner_of_each_connection_reaches_the_app(worker_factory):
    w = worker_factory()
    status, body = request_as_nobody(f"http://127.0.0.1:{w.proxy_port}/whoami")
    assert status == 200 and body["uid"] == NOBODY and body["identified"] is True
    off = worker_factory(lookup="off")
    status, body = request_as_nobody(f"http://127.0.0.1:{off.proxy_port}/whoami")
    assert body["uid"] is None and body["identified"] is False
    assert "peer_lookup = off" in off.log()


def test_a_request_in_flight_finishes_on_sigterm(worker_factory):
    w = worker_factory()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(get(w.proxy_port, "/sleep?s=2")[0]))
    t.start()
    idle = socket.create_connection(("127.0.0.1", w.proxy_port))
    wait_for(lambda: get(w.hub_port, "/whoami")[1]["sleeping"] == 1, what="the request")
    w.stop()
    t.join()
    assert result == [200]
    assert read_all(idle) == b""
    idle.close()
