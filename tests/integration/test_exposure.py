"""What the hub exposes and what it trusts: the plain proxy never beyond loopback, insecure
ways to the cloud said aloud at start and in /metrics (issue 13, section 3)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.fixtures import free_port
from tests.fixtures.waiting import wait_for


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yurthub", "serve", *args],
                          capture_output=True, text=True, timeout=60)


def outward_address() -> str:
    """An address of this machine that is not loopback (the one its default route uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        return str(s.getsockname()[0])


def test_a_bind_address_beyond_loopback_stops_serve_with_one_line(sandbox, tmp_path):
    r = serve("--server-addr", sandbox.url, "--bind-address", "0.0.0.0",
              "--proxy-port", str(free_port()), "--serve-port", str(free_port()),
              "--disk-cache-path", str(tmp_path / "c"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "bind_address = '0.0.0.0' is not a loopback address" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_accepted_outward_address_leaves_the_plain_ports_on_loopback(sandbox,
                                                                          hub_factory):
    address = outward_address()
    assert address != "127.0.0.1"
    hub = hub_factory(sandbox.url, extra=["--bind-address", "0.0.0.0",
                                          "--allow-non-loopback-bind", "true"])
    assert hub.get("/version")[0] == 200
    for port in (hub.proxy_port, hub.serve_port):
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((address, port)) != 0, f"port {port} answers on {address}"
    assert "is for the TLS proxy port only" in hub.log()


def test_a_plain_http_cloud_is_a_warning_and_a_metric(sandbox, hub_factory):
    assert sandbox.url.startswith("http://")
    hub = hub_factory(sandbox.url)
    assert f"WARNING yurthub.app: cloud server {sandbox.url} is reached over plain HTTP" in \
        hub.log()
    assert hub.metric("yurthub_insecure_upstream", server=sandbox.url, reason="http") == 1


def test_skipping_tls_verification_is_a_warning_and_a_metric(sandbox, hub_factory):
    server = sandbox.url.replace("http://", "https://")  # never reached: only named
    hub = hub_factory(server, extra=["--insecure-skip-tls-verify", "true",
                                     "--enable-resource-filter", "false",
                                     "--working-mode", "cloud"])
    assert "without checking its certificate (insecure_skip_tls_verify)" in hub.log()
    assert hub.metric("yurthub_insecure_upstream", server=server,
                      reason="insecure-skip-tls-verify") == 1


def test_a_token_in_a_query_string_never_reaches_the_log(sandbox, hub_factory):
    """At debug level the hub logs each request's path; a client that puts its bearer token
    in the query (``?access_token=``, as some do) must not find it in the journal, online
    (the proxy's line) or offline (the cache's line)."""
    hub = hub_factory(sandbox.url, extra=["--log-level", "DEBUG"])
    path = "/api/v1/namespaces/default/pods?access_token=s3cr3t-t0ken&labelSelector=app%3Dweb"
    assert hub.get(path)[0] == 200
    sandbox.offline()
    wait_for(lambda: hub.get(path)[0] == 200, 20, what="the list answered from the cache")
    log = hub.log()
    assert "s3cr3t-t0ken" not in log
    assert log.count("access_token=<redacted>&labelSelector=app%3Dweb") >= 2, log[-3000:]


def test_no_directory_the_hub_makes_is_open_to_other_users_under_umask_000(sandbox,
                                                                         hub_factory,
                                                                         tmp_path):
    """Started from a shell with umask 000 (not the unit, whose UMask=0077 hid it), the hub
    made the missing parents of its cache and identity directories 0777: any local user
    could swap the cache for a directory of their own."""
    made = tmp_path / "var"
    old = os.umask(0)
    try:
        hub = hub_factory(sandbox.url, cache_dir=made / "lib" / "cache")
    finally:
        os.umask(old)
    assert hub.get("/api/v1/pods")[0] == 200
    wait_for(lambda: (made / "lib" / "cache" / "kubelet").is_dir(), what="pods cached")
    open_to_others = [f"{oct(p.stat().st_mode & 0o777)} {p}" for p in [made, *made.rglob("*")]
                      if p.stat().st_mode & 0o022]
    assert open_to_others == []
