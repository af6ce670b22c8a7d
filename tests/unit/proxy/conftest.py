"""Fixtures of the proxy's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from yurthub.metrics import Metrics
from yurthub.proxy.streams import StreamRegistry
from yurthub.proxy.watchdog import Watchdog

SEND_TIMEOUT = 7.5  # seconds a stalled client may hold a send


@pytest.fixture
def registry() -> Iterator[StreamRegistry]:
    """A stream registry with its watchdog running."""
    watchdog = Watchdog()
    watchdog.start()
    yield StreamRegistry(watchdog, Metrics(), SEND_TIMEOUT)
    watchdog.stop()
