"""Does a cached file hold the object its path names?  The pure checks, case by case."""

from __future__ import annotations

import json

import pytest

from yurthub.cache.integrity import body_problem, expected_type, key_problem
from yurthub.storage import CollectionKey

PODS = CollectionKey("kubelet", "", "v1", "pods", True)
NODES = CollectionKey("kubelet", "", "v1", "nodes", False)
LEASES = CollectionKey("kubelet", "coordination.k8s.io", "v1", "leases", True)
WIDGETS = CollectionKey("operator", "example.com", "v1alpha1", "widgets", True)
POD_META = CollectionKey("kubelet", "core.partialobjectmetadatas.v1.meta.k8s.io", "v1", "pods",
                         True)


def obj(kind, api_version, name, namespace=None):
    md = {"name": name, **({"namespace": namespace} if namespace is not None else {})}
    return {"kind": kind, "apiVersion": api_version, "metadata": md}


@pytest.mark.parametrize("ck, kind, want", [
    (PODS, "", ("Pod", "v1")),
    (NODES, "", ("Node", "v1")),
    (LEASES, "", ("Lease", "coordination.k8s.io/v1")),
    (WIDGETS, "", ("", "example.com/v1alpha1")),          # not known: only the apiVersion
    (WIDGETS, "Widget", ("Widget", "example.com/v1alpha1")),
    (POD_META, "", ("PartialObjectMetadata", "meta.k8s.io/v1")),
])
def test_expected_type(ck, kind, want):
    assert expected_type(ck, kind) == want


@pytest.mark.parametrize("ck, ns, name, o, problem", [
    (PODS, "default", "p1", obj("Pod", "v1", "p1", "default"), ""),
    (NODES, "", "n1", obj("Node", "v1", "n1"), ""),
    (NODES, "", "n1", obj("Node", "v1", "n1", ""), ""),
    (LEASES, "kube-node-lease", "n1", obj("Lease", "coordination.k8s.io/v1", "n1",
                                          "kube-node-lease"), ""),
    (POD_META, "default", "p1", obj("PartialObjectMetadata", "meta.k8s.io/v1", "p1", "default"),
     ""),
    (WIDGETS, "default", "w", obj("Gadget", "example.com/v1alpha1", "w", "default"), ""),
    (PODS, "default", "p1", obj("Pod", "v1", "p2", "default"), "named 'p2'"),
    (PODS, "default", "p1", obj("Pod", "v1", "p1", "x"), "namespace 'x'"),
    (PODS, "default", "p1", obj("Pod", "v1", "p1"), "namespace ''"),
    (NODES, "", "n1", obj("Node", "v1", "n1", "default"), "namespace 'default'"),
    (PODS, "default", "p1", obj("ConfigMap", "v1", "p1", "default"), "kind 'ConfigMap'"),
    (PODS, "default", "p1", obj("Pod", "apps/v1", "p1", "default"), "apiVersion 'apps/v1'"),
    (LEASES, "kube-node-lease", "n1", obj("Lease", "coordination.k8s.io/v1beta1", "n1",
                                          "kube-node-lease"), "apiVersion"),
    (PODS, "default", "p1", {"kind": "Pod", "apiVersion": "v1"}, "no metadata"),
    (PODS, "default", "p1", [1, 2], "not a JSON object"),
])
def test_key_problem(ck, ns, name, o, problem):
    got = key_problem(ck, ns, name, o)
    assert (got == "") if not problem else (problem in got), got


def test_a_recorded_kind_is_checked_for_custom_resources():
    o = obj("Gadget", "example.com/v1alpha1", "w", "default")
    assert "kind 'Gadget'" in key_problem(WIDGETS, "default", "w", o, kind="Widget")


@pytest.mark.parametrize("raw", [b'{"kind": "Pod", "metad', b"", b"\xff\xfe", b"nul\x00l"])
def test_torn_bytes(raw):
    assert body_problem(PODS, "default", "p1", raw).startswith("torn or not JSON")


def test_a_whole_body():
    raw = json.dumps(obj("Pod", "v1", "p1", "default")).encode()
    assert body_problem(PODS, "default", "p1", raw) == ""
