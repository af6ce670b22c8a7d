"""An expired certificate and a token the cloud no longer knows: readyz says to POST a new
join token to /v1/token, and the hub re-bootstraps with it (as YurtHub's /v1/token)."""

from __future__ import annotations

import base64
import json
import threading
import time

from cryptography import x509

from kubesandbox.server import Sandbox
from tests.fixtures.peers import NOBODY, request_as_nobody
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.integration.identity.conftest import TOKEN, readyz_saying, token_args
from yurthub import config
from yurthub.identity import certs
from yurthub.identity.bootstrap import Bootstrap
from yurthub.identity.files import IdentityFiles

NEW_TOKEN = "ghijkl.0123456789ghijkl"


def _expired(pem_file) -> bool:
    return certs.load_pair(pem_file.read_bytes())[1].expired(time.time())


def _serials(csr: dict) -> set[int]:
    issued = (csr.get("status") or {}).get("certificate")
    if not issued:
        return set()
    return {x509.load_pem_x509_certificate(base64.b64decode(issued)).serial_number}


def _post_token(hub, body: object) -> tuple[int, str]:
    status, _, text = http(hub.hub_url + "/v1/token", method="POST",
                           body=json.dumps(body).encode(),
                           headers={"Content-Type": "application/json"}, timeout=30)
    return status, text.decode()


def test_a_new_join_token_posted_to_v1_token_re_bootstraps_the_hub(tmp_path, hub_factory):
    with Sandbox(self_signed_dir=str(tmp_path / "pki"), bootstrap_tokens=(TOKEN,), nodes=1,
                 pods_per_node=1, cert_lifetime=3.0) as sb:
        hub = hub_factory(sb.url, extra=token_args(sb, tmp_path), wait=False)
        pem = hub.root_dir / "pki" / "yurthub-current.pem"
        wait_for(pem.exists, 30, "the first certificate")
        assert hub.stop() == 0
        wait_for(lambda: _expired(pem), 30, "the stored certificate to expire")
        sb.remove_bootstrap_token(TOKEN.split(".")[0])  # the old token is gone
        sb.add_bootstrap_token(NEW_TOKEN)
        sb.controllers.cert_lifetime = 3600.0

        hub.start(wait=False)  # an expired certificate: the start needs no cloud
        status, text = readyz_saying(hub, "/v1/token")  # asking for a new join token
        assert status == 503 and "expired" in text, text
        # a token the cloud does not know is refused; a malformed one too
        assert _post_token(hub, {"jointoken": "zzzzzz.0123456789zzzzzz"})[0] == 400
        assert _post_token(hub, {"jointoken": "not a token"})[0] == 400
        assert _post_token(hub, {"token": NEW_TOKEN})[0] == 400
        status, text = _post_token(hub, {"jointoken": NEW_TOKEN})
        assert status == 200, text
        wait_for(hub.ready, 30, "the hub to go ready with a certificate from the new token")
        assert not _expired(pem)
        # the certificate in use came from a CSR the new token made
        current = x509.load_pem_x509_certificate(pem.read_bytes()).serial_number
        makers = {c["spec"]["username"] for c in sb.csrs() if current in _serials(c)}
        assert makers == {"system:bootstrap:" + NEW_TOKEN[:6]}
        sb.clear_requests()
        assert hub.get("/api/v1/nodes")[0] == 200
        served = wait_for(lambda: sb.requests("/api/v1/nodes"), 10, "the request record")
        assert {r.user for r in served} == {"system:node:node-0000"}
        assert NEW_TOKEN[7:] not in hub.log()


def test_a_posted_token_with_a_newline_is_stored_and_sent_without_it(cluster, tmp_path):
    # `jq -n --rawfile t join-token '{jointoken: $t}'` keeps the file's newline.  Stored as
    # given, it made the next bootstrap's "Bearer <token>\n" an invalid header: the worker
    # died on a ValueError, printing the token, at every restart.
    cfg = config.load(None, {"server_addr": cluster.url, "node_name": "node-0000",
                             "root_dir": str(tmp_path / "root"), "bootstrap_mode": "token",
                             "discovery_token_ca_cert_hash": cluster.ca_hash,
                             "secure_proxy_port": "0"})
    files = IdentityFiles(cfg.root_dir)
    bootstrap = Bootstrap(cfg, files, cfg.server_addr)
    bootstrap.update_token(f" {TOKEN}\n")
    stored = files.read(files.bootstrap_conf)
    assert stored is not None and f"token: {TOKEN}\n" in stored.decode()
    # a later start reads it back and can ask for a certificate with it
    status, _ = Bootstrap(cfg, files, cfg.server_addr).client().request(
        "GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests")
    assert status == 200


def test_join_tokens_are_checked_one_at_a_time_and_healthz_stays_free(cluster, joining_hub):
    """Checking a join token asks the cloud; with the cloud stalled each check took its full
    timeout, one after another, and any local process posting a few tokens held every
    thread of the hub server: healthz waited behind them.  A second token while one is being
    checked gets a 429 at once."""
    hub = joining_hub()
    cluster.stall_next(20, match="cluster-info")
    answers: list[int] = []
    posts = [threading.Thread(target=lambda: answers.append(
        _post_token(hub, {"jointoken": NEW_TOKEN})[0])) for _ in range(8)]
    try:
        for t in posts:
            t.start()
        wait_for(lambda: answers.count(429) == 7, 10, "the other tokens refused at once")
        status, _, body = http(hub.hub_url + "/v1/healthz", timeout=5)
        assert (status, body) == (200, b"OK")
    finally:
        cluster.release()
        for t in posts:
            t.join()
    assert answers.count(429) == 7 and len(answers) == 8


def test_only_root_and_the_hubs_user_may_post_a_join_token(cluster, joining_hub):
    """The join token is the node's credential for joining the cluster: a process of any
    other user may neither replace it nor keep root's post waiting (429) behind its own."""
    hub = joining_hub()
    cluster.add_bootstrap_token(NEW_TOKEN)
    conf = hub.root_dir / "bootstrap-hub.conf"
    before = conf.read_bytes()
    cluster.clear_requests()
    status, body = request_as_nobody(hub.hub_url + "/v1/token", method="POST",
                                     headers={"Content-Type": "application/json"},
                                     body=json.dumps({"jointoken": NEW_TOKEN}))
    assert status == 403 and f"user {NOBODY}" in str(body), body
    assert not cluster.requests("cluster-info")  # nothing was checked on its behalf
    assert conf.read_bytes() == before and NEW_TOKEN[7:].encode() not in before
    # root still may
    assert _post_token(hub, {"jointoken": NEW_TOKEN})[0] == 200
