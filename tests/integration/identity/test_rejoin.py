"""The identity follows the settings: a moved cloud, another cluster, a fresh join token.

An operator who changes ``server_addr`` or re-runs the join with a new token (the first one
expired) restarts the hub and expects it to act on what they changed, as YurtHub re-derives
its state for a new server (``verifyServerAddrOrCleanup``), without stranding a node whose
cluster only moved (same CA, its token long expired).
"""

from __future__ import annotations

import time

from cryptography import x509

from kubesandbox.server import Sandbox
from tests.fixtures.waiting import wait_for
from tests.integration.identity.conftest import TOKEN, token_file
from yurthub.identity import certs

NEW_TOKEN = "ghijkl.0123456789ghijkl"


def _pair(hub) -> x509.Certificate:
    return x509.load_pem_x509_certificate((hub.root_dir / "pki" / "yurthub-current.pem")
                                          .read_bytes())


def _args(token_path, pin: str) -> list[str]:
    return ["--bootstrap-mode", "token", "--join-token-file", str(token_path),
            "--discovery-token-ca-cert-hash", pin]


def _user_of_nodes_get(hub, sb: Sandbox) -> set[str]:
    sb.clear_requests()
    status, _, body = hub.get("/api/v1/nodes")
    assert status == 200, body
    served = wait_for(lambda: sb.requests("/api/v1/nodes"), 10, "the request record")
    return {r.user for r in served}


def test_a_fresh_join_token_in_the_token_file_is_used_after_the_first_expired(
        tmp_path, hub_factory):
    # The operator re-runs the join with a new token: it lands in the same join_token_file.
    # The hub kept bootstrapping with the copy of the old token in bootstrap-hub.conf, and
    # readyz asked for a POST to /v1/token instead.
    with Sandbox(self_signed_dir=str(tmp_path / "pki"), bootstrap_tokens=(TOKEN,), nodes=1,
                 pods_per_node=1, cert_lifetime=3.0) as sb:
        path = token_file(tmp_path)
        hub = hub_factory(sb.url, extra=_args(path, sb.ca_hash), wait=False)
        pem = hub.root_dir / "pki" / "yurthub-current.pem"
        wait_for(pem.exists, 30, "the first certificate")
        assert hub.stop() == 0
        wait_for(lambda: certs.load_pair(pem.read_bytes())[1].expired(time.time()), 30,
                 "the stored certificate to expire")
        sb.remove_bootstrap_token(TOKEN.split(".")[0])
        sb.add_bootstrap_token(NEW_TOKEN)
        sb.controllers.cert_lifetime = 3600.0
        path.write_text(NEW_TOKEN + "\n")

        hub.start()
        cert = _pair(hub)
        makers = {c["spec"]["username"] for c in sb.csrs()
                  if c.get("status", {}).get("certificate")
                  and x509.load_pem_x509_certificate(certs_pem(c)).serial_number
                  == cert.serial_number}
        assert makers == {"system:bootstrap:" + NEW_TOKEN[:6]}
        assert NEW_TOKEN in (hub.root_dir / "bootstrap-hub.conf").read_text()
        assert _user_of_nodes_get(hub, sb) == {"system:node:node-0000"}
        assert NEW_TOKEN[7:] not in hub.log()


def certs_pem(csr: dict) -> bytes:
    import base64
    return base64.b64decode(csr["status"]["certificate"])


