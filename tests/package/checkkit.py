"""What both package checks share: the failure, the check, one HTTP GET and polling.

Standard library only: ``check_boot.py`` runs inside a bare Debian tree with this file copied
beside it, and ``check_service.py`` runs on the host with Debian's python3.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from typing import Any


class CheckFailed(Exception):
    pass


def check(cond: object, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


def get(addr: tuple[str, int], path: str, headers: dict[str, str] | None = None,
        timeout: float = 10) -> tuple[int, bytes]:
    """One GET on a fresh connection: the status and the whole body."""
    conn = http.client.HTTPConnection(*addr, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def poll(what: str, fn: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    """``fn()``'s first true value within ``timeout`` seconds (OSErrors count as not yet);
    CheckFailed naming ``what`` and the last answer when none came."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except OSError as e:
            last = e
        time.sleep(every)
    raise CheckFailed(f"{what}: not within {timeout} s (last: {last!r})")
