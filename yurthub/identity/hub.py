"""The hub's identity, composed from the settings: who it is towards the cloud and to pods.

``bootstrap_mode`` picks the client identity: ``credentials`` (a kubeconfig or files, as
given), ``kubeletcertificate`` (kubelet's rotating certificate) or ``token`` (bootstrap token,
discovery, CSRs and rotation, state under ``root_dir``).  With ``secure_proxy_port`` set, a
serving certificate for 10268 is kept too.  ``preflight`` runs before gunicorn starts (in the
master): it refuses a cluster-info that cannot be trusted with one line, and bootstraps when it
can; the worker's ``HubIdentity`` then only loads, waits and renews.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from typing import Any, Protocol

from yurthub.config import Config
from yurthub.credentials import CredentialSource, CredentialStore
from yurthub.errors import ConfigError, IdentityFileError, UpstreamUnavailable
from yurthub.identity import certs, discovery
from yurthub.identity.bootstrap import NO_IDENTITY, Bootstrap, ClientRenewal, kubeconfig_text
from yurthub.identity.files import IdentityFiles
from yurthub.identity.kubelet import KubeletIdentity
from yurthub.identity.manager import CertificateManager
from yurthub.identity.serving import ServingRenewal, ServingTLS

log = logging.getLogger(__name__)


class Startable(Protocol):
    def start(self) -> None: ...
    def stop(self, timeout: float = 10.0) -> None: ...


def token_servers(cfg: Config, bootstrap: Bootstrap) -> tuple[str, ...]:
    if cfg.server_addr:
        return cfg.server_addr
    for conf in (bootstrap.stored(), bootstrap.configured_token()):
        if conf is not None and conf.server:
            return (conf.server,)
    raise ConfigError("no apiserver: set server_addr (bootstrap_mode token)")


class TokenCredentials:
    """The CredentialSource of token mode: ``pki/ca.crt`` and the managed client pair."""

    def __init__(self, files: IdentityFiles, servers: tuple[str, ...],
                 manager: CertificateManager) -> None:
        self.files = files
        self._servers = servers
        self.manager = manager
        self._lock = threading.Lock()
        self._contexts: dict[tuple[int, bool], ssl.SSLContext] = {}
        self._ca_pem = b""

    @property
    def servers(self) -> tuple[str, ...]:
        return self._servers

    @property
    def insecure(self) -> bool:
        return False

    @property
    def client_cert_file(self) -> str:
        return self.files.client_pair if self.manager.current is not None else ""

    @property
    def ca_file(self) -> str:
        return self.files.ca

    @property
    def generation(self) -> int:
        return self.manager.generation

    def ssl_context(self, identity: bool) -> ssl.SSLContext:
        key = (self.manager.generation, identity and self.manager.valid())
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is None:
                ctx = discovery.ca_context(self._pinned_ca())
                if key[1]:
                    ctx.load_cert_chain(self.files.client_pair)
                self._contexts = {k: v for k, v in self._contexts.items() if k[0] == key[0]}
                self._contexts[key] = ctx
            return ctx

    def _pinned_ca(self) -> bytes:
        """``pki/ca.crt``; the CA read before when it is gone or empty since (with a warning):
        the cloud is verified against the pinned CA or not at all, never the system's CAs."""
        try:
            ca = self.files.read(self.files.ca)
        except IdentityFileError as e:
            log.warning("%s", e)
            ca = None
        if ca and ca.strip():
            self._ca_pem = ca
        elif self._ca_pem:
            log.warning("%s is gone or empty: the cloud is still verified against the CA "
                        "read from it before", self.files.ca)
        else:
            log.error("%s is gone or empty: the cloud cannot be verified (put the cluster's "
                      "CA back there, or empty %s to join again)", self.files.ca,
                      self.files.root)
        return self._ca_pem

    def bearer_token(self) -> str:
        return ""

    def identity_problem(self) -> str | None:
        return self.manager.problem()

    def certificate_summary(self) -> dict[str, Any] | None:
        return self.manager.summary()


