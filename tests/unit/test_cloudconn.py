"""Connections to the cloud: interim (1xx) answers are read past, as client-go does, and
stray bytes after an answer are never the next one.

A load balancer in front of kube-apiserver may send ``103 Early Hints`` (or a server ``102
Processing``) before the answer.  http.client took any 1xx but 100 for the answer itself: the
hub passed a bodiless 103 on, its client waited for an answer that never came (kubectl:
"connection broken: unexpected EOF" after the send timeout), and a health probe so answered
counted as failed.  Real sockets, plain and TLS, through ``Upstream`` as the proxy uses it.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from urllib3.exceptions import MaxRetryError, ProtocolError, SSLError

from kubesandbox import tls
from tests.fixtures.waiting import wait_for
from yurthub import config
from yurthub import upstream as up
from yurthub.cloudconn import _CutOff, was_cut
from yurthub.credentials import Credentials
from yurthub.errors import UpstreamBroken, UpstreamError, UpstreamUnavailable
from yurthub.identity.apiclient import ApiClient

BODY = b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}'
HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
CLOSE = b"<closed without an answer>"
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)


@contextmanager
def server(answer: bytes | list[bytes], context: ssl.SSLContext | None = None
           ) -> Iterator[str]:
    """A cloud that answers every request with ``answer`` (a list: the n-th request on a
    connection with its n-th item, the last one after that; CLOSE: the connection closed
    instead of an answer)."""
    answers = answer if isinstance(answer, list) else [answer]
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(0.2)
    port = lsock.getsockname()[1]
    done = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            buf = b""
            n = 0
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                buf = buf.split(b"\r\n\r\n", 1)[1]
                if answers[min(n, len(answers) - 1)] is CLOSE:
                    return
                conn.sendall(answers[min(n, len(answers) - 1)])
                n += 1

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            if context is not None:
                conn.settimeout(10)
                try:
                    conn = context.wrap_socket(conn, server_side=True)
                except OSError:
                    conn.close()
                    continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        done.set()
        t.join(5)
        lsock.close()


def upstream_for(url: str, ca_file: str = "") -> up.Upstream:
    cfg = config.load(None, {"server_addr": url, "node_name": "node-0000"})
    return up.Upstream(cfg, Credentials(servers=(url,), ca_file=ca_file))


def get(upstream: up.Upstream, timeout: float = 10) -> tuple[int, bytes]:
    resp = upstream.send(upstream.servers[0], "GET", "/api/v1/namespaces/default/pods",
                         {"User-Agent": "kubelet/v1.32.4"}, None, read_timeout=timeout)
    try:
        return resp.status, b"".join(up.stream(resp))
    finally:
        up.finish(resp, True)


@pytest.mark.parametrize("interim", [
    HINTS,
    b"HTTP/1.1 102 Processing\r\n\r\n" + HINTS,
    b"HTTP/1.1 100 Continue\r\n\r\n" + HINTS + HINTS,
], ids=["103", "102-103", "100-103-103"])
def test_the_answer_after_interim_responses_is_the_one_passed_on(interim):
    with server(interim + ANSWER) as url:
        upstream = upstream_for(url)
        try:
            assert get(upstream) == (200, BODY)
            assert get(upstream) == (200, BODY)  # the kept-alive connection is in step
        finally:
            upstream.close()


def test_early_hints_over_tls_too(tmp_path):
    material = tls.make_self_signed(tmp_path / "pki")
    ctx = tls.server_context(material.server_cert, material.server_key, None)
    with server(HINTS + ANSWER, ctx) as url:
        upstream = upstream_for(url, material.ca_cert)
        try:
            assert get(upstream) == (200, BODY)
        finally:
            upstream.close()


def test_a_health_probe_answered_after_early_hints_succeeds():
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    with server(HINTS + ok) as url:
        upstream = upstream_for(url)
        try:
            assert upstream.own_request(upstream.servers[0], "GET", "/readyz",
                                        agent="yurthub", timeout=5) == (200, b"ok")
        finally:
            upstream.close()


def test_the_identity_client_reads_past_early_hints_too():
    with server(HINTS + ANSWER) as url:
        status, obj = ApiClient((url,), None).request("GET", "/api/v1/namespaces/default/pods")
    assert status == 200 and obj["kind"] == "PodList"


def test_endless_interim_responses_are_a_broken_answer_not_a_hang():
    with server(HINTS * 6 + ANSWER) as url:
        upstream = upstream_for(url)
        try:
            with pytest.raises(UpstreamBroken, match="interim"):
                get(upstream)
        finally:
            upstream.close()


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_a_read_on_a_connection_the_server_closed_as_idle_is_sent_again(tmp_path, secure):
    """The server closes a kept-alive connection as the next request arrives on it (its idle
    timeout, a load balancer's): Go's net/http sends the read again on a new connection.
    The hub answered a 502, or from the cache, for a cloud that was there all along."""
    ctx, ca = None, ""
    if secure:
        material = tls.make_self_signed(tmp_path / "pki")
        ctx = tls.server_context(material.server_cert, material.server_key, None)
        ca = material.ca_cert
    with server([ANSWER, CLOSE], ctx) as url:
        upstream = upstream_for(url, ca)
        try:
            for _ in range(3):
                assert get(upstream) == (200, BODY)
            ok = upstream.own_request(upstream.servers[0], "GET", "/readyz", agent="yurthub",
                                      timeout=5)
            assert ok[0] == 200  # the health probe too
        finally:
            upstream.close()


def test_a_write_or_a_first_request_is_never_sent_again():
    with server([ANSWER, CLOSE]) as url:
        upstream = upstream_for(url)
        try:
            assert get(upstream) == (200, BODY)
            with pytest.raises(UpstreamBroken):  # it may have arrived: never twice
                upstream.send(upstream.servers[0], "POST", "/api/v1/namespaces/default/pods",
                              {"Content-Type": "application/json"}, b"{}", read_timeout=5)
        finally:
            upstream.close()
    with server(CLOSE) as url:  # no answer at all on a new connection: a broken cloud
        upstream = upstream_for(url)
        try:
            with pytest.raises(UpstreamBroken):
                get(upstream)
        finally:
            upstream.close()


def test_bytes_past_a_small_tls_answer_are_never_the_next_requests_answer(tmp_path):
    """The answer ends 8 KiB into a TLS record (http.client's buffer) and the record goes on
    with a whole stray "answer": it stays decrypted in the SSL object, the socket is not
    readable, and urllib3 reused the connection — the next request got the stray answer."""
    material = tls.make_self_signed(tmp_path / "pki")
    ctx = tls.server_context(material.server_cert, material.server_key, None)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" \
           b"X-Pad: " % len(BODY)
    first = head + b"p" * (8192 - len(head) - 4 - len(BODY)) + b"\r\n\r\n" + BODY
    stray = b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[],"stray":true}'
    stray_answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(stray) + stray
    assert len(first + stray_answer) < 16384  # one TLS record
    with server([first + stray_answer, ANSWER], ctx) as url:
        upstream = upstream_for(url, material.ca_cert)
        try:
            assert get(upstream) == (200, BODY)
            status, body = get(upstream)
            assert b"stray" not in body
            assert (status, body) == (200, BODY)  # the first answer of a new connection
        finally:
            upstream.close()


@pytest.mark.parametrize("line", [b"X Bad Name: v\r\n", b"X-Cr: a\rb\r\n"],
                         ids=["space-in-name", "bare-cr"])
def test_a_malformed_header_line_is_a_broken_answer_not_a_body_read_to_the_timeout(line):
    """http.client dropped the header lines after it, Content-Length included: the body was
    read until the (kept-alive) connection's read timeout, then cut; kubectl, directly,
    refuses the answer at once ("malformed MIME header line")."""
    answer = ANSWER.replace(b"Content-Type:", line + b"Content-Type:")
    with server(answer) as url:
        upstream = upstream_for(url)
        try:
            with pytest.raises(UpstreamBroken, match="malformed header line"):
                get(upstream, timeout=2)
        finally:
            upstream.close()


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_a_request_waiting_for_a_silent_cloud_is_cut_not_left_to_its_timeout(secure,
                                                                             tmp_path):
    # Sent just before the cloud went silent, a get waited 60 s for its answer while the
    # health checker had declared the cloud gone: cut, it breaks before any byte (and the
    # proxy answers it from the cache).
    ca_file, ctx = "", None
    if secure:
        material = tls.make_self_signed(tmp_path / "pki")
        ctx = tls.server_context(material.server_cert, material.server_key, None)
        ca_file = material.ca_cert
    with server(b"", ctx) as url:  # reads each request, answers none
        upstream = upstream_for(url, ca_file)
        outcome: list[BaseException | tuple[int, bytes]] = []

        def ask() -> None:
            try:
                outcome.append(get(upstream, timeout=60))
            except (UpstreamBroken, UpstreamUnavailable) as e:
                outcome.append(e)

        asker = threading.Thread(target=ask)
        asker.start()
        try:
            server_ = upstream.servers[0]
            wait_for(lambda: upstream.cut_waiting(server_) == 1, 10,
                     "a request waiting to be cut")
            asker.join(10)
            # a read, which no answer will come to: another server (or the cache) may answer it
            assert len(outcome) == 1 and isinstance(outcome[0], UpstreamUnavailable), outcome
            assert upstream.cut_waiting(server_) == 0  # nothing else was waiting
        finally:
            upstream.close()
            asker.join(60)


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 90\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
], ids=["length", "chunked"])
def test_a_body_stalled_before_its_first_byte_is_cut_as_a_head_is(secure, head, tmp_path):
    # The head came, then silence: a get's body waited out the 60 s read timeout although
    # the server had been declared gone; cut, it breaks (and the proxy answers from the cache).
    ca_file, ctx = "", None
    if secure:
        material = tls.make_self_signed(tmp_path / "pki")
        ctx = tls.server_context(material.server_cert, material.server_key, None)
        ca_file = material.ca_cert
    with server(head, ctx) as url:
        upstream = upstream_for(url, ca_file)
        resp = upstream.send(upstream.servers[0], "GET", "/api/v1/pods",
                             {"User-Agent": "kubelet/v1.32.4"}, None, read_timeout=60)
        outcome: list[BaseException | bytes] = []

        def read() -> None:
            try:
                outcome.append(b"".join(up.stream(resp, coalesce=True, cut_first=True)))
            except UpstreamError as e:
                outcome.append(e)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            server_ = upstream.servers[0]
            wait_for(lambda: upstream.cut_waiting(server_) == 1, 10, "a body waiting to be cut")
            reader.join(10)
            assert len(outcome) == 1 and isinstance(outcome[0], UpstreamError), outcome
            assert upstream.cut_waiting(server_) == 0
        finally:
            up.finish(resp, False)
            upstream.close()
            reader.join(60)


def _ssl_error() -> ssl.SSLError:
    e = ssl.SSLError(1, "wrong version number")
    e.reason = "WRONG_VERSION_NUMBER"  # a string, as the ssl module sets it
    return e


@pytest.mark.parametrize("error, cut", [
    (MaxRetryError(None, "/", ProtocolError("Connection aborted.", _CutOff("gone"))), True),
    (MaxRetryError(None, "/", ProtocolError("Connection aborted.",
                                            ConnectionResetError("reset"))), False),
    (MaxRetryError(None, "/", SSLError(_ssl_error())), False),
    (_ssl_error(), False),
], ids=["cut", "reset", "tls", "bare-ssl"])
def test_only_a_cut_request_counts_as_cut(error, cut):
    # A TLS failure's reason is a string: reading it as a cause must not raise.
    assert was_cut(error) is cut
