"""Merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch as kube-apiserver
applies them, on hand-written shapes, kubelet-style status patches and the API fixtures."""

from __future__ import annotations

import copy
import json

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub.errors import ApiError, BadRequest, Invalid, UnsupportedMediaType
from yurthub.kube import patch as P

FIXTURES = K8S_TESTDATA


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# -- RFC 7386, appendix A ---------------------------------------------------------------------

@pytest.mark.parametrize("target, patch, result", [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc7386(target, patch, result):
    before = copy.deepcopy(target)
    assert P.apply_merge_patch(target, patch) == result
    assert target == before


@pytest.mark.parametrize("patch", [None, "bar", 1, True])
def test_merge_patch_that_is_null_or_a_scalar_is_a_bad_request(patch):
    # RFC 7386 would answer the patch itself; kube-apiserver's library refuses it.
    with pytest.raises(BadRequest) as e:
        P.apply_merge_patch({"a": "foo"}, patch)
    assert e.value.message == "Invalid JSON Patch"


def test_merge_patch_prunes_nulls_in_objects_it_adds_even_inside_arrays():
    # evanphx/json-patch prunes the nulls of a value that has nothing to merge into.
    assert P.apply_merge_patch({}, {"a": [{"b": None, "c": 1}, None]}) == {"a": [{"c": 1}, None]}
    # ...but not of an array that replaces an object
    assert P.apply_merge_patch({"a": {}}, {"a": [{"b": None}]}) == {"a": [{"b": None}]}


# -- RFC 6902 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("doc, ops, result", [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"foo": "bar", "baz": "qux"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": "x"}], {"foo": ["bar", "x"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10},
                          {"op": "remove", "path": "/~1"}], {"~1": 10}),
    ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
    ({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
    ({"a": [1, 2, 3]}, [{"op": "remove", "path": "/a/-1"}], {"a": [1, 2]}),
    # kube-apiserver's library corners (evanphx/json-patch v4): replace of a missing member
    # adds it, a missing value is null, -1 appends, copy from a missing member copies null
    ({"foo": "bar"}, [{"op": "replace", "path": "/baz", "value": 1}], {"foo": "bar", "baz": 1}),
    ({"foo": 1}, [{"op": "add", "path": "/x"}], {"foo": 1, "x": None}),
    ({"a": [1, 2]}, [{"op": "add", "path": "/a/-1", "value": 3}], {"a": [1, 2, 3]}),
    ({"a": 1}, [{"op": "copy", "from": "/nope", "path": "/b"}], {"a": 1, "b": None}),
    ({"metadata": {"labels": {"a": "1"}}},
     [{"op": "add", "path": "/metadata/labels/example.com~1role", "value": "edge"}],
     {"metadata": {"labels": {"a": "1", "example.com/role": "edge"}}}),
])
def test_json_patch_rfc6902(doc, ops, result):
    before = copy.deepcopy(doc)
    assert P.apply_json_patch(doc, ops) == result
    assert doc == before


@pytest.mark.parametrize("doc, ops", [
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    ({"a": 1}, [{"op": "test", "path": "/a", "value": True}]),  # true is not 1
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    ({"foo": "bar"}, [{"op": "remove", "path": "/baz"}]),
    ({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]),  # 1 and 1.0 differ as text
    ({"a": 1}, [{"op": "add", "path": "", "value": {}}]),  # only replace and test take ""
    ({"a": 1}, [{"op": "remove", "path": ""}]),
    ({"foo": [1]}, [{"op": "add", "path": "/foo/5", "value": 1}]),
    ({"foo": [1]}, [{"op": "add", "path": "/foo/x", "value": 1}]),
    ({"foo": 1}, [{"op": "move", "from": "/nope", "path": "/x"}]),
    ({"foo": {"a": 1}}, [{"op": "move", "from": "/foo", "path": "/foo/a/b"}]),
    ({"foo": 1}, [{"op": "frobnicate", "path": "/foo"}]),
    ({"foo": 1}, [{"path": "/foo"}]),
    ({"foo": 1}, [{"op": "add", "path": "foo", "value": 1}]),
])
def test_json_patch_that_does_not_apply_is_422_with_kube_apiservers_message(doc, ops):
    with pytest.raises(Invalid) as e:
        P.apply_json_patch(doc, ops)
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert e.value.message == "the server rejected our request due to an error in our request"
    assert e.value.detail


