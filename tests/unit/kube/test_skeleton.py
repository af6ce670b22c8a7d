"""The partial decoder of list items: the index sees what a full decode would show it."""

from __future__ import annotations

import json

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub.cache.mutation import index_meta
from yurthub.errors import DecodeError
from yurthub.kube import skeleton
from yurthub.kube.fields import read_paths
from yurthub.kube.jsonscan import HAVE_MSGSPEC
from yurthub.kube.resources import BUILTIN, builtin

PODS = builtin("", "v1", "pods")


def fixture_of(rt) -> bytes | None:
    prefix = rt.group or "core"
    path = K8S_TESTDATA / f"{prefix}.{rt.version}.{rt.kind}.json"
    return path.read_bytes() if path.exists() else None


def test_every_builtin_type_indexes_the_same_as_a_full_decode():
    """For each built-in type the Kubernetes project serialized, as a list item would come
    (kind and apiVersion dropped), the skeleton gives the same kind, apiVersion, metadata
    and selectable field values as json.loads; and it leaves the rest out."""
    checked = 0
    for rt in BUILTIN:
        raw = fixture_of(rt)
        if raw is None:
            continue
        full = json.loads(raw)
        decode = skeleton.decoder(read_paths(rt))
        if not HAVE_MSGSPEC:
            assert decode is None  # the stdlib parser builds every item anyway
            return
        assert decode is not None
        for body in (raw, json.dumps({k: v for k, v in full.items()
                                      if k not in ("kind", "apiVersion")}).encode()):
            want = json.loads(body)
            got = decode(body)
            assert got.get("kind") == want.get("kind")
            assert got.get("apiVersion") == want.get("apiVersion")
            assert got.get("metadata") == want.get("metadata")
            assert index_meta(got, rt) == index_meta(want, rt), rt.resource
        checked += 1
    assert checked >= 10


def pod_decoder():
    """The decoder a pod list uses; without msgspec there is none (and must be none: the
    stdlib parser has built each item by the time it knows where the item ends)."""
    decode = skeleton.decoder(read_paths(PODS) + ("spec.nodeName",))
    assert (decode is None) == (not HAVE_MSGSPEC)
    return decode


def test_a_pod_keeps_only_what_selectors_read():
    raw = (K8S_TESTDATA / "core.v1.Pod.json").read_bytes()
    decode = pod_decoder()
    if decode is None:
        return
    got = decode(raw)
    assert set(got) <= {"kind", "apiVersion", "metadata", "spec", "status"}
    assert "containers" not in got["spec"] and "volumes" not in got["spec"]
    assert got["spec"]["nodeName"] == json.loads(raw)["spec"]["nodeName"]
    assert len(json.dumps(got)) < len(raw) / 3


@pytest.mark.parametrize("body", [
    b'{"metadata":{"name":"a"},"spec":[]}',            # a member that is not an object
    b'{"metadata":{"name":"a"},"spec":"x","status":7}',
    b'{"metadata":{"name":"a"},"spec":null}',
    b'{"spec":{"nodeName":"a"},"spec":{"nodeName":"b"}}',  # the last duplicate wins
    b'  {"metadata":{"name":"a","labels":{"k":"v"}}}  ',
])
def test_odd_shapes_give_what_a_full_decode_gives(body):
    decode = pod_decoder()
    if decode is None:
        return
    want = json.loads(body)
    got = decode(body)
    assert index_meta(got, PODS) == index_meta(want, PODS)
    for key in ("metadata", "spec"):
        if not isinstance(want.get(key), dict) or key == "metadata":
            assert got.get(key) == want.get(key)


@pytest.mark.parametrize("body", [b"[1,2]", b'"pod"', b'{"metadata":', b'{"a":1} x', b""])
def test_what_is_not_one_object_is_an_error(body):
    decode = pod_decoder()
    if decode is None:
        return
    with pytest.raises(DecodeError):
        decode(body)
