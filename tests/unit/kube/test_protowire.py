"""Protobuf's wire format, read without a schema (kube/protowire.py)."""

from __future__ import annotations

import pytest

from yurthub.kube import protowire


def test_each_wire_type_is_read_with_its_number():
    # field 1 varint 300; field 2 bytes "hi"; field 3 fixed64; field 4 fixed32
    data = (b"\x08\xac\x02" + b"\x12\x02hi" + b"\x19" + bytes(range(8)) +
            b"\x25" + bytes(range(4)))
    assert protowire.fields(data) == [(1, 0, 300), (2, 2, b"hi"), (3, 1, bytes(range(8))),
                                      (4, 5, bytes(range(4)))]


@pytest.mark.parametrize("data", [b"\x08\xac", b"\x12\x05hi", b"\x19\x00\x01", b"\x25\x00"])
def test_a_truncated_field_is_refused_not_read_short(data):
    with pytest.raises(ValueError, match="truncated"):
        protowire.fields(data)


def test_an_unknown_wire_type_is_refused():
    with pytest.raises(ValueError, match="wire type 3"):
        protowire.fields(b"\x0b")  # field 1, a deprecated group start
