"""The sandbox's identity controls for tests and scripts: tokens, CSRs, the CA's pin.

A mixin of :class:`kubesandbox.server.Sandbox`: bootstrap tokens can be added (and expire),
CertificateSigningRequests approved or denied by hand (with the auto-approver off),
ServiceAccount tokens minted as the TokenRequest API would, and the CA hash a node passes as
``--discovery-token-ca-cert-hash`` read off the CA, as kubeadm computes it.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization

from kubesandbox import bootstrap, certificates
from kubesandbox.auth import User
from kubesandbox.controllers import Controllers
from kubesandbox.pki import Authority
from kubesandbox.satokens import TokenSigner
from kubesandbox.store import Store
from yurthub.errors import NotFound
from yurthub.kube import bootstraptoken as bt

CSR = "certificatesigningrequests.certificates.k8s.io"


class IdentityControls:
    """Needs the host's ``ca``, ``controllers``, ``token_signer``, ``store`` and object API."""

    ca: Authority | None
    controllers: Controllers | None
    token_signer: TokenSigner
    store: Store

    # Implemented by the Sandbox.
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def get(self, resource: str, name: str,
            namespace: str = "") -> dict[str, Any] | None:
        raise NotImplementedError

    def list_objects(self, resource: str,
                     namespace: str = "") -> list[dict[str, Any]]:
        raise NotImplementedError

    def delete(self, resource: str, name: str,
               namespace: str = "") -> dict[str, Any] | None:
        raise NotImplementedError

    @property
    def ca_hash(self) -> str:
        """``sha256:<hex>`` of the CA's SubjectPublicKeyInfo (kubeadm's CA pin)."""
        assert self.ca is not None
        spki = self.ca.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return bt.ca_pin(spki)

    @property
    def csr_auto_approve(self) -> bool:
        return self.controllers is not None and self.controllers.auto_approve

    @csr_auto_approve.setter
    def csr_auto_approve(self, on: bool) -> None:
        if self.controllers is not None:
            self.controllers.auto_approve = on
            self.store.wake()

    def add_bootstrap_token(self, token: str, *, expiration: str = "") -> dict[str, Any]:
        """Create (or replace) the Secret that makes ``token`` valid until ``expiration``."""
        return self.put(bootstrap.token_secret(token, expiration=expiration))

    def remove_bootstrap_token(self, token_id: str) -> None:
        self.delete("secrets", bt.SECRET_PREFIX + token_id, bt.SECRET_NAMESPACE)

    def csrs(self) -> list[dict[str, Any]]:
        return self.list_objects(CSR)

    def _decide(self, name: str, type_: str, reason: str, message: str) -> dict[str, Any]:
        obj = self.get(CSR, name)
        if obj is None:
            raise NotFound(f'certificatesigningrequests.certificates.k8s.io "{name}" not found')
        status = dict(obj.get("status") or {})
        status["conditions"] = [*(status.get("conditions") or []),
                                certificates.condition(type_, reason, message)]
        obj["status"] = status
        return self.put_subresource(obj, "approval")

    def approve_csr(self, name: str, message: str = "approved by a test") -> dict[str, Any]:
        return self._decide(name, "Approved", "SandboxApprove", message)

    def deny_csr(self, name: str, message: str = "denied by a test") -> dict[str, Any]:
        return self._decide(name, "Denied", "SandboxDeny", message)

    def put_subresource(self, obj: dict[str, Any],
                        subresource: str) -> dict[str, Any]:
        raise NotImplementedError

    def service_account_token(self, namespace: str = "default", name: str = "default",
                              lifetime: float = 3600.0) -> str:
        """A token for an existing ServiceAccount, as ``kubectl create token`` gets one."""
        sa = self.get("serviceaccounts", name, namespace)
        if sa is None:
            raise NotFound(f'serviceaccounts "{name}" not found')
        return self.token_signer.issue(namespace, name, sa["metadata"].get("uid", ""),
                                       lifetime)


__all__ = ["IdentityControls", "User"]
