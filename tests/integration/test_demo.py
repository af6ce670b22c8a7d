"""`yurthub demo`, the README's first command, runs its tour end to end."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures import free_port


def test_the_demo_tour_fills_the_cache_and_answers_offline(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "yurthub", "demo", "--tour-only", "--pods", "5",
         "--dir", str(tmp_path / "demo"), "--proxy-port", str(free_port()),
         "--serve-port", str(free_port()), "--sandbox-port", str(free_port())],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "offline answers matched the online ones" in r.stdout
    assert "served from the yurthub cache" in r.stdout
    assert len(list((tmp_path / "demo" / "cache" / "kubectl" / "pods.v1.core").rglob("*-*"))) == 5
