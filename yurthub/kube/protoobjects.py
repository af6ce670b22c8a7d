"""Protobuf objects, read: the JSON form of a ``k8s\\0``-enveloped object from a field table.

client-go's typed clients send ``application/vnd.kubernetes.protobuf`` bodies by default:
kubelet's Lease renewals among them, which the hub answers itself (proxy/offlinewrites.py).
A schema is a table of the field numbers of k8s.io/api's generated.proto; this module holds
the tables the hub needs (ObjectMeta, Lease), the sandbox adds its own (kubesandbox/).
Strict: a field the table does not know raises ``Unknown`` (the caller answers 415: send
JSON), never silently dropped.  Pure; ValueError on a body that does not decode.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from yurthub.errors import DecodeError
from yurthub.kube import protowire

# A field: (json name, kind[, sub-schema]).  Kinds: s string, b bytes (base64), i int,
# bool, t Time, mt MicroTime, q Quantity, ios IntOrString, m message, inline (a message whose
# fields JSON puts in the parent), map:<s|b|q> (string keys).  A trailing "*" marks a
# repeated field; a leading "?" a pointer, whose zero value is kept.
Schema = dict[int, tuple[Any, ...]]

OWNER_REF: Schema = {1: ("kind", "s"), 3: ("name", "s"), 4: ("uid", "s"),
                     5: ("apiVersion", "s"), 6: ("controller", "?bool"),
                     7: ("blockOwnerDeletion", "?bool")}
MANAGED: Schema = {1: ("manager", "s"), 2: ("operation", "s"), 3: ("apiVersion", "s"),
                   4: ("time", "t"), 6: ("fieldsType", "s"), 7: ("fieldsV1", "raw"),
                   8: ("subresource", "s")}
META: Schema = {
    1: ("name", "s"), 2: ("generateName", "s"), 3: ("namespace", "s"), 4: ("selfLink", "s"),
    5: ("uid", "s"), 6: ("resourceVersion", "s"), 7: ("generation", "i"),
    8: ("creationTimestamp", "t"), 9: ("deletionTimestamp", "t"),
    10: ("deletionGracePeriodSeconds", "?i"), 11: ("labels", "map:s"),
    12: ("annotations", "map:s"), 13: ("ownerReferences", "m*", OWNER_REF),
    14: ("finalizers", "s*"), 17: ("managedFields", "m*", MANAGED),
}
LEASE: Schema = {
    1: ("metadata", "m", META),
    2: ("spec", "m", {1: ("holderIdentity", "?s"), 2: ("leaseDurationSeconds", "?i"),
                      3: ("acquireTime", "mt"), 4: ("renewTime", "mt"),
                      5: ("leaseTransitions", "?i"), 6: ("strategy", "?s"),
                      7: ("preferredHolder", "?s")}),
}
# The kinds the hub itself reads from a protobuf body.
HUB_SCHEMAS: dict[tuple[str, str], Schema] = {("coordination.k8s.io/v1", "Lease"): LEASE}


class Unknown(DecodeError):
    """A field (or a kind) the table does not know (no ValueError: a body that does not
    decode is one)."""


def signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# Go's zero time.Time (0001-01-01T00:00:00Z), which Go's protobuf always writes for a
# metav1.Time that is not a pointer (a new object's creationTimestamp) and its JSON says null.
_ZERO_TIME = -62135596800


# The last second JSON can write (9999-12-31T23:59:59Z): Go's MarshalJSON refuses later ones.
_MAX_TIME = 253402300799


def _parts(b: bytes, ints: tuple[int, ...] = (), blobs: tuple[int, ...] = ()) -> dict[int, Any]:
    """The fields of a small message read without a table: those numbered in ``ints`` must
    be varints, those in ``blobs`` length-delimited (ValueError otherwise)."""
    parts = {n: v for n, _, v in protowire.fields(_blob(b))}
    for n in ints:
        if n in parts and not isinstance(parts[n], int):
            raise ValueError(f"field {n} is not a varint")
    for n in blobs:
        if n in parts and isinstance(parts[n], int):
            raise ValueError(f"field {n} is a varint, not bytes")
    return parts


def _blob(value: Any) -> bytes:
    """A length-delimited field's bytes (ValueError for a varint in its place).

    why: ``bytes(n)`` of a varint is n zero bytes: a 10-byte body made the hub allocate
    terabytes (MemoryError, a 500), or a gigabyte it then decoded."""
    if isinstance(value, int):
        raise ValueError("a varint where bytes belong")
    return bytes(value)


def _int(value: Any) -> int:
    if not isinstance(value, int):
        raise ValueError("bytes where a varint belongs")
    return value


def _time(b: bytes, micro: bool) -> str | None:
    parts = _parts(b, ints=(1, 2))
    seconds, nanos = signed(parts.get(1, 0)), parts.get(2, 0)
    if seconds == _ZERO_TIME and not nanos:
        return None
    if not _ZERO_TIME <= seconds <= _MAX_TIME or not 0 <= nanos < 10**9:
        raise ValueError(f"a time out of range ({seconds} s, {nanos} ns)")
    t = time.gmtime(seconds)
    text = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}")
    return f"{text}.{nanos // 1000:06d}Z" if micro else text + "Z"


def _scalar(kind: str, value: Any, sub: Schema | None, strict: bool) -> Any:
    if kind == "s":
        return _blob(value).decode()
    if kind == "b":
        return base64.b64encode(_blob(value)).decode()
    if kind == "i":
        return signed(_int(value))
    if kind == "bool":
        return bool(_int(value))
    if kind in ("t", "mt"):
        return _time(value, kind == "mt")
    if kind == "q":
        return decode_message(_blob(value), {1: ("string", "s")}, strict).get("string", "")
    if kind == "raw":  # a RawExtension-like {Raw: JSON bytes}
        return json.loads(_parts(value, blobs=(1,)).get(1, b"{}"))
    if kind == "ios":
        parts = _parts(value, ints=(1, 2), blobs=(3,))
        return bytes(parts.get(3, b"")).decode() if parts.get(1) == 1 else \
            signed(parts.get(2, 0))
    if kind == "m":
        return decode_message(_blob(value), sub or {}, strict)
    raise Unknown(kind)


def decode_message(b: bytes, schema: Schema, strict: bool = True) -> dict[str, Any]:
    """The JSON form of one message.  ValueError (UnicodeDecodeError among them) when it does
    not decode; ``Unknown`` for a field the table lacks, unless not ``strict``."""
    out: dict[str, Any] = {}
    keep: set[str] = set()
    for number, _wire, value in protowire.fields(b):
        spec = schema.get(number)
        if spec is None:
            if strict:
                raise Unknown(number)
            continue
        name, kind = spec[0], spec[1]
        sub = spec[2] if len(spec) > 2 else None
        pointer = kind.startswith("?")
        kind = kind.lstrip("?")
        if kind == "inline":
            out.update(decode_message(_blob(value), sub or {}, strict))
            continue
        if kind.startswith("map:"):
            entry = _parts(value, blobs=(1, 2))
            key = bytes(entry.get(1, b"")).decode()
            out.setdefault(name, {})[key] = _scalar(kind[4:], entry.get(2, b""), None, strict)
            keep.add(name)
            continue
        if kind.endswith("*"):
            out.setdefault(name, []).append(_scalar(kind[:-1], value, sub, strict))
            continue
        out[name] = _scalar(kind, value, sub, strict)
        if pointer:
            keep.add(name)
    # Go's JSON omits the empty values of non-pointer fields (omitempty)
    return {k: v for k, v in out.items() if k in keep or v not in ("", 0, False, [], {})
            or isinstance(v, dict)}


def type_of(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of a ``k8s\\0`` envelope (runtime.Unknown).
    ValueError when ``body`` is not one."""
    if not body.startswith(protowire.MAGIC):
        raise ValueError("the protobuf body lacks the k8s envelope")
    envelope = _parts(body[len(protowire.MAGIC):], blobs=(1, 2))
    type_meta = {n: bytes(v).decode() for n, v in
                 _parts(envelope.get(1, b""), blobs=(1, 2)).items() if n in (1, 2)}
    return type_meta.get(1, ""), type_meta.get(2, ""), bytes(envelope.get(2, b""))


def decode_object(body: bytes, schemas: dict[tuple[str, str], Schema] | None = None,
                  *, strict: bool = True) -> dict[str, Any]:
    """The JSON form of an enveloped object of a kind in ``schemas`` (the hub's by default).

    ``Unknown`` for a kind or a field the tables lack; ValueError for a body that does not
    decode."""
    api_version, kind, raw = type_of(body)
    schema = (HUB_SCHEMAS if schemas is None else schemas).get((api_version, kind))
    if schema is None:
        raise Unknown(f"{api_version} {kind}")
    return {"kind": kind, "apiVersion": api_version, **decode_message(raw, schema, strict)}
