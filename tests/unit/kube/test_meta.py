"""Object metadata and type meta, over every built-in type's real serialization."""

from __future__ import annotations

import json

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub.errors import DecodeError
from yurthub.kube.meta import object_meta, rv_int, with_type_meta

TESTDATA = K8S_TESTDATA
FIXTURES = sorted(TESTDATA.glob("*.json"))
TYPED = [p for p in FIXTURES if p.name != "core.v1.WatchEvent.json"]


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def test_the_fixtures_are_there():
    assert len(TYPED) > 150


@pytest.mark.parametrize("path", TYPED, ids=lambda p: p.stem)
def test_object_meta_of_every_type(path):
    obj = json.loads(path.read_bytes())
    m = object_meta(obj)
    meta = obj.get("metadata") or {}
    assert (m.kind, m.api_version) == (obj["kind"], obj["apiVersion"])
    assert (m.namespace, m.name, m.uid) == (
        meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""))
    assert m.resource_version == meta.get("resourceVersion", "")
    assert m.generate_name == meta.get("generateName", "")
    assert dict(m.labels) == (meta.get("labels") or {})
    assert m.deletion_timestamp == meta.get("deletionTimestamp")


@pytest.mark.parametrize("path", TYPED, ids=lambda p: p.stem)
def test_with_type_meta_keeps_objects_that_have_it(path):
    raw = path.read_bytes()
    obj = json.loads(raw)
    assert with_type_meta(raw, obj["kind"], obj["apiVersion"]) is raw
    assert with_type_meta(raw, obj["kind"], obj["apiVersion"], obj) is raw


@pytest.mark.parametrize("path", TYPED, ids=lambda p: p.stem)
@pytest.mark.parametrize("indent", [None, 2])
def test_with_type_meta_splices_into_list_items(path, indent):
    obj = json.loads(path.read_bytes())
    kind, api_version = obj.pop("kind"), obj.pop("apiVersion")
    item = json.dumps(obj, indent=indent, separators=None if indent else (",", ":")).encode()
    out = with_type_meta(item, kind, api_version, obj)
    assert out.startswith(b'{"kind":' + json.dumps(kind).encode() + b',"apiVersion":')
    if obj:
        assert out.endswith(b"," + item[1:])  # the apiserver's bytes are kept as they are
    assert json.loads(out) == {"kind": kind, "apiVersion": api_version, **obj}
    assert with_type_meta(item, kind, api_version) == out  # decodes raw itself when needed


def test_with_type_meta_re_encodes_when_one_key_differs():
    raw = b'{"apiVersion":"v1","metadata":{"name":"p","labels":{"a":"\xc3\xa9"}}}'
    out = with_type_meta(raw, "Pod", "v1")
    assert out.startswith(b'{"kind":"Pod","apiVersion":"v1",')
    assert json.loads(out) == {"kind": "Pod", "apiVersion": "v1",
                               "metadata": {"name": "p", "labels": {"a": "é"}}}
    other = with_type_meta(b'{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1"}',
                           "Pod", "v1")
    assert other == b'{"kind":"Pod","apiVersion":"v1"}'


@pytest.mark.parametrize("raw,expected", [
    (b"{}", b'{"kind":"Lease","apiVersion":"coordination.k8s.io/v1"}'),
    (b" { } ", b'{"kind":"Lease","apiVersion":"coordination.k8s.io/v1" } '),
    (b'{"metadata":{}}',
     b'{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{}}'),
    (b'\n{ "metadata" : {} }\n',
     b'{"kind":"Lease","apiVersion":"coordination.k8s.io/v1", "metadata" : {} }\n'),
])
def test_with_type_meta_splice_shapes(raw, expected):
    out = with_type_meta(raw, "Lease", "coordination.k8s.io/v1")
    assert out == expected
    assert json.loads(out)["kind"] == "Lease"


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"not json", b"{", b""])
def test_with_type_meta_refuses_what_is_not_an_object(raw):
    with pytest.raises(DecodeError):
        with_type_meta(raw, "Pod", "v1")


@pytest.mark.parametrize("value,expected", [
    ("", 0), ("0", 0), ("1", 1), ("123456", 123456), ("007", 7),
    ("18446744073709551615", 2**64 - 1),
])
def test_rv_int(value, expected):
    assert rv_int(value) == expected


@pytest.mark.parametrize("value", [
    "-1", "+1", " 1", "1 ", "1_000", "1.0", "abc", "resourceVersionValue", "١٢", "0x10",
    "18446744073709551616",
])
def test_rv_int_refuses_what_is_not_a_resource_version(value):
    with pytest.raises(DecodeError):
        rv_int(value)


def test_object_meta_rv_int_and_defaults():
    m = object_meta({"metadata": {"name": "a", "resourceVersion": "42", "labels": None}})
    assert m.rv_int() == 42
    assert (m.kind, m.api_version, m.namespace, m.uid, m.generate_name) == ("", "", "", "", "")
    assert dict(m.labels) == {}
    assert m.deletion_timestamp is None
    assert object_meta({}).name == ""
    with pytest.raises(DecodeError):
        object_meta({"metadata": {"resourceVersion": "x"}}).rv_int()


@pytest.mark.parametrize("obj", [
    [], "pod", None,
    {"metadata": []},
    {"metadata": {"name": 5}},
    {"metadata": {"namespace": ["a"]}},
    {"metadata": {"labels": ["a"]}},
    {"metadata": {"labels": {"a": 1}}},
    {"metadata": {"deletionTimestamp": 5}},
    {"kind": 3},
])
def test_object_meta_refuses_mistyped_objects(obj):
    with pytest.raises(DecodeError):
        object_meta(obj)

