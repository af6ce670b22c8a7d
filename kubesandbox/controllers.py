"""The sandbox's controller-manager: bootstrap signer, CSR approver and CSR signer.

design: one thread wakes on every store change (and once a second, for token expiry),
looks only at the collections it cares about when they changed, and writes through the
same Writer as the API, so clients see its work as watch events, as they would see
kube-controller-manager's.  The approver can be switched off (``csr_auto_approve``) so tests
approve by hand; the signer signs whatever is approved, with the sandbox's CA.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kubesandbox import bootstrap, certificates
from kubesandbox.discovery import Registry
from kubesandbox.pki import Authority
from kubesandbox.store import Store
from kubesandbox.writes import Writer
from yurthub.kube import bootstraptoken as bt

log = logging.getLogger(__name__)

RESYNC = 1.0


class Controllers:
    """Runs in a daemon thread from ``start()`` to ``stop()``."""

    def __init__(self, store: Store, registry: Registry, writer: Writer, *,
                 ca: Authority | None, cert_lifetime: float, auto_approve: bool,
                 sign_cluster_info: bool = True) -> None:
        self.store = store
        self.registry = registry
        self.writer = writer
        self.ca = ca
        self.cert_lifetime = cert_lifetime
        self.auto_approve = auto_approve
        self.sign_cluster_info = sign_cluster_info
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-controllers",
                                        daemon=True)
        self._seen: dict[str, int] = {}

    def start(self) -> Controllers:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.store.wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)

    def _run(self) -> None:
        rv = -1
        while not self._stop.is_set() and not self.store.closed:
            try:
                self.sync()
            except Exception:
                log.exception("sandbox controllers: sync failed")
            self.store.wait_for_rv(max(rv, self.store.rv) + 1, RESYNC, stop=self._stop)
            rv = self.store.rv

    # -- one pass ---------------------------------------------------------------------------

    def sync(self) -> None:
        if self.sign_cluster_info:
            self._sign_cluster_info()
        csr = self.registry.lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
        if csr is not None and self._changed(csr.resource, csr):
            for entry in self.store.entries(csr):
                self._handle_csr(csr, entry.obj())

    def _changed(self, key: str, rt: Any) -> bool:
        last = self.store.collection(rt).last_change_rv
        if self._seen.get(key) == last:
            return False
        self._seen[key] = last
        return True

    def _sign_cluster_info(self) -> None:
        """Bootstrap signer: keep one ``jws-kubeconfig-<id>`` per valid signing token."""
        secrets = self.registry.lookup("", "v1", "secrets")
        configmaps = self.registry.lookup("", "v1", "configmaps")
        if secrets is None or configmaps is None:
            return
        with self.store.lock:
            current = self.store.get(configmaps, bt.CLUSTER_INFO_NAMESPACE, bt.CLUSTER_INFO_NAME)
            if current is None:
                return
            tokens = bootstrap.signing_tokens(
                e.obj() for e in self.store.entries(secrets, bt.SECRET_NAMESPACE))
            obj = current.obj()
            data = obj.get("data") or {}
            new = bootstrap.signed_data(data, tokens)
            if new != data:
                obj["data"] = new
                self.writer.update_object(configmaps, current, obj)
                log.info("bootstrap signer: cluster-info signed for %d token(s)", len(tokens))

    def _handle_csr(self, rt: Any, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        conds = certificates.conditions(obj)
        if "Denied" in conds or "Failed" in conds or (obj.get("status") or {}).get("certificate"):
            return
        if "Approved" not in conds:
            if not self.auto_approve:
                return
            message = certificates.recognize(obj)
            if message is None:
                return
            status = dict(obj.get("status") or {})
            status["conditions"] = [*(status.get("conditions") or []),
                                    certificates.condition("Approved", "AutoApproved", message)]
            self._write(rt, name, {**obj, "status": status}, "approval")
            log.info("csr approver: %s approved (%s)", name, message)
            return
        if self.ca is None:
            return
        status = dict(obj.get("status") or {})
        try:
            status["certificate"] = certificates.sign(obj, self.ca, self.cert_lifetime)
            log.info("csr signer: %s signed for %s", name, obj["spec"].get("signerName"))
        except ValueError as e:
            status["conditions"] = [*(status.get("conditions") or []),
                                    certificates.condition("Failed", "SignerValidationFailure",
                                                           str(e))]
            log.info("csr signer: %s failed: %s", name, e)
        self._write(rt, name, {**obj, "status": status}, "status")

    def _write(self, rt: Any, name: str, obj: dict[str, Any], subresource: str) -> None:
        with self.store.lock:
            current = self.store.get(rt, "", name)
            if current is None or str(current.rv) != obj["metadata"].get("resourceVersion"):
                return  # changed meanwhile: the next pass sees the new version
            self.writer.update_object(rt, current, obj, subresource)
