"""The hub's identity towards the cloud, the client's own tokens, and TLS that is verified."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubesandbox.server import Sandbox
from kubesandbox.tls import make_self_signed
from tests.fixtures import free_port
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http

TOKEN = "s3cret-token-never-logged"


@pytest.fixture
def secure(tmp_path: Path):
    sb = Sandbox(nodes=1, pods_per_node=2, token=TOKEN,
                 self_signed_dir=str(tmp_path / "pki")).start()
    yield sb
    sb.stop()


def test_the_hub_uses_its_client_certificate_from_a_kubeconfig(secure, hub_factory, tmp_path):
    kubeconfig = secure.write_kubeconfig(tmp_path / "hub.kubeconfig", token="")
    hub = hub_factory(secure.url, extra=["--kubeconfig", kubeconfig])
    status, _, body = hub.get("/api/v1/nodes")
    assert status == 200, body
    assert json.loads(body)["items"]


def test_a_clients_own_token_passes_through_untouched(secure, hub_factory, tmp_path):
    kubeconfig = secure.write_kubeconfig(tmp_path / "hub.kubeconfig", token="")
    hub = hub_factory(secure.url, extra=["--kubeconfig", kubeconfig])
    # Without the hub's certificate: a wrong token is refused by the apiserver itself ...
    status, _, body = hub.get("/api/v1/nodes", Authorization="Bearer wrong")
    assert status == 401 and json.loads(body)["reason"] == "Unauthorized"
    # ... and the right one is accepted.
    assert hub.get("/api/v1/nodes", Authorization=f"Bearer {TOKEN}")[0] == 200


def test_a_token_file_and_ca_file_from_flags(secure, hub_factory, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    hub = hub_factory(secure.url, extra=["--token-file", str(token_file),
                                         "--ca-file", str(tmp_path / "pki" / "ca.crt")])
    assert hub.get("/api/v1/nodes")[0] == 200
    assert TOKEN not in hub.log()


def test_tls_is_verified_unless_explicitly_disabled(secure, hub_factory, tmp_path):
    other = make_self_signed(tmp_path / "other-pki")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    # Filters off: a hub that cannot reach the cloud would not be ready with them.
    hub = hub_factory(secure.url, extra=["--token-file", str(token_file), "--ca-file",
                                         other.ca_cert, "--working-mode", "cloud",
                                         "--enable-resource-filter", "false"])
    status, _, body = hub.get("/api/v1/nodes")
    assert status == 503
    assert "certificate verify failed" in json.loads(body)["message"].lower()
    insecure = hub_factory(secure.url, cache_dir=tmp_path / "cache2",
                           extra=["--token-file", str(token_file),
                                  "--insecure-skip-tls-verify", "true"])
    assert insecure.get("/api/v1/nodes")[0] == 200


def test_an_unusable_certificate_stops_serve_with_one_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    r = subprocess.run([sys.executable, "-m", "yurthub", "serve", "--server-addr",
                        "https://127.0.0.1:1", "--ca-file", str(bad), "--disk-cache-path",
                        str(tmp_path / "cache"), "--root-dir", str(tmp_path / "root"),
                        "--secure-proxy-port", "0", "--proxy-port", str(free_port()),
                        "--serve-port", str(free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert f"ca_file = '{bad}'" in r.stderr and "not a usable CA bundle" in r.stderr
    assert http  # the module's helpers stay importable for the others


@pytest.mark.parametrize("server", ["https://admin:s3cret@127.0.0.1:1",
                                    "https://127.0.0.1:1/?token=s3cret"])
def test_a_kubeconfig_server_with_credentials_in_its_url_is_refused_unshown(tmp_path, server):
    """As server_addr: a URL carrying a password or a token would reach the journal and
    /status on every line that names the server."""
    import subprocess
    import sys

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n")
    r = subprocess.run([sys.executable, "-m", "yurthub", "serve", "--kubeconfig",
                        str(kubeconfig), "--disk-cache-path", str(tmp_path / "cache"),
                        "--root-dir", str(tmp_path / "root"), "--secure-proxy-port", "0",
                        "--proxy-port", str(free_port()), "--serve-port", str(free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert f"kubeconfig {kubeconfig}: its server" in r.stderr, r.stderr
    assert "must not carry a query, fragment or user info" in r.stderr
    assert "s3cret" not in r.stderr + r.stdout


def test_a_token_file_that_holds_no_token_stops_serve_with_one_line(tmp_path):
    import subprocess
    import sys

    for content in (b"first-part\nsecond-part\n", b"\xff\xfe-not-text-\n", b"\n"):
        bad = tmp_path / "token"
        bad.write_bytes(content)
        r = subprocess.run([sys.executable, "-m", "yurthub", "serve", "--server-addr",
                            "https://127.0.0.1:1", "--token-file", str(bad),
                            "--disk-cache-path", str(tmp_path / "cache"), "--root-dir",
                            str(tmp_path / "root"), "--secure-proxy-port", "0",
                            "--proxy-port", str(free_port()),
                            "--serve-port", str(free_port())],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert f"token_file = '{bad}'" in r.stderr, r.stderr
        assert "part" not in r.stderr and "not-text" not in r.stderr


def test_a_token_file_garbled_while_serving_keeps_the_last_token(secure, hub_factory,
                                                                 tmp_path):
    # A token file rewritten with two lines (or bytes that are not text) made every request
    # under the hub's identity raise: the background threads crashed the worker at each
    # start, and each traceback printed the whole token.
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    hub = hub_factory(secure.url, extra=["--token-file", str(token_file),
                                         "--ca-file", str(tmp_path / "pki" / "ca.crt")])
    assert hub.get("/api/v1/nodes")[0] == 200
    for garbled in (f"{TOKEN}\nsecond-line\n".encode(), b"\xff" + TOKEN.encode()):
        token_file.write_bytes(garbled)
        status, _, body = hub.get("/api/v1/nodes")
        assert status == 200, body
    log = hub.log()
    assert "not one bearer token" in log
    assert "Traceback" not in log and "exited with code" not in log
    assert TOKEN not in log and "second-line" not in log


@pytest.mark.parametrize("user, context, words", [
    ({"client-certificate-data": "aGVsbG8=", "client-key-data": "aGVsbG8="}, {"name": "c"},
     "its client-certificate-data and client-key-data: not a usable certificate/key pair"),
    ({}, {}, "a context, cluster or user has no name"),
])
def test_a_bad_kubeconfig_is_named_with_the_field_at_fault(tmp_path, user, context, words):
    from yurthub import config
    from yurthub.credentials import CredentialStore
    from yurthub.errors import ConfigError

    path = tmp_path / "hub.kubeconfig"
    path.write_text(json.dumps({
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{**context, "context": {"cluster": "c", "user": "u"}}]}))
    store = CredentialStore(config.load(None, {"kubeconfig": str(path)}))
    with pytest.raises(ConfigError) as e:
        store.load()
    store.close()
    # was: "client_cert_file = '/tmp/yurthub-credentials-x/client.crt': ..." (a file the
    # operator never wrote, gone by the time they look) and "kubeconfig = ...: 'name'"
    assert str(e.value).startswith(f"kubeconfig = '{path}': {words}"), str(e.value)


def test_an_expired_client_certificate_is_the_reason_not_a_cloud_outage(secure, hub_factory,
                                                                      tmp_path):
    # An explicit client certificate that expired was still presented: the apiserver
    # refused every handshake, the health checker took the cloud to be down and the hub
    # served every client from its cache, while readyz blamed the filters.
    from kubesandbox import pki as sandbox_pki
    cert, key = secure.ca.issue_pair(
        sandbox_pki.name("system:node:node-0000", ["system:nodes"]),
        usages=["digital signature", "key encipherment", "client auth"], lifetime=-60)
    (tmp_path / "old.crt").write_bytes(sandbox_pki.cert_pem(cert))
    (tmp_path / "old.key").write_bytes(sandbox_pki.key_pem(key))
    hub = hub_factory(secure.url, wait=False, extra=[
        "--client-cert-file", str(tmp_path / "old.crt"), "--client-key-file",
        str(tmp_path / "old.key"), "--ca-file", str(tmp_path / "pki" / "ca.crt")])

    def readyz() -> str | None:
        try:
            status, _, body = http(hub.hub_url + "/v1/readyz", timeout=5)
        except OSError:
            return None
        return body.decode() if status == 503 and "client certificate" in body.decode() \
            else None
    said = wait_for(readyz, 30, "readyz to name the expired certificate")
    assert f"client_cert_file = '{tmp_path / 'old.crt'}'" in said and "expired" in said
    # the cloud is up: a client's own credential is served by it
    status, _, body = hub.get("/api/v1/nodes", Authorization=f"Bearer {TOKEN}")
    assert status == 200 and json.loads(body)["items"], body
    assert "is unhealthy" not in hub.log()


def _load_kubeconfig(path):
    from yurthub import config
    from yurthub.credentials import CredentialStore

    store = CredentialStore(config.load(None, {"kubeconfig": str(path)}))
    try:
        return store.load()
    finally:
        store.close()


@pytest.mark.parametrize("cluster, user, words", [
    # kubectl: "cannot unmarshal string into ... insecure-skip-tls-verify of type bool"; was
    # taken for its truth value, so a quoted "false" turned TLS verification off
    ({"insecure-skip-tls-verify": "false"}, {"token": "t"},
     "insecure-skip-tls-verify = 'false' is not a boolean"),
    ({"server": 6443}, {"token": "t"}, "its cluster's server is not a string"),  # was a traceback
    ({"certificate-authority": 5}, {"token": "t"},
     "its cluster's certificate-authority is not a string"),
    ({}, {"tokenFile": ["a"]}, "its user's tokenFile is not a string"),
])
def test_a_kubeconfig_field_of_the_wrong_type_is_refused_as_kubectl_refuses_it(
        tmp_path, cluster, user, words):
    from yurthub.errors import ConfigError

    path = tmp_path / "hub.kubeconfig"
    path.write_text(json.dumps({
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x"}))
    with pytest.raises(ConfigError) as e:
        _load_kubeconfig(path)
    assert str(e.value).startswith(f"kubeconfig = '{path}': {words}"), str(e.value)


def test_a_kubeconfig_saying_insecure_true_is_still_insecure(tmp_path):
    path = tmp_path / "hub.kubeconfig"
    path.write_text(json.dumps({
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    assert _load_kubeconfig(path).insecure


@pytest.mark.parametrize("flag, words", [
    ("--kubeconfig", "kubeconfig = '{}': not a kubeconfig (nested too deeply)"),
    ("--bootstrap-file", "bootstrap_file = '{}': not a bootstrap kubeconfig"),
    ("--kubelet-conf", "kubelet_conf = '{}': not a kubeconfig with a cluster"),
])
def test_a_kubeconfig_nested_too_deeply_is_one_line_not_a_traceback(tmp_path, flag, words):
    path = tmp_path / "deep.kubeconfig"
    path.write_text("[" * 20000 + "\n")  # was: RecursionError from the YAML composer, exit 1
    extra = ["--bootstrap-mode", "kubeletcertificate"] if flag == "--kubelet-conf" else []
    r = subprocess.run([sys.executable, "-m", "yurthub", "check-config", flag, str(path),
                        *extra, "--server-addr", "https://127.0.0.1:1",
                        "--disk-cache-path", str(tmp_path / "cache"),
                        "--root-dir", str(tmp_path / "root")],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "YURTHUB_CONFIG": os.devnull})
    assert r.returncode == 2, r
    assert r.stderr == f"yurthub: {words.format(path)}\n", r.stderr
