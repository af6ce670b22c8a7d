"""``bootstrap_mode = kubeletcertificate``: the hub follows kubelet's certificate rotations."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from kubesandbox import pki
from kubesandbox.server import Sandbox
from tests.fixtures import free_port
from tests.fixtures.peers import as_nobody
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from yurthub.identity.certs import load_pair


def _kubelet_pair(sb: Sandbox, path: Path) -> str:
    cert, key = sb.ca.issue_pair(pki.name("system:node:node-0000", ["system:nodes"]),
                                 usages=["digital signature", "key encipherment",
                                         "client auth"], lifetime=3600)
    path.write_bytes(pki.cert_pem(cert) + pki.key_pem(key))
    path.chmod(0o600)
    return f"x509:{cert.serial_number:x}"


def _point(link: Path, target: Path) -> None:
    """Swap the symlink atomically, as kubelet's certificate store does."""
    tmp = link.with_name(link.name + ".new")
    os.symlink(target.name, tmp)
    os.replace(tmp, link)


def _kubelet_hub(sb: Sandbox, kubelet: Path, hub_factory, user: str):
    """kubelet's files (its kubeconfig with ``user``'s YAML, its first pair behind the
    ``-current`` link) and a hub using them: (the first pair's credential, the hub)."""
    kubelet.mkdir()
    ca = base64.b64encode(Path(sb.tls.ca_cert).read_bytes()).decode()
    (kubelet / "kubelet.conf").write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
        f"    server: {sb.url}\n    certificate-authority-data: {ca}\n"
        f"users:\n- name: u\n  user:{user}"
        "contexts:\n- name: k\n  context: {cluster: c, user: u}\ncurrent-context: k\n")
    first = _kubelet_pair(sb, kubelet / "kubelet-client-1.pem")
    _point(kubelet / "kubelet-client-current.pem", kubelet / "kubelet-client-1.pem")
    hub = hub_factory(sb.url, extra=[
        "--bootstrap-mode", "kubeletcertificate",
        "--kubelet-conf", str(kubelet / "kubelet.conf"),
        "--kubelet-client-certificate", str(kubelet / "kubelet-client-current.pem")])
    return first, hub


def test_the_hub_uses_kubelets_certificate_and_its_replacement(tmp_path, hub_factory):
    with Sandbox(self_signed_dir=str(tmp_path / "pki"), nodes=1, pods_per_node=1) as sb:
        kubelet = tmp_path / "kubelet"
        first, hub = _kubelet_hub(sb, kubelet, hub_factory, user=(
            f"\n    client-certificate: {kubelet}/kubelet-client-current.pem\n"
            f"    client-key: {kubelet}/kubelet-client-current.pem\n"))
        sb.clear_requests()
        assert hub.get("/api/v1/nodes")[0] == 200
        assert {r.credential for r in wait_for(lambda: sb.requests("/api/v1/nodes"), 10,
                                               "the request record")} == {first}
        assert not sb.csrs()  # kubelet's certificate is used as it is: no CSR

        second = _kubelet_pair(sb, kubelet / "kubelet-client-2.pem")
        _point(kubelet / "kubelet-client-current.pem", kubelet / "kubelet-client-2.pem")

        def uses_second() -> bool:
            sb.clear_requests()
            assert hub.get("/api/v1/nodes")[0] == 200
            return {r.credential for r in sb.requests("/api/v1/nodes")} == {second}
        wait_for(uses_second, 15, "the hub to present kubelet's new certificate")
        assert hub.ready()
        assert "using kubelet's client certificate" in hub.log()
        # Where the operator looks: the certificate in use, when it ends, who renews it.
        _, info = load_pair((kubelet / "kubelet-client-2.pem").read_bytes())
        assert hub.metric("yurthub_certificate_expiration_timestamp_seconds",
                          certificate="client") == info.not_after
        assert hub.metric("yurthub_certificate_renewal_timestamp_seconds") == 0  # kubelet's
        doc = json.loads(http(hub.hub_url + "/v1/status")[2])
        cert = doc["identity"]["certificate"]
        # It said 'none (anonymous)', 'verified with the system's CAs': neither is so.
        assert doc["identity"]["method"] == "client certificate"
        assert doc["identity"]["clientCertificate"]["file"] == str(
            kubelet / "kubelet-client-current.pem")
        assert doc["identity"]["tls"] == f"verified with {kubelet / 'kubelet.conf'}"
        assert cert["notAfter"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                 time.gmtime(info.not_after))
        assert cert["renewalAt"] is None and "kubelet renews it" in cert["state"]
        page = http(hub.hub_url + "/status")[2].decode()
        assert f"valid {cert['notBefore']} to {cert['notAfter']} <span" in page


