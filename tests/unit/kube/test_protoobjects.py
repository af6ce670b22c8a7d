"""kube/protoobjects.py: the hub's protobuf objects read as the Kubernetes project wrote them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubesandbox import protobuf
from yurthub.kube import protoobjects, protowire

DATA = Path(__file__).resolve().parents[2] / "fixtures" / "k8s-api-testdata"


def test_a_lease_reads_as_its_json_twin():
    body = (DATA / "coordination.k8s.io.v1.Lease.pb").read_bytes()
    want = json.loads((DATA / "coordination.k8s.io.v1.Lease.json").read_text())
    assert protoobjects.decode_object(body) == want


def test_a_kind_the_hub_does_not_read_is_unknown():
    body = (DATA / "core.v1.Pod.pb").read_bytes()
    with pytest.raises(protoobjects.Unknown):
        protoobjects.decode_object(body)


@pytest.mark.parametrize("body", [b"{}", b"k8s\x00\x0a\x40"])
def test_a_body_that_is_no_envelope_is_a_value_error(body):
    with pytest.raises(ValueError):
        protoobjects.decode_object(body)


def test_go_s_zero_creation_timestamp_is_null_as_in_its_json():
    """Go writes a new object's zero creationTimestamp (year 1) in protobuf, and null in
    JSON; it was read as "1-01-01T00:00:00Z", which no client parses back as a time."""
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "node-0000", "namespace": "kube-node-lease",
                          "creationTimestamp": "0001-01-01T00:00:00Z"},
             "spec": {"holderIdentity": "node-0000",
                      "renewTime": "0999-01-02T03:04:05.000006Z"}}
    got = protoobjects.decode_object(protobuf.encode(lease))
    assert got["metadata"] == {"name": "node-0000", "namespace": "kube-node-lease",
                               "creationTimestamp": None}
    assert got["spec"]["renewTime"] == "0999-01-02T03:04:05.000006Z"


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return bytes([number << 3 | wire]) + payload


def _ld(number: int, data: bytes) -> bytes:
    return _field(number, 2, bytes([len(data)]) + data)


def _lease(raw: bytes) -> bytes:
    type_meta = _ld(1, b"coordination.k8s.io/v1") + _ld(2, b"Lease")
    return protowire.MAGIC + _ld(1, type_meta) + _ld(2, raw)


@pytest.mark.parametrize("body", [
    _lease(_ld(1, _ld(7, b"ab"))),                            # generation as bytes
    _lease(_field(1, 0, b"\x03")),                            # metadata as a varint
    _lease(_ld(1, _field(1, 0, b"\x80\x80\x80\x80\x80\x80\x01"))),  # name as 2^42 (a varint)
    _lease(_ld(1, _ld(11, _field(1, 0, b"\x05")))),          # a label's key as a varint
    _lease(_ld(1, _ld(8, _ld(1, b"x")))),                     # a time's seconds as bytes
    _lease(_ld(1, _ld(8, _field(1, 0, b"\xff" * 8 + b"\x3f")))),  # 2^63-1 seconds
    _lease(_ld(2, _ld(4, _field(2, 0, b"\x80\x94\xeb\xdc\x03")))),  # 10^9 nanoseconds
    protowire.MAGIC + _field(1, 0, b"\x01"),                 # the type as a varint
], ids=["bytes-for-int", "varint-message", "varint-string", "varint-map-key",
        "bytes-seconds", "year-out-of-range", "nanos-out-of-range", "varint-type"])
def test_a_field_of_the_wrong_wire_type_or_range_is_a_value_error(body):
    """Each was a TypeError, an OSError or a MemoryError (``bytes(2**42)``): a 500 from the
    hub, where a body that does not decode is the client's 400."""
    with pytest.raises(ValueError):
        protoobjects.decode_object(body)
