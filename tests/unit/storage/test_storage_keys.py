"""Cache keys: every path segment is validated before anything touches the disk."""

from __future__ import annotations

import os

import pytest
from storage_support import NODES, PODS, body, open_store, tree

from yurthub.errors import InvalidKeyError, StorageError
from yurthub.storage import CollectionKey, validate_name
from yurthub.storage.keys import nonresource_filename, nonresource_path

BAD_SEGMENTS = [
    "..", ".", "/", "a/b", "../etc", "%2e%2e", "%2E%2E", "%2f", "a\0b", "\0", "", "Upper",
    "ABC", "a" * 254, "_index", "_state", ".hidden", ".stage.1", "-lead", "trail-", "a b",
    "a\\b", "ünï", "a\n",
]


@pytest.mark.parametrize("name", BAD_SEGMENTS)
def test_bad_object_names_are_refused(name):
    with pytest.raises(InvalidKeyError):
        PODS.check_object("default", name)
    with pytest.raises(InvalidKeyError):
        validate_name("", name)


@pytest.mark.parametrize("ns", [*BAD_SEGMENTS, "a" * 64, "a.b"])
def test_bad_namespaces_are_refused(ns):
    with pytest.raises(InvalidKeyError):
        PODS.check_object(ns, "pod-1")


@pytest.mark.parametrize("ns,name", [
    ("default", "pod-1"), ("kube-system", "coredns-5d78c9869d-x2x9z"), ("a" * 63, "b" * 253),
    ("x", "node-1.example.com"), ("ns1", "0"),
])
def test_valid_names_are_accepted(ns, name):
    PODS.check_object(ns, name)
    validate_name(ns, name)
    assert PODS.object_relpath(ns, name) == f"kubelet/pods.v1.core/{ns}/{name}"


def test_scope_decides_whether_a_namespace_is_required():
    with pytest.raises(InvalidKeyError):
        PODS.check_object("", "pod-1")
    with pytest.raises(InvalidKeyError):
        NODES.check_object("default", "node-1")
    assert NODES.object_relpath("", "node-1") == "kubelet/nodes.v1.core/node-1"


@pytest.mark.parametrize("field", ["component", "group", "version", "resource"])
@pytest.mark.parametrize("value", ["..", ".", "/", "a/b", "%2e%2e", "x\0", "Pods", "_x", ".x"])
def test_bad_collection_segments_are_refused(field, value):
    kw = {"component": "kubelet", "group": "apps", "version": "v1", "resource": "deployments"}
    kw[field] = value
    with pytest.raises(InvalidKeyError):
        CollectionKey(**kw, namespaced=True)


@pytest.mark.parametrize("component,group,version,resource,dirname", [
    ("kubelet", "", "v1", "pods", "pods.v1.core"),
    ("kubelet", "core", "v1", "pods", "pods.v1.core"),
    ("kube-proxy", "discovery.k8s.io", "v1", "endpointslices",
     "endpointslices.v1.discovery.k8s.io"),
    ("coredns", "coordination.k8s.io", "v1", "leases", "leases.v1.coordination.k8s.io"),
    ("raven-agent-ds", "raven.openyurt.io", "v1beta1", "gateways",
     "gateways.v1beta1.raven.openyurt.io"),
    ("go-http-client", "apps", "v2alpha1", "daemon-sets", "daemon-sets.v2alpha1.apps"),
])
def test_collection_dirnames(component, group, version, resource, dirname):
    ck = CollectionKey(component, group, version, resource, True)
    assert ck.dirname == dirname
    assert CollectionKey.from_dirname(component, dirname, True) == ck


def test_too_long_collection_dirname_is_refused():
    with pytest.raises(InvalidKeyError):
        CollectionKey("kubelet", "g" * 200, "v1", "r" * 60, True)
    with pytest.raises(InvalidKeyError):
        CollectionKey("k" * 254, "", "v1", "pods", True)


@pytest.mark.parametrize("path", ["/version", "/api", "/apis/discovery.k8s.io/v1", "/..",
                                  "/a%2fb", "/_x"])
def test_nonresource_paths_become_one_safe_file_name(path):
    name = nonresource_filename(path)
    assert "/" not in name and name.startswith("%2F") and name not in (".", "..")
    assert nonresource_path(name) == path


@pytest.mark.parametrize("path", ["version", "", "/a\0", "/a?b=1", "/" + "x" * 300, None])
def test_bad_nonresource_paths_are_refused(path):
    with pytest.raises(InvalidKeyError):
        nonresource_filename(path)


def test_bad_names_write_nothing(tmp_path):
    store = open_store(tmp_path / "c")
    before = tree(tmp_path)
    with store.transaction(PODS) as txn:
        for name in ["..", "../../x", "a/b", "%2e%2e", ""]:
            with pytest.raises(InvalidKeyError):
                txn.put("default", name, body("x"), {})
            with pytest.raises(InvalidKeyError):
                txn.delete("default", name)
        for ns in ["..", "a/b", "_index"]:
            with pytest.raises(InvalidKeyError):
                txn.put(ns, "pod-1", body("x"), {})
        txn.commit()
    with pytest.raises(InvalidKeyError):
        store.read(PODS, "..", "pod-1")
    after = tree(tmp_path)
    # The transaction created the collection, nothing else.
    assert {p for p in after if p not in before} <= {
        "c/kubelet", "c/kubelet/pods.v1.core", "c/kubelet/pods.v1.core/_collection"}
    store.close()


def test_planted_symlinks_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    root = tmp_path / "c"
    store = open_store(root)
    with store.transaction(PODS) as txn:
        txn.put("default", "pod-1", body("pod-1", "default"), {})
        txn.commit()
    coll = root / "kubelet" / "pods.v1.core"
    # A namespace directory that is a symlink to a directory outside the root.
    os.symlink(outside, coll / "evil")
    with store.transaction(PODS) as txn:
        with pytest.raises(StorageError):
            txn.put("evil", "victim", b'{"x": 1}', {})
    with pytest.raises(StorageError):
        store.read(PODS, "evil", "victim")
    # An object file that is a symlink to a file outside: reads refuse it, a put replaces the
    # link itself.
    os.symlink(outside / "victim", coll / "default" / "pod-2")
    with pytest.raises(StorageError):
        store.read(PODS, "default", "pod-2")
    with store.transaction(PODS) as txn:
        txn.put("default", "pod-2", body("pod-2", "default"), {})
        txn.commit()
    assert not os.path.islink(coll / "default" / "pod-2")
    # A component directory that is a symlink: never entered.
    os.symlink(outside, root / "kube-proxy")
    ck = CollectionKey("kube-proxy", "", "v1", "services", True)
    with pytest.raises(StorageError):
        store.transaction(ck)
    store.close()
    store = open_store(root)
    assert ck not in store.collections()
    store.close()
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_text() == "precious"
