"""Token discovery, as kubeadm joins a node: trust the cluster's CA only once it is proven.

1. ``kube-public/cluster-info`` is read anonymously over TLS that cannot be verified yet.
2. Its ``jws-kubeconfig-<token id>`` must verify (HS256 with the token's secret) over the
   kubeconfig it holds: only someone who knows the token signed that CA.
3. The CA's public key must match one of the ``discovery_token_ca_cert_hash`` pins (unless
   ``discovery_token_unsafe_skip_ca_verification``, which logs a WARNING).
4. cluster-info is read again over TLS verified against that CA, and must not have changed.

Any failure of 2-4 is a ``DiscoveryRefused`` (a ConfigError: one line, exit 78 under
systemd); an unreachable cloud is an ``UpstreamUnavailable`` (retried).  A cluster-info that
cannot be read yet, or has no signature for the token id yet, is ``NotSignedYet``: the
bootstrap signer adds ``jws-kubeconfig-<id>`` a moment after the token's Secret appears, so
the start asks again for ``discovery_timeout`` seconds, as kubeadm's join does (an unknown
token id looks the same, and is refused when that time is up).
The token's secret never reaches a log or an error message.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import yaml

from yurthub.credentials import tls_context
from yurthub.errors import DiscoveryRefused, IdentityError, UpstreamUnavailable
from yurthub.identity import certs
from yurthub.identity.apiclient import ApiClient, status_message
from yurthub.kube import bootstraptoken as bt

log = logging.getLogger(__name__)


class NotSignedYet(DiscoveryRefused):
    """cluster-info is not readable yet or not signed yet for this token id: worth asking
    again for a while (kubeadm's discovery does), unlike a signature that does not verify."""


@dataclass(frozen=True)
class ClusterInfo:
    """What discovery proved: the cluster's CA (PEM) and the server cluster-info names."""

    ca_pem: bytes
    server: str


def _fetch(client: ApiClient) -> dict[str, Any]:
    status, body = client.request("GET", bt.CLUSTER_INFO_PATH)
    if status >= 500 or status == 429:
        raise UpstreamUnavailable(f"reading cluster-info: {status_message(status, body)}")
    if status != 200 or not isinstance(body, dict):
        raise NotSignedYet(f"cannot read {bt.CLUSTER_INFO_NAMESPACE}/{bt.CLUSTER_INFO_NAME} "
                               f"anonymously ({status_message(status, body)}): is this a "
                               "kubeadm-style cluster that publishes it?")
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get(bt.KUBECONFIG_KEY), str):
        raise DiscoveryRefused("cluster-info holds no kubeconfig")
    return data


def parse_cluster(kubeconfig: str) -> tuple[str, bytes | None]:
    """``(server, CA PEM or None)`` of a kubeconfig's first cluster; ValueError if malformed."""
    try:
        doc = yaml.safe_load(kubeconfig)
        cluster = (doc.get("clusters") or [])[0]["cluster"]
    except (yaml.YAMLError, AttributeError, IndexError, KeyError, TypeError, RecursionError):
        raise ValueError("not a kubeconfig with a cluster") from None
    ca = cluster.get("certificate-authority-data")
    if not ca:
        return str(cluster.get("server") or ""), None
    try:
        return str(cluster.get("server") or ""), base64.b64decode(ca, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("certificate-authority-data is not base64") from None


def ca_context(ca_pem: bytes) -> ssl.SSLContext:
    """A context for urllib3 that trusts ``ca_pem`` (urllib3 checks the host name).

    No CA (a pinned ``ca.crt`` gone or emptied) trusts nothing, never the system's CAs: the
    hub talks only to the cluster whose CA it pinned."""
    if not ca_pem.strip():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx
    return tls_context(cadata=ca_pem.decode("ascii", "replace"))


def _out_of_dates(reason: str) -> bool:
    """OpenSSL's verdict on a certificate's validity period (X509_V_ERR_CERT_NOT_YET_VALID,
    X509_V_ERR_CERT_HAS_EXPIRED), which says nothing of who signed it."""
    reason = reason.lower()
    return "certificate is not yet valid" in reason or "certificate has expired" in reason


def discover(servers: tuple[str, ...], token: str, pins: tuple[str, ...],
             unsafe_skip_ca_verification: bool) -> ClusterInfo:
    """Prove the cluster's CA with ``token``; raises DiscoveryRefused or UpstreamUnavailable."""
    token_id, secret = bt.parse_token(token)
    data = _fetch(ApiClient(servers, None))
    kubeconfig = data[bt.KUBECONFIG_KEY]
    jws = data.get(bt.JWS_KEY_PREFIX + token_id)
    if not isinstance(jws, str):
        raise NotSignedYet(f"cluster-info has no signature for token id {token_id!r}: "
                               "the token is unknown or has expired")
    try:
        bt.verify_detached(jws, kubeconfig, token_id, secret)
    except bt.BadSignature as e:
        raise DiscoveryRefused(f"cluster-info's signature for token id {token_id!r} does not "
                               f"verify: {e}") from None
    try:
        server, ca_pem = parse_cluster(kubeconfig)
    except ValueError as e:
        raise DiscoveryRefused(f"cluster-info's kubeconfig: {e}") from None
    if ca_pem is None:
        raise DiscoveryRefused("cluster-info's kubeconfig holds no CA (certificate-authority-"
                               "data)")
    found = certs.ca_pins(ca_pem)
    if not found:
        raise DiscoveryRefused("cluster-info's CA is not a PEM certificate")
    if pins:
        if not set(found) & set(pins):
            raise DiscoveryRefused(f"the cluster CA's hash {found[0]} matches no "
                                   "discovery_token_ca_cert_hash")
    elif unsafe_skip_ca_verification:
        log.warning("trusting the cluster CA %s without a pin "
                    "(discovery_token_unsafe_skip_ca_verification)", found[0])
    else:
        raise DiscoveryRefused("no CA pin: set discovery_token_ca_cert_hash (sha256:... as "
                               f"kubeadm prints it; this CA's is {found[0]}) or, unsafely, "
                               "discovery_token_unsafe_skip_ca_verification")
    try:
        again = _fetch(ApiClient(servers, ca_context(ca_pem)))
    except NotSignedYet as e:  # readable a moment ago: not a race, a different answer
        raise DiscoveryRefused(str(e)) from None
    except IdentityError as e:
        if _out_of_dates(str(e)):
            # Signed by the pinned CA for all TLS can say, but not valid by this node's
            # clock: an edge node without a real-time clock joining before NTP synced.
            # Not a bad setting (exit 78, never restarted): the hub starts and tries again.
            raise UpstreamUnavailable(
                f"{e}: by this node's clock ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                "); is the clock behind (NTP not synced yet), or has the cluster's "
                "certificate expired?") from None
        raise DiscoveryRefused(f"the apiserver's certificate is not signed by the pinned CA: "
                               f"{e}") from None
    if again.get(bt.KUBECONFIG_KEY) != kubeconfig:
        raise DiscoveryRefused("cluster-info read over verified TLS differs from the signed "
                               "one")
    log.info("discovery: cluster CA %s verified with token id %s", found[0], token_id)
    return ClusterInfo(ca_pem, server)
