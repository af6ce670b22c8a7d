"""``yurthub sandbox`` on the command line: serving, clean exits, clear errors for bad flags."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yurthub", "sandbox", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, fragment", [
    (("--nodes", "-1"), "argument --nodes: -1 is not between 0 and"),
    (("--port", "70000"), "argument --port: 70000 is not between 0 and 65535"),
    (("--pods-per-node", "x"), "argument --pods-per-node: 'x' is not an integer"),
    (("--bookmark-interval", "0"), "must be greater than 0"),
    (("--bogus",), "unrecognized arguments: --bogus"),
    (("--token", "a", "--token-file", "b"), "not allowed with argument"),
    (("--tls-cert-file", "c.pem"), "--tls-cert-file and --tls-private-key-file go together"),
    (("--client-ca-file", "ca.pem"), "--client-ca-file needs TLS"),
    (("--token-file", "/nonexistent/token"), "--token-file: cannot read"),
])
def test_bad_flags_exit_2_with_one_clear_line(args, fragment):
    r = run(*args)
    assert r.returncode == 2, r.stderr
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr


def test_unusable_files_exit_1_with_one_line_naming_them(tmp_path):
    (tmp_path / "file").write_text("")
    for args, fragment in (
            (("--kubeconfig-out", str(tmp_path / "none" / "kc")),
             f"--kubeconfig-out: cannot write {tmp_path / 'none' / 'kc'}"),
            (("--self-signed-dir", str(tmp_path / "file")),
             f"cannot start the sandbox: {tmp_path / 'file'}")):
        r = run("--port", "0", *args)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stderr.splitlines()[-1].startswith(f"yurthub: {fragment}"), r.stderr
        assert "Traceback" not in r.stderr and "cannot listen" not in r.stderr


def test_port_in_use_exits_1():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run("--port", str(s.getsockname()[1]))
    assert r.returncode == 1 and "cannot listen on 127.0.0.1:" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serves_logs_requests_and_stops_cleanly(tmp_path, sig):
    kubeconfig = tmp_path / "kubeconfig"
    p = subprocess.Popen([sys.executable, "-m", "yurthub", "sandbox", "--port", "0",
                          "--nodes", "2", "--pods-per-node", "2", "--token", "s3cret",
                          "--kubeconfig-out", str(kubeconfig)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("sandbox apiserver: http://127.0.0.1:")
        url = line.split(": ", 1)[1].strip()
        req = urllib.request.Request(url + "/api/v1/nodes",
                                     headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert len(json.load(r)["items"]) == 2
        assert "token: s3cret" in kubeconfig.read_text()
    finally:
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert "GET /api/v1/nodes 200" in err
    assert "s3cret" not in err  # never log tokens
