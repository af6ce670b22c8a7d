"""Token bootstrap: the join token, the pinned CA and ``bootstrap-hub.conf``.

The join token comes from ``join_token``, ``join_token_file`` or ``bootstrap_file`` (a
kubeconfig holding one), or later from ``POST /v1/token``.  Discovery (``discovery.py``)
proves the cluster CA with it; then ``pki/ca.crt`` and ``bootstrap-hub.conf`` (server, CA
and token, 0600) are written, and later starts reuse them, as YurtHub does.  A bootstrap
file with a CA and no pins is trusted as given (an operator wrote it, as kubelet's
``--bootstrap-kubeconfig``); with pins, its token is used for discovery like any other.

The stored credential is reused only while it still answers the settings.  It is derived
again (discovery with the configured token) when ``server_addr`` no longer names the server
it was made for (the cloud moved: YurtHub's ``verifyServerAddrOrCleanup``), when its CA
matches none of the configured pins (the cluster's CA was replaced, and the operator gave the
new pin), or when the configured token is not the one it came from (an operator re-ran the
join with a fresh token; ``bootstrap-hub.given`` records a hash of the configured token each
store answered, so a token posted to ``/v1/token`` is not undone by the older one still in
the settings).  If the CA that discovery proves is not the stored one, the hub's certificates
belong to another cluster: they are removed and asked for again.  A new server whose
certificate verifies with the stored CA is the same cluster at a new address: the credential
follows it without discovery, and the certificates are kept, so a move needs no new token.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from yurthub.config import Config
from yurthub.errors import ConfigError, CredentialRejected, IdentityError, UpstreamUnavailable
from yurthub.identity import discovery
from yurthub.identity.apiclient import ApiClient, JsonClient
from yurthub.identity.certs import CertInfo, ca_pins
from yurthub.identity.csr import CLIENT_SIGNER, CLIENT_USAGES, CertificateRequest
from yurthub.identity.files import IdentityFiles
from yurthub.kube import bootstraptoken as bt

log = logging.getLogger(__name__)

NO_IDENTITY = ("the hub has no certificate and no join token: set join_token_file (or "
               'join_token, bootstrap_file), or POST {"jointoken": "..."} to /v1/token on '
               "the serve port")


@dataclass(frozen=True)
class BootstrapConfig:
    """What a bootstrap kubeconfig holds."""

    server: str
    ca_pem: bytes | None
    token: str


def kubeconfig_text(server: str, ca_pem: bytes | None, *, token: str = "",
                    pair_file: str = "") -> str:
    """A kubeconfig (YAML) for ``server`` with a bearer token or a client certificate pair."""
    cluster: dict[str, str] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    user: dict[str, str] = {}
    if token:
        user["token"] = token
    if pair_file:
        user["client-certificate"] = pair_file
        user["client-key"] = pair_file
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "yurthub",
           "clusters": [{"name": "cluster", "cluster": cluster}],
           "users": [{"name": "yurthub", "user": user}],
           "contexts": [{"name": "yurthub", "context": {"cluster": "cluster",
                                                        "user": "yurthub"}}]}
    return str(yaml.safe_dump(doc, default_flow_style=False, sort_keys=False))


def canonical_token(token: str) -> str:
    """``<id>.<secret>`` without the whitespace around it (a file's newline, ``jq
    --rawfile``): what is stored and sent, since a bearer token with a newline is not a
    valid header value.  ValueError (without the secret) when it is not a token."""
    token_id, secret = bt.parse_token(token)
    return f"{token_id}.{secret}"


def _read_text(path: str) -> str:
    """A file as text; bytes that are not UTF-8 become U+FFFD (then refused as no token)."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def parse_bootstrap_kubeconfig(text: str, source: str, base: str = "") -> BootstrapConfig:
    """Raises ConfigError naming ``source`` (never the token) when it is not usable.
    A relative ``tokenFile`` is found beside the kubeconfig (in ``base``), as kubectl and
    kubelet find it."""
    try:
        doc = yaml.safe_load(text)
        server, ca_pem = discovery.parse_cluster(text)
        users = doc.get("users") or []
        user = (users[0].get("user") or {}) if users else {}
    except (ValueError, AttributeError, TypeError, yaml.YAMLError, RecursionError):
        raise ConfigError(f"{source}: not a bootstrap kubeconfig") from None
    token = str(user.get("token") or "")
    if not token and user.get("tokenFile"):
        try:
            token = _read_text(os.path.join(base, str(user["tokenFile"]))).strip()
        except OSError as e:
            raise ConfigError(f"{source}: cannot read its tokenFile: {e.strerror}") from None
    try:
        token = canonical_token(token)
    except ValueError as e:
        raise ConfigError(f"{source}: its user holds no bootstrap token: {e}") from None
    return BootstrapConfig(server, ca_pem, token)


