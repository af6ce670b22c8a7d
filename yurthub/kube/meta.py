"""Object metadata read from decoded objects, and the type meta that cache files must carry.

The cache writer runs these on every object it stores, so ``with_type_meta`` avoids
re-encoding. Items of built-in lists lack ``kind`` and ``apiVersion``, and splicing the two
keys in after the opening brace leaves the apiserver's bytes otherwise untouched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yurthub.errors import DecodeError

_UINT64_MAX = 2**64 - 1


def rv_int(resource_version: str) -> int:
    """A resourceVersion as an integer, for ordering the versions of one object.

    kube-apiserver's resourceVersions are decimal uint64 strings. ``""`` and ``"0"`` both
    mean 0 ("any"), as in its ``ParseResourceVersion``. Anything else raises DecodeError
    rather than returning a sentinel: a version we cannot read must never be taken as older
    or newer than another.
    """
    if resource_version in ("", "0"):
        return 0
    if not (resource_version.isascii() and resource_version.isdigit()):
        raise DecodeError(f"invalid resourceVersion {resource_version!r}")
    value = int(resource_version)
    if value > _UINT64_MAX:
        raise DecodeError(f"resourceVersion {resource_version!r} is out of range")
    return value


@dataclass(frozen=True)
class ObjectMeta:
    """What the cache needs from an object: type, identity, version, labels, deletion."""

    kind: str
    api_version: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    generate_name: str
    labels: Mapping[str, str]
    deletion_timestamp: str | None

    def rv_int(self) -> int:
        """``resource_version`` as an integer (see ``rv_int``); raises DecodeError."""
        return rv_int(self.resource_version)


def _string(d: Mapping[str, Any], key: str, where: str) -> str:
    value = d.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"{where}{key} is not a string")
    return value


def object_meta(obj: Any) -> ObjectMeta:
    """The ObjectMeta of a decoded object. Raises DecodeError when the fields are mistyped.

    Missing fields and JSON nulls read as ``""`` (no labels: an empty mapping; no deletion:
    None), the way Go's decoder leaves them at their zero values.
    """
    if not isinstance(obj, dict):
        raise DecodeError("object is not a JSON object")
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise DecodeError("metadata is not a JSON object")
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise DecodeError("metadata.labels is not a map of strings")
    deletion = meta.get("deletionTimestamp")
    if deletion is not None and not isinstance(deletion, str):
        raise DecodeError("metadata.deletionTimestamp is not a string")
    return ObjectMeta(
        kind=_string(obj, "kind", ""),
        api_version=_string(obj, "apiVersion", ""),
        namespace=_string(meta, "namespace", "metadata."),
        name=_string(meta, "name", "metadata."),
        uid=_string(meta, "uid", "metadata."),
        resource_version=_string(meta, "resourceVersion", "metadata."),
        generate_name=_string(meta, "generateName", "metadata."),
        labels=labels,
        deletion_timestamp=deletion,
    )


def with_type_meta(raw: bytes, kind: str, api_version: str,
                   obj: Mapping[str, Any] | None = None) -> bytes:
    """``raw`` (one JSON object) with ``kind`` and ``apiVersion`` set to the given values.

    - Both keys already carry these values: ``raw`` is returned as it is.
    - Both keys are absent (items of built-in lists): ``{"kind":..,"apiVersion":..,`` is
      spliced in after the opening brace, and the rest of the bytes are kept.
    - Otherwise the object is re-encoded, with ``kind`` and ``apiVersion`` first.

    ``obj`` is ``raw`` already decoded (``Item.obj``), which saves decoding it again.
    """
    if obj is None:
        try:
            obj = json.loads(raw)
        except ValueError as e:
            raise DecodeError(f"invalid JSON object: {e}") from e
    if not isinstance(obj, Mapping):
        raise DecodeError("object is not a JSON object")
    if obj.get("kind") == kind and obj.get("apiVersion") == api_version:
        return raw
    head = b'{"kind":%s,"apiVersion":%s' % (json.dumps(kind).encode(),
                                             json.dumps(api_version).encode())
    if "kind" not in obj and "apiVersion" not in obj:
        start = raw.find(b"{")
        rest = raw[start + 1:]
        if start < 0 or raw[:start].strip():
            raise DecodeError("object is not a JSON object")
        return head + (rest if rest.lstrip().startswith(b"}") else b"," + rest)
    others = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    if not others:
        return head + b"}"
    body = json.dumps(others, separators=(",", ":"), ensure_ascii=False).encode()
    return head + b"," + body[1:]
