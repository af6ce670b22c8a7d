"""A cluster that nodes join with a bootstrap token, and hubs that join it.

``cluster``: a TLS sandbox (CA in ``tmp/pki``) with the join token ``TOKEN``, the CSR
auto-approver on and year-long certificates; ``joining_hub``: starts ``yurthub serve`` in
token mode against it (the token in a 0600 file, the CA pinned).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesandbox.server import Sandbox
from tests.fixtures import free_port
from tests.fixtures.hub import Hub
from tests.fixtures.waiting import WaitTimeout, wait_for
from tests.fixtures.web import http

TOKEN = "abcdef.0123456789abcdef"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(self_signed_dir=str(tmp_path / "pki"), bootstrap_tokens=(TOKEN,), nodes=1,
                 pods_per_node=2, bookmark_interval=0.3, control_port=0).start()
    yield sb
    sb.stop()


def token_file(tmp: Path, token: str = TOKEN) -> Path:
    path = tmp / f"join-token-{token[:6]}"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def token_args(sb: Sandbox, tmp: Path, token: str = TOKEN,
               pin: str | None = None) -> list[str]:
    return ["--bootstrap-mode", "token", "--join-token-file", str(token_file(tmp, token)),
            "--discovery-token-ca-cert-hash", pin or sb.ca_hash]


@pytest.fixture
def joining_hub(cluster: Sandbox, hub_factory: Callable[..., Hub], tmp_path: Path
                ) -> Callable[..., Hub]:
    def make(**kw: Any) -> Hub:
        extra = [*token_args(cluster, tmp_path), *kw.pop("extra", [])]
        return hub_factory(cluster.url, extra=extra, **kw)
    return make


def readyz(hub: Hub) -> tuple[int, str]:
    status, _, body = http(hub.hub_url + "/v1/readyz", timeout=5)
    return status, body.decode()


def readyz_saying(hub: Hub, words: str, timeout: float = 30) -> tuple[int, str]:
    """The hub's readyz once it says ``words``; on a timeout, what it said and its log."""
    seen = ["nothing (the port never answered)"]

    def saying() -> tuple[int, str] | None:
        if hub.proc is not None and hub.proc.poll() is not None:
            pytest.fail(f"the hub exited with {hub.proc.returncode}: {hub.log()[-3000:]}")
        try:
            status, text = readyz(hub)
        except OSError:
            return None  # not listening yet
        seen[0] = f"{status} {text}"
        return (status, text) if words in text else None

    try:
        return wait_for(saying, timeout, f"readyz to say {words!r}")
    except WaitTimeout:
        pytest.fail(f"readyz never said {words!r} in {timeout}s; it last said {seen[0]}; "
                    f"the hub's log ends: {hub.log()[-3000:]}")


def serve_once(sb: Sandbox, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``yurthub serve`` expected to stop before serving (a refused bootstrap)."""
    return subprocess.run(
        [sys.executable, "-m", "yurthub", "serve", "--server-addr", sb.url,
         "--node-name", "node-0000", "--disk-cache-path", str(tmp / "cache"),
         "--root-dir", str(tmp / "root"), "--proxy-port", str(free_port()),
         "--serve-port", str(free_port()), "--secure-proxy-port", "0", *extra],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
