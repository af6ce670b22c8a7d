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


def test_bad_demo_input_is_one_line_and_starts_nothing(tmp_path):
    import socket
    (tmp_path / "file").write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = ["--proxy-port", str(free_port()), "--serve-port", str(free_port())]
        cases = [
            (["--dir", str(tmp_path / "file")], 2, "--dir "),
            (["--dir", str(tmp_path / "file" / "sub")], 2, "cannot write the demo's files"),
            (["--dir", "/proc/sys"], 2, "cannot write the demo's files"),
            (["--pods", "-1"], 2, "argument --pods: -1 is not between 0 and"),
            (["--proxy-port", "99999"], 2, "argument --proxy-port: 99999 is not between"),
            (["--sandbox-port", str(taken.getsockname()[1]), *ports], 1,
             f"the sandbox cannot listen on 127.0.0.1:{taken.getsockname()[1]}"),
        ]
        for args, code, fragment in cases:
            r = subprocess.run([sys.executable, "-m", "yurthub", "demo", "--tour-only",
                                "--dir", str(tmp_path / "demo"), *args],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == code, (args, r.stdout, r.stderr)
            assert fragment in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "demo" / "cache").exists()