def test_missing_kubelet_files_stop_serve_with_one_line(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "yurthub", "serve", "--server-addr",
                        "https://127.0.0.1:1", "--bootstrap-mode", "kubeletcertificate",
                        "--kubelet-conf", str(tmp_path / "nope.conf"), "--secure-proxy-port",
                        "0", "--root-dir", str(tmp_path / "r"), "--disk-cache-path",
                        str(tmp_path / "c"), "--proxy-port", str(free_port()),
                        "--serve-port", str(free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"kubelet_conf = '{tmp_path / 'nope.conf'}': cannot read" in r.stderr


def test_an_empty_kubelet_ca_file_stops_serve_not_trusts_the_systems_cas(tmp_path):
    """kubelet.conf naming no CA data, and the CA file empty (truncated): the hub built a
    context of the system's CAs, trusting any public CA for the cloud; kubelet refuses."""
    from yurthub import config
    from yurthub.errors import ConfigError
    from yurthub.identity.kubelet import KubeletIdentity
    ca = pki.Authority.create()
    cert, key = ca.issue_pair(pki.name("system:node:node-0000", ["system:nodes"]),
                              usages=["digital signature", "key encipherment", "client auth"],
                              lifetime=3600)
    pair = tmp_path / "kubelet-client-current.pem"
    pair.write_bytes(pki.cert_pem(cert) + pki.key_pem(key))
    conf = tmp_path / "kubelet.conf"
    conf.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                    "    server: https://127.0.0.1:6443\n"
                    "    certificate-authority: /etc/kubernetes/pki/ca.crt\n")
    empty = tmp_path / "ca.crt"
    empty.write_bytes(b"")
    cfg = config.load(None, {"kubelet_conf": str(conf), "kubelet_ca_file": str(empty),
                             "kubelet_client_certificate": str(pair)})
    with pytest.raises(ConfigError) as e:
        KubeletIdentity(cfg)
    assert str(e.value) == (f"kubelet_ca_file = {str(empty)!r}: is empty: the cloud's "
                            "certificate could not be verified")


def test_kubelets_root_only_files_say_what_the_service_user_needs(tmp_path):
    # kubeadm writes kubelet.conf 0600 and kubelet its certificates 0600, root's; the
    # packaged service runs as user yurthub, which kubeletcertificate mode then cannot use
    conf = tmp_path / "kubelet.conf"
    conf.write_text("apiVersion: v1\nkind: Config\n")
    conf.chmod(0o600)
    r = as_nobody("import sys\n"
                  "from yurthub import config\n"
                  "from yurthub.errors import ConfigError\n"
                  "from yurthub.identity.kubelet import KubeletIdentity\n"
                  "try:\n"
                  "    KubeletIdentity(config.load(None, {'kubelet_conf': sys.argv[1]}))\n"
                  "except ConfigError as e:\n"
                  "    print(e)\n", str(conf))
    line = r.stdout.strip()
    assert line.startswith(f"kubelet_conf = '{conf}': cannot read: Permission denied"), line
    assert "yurthub runs as nobody: give nobody read access" in line


def test_a_broken_new_kubelet_file_leaves_the_loaded_certificate_in_use(tmp_path,
                                                                          hub_factory):
    # kubelet's link pointed at a file the hub cannot use (a key of another pair, a file
    # copied in place, permissions changed): the pair the hub loaded is still valid, so it
    # keeps acting with it, as YurtHub's kubelet certificate manager keeps its current one
    # until it expires.  It answered every request needing its identity with a 503 (the
    # node's Lease too), and readyz failed, until the file was right again.
    with Sandbox(self_signed_dir=str(tmp_path / "pki"), nodes=1, pods_per_node=1) as sb:
        kubelet = tmp_path / "kubelet"
        first, hub = _kubelet_hub(sb, kubelet, hub_factory, user=" {}\n")
        assert hub.get("/api/v1/nodes")[0] == 200

        _kubelet_pair(sb, kubelet / "kubelet-client-2.pem")
        good, other = (kubelet / "kubelet-client-1.pem").read_bytes(), \
            (kubelet / "kubelet-client-2.pem").read_bytes()
        # the first pair's certificate with the second pair's key
        broken = kubelet / "kubelet-client-3.pem"
        broken.write_bytes(good[:good.index(b"-----BEGIN", 1)] +
                           other[other.index(b"-----BEGIN", 1):])
        broken.chmod(0o600)
        _point(kubelet / "kubelet-client-current.pem", broken)
        wait_for(lambda: "the private key does not belong to the certificate" in hub.log(),
                 15, "the hub to look at kubelet's new file")

        sb.clear_requests()
        # a read the cache cannot answer: it must reach the cloud, as kubelet's
        status, _, body = hub.get("/api/v1/namespaces/default/services")
        assert status == 200, body[:300]
        assert {r.credential for r in wait_for(
            lambda: sb.requests("/services"), 10,
            "the request record")} == {first}
        assert hub.ready()
        # where the operator sees that kubelet's file is not usable
        state = json.loads(http(hub.hub_url + "/v1/status")[2])["identity"]["certificate"]
        assert "the private key does not belong to the certificate" in state["state"]
