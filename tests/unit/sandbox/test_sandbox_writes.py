"""create, update, patch, delete: server-owned metadata, preconditions, subresources, errors."""

from __future__ import annotations

import json

import pytest

CMS = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
NODES = "/api/v1/nodes"
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"


def pod(name="p1", **extra):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}, **extra}


def test_create_sets_server_fields_and_defaults(call):
    r = call("POST", PODS, pod())
    assert r.status == 201
    meta = r.body["metadata"]
    assert meta["namespace"] == "default" and meta["uid"] and meta["creationTimestamp"]
    assert meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert r.body["status"]["phase"] == "Pending"
    assert r.body["spec"]["restartPolicy"] == "Always"
    assert r.body["spec"]["schedulerName"] == "default-scheduler"
    assert call("GET", f"{PODS}/p1").body == r.body
    gen = call("POST", CMS, {"metadata": {"generateName": "cm-"}, "data": {}})
    assert gen.status == 201 and gen.body["metadata"]["name"].startswith("cm-")
    assert len(gen.body["metadata"]["name"]) == len("cm-") + 5
    svc = call("POST", "/api/v1/namespaces/default/services",
               {"metadata": {"name": "s1"}, "spec": {"ports": [{"port": 80}]}})
    assert svc.body["spec"]["clusterIP"].startswith("10.96.")
    assert svc.body["spec"]["ports"][0]["targetPort"] == 80


