"""Does a cached file hold the object its path names?  Pure checks, no I/O.

A file under ``<component>/<resource>.<version>.<group>/<namespace>/<name>`` must hold one
JSON object of its collection's kind and apiVersion, with that namespace and name.  A file
that does not (torn by a crash the journal did not cover, edited by hand, rotted, restored
from another node's backup) is not served: it is quarantined and every view that counted
on it becomes incomplete.  An object served under another name would be a quiet lie; a
list missing it a loud one (kubelet kills pods missing from its list).
"""

from __future__ import annotations

import json
from typing import Any

from yurthub.kube.resources import builtin
from yurthub.storage import CollectionKey

_PARTIAL = ".partialobjectmetadatas."
_META_GROUP = "meta.k8s.io"


def expected_type(ck: CollectionKey, kind: str = "") -> tuple[str, str]:
    """(kind, apiVersion) the objects of ``ck`` carry; kind is "" when not known (a custom
    resource whose collection never recorded its kind).  ``kind`` is the collection's
    recorded kind, used when the built-in table does not know the resource."""
    _base, sep, tail = ck.group.partition(_PARTIAL)
    if sep and tail.endswith("." + _META_GROUP):
        meta_version = tail[:-len(_META_GROUP) - 1]
        return "PartialObjectMetadata", f"{_META_GROUP}/{meta_version}"
    rt = builtin(ck.group, ck.version, ck.resource)
    api_version = f"{ck.group}/{ck.version}" if ck.group else ck.version
    if rt is not None:
        return rt.kind, api_version
    return kind, api_version


def key_problem(ck: CollectionKey, namespace: str, name: str, obj: Any, kind: str = "") -> str:
    """Why ``obj`` is not the object ``ck``/``namespace``/``name`` ("" when it is)."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return "no metadata"
    if md.get("name") != name:
        return f"it holds an object named {_q(md.get('name'))}"
    want_ns = namespace if ck.namespaced else ""
    have_ns = md.get("namespace") or ""
    if have_ns != want_ns:
        return f"it holds an object of namespace {_q(have_ns)}"
    want_kind, want_version = expected_type(ck, kind)
    if obj.get("apiVersion") != want_version:
        return f"it holds apiVersion {_q(obj.get('apiVersion'))}, not {want_version!r}"
    if want_kind and obj.get("kind") != want_kind:
        return f"it holds kind {_q(obj.get('kind'))}, not {want_kind!r}"
    return ""


def body_problem(ck: CollectionKey, namespace: str, name: str, body: bytes,
                 kind: str = "") -> str:
    """``key_problem`` of a file's bytes ("torn or not JSON" when they do not parse)."""
    try:
        obj = json.loads(body)
    except ValueError as e:
        return f"torn or not JSON ({e})"
    return key_problem(ck, namespace, name, obj, kind)


def _q(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value[:80])
    return text
