"""The shared state's check of a token's grant with the cloud (proxy/grantcheck.py), against
a fake cloud: what it sends, when, and what its answers do to the memory."""

from __future__ import annotations

import threading
import time
from typing import Any

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from yurthub.access.guard import AccessGuard
from yurthub.access.keys import access_key
from yurthub.config import Config
from yurthub.metrics import Metrics
from yurthub.proxy.context import build_context
from yurthub.proxy.grantcheck import GrantCheck

TOKEN = "Bearer abc.def"
PATH = "/api/v1/namespaces/default/services"


class Reply:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body
        self.headers = {"Content-Type": "application/json"}


class Cloud:
    """upstream.candidates/send; the answer's body is read by yurthub.upstream.stream."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.online = True
        self.gate: threading.Event | None = None

    def candidates(self) -> list[str]:
        return ["cloud"] if self.online else []

    def send(self, server: str, method: str, path: str, headers: dict[str, str], body: Any,
             *, read_timeout: float | None) -> Any:
        self.sent.append((path, headers))
        if self.gate is not None:
            self.gate.wait(5)
        return Reply(self.status, b'{"kind":"Status","code":%d}' % self.status)


def checking(monkeypatch: Any, status: int = 200, interval: float = 60
          ) -> tuple[GrantCheck, Cloud, Any, list[float]]:
    from yurthub.proxy import grantcheck
    monkeypatch.setattr(grantcheck.up, "stream", lambda resp, **kw: iter([resp.body]))
    monkeypatch.setattr(grantcheck.up, "finish", lambda resp, whole: None)
    guard = AccessGuard(Config(), Metrics())
    now = [time.time()]   # (the memory's age bound runs on the real clock)
    guard.memory.clock = lambda: now[0]
    cloud = Cloud(status)
    env = EnvironBuilder(path=PATH, query_string="labelSelector=app%3Dweb", headers={
        "Authorization": TOKEN, "User-Agent": "kube-proxy/v1.32"}).get_environ()
    env["RAW_URI"] = env["REQUEST_URI"] = f"{PATH}?labelSelector=app%3Dweb"  # (as gunicorn)
    ctx = build_context(Request(env), guard.caller)
    guard.memory.remember(TOKEN, ctx.component, access_key(ctx.info))
    return GrantCheck(guard, cloud, interval), cloud, ctx, now


def test_a_recent_grant_is_not_asked_an_old_one_is_once(monkeypatch):
    check, cloud, ctx, now = checking(monkeypatch)
    assert check.confirm(ctx) is True and cloud.sent == []
    now[0] += 61
    assert check.confirm(ctx) is True and check.confirm(ctx) is True
    assert len(cloud.sent) == 1   # the 200 renewed it
    path, headers = cloud.sent[0]
    assert path == f"{PATH}?limit=1&labelSelector=app%3Dweb"   # its selectors too
    assert headers["Authorization"] == TOKEN and headers["User-Agent"] == "kube-proxy/v1.32"


def test_the_clouds_refusal_is_the_answer_and_drops_the_grant(monkeypatch):
    check, cloud, ctx, now = checking(monkeypatch, status=403)
    now[0] += 61
    answer = check.confirm(ctx)
    assert isinstance(answer, Response) and answer.status_code == 403
    assert answer.get_data() == b'{"kind":"Status","code":403}'
    guard = check.guard
    assert not guard.memory.allows(TOKEN, ctx.component, access_key(ctx.info))
    assert check.confirm(ctx) is False   # the usual way decides from now on


def test_an_unanswered_check_leaves_the_memory_to_decide_and_waits(monkeypatch):
    check, cloud, ctx, now = checking(monkeypatch, status=503)
    now[0] += 61
    assert check.confirm(ctx) is True and check.confirm(ctx) is True
    assert len(cloud.sent) == 1
    cloud.online = False   # offline: nothing is asked
    assert check.confirm(ctx) is True and len(cloud.sent) == 1


def test_concurrent_requests_share_one_check(monkeypatch):
    check, cloud, ctx, now = checking(monkeypatch)
    now[0] += 61
    cloud.gate = threading.Event()
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(check.confirm(ctx)))
               for _ in range(4)]
    for t in threads:
        t.start()
    cloud.gate.set()
    for t in threads:
        t.join(10)
    assert got == [True] * 4 and len(cloud.sent) == 1


def test_a_clock_stepped_back_does_not_put_off_the_check(monkeypatch):
    """A node's clock set back an hour (NTP correcting a clock that ran ahead): a grant
    confirmed "in the future" was honoured, unchecked, for an hour and a minute, where
    docs/SECURITY.md promises at most ``token_recheck_interval``: a deleted pod's token
    kept reading the shared state."""
    check, cloud, ctx, now = checking(monkeypatch, status=401)
    now[0] -= 3600
    resp = check.confirm(ctx)
    assert len(cloud.sent) == 1 and getattr(resp, "status_code", None) == 401
    # once confirmed again by the new clock, the interval counts from there
    check, cloud, ctx, now = checking(monkeypatch)
    now[0] -= 3600
    assert check.confirm(ctx) is True and len(cloud.sent) == 1
    assert check.confirm(ctx) is True and len(cloud.sent) == 1
