"""The addresses the hub's serving certificate names, for IPv6 link-local ones with a zone."""

from __future__ import annotations

from types import SimpleNamespace

from yurthub import config
from yurthub.identity.certs import CertInfo
from yurthub.identity.serving import KUBERNETES_DNS, ServingRenewal, serving_ips


def _cfg(**overrides: str) -> config.Config:
    return config.load(None, {"node_name": "n", "allow_non_loopback_bind": "true",
                              **overrides})


def test_a_zone_is_no_part_of_a_certificate_address():
    cfg = _cfg(bind_address="fe80::1%lo", node_ip="fe80::2%eth0",
               hub_serving_address="fd00::1")
    assert serving_ips(cfg, "10.96.0.1", cfg.node_ip) == (
        "10.96.0.1", "fd00::1", "fe80::1", "fe80::2")


def test_a_certificate_for_a_link_local_bind_address_is_kept_at_the_next_start():
    # The certificate the cloud issued names fe80::1 and fe80::2; the settings say
    # fe80::1%lo and fe80::2%eth0.  It "lacked" them: every start asked for a new one.
    cfg = _cfg(bind_address="fe80::1%lo", node_ip="fe80::2%eth0",
               hub_serving_address="fd00::1")
    cert = CertInfo(0.0, 2e9, "01", "system:node:n", ("system:nodes",),
                    ip_sans=("10.96.0.1", "fd00::1", "fe80::1", "fe80::2"),
                    dns_sans=KUBERNETES_DNS)
    source = SimpleNamespace(servers=("https://[fe80::9%eth0]:6443",))
    assert ServingRenewal(cfg, source).unsatisfied(cert) is None  # type: ignore[arg-type]
