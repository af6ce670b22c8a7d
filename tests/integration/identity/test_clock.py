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


def test_a_clock_ahead_of_the_clouds_is_reported_and_paced(cluster, tmp_path):
    cluster.controllers.cert_lifetime = 3600.0  # every certificate ends before "now"
    cfg = config.load(None, {
        "server_addr": cluster.url, "node_name": "node-0000", "bootstrap_mode": "token",
        "join_token_file": str(token_file(tmp_path)),
        "discovery_token_ca_cert_hash": cluster.ca_hash, "root_dir": str(tmp_path / "root"),
        "disk_cache_path": str(tmp_path / "cache")})
    files = IdentityFiles(cfg.root_dir)
    bootstrap = Bootstrap(cfg, files, cfg.server_addr)
    manager = CertificateManager("client", files, files.client_pair,
                                 ClientRenewal(cfg, files, bootstrap, cfg.server_addr),
                                 clock=lambda: time.time() + AHEAD)
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