def test_a_server_addr_naming_another_cluster_joins_it(tmp_path, hub_factory):
    # The cloud moved to another cluster (another CA): the hub kept the old CA and its
    # certificate from the old cluster, so it could never verify, nor be accepted by, the
    # new one.
    with Sandbox(self_signed_dir=str(tmp_path / "pki-a"), bootstrap_tokens=(TOKEN,),
                 nodes=1, pods_per_node=1) as old, \
            Sandbox(self_signed_dir=str(tmp_path / "pki-b"), bootstrap_tokens=(NEW_TOKEN,),
                    nodes=1, pods_per_node=1) as new:
        assert old.ca_hash != new.ca_hash
        path = token_file(tmp_path)
        hub = hub_factory(old.url, extra=_args(path, old.ca_hash), secure=True)
        first = _pair(hub)
        serving = hub.root_dir / "pki" / "yurthub-server-current.pem"
        wait_for(serving.exists, 30, "the serving certificate")
        assert hub.stop() == 0

        path.write_text(NEW_TOKEN + "\n")
        hub.server = new.url
        hub.extra = _args(path, new.ca_hash)
        hub.start(wait=False)
        wait_for(hub.ready, 30, f"the hub to join the new cluster (log: {hub.log()[-2000:]})")
        assert (hub.root_dir / "pki" / "ca.crt").read_bytes() == \
            open(new.tls.ca_cert, "rb").read()
        assert _pair(hub).serial_number != first.serial_number
        assert [c["spec"]["username"] for c in new.csrs()
                if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client"] == \
            ["system:bootstrap:" + NEW_TOKEN[:6]]
        assert _user_of_nodes_get(hub, new) == {"system:node:node-0000"}
        # the serving certificate of 10268 is the new cluster's too
        wait_for(lambda: serving.exists() and certs.load_cert(serving.read_bytes()).issuer
                 == certs.load_cert(open(new.tls.ca_cert, "rb").read()).subject, 30,
                 "a serving certificate from the new cluster")


def test_a_cluster_that_moved_keeps_the_hubs_certificate_without_a_new_token(
        tmp_path, hub_factory):
    # Same cluster (same CA), a new address; the join token expired long ago.  Wiping the
    # identity (as YurtHub does for any new host) would strand every node of the fleet.
    with Sandbox(self_signed_dir=str(tmp_path / "pki"), bootstrap_tokens=(TOKEN,), nodes=1,
                 pods_per_node=1) as sb:
        path = token_file(tmp_path)
        hub = hub_factory(sb.url, extra=_args(path, sb.ca_hash))
        first = _pair(hub)
        assert hub.stop() == 0
        sb.remove_bootstrap_token(TOKEN.split(".")[0])

        hub.server = sb.url.replace("127.0.0.1", "localhost")
        hub.start()
        assert _pair(hub).serial_number == first.serial_number
        assert _user_of_nodes_get(hub, sb) == {"system:node:node-0000"}
        assert "the cluster moved from" in hub.log()
        assert hub.server in (hub.root_dir / "bootstrap-hub.conf").read_text()
        assert "cluster-info has no signature" not in hub.log()  # no token was needed
        assert [c["spec"]["username"] for c in sb.csrs()] == ["system:bootstrap:abcdef"]


def test_a_token_posted_to_v1_token_is_not_undone_by_the_older_one_in_the_settings(
        cluster, joining_hub, tmp_path):
    import json

    from tests.fixtures.web import http
    hub = joining_hub()
    cluster.add_bootstrap_token(NEW_TOKEN)
    status, _, text = http(hub.hub_url + "/v1/token", method="POST",
                           body=json.dumps({"jointoken": NEW_TOKEN}).encode(),
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert status == 200, text
    assert hub.stop() == 0
    hub.start()
    assert NEW_TOKEN in (hub.root_dir / "bootstrap-hub.conf").read_text()
    assert "bootstrapping again" not in hub.log()
    assert hub.get("/api/v1/nodes")[0] == 200


def test_a_replaced_cluster_ca_and_its_new_pin_join_again(tmp_path, hub_factory):
    # The cloud's CA was replaced at the same address; the operator sets the new pin (as
    # kubeadm prints it) and restarts.  The hub kept the old CA, could not verify the cloud
    # any more, and never asked for a certificate of the new CA.
    old = Sandbox(self_signed_dir=str(tmp_path / "pki-a"), bootstrap_tokens=(TOKEN,),
                  nodes=1, pods_per_node=1).start()
    port = old.port
    path = token_file(tmp_path)
    try:
        hub = hub_factory(old.url, extra=_args(path, old.ca_hash))
        first = _pair(hub)
        assert hub.stop() == 0
    finally:
        old.stop()
    with Sandbox(self_signed_dir=str(tmp_path / "pki-b"), bootstrap_tokens=(TOKEN,),
                 nodes=1, pods_per_node=1, port=port) as new:
        assert new.url == old.url and new.ca_hash != old.ca_hash
        hub.extra = _args(path, new.ca_hash)
        hub.start(wait=False)
        wait_for(hub.ready, 30, f"the hub to join with the new CA (log: {hub.log()[-2000:]})")
        assert (hub.root_dir / "pki" / "ca.crt").read_bytes() == \
            open(new.tls.ca_cert, "rb").read()
        assert _pair(hub).serial_number != first.serial_number
        assert _user_of_nodes_get(hub, new) == {"system:node:node-0000"}
