"""Protobuf request bodies: decode what kubectl and kubelet send for the built-in kinds.

client-go's typed clients (``kubectl create configmap|secret|namespace|serviceaccount|
service``, ``kubectl run``, a kubelet's node, lease and event writes and its
TokenRequests) send
``application/vnd.kubernetes.protobuf`` bodies and do not fall back to JSON.  This decoder
turns them into the JSON objects kube-apiserver would see, from a table of the field numbers
of k8s.io/api's generated.proto (checked against the Kubernetes project's fixture pairs).
Strict: a field the table does not know is a 415 (send JSON instead), never silently dropped.
The table covers the kinds the sandbox serves as clients create them, not every field.
"""

from __future__ import annotations

import base64
import calendar
import json
import time
from typing import Any

from kubesandbox.protoschemas import SCHEMAS, Schema
from yurthub.errors import BadRequest, UnsupportedMediaType
from yurthub.kube import protoobjects, protowire

PROTOBUF = "application/vnd.kubernetes.protobuf"
_MAGIC = protowire.MAGIC


def _fields(b: bytes) -> list[tuple[int, int, Any]]:
    try:
        return protowire.fields(b)
    except ValueError as e:
        raise BadRequest(str(e)) from None


def decode_object(body: bytes, *, strict: bool = True) -> dict[str, Any]:
    """The JSON form of a ``k8s\\0``-enveloped protobuf object of a known kind.

    ``strict=False`` skips the fields the table does not know (for checking the table).
    """
    if not body.startswith(_MAGIC):
        raise BadRequest("the protobuf body lacks the k8s envelope")
    envelope = {n: v for n, _, v in _fields(body[len(_MAGIC):])}
    type_meta = {n: bytes(v).decode() for n, _, v in _fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    schema = SCHEMAS.get((api_version, kind))
    refuse = UnsupportedMediaType(
        f"the sandbox does not decode protobuf {api_version} {kind} bodies; send "
        "application/json")
    if schema is None:
        raise refuse
    try:
        obj = protoobjects.decode_message(envelope.get(2, b""), schema, strict)
    except protoobjects.Unknown:
        raise refuse from None
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(f"the protobuf body does not decode: {e}") from None
    return {"kind": kind, "apiVersion": api_version, **obj}


# -- answers: the same tables, the other way ----------------------------------------------

LIST_META: Schema = {1: ("selfLink", "s"), 2: ("resourceVersion", "s"), 3: ("continue", "s"),
                     4: ("remainingItemCount", "?i")}


class NotEncodable(Exception):
    """The object has a field (or is of a kind) the table does not know: answer JSON."""


def _key(number: int, wire: int) -> bytes:
    return _uvarint(number << 3 | wire)


def _uvarint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative ints are ten-byte two's complement, as Go writes them
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _key(number, 2) + _uvarint(len(data)) + data


def _parse_time(text: str) -> tuple[int, int]:
    head, _, frac = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return seconds, nanos


def _encode_scalar(number: int, kind: str, value: Any, sub: Schema | None) -> bytes:
    if kind == "s":
        return _bytes_field(number, str(value).encode())
    if kind == "b":
        return _bytes_field(number, base64.b64decode(value))
    if kind in ("i", "bool"):
        return _key(number, 0) + _uvarint(int(value))
    if kind in ("t", "mt"):
        seconds, nanos = _parse_time(value)
        inner = _key(1, 0) + _uvarint(seconds) + _key(2, 0) + _uvarint(nanos)
        return _bytes_field(number, inner)
    if kind == "q":
        return _bytes_field(number, _bytes_field(1, str(value).encode()))
    if kind == "raw":
        return _bytes_field(number, _bytes_field(1, json.dumps(value).encode()))
    if kind == "ios":
        inner = (_key(1, 0) + _uvarint(1) + _bytes_field(3, value.encode())
                 if isinstance(value, str) else _key(1, 0) + _uvarint(0) + _key(2, 0)
                 + _uvarint(int(value)))
        return _bytes_field(number, inner)
    if kind == "m":
        if not isinstance(value, dict):
            raise NotEncodable(f"field {number} is not an object")
        return _bytes_field(number, _encode(value, sub or {}))
    raise NotEncodable(kind)


def _encode(obj: dict[str, Any], schema: Schema, used: set[str] | None = None) -> bytes:
    """``obj`` as the message ``schema`` describes, fields in number order (as Go writes
    them).  ``used`` collects the keys an inline message took from ``obj``; without it, a
    key no field takes makes the object NotEncodable."""
    out = bytearray()
    taken: set[str] = set()
    for number in sorted(schema):
        spec = schema[number]
        name, kind = spec[0], spec[1].lstrip("?")
        sub = spec[2] if len(spec) > 2 else None
        if kind == "inline":
            part: set[str] = set()
            out += _bytes_field(number, _encode(obj, sub or {}, part))
            taken |= part
            continue
        if name not in obj or obj[name] is None:
            continue
        taken.add(name)
        value = obj[name]
        if kind.startswith("map:"):
            for key in sorted(value):  # Go sorts map keys
                entry = _bytes_field(1, key.encode()) + _encode_scalar(2, kind[4:], value[key],
                                                                        None)
                out += _bytes_field(number, entry)
        elif kind.endswith("*"):
            for item in value:
                out += _encode_scalar(number, kind[:-1], item, sub)
        else:
            out += _encode_scalar(number, kind, value, sub)
    if used is not None:
        used |= taken
    elif set(obj) - taken:
        raise NotEncodable(f"fields {sorted(set(obj) - taken)}")
    return bytes(out)


def encode(obj: dict[str, Any]) -> bytes:
    """The ``k8s\\0``-enveloped protobuf of an object or a list of a kind in the table, as
    kube-apiserver answers ``Accept: application/vnd.kubernetes.protobuf``.

    Raises NotEncodable when the table lacks the kind or one of the object's fields (the
    caller answers JSON then).  Go also writes the zero values of non-pointer fields that
    JSON omits; this leaves them out, so real protobuf answers are a little longer.
    """
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    schema = SCHEMAS.get((api_version, kind))
    if schema is None and kind.endswith("List"):
        item = SCHEMAS.get((api_version, kind[:-4]))
        if item is not None:
            schema = {1: ("metadata", "m", LIST_META), 2: ("items", "m*", item)}
    if schema is None:
        raise NotEncodable(f"{api_version} {kind}")
    try:
        raw = _encode(body, schema)
    except (TypeError, ValueError, AttributeError) as e:
        raise NotEncodable(str(e)) from None
    type_meta = _bytes_field(1, api_version.encode()) + _bytes_field(2, kind.encode())
    return _MAGIC + (_bytes_field(1, type_meta) + _bytes_field(2, raw) + _bytes_field(3, b"")
                     + _bytes_field(4, b""))
