"""``bootstrap_mode = kubeletcertificate``: the hub acts with kubelet's own client certificate.

kubelet's kubeconfig (``kubelet_conf``) names the server and the CA (or ``kubelet_ca_file``);
its client certificate and key are ``kubelet_client_certificate``, a symlink that kubelet
points at a new file when it rotates.  A thread looks at that file every two seconds (its
target, inode, size and mtime) and installs a new pair the moment it changes, so the hub
follows kubelet's rotations without a restart; ``generation`` then makes new upstream
connections present it.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import ssl
import threading
import time
from typing import Any

from yurthub.config import Config
from yurthub.credentials import tls_context
from yurthub.errors import ConfigError
from yurthub.identity import certs, discovery
from yurthub.threads import BackgroundThread

log = logging.getLogger(__name__)

POLL = 2.0


def _why(e: OSError) -> str:
    """``e``'s reason, and what to do when it is kubelet's files being root's alone."""
    reason = e.strerror or str(e)
    if e.errno != errno.EACCES:
        return reason
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    return (f"{reason}: kubelet's kubeconfig and certificates are root's (0600) and yurthub "
            f"runs as {user}: give {user} read access to them (setfacl; see README.Debian)")


def _stamp(path: str) -> tuple[str, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns


class KubeletIdentity(BackgroundThread):
    """A CredentialSource backed by kubelet's kubeconfig and rotating client certificate."""

    name = "yurthub-kubelet-cert"

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        try:
            with open(cfg.kubelet_conf, encoding="utf-8") as f:
                server, ca_pem = discovery.parse_cluster(f.read())
        except OSError as e:
            raise ConfigError(f"kubelet_conf = {cfg.kubelet_conf!r}: cannot read: "
                              f"{_why(e)}") from None
        except ValueError as e:
            raise ConfigError(f"kubelet_conf = {cfg.kubelet_conf!r}: {e}") from None
        self.ca_file = cfg.kubelet_conf  # where the CA comes from (for the status page)
        if ca_pem is None:
            self.ca_file = cfg.kubelet_ca_file
            try:
                with open(cfg.kubelet_ca_file, "rb") as f:
                    ca_pem = f.read()
            except OSError as e:
                raise ConfigError(f"kubelet_ca_file = {cfg.kubelet_ca_file!r}: cannot read: "
                                  f"{_why(e)}") from None
            if not ca_pem.strip():
                # why: an empty CA (a truncated file) made a context of the system's CAs,
                # so the hub trusted any public CA for the cloud; kubelet refuses it too.
                raise ConfigError(f"kubelet_ca_file = {cfg.kubelet_ca_file!r}: is empty: "
                                  "the cloud's certificate could not be verified")
        self.ca_pem = ca_pem
        self._servers = cfg.server_addr or ((server,) if server else ())
        if not self._servers:
            raise ConfigError(f"kubelet_conf = {cfg.kubelet_conf!r} names no server; set "
                              "server_addr")
        self.path = cfg.kubelet_client_certificate
        self._lock = threading.Lock()
        self._generation = 0
        self._stamp: tuple[str, int, int, int] | None = None
        self._info: certs.CertInfo | None = None
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._problem: str | None = "kubelet's client certificate is not loaded yet"
        self.reload()
        if self._info is None:
            raise ConfigError(f"kubelet_client_certificate = {self.path!r}: {self._problem}")

    # -- CredentialSource -------------------------------------------------------------------

    @property
    def servers(self) -> tuple[str, ...]:
        return self._servers

    @property
    def insecure(self) -> bool:
        return False

    @property
    def generation(self) -> int:
        return self._generation

    def ssl_context(self, identity: bool) -> ssl.SSLContext:
        with self._lock:
            return self._contexts[identity]

    def bearer_token(self) -> str:
        return ""

    def identity_problem(self) -> str | None:
        """None while the loaded pair is valid, even when kubelet's file is not usable now
        (a key of another pair, a file copied in place, permissions changed): the hub keeps
        acting with the pair it loaded until that expires, as YurtHub's kubelet certificate
        manager keeps its current one.  The file's problem is logged (WARNING) and shown
        on the status page meanwhile."""
        info = self._info
        if info is None:
            return self._problem
        if info.expired(time.time()):
            expired = f"kubelet's client certificate {self.path} has expired"
            if self._problem is not None:
                return f"{expired}; {self._problem}"
            return f"{expired}; waiting for kubelet to rotate it"
        return None

    @property
    def certificate(self) -> certs.CertInfo | None:
        return self._info

    @property
    def client_cert_file(self) -> str:
        """kubelet's certificate the hub acts with (for the status page)."""
        return self.path if self._info is not None else ""

    def certificate_summary(self) -> dict[str, Any] | None:
        """kubelet's certificate for the status page (kubelet renews it, not the hub)."""
        info = self._info
        if info is None:
            return None
        iso = "%Y-%m-%dT%H:%M:%SZ"
        state = self.identity_problem()
        if state is None and self._problem is not None:
            state = (f"{self._problem}; the hub keeps the certificate it loaded (serial "
                     f"{info.serial})")
        return {"notBefore": time.strftime(iso, time.gmtime(info.not_before)),
                "notAfter": time.strftime(iso, time.gmtime(info.not_after)),
                "renewalAt": None, "due": False, "expired": info.expired(time.time()),
                "state": state or f"kubelet's, from {self.path}; kubelet renews it"}

    # -- following kubelet ------------------------------------------------------------------

    def reload(self) -> bool:
        """Install the file's pair if it changed; True when a new one was installed."""
        stamp = _stamp(self.path)
        if stamp == self._stamp and self._info is not None:
            return False
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            _, info = certs.load_pair(data)
            client = tls_context(cert_file=self.path, cadata=self.ca_pem.decode("ascii"))
            plain = tls_context(cadata=self.ca_pem.decode("ascii"))
        except (OSError, ValueError, ssl.SSLError) as e:
            why = _why(e) if isinstance(e, PermissionError) else str(e)
            self._problem = f"cannot use kubelet's client certificate {self.path}: {why}"
            if stamp != self._stamp:
                kept = self._info
                if kept is not None and not kept.expired(time.time()):
                    log.warning("%s; the hub keeps the certificate it loaded (serial %s, "
                                "valid until %s)", self._problem, kept.serial,
                                time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                              time.gmtime(kept.not_after)))
                else:
                    log.warning("%s", self._problem)
            self._stamp = stamp
            return False
        with self._lock:
            self._contexts = {True: client, False: plain}
            self._info = info
            self._stamp = stamp
            self._problem = None
            self._generation += 1
        log.info("using kubelet's client certificate %s (serial %s, %s)", self.path,
                 info.serial, info.common_name)
        return True

    def run(self) -> None:
        while not self.stopping.wait(POLL):
            self.reload()
