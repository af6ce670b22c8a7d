"""What an operator reads when the cloud cannot be reached: the server and the error in
words, never urllib3's internals.

urllib3 names its connection before the message ("FinalHTTPConnection(host='127.0.0.1',
port=...)" on 2.x, "<yurthub.cloudconn.FinalHTTPConnection object at 0x7f..>" on Debian's
1.26), and logs a "Retrying (Retry(total=0, ...)) after connection broken by ..." warning per
request while the cloud is away.  Real sockets to a closed port, on whichever urllib3 runs.
"""

from __future__ import annotations

import logging
import socket

import pytest
import urllib3
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from yurthub import config
from yurthub.cloudconn import FinalHTTPConnection, final_answers
from yurthub.credentials import Credentials
from yurthub.errors import UpstreamUnavailable
from yurthub.health import HealthChecker
from yurthub.identity.apiclient import ApiClient
from yurthub.metrics import Metrics
from yurthub.service import configure_logging
from yurthub.upstream import Upstream

INTERNALS = ("Connection(", "ConnectionPool(", "object at 0x", "cloudconn", "urllib3")


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens: connection refused
    return port


def words(text: str) -> None:
    assert not any(i in text for i in INTERNALS), text


@pytest.fixture
def cloud_down() -> str:
    return f"http://127.0.0.1:{closed_port()}"


def test_the_health_reason_shown_on_status_and_in_the_log_says_what_failed(cloud_down, caplog):
    cfg = config.load(None, {"server_addr": cloud_down, "node_name": "node-0000",
                             "heartbeat_failed_retry": "1"})
    up = Upstream(cfg, Credentials(servers=(cloud_down,)))
    try:
        with caplog.at_level(logging.WARNING, logger="yurthub.health"):
            HealthChecker(cfg, up, Metrics(), on_change=lambda _: None,
                          on_lease=lambda _: None).probe_all()
    finally:
        up.close()
    reason = up.servers[0].last_error
    assert reason.startswith("cannot connect: ") and "Connection refused" in reason, reason
    words(reason)
    # The line that says the server went unhealthy says why, once.
    assert f"server {cloud_down} is unhealthy: {reason}" in caplog.messages


def test_a_proxied_request_names_the_server_and_the_error(cloud_down):
    cfg = config.load(None, {"server_addr": cloud_down, "node_name": "node-0000"})
    up = Upstream(cfg, Credentials(servers=(cloud_down,)))
    try:
        with pytest.raises(UpstreamUnavailable) as e:
            up.send(up.servers[0], "GET", "/api/v1/pods", {}, None, read_timeout=5)
    finally:
        up.close()
    host = cloud_down.removeprefix("http://")
    assert str(e.value).startswith(f"{host}: cannot connect: "), e.value
    assert "Connection refused" in str(e.value)
    words(str(e.value))


def test_the_bootstrap_client_says_it_in_words_too(cloud_down):
    with pytest.raises(UpstreamUnavailable) as e:
        ApiClient((cloud_down,), None).request("GET", "/api/v1/namespaces/kube-public")
    assert "Connection refused" in str(e.value)
    words(str(e.value))


def test_each_urllib3_connect_error_in_words(cloud_down):
    from yurthub.cloudconn import describe_error
    port = int(cloud_down.rsplit(":", 1)[1])
    pool = final_answers(urllib3.HTTPConnectionPool("127.0.0.1", port))
    with pytest.raises(NewConnectionError) as refused:
        pool.urlopen("GET", "/", retries=False)
    with pytest.raises(MaxRetryError) as retried:
        pool.urlopen("GET", "/", retries=urllib3.Retry(1))
    pool.close()
    for e in (refused.value, retried.value):
        assert describe_error(e) == "[Errno 111] Connection refused", describe_error(e)
    # As urllib3 raises it on a connect timeout (both 1.26 and 2.x): (connection, message).
    conn = FinalHTTPConnection("10.0.0.1", 6443)
    timeout = ConnectTimeoutError(conn, "Connection to 10.0.0.1 timed out. (connect timeout=5)")
    assert describe_error(timeout) == "Connection to 10.0.0.1 timed out. (connect timeout=5)"


@pytest.fixture
def hub_logging():
    """The worker's logging, undone afterwards for the tests that follow in this process."""
    root, pool_log = logging.getLogger(), logging.getLogger("urllib3.connectionpool")
    saved = (root.handlers[:], root.level, pool_log.filters[:])
    configure_logging(config.Config())
    yield
    root.handlers[:], pool_log.filters[:] = saved[0], saved[2]
    root.setLevel(saved[1])


def test_urllib3s_retry_warnings_are_not_logged(cloud_down, caplog, hub_logging):
    port = int(cloud_down.rsplit(":", 1)[1])
    pool = final_answers(urllib3.HTTPConnectionPool("127.0.0.1", port))
    with caplog.at_level(logging.WARNING):
        with pytest.raises(MaxRetryError):
            pool.urlopen("GET", "/readyz", retries=urllib3.Retry(1))
        logging.getLogger("urllib3.connectionpool").warning("Connection pool is full")
    pool.close()
    assert [r.getMessage() for r in caplog.records] == ["Connection pool is full"]


class _Answer:
    """What urllib3's errors ask of the response they are raised for."""
    length_remaining = 0

    def tell(self) -> int:
        return 120


def test_a_watch_that_broke_off_says_so_in_words():
    from urllib3.exceptions import InvalidChunkLength, ProtocolError

    from yurthub.cloudconn import describe_error
    # As urllib3 1.26 and 2.x raise it when the connection closes between chunks.
    short = InvalidChunkLength(_Answer(), b"")
    broken = ProtocolError(f"Connection broken: {short!r}", short)
    assert describe_error(broken) == "Connection broken: the answer ended before its last chunk"
    assert describe_error(ProtocolError("Response ended prematurely")) == (
        "Response ended prematurely")
