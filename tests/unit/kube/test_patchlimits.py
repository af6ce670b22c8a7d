"""kube-apiserver's bounds on PATCH bodies, checked before kube.patch does the work."""

from __future__ import annotations

import json

import pytest

from yurthub.errors import BadRequest, Invalid, RequestEntityTooLarge
from yurthub.kube import patch as kpatch
from yurthub.kube import patchlimits as pl
from yurthub.kube.naming import check_name, check_path_name, check_type, ensure_namespace

LEASE = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "node-0000", "namespace": "kube-node-lease"},
         "spec": {"holderIdentity": "node-0000", "leaseDurationSeconds": 40}}


def bomb(copies: int = 17) -> list[dict]:
    """Each copy doubles the Lease's spec: 2**17 copies of it are 138 MB of JSON."""
    ops = [{"op": "add", "path": "/spec/a", "value": "x" * 64}]
    ops += [{"op": "copy", "from": "/spec", "path": f"/spec/c{i}"} for i in range(copies)]
    return ops


class Counting:
    """kube.patch.apply_json_patch, counting what it is asked to apply."""

    def __init__(self) -> None:
        self.ops = 0

    def __call__(self, obj, ops):
        self.ops += len(ops)
        return kpatch.apply_json_patch(obj, ops)


def test_the_copy_bomb_stops_at_kube_apiservers_copy_limit_before_the_copy_is_made():
    apply = Counting()
    with pytest.raises(kpatch.JSONPatchFailed) as e:
        pl.apply_json_patch(LEASE, bomb(), apply)
    assert e.value.code == 422 and e.value.reason == "Invalid"
    assert e.value.message == kpatch.GENERIC_INVALID
    assert e.value.detail.startswith("Unable to complete the copy, the accumulated size "
                                     "increase of copy is ")
    assert e.value.detail.endswith(f"exceeding the limit {3 << 20}")
    copied = int(e.value.detail.split(" is ")[1].split(",")[0])
    assert copied > 3 << 20
    # The copy that would pass the limit was never applied, nor anything after it.
    assert apply.ops < len(bomb())


def test_copies_within_the_limit_apply_as_kube_patch_applies_them():
    ops = bomb(copies=6) + [{"op": "remove", "path": "/spec/a"},
                            {"op": "copy", "from": "/metadata/name", "path": "/spec/who"}]
    assert pl.apply_json_patch(LEASE, ops) == kpatch.apply_json_patch(LEASE, ops)


def test_a_patch_without_copies_is_applied_in_one_call():
    apply = Counting()
    ops = [{"op": "replace", "path": "/spec/holderIdentity", "value": "x"}] * 50
    assert pl.apply_json_patch(LEASE, ops, apply)["spec"]["holderIdentity"] == "x"
    assert apply.ops == 50


def test_an_operation_that_fails_before_a_copy_fails_as_it_would_alone():
    ops = [{"op": "remove", "path": "/spec/nothing"},
           {"op": "copy", "from": "/spec", "path": "/spec/c"}]
    with pytest.raises(Invalid) as e:
        pl.apply_json_patch(LEASE, ops)
    with pytest.raises(Invalid) as alone:
        kpatch.apply_json_patch(LEASE, ops)
    assert e.value.message == alone.value.message


@pytest.mark.parametrize("n, refused", [(10_000, False), (10_001, True)])
def test_more_than_ten_thousand_operations_are_refused_with_413(n, refused):
    ops = [{"op": "test", "path": "/kind", "value": "Lease"}] * n
    if not refused:
        assert pl.apply_json_patch(LEASE, ops) == LEASE
        return
    with pytest.raises(RequestEntityTooLarge) as e:
        pl.apply_json_patch(LEASE, ops)
    assert e.value.code == 413 and e.value.reason == "RequestEntityTooLarge"
    assert e.value.message == ("Request entity too large: The allowed maximum operations in a "
                               "JSON patch is 10000, got 10001")


def test_thousands_of_small_copies_on_a_big_object_are_refused_not_ground_through():
    big = {**LEASE, "data": {f"k{i}": "v" * 100 for i in range(5000)}}  # ~0.6 MB
    ops = [{"op": "copy", "from": "/spec/holderIdentity", "path": f"/spec/h{i}"}
           for i in range(2000)]
    apply = Counting()
    with pytest.raises(RequestEntityTooLarge) as e:
        pl.apply_json_patch(big, [{"op": "test", "path": "/kind", "value": "Lease"}, *ops],
                            apply)
    assert "copy operations of this JSON patch" in e.value.message
    assert apply.ops < 1000


@pytest.mark.parametrize("pointer, size", [
    ("/spec", len(json.dumps(LEASE["spec"], separators=(",", ":")))),
    ("/spec/holderIdentity", len('"node-0000"')),
    ("", len(json.dumps(LEASE, separators=(",", ":")))),
    ("/spec/missing", 0), ("/metadata/name/x", 0), (None, 0),
])
def test_the_size_of_a_copy_source(pointer, size):
    assert pl._source_size(LEASE, pointer) == size