@pytest.mark.parametrize("resources, qos", [
    ({}, "BestEffort"),
    ({"requests": {"cpu": "1"}}, "Burstable"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
])
def test_pod_status_is_reset_on_create(call, resources, qos):
    body = pod(status={"phase": "Running", "podIP": "1.2.3.4"})
    body["spec"]["containers"][0]["resources"] = resources
    r = call("POST", PODS, body)
    assert r.body["status"] == {"phase": "Pending", "qosClass": qos}


def test_create_errors(call):
    call("POST", CMS, {"metadata": {"name": "dup"}})
    dup = call("POST", CMS, {"metadata": {"name": "dup"}})
    assert (dup.status, dup.body["reason"], dup.body["message"]) == (
        409, "AlreadyExists", 'configmaps "dup" already exists')
    assert dup.body["details"] == {"name": "dup", "kind": "configmaps"}
    missing_ns = call("POST", "/api/v1/namespaces/nope/configmaps", {"metadata": {"name": "a"}})
    assert (missing_ns.status, missing_ns.body["message"]) == (404, 'namespaces "nope" not found')
    wrong_ns = call("POST", CMS, {"metadata": {"name": "a", "namespace": "kube-system"}})
    assert wrong_ns.status == 400 and "does not match the namespace" in wrong_ns.body["message"]
    with_rv = call("POST", CMS, {"metadata": {"name": "a", "resourceVersion": "3"}})
    assert with_rv.body["message"] == "resourceVersion should not be set on objects to be created"
    wrong_kind = call("POST", CMS, {"kind": "Secret", "apiVersion": "v1",
                                    "metadata": {"name": "a"}})
    assert wrong_kind.status == 400 and "cannot be handled as a ConfigMap" in \
        wrong_kind.body["message"]


@pytest.mark.parametrize("body, message", [
    ("{bad", "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
             "version/kind; json parse error: invalid character 'b' looking for beginning of "
             "object key string ({bad)"),
    ("", "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
         "version/kind; json parse error: unexpected end of JSON input ()"),
    ("[1]", "the object provided is unrecognized (must be of type ConfigMap): couldn't get "
            "version/kind; json parse error: json: cannot unmarshal list into Go value of type "
            "struct ([1])"),
])
def test_malformed_body_is_400(call, body, message):
    r = call("POST", CMS, body)
    assert (r.status, r.body["reason"], r.body["message"]) == (400, "BadRequest", message)


@pytest.mark.parametrize("path, name, field, fragment", [
    (CMS, "Bad_Name", "metadata.name", "a lowercase RFC 1123 subdomain must consist of"),
    ("/api/v1/namespaces/default/services", "1svc", "metadata.name", "a DNS-1035 label"),
    ("/api/v1/namespaces", "a.b", "metadata.name", "a lowercase RFC 1123 label"),
])
def test_invalid_names_are_422_with_causes(call, path, name, field, fragment):
    r = call("POST", path, {"metadata": {"name": name}})
    assert (r.status, r.body["reason"]) == (422, "Invalid")
    kind = r.body["details"]["kind"]
    assert r.body["message"].startswith(f'{kind} "{name}" is invalid: {field}: Invalid value: '
                                        f'"{name}": ')
    assert r.body["details"]["name"] == name
    cause = r.body["details"]["causes"][0]
    assert (cause["reason"], cause["field"]) == ("FieldValueInvalid", field)
    assert fragment in cause["message"]


def test_missing_name_and_bad_labels_are_422(call):
    r = call("POST", CMS, {"metadata": {}})
    assert r.body["details"]["causes"] == [{"reason": "FieldValueRequired", "message":
                                           "Required value: name or generateName is required",
                                            "field": "metadata.name"}]
    r = call("POST", CMS, {"metadata": {"name": "a", "labels": {"bad key": "v", "k": "bad v"}}})
    assert r.status == 422 and len(r.body["details"]["causes"]) == 2


def test_update_preconditions_and_server_fields(call):
    created = call("POST", PODS, pod()).body
    stale = json.loads(json.dumps(created))
    created["metadata"]["labels"]["v"] = "2"
    up = call("PUT", f"{PODS}/p1", created)
    assert up.status == 200 and up.body["metadata"]["labels"]["v"] == "2"
    assert int(up.body["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    assert up.body["metadata"]["generation"] == 1  # metadata only
    conflict = call("PUT", f"{PODS}/p1", stale)
    assert (conflict.status, conflict.body["reason"]) == (409, "Conflict")
    assert conflict.body["message"] == ('Operation cannot be fulfilled on pods "p1": the object '
                                        "has been modified; please apply your changes to the "
                                        "latest version and try again")
    # no resourceVersion: unconditional; spec change bumps generation; status is ignored
    blind = pod(status={"phase": "Running"})
    blind["spec"]["containers"][0]["image"] = "nginx:2"
    r = call("PUT", f"{PODS}/p1", blind)
    assert r.body["metadata"]["generation"] == 2 and r.body["status"]["phase"] == "Pending"
    assert r.body["metadata"]["uid"] == created["metadata"]["uid"]
    assert r.body["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    renamed = call("PUT", f"{PODS}/p1", pod("other"))
    assert renamed.status == 400 and renamed.body["message"] == (
        "the name of the object (other) does not match the name on the URL (p1)")
    assert call("PUT", f"{PODS}/nope", pod("nope")).status == 404
    wrong_uid = pod()
    wrong_uid["metadata"]["uid"] = "not-it"
    assert call("PUT", f"{PODS}/p1", wrong_uid).status == 409


def test_noop_update_does_not_write(api, call):
    created = call("POST", CMS, {"metadata": {"name": "same"}, "data": {"a": "1"}}).body
    rv = api.store.rv
    again = call("PUT", f"{CMS}/same", created)
    assert again.body == created and api.store.rv == rv
    patched = call("PATCH", f"{CMS}/same", {"data": {"a": "1"}}, content_type=MERGE)
    assert patched.body == created and api.store.rv == rv


def test_status_subresource_writes_only_status(call):
    call("POST", PODS, pod())
    r = call("PATCH", f"{PODS}/p1/status",
             {"metadata": {"labels": {"new": "1"}}, "spec": {"nodeName": "x"},
              "status": {"phase": "Running", "podIP": "10.0.0.5"}}, content_type=SMP)
    assert r.status == 200
    assert r.body["status"]["phase"] == "Running" and "nodeName" not in r.body["spec"]
    assert r.body["metadata"]["labels"]["new"] == "1"  # pods/status keeps label changes
    assert r.body["metadata"]["generation"] == 1
    got = call("GET", f"{PODS}/p1/status").body
    assert got["status"]["podIP"] == "10.0.0.5"
    node = call("GET", f"{NODES}/node-0000").body
    node["status"]["conditions"][3]["status"] = "False"
    node["spec"]["unschedulable"] = True
    r = call("PUT", f"{NODES}/node-0000/status", node)
    assert r.body["status"]["conditions"][3]["status"] == "False"
    assert "unschedulable" not in r.body["spec"]


def test_kubelet_style_status_patch_and_heartbeat(call):
    patch = {"status": {"$setElementOrder/conditions": [
        {"type": "MemoryPressure"}, {"type": "DiskPressure"}, {"type": "PIDPressure"},
        {"type": "Ready"}],
        "conditions": [{"type": "Ready", "lastHeartbeatTime": "2030-01-01T00:00:00Z"}]}}
    r = call("PATCH", f"{NODES}/node-0001/status", patch, content_type=SMP)
    conds = r.body["status"]["conditions"]
    assert [c["type"] for c in conds] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert conds[3]["lastHeartbeatTime"] == "2030-01-01T00:00:00Z" and conds[3]["status"] == "True"
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0001"
    r = call("PATCH", lease, {"spec": {"renewTime": "2030-01-01T00:00:00.000000Z"}},
             content_type=MERGE)
    assert r.body["spec"]["renewTime"] == "2030-01-01T00:00:00.000000Z"


def test_patch_types_and_errors(call):
    call("POST", CMS, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    assert call("PATCH", f"{CMS}/c", [{"op": "add", "path": "/data/b", "value": "2"}],
                content_type=JSONPATCH).body["data"] == {"a": "1", "b": "2"}
    failed = call("PATCH", f"{CMS}/c", [{"op": "test", "path": "/data/a", "value": "9"}],
                  content_type=JSONPATCH)
    assert (failed.status, failed.body["reason"], failed.body["message"]) == (
        422, "Invalid", "the server rejected our request due to an error in our request")
    bad = call("PATCH", f"{CMS}/c", "{nope", content_type=MERGE)
    assert (bad.status, bad.body["message"]) == (400, "Invalid JSON Patch")
    unsupported = call("PATCH", f"{CMS}/c", {}, content_type="application/json")
    assert unsupported.status == 415 and unsupported.body["reason"] == "UnsupportedMediaType"
    assert call("PATCH", f"{CMS}/nope", {}, content_type=MERGE).status == 404
    assert call("PATCH", f"{CMS}/nope", {}, content_type="text/plain").status == 415
    stale = call("PATCH", f"{CMS}/c", {"metadata": {"resourceVersion": "2"}}, content_type=MERGE)
    assert stale.status == 409
    renamed = call("PATCH", f"{CMS}/c", {"metadata": {"name": "d"}}, content_type=MERGE)
    assert renamed.status == 400
    # kube-apiserver applies at most 10,000 operations of a JSON patch
    ops = [{"op": "test", "path": "/data/a", "value": "1"}]
    assert call("PATCH", f"{CMS}/c", ops * 10000, content_type=JSONPATCH).status == 200
    big = call("PATCH", f"{CMS}/c", ops * 10001, content_type=JSONPATCH)
    assert (big.status, big.body["reason"], big.body["message"]) == (
        413, "RequestEntityTooLarge", "Request entity too large: The allowed maximum "
        "operations in a JSON patch is 10000, got 10001")


def test_delete_answers_and_finalizers(api, call):
    call("POST", PODS, pod())
    r = call("DELETE", f"{PODS}/p1")
    assert r.status == 200 and r.body["kind"] == "Pod"  # pods return the deleted object
    assert call("GET", f"{PODS}/p1").status == 404
    call("POST", CMS, {"metadata": {"name": "c"}})
    r = call("DELETE", f"{CMS}/c")
    assert r.body["kind"] == "Status" and r.body["status"] == "Success"
    assert r.body["details"]["name"] == "c" and r.body["details"]["uid"]
    assert call("DELETE", f"{CMS}/c").status == 404
    # finalizers hold an object: 202 with deletionTimestamp, gone with the last finalizer
    call("POST", CMS, {"metadata": {"name": "held", "finalizers": ["example.com/x"]}})
    held = call("DELETE", f"{CMS}/held")
    assert held.status == 202 and held.body["metadata"]["deletionTimestamp"]
    assert call("GET", f"{CMS}/held").status == 200
    r = call("PATCH", f"{CMS}/held", {"metadata": {"finalizers": None}}, content_type=MERGE)
    assert r.status == 200 and call("GET", f"{CMS}/held").status == 404


def test_delete_preconditions(call):
    created = call("POST", CMS, {"metadata": {"name": "c"}}).body
    bad = call("DELETE", f"{CMS}/c", {"preconditions": {"uid": "other"}})
    assert bad.status == 409 and bad.body["message"].startswith("Precondition failed: UID")
    bad = call("DELETE", f"{CMS}/c", {"preconditions": {"resourceVersion": "1"}})
    assert bad.status == 409 and "ResourceVersion in precondition: 1" in bad.body["message"]
    ok = call("DELETE", f"{CMS}/c", {"preconditions": {"uid": created["metadata"]["uid"]}})
    assert ok.status == 200


def test_deletecollection_and_namespace_cascade(call):
    call("POST", "/api/v1/namespaces", {"metadata": {"name": "team"}})
    for i in range(3):
        call("POST", "/api/v1/namespaces/team/configmaps",
             {"metadata": {"name": f"c{i}", "labels": {"i": str(i)}}})
    r = call("DELETE", "/api/v1/namespaces/team/configmaps", labelSelector="i!=0")
    assert r.body["kind"] == "ConfigMapList" and len(r.body["items"]) == 2
    left = call("GET", "/api/v1/namespaces/team/configmaps").body["items"]
    assert [c["metadata"]["name"] for c in left] == ["c0"]
    ns = call("DELETE", "/api/v1/namespaces/team")
    assert ns.status == 200 and ns.body["status"]["phase"] == "Terminating"
    assert call("GET", "/api/v1/configmaps", fieldSelector="metadata.namespace=team").body[
        "items"] == []


def test_dry_run_writes_nothing(api, call):
    rv = api.store.rv
    r = call("POST", CMS, {"metadata": {"name": "dry"}}, dryRun="All")
    assert r.status == 201 and api.store.rv == rv
    assert call("GET", f"{CMS}/dry").status == 404


def test_a_dry_run_delete_deletes_nothing(api, call):
    # kubectl delete --dry-run=server sends DeleteOptions{dryRun: [All]} in the body; a
    # deletecollection honours ?dryRun=All too (both deleted everything before)
    for i in range(2):
        call("POST", CMS, {"metadata": {"name": f"keep{i}"}})
    rv = api.store.rv
    before = [c["metadata"]["name"] for c in call("GET", CMS).body["items"]]
    assert {"keep0", "keep1"} <= set(before)
    one = call("DELETE", f"{CMS}/keep0", {"kind": "DeleteOptions", "apiVersion": "v1",
                                          "dryRun": ["All"]})
    listed = call("DELETE", CMS, dryRun="All")
    bodied = call("DELETE", CMS, {"dryRun": ["All"]})
    assert one.status == 200 and one.body["metadata"]["name"] == "keep0"
    for r in (listed, bodied):
        assert r.status == 200 and [c["metadata"]["name"] for c in r.body["items"]] == before
    assert api.store.rv == rv
    assert [c["metadata"]["name"] for c in call("GET", CMS).body["items"]] == before


def test_a_dry_run_update_answers_the_object_as_it_would_be(api, call):
    # kube-apiserver answers a dry run with the result, at the current resourceVersion
    call("POST", CMS, {"metadata": {"name": "dry"}, "data": {"a": "1"}})
    rv = api.store.rv
    put = call("PUT", f"{CMS}/dry", {"metadata": {"name": "dry"}, "data": {"a": "2"}},
               dryRun="All")
    patched = call("PATCH", f"{CMS}/dry", {"data": {"a": "3"}}, dryRun="All",
                   content_type=MERGE)
    assert (put.status, put.body["data"]) == (200, {"a": "2"})
    assert (patched.status, patched.body["data"]) == (200, {"a": "3"})
    assert put.body["metadata"]["resourceVersion"] == str(rv) and api.store.rv == rv
    assert call("GET", f"{CMS}/dry").body["data"] == {"a": "1"}


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                       "shortNames": ["wd"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}}}]},
}


