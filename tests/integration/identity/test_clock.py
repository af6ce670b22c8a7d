"""A node whose clock is ahead of the cloud's: every certificate the cloud issues is already
due (or expired) by the node's clock.  The hub must say so and pace its requests, not ask for
a new certificate as fast as the cloud signs them."""

from __future__ import annotations

import time

from tests.fixtures.waiting import wait_for
from tests.integration.identity.conftest import TOKEN, token_file
from yurthub import config
from yurthub.identity.bootstrap import Bootstrap, ClientRenewal
from yurthub.identity.files import IdentityFiles
from yurthub.identity.manager import CertificateManager

AHEAD = 2 * 3600.0  # the node's clock, against the cloud's


def _manager(cluster, tmp_path, ahead: float) -> tuple[config.Config, IdentityFiles,
                                                       CertificateManager]:
    """The client certificate's manager of a node whose clock is ``ahead`` of the cloud's,
    the cloud issuing certificates of an hour."""
    cluster.controllers.cert_lifetime = 3600.0
    cfg = config.load(None, {
        "server_addr": cluster.url, "node_name": "node-0000", "bootstrap_mode": "token",
        "join_token_file": str(token_file(tmp_path)),
        "discovery_token_ca_cert_hash": cluster.ca_hash, "root_dir": str(tmp_path / "root"),
        "disk_cache_path": str(tmp_path / "cache")})
    files = IdentityFiles(cfg.root_dir)
    bootstrap = Bootstrap(cfg, files, cfg.server_addr)
    return cfg, files, CertificateManager(
        "client", files, files.client_pair,
        ClientRenewal(cfg, files, bootstrap, cfg.server_addr),
        clock=lambda: time.time() + ahead)


def test_a_clock_ahead_of_the_clouds_is_reported_and_paced(cluster, tmp_path):
    _, _, manager = _manager(cluster, tmp_path, AHEAD)  # every certificate ends before "now"
    manager.start()
    try:
        # the first certificate arrives and is already expired by this clock: it was asked
        # for again at once, over and over (a CSR every second or two, as fast as they were
        # approved and signed, forever), and nothing said why
        problem = wait_for(lambda: "clock" in (manager.problem() or "") and manager.problem(),
                           30, "the hub to name its clock")
        assert "has already expired by this node's clock" in problem
        # the next request waits a second (then longer): one CSR, or two on a slow machine
        assert len(cluster.csrs()) <= 2
    finally:
        manager.stop()
    assert TOKEN not in problem


def test_a_certificate_due_at_issue_but_still_valid_shows_on_the_status_page(cluster,
                                                                            tmp_path):
    """Ahead by less than the lifetime but past the renewal point: the hub works (readyz OK,
    no identity problem) and asks for a new certificate at every backoff, for ever.  Only
    the log said why; /status showed the certificate's file and its mtime."""
    from tests.unit.test_status import doc
    from yurthub.identity.hub import TokenCredentials
    from yurthub.status import StatusSource
    from yurthub.statuspage import render
    cfg, files, manager = _manager(cluster, tmp_path, 3300.0)  # due at 70-90 %
    manager.start()
    try:
        wait_for(lambda: "clock" in (manager.summary() or {}).get("state", ""), 30,
                 "the hub to name its clock")
        assert manager.problem() is None  # valid: readyz stays OK
        creds = TokenCredentials(files, cfg.server_addr, manager)
        source = StatusSource(cfg, *[None] * 7, credentials=creds,  # type: ignore[arg-type]
                              ready=lambda: True)
        ident = source._identity()
    finally:
        manager.stop()
    cert = ident["certificate"]
    assert cert["due"] and not cert["expired"]
    assert "is already due for renewal by this node's clock" in cert["state"]
    page = render(doc(identity=ident))
    assert (f'renewal at {cert["renewalAt"]} <span class="why">the certificate just issued'
            in page)
    assert "is the clock ahead of the cloud&#x27;s" in page


def _serving_from_tomorrow(cluster, tmp_path):
    """The cloud's serving certificate as a node whose clock is a day behind sees it: not
    valid yet.  (The node's own clock cannot be set back in a test; this is the same TLS
    verdict.)"""
    import ssl

    from kubesandbox import pki, tls
    key = pki.new_key()
    cert = cluster.ca.issue(
        key.public_key(), pki.name("yurthub-sandbox"),
        usages=("digital signature", "key encipherment", "server auth"),
        lifetime=10 * 86400, alt_names=pki.sans(["localhost"], ["127.0.0.1"]),
        backdate=-86400)
    d = tmp_path / "tomorrow"
    d.mkdir()
    (d / "server.crt").write_bytes(pki.cert_pem(cert))
    pki.write_private(d / "server.key", pki.key_pem(key))
    ctx: ssl.SSLContext = tls.server_context(str(d / "server.crt"), str(d / "server.key"),
                                             cluster.tls.ca_cert)
    return ctx


def test_a_join_while_the_nodes_clock_is_behind_waits_for_the_clock(cluster, joining_hub,
                                                                    tmp_path):
    """An edge node without a real-time clock boots at 1970 and joins before NTP syncs.
    The cloud's certificate is then "not yet valid": the hub said "the apiserver's
    certificate is not signed by the pinned CA" and exited 78 (a bad setting), so systemd
    never started it again, even once the clock was right."""
    from tests.integration.identity.conftest import readyz_saying
    right = cluster.ssl_context
    cluster.ssl_context = _serving_from_tomorrow(cluster, tmp_path)
    hub = joining_hub(wait=False)
    status, text = readyz_saying(hub, "clock", 40)
    assert status == 503 and "not signed by the pinned CA" not in text
    assert "not yet valid" in text and "this node's clock" in text, text
    cluster.ssl_context = right            # NTP synced: the same CA, now valid
    wait_for(hub.ready, 60, "the hub to join once the clock is right")


def test_a_certificates_users_have_it_before_readyz_counts_it(cluster, tmp_path):
    """The serving port's TLS context is built (``on_change``) before the certificate counts
    as installed: readyz said ready while 10268 still had no context, and a pod's first
    handshake was reset (seen twice in loaded suites)."""
    cfg, files, _ = _manager(cluster, tmp_path, 0.0)
    bootstrap = Bootstrap(cfg, files, cfg.server_addr)
    seen: list[str | None] = []
    manager = CertificateManager(
        "client", files, files.client_pair, ClientRenewal(cfg, files, bootstrap, cfg.server_addr),
        on_change=lambda: seen.append(manager.problem()))
    manager.start()
    try:
        wait_for(lambda: manager.problem() is None, 30, "the certificate to be installed")
    finally:
        manager.stop()
    assert seen and seen[0] is not None  # not yet "installed" while its users caught up
