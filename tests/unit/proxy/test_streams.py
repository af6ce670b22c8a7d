"""The one stream lifecycle (proxy/streams.py) on real sockets, a real watchdog thread and the
hub's real metrics: what ``StreamRegistry.open`` sets up, ``close`` takes down exactly once."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from yurthub.proxy.streams import Reason, StreamRegistry

SEND_TIMEOUT = 7.5


class Body:
    """A stream as the proxies implement it: it records why it was interrupted."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.reasons: list[Reason] = []
        self.interrupted = threading.Event()

    def interrupt(self, reason: Reason) -> None:
        self.reasons.append(reason)
        self.interrupted.set()


@pytest.fixture
def client() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the hub's end of a client connection, the client's end)."""
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def gauge(registry: StreamRegistry, source: str) -> float | None:
    return registry.metrics.registry.get_sample_value("yurthub_open_watches",
                                                      {"source": source})


def test_both_sources_are_exported_from_the_start(registry):
    """A dashboard sees 0 remote and 0 local watches, not a missing series."""
    assert gauge(registry, "remote") == 0
    assert gauge(registry, "local") == 0


@pytest.mark.parametrize("source", ["remote", "local"])
def test_a_watch_is_registered_watched_and_counted_until_closed_once(registry, client,
                                                                      source):
    ours, _ = client
    body = Body(source)
    life = registry.open(body, ours, long_lived=True, watch=True)
    assert ours.gettimeout() == SEND_TIMEOUT
    assert registry.count() == registry.count(source) == 1
    assert registry.watchdog.watched == 1
    assert gauge(registry, source) == 1
    life.close()
    life.close()  # idempotent: the count does not go below what is open
    assert registry.count() == 0
    assert registry.watchdog.watched == 0
    assert gauge(registry, source) == 0
    assert body.reasons == []


def test_a_client_that_vanishes_interrupts_its_stream(registry, client):
    ours, theirs = client
    body = Body("remote")
    with registry.open(body, ours, long_lived=True, watch=True):
        theirs.close()
        assert body.interrupted.wait(10), "the watchdog did not notice the client leave"
        assert body.reasons == [Reason.CLIENT_GONE]
    assert gauge(registry, "remote") == 0
    assert registry.count() == 0


def test_a_followed_log_is_ended_by_shutdown_but_is_no_watch(registry, client):
    ours, _ = client
    body = Body("remote")
    with registry.open(body, ours, long_lived=True, watch=False):
        assert gauge(registry, "remote") == 0
        assert registry.shutdown() == 1
        assert body.reasons == [Reason.SHUTDOWN]
        assert registry.shutting_down.is_set()
    assert registry.count() == 0


def test_a_short_response_only_gets_the_send_timeout(registry, client):
    ours, theirs = client
    body = Body("remote")
    with registry.open(body, ours, long_lived=False, watch=False):
        assert ours.gettimeout() == SEND_TIMEOUT
        assert registry.count() == 0
        assert registry.watchdog.watched == 0
        theirs.close()
        assert registry.interrupt_all(Reason.SHUTDOWN) == 0
    assert body.reasons == []
    assert gauge(registry, "remote") == 0


def test_health_changes_interrupt_only_the_streams_of_their_source(registry):
    remote, local = Body("remote"), Body("local")
    with registry.open(remote, None, long_lived=True, watch=True), \
            registry.open(local, None, long_lived=True, watch=True):
        assert (gauge(registry, "remote"), gauge(registry, "local")) == (1, 1)
        assert registry.interrupt_all(Reason.CLOUD_DOWN, source="remote") == 1
        assert registry.interrupt_all(Reason.CLOUD_UP, source="local") == 1
    assert remote.reasons == [Reason.CLOUD_DOWN]
    assert local.reasons == [Reason.CLOUD_UP]
    assert (gauge(registry, "remote"), gauge(registry, "local")) == (0, 0)


def test_closing_from_many_threads_at_once_counts_down_once(registry, client):
    """gunicorn closes a body while the watchdog or a health change may be ending it."""
    ours, _ = client
    for _ in range(20):
        life = registry.open(Body("local"), ours, long_lived=True, watch=True)
        go = threading.Barrier(4)

        def close(life=life, go=go) -> None:
            go.wait()
            life.close()

        threads = [threading.Thread(target=close) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert gauge(registry, "local") == 0
    assert registry.watchdog.watched == 0


def test_a_stream_opened_after_shutdown_began_ends_itself(registry):
    """Shutdown interrupts the streams registered then; one whose body starts a moment
    later must not outlive it (it would be cut at the graceful timeout, mid-stream)."""
    early = Body("remote")
    registry.open(early, None, long_lived=True, watch=True)
    assert registry.shutdown() == 1 and early.reasons == [Reason.SHUTDOWN]
    late = Body("remote")
    registry.open(late, None, long_lived=True, watch=True)
    assert late.reasons == [Reason.SHUTDOWN]


def test_a_filter_change_ends_its_clients_watches_not_their_logs_or_execs(registry):
    """A change of kube-proxy's filters (yurt-hub-cfg, a pool, a topology) ends its watches of
    the resource, in-cluster ``kube-proxy@pod``'s too, so they relist; a followed log or an
    exec of a pod by a client whose pods filter changed is no view, and went on."""
    from types import SimpleNamespace

    from yurthub.proxy.filtering import watches_of

    def stream(component: str, verb: str, resource: str, sub: str = "") -> Body:
        body = Body("remote")
        info = SimpleNamespace(verb=verb, api_group="", resource=resource, subresource=sub)
        body.ctx = SimpleNamespace(component=component,  # type: ignore[attr-defined]
                                   agent=component.split("@")[0], info=info)
        return body

    ended = [stream("kube-proxy", "watch", "services"),
             stream("kube-proxy@pod", "watch", "services"),
             stream("kubectl", "watch", "pods")]
    kept = [stream("kube-proxy", "watch", "endpoints"),
            stream("coredns", "watch", "services"),
            stream("kubectl", "get", "pods", "log"),
            stream("kubectl@1000", "create", "pods", "exec")]
    lives = [registry.open(b, None, long_lived=True, watch=b.ctx.info.verb == "watch")
             for b in ended + kept]
    clients = {("kube-proxy", "", "services"), ("kubectl", "", "pods")}
    assert registry.interrupt_where(Reason.FILTERS_CHANGED,
                                    watches_of(clients, by_agent=True)) == len(ended)
    assert [b.reasons for b in ended] == [[Reason.FILTERS_CHANGED]] * len(ended)
    assert [b.reasons for b in kept] == [[]] * len(kept)
    for life in lives:
        life.close()
