"""A full disk under root_dir: the hub keeps its certificate in use and keeps trying.

Writing the certificates is the hub's own business; a disk that fills up (the cache, the
journal and the hub's state usually share /var) must cost a renewal, never the worker: the
certificate thread's crash takes every open watch down, and a worker that cannot write its
kubeconfig while it boots made gunicorn's master give up on the whole service.
"""

from __future__ import annotations

import errno
import logging
import threading

import pytest

from tests.fixtures.waiting import wait_for
from tests.integration.identity.conftest import TOKEN
from yurthub import config
from yurthub.identity.files import IdentityFiles
from yurthub.identity.hub import HubIdentity


def _full(*_args: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def identity_cfg(cluster, tmp_path):
    return config.load(None, {"server_addr": cluster.url, "node_name": "node-0000",
                              "root_dir": str(tmp_path / "root"), "bootstrap_mode": "token",
                              "join_token": TOKEN, "secure_proxy_port": "0",
                              "discovery_token_ca_cert_hash": cluster.ca_hash})


def test_a_renewal_on_a_full_disk_is_retried_and_the_certificate_stays(
        identity_cfg, monkeypatch, caplog):
    identity = HubIdentity(identity_cfg)
    manager = identity.client_manager
    assert manager is not None
    manager.renew()
    first = manager.current
    assert first is not None and identity.problem() is None
    monkeypatch.setattr(IdentityFiles, "write", _full)
    manager.deadline = 0.0  # renew now
    # run() itself, on a thread of the test's: a crash must not end the test run as
    # BackgroundThread would end the worker
    runner = threading.Thread(target=manager.run, daemon=True)
    caplog.set_level(logging.WARNING, "yurthub.identity.manager")
    runner.start()
    try:
        wait_for(lambda: "No space left on device" in caplog.text or not runner.is_alive(),
                 30, "the failed renewal")
        assert runner.is_alive(), "the certificate thread died of the full disk"
        assert manager.current == first and identity.problem() is None
    finally:
        manager.stopping.set()
        manager.wake()
        runner.join(10)


def test_a_worker_starting_on_a_full_disk_loads_its_certificate(identity_cfg, monkeypatch,
                                                                caplog):
    first = HubIdentity(identity_cfg)
    assert first.client_manager is not None
    first.client_manager.renew()
    monkeypatch.setattr(IdentityFiles, "write", _full)
    again = HubIdentity(identity_cfg)  # what a restarted worker builds
    assert again.problem() is None
    assert again.client_manager is not None
    assert again.client_manager.current == first.client_manager.current
