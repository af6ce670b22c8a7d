"""Joining with a bootstrap token: discovery with the CA pin, the CSR, the files it leaves."""

from __future__ import annotations

import json
import os
import stat

import urllib3
from cryptography import x509

from kubesandbox import pki
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.identity.conftest import TOKEN, readyz, readyz_saying, serve_once, token_args
from yurthub import config
from yurthub.identity.bootstrap import Bootstrap
from yurthub.identity.files import IdentityFiles
from yurthub.identity.hub import TokenCredentials
from yurthub.kube import bootstraptoken as bt

CSR = "certificatesigningrequests.certificates.k8s.io"


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def refused_start(cluster, tmp_path) -> str:
    """A joining start that must be refused with one line (no traceback): that line."""
    result = serve_once(cluster, tmp_path, *token_args(cluster, tmp_path))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_join_token_with_the_right_pin_gives_the_hub_its_identity(cluster, joining_hub):
    hub = joining_hub()
    root = hub.root_dir
    wait_for(lambda: (root / "yurthub.conf").exists(), 10, "yurthub.conf (written just after "
             "the certificate is installed)")
    # the files, private
    assert _mode(root) == 0o700 and _mode(root / "pki") == 0o700
    for name in ("pki/yurthub-current.pem", "pki/ca.crt", "bootstrap-hub.conf", "yurthub.conf"):
        assert _mode(root / name) == 0o600, name
    assert (root / "pki" / "ca.crt").read_bytes() == open(cluster.tls.ca_cert, "rb").read()
    pem = (root / "pki" / "yurthub-current.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == \
        "system:node:node-0000"
    assert [a.value for a in cert.subject.get_attributes_for_oid(
        x509.oid.NameOID.ORGANIZATION_NAME)] == ["openyurt:yurthub", "system:nodes"]
    # the CSR was made with the bootstrap token; requests now carry the certificate
    csrs = cluster.csrs()
    assert [c["spec"]["username"] for c in csrs] == ["system:bootstrap:abcdef"]
    assert csrs[0]["spec"]["usages"] == ["digital signature", "key encipherment", "client auth"]
    cluster.clear_requests()
    status, _, body = hub.get("/api/v1/nodes")
    assert status == 200, body
    served = wait_for(lambda: cluster.requests("/api/v1/nodes"), 10,
                      "the request record (written after the response)")
    assert served and served[-1].user == "system:node:node-0000"
    assert served[-1].credential == f"x509:{cert.serial_number:x}"
    # secrets stay out of logs and of the hub's own kubeconfig
    assert TOKEN not in hub.log() and "0123456789abcdef" not in hub.log()
    assert TOKEN not in (root / "yurthub.conf").read_text()
    assert TOKEN in (root / "bootstrap-hub.conf").read_text()


def test_check_config_does_not_print_the_token(cluster, tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "yurthub", "check-config", "--join-token", TOKEN,
                        "--server-addr", cluster.url, "--root-dir", str(tmp_path),
                        "--disk-cache-path", str(tmp_path / "c"), "--config", os.devnull],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and TOKEN not in r.stdout and "(set, not shown)" in r.stdout


def _refused(result, root) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert not root.exists() or not any(root.rglob("*")), sorted(root.rglob("*"))
    assert "0123456789abcdef" not in result.stderr
    return lines[0]


def test_a_wrong_pin_is_refused_with_one_line_and_nothing_written(cluster, tmp_path):
    wrong = "sha256:" + "ab" * 32
    line = _refused(serve_once(cluster, tmp_path, *token_args(cluster, tmp_path, pin=wrong)),
                    tmp_path / "root")
    assert f"the cluster CA's hash {cluster.ca_hash} matches no discovery_token_ca_cert_hash" \
        in line


def test_a_tampered_cluster_info_is_refused(cluster, tmp_path):
    cluster.controllers.sign_cluster_info = False
    cm = cluster.get("configmaps", bt.CLUSTER_INFO_NAME, bt.CLUSTER_INFO_NAMESPACE)
    cm["data"]["kubeconfig"] = cm["data"]["kubeconfig"].replace("server: https://",
                                                                "server: https://evil.")
    cluster.put(cm)
    line = _refused(serve_once(cluster, tmp_path, *token_args(cluster, tmp_path)),
                    tmp_path / "root")
    assert "cluster-info's signature for token id 'abcdef' does not verify" in line


def test_an_unknown_token_id_is_refused_at_once_with_no_discovery_timeout(cluster, tmp_path):
    # no signature may only be not yet: it is asked for again for discovery_timeout seconds
    line = _refused(serve_once(cluster, tmp_path, *token_args(
        cluster, tmp_path, token="zzzzzz.0123456789abcdef"), "--discovery-timeout", "0"),
        tmp_path / "root")
    assert "cluster-info has no signature for token id 'zzzzzz'" in line


def test_a_signature_patched_in_after_the_start_is_waited_for(cluster, joining_hub):
    # kubeadm's discovery: "Even if the ConfigMap is available the JWS signature is
    # patched-in a bit later" (the signer runs after the token's Secret is created)
    cluster.controllers.sign_cluster_info = False
    cm = cluster.get("configmaps", bt.CLUSTER_INFO_NAME, bt.CLUSTER_INFO_NAMESPACE)
    del cm["data"][bt.JWS_KEY_PREFIX + "abcdef"]
    cluster.put(cm)
    hub = joining_hub(wait=False)
    wait_for(lambda: "asking again" in hub.log() or hub.proc.poll() is not None, 30,
             "the hub to wait for the signature")
    assert hub.proc.poll() is None, hub.log()
    assert "no signature for token id 'abcdef'" in hub.log()
    assert "0123456789abcdef" not in hub.log()
    cluster.controllers.sign_cluster_info = True
    wait_for(hub.ready, 30, "the hub ready once cluster-info is signed")
    wait_for(lambda: (hub.root_dir / "yurthub.conf").exists(), 10, "the hub's certificate")


def test_a_wrong_token_secret_is_refused(cluster, tmp_path):
    line = _refused(serve_once(cluster, tmp_path, *token_args(
        cluster, tmp_path, token="abcdef.ffffffffffffffff")), tmp_path / "root")
    assert "does not verify" in line


def test_no_pin_is_refused_unless_explicitly_unsafe(cluster, tmp_path, hub_factory, caplog):
    args = ["--bootstrap-mode", "token", "--join-token-file",
            token_args(cluster, tmp_path)[3]]
    line = _refused(serve_once(cluster, tmp_path, *args), tmp_path / "root")
    assert "no CA pin" in line and cluster.ca_hash in line
    hub = hub_factory(cluster.url, extra=[*args, "--discovery-token-unsafe-skip-ca-"
                                                 "verification", "true"])
    assert "WARNING" in hub.log() and "without a pin" in hub.log()
    assert readyz(hub)[0] == 200


def test_an_unapproved_csr_shows_in_readyz_until_approved_by_hand(cluster, joining_hub,
                                                                  tmp_path):
    cluster.csr_auto_approve = False
    hub = joining_hub(wait=False)
    status, text = readyz_saying(hub, "to be approved")
    assert status == 503
    assert "waiting for CertificateSigningRequest csr-" in text
    name = text.split("CertificateSigningRequest ")[1].split()[0]
    assert [c["metadata"]["name"] for c in cluster.csrs()] == [name]
    # the proxy answers, and says why it cannot act for the node yet
    status, _, body = hub.get("/api/v1/nodes")
    assert status == 503 and "no identity" in json.loads(body)["message"]
    import subprocess
    admin = cluster.write_kubeconfig(tmp_path / "admin.kubeconfig", admin=True)
    r = subprocess.run(["/usr/bin/kubectl", "--kubeconfig", admin, "certificate", "approve",
                        name], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_for(hub.ready, 30, "the hub to go ready once the CSR is approved")
    assert hub.get("/api/v1/nodes")[0] == 200
    assert "client certificate installed" in hub.log()


def test_a_denied_csr_is_reported(cluster, joining_hub):
    cluster.csr_auto_approve = False
    hub = joining_hub(wait=False)
    name = wait_for(lambda: [c["metadata"]["name"] for c in cluster.csrs()], 30, "a CSR")[0]
    cluster.deny_csr(name, "not this node")
    readyz_saying(hub, "was denied: not this node")
    status, _, _ = http(hub.hub_url + "/v1/healthz")
    assert status == 200


def test_a_certificate_file_the_hub_cannot_read_stops_it_with_one_line(cluster, tmp_path):
    # A hub run by hand as root leaves root-owned 0600 files that the service's user cannot
    # open; a directory in the file's place is the same failure to read for a test run as
    # root.  It was a traceback.
    pair = tmp_path / "root" / "pki" / "yurthub-current.pem"
    pair.mkdir(parents=True)
    assert f"cannot read '{pair}'" in refused_start(cluster, tmp_path)


def test_a_join_token_file_that_is_not_text_is_refused_with_one_line(cluster, tmp_path):
    garbage = tmp_path / "join-token"
    garbage.write_bytes(b"\xff\xfe0123456789abcdef")
    args = ["--bootstrap-mode", "token", "--join-token-file", str(garbage),
            "--discovery-token-ca-cert-hash", cluster.ca_hash]
    line = _refused(serve_once(cluster, tmp_path, *args), tmp_path / "root")  # a traceback
    assert f"join_token_file = '{garbage}': not a bootstrap token" in line


def test_a_bootstrap_kubeconfigs_relative_token_file_is_found_beside_it(tmp_path,
                                                                        monkeypatch):
    # as kubectl and kubelet read a kubeconfig; the service's working directory is /
    (tmp_path / "bootstrap").mkdir()
    (tmp_path / "bootstrap" / "join-token").write_text(TOKEN + "\n")
    conf = tmp_path / "bootstrap" / "bootstrap.conf"
    conf.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"tokenFile": "join-token"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.chdir("/")
    cfg = config.load(None, {"bootstrap_file": str(conf), "root_dir": str(tmp_path / "root")})
    given = Bootstrap(cfg, IdentityFiles(cfg.root_dir), ()).configured_token()
    assert given is not None and given.token == TOKEN


def test_a_pinned_ca_file_that_holds_no_certificate_is_written_again_or_stops_the_hub(
        cluster, joining_hub, tmp_path):
    # ca.crt replaced by hand with something else: with a valid certificate beside it the
    # hub started and its worker died building TLS contexts (a traceback, then gunicorn's
    # "Worker failed to boot"); then it stopped the start, offline too, although
    # bootstrap-hub.conf holds the same CA
    root = tmp_path / "root"
    ca = root / "pki" / "ca.crt"
    hub = joining_hub(root_dir=root)
    pinned = ca.read_bytes()
    assert hub.stop() == 0
    ca.write_text("not a certificate\n")
    cluster.offline()
    hub.start()  # ready, offline
    assert ca.read_bytes() == pinned
    assert "ca.crt holds no CA certificate: written again from" in hub.log()
    assert hub.stop() == 0
    # nothing else holds the CA: one line
    ca.write_text("not a certificate\n")
    (root / "bootstrap-hub.conf").unlink()
    assert f"'{root / 'pki' / 'ca.crt'}' holds no CA certificate" in refused_start(
        cluster, tmp_path)


def test_the_certificates_end_and_renewal_are_on_metrics_for_the_alert_rules(cluster,
                                                                             joining_hub):
    """A renewal that keeps failing (a CSR nobody approves, a clock ahead of the cloud's)
    showed nowhere a fleet's Prometheus looks until the certificate had expired and readyz
    went 503 on the node."""
    hub = joining_hub()
    wait_for(lambda: (hub.root_dir / "yurthub.conf").exists(), 10, "the certificate")
    from yurthub.identity.certs import load_pair
    _, cert = load_pair((hub.root_dir / "pki" / "yurthub-current.pem").read_bytes())
    begins, ends = cert.not_before, cert.not_after
    expires = hub.metric("yurthub_certificate_expiration_timestamp_seconds",
                         certificate="client")
    renewal = hub.metric("yurthub_certificate_renewal_timestamp_seconds",
                         certificate="client")
    assert expires == ends
    assert begins + 0.7 * (ends - begins) - 1 <= renewal <= begins + 0.9 * (ends - begins) + 1


def test_readyz_gives_the_serving_certificate_one_retry_schedule(cluster, joining_hub):
    # The serving certificate waits for the client one; readyz quoted the client's whole
    # state, its retry included, then added its own: "...: not this node; retrying in 1s;
    # retrying in 2s".  The client's schedule is on its own line.
    cluster.csr_auto_approve = False
    hub = joining_hub(wait=False, secure=True)
    name = wait_for(lambda: [c["metadata"]["name"] for c in cluster.csrs()], 30, "a CSR")[0]
    cluster.deny_csr(name, "not this node")
    _, text = readyz_saying(hub, "client identity: CertificateSigningRequest")
    line = next(x for x in text.splitlines() if x.startswith("[-]serving-certificate"))
    assert "was denied: not this node" in line
    assert line.count("retrying in") == 1, line


def test_an_identity_file_replaced_by_a_fifo_or_a_symlink_stops_the_hub_with_one_line(
        cluster, joining_hub, tmp_path):
    # A FIFO in ca.crt's place hung the start before its first log line (open() waits for
    # a writer); a symlink in the key pair's place was followed out of root_dir.
    root = tmp_path / "root"
    hub = joining_hub(root_dir=root)
    assert hub.stop() == 0
    ca, pair = root / "pki" / "ca.crt", root / "pki" / "yurthub-current.pem"
    outside = tmp_path / "elsewhere.pem"
    outside.write_bytes(pair.read_bytes())
    for planted, plant in ((ca, lambda: os.mkfifo(ca, 0o600)),
                           (pair, lambda: pair.symlink_to(outside))):
        planted.unlink()
        plant()
        assert f"cannot read '{planted}'" in refused_start(cluster, tmp_path)


def test_a_pinned_ca_gone_beside_the_certificate_is_written_again_and_the_cloud_reached(
        cluster, joining_hub, tmp_path):
    # ca.crt lost (a power cut, a cleanup by hand): the hub verified the cloud against the
    # system's CAs, failed, called a healthy cloud unhealthy and served its cache for good
    root = tmp_path / "root"
    hub = joining_hub(root_dir=root)
    ca = root / "pki" / "ca.crt"
    pinned = ca.read_bytes()
    assert hub.stop() == 0
    ca.unlink()
    hub.start()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 1, 15,
             "the cloud healthy")
    assert hub.get("/api/v1/nodes")[0] == 200
    assert ca.read_bytes() == pinned
    assert "ca.crt is missing beside the hub's certificate: written again" in hub.log()
    # with the bootstrap kubeconfig gone too, nothing holds the pinned CA: one line
    assert hub.stop() == 0
    ca.unlink()
    (root / "bootstrap-hub.conf").unlink()
    assert f"'{ca}' is missing beside the hub's certificate" in refused_start(cluster, tmp_path)


def test_a_pinned_ca_replaced_by_another_ca_is_written_again_and_the_cloud_reached(
        cluster, joining_hub, tmp_path):
    # ca.crt replaced by another CA's certificate (copied there by hand, another cluster's):
    # it parsed, so the hub trusted it: the cloud's certificate failed to verify, the hub
    # called a healthy cloud unhealthy and served its cache for good
    root = tmp_path / "root"
    hub = joining_hub(root_dir=root)
    ca = root / "pki" / "ca.crt"
    pinned = ca.read_bytes()

    def restarted_with(pem: bytes) -> bytes:
        """ca.crt once the hub, restarted on ``pem``, reaches the cloud."""
        assert hub.stop() == 0
        ca.write_bytes(pem)
        hub.start()
        wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 1, 15,
                 "the cloud healthy")
        assert hub.get("/api/v1/nodes")[0] == 200
        return ca.read_bytes()

    assert restarted_with(pki.cert_pem(pki.Authority.create().cert)) == pinned
    assert "ca.crt holds another CA than the one the join proved: written again" in hub.log()
    # A bundle of the joined CA and a new one (a CA rotation begun by the operator) is theirs
    bundle = pinned + pki.cert_pem(pki.Authority.create().cert)
    assert restarted_with(bundle) == bundle


def test_a_pinned_ca_gone_while_the_hub_runs_never_lets_the_systems_cas_in(cluster,
                                                                          joining_hub):
    # a new connection pool (a rotation) read ca.crt again: gone, the cloud was verified
    # against the system's CAs, and every request to it failed
    hub = joining_hub()
    files = IdentityFiles(str(hub.root_dir))

    class Manager:
        generation, current = 1, object()

        def valid(self) -> bool:
            return True

    manager = Manager()
    creds = TokenCredentials(files, (cluster.url,), manager)  # type: ignore[arg-type]
    pinned = creds.ssl_context(True).get_ca_certs()
    assert len(pinned) == 1
    os.unlink(files.ca)
    manager.generation = 2
    ctx = creds.ssl_context(True)
    assert ctx.get_ca_certs() == pinned
    pool = urllib3.connection_from_url(cluster.url, ssl_context=ctx, cert_reqs="CERT_REQUIRED",
                                       retries=False)
    assert pool.request("GET", "/api/v1/nodes/node-0000").status == 200