def _host(url: str) -> str:
    """host:port of a server URL, as YurtHub compares them (``url.URL.Host``)."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return url


def _fingerprint(given: BootstrapConfig) -> str:
    """What ``bootstrap-hub.given`` holds of a configured token (never the token itself)."""
    h = hashlib.sha256()
    for part in (given.token.encode(), given.server.encode(), given.ca_pem or b""):
        h.update(len(part).to_bytes(4, "big") + part)
    return h.hexdigest()


class Bootstrap:
    """The bootstrap credential: discovery once, then ``bootstrap-hub.conf``."""

    def __init__(self, cfg: Config, files: IdentityFiles, servers: tuple[str, ...]) -> None:
        self.cfg = cfg
        self.files = files
        self.servers = servers
        self.token_changed = threading.Event()
        # called after a new CA replaced another: the hub's certificates were removed
        self.on_ca_change: Callable[[], None] = lambda: None
        self._lock = threading.Lock()

    def configured_token(self) -> BootstrapConfig | None:
        """The join token of the settings (with the bootstrap file's CA), or None."""
        cfg = self.cfg
        if cfg.bootstrap_file:
            try:
                text = _read_text(cfg.bootstrap_file)
            except OSError as e:
                raise ConfigError(f"bootstrap_file = {cfg.bootstrap_file!r}: cannot read: "
                                  f"{e.strerror}") from None
            return parse_bootstrap_kubeconfig(
                text, f"bootstrap_file = {cfg.bootstrap_file!r}",
                os.path.dirname(os.path.abspath(cfg.bootstrap_file)))
        token = cfg.join_token
        if cfg.join_token_file:
            try:
                token = _read_text(cfg.join_token_file).strip()
            except OSError as e:
                raise ConfigError(f"join_token_file = {cfg.join_token_file!r}: cannot read: "
                                  f"{e.strerror}") from None
            try:
                token = canonical_token(token)
            except ValueError as e:
                raise ConfigError(f"join_token_file = {cfg.join_token_file!r}: {e}") from None
        return BootstrapConfig("", None, token) if token else None

    def stored(self) -> BootstrapConfig | None:
        data = self.files.read(self.files.bootstrap_conf)
        if data is None:
            return None
        try:
            return parse_bootstrap_kubeconfig(data.decode("utf-8", "replace"),
                                              self.files.bootstrap_conf)
        except ConfigError as e:
            log.warning("%s; bootstrapping again", e)
            return None

    def outdated(self, stored: BootstrapConfig | None,
                 given: BootstrapConfig | None) -> str | None:
        """Why a stored credential no longer answers the settings (None: it does)."""
        if stored is None or not stored.ca_pem:
            return None
        if self._moved(stored):
            return (f"server_addr no longer names {stored.server}, the server the hub's "
                    "identity was made for")
        pins = set(self.cfg.discovery_token_ca_cert_hash)
        if pins and not pins & set(ca_pins(stored.ca_pem)):
            # the cluster's CA was replaced and the operator gave its new pin
            return "the stored cluster CA matches no discovery_token_ca_cert_hash"
        if given is not None and self._is_new(given, stored):
            return "the configured join token is not the one the hub's identity came from"
        return None

    def _moved(self, stored: BootstrapConfig) -> bool:
        hosts = {_host(s) for s in self.servers}
        return bool(hosts) and _host(stored.server) not in hosts

    def _relocated(self, stored: BootstrapConfig) -> BootstrapConfig:
        """A stored credential whose server moved, for the new server when that one's
        certificate verifies with the stored CA (the same cluster at a new address: no
        token needed, none spent); else as it was.  An unreachable server proves nothing."""
        assert stored.ca_pem is not None
        try:
            ApiClient(self.servers, discovery.ca_context(stored.ca_pem)).request(
                "GET", "/version")
        except (IdentityError, UpstreamUnavailable):
            return stored
        moved = BootstrapConfig(self.servers[0], stored.ca_pem, stored.token)
        try:
            self.files.write(self.files.bootstrap_conf, kubeconfig_text(
                moved.server, moved.ca_pem, token=moved.token).encode())
        except OSError as e:
            raise IdentityError(f"cannot store the bootstrap credential in "
                                f"{self.files.root}: {e.strerror or e}") from None
        log.info("the cluster moved from %s to %s (its certificate verifies with the hub's "
                 "CA): the hub keeps its identity", stored.server, moved.server)
        return moved

    def _is_new(self, given: BootstrapConfig, stored: BootstrapConfig) -> bool:
        recorded = self.files.read(self.files.bootstrap_given)
        if recorded is None:  # a store from before the record: judge by the token alone
            return given.token != stored.token
        return recorded.strip().decode("ascii", "replace") != _fingerprint(given)

    def _record(self, given: BootstrapConfig | None) -> None:
        """Remember which configured token the store answered (None: no token configured)."""
        if given is None:
            self.files.remove(self.files.bootstrap_given)
        else:
            self.files.write(self.files.bootstrap_given, _fingerprint(given).encode() + b"\n")

    def configured_quietly(self) -> BootstrapConfig | None:
        return self._configured_beside(self.stored())

    def _configured_beside(self, stored: BootstrapConfig | None) -> BootstrapConfig | None:
        """The configured token; with a usable store, a token file that cannot be read (one
        removed after the join) is a WARNING and no token, not a refusal."""
        if stored is None or not stored.ca_pem:
            return self.configured_token()
        try:
            return self.configured_token()
        except ConfigError as e:
            log.warning("%s; the stored bootstrap credential is kept", e)
            return None

    def ensure(self) -> BootstrapConfig:
        """The stored bootstrap credential, after discovery with the configured token if
        there is none yet or it no longer answers the settings (``outdated``).  Raises
        ConfigError (no token, DiscoveryRefused), IdentityError (it cannot be stored) or
        UpstreamUnavailable."""
        with self._lock:
            stored = self.stored()
            given = self._configured_beside(stored)
            if stored is not None and stored.ca_pem and self._moved(stored):
                stored = self._relocated(stored)
            reason = self.outdated(stored, given)
            if stored is not None and stored.ca_pem:
                if reason is None:
                    return stored
                if given is None:
                    log.warning("%s, and no join token is configured: the hub keeps it (the "
                                "cloud's certificate must verify with the CA it has); to join "
                                "another cluster, set join_token_file or POST a join token to "
                                "/v1/token", reason)
                    return stored
                log.info("%s: bootstrapping again with the configured join token", reason)
            if given is None:
                raise ConfigError(NO_IDENTITY)
            conf = self._adopt(given)
            self._stored_given(given)
            return conf

    def _stored_given(self, given: BootstrapConfig | None) -> None:
        try:
            self._record(given)
        except OSError as e:
            raise IdentityError(f"cannot store the bootstrap credential in "
                                f"{self.files.root}: {e.strerror or e}") from None

    def update_token(self, token: str) -> BootstrapConfig:
        """``POST /v1/token``: discovery with a new token, then store it."""
        try:
            token = canonical_token(token)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        with self._lock:
            conf = self._adopt(BootstrapConfig("", None, token), force_discovery=True)
            # the token in the settings (if any) is older than this one: not new at a restart
            try:
                given = self.configured_token()
            except ConfigError:
                given = None
            self._stored_given(given)
        self.token_changed.set()
        return conf

    def _adopt(self, given: BootstrapConfig, force_discovery: bool = False) -> BootstrapConfig:
        cfg = self.cfg
        servers = self.servers or ((given.server,) if given.server else ())
        if given.ca_pem and not cfg.discovery_token_ca_cert_hash and not force_discovery:
            ca_pem = given.ca_pem
            log.info("using the CA of bootstrap_file %s", cfg.bootstrap_file)
        else:
            info = discovery.discover(servers, given.token, cfg.discovery_token_ca_cert_hash,
                                      cfg.discovery_token_unsafe_skip_ca_verification)
            ca_pem = info.ca_pem
        conf = BootstrapConfig(servers[0], ca_pem, given.token)
        self.files.prepare()
        try:
            ca_changed = self._drop_certificates_of_another_ca(ca_pem)
            self.files.write(self.files.ca, ca_pem)
            self.files.write(self.files.bootstrap_conf, kubeconfig_text(
                conf.server, ca_pem, token=given.token).encode())
        except OSError as e:
            raise IdentityError(f"cannot store the bootstrap credential in "
                                f"{self.files.root}: {e.strerror or e}") from None
        log.info("bootstrap credential stored in %s", self.files.bootstrap_conf)
        if ca_changed:
            self.on_ca_change()
        return conf

    def _drop_certificates_of_another_ca(self, ca_pem: bytes) -> bool:
        """Remove the hub's certificates when ``ca_pem`` is not the CA they were issued
        under (another cluster): the new cloud would refuse them, and pods would meet a
        serving certificate their CA does not sign.  True when they were removed."""
        old = self.files.read(self.files.ca)
        if old is None or set(ca_pins(old)) == set(ca_pins(ca_pem)):
            return False
        log.warning("the cluster's CA is not the one the hub's certificates were issued "
                    "under: they are removed and asked for again")
        for path in (self.files.client_pair, self.files.serving_pair, self.files.hub_conf):
            self.files.remove(path)
        return True

    def client(self) -> ApiClient:
        """An apiserver client authenticated by the bootstrap token."""
        conf = self.ensure()
        assert conf.ca_pem is not None
        return ApiClient(self.servers, discovery.ca_context(conf.ca_pem), token=conf.token)


class ClientRenewal:
    """The hub's client certificate: CN ``system:node:<node>``, O ``openyurt:yurthub``,
    ``system:nodes`` and ``hub_cert_organizations``; asked with the current certificate
    while it is valid, else with the bootstrap token (chosen at each request)."""

    def __init__(self, cfg: Config, files: IdentityFiles, bootstrap: Bootstrap,
                 servers: tuple[str, ...]) -> None:
        self.cfg = cfg
        self.files = files
        self.bootstrap = bootstrap
        self.servers = servers
        self._current_refused = False
        self._asking: _RenewalClient | None = None

    def request(self) -> CertificateRequest:
        orgs = ["openyurt:yurthub", "system:nodes"]
        orgs += [o for o in self.cfg.hub_cert_organizations if o not in orgs]
        return CertificateRequest(f"system:node:{self.cfg.node_name}", tuple(orgs),
                                  CLIENT_SIGNER, CLIENT_USAGES)

    def client(self, current_valid: Callable[[], bool]) -> JsonClient:
        # A certificate the cloud refused while valid is not offered again in this
        # renewal; the one the renewal brings is tried at the next.
        refused, self._current_refused = self._current_refused, False
        self._asking = _RenewalClient(self, current_valid, refused)
        return self._asking

    def current_client(self) -> ApiClient:
        ca = self.files.read(self.files.ca) or b""
        ctx = discovery.ca_context(ca)
        ctx.load_cert_chain(self.files.client_pair)
        return ApiClient(self.servers, ctx)

    def bootstrap_client(self) -> ApiClient:
        self.bootstrap.token_changed.clear()
        try:
            return self.bootstrap.client()
        except ConfigError as e:
            # a configured token the cloud refuses (DiscoveryRefused) while the hub runs:
            # readyz says it and the manager retries; it must not end the manager's thread
            raise IdentityError(str(e)) from None

    def unsatisfied(self, cert: CertInfo, resolve: bool = False) -> str | None:
        """Always None: a client certificate of another node (a renamed node) is asked
        for with a new join, not with this node's certificate."""
        return None

    def rejected(self, e: CredentialRejected, current_valid: bool) -> None:
        if self._asking is not None and self._asking.used_current:
            self._current_refused = True  # next try: the bootstrap token
            log.warning("the cloud refused the hub's certificate (%s); bootstrapping again", e)
            return
        raise IdentityError(f"the bootstrap token was refused ({e}): it has expired or was "
                            "deleted; POST {\"jointoken\": \"<new token>\"} to /v1/token on "
                            "the serve port") from e



class _RenewalClient:
    """One renewal's requests: with the hub's certificate while it is valid, then with the
    bootstrap token, chosen at each request.  A request whose approval outlasts the
    certificate is still polled, and its certificate collected, with the token: it is not
    abandoned for a new one (the operator approved the one they saw pending)."""

    def __init__(self, renewal: ClientRenewal, current_valid: Callable[[], bool],
                 refused: bool) -> None:
        self._renewal = renewal
        self._valid = current_valid
        self._refused = refused
        self._clients: dict[bool, ApiClient] = {}
        self.used_current = False

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        current = not self._refused and self._valid()
        status, doc = self._send(current, method, path, body)
        if current and status == 401:
            # Valid by the node's clock, refused by the cloud's: a request in the
            # certificate's last moment, or a node clock behind the cloud's.  The same
            # request again with the token (a 401 changed nothing), so a request already
            # pending is still the one polled; the token's own refusal is final.
            log.info("the hub's certificate is over by the cloud's clock; asking with the "
                     "bootstrap token")
            self._refused = True
            status, doc = self._send(False, method, path, body)
        return status, doc

    def _send(self, current: bool, method: str, path: str, body: Any) -> tuple[int, Any]:
        client = self._clients.get(current)
        if client is None:
            renewal = self._renewal
            client = renewal.current_client() if current else renewal.bootstrap_client()
            self._clients[current] = client
        self.used_current = current
        return client.request(method, path, body)
