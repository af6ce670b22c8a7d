"""Protobuf's wire format, read: the fields of one message, without a schema.

Kubernetes' protobuf bodies (``k8s\\0`` + runtime.Unknown) are read field by field by who
needs them: kubelet's TokenRequest (proxy/tokens.py) and the sandbox's decoder of the kinds
it serves.  Pure; raises ValueError on a truncated body or an unknown wire type.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"   # the envelope's prefix


def varint(data: bytes, i: int) -> tuple[int, int]:
    """The varint at ``i`` and the offset after it."""
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("the protobuf body is truncated")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of a message: varints as int, the
    rest (length-delimited, 64- and 32-bit) as bytes."""
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(data):
        tag, i = varint(data, i)
        number, wire = tag >> 3, tag & 7
        value: Any
        if wire == 0:
            value, i = varint(data, i)
        elif wire in (1, 2, 5):
            size = 8 if wire == 1 else 4 if wire == 5 else None
            if size is None:
                size, i = varint(data, i)
            if i + size > len(data):
                raise ValueError("the protobuf body is truncated")
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out