def test_json_patch_is_all_or_nothing():
    doc = {"a": 1}
    with pytest.raises(Invalid):
        P.apply_json_patch(doc, [{"op": "add", "path": "/b", "value": 2},
                                 {"op": "test", "path": "/a", "value": 9}])
    assert doc == {"a": 1}


@pytest.mark.parametrize("ops", [{"op": "add"}, [1]])
def test_json_patch_that_is_not_a_list_of_operations_is_400(ops):
    with pytest.raises(BadRequest):
        P.apply_json_patch({}, ops)


# -- strategic merge patch --------------------------------------------------------------------

POD = {
    "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web", "x": "1"},
                 "finalizers": ["a", "b"],
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                      "name": "web", "uid": "u1", "controller": True}]},
    "spec": {
        "containers": [
            {"name": "app", "image": "app:1",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "sidecar", "image": "side:1"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "a", "operator": "Exists"}],
        "nodeName": "n1",
    },
    "status": {
        "phase": "Pending",
        "conditions": [{"type": "Initialized", "status": "True"},
                       {"type": "PodScheduled", "status": "True"}],
    },
}


@pytest.mark.parametrize("patch, check", [
    # maps merge, null deletes
    ({"metadata": {"labels": {"x": None, "y": "2"}}},
     lambda r: r["metadata"]["labels"] == {"app": "web", "y": "2"}),
    # containers merge by name; a new one comes first (kube-apiserver's order without
    # $setElementOrder: patch items, server-only items slotted in by their old position)
    ({"spec": {"containers": [{"name": "new", "image": "n:1"}]}},
     lambda r: [c["name"] for c in r["spec"]["containers"]] == ["new", "app", "sidecar"]),
    ({"spec": {"containers": [{"name": "app", "image": "app:2"}]}},
     lambda r: r["spec"]["containers"][0] == {**POD["spec"]["containers"][0], "image": "app:2"}),
    # env merge by name inside a container
    ({"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "9"}]}]}},
     lambda r: r["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"},
                                                     {"name": "B", "value": "9"}]),
    # ports by containerPort
    ({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "http"}]}]}},
     lambda r: r["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP",
                                                        "name": "http"}]),
    # volumeMounts by mountPath
    ({"spec": {"containers": [{"name": "app",
                               "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}]}},
     lambda r: r["spec"]["containers"][0]["volumeMounts"] == [
         {"name": "data", "mountPath": "/data", "readOnly": True}]),
    # $patch: delete of one list element
    ({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}},
     lambda r: [c["name"] for c in r["spec"]["containers"]] == ["app"]),
    # $patch: replace of a whole list
    ({"spec": {"containers": [{"name": "only", "image": "o"}, {"$patch": "replace"}]}},
     lambda r: r["spec"]["containers"] == [{"name": "only", "image": "o"}]),
    # $patch: replace of a map
    ({"metadata": {"labels": {"z": "1", "$patch": "replace"}}},
     lambda r: r["metadata"]["labels"] == {"z": "1"}),
    # $patch: delete of a map empties it
    ({"metadata": {"labels": {"$patch": "delete"}}}, lambda r: r["metadata"]["labels"] == {}),
    # tolerations are atomic
    ({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}},
     lambda r: r["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]),
    # volumes merge by name with $retainKeys dropping the old source
    ({"spec": {"volumes": [{"name": "data", "hostPath": {"path": "/x"},
                            "$retainKeys": ["hostPath", "name"]}]}},
     lambda r: r["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/x"}}]),
    # finalizers are a set: new values come first, duplicates collapse
    ({"metadata": {"finalizers": ["c", "a"]}},
     lambda r: r["metadata"]["finalizers"] == ["c", "a", "b"]),
    ({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
     lambda r: r["metadata"]["finalizers"] == ["b"]),
    ({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}},
     lambda r: r["metadata"]["finalizers"] == ["b", "a"]),
    # ownerReferences by uid
    ({"metadata": {"ownerReferences": [{"uid": "u1", "blockOwnerDeletion": True}]}},
     lambda r: r["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
     and r["metadata"]["ownerReferences"][0]["name"] == "web"),
    # null deletes a scalar; new keys are added without their nulls
    ({"spec": {"nodeName": None, "hostname": "h", "securityContext": {"runAsUser": None}}},
     lambda r: "nodeName" not in r["spec"] and r["spec"]["hostname"] == "h"
     and r["spec"]["securityContext"] == {}),
    # a type change replaces
    ({"status": {"conditions": "oops"}}, lambda r: r["status"]["conditions"] == "oops"),
])
def test_strategic_merge_patch_pod(patch, check):
    before = copy.deepcopy(POD)
    patch_before = copy.deepcopy(patch)
    result = P.apply_strategic_merge_patch(POD, patch, "Pod")
    assert check(result), result
    assert POD == before and patch == patch_before


def test_kubelet_pod_status_patch():
    # The shape kubelet's status manager sends (conditions by type, podIPs by ip, statuses
    # replaced, metadata.uid as a precondition-like echo).
    patch = {
        "metadata": {"uid": "pod-uid"},
        "status": {
            "$setElementOrder/conditions": [
                {"type": "PodReadyToStartContainers"}, {"type": "Initialized"},
                {"type": "Ready"}, {"type": "ContainersReady"}, {"type": "PodScheduled"}],
            "conditions": [
                {"lastProbeTime": None, "lastTransitionTime": "2025-01-01T00:00:01Z",
                 "status": "True", "type": "PodReadyToStartContainers"},
                {"lastProbeTime": None, "lastTransitionTime": "2025-01-01T00:00:02Z",
                 "status": "True", "type": "Ready"},
                {"lastProbeTime": None, "lastTransitionTime": "2025-01-01T00:00:02Z",
                 "status": "True", "type": "ContainersReady"}],
            "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                   "state": {"running": {"startedAt": "2025-01-01T00:00:01Z"}}}],
            "hostIP": "192.168.0.10", "hostIPs": [{"ip": "192.168.0.10"}],
            "phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
            "startTime": "2025-01-01T00:00:00Z",
        },
    }
    result = P.apply_strategic_merge_patch(POD, patch, "Pod")
    st = result["status"]
    assert [c["type"] for c in st["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    # An item a merge appends is taken as it is, nulls included (apimachinery; kube-apiserver
    # serves such a condition with "lastProbeTime": null too).
    assert st["conditions"][0]["lastProbeTime"] is None
    assert st["conditions"][1] == {"type": "Initialized", "status": "True"}
    assert (st["phase"], st["podIPs"]) == ("Running", [{"ip": "10.244.1.5"}])
    assert result["spec"] == POD["spec"]


NODE = {
    "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
             "taints": [{"key": "a", "effect": "NoSchedule"},
                        {"key": "b", "effect": "NoSchedule"}]},
    "status": {
        "conditions": [{"type": t, "status": "False", "lastHeartbeatTime": "T0"}
                       for t in ("MemoryPressure", "DiskPressure", "PIDPressure")]
        + [{"type": "Ready", "status": "True", "lastHeartbeatTime": "T0"}],
        "addresses": [{"type": "InternalIP", "address": "192.168.0.10"},
                      {"type": "Hostname", "address": "n1"}],
        "images": [{"names": ["a:1"], "sizeBytes": 1}, {"names": ["b:1"], "sizeBytes": 2}],
    },
}


def test_kubelet_node_status_heartbeat_patch():
    order = [{"type": t} for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")]
    patch = {"status": {
        "$setElementOrder/conditions": order,
        "conditions": [{"lastHeartbeatTime": "T1", "type": t["type"]} for t in order],
        "$setElementOrder/addresses": [{"type": "InternalIP"}, {"type": "Hostname"}],
        "addresses": [{"address": "192.168.0.11", "type": "InternalIP"}],
        "images": [{"names": ["c:1"], "sizeBytes": 3}],
    }}
    result = P.apply_strategic_merge_patch(NODE, patch, "Node")
    conds = result["status"]["conditions"]
    assert [c["type"] for c in conds] == [o["type"] for o in order]
    assert all(c["lastHeartbeatTime"] == "T1" for c in conds)
    assert conds[3]["status"] == "True"
    assert result["status"]["addresses"] == [{"type": "InternalIP", "address": "192.168.0.11"},
                                             {"type": "Hostname", "address": "n1"}]
    assert result["status"]["images"] == [{"names": ["c:1"], "sizeBytes": 3}]  # replaced


def test_node_taints_are_atomic_as_in_kube_apiserver():
    # NodeSpec.Taints has no patch strategy: `kubectl taint node n1 a-` sends the whole list.
    result = P.apply_strategic_merge_patch(
        NODE, {"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}}, "Node")
    assert result["spec"]["taints"] == [{"key": "b", "effect": "NoSchedule"}]
    result = P.apply_strategic_merge_patch(NODE, {"spec": {"podCIDRs": ["fd00::/64"]}}, "Node")
    assert result["spec"]["podCIDRs"] == ["fd00::/64", "10.244.1.0/24"]


def test_kubectl_apply_style_patch_with_set_element_order():
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"},
                                                 {"name": "third"}],
                 "containers": [{"name": "third", "image": "t:1"}]},
    }
    result = P.apply_strategic_merge_patch(POD, patch, "Pod")
    assert [c["name"] for c in result["spec"]["containers"]] == ["app", "sidecar", "third"]
    assert result["metadata"]["annotations"]


def test_service_ports_by_port_and_generic_kinds():
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    result = P.apply_strategic_merge_patch(svc, {"spec": {"ports": [{"port": 80,
                                                                     "targetPort": 9090}]}},
                                           "Service")
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]
    # Kinds without list strategies replace lists but still merge metadata.
    cm = {"metadata": {"finalizers": ["x"]}, "data": {"a": "1"}, "list": [1]}
    result = P.apply_strategic_merge_patch(cm, {"metadata": {"finalizers": ["y"]},
                                                "data": {"b": "2"}, "list": [2]}, "ConfigMap")
    assert result == {"metadata": {"finalizers": ["y", "x"]}, "data": {"a": "1", "b": "2"},
                      "list": [2]}


@pytest.mark.parametrize("patch, code", [
    # apimachinery's unclassified errors: kube-apiserver answers 500 with no reason
    ({"metadata": {"labels": {"$patch": "explode"}}}, 500),
    ({"spec": {"containers": [{"image": "no-name"}]}}, 500),
    ({"spec": {"containers": [{"$patch": "delete"}]}}, 500),
    ({"metadata": {"$setElementOrder/finalizers": "a"}}, 500),
    ({"metadata": {"finalizers": [["a"]]}}, 500),  # element types differ (string, list)
    # the directive errors kube-apiserver classifies as bad requests
    ({"spec": {"volumes": [{"name": "data", "hostPath": {}, "$retainKeys": ["name"]}]}}, 400),
    ({"spec": {"$retainKeys": "nope"}}, 400),
    ({"metadata": {"$setElementOrderfinalizers": ["a"]}}, 400),
    ({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}, 400),
    # lists of lists are 422
    ({"spec": {"podCIDRs": [["a"]]}}, 422),
    ([{"op": "add"}], 400),
])
def test_strategic_merge_patch_errors(patch, code):
    target = dict(POD, spec={**POD["spec"], "podCIDRs": []})
    with pytest.raises(ApiError) as e:
        P.apply_strategic_merge_patch(target, patch, "Node" if "podCIDRs" in str(patch)
                                      else "Pod")
    assert e.value.code == code
    assert (e.value.reason == "") is (code == 500)


def test_strategic_merge_patch_ignores_a_delete_list_of_the_wrong_type():
    # apimachinery skips a $deleteFromPrimitiveList whose value is not a list (no error).
    result = P.apply_strategic_merge_patch(
        POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, "Pod")
    assert result["metadata"]["finalizers"] == ["a", "b"]


def test_fixture_pod_kubelet_status_patch():
    pod = fixture("core.v1.Pod.json")
    before = copy.deepcopy(pod)
    patch = {"status": {
        "$setElementOrder/conditions": [{"type": "typeValue"}, {"type": "Ready"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "podIPs": [{"ip": "10.0.0.9"}],
        "phase": "Running",
    }}
    result = P.apply_strategic_merge_patch(pod, patch, "Pod")
    assert [c["type"] for c in result["status"]["conditions"]] == ["typeValue", "Ready"]
    assert [p["ip"] for p in result["status"]["podIPs"]] == ["10.0.0.9", "ipValue"]
    assert result["spec"] == pod["spec"] and pod == before


def test_fixture_node_and_lease_patches():
    node = fixture("core.v1.Node.json")
    result = P.apply_strategic_merge_patch(
        node, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "Node")
    assert [c["type"] for c in result["status"]["conditions"]] == ["Ready", "typeValue"]
    lease = fixture("coordination.k8s.io.v1.Lease.json")
    renewed = P.apply_merge_patch(lease, {"spec": {"renewTime": "2025-01-01T00:00:00.000000Z"}})
    assert renewed["spec"]["renewTime"] == "2025-01-01T00:00:00.000000Z"
    assert renewed["spec"]["holderIdentity"] == lease["spec"]["holderIdentity"]


# -- the request entry point ----------------------------------------------------------------

@pytest.mark.parametrize("content_type, body, kind, expected", [
    ("application/merge-patch+json", b'{"a":{"b":null}}', "Pod", {"a": {}}),
    ("application/merge-patch+json; charset=utf-8", b'{"x":1}', None, {"a": {"b": 1}, "x": 1}),
    ("application/json-patch+json", b'[{"op":"add","path":"/x","value":1}]', None,
     {"a": {"b": 1}, "x": 1}),
    ("application/strategic-merge-patch+json", b'{"a":{"c":2}}', "Pod", {"a": {"b": 1, "c": 2}}),
])
def test_apply_patch_dispatches_on_content_type(content_type, body, kind, expected):
    assert P.apply_patch({"a": {"b": 1}}, body, content_type, kind) == expected


@pytest.mark.parametrize("content_type, kind", [
    ("application/strategic-merge-patch+json", None),  # custom resources
    ("application/json", "Pod"),
    ("text/plain", "Pod"),
])
def test_apply_patch_unsupported_media_type(content_type, kind):
    with pytest.raises(UnsupportedMediaType) as e:
        P.apply_patch({}, b"{}", content_type, kind)
    assert e.value.code == 415
    assert e.value.message.startswith(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")


@pytest.mark.parametrize("body, message", [
    (b"{bad", "invalid character 'b' looking for beginning of object key string"),
    (b"", "unexpected end of JSON input"),
    (b'{"a":1', "unexpected end of JSON input"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b"{} x", "invalid character 'x' after top-level value"),
    (b"nope", "invalid character 'n' looking for beginning of value"),
])
def test_undecodable_patches_are_400_in_go_words(body, message):
    with pytest.raises(BadRequest) as e:
        P.apply_patch({}, body, "application/strategic-merge-patch+json", "Pod")
    assert e.value.message == message
    with pytest.raises(BadRequest) as e:
        P.apply_patch({}, body, "application/merge-patch+json", "Pod")
    assert e.value.message == "Invalid JSON Patch"


def test_json_equal_and_copy_json():
    assert P.json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not P.json_equal(True, 1) and not P.json_equal(0, False)
    assert not P.json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not P.json_equal("1", 1)
    doc = {"a": [{"b": 1}]}
    dup = P.copy_json(doc)
    dup["a"][0]["b"] = 2
    assert doc == {"a": [{"b": 1}]}
