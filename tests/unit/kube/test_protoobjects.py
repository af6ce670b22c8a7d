"""kube/protoobjects.py: the hub's protobuf objects read as the Kubernetes project wrote them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubesandbox import protobuf
from yurthub.kube import protoobjects

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
