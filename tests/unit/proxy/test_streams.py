"""The one stream lifecycle: registration, the watch gauge, the send timeout, shutdown."""

from __future__ import annotations

import socket

from yurthub.metrics import Metrics
from yurthub.proxy.streams import Reason, StreamRegistry
from yurthub.proxy.watchdog import Watchdog


class FakeStream:
    def __init__(self, source: str = "remote") -> None:
        self.source = source
        self.reasons: list[Reason] = []

    def interrupt(self, reason: Reason) -> None:
        self.reasons.append(reason)


def gauge(metrics: Metrics, source: str) -> float:
    return metrics.open_watches.labels(source)._value.get()


def test_open_registers_counts_and_close_undoes_it_once():
    metrics, dog = Metrics(), Watchdog()
    reg = StreamRegistry(dog, metrics, send_timeout=7)
    a, b = socket.socketpair()
    s = FakeStream("local")
    life = reg.open(s, a, long_lived=True, watch=True)
    assert reg.count("local") == 1 and gauge(metrics, "local") == 1
    assert a.gettimeout() == 7 and dog.watched == 1
    life.close()
    life.close()  # idempotent
    assert reg.count() == 0 and gauge(metrics, "local") == 0 and dog.watched == 0
    a.close()
    b.close()


def test_a_short_answer_only_gets_the_send_timeout():
    metrics = Metrics()
    reg = StreamRegistry(Watchdog(), metrics, send_timeout=3)
    a, b = socket.socketpair()
    with reg.open(FakeStream(), a, long_lived=False, watch=False):
        assert a.gettimeout() == 3 and reg.count() == 0
    assert gauge(metrics, "remote") == 0
    a.close()
    b.close()


def test_a_stream_opened_after_shutdown_began_ends_itself():
    """Shutdown interrupts the streams registered then; one whose body starts a moment
    later must not outlive it (it would be cut at the graceful timeout, mid-stream)."""
    reg = StreamRegistry(Watchdog(), Metrics(), send_timeout=3)
    early = FakeStream()
    reg.open(early, None, long_lived=True, watch=True)
    assert reg.shutdown() == 1 and early.reasons == [Reason.SHUTDOWN]
    late = FakeStream()
    reg.open(late, None, long_lived=True, watch=True)
    assert late.reasons == [Reason.SHUTDOWN]
