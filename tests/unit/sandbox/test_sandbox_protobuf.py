"""Protobuf request bodies: the field table checked against the Kubernetes project's fixture
pairs (every field populated, serialized both ways), and strictness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubesandbox import protobuf
from yurthub.errors import BadRequest, UnsupportedMediaType

FIXTURES = Path("/work/shared/fixtures/k8s-api-testdata")
KINDS = {
    ("v1", "ConfigMap"): "core.v1.ConfigMap", ("v1", "Secret"): "core.v1.Secret",
    ("v1", "Namespace"): "core.v1.Namespace", ("v1", "ServiceAccount"): "core.v1.ServiceAccount",
    ("v1", "Service"): "core.v1.Service", ("v1", "Event"): "core.v1.Event",
    ("v1", "Node"): "core.v1.Node", ("v1", "Pod"): "core.v1.Pod",
    ("coordination.k8s.io/v1", "Lease"): "coordination.k8s.io.v1.Lease",
}


def prune(value: Any, schema: protobuf.Schema) -> Any:
    """The JSON restricted to the fields the table describes."""
    out: dict[str, Any] = {}
    for spec in schema.values():
        name, kind = spec[0], spec[1].lstrip("?")
        sub = spec[2] if len(spec) > 2 else None
        if kind == "inline":
            out.update(prune(value, sub))
            continue
        if name not in value:
            continue
        v = value[name]
        if kind.rstrip("*") == "m":
            v = [prune(x, sub) for x in v] if kind.endswith("*") else prune(v, sub)
        out[name] = v
    return out


@pytest.mark.parametrize("key", sorted(KINDS), ids=lambda k: k[1])
def test_the_table_matches_the_fixture_pairs(key):
    name = KINDS[key]
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    decoded = protobuf.decode_object((FIXTURES / f"{name}.pb").read_bytes(), strict=False)
    schema = protobuf.SCHEMAS[key]
    want = {"kind": expected["kind"], "apiVersion": expected["apiVersion"],
            **prune(expected, schema)}
    assert decoded == want


@pytest.mark.parametrize("name", ["core.v1.ConfigMap", "core.v1.Secret", "core.v1.Namespace",
                                  "core.v1.ServiceAccount", "coordination.k8s.io.v1.Lease"])
def test_simple_kinds_decode_strictly_and_completely(name):
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert protobuf.decode_object((FIXTURES / f"{name}.pb").read_bytes()) == expected


def test_unknown_fields_and_kinds_are_415_not_silently_dropped():
    with pytest.raises(UnsupportedMediaType):  # a full Pod has fields beyond the table
        protobuf.decode_object((FIXTURES / "core.v1.Pod.pb").read_bytes())
    with pytest.raises(UnsupportedMediaType):
        protobuf.decode_object((FIXTURES / "apps.v1.Deployment.pb").read_bytes())
    with pytest.raises(BadRequest):
        protobuf.decode_object(b"not protobuf")
    with pytest.raises(BadRequest):
        protobuf.decode_object(b"k8s\x00\x0a\xff")


def test_zero_values_are_omitted_as_go_json_does():
    # A ConfigMap with only a name: generated code writes every string field, even empty ones.
    meta = b"\x0a\x01a" + b"\x12\x00" + b"\x1a\x00"          # name "a", generateName "", ns ""
    raw = b"\x0a" + bytes([len(meta)]) + meta
    type_meta = b"\x0a\x02v1\x12\x09ConfigMap"
    body = b"k8s\x00" + b"\x0a" + bytes([len(type_meta)]) + type_meta + \
        b"\x12" + bytes([len(raw)]) + raw
    assert protobuf.decode_object(body) == {"kind": "ConfigMap", "apiVersion": "v1",
                                            "metadata": {"name": "a"}}


@pytest.mark.parametrize("name", ["core.v1.ConfigMap", "core.v1.Secret", "core.v1.Namespace",
                                  "core.v1.ServiceAccount", "coordination.k8s.io.v1.Lease"])
def test_answers_encode_byte_for_byte_as_kubernetes_does(name):
    """The sandbox's protobuf answers: the fixture's JSON encodes to the fixture's bytes."""
    obj = json.loads((FIXTURES / f"{name}.json").read_text())
    assert protobuf.encode(obj) == (FIXTURES / f"{name}.pb").read_bytes()


def test_a_list_encodes_its_items_and_decodes_back():
    cm = json.loads((FIXTURES / "core.v1.ConfigMap.json").read_text())
    item = {k: v for k, v in cm.items() if k not in ("kind", "apiVersion")}
    body = protobuf.encode({"kind": "ConfigMapList", "apiVersion": "v1",
                            "metadata": {"resourceVersion": "42"}, "items": [item, item]})
    single = protobuf.encode(cm)
    assert body.startswith(b"k8s\x00") and len(body) > 2 * (len(single) - 30)


def test_an_object_with_a_field_the_table_lacks_is_not_encoded():
    cm = json.loads((FIXTURES / "core.v1.ConfigMap.json").read_text())
    with pytest.raises(protobuf.NotEncodable):
        protobuf.encode({**cm, "unknownField": 1})
    with pytest.raises(protobuf.NotEncodable):
        protobuf.encode({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {}})
