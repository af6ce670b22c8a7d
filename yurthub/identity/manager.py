"""One certificate kept current: loaded from disk, requested when missing, renewed before it ends.

design: a background thread per certificate (the client one, the serving one).  A valid pair
on disk is used at once, cloud or not (offline start).  Renewal starts at a random point in
70-90 % of the lifetime (client-go's jitter, so a fleet does not renew at once) with a new
key and a new CSR; the pair is written atomically and installed, and ``generation`` goes up so
that users build new TLS contexts: new connections take the new certificate, open ones keep
the old.  A failed renewal is retried with backoff (1 s doubling to 30 s) until it works; the
certificate stays in use until it expires.  What the manager is waiting for is ``status``
(readyz and the log say it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from yurthub.errors import CredentialRejected, IdentityError, UpstreamUnavailable
from yurthub.identity import certs
from yurthub.identity.apiclient import JsonClient
from yurthub.identity.csr import CertificateRequest, request_certificate
from yurthub.identity.files import IdentityFiles
from yurthub.threads import BackgroundThread

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
RETRYING = "; retrying in "   # what ``problem()`` ends with while a retry is scheduled


class Renewal(Protocol):
    """How one certificate is asked for.  Both raise IdentityError or UpstreamUnavailable."""

    def request(self) -> CertificateRequest:
        """Subject, signer, usages and SANs of the next request."""

    def client(self, current_valid: Callable[[], bool]) -> JsonClient:
        """The apiserver client to ask with (the current certificate while it is valid:
        ``current_valid`` says so at the moment of each request)."""

    def rejected(self, e: CredentialRejected, current_valid: bool) -> None:
        """The cloud refused the credential ``client`` gave (raise to wait, or return)."""

    def unsatisfied(self, cert: certs.CertInfo, resolve: bool = False) -> str | None:
        """What a loaded certificate lacks of what the settings now ask for (None: nothing).

        Known without the cloud (``resolve``: names may be looked up in DNS, which may
        block); a certificate that lacks something is renewed at once (client-go's
        ``certSatisfiesTemplate``), and used until the new one arrives."""


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class CertificateManager(BackgroundThread):
    """Keeps ``path`` holding a valid certificate and key."""

    def __init__(self, label: str, files: IdentityFiles, path: str, renewal: Renewal, *,
                 on_change: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time,
                 rand: random.Random | None = None) -> None:
        super().__init__()
        self.name = f"yurthub-cert-{label}"
        self.label = label
        self.files = files
        self.path = path
        self.renewal = renewal
        self.on_change = on_change
        self.clock = clock
        self.rand = rand or random.Random()  # noqa: S311 (jitter, not a secret)
        self.current: certs.CertInfo | None = None
        self.generation = 0
        self.deadline = 0.0
        self._status = f"no {label} certificate yet"
        self._wake = threading.Event()
        self._lock = threading.Lock()

    # -- state ------------------------------------------------------------------------------

    def load(self) -> certs.CertInfo | None:
        """Install the pair on disk, if there is a usable one (expired or not)."""
        data = self.files.read(self.path)
        if data is None:
            return None
        try:
            _, info = certs.load_pair(data)
        except certs.CertificateError as e:
            log.warning("%s: %s; a new certificate will be requested", self.path, e)
            return None
        self._install(info, announce=False)
        if info.expired(self.clock()):
            log.warning("the %s certificate %s expired at %s", self.label, self.path,
                        _when(info.not_after))
        else:
            lacking = self.renewal.unsatisfied(info)
            if lacking is not None:
                log.info("the %s certificate %s does not match the settings (%s); asking "
                         "for a new one now", self.label, self.path, lacking)
                self.deadline = self.clock()
        return info

    def valid(self) -> bool:
        cur = self.current
        return cur is not None and not cur.expired(self.clock())

    def problem(self) -> str | None:
        """None while a valid certificate is installed, else what the manager waits for."""
        if self.valid():
            return None
        cur = self.current
        if cur is not None:
            return f"the {self.label} certificate expired at {_when(cur.not_after)}; " \
                   f"{self._status}"
        return self._status

    def summary(self) -> dict[str, Any] | None:
        """The installed certificate for the status page: its validity, when it is renewed,
        whether that is already due by this node's clock, and what the manager last said
        (None before any certificate)."""
        cur = self.current
        if cur is None:
            return None
        now = self.clock()
        with self._lock:
            state, deadline = self._status, self.deadline
        return {"notBefore": _when(cur.not_before), "notAfter": _when(cur.not_after),
                "renewalAt": _when(deadline), "due": deadline <= now,
                "expired": cur.expired(now), "state": state}

    def progress(self, message: str) -> None:
        with self._lock:
            changed = message != self._status
            self._status = message
        if changed:
            log.info("%s certificate: %s", self.label, message)

    def _install(self, info: certs.CertInfo, announce: bool = True) -> None:
        # Its users first (the serving port's TLS context), then it counts as installed:
        # readyz said ready while 10268 still refused handshakes (no context yet), and a
        # pod's first connection was reset.
        self.on_change()
        with self._lock:
            self.current = info
            self.deadline = certs.rotation_deadline(info, self.rand)
            self.generation += 1
            self._status = f"{self.label} certificate valid until {_when(info.not_after)}"
        log.info("%s certificate %s (serial %s) valid until %s; renewal at %s", self.label,
                 "installed" if announce else "loaded", info.serial, _when(info.not_after),
                 _when(self.deadline))

    def wake(self) -> None:
        self._wake.set()

    def discard(self, why: str) -> None:
        """Forget the installed certificate (its file is gone: the cluster's CA changed)
        and ask for a new one now; users build new TLS contexts (``generation``)."""
        with self._lock:
            self.current = None
            self.generation += 1
            self.deadline = 0.0
            self._status = f"no {self.label} certificate yet ({why})"
        log.info("%s certificate dropped: %s", self.label, why)
        self._wake.set()

    # -- the thread -------------------------------------------------------------------------

    def run(self) -> None:
        self._check_template()
        backoff = 1.0
        while not self.stopping.is_set():
            now = self.clock()
            if self.valid() and now < self.deadline:
                self._wake.wait(min(self.deadline - now, 3600.0))
                self._wake.clear()
                continue
            try:
                info = self.renew()
                overdue = self._overdue(info)
                if overdue is None:
                    backoff = 1.0
                    continue
                # Asking again at once would get the same answer, as fast as the cloud
                # signs: paced like a failure, and said, since only the operator can help
                self.progress(f"{overdue}; asking again in {backoff:.0f}s")
                log.warning("%s certificate: %s", self.label, overdue)
            except (IdentityError, UpstreamUnavailable) as e:
                if self.stopping.is_set():
                    return
                self.progress(f"{e}{RETRYING}{backoff:.0f}s")
                log.warning("%s certificate: %s", self.label, e)
            self._wake.wait(backoff)
            self._wake.clear()
            backoff = min(MAX_BACKOFF, backoff * 2)

    def _overdue(self, info: certs.CertInfo) -> str | None:
        """Why a certificate just issued is already due again by this node's clock (None:
        it is not): the clock is ahead of the cloud's, or the cluster's CA ends so soon that
        it cut the certificate short."""
        now = self.clock()
        if now < self.deadline and not info.expired(now):
            return None
        state = "has already expired" if info.expired(now) else "is already due for renewal"
        return (f"the certificate just issued (valid {_when(info.not_before)} to "
                f"{_when(info.not_after)}) {state} by this node's clock "
                f"({_when(now)}): is the clock ahead of the cloud's, or does the cluster's "
                "CA end that soon?")

    def _check_template(self) -> None:
        """What ``load`` could not check without DNS (a node IP found through a server's
        name), on this thread, before the first wait."""
        cur = self.current
        if cur is None or not self.valid() or self.deadline <= self.clock():
            return
        lacking = self.renewal.unsatisfied(cur, resolve=True)
        if lacking is not None:
            log.info("the %s certificate %s does not match the settings (%s); asking for a "
                     "new one now", self.label, self.path, lacking)
            self.deadline = self.clock()

    def renew(self) -> certs.CertInfo:
        """Request a certificate now, write it and install it.  Raises IdentityError
        (also when it cannot be written) or UpstreamUnavailable."""
        valid = self.valid()
        request = self.renewal.request()
        client = self.renewal.client(self.valid)
        key = certs.new_key()
        try:
            pem = request_certificate(client, request, key, progress=self.progress,
                                      stopping=self.stopping)
        except CredentialRejected as e:
            self.renewal.rejected(e, valid)
            raise
        data = certs.pair_pem(pem, key)
        _, info = certs.load_pair(data)
        try:
            self.files.write(self.path, data)
        except OSError as e:
            # A full or read-only disk: the certificate in use stays (TLS loads it from
            # its file), and the renewal is tried again; the worker must not die of it.
            raise IdentityError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._install(info)
        return info
