"""CustomResourceDefinitions: the checks and the status kube-apiserver's CRD controllers give.

A CRD is established at once (the sandbox has no naming conflicts to wait for), so its
resources are served as soon as the create returns.
"""

from __future__ import annotations

from typing import Any

from kubesandbox.objects import invalid
from yurthub.kube.resources import ResourceType
from yurthub.kube.validation import go_quote

GROUP = "apiextensions.k8s.io"


def validate(rt: ResourceType, crd: dict[str, Any]) -> None:
    """Raise 422 Invalid for the mistakes kube-apiserver would reject."""
    meta = crd.get("metadata") or {}
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = meta.get("name", "")
    causes: list[tuple[str, str, str]] = []
    group, plural = spec.get("group") or "", names.get("plural") or ""
    if name != f"{plural}.{group}":
        causes.append(("metadata.name", "FieldValueInvalid", f"Invalid value: {go_quote(name)}: "
                       'must be spec.names.plural+"."+spec.group'))
    if not group:
        causes.append(("spec.group", "FieldValueRequired", "Required value"))
    if not plural:
        causes.append(("spec.names.plural", "FieldValueRequired", "Required value"))
    if not names.get("kind"):
        causes.append(("spec.names.kind", "FieldValueRequired", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", "FieldValueNotSupported",
                       f'Unsupported value: {go_quote(str(spec.get("scope") or ""))}: supported '
                       'values: "Cluster", "Namespaced"'))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("spec.versions", "FieldValueInvalid",
                       "Invalid value: null: must have exactly one version marked as storage "
                       "version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("spec.versions", "FieldValueInvalid",
                       "Invalid value: []apiextensions.CustomResourceDefinitionVersion(nil): "
                       "must have exactly one version marked as storage version"))
    if causes:
        raise invalid(rt, name, causes)


def set_status(crd: dict[str, Any], now: str) -> None:
    """The status of an established CRD whose names were accepted."""
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    storage = next((v.get("name") for v in spec.get("versions") or [] if v.get("storage")), "")
    crd["status"] = {
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "acceptedNames": names,
        "storedVersions": [storage],
    }