class HubIdentity:
    """The client identity (``source``) and the serving certificate (``serving_tls``)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.mode = cfg.effective_bootstrap_mode
        self.files = IdentityFiles(cfg.root_dir)
        self.threads: list[Startable] = []
        self.bootstrap: Bootstrap | None = None
        self.client_manager: CertificateManager | None = None
        self._store: CredentialStore | None = None
        # before any certificate is loaded: loading one calls _client_changed
        self.serving_tls: ServingTLS | None = None
        self.serving_manager: CertificateManager | None = None
        if self.mode == "token" or cfg.secure_proxy_port:
            self.files.prepare()
        self.source: CredentialSource
        if self.mode == "credentials":
            self._store = CredentialStore(cfg)
            creds = self._store.load()
            self.source = creds
            ca_file = creds.ca_file
            self._ca = lambda: _read(ca_file) if ca_file else None
        elif self.mode == "kubeletcertificate":
            kubelet = KubeletIdentity(cfg)
            self.source = kubelet
            self.threads.append(kubelet)
            self._ca = lambda: kubelet.ca_pem
        else:
            self.bootstrap = Bootstrap(cfg, self.files, cfg.server_addr)
            self.bootstrap.on_ca_change = self._ca_changed
            servers = token_servers(cfg, self.bootstrap)
            self.bootstrap.servers = servers
            manager = CertificateManager(
                "client", self.files, self.files.client_pair,
                ClientRenewal(cfg, self.files, self.bootstrap, servers),
                on_change=self._client_changed)
            self.client_manager = manager
            self.source = TokenCredentials(self.files, servers, manager)
            check_ca(self.files, self.bootstrap)
            manager.load()
            self.threads.append(manager)
            self._ca = lambda: self.files.read(self.files.ca)
        if cfg.secure_proxy_port:
            self.serving_tls = ServingTLS(self.files.serving_pair, self._ca)
            self.serving_manager = CertificateManager(
                "serving", self.files, self.files.serving_pair,
                ServingRenewal(cfg, self.source), on_change=self.serving_tls.reload)
            self.serving_manager.load()
            self.threads.append(self.serving_manager)

    def _client_changed(self) -> None:
        """A new client certificate: keep ``yurthub.conf`` (for operators' kubectl) in step."""
        ca = self.files.read(self.files.ca)
        server = self.source.servers[0] if getattr(self, "source", None) else ""
        if server:
            text = kubeconfig_text(server, ca, pair_file=self.files.client_pair).encode()
            try:
                # The pair file's path is in it, not the pair: a start or a rotation
                # normally finds it unchanged and writes nothing.
                if self.files.read(self.files.hub_conf) != text:
                    self.files.write(self.files.hub_conf, text)
            except OSError as e:
                # A convenience for operators: a full disk must not stop the hub.
                log.warning("cannot write %s: %s", self.files.hub_conf, e.strerror or e)
            except IdentityFileError as e:
                log.warning("%s", e)
        if self.serving_manager is not None and not self.serving_manager.valid():
            self.serving_manager.wake()  # it was waiting for this identity

    def _ca_changed(self) -> None:
        """A join proved another cluster's CA: the certificates of the old one are gone."""
        for manager in (self.client_manager, self.serving_manager):
            if manager is not None:
                manager.discard("the cluster's CA changed")

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        for t in self.threads:
            t.stop()
        if self._store is not None:
            self._store.close()

    def certificates(self) -> list[tuple[str, float, float | None]]:
        """(which, expires at, renewal due at) of each certificate installed, epoch seconds;
        the renewal of kubelet's certificate is kubelet's (None)."""
        out: list[tuple[str, float, float | None]] = []
        for manager in (self.client_manager, self.serving_manager):
            if manager is not None and manager.current is not None:
                out.append((manager.label, manager.current.not_after, manager.deadline))
        if isinstance(self.source, KubeletIdentity) and self.source.certificate is not None:
            out.append(("client", self.source.certificate.not_after, None))
        return out

    def problem(self) -> str | None:
        """None when the hub can act as itself (and serve 10268), else what it waits for."""
        return next((why for _, why in self.checks() if why is not None), None)

    def checks(self) -> list[tuple[str, str | None]]:
        """readyz's identity checks, (name, None or what it waits for): both certificates
        can be missing at once (an expired client one stops the serving one's renewal)."""
        out = [("identity", self.source.identity_problem())]
        if self.serving_manager is not None:
            out.append(("serving-certificate", self.serving_manager.problem()))
        return out

    def update_token(self, token: str) -> None:
        """``POST /v1/token``: adopt a new join token and bootstrap with it now.

        Raises ConfigError (not token mode, a bad token, a cluster-info that does not
        verify) or UpstreamUnavailable."""
        if self.bootstrap is None or self.client_manager is None:
            raise ConfigError(f"bootstrap_mode is {self.mode}: the hub takes no join token")
        self.bootstrap.update_token(token)
        self.client_manager.wake()


def check_ca(files: IdentityFiles, bootstrap: Bootstrap) -> None:
    """The pinned CA, when there is one, must be a certificate: TLS contexts are built from
    it both ways (the cloud's and 10268's clients'), and could only fail with a traceback.
    Damaged, or gone beside the hub's certificate (a power cut, a cleanup by hand), it is
    written again from the bootstrap kubeconfig, which holds the same CA, pinned at the same
    discovery: gone, the cloud was verified against the system's CAs, failed, and the hub
    served from its cache for good; damaged, the hub did not start at all, offline too.

    Altered but still a certificate (a CA copied there by hand, another cluster's) and
    without the joined CA among its certificates, it is no longer the CA the join proved
    (bootstrap-hub.conf keeps that one, written with it): the cloud was verified against
    it and called unhealthy for good, or a server of that CA's trusted.  It is written
    again the same way; whether the joined CA still answers the configured pins is the
    bootstrap's question (a replaced cluster CA joins again).  A bundle that holds the
    joined CA and others (a CA rotation the operator began) is left as it is.

    Raises ConfigError naming the file when nothing holds the CA."""
    ca = files.read(files.ca)
    stored = None
    if ca is None:
        if files.read(files.client_pair) is None:
            return  # nothing to verify yet: a join proves the CA and writes it
        what = "is missing beside the hub's certificate"
    elif not certs.ca_pins(ca):
        what = "holds no CA certificate"
    else:
        stored = bootstrap.stored()
        joined = set(certs.ca_pins(stored.ca_pem)) if stored and stored.ca_pem else set()
        if not joined or joined <= set(certs.ca_pins(ca)):
            return  # (a bundle with it: a CA rotation the operator began is kept)
        what = "holds another CA than the one the join proved"
    stored = stored or bootstrap.stored()
    if stored is None or not stored.ca_pem or not certs.ca_pins(stored.ca_pem):
        raise ConfigError(f"root_dir: {files.ca!r} {what}: put the cluster's CA back there, "
                          f"or empty {files.root!r} to join again")
    try:
        files.write(files.ca, stored.ca_pem)
    except OSError as e:
        raise ConfigError(f"root_dir: {files.ca!r} {what} and cannot be written again: "
                          f"{e.strerror or e}") from None
    log.warning("%s %s: written again from %s, which holds the CA pinned at the join",
                files.ca, what, files.bootstrap_conf)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def check(cfg: Config) -> None:
    """What preflight refuses without the network and without writing anything: a server
    to reach, and credentials to reach it with (in token mode a certificate of the hub's or
    a join token).  ``check-config`` runs it, as the start does before preflight, so a
    configuration the service would refuse is refused there too.  Raises ConfigError."""
    mode = cfg.effective_bootstrap_mode
    if mode == "credentials":
        store = CredentialStore(cfg)
        try:
            store.load()
        finally:
            store.close()
    elif mode == "kubeletcertificate":
        KubeletIdentity(cfg)
    else:
        files = IdentityFiles(cfg.root_dir)
        bootstrap = Bootstrap(cfg, files, cfg.server_addr)
        token_servers(cfg, bootstrap)
        stored = bootstrap.stored()
        if files.read(files.client_pair) is None and not (stored and stored.ca_pem) \
                and bootstrap.configured_token() is None:
            raise ConfigError(NO_IDENTITY)


def preflight(cfg: Config) -> None:
    """Before the ports open, after ``check``: in token mode, bootstrap if needed.

    Raises ConfigError (one line, exit 78 under systemd) for a token or cluster-info that
    cannot be trusted; an unreachable cloud only logs a WARNING (the worker keeps trying).
    """
    mode = cfg.effective_bootstrap_mode
    files = IdentityFiles(cfg.root_dir)
    if mode != "token":
        if cfg.secure_proxy_port:
            files.prepare()
        return
    # Nothing is written before discovery has proven the CA: a refused token leaves no trace.
    bootstrap = Bootstrap(cfg, files, cfg.server_addr)
    bootstrap.servers = token_servers(cfg, bootstrap)
    check_ca(files, bootstrap)
    pair = files.read(files.client_pair)
    valid = False
    if pair is not None:
        try:
            valid = not certs.load_pair(pair)[1].expired(time.time())
            # valid or expired, the worker starts with it (offline start), unless the
            # bootstrap credential no longer answers the settings (a moved server, a new
            # join token): then it is derived again now, while the operator watches
            if bootstrap.outdated(bootstrap.stored(), bootstrap.configured_quietly()) is None:
                return
        except certs.CertificateError as e:
            log.warning("%s: %s", files.client_pair, e)
    try:
        # a working node does not wait for a new token's signature: it goes on (below)
        _ensure_waiting(bootstrap, 0 if valid else cfg.discovery_timeout)
    except UpstreamUnavailable as e:
        log.warning("cannot bootstrap now (%s); the hub starts and keeps trying", e)
    except ConfigError as e:
        if not valid or isinstance(e, IdentityFileError):
            raise
        # a node that works must not stop for a bad new token: it keeps its certificate
        log.warning("%s; the hub goes on with its certificate, valid until it expires", e)


DISCOVERY_INTERVAL = 5.0  # kubeadm's discovery retry interval
_TELL_EVERY = 30.0


def _ensure_waiting(bootstrap: Bootstrap, timeout: int) -> None:
    """``bootstrap.ensure()``, asked again every 5 s for ``timeout`` seconds while
    cluster-info is not readable or not signed for the token id yet (kubeadm's join does:
    the bootstrap signer patches the signature in after the token's Secret appears).  A
    signature that does not verify or a CA pin that does not match is refused at once."""
    deadline = time.monotonic() + timeout
    told = -_TELL_EVERY
    while True:
        try:
            bootstrap.ensure()
            return
        except discovery.NotSignedYet as e:
            now = time.monotonic()
            if now >= deadline:
                if timeout <= 0:
                    raise
                raise discovery.DiscoveryRefused(
                    f"{e} (asked for {timeout} s: discovery_timeout)") from None
            if now - told >= _TELL_EVERY:
                log.warning("%s; asking again for up to %d s more (discovery_timeout)",
                            e, int(deadline - now + 0.5))
                told = now
            _extend_start_timeout(DISCOVERY_INTERVAL + 60)
            time.sleep(min(DISCOVERY_INTERVAL, max(deadline - now, 0.0)))


def _extend_start_timeout(seconds: float) -> None:
    """Under systemd (Type=notify), tell it the start is still under way, so the wait is
    not cut by TimeoutStartSec (90 s by default): EXTEND_TIMEOUT_USEC."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}".encode(), addr)
    except OSError as e:
        log.debug("cannot notify systemd: %s", e)
