"""The hub's admin token: written at start, and written later when the start could not (a
full disk), so that a purge through the hub works once there is room."""

from __future__ import annotations

import os

from yurthub.cache.space import SpaceGuard
from yurthub.metrics import Metrics
from yurthub.storage.admintoken import ADMIN_TOKEN, AdminToken, read_admin_token


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_that_could_not_be_written_is_tried_again_once_a_second(tmp_path, caplog):
    root = tmp_path / "cache"       # not there yet: writing fails, as on a full disk
    clock = Clock()
    token = AdminToken(str(root), clock=clock)
    assert token.ensure() is False and token.value == ""
    assert "cannot write the admin token" in caplog.text
    root.mkdir()
    assert token.ensure() is False           # not due yet
    clock.now += 1.0
    assert token.ensure() is True and len(token.value) == 48
    assert read_admin_token(str(root)) == token.value
    assert os.stat(root / ADMIN_TOKEN).st_mode & 0o777 == 0o600
    assert "is written in" in caplog.text
    first = token.value
    clock.now += 5
    assert token.ensure() is True and token.value == first   # written once per start


class _Store:
    def __init__(self, root: str) -> None:
        self.root = root


def test_the_cache_writers_checks_retry_writes_that_wait_for_room(tmp_path):
    clock = Clock()
    guard = SpaceGuard(_Store(str(tmp_path)), Metrics(), clock=clock)  # type: ignore[arg-type]
    token = AdminToken(str(tmp_path / "cache"), clock=clock)
    assert not token.ensure()
    guard.retry(token.ensure)
    calls = []
    guard.retry(lambda: calls.append(1) or True)   # done at its first call
    clock.now += 1
    guard.check()
    assert token.value == "" and calls == [1]
    (tmp_path / "cache").mkdir()
    guard.check()                            # within the second: nothing is tried
    assert token.value == ""
    clock.now += 1
    guard.check()
    assert token.value != "" and calls == [1]
    assert guard._retries == []
