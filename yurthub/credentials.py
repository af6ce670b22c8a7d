"""The hub's own identity towards the cloud: servers, CA, client certificate and bearer token.

They come from the settings (``ca_file``, ``client_cert_file``/``client_key_file``,
``token_file``) or from a kubeconfig; explicit settings win over the kubeconfig.  Inline
``*-data`` fields of a kubeconfig are written to a private directory (0700, files 0600)
because Python's ssl module loads certificates only from files.  Secrets never reach a log.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import logging
import os
import re
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Protocol

import yaml
from cryptography import x509

from yurthub.config import Config
from yurthub.configvalues import server_addrs
from yurthub.errors import ConfigError
from yurthub.redact import redact_userinfo

log = logging.getLogger(__name__)


class CredentialSource(Protocol):
    """What upstream.py needs of the hub's identity towards the cloud.

    ``generation`` changes whenever the contexts change (a rotated certificate): upstream
    then builds new connection pools, so new connections present the new certificate while
    open ones (watches) go on with the old until they end.
    """

    @property
    def servers(self) -> tuple[str, ...]:
        """The apiserver URLs."""

    @property
    def insecure(self) -> bool:
        """True when the apiserver's certificate is not verified (testing only)."""

    @property
    def generation(self) -> int:
        """Bumped on every change of the TLS contexts."""

    def ssl_context(self, identity: bool) -> ssl.SSLContext:
        """The CA (and, with ``identity``, the hub's client certificate when it has one)."""

    def bearer_token(self) -> str:
        """The hub's bearer token ("" when it authenticates by certificate only)."""

    def identity_problem(self) -> str | None:
        """None while the hub can act as itself; otherwise why not (for 503s and readyz)."""


def tls_context(ca_file: str = "", cert_file: str = "", key_file: str = "", *,
                insecure: bool = False, cadata: str = "") -> ssl.SSLContext:
    """A client context for urllib3: the CA (or the system's), optionally a certificate and
    key.  urllib3 checks the host name itself (1.26 passes no server_hostname for an IP
    address, which a context that checks host names refuses), so the context does not.

    Raises OSError or ssl.SSLError for files that cannot be used.
    """
    ctx = ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_file or cadata:
        ctx = ssl.create_default_context(cafile=ca_file or None, cadata=cadata or None)
    ctx.check_hostname = False
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx


MAX_TOKEN_BYTES = 64 << 10