def test_crd_lifecycle(call):
    r = call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    assert r.status == 201
    conds = {c["type"]: c["status"] for c in r.body["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    assert "example.com" in {g["name"] for g in call("GET", "/apis").body["groups"]}
    res = call("GET", "/apis/example.com/v1").body["resources"]
    assert [x["name"] for x in res] == ["widgets", "widgets/status"]
    base = "/apis/example.com/v1/namespaces/default/widgets"
    w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
         "spec": {"size": 1}, "status": {"ready": True}}
    created = call("POST", base, w)
    assert created.status == 201 and "status" not in created.body  # a status subresource
    st = call("PUT", f"{base}/w1/status", {**created.body, "status": {"ready": True},
                                          "metadata": {**created.body["metadata"],
                                                       "labels": {"ignored": "yes"}}})
    assert st.body["status"] == {"ready": True} and "labels" not in st.body["metadata"]
    listed = call("GET", base).body
    assert listed["kind"] == "WidgetList"
    # custom resource lists keep kind/apiVersion on their items
    assert listed["items"][0]["kind"] == "Widget"
    assert call("PATCH", f"{base}/w1", {"spec": {"size": 2}}, content_type=SMP).status == 415
    r = call("PATCH", f"{base}/w1", {"spec": {"size": 2}}, content_type=MERGE)
    assert r.body["spec"]["size"] == 2 and r.body["metadata"]["generation"] == 2
    nokind = call("POST", base, {"metadata": {"name": "w2"}})
    assert nokind.status == 400 and "Object 'Kind' is missing" in nokind.body["message"]
    assert call("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                          "widgets.example.com").status == 200
    assert call("GET", base).status == 404
    assert "example.com" not in {g["name"] for g in call("GET", "/apis").body["groups"]}


def test_cluster_scoped_crd_and_invalid_crd(call):
    crd = json.loads(json.dumps(CRD))
    crd["metadata"]["name"] = "gadgets.example.com"
    crd["spec"]["scope"] = "Cluster"
    crd["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget"}
    assert call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).status \
        == 201
    g = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}}
    r = call("POST", "/apis/example.com/v1/gadgets", g)
    assert r.status == 201 and "namespace" not in r.body["metadata"]
    assert call("GET", "/apis/example.com/v1/gadgets/g1").status == 200
    bad = json.loads(json.dumps(CRD))
    bad["metadata"]["name"] = "wrong.example.com"
    r = call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad)
    assert r.status == 422
    assert 'must be spec.names.plural+"."+spec.group' in r.body["message"]
