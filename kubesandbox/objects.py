"""Stored objects: each version rendered to JSON once, plus what selection needs.

An :class:`Entry` is immutable: a write makes a new one.  Its ``data`` is the object's JSON with
``kind`` and ``apiVersion`` first (what get and watch send); ``item()`` is the same bytes without
them (what a built-in list sends, as kube-apiserver's JSON does), without a copy.  This module
also holds the metadata the server owns (uid, creationTimestamp, generation), name and label
validation with kube-apiserver's 422 bodies, and the defaults a few types get on create.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yurthub.errors import Invalid
from yurthub.kube import fields as kfields
from yurthub.kube import validation as kvalid
from yurthub.kube.resources import ResourceType

_META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
               "generation", "creationTimestamp", "deletionTimestamp",
               "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
               "finalizers", "managedFields")
_META_RANK = {k: i for i, k in enumerate(_META_ORDER)}
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True, slots=True)
class Entry:
    """One version of one object, pre-rendered."""

    namespace: str
    name: str
    rv: int
    data: bytes
    item_start: int
    labels: dict[str, str] = field(hash=False, compare=False)
    fields: dict[str, str] = field(hash=False, compare=False)
    uid: str = ""

    @property
    def key(self) -> str:
        """The sort key: kube-apiserver lists in etcd key order, ``<namespace>/<name>``."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def obj(self) -> dict[str, Any]:
        """A fresh decoded copy (callers may change it)."""
        result: dict[str, Any] = json.loads(self.data)
        return result

    def item(self) -> list[bytes | memoryview]:
        """The pieces of the object without ``kind``/``apiVersion`` (for ``b"".join``)."""
        return [b"{", memoryview(self.data)[self.item_start:]]


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))  # noqa: S311


def ordered_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata keys in ObjectMeta's field order (how kube-apiserver serializes them)."""
    return dict(sorted(meta.items(), key=lambda kv: _META_RANK.get(kv[0], len(_META_RANK))))


def render(obj: dict[str, Any], kind: str, api_version: str) -> tuple[bytes, int]:
    """The object's JSON with kind and apiVersion first, and where its list item starts."""
    body = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    if isinstance(body.get("metadata"), dict):
        body["metadata"] = ordered_metadata(body["metadata"])
    rest = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    prefix = b'{"kind":%s,"apiVersion":%s' % (json.dumps(kind).encode(),
                                               json.dumps(api_version).encode())
    if rest == b"{}":
        data = prefix + b"}"
        return data, len(data) - 1
    return prefix + b"," + rest[1:], len(prefix) + 1


def make_entry(obj: dict[str, Any], rt: ResourceType, rv: int,
               values: Callable[[dict[str, Any], ResourceType], dict[str, str]] | None = None,
               ) -> Entry:
    """An entry for ``obj`` (whose metadata.resourceVersion must already be ``rv``)."""
    meta = obj.get("metadata") or {}
    data, start = render(obj, rt.kind, rt.group_version)
    return Entry(
        namespace=meta.get("namespace", "") if rt.namespaced else "",
        name=meta.get("name", ""),
        rv=rv,
        data=data,
        item_start=start,
        labels=dict(meta.get("labels") or {}),
        fields=(values or kfields.selectable_values)(obj, rt),
        uid=meta.get("uid", ""),
    )


# -- validation -------------------------------------------------------------------------------

def name_errors(rt: ResourceType, name: str) -> list[str]:
    """Why ``name`` is not a valid name for ``rt`` (kube-apiserver's per-type rules)."""
    if rt.group == "" and rt.resource == "services":
        return kvalid.dns1035_label_errors(name)
    if rt.group == "" and rt.resource == "namespaces":
        return kvalid.dns1123_label_errors(name)
    return kvalid.dns1123_subdomain_errors(name)


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> Invalid:
    """A 422 naming the kind, with one cause per (field, kind of error, message)."""
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    texts = [f"{path}: {msg}" for path, _, msg in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: dict[str, Any] = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = [{"reason": reason, "message": msg, "field": path}
                         for path, reason, msg in causes]
    return Invalid(f"{qualified} {kvalid.go_quote(name)} is invalid: {joined}", details=details)


def validate_metadata(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Raise Invalid for a bad name, label or annotation key, as kube-apiserver would."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    causes: list[tuple[str, str, str]] = []
    if not name:
        causes.append(("metadata.name", "FieldValueRequired",
                       "Required value: name or generateName is required"))
    else:
        errs = name_errors(rt, name)
        if errs:
            causes.append(("metadata.name", "FieldValueInvalid",
                           f"Invalid value: {kvalid.go_quote(name)}: {'; '.join(errs)}"))
    for key, value in (meta.get("labels") or {}).items():
        errs = kvalid.qualified_name_errors(key)
        if errs:
            causes.append(("metadata.labels", "FieldValueInvalid",
                           f"Invalid value: {kvalid.go_quote(key)}: {'; '.join(errs)}"))
        errs = kvalid.label_value_errors(value) if isinstance(value, str) else \
            ["must be a string"]
        if errs:
            causes.append(("metadata.labels", "FieldValueInvalid",
                           f"Invalid value: {kvalid.go_quote(str(value))}: {'; '.join(errs)}"))
    for key in meta.get("annotations") or {}:
        errs = kvalid.qualified_name_errors(key)
        if errs:
            causes.append(("metadata.annotations", "FieldValueInvalid",
                           f"Invalid value: {kvalid.go_quote(key)}: {'; '.join(errs)}"))
    if causes:
        raise invalid(rt, name, causes)


# -- defaults kube-apiserver applies on create ---------------------------------------------------

def _pod_defaults(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for c in spec.get("containers") or []:
        for port in c.get("ports") or []:
            port.setdefault("protocol", "TCP")
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = str(c.get("image", ""))
        c.setdefault("imagePullPolicy",
                     "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent")
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec))


def qos_class(spec: dict[str, Any]) -> str:
    """The pod's QoS class, as kube-apiserver computes it from its containers' resources."""
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                  if isinstance(c, dict)]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"


def reset_status_on_create(obj: dict[str, Any], rt: ResourceType, custom: bool) -> None:
    """What kube-apiserver's create strategies do to a client-sent status."""
    if rt.group == "" and rt.resource == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    elif rt.group == "" and rt.resource == "services":
        obj["status"] = {"loadBalancer": {}}
    elif custom and "status" in rt.subresources:
        obj.pop("status", None)


def _namespace_defaults(obj: dict[str, Any]) -> None:
    meta = obj.setdefault("metadata", {})
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _secret_defaults(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")


def _service_defaults(obj: dict[str, Any], allocate_ip: Callable[[], str]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None" and not spec.get("clusterIP"):
        spec["clusterIP"] = allocate_ip()
    if spec.get("clusterIP"):
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def apply_create_defaults(rt: ResourceType, obj: dict[str, Any],
                          allocate_ip: Callable[[], str]) -> None:
    """Fill in what kube-apiserver's defaulting and strategies set on create."""
    if rt.group != "":
        return
    if rt.resource == "pods":
        _pod_defaults(obj)
    elif rt.resource == "namespaces":
        _namespace_defaults(obj)
    elif rt.resource == "secrets":
        _secret_defaults(obj)
    elif rt.resource == "services":
        _service_defaults(obj, allocate_ip)