def read_bearer_token(path: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace dropped, as client-go does).

    Raises OSError, or ValueError (never quoting the file) when it is not one token: bytes
    other than printable ASCII inside it would make an invalid Authorization header.
    """
    with open(path, "rb") as fh:
        token = fh.read(MAX_TOKEN_BYTES + 1)  # bounded: a device or a log is not a token
    if len(token) > MAX_TOKEN_BYTES:
        raise ValueError(f"larger than {MAX_TOKEN_BYTES} bytes, not one bearer token")
    token = token.strip()
    if not token:
        raise ValueError("it is empty")
    if any(b < 0x21 or b > 0x7E for b in token):
        raise ValueError("not one bearer token (a single word of printable ASCII)")
    return token.decode("ascii")


@dataclass(frozen=True)
class Credentials:
    """Explicit credentials (flags or a kubeconfig): a CredentialSource that never changes."""

    servers: tuple[str, ...]
    ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    token_file: str = ""
    token: str = ""
    insecure: bool = False
    # the end of the client certificate (epoch seconds; 0: none, or not readable): an
    # expired one is no longer presented, so that the cloud is not taken to be down
    cert_not_after: float = 0.0
    cert_source: str = ""  # what to name it by (a flag's file, or the kubeconfig's data)
    _contexts: dict[bool, ssl.SSLContext] = dataclasses.field(
        default_factory=dict, compare=False, repr=False)
    # the token file's last good token, and the last problem logged (a request each)
    _file: dict[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def _cert_expired(self) -> bool:
        return bool(self.cert_not_after) and time.time() >= self.cert_not_after

    @property
    def generation(self) -> int:
        # 1 once the certificate has expired: upstream then builds pools without it
        return int(self._cert_expired())

    def ssl_context(self, identity: bool) -> ssl.SSLContext:
        present = identity and bool(self.client_cert_file) and not self._cert_expired()
        ctx = self._contexts.get(present)
        if ctx is None:
            ctx = tls_context(self.ca_file, self.client_cert_file if present else "",
                              self.client_key_file, insecure=self.insecure)
            self._contexts[present] = ctx
        return ctx

    def identity_problem(self) -> str | None:
        """Why the hub cannot act as itself: its only credential, a client certificate,
        has expired (a bearer token, when there is one, still serves)."""
        if self._cert_expired() and not (self.token or self.token_file):
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.cert_not_after))
            return (f"the client certificate ({self.cert_source}) expired at {when}; give "
                    "the hub a new one and restart it")
        return None

    def bearer_token(self) -> str:
        """The current bearer token; a token file is re-read so rotation needs no restart.

        A file that cannot be read or holds no token keeps the last good one in use (as
        client-go's cached token source does), with a WARNING when the problem appears."""
        if not self.token_file:
            return self.token
        try:
            token = read_bearer_token(self.token_file)
        except (OSError, ValueError) as e:
            problem = getattr(e, "strerror", None) or str(e)
            last = self._file.get("token", "")
            if self._file.get("problem") != problem:
                self._file["problem"] = problem
                log.warning("cannot use token_file %s: %s%s", self.token_file, problem,
                            "; the last good token stays in use" if last else "")
            return last
        self._file.pop("problem", None)
        self._file["token"] = token
        return token


class CredentialStore:
    """Loads Credentials and owns the private directory that inline kubeconfig data needs."""

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._tmpdir = ""
        self._inline: dict[str, str] = {}  # private file -> what it came from, for messages

    def load(self) -> Credentials:
        """Read the kubeconfig (if any) and the settings; check that every file can be used.

        Raises ConfigError naming the file and what is wrong with it.
        """
        cfg = self._cfg
        kc: dict[str, Any] = self._kubeconfig(cfg.kubeconfig) if cfg.kubeconfig else {}
        servers = cfg.server_addr
        if not servers and kc.get("server"):
            try:  # the same URLs as server_addr: no user info, query or fragment
                servers = server_addrs(kc["server"])
            except ValueError as e:
                raise ConfigError(f"kubeconfig {cfg.kubeconfig}: its server {e}") from None
        if not servers:
            raise ConfigError("no apiserver: set server_addr (--server-addr or the config file) "
                              "or kubeconfig to a kubeconfig naming a server")
        creds = Credentials(
            servers=tuple(s.rstrip("/") for s in servers),
            ca_file=cfg.ca_file or kc.get("ca_file", ""),
            client_cert_file=cfg.client_cert_file or kc.get("client_cert_file", ""),
            client_key_file=cfg.client_key_file or kc.get("client_key_file", ""),
            token_file=cfg.token_file or kc.get("token_file", ""),
            token="" if cfg.token_file else kc.get("token", ""),
            insecure=cfg.insecure_skip_tls_verify or bool(kc.get("insecure", False)),
        )
        _check_tls_files(creds, self._inline)
        if creds.client_cert_file:
            source = self._inline.get(creds.client_cert_file,
                                      f"client_cert_file = {creds.client_cert_file!r}")
            creds = dataclasses.replace(creds, cert_source=source,
                                        cert_not_after=_not_after(creds.client_cert_file))
            if creds.identity_problem():
                log.warning("%s", creds.identity_problem())
        return creds

    def close(self) -> None:
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = ""

    def _private_file(self, name: str, data: bytes) -> str:
        try:
            if not self._tmpdir:
                self._tmpdir = tempfile.mkdtemp(prefix="yurthub-credentials-")
                os.chmod(self._tmpdir, 0o700)
            path = os.path.join(self._tmpdir, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except OSError as e:
            raise ConfigError(f"kubeconfig = {self._cfg.kubeconfig!r}: cannot write its inline "
                              f"{name} to a private temporary file: {e.strerror}") from None
        return path

    def _kubeconfig(self, path: str) -> dict[str, Any]:
        try:
            with open(path, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh)
        except OSError as e:
            raise ConfigError(f"kubeconfig = {path!r}: cannot read: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"kubeconfig = {path!r}: not a kubeconfig (not UTF-8 text)") \
                from None
        except RecursionError:
            raise ConfigError(f"kubeconfig = {path!r}: not a kubeconfig (nested too deeply)") \
                from None
        except yaml.YAMLError as e:
            first = str(e).splitlines()[0]
            raise ConfigError(f"kubeconfig = {path!r}: not valid YAML: {first}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig = {path!r}: not a kubeconfig")
        base = os.path.dirname(os.path.abspath(path))
        try:
            cluster, user = _current(doc)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"kubeconfig = {path!r}: {e}") from None
        problem = _mistyped(cluster, user)
        if problem:
            raise ConfigError(f"kubeconfig = {path!r}: {problem}")
        out: dict[str, Any] = {"server": cluster.get("server", "")}
        if cluster.get("proxy-url"):
            # why: client-go would go through it; going around it unsaid left a node behind
            # a proxy with a cloud that never answered and nothing in the log.
            log.warning("kubeconfig = %r: its proxy-url %s is not used: yurthub reaches the "
                        "cloud through HTTPS_PROXY and NO_PROXY from its environment",
                        path, redact_userinfo(str(cluster["proxy-url"])))
        out["insecure"] = cluster.get("insecure-skip-tls-verify", False) is True
        for key, data_key, attr, fname in (
            ("certificate-authority", "certificate-authority-data", "ca_file", "ca.crt"),
            ("client-certificate", "client-certificate-data", "client_cert_file", "client.crt"),
            ("client-key", "client-key-data", "client_key_file", "client.key"),
        ):
            src = cluster if attr == "ca_file" else user
            if src.get(data_key):
                try:
                    raw = base64.b64decode(src[data_key], validate=True)
                except (binascii.Error, ValueError):
                    raise ConfigError(f"kubeconfig = {path!r}: {data_key} is not base64") from None
                out[attr] = self._private_file(fname, raw)
                self._inline[out[attr]] = f"kubeconfig = {path!r}: its {data_key}"
            elif src.get(key):
                out[attr] = os.path.join(base, src[key])
        if user.get("tokenFile"):
            out["token_file"] = os.path.join(base, user["tokenFile"])
        elif user.get("token"):
            out["token"] = str(user["token"]).strip()
        return out


_CLUSTER_TEXT = ("server", "certificate-authority", "certificate-authority-data")
_USER_TEXT = ("client-certificate", "client-certificate-data", "client-key",
              "client-key-data", "token", "tokenFile")


def _mistyped(cluster: dict[str, Any], user: dict[str, Any]) -> str:
    """What client-go would refuse to decode in the fields the hub uses ("" when none).

    A quoted ``insecure-skip-tls-verify: "false"`` is a string, which kubectl refuses; taken
    for its truth value it would turn TLS verification off."""
    if not isinstance(cluster, dict) or not isinstance(user, dict):
        return "its current context's cluster or user is not a mapping"
    flag = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(flag, bool):
        return f"insecure-skip-tls-verify = {flag!r} is not a boolean (true or false, unquoted)"
    for where, src, keys in (("cluster", cluster, _CLUSTER_TEXT), ("user", user, _USER_TEXT)):
        for key in keys:
            if src.get(key) is not None and not isinstance(src[key], str):
                return f"its {where}'s {key} is not a string"
    return ""


def _current(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster and user of the kubeconfig's current context (or its only context)."""
    try:
        contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
        clusters = {c["name"]: c.get("cluster") or {} for c in doc.get("clusters") or []}
        users = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}
    except KeyError:
        raise ValueError("a context, cluster or user has no name") from None
    name = doc.get("current-context") or (next(iter(contexts)) if len(contexts) == 1 else "")
    if name not in contexts:
        raise ValueError(f"current-context {name!r} not found")
    ctx = contexts[name]
    if ctx.get("cluster") not in clusters:
        raise ValueError(f"cluster {ctx.get('cluster')!r} of context {name!r} not found")
    return clusters[ctx["cluster"]], users.get(ctx.get("user", ""), {})


def _not_after(path: str) -> float:
    """The end of the first certificate in ``path`` (0.0 when it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            m = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                          fh.read(), re.S)
        if m is None:
            return 0.0
        cert = x509.load_pem_x509_certificate(m.group(0))
    except (OSError, ValueError):
        return 0.0
    end = getattr(cert, "not_valid_after_utc", None) or \
        cert.not_valid_after.replace(tzinfo=datetime.UTC)
    return float(end.timestamp())


def _check_tls_files(creds: Credentials, inline: dict[str, str]) -> None:
    """Load the CA and key pair once, so a bad file stops the hub at start with its name
    (or the kubeconfig field it came from, for ``inline`` data written to a private file)."""
    ctx = ssl.create_default_context()
    if creds.ca_file:
        try:
            ctx.load_verify_locations(cafile=creds.ca_file)
        except (OSError, ssl.SSLError) as e:
            where = inline.get(creds.ca_file, f"ca_file = {creds.ca_file!r}")
            raise ConfigError(f"{where}: not a usable CA bundle: "
                              f"{getattr(e, 'strerror', None) or e}") from None
    if creds.client_cert_file:
        try:
            ctx.load_cert_chain(creds.client_cert_file, creds.client_key_file or None)
        except (OSError, ssl.SSLError) as e:
            where = inline.get(creds.client_cert_file,
                               f"client_cert_file = {creds.client_cert_file!r}")
            if creds.client_key_file in inline and where.endswith("-data"):
                where += " and client-key-data"
            raise ConfigError(f"{where}: not a usable certificate/key pair: "
                              f"{getattr(e, 'strerror', None) or e}") from None
    if creds.token_file:
        try:
            read_bearer_token(creds.token_file)
        except OSError as e:
            raise ConfigError(f"token_file = {creds.token_file!r}: not a readable file: "
                              f"{e.strerror or e}") from None
        except ValueError as e:
            raise ConfigError(f"token_file = {creds.token_file!r}: {e}") from None
    elif creds.token and any(not 0x21 <= ord(c) <= 0x7E for c in creds.token.strip()):
        raise ConfigError("kubeconfig: the user's token is not one bearer token (a single "
                          "word of printable ASCII)")
