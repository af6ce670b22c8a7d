"""Bootstrap tokens and ``kube-public/cluster-info``, as kubeadm and the bootstrap signer make them.

``token_secret`` is the ``kube-system/bootstrap-token-<id>`` Secret kubeadm creates for a join
token; ``cluster_info`` the ConfigMap with the cluster's kubeconfig (server and CA, no user);
``signed_data`` adds one ``jws-kubeconfig-<id>`` per token that may sign (usage
``usage-bootstrap-signing``, not expired) and drops the others, as kube-controller-manager's
bootstrap signer keeps the ConfigMap in step with the token Secrets.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from kubesandbox.auth import token_expired
from yurthub.kube import bootstraptoken as bt

DEFAULT_GROUPS = ("system:bootstrappers:kubeadm:default-node-token",)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret(token: str, *, expiration: str = "",
                 groups: Iterable[str] = DEFAULT_GROUPS) -> dict[str, Any]:
    """The Secret that makes ``token`` (``<id>.<secret>``) valid."""
    token_id, secret = bt.parse_token(token)
    data = {"token-id": _b64(token_id), "token-secret": _b64(secret),
            "usage-bootstrap-authentication": _b64("true"),
            "usage-bootstrap-signing": _b64("true"),
            "auth-extra-groups": _b64(",".join(groups)),
            "description": _b64("made by the yurthub sandbox")}
    if expiration:
        data["expiration"] = _b64(expiration)
    return {"apiVersion": "v1", "kind": "Secret", "type": bt.SECRET_TYPE,
            "metadata": {"name": bt.SECRET_PREFIX + token_id, "namespace": bt.SECRET_NAMESPACE},
            "data": data}


def kubeconfig_text(server: str, ca_pem: bytes | None) -> str:
    """The kubeconfig of cluster-info, written as kubeadm writes it (YAML, no user)."""
    cluster = [f"    server: {server}"]
    if ca_pem:
        cluster.insert(0, "    certificate-authority-data: " + base64.b64encode(ca_pem).decode())
    return "\n".join(["apiVersion: v1", "clusters:", "- cluster:", *cluster, '  name: ""',
                      "contexts: null", 'current-context: ""', "kind: Config",
                      "preferences: {}", "users: null", ""])


def cluster_info(server: str, ca_pem: bytes | None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": bt.CLUSTER_INFO_NAME, "namespace": bt.CLUSTER_INFO_NAMESPACE},
            "data": {bt.KUBECONFIG_KEY: kubeconfig_text(server, ca_pem)}}


def signing_tokens(secrets: Iterable[dict[str, Any]]) -> dict[str, str]:
    """token id -> secret of every token Secret that may sign cluster-info now."""
    out = {}
    for obj in secrets:
        if obj.get("type") != bt.SECRET_TYPE:
            continue
        data = {}
        for key, value in (obj.get("data") or {}).items():
            try:
                data[key] = base64.b64decode(str(value)).decode()
            except ValueError:
                continue
        token_id, secret = data.get("token-id", ""), data.get("token-secret", "")
        name = (obj.get("metadata") or {}).get("name", "")
        if name != bt.SECRET_PREFIX + token_id or not bt.is_token_id(token_id) or not secret:
            continue
        if data.get("usage-bootstrap-signing") != "true" or \
                token_expired(data.get("expiration", "")):
            continue
        out[token_id] = secret
    return out


def signed_data(data: dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    """cluster-info's data with exactly the signatures ``tokens`` make over its kubeconfig."""
    out = {k: v for k, v in data.items() if not k.startswith(bt.JWS_KEY_PREFIX)}
    content = data.get(bt.KUBECONFIG_KEY)
    if content is None:
        return out
    for token_id, secret in sorted(tokens.items()):
        out[bt.JWS_KEY_PREFIX + token_id] = bt.detached_signature(content, token_id, secret)
    return out