def test_strategic_patches_whose_list_merges_would_grind_are_refused():
    node = {"kind": "Node", "status": {"images": [{"names": [f"i{i}"]} for i in range(50)]}}
    small = {"status": {"images": [{"names": ["new"]}]}}
    pl.check_merge_work(node, small)
    huge = {"status": {"conditions": [{"type": f"T{i}"} for i in range(3000)]}}
    with pytest.raises(RequestEntityTooLarge):
        pl.check_merge_work(node, huge)
    # The object's own long list counts too, also under an ordering directive.
    long_node = {"status": {"addresses": [{"type": "x", "address": str(i)} for i in range(1500)]}}
    order = {"status": {"$setElementOrder/addresses": [{"type": "x"}] * 1000}}
    with pytest.raises(RequestEntityTooLarge):
        pl.check_merge_work(long_node, order)


def test_the_patched_object_has_a_size_limit():
    assert pl.check_result({"a": 1}, 100) == b'{"a":1}'
    with pytest.raises(RequestEntityTooLarge) as e:
        pl.check_result({"a": "x" * 100}, 100)
    assert e.value.code == 413


@pytest.mark.parametrize("obj, name, ns, message", [
    ({"metadata": {"name": "b"}}, "a", "", "the name of the object (b) does not match the "
     "name on the URL (a)"),
    ({"metadata": {}}, "a", "", "the name of the object () does not match the name on the "
     "URL (a)"),
    ({}, "a", "", "the name of the object () does not match the name on the URL (a)"),
    ({"metadata": {"name": "a", "namespace": "x"}}, "a", "y", "the namespace of the object "
     "(x) does not match the namespace on the request (y)"),
    ({"metadata": {"name": "a", "namespace": 3}}, "a", "y", "metadata.namespace of the object "
     "is not a string"),
    ({"metadata": "a"}, "a", "", "the object's metadata is not a JSON object"),
])
def test_check_name_answers_as_kube_apiserver(obj, name, ns, message):
    with pytest.raises(Exception) as e:
        check_name(obj, name, ns)
    assert e.value.code == 400 and e.value.message == message


def test_check_name_accepts_matching_names_and_a_missing_namespace():
    check_name({"metadata": {"name": "a"}}, "a", "ns")
    check_name({"metadata": {"name": "a", "namespace": "ns"}}, "a", "ns")


def test_ensure_namespace_defaults_clears_and_refuses():
    obj: dict = {"metadata": {"name": "a"}}
    ensure_namespace(obj, "ns")
    assert obj["metadata"]["namespace"] == "ns"
    bare: dict = {}
    ensure_namespace(bare, "ns")
    assert bare == {"metadata": {"namespace": "ns"}}
    cluster = {"metadata": {"name": "a", "namespace": "ns"}}
    ensure_namespace(cluster, "")
    assert "namespace" not in cluster["metadata"]
    with pytest.raises(Exception) as e:
        ensure_namespace({"metadata": {"namespace": "x"}}, "y")
    assert e.value.code == 400 and e.value.message == (
        "the namespace of the provided object does not match the namespace sent on the "
        "request")


@pytest.mark.parametrize("name, message", [
    ("..", 'Name parameter invalid: "..": may not be \'..\''),
    (".", 'Name parameter invalid: ".": may not be \'.\''),
    ("a%b", 'Name parameter invalid: "a%b": may not contain \'%\''),
    ("a/b%", 'Name parameter invalid: "a/b%": may not contain \'/\';may not contain \'%\''),
])
def test_names_that_cannot_be_path_segments(name, message):
    with pytest.raises(Exception) as e:
        check_path_name(name)
    assert e.value.code == 400 and e.value.message == message


@pytest.mark.parametrize("name", ["a", "Foo", "x" * 300, "a.b", "", "ünï"])
def test_names_that_can_be_path_segments(name):
    check_path_name(name)


@pytest.mark.parametrize("obj, message", [
    ({"metadata": {}}, None),                                            # the resource's type
    ({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1"}, None),
    ({"kind": "", "apiVersion": ""}, None),
    ({"kind": "Pod", "apiVersion": "v1"}, "the API version in the data (v1) does not match "
     "the expected API version (coordination.k8s.io/v1)"),
    ({"kind": "Pod"}, 'Pod in version "v1" cannot be handled as a Lease: no kind "Pod" is '
     'registered for version "coordination.k8s.io/v1"'),
    ({"apiVersion": "coordination.k8s.io/v1beta1"}, "the API version in the data "
     "(coordination.k8s.io/v1beta1) does not match the expected API version "
     "(coordination.k8s.io/v1)"),
    ({"kind": 7}, "kind of the object is not a string"),
])
def test_a_body_of_another_type_is_400(obj, message):
    if message is None:
        check_type(obj, "coordination.k8s.io/v1", "Lease")
        return
    with pytest.raises(BadRequest) as e:
        check_type(obj, "coordination.k8s.io/v1", "Lease")
    assert e.value.message == message
