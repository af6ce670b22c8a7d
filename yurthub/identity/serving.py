"""The serving certificate of port 10268 and the TLS context that presents it.

The certificate comes from a CSR with signer ``kubernetes.io/kubelet-serving``, CN
``system:node:<node>``, O ``system:nodes``, and the names pods use for the apiserver: the
``default/kubernetes`` Service's ClusterIP, ``hub_serving_address``, the bind address and the
node IP, and ``kubernetes``, ``kubernetes.default``, ``kubernetes.default.svc``,
``kubernetes.default.svc.cluster.local``.  It is asked for with the hub's own client identity
and renewed like the client certificate (``manager.py``).

``ServingTLS.context()`` is the current server-side ``ssl.SSLContext``: rebuilt on every new
certificate, so a listener that looks it up for each accepted connection serves the new
certificate without a restart while established connections keep theirs.  Client
certificates signed by the cluster CA are verified when offered (never required).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from yurthub.config import Config
from yurthub.credentials import CredentialSource
from yurthub.errors import IdentityError, UpstreamUnavailable
from yurthub.identity.apiclient import ApiClient, status_message
from yurthub.identity.certs import CertInfo
from yurthub.identity.csr import SERVING_SIGNER, SERVING_USAGES, CertificateRequest
from yurthub.identity.manager import RETRYING

log = logging.getLogger(__name__)

KUBERNETES_DNS = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                  "kubernetes.default.svc.cluster.local")
KUBERNETES_SERVICE = "/api/v1/namespaces/default/services/kubernetes"


def node_ip(cfg: Config, servers: tuple[str, ...], resolve: bool = True) -> str:
    """``node_ip``, or the local address the kernel would use to reach the first server
    (without ``resolve``, "" when that needs DNS, which may block offline: the answer is
    then unknown, never another server's)."""
    if cfg.node_ip:
        return cfg.node_ip
    for url in servers:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not resolve:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return ""
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((host, parts.port or 443))  # no packet is sent for UDP connect
                return str(s.getsockname()[0])
        except OSError:
            continue
    return ""


def serving_ips(cfg: Config, cluster_ip: str, node: str) -> tuple[str, ...]:
    out: list[str] = []
    for ip in (cluster_ip, cfg.hub_serving_address, cfg.bind_address, node):
        if not ip:
            continue
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        # A certificate names an address without its zone (fe80::1%eth0 is fe80::1 there):
        # with the zone, a loaded certificate never matched and each start asked anew.
        shown = str(addr).partition("%")[0]
        if not addr.is_unspecified and shown not in out:
            out.append(shown)
    return tuple(out)


class ServingRenewal:
    """Asks for the serving certificate with the hub's client identity."""

    def __init__(self, cfg: Config, source: CredentialSource) -> None:
        self.cfg = cfg
        self.source = source
        self._cluster_ip = ""

    def _client(self) -> ApiClient:
        problem = self.source.identity_problem()
        if problem is not None:
            # The client certificate's own retry is its schedule, not this one's (which the
            # manager adds): readyz said "...; retrying in 8s; retrying in 4s".
            problem = problem.split(RETRYING)[0]
            raise IdentityError(f"waiting for the hub's client identity: {problem}")
        # The client certificate may rotate while a CSR waits: each request takes the
        # context of the moment, so the wait does not outlive the certificate it began with.
        return ApiClient(self.source.servers, lambda: self.source.ssl_context(True),
                         token=self.source.bearer_token())

    def request(self) -> CertificateRequest:
        if not self._cluster_ip:
            status, svc = self._client().request("GET", KUBERNETES_SERVICE)
            if status >= 500:
                raise UpstreamUnavailable(f"reading the kubernetes Service: "
                                          f"{status_message(status, svc)}")
            if status != 200 or not isinstance(svc, dict):
                raise IdentityError(f"reading the default/kubernetes Service: "
                                    f"{status_message(status, svc)}")
            self._cluster_ip = str((svc.get("spec") or {}).get("clusterIP") or "")
            log.info("serving certificate: the kubernetes Service's ClusterIP is %s",
                     self._cluster_ip or "(none)")
        ips = serving_ips(self.cfg, self._cluster_ip, node_ip(self.cfg, self.source.servers))
        return CertificateRequest(f"system:node:{self.cfg.node_name}", ("system:nodes",),
                                  SERVING_SIGNER, SERVING_USAGES, KUBERNETES_DNS, ips)

    def client(self, current_valid: Callable[[], bool]) -> ApiClient:
        return self._client()

    def unsatisfied(self, cert: CertInfo, resolve: bool = False) -> str | None:
        """A changed ``hub_serving_address``, ``bind_address``, node IP (``node_ip``, or the
        one detected: a node that got another address) or node name must reach the
        certificate pods check, not wait for its renewal (months away)."""
        if cert.common_name != f"system:node:{self.cfg.node_name}":
            return f"its subject is {cert.common_name}"
        if set(cert.organizations) != {"system:nodes"}:
            return f"its organizations are {', '.join(cert.organizations)}"
        if set(cert.dns_sans) != set(KUBERNETES_DNS):
            return f"its DNS names are {', '.join(cert.dns_sans)}"
        # The addresses the settings name and the node's; not the ClusterIP (it needs the
        # cloud), and a server's name is resolved only when asked (the manager's thread):
        # DNS may block, and this also runs as the worker starts, maybe offline
        node = node_ip(self.cfg, self.source.servers, resolve)
        missing = [ip for ip in serving_ips(self.cfg, "", node) if ip not in cert.ip_sans]
        return f"it lacks {', '.join(missing)}" if missing else None

    def rejected(self, e: Exception, current_valid: bool) -> None:
        raise IdentityError(f"the cloud refused the hub's request for a serving "
                            f"certificate: {e}") from e


class ServingTLS:
    """The current server-side context of 10268 (None until there is a certificate)."""

    def __init__(self, pair_file: str, ca_pem: Callable[[], bytes | None]) -> None:
        self.pair_file = pair_file
        self.ca_pem = ca_pem
        self._ctx: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def reload(self) -> None:
        """Build a context from the pair file (called on every new certificate)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pair_file)
        ctx.set_alpn_protocols(["http/1.1"])  # as YurtHub: no HTTP/2 on 10268
        ca = self.ca_pem()
        if ca:
            ctx.load_verify_locations(cadata=ca.decode("ascii", "replace"))
            ctx.verify_mode = ssl.CERT_OPTIONAL
        with self._lock:
            self._ctx = ctx

    def context(self) -> ssl.SSLContext | None:
        with self._lock:
            return self._ctx

    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        """``sock`` as a server-side TLS socket whose handshake has not run yet (the caller
        drives it), with the current certificate.  Raises ValueError while there is none
        (the worker then closes the connection)."""
        ctx = self.context()
        if ctx is None:
            raise ValueError("no serving certificate yet")
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
