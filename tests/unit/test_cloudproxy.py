"""Which cloud servers go through the environment's proxy: Go's ProxyFromEnvironment rules."""

from __future__ import annotations

import threading

import pytest

from kubesandbox import tls
from tests.fixtures.connectproxy import ConnectProxy, pki_naming
from tests.fixtures.waiting import wait_for
from tests.unit.test_cloudconn import get, server, upstream_for
from yurthub.cloudproxy import ProxySettingError, check, route
from yurthub.errors import ConfigError, UpstreamBroken, UpstreamUnavailable

PROXY = {"HTTPS_PROXY": "http://proxy.site:3128"}


@pytest.mark.parametrize("server, no_proxy, proxied", [
    ("https://10.0.0.1:6443", "", True),
    ("https://cloud.example:6443", "", True),
    ("https://[2001:db8::1]:6443", "", True),
    # localhost and loopback addresses never go through a proxy (Go's useProxy)
    ("https://localhost:6443", "", False),
    ("https://127.0.0.1:6443", "", False),
    ("https://[::1]:6443", "", False),
    ("https://10.0.0.1:6443", "10.0.0.0/8", False),
    ("https://10.0.0.1:6443", "10.0.0.1", False),
    ("https://10.0.0.2:6443", "10.0.0.1", True),
    ("https://[2001:db8::1]:6443", "2001:db8::/32", False),
    ("https://[2001:db8::1]:6443", "[2001:db8::1]:6443", False),
    ("https://[2001:db8::1]:6443", "[2001:db8::1]:443", True),
    ("https://cloud.example:6443", "ample", True),  # a suffix only after a dot
    ("https://cloud.example:6443", "cloud.example", False),
    ("https://api.cloud.example:6443", "cloud.example", False),  # subdomains too
    ("https://cloud.example:6443", ".cloud.example", True),       # only subdomains
    ("https://api.cloud.example:6443", ".cloud.example", False),
    ("https://api.cloud.example:6443", "*.cloud.example", False),
    ("https://cloud.example:6443", "cloud.example:6443", False),
    ("https://cloud.example:6443", "cloud.example:443", True),
    ("https://cloud.example:6443", " other , * ", False),
    ("http://10.0.0.1:8080", "", False),  # HTTPS_PROXY is for https servers
])
def test_no_proxy_as_go_reads_it(server, no_proxy, proxied):
    env = {**PROXY, "NO_PROXY": no_proxy}
    assert bool(route(server, env).proxy) is proxied


def test_the_upper_case_variable_first_and_lower_case_too():
    assert route("https://10.0.0.1", {"https_proxy": "p:1"}).proxy == "http://p:1"
    assert route("https://10.0.0.1", {"HTTPS_PROXY": "http://a:1", "https_proxy": "http://b:1"}
                 ).proxy == "http://a:1"
    assert route("https://10.0.0.1", {**PROXY, "no_proxy": "10.0.0.1"}).proxy == ""
    assert route("https://10.0.0.1", {}).proxy == ""


def test_the_start_says_how_each_server_is_reached_without_the_proxy_credentials():
    env = {"HTTPS_PROXY": "http://u:secret@proxy:3128", "HTTP_PROXY": "http://proxy:3128"}
    assert route("https://10.0.0.1:6443", env).describe() == (
        "https://10.0.0.1:6443 through http://(user info not shown)@proxy:3128 (HTTPS_PROXY)")
    # a user name alone is a credential too (sent as Basic): an API key, say
    assert "APIKEY" not in route("https://10.0.0.1:6443",
                                 {"HTTPS_PROXY": "http://APIKEY@proxy:3128"}).describe()
    assert "directly: HTTP_PROXY is not used" in route("http://10.0.0.1:8080", env).describe()


@pytest.mark.parametrize("value", ["socks5://proxy:1080", "http://proxy:port"])
def test_a_proxy_the_hub_cannot_use_stops_the_start(value):
    with pytest.raises(ProxySettingError) as e:
        check({"HTTPS_PROXY": value})
    assert isinstance(e.value, ConfigError) and "HTTPS_PROXY=" in str(e.value)
    check({})


def test_a_request_waiting_through_the_proxy_is_cut_as_a_direct_one(tmp_path, monkeypatch):
    # The health checker declares the server gone and cuts the requests waiting for its
    # answer; through a proxy the connection's own host is the proxy's, and none was cut.
    cloud = "2001:db8::10"
    ca = pki_naming(tmp_path / "pki", cloud)
    ctx = tls.server_context(str(tmp_path / "pki" / "server.crt"),
                             str(tmp_path / "pki" / "server.key"), None)
    with server(b"", ctx) as url:  # reads each request, answers none
        proxy = ConnectProxy(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        upstream = upstream_for(f"https://[{cloud}]:{url.rsplit(':', 1)[1]}", str(ca))
        outcome: list[object] = []

        def ask() -> None:
            try:
                outcome.append(get(upstream, timeout=60))
            except (UpstreamBroken, UpstreamUnavailable) as e:
                outcome.append(e)

        asker = threading.Thread(target=ask)
        asker.start()
        try:
            wait_for(lambda: upstream.cut_waiting(upstream.servers[0]) == 1, 10,
                     "a request waiting to be cut")
            asker.join(10)
            assert len(outcome) == 1 and isinstance(outcome[0], UpstreamUnavailable), outcome
            assert proxy.connects and proxy.connects[0][0] == f"[{cloud}]:{url.rsplit(':', 1)[1]}"
        finally:
            upstream.close()
            asker.join(60)
            proxy.close()


@pytest.mark.parametrize("refusal", ["no proxy listening", "CONNECT refused"])
def test_a_proxy_that_cannot_tunnel_is_a_server_unavailable(tmp_path, monkeypatch, refusal):
    # Nothing reached the cloud: a write may go to another server, a read to the cache.
    import socket

    if refusal == "no proxy listening":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # closed again: nothing listens there
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        proxy = None
    else:
        proxy = ConnectProxy(("127.0.0.1", 9))  # the discard port: the CONNECT gets a 502
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    upstream = upstream_for("https://[2001:db8::10]:6443")
    try:
        with pytest.raises(UpstreamUnavailable):
            upstream.send(upstream.servers[0], "POST", "/api/v1/namespaces/default/pods",
                          {"User-Agent": "kubelet/v1.32.4"}, b"{}", read_timeout=5)
    finally:
        upstream.close()
        if proxy is not None:
            proxy.close()


def test_a_kubeconfigs_proxy_url_is_not_gone_around_unsaid(tmp_path, caplog):
    # client-go goes through a cluster's proxy-url; the hub does not (HTTPS_PROXY is its
    # way), and its start said nothing of it.
    from yurthub import config
    from yurthub.credentials import CredentialStore

    kubeconfig = tmp_path / "hub.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n"
        "    proxy-url: http://edge:secret@proxy.site:3128\n"
        "users:\n- name: u\n  user:\n    token: t0k3n\n"
        "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n")
    cfg = config.load(None, {"node_name": "n", "kubeconfig": str(kubeconfig)})
    store = CredentialStore(cfg)
    try:
        store.load()
    finally:
        store.close()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("proxy-url" in m and "proxy.site:3128" in m and "HTTPS_PROXY" in m
               for m in warned), warned
    assert not any("secret" in m for m in warned)
