"""A renewal whose CertificateSigningRequest waits for approval longer than the current
certificate lives: the hub must keep waiting for that request (asking with the bootstrap
token once the certificate has expired) and install what it brings, not abandon it.

Before, the first poll after the expiry was refused (an expired certificate authenticates
nobody), the hub logged that the cloud "refused the hub's certificate" and created another
request: the operator approving the one they saw pending got nothing for it."""

from __future__ import annotations

import logging
import time

import pytest

from tests.fixtures.waiting import wait_for
from tests.integration.identity.test_clock import _manager

LIFETIME = 4.0  # seconds: the renewal is asked for 2.8-3.6 s after the first issue


# ahead=-3: the node's clock 3 s behind the cloud's.  The renewal is asked for after the
# certificate's end by the cloud's clock, while the node still takes it for valid: the
# cloud refuses it, and the hub "bootstrapped again" (a second request) where the same
# request with the token goes through.  ahead=0 met the same refusal now and then, for a
# poll sent in the certificate's last moment and read by the cloud just after it.
@pytest.mark.parametrize("ahead", [0.0, -3.0])
def test_a_request_approved_after_the_certificate_expired_is_the_one_installed(
        cluster, tmp_path, caplog, ahead):
    _, _, manager = _manager(cluster, tmp_path, ahead)
    cluster.controllers.cert_lifetime = LIFETIME
    caplog.set_level(logging.INFO)
    manager.start()
    try:
        first = wait_for(lambda: manager.current, 30, "the first certificate")
        cluster.csr_auto_approve = False  # the operator approves renewals by hand
        pending = wait_for(lambda: [c for c in cluster.csrs()
                                    if not (c.get("status") or {}).get("certificate")],
                           30, "the renewal's CertificateSigningRequest")
        assert len(pending) == 1
        # the certificate expires while its successor waits, and the hub keeps polling
        wait_for(lambda: time.time() > first.not_after + 3 * 2.0, 30,
                 "a few polls after the expiry")
        cluster.controllers.cert_lifetime = 3600.0
        cluster.approve_csr(pending[0]["metadata"]["name"])
        name = pending[0]["metadata"]["name"]
        installed = wait_for(lambda: manager.current if manager.current is not None
                             and manager.current.serial != first.serial else None,
                             30, "the approved certificate to be installed")
    finally:
        manager.stop()
    issued = {c["metadata"]["name"]: c for c in cluster.csrs()}
    assert len(issued) == 2, f"the hub asked again instead of waiting: {sorted(issued)}"
    assert installed.not_after - installed.not_before > 1000  # the one approved by hand
    assert (issued[name].get("status") or {}).get("certificate")
    assert "refused the hub's certificate" not in caplog.text
    assert manager.problem() is None
