"""get and list: kinds, paging, continue tokens, resourceVersion rules, selectors, errors."""

from __future__ import annotations

import pytest

from kubesandbox import rest

PODS = "/api/v1/namespaces/default/pods"
EXPIRED = ("The provided continue parameter is too old to display a consistent list result. "
           "You can start a new list without the continue parameter, or use the continue token "
           "in this response to retrieve the remainder of the results. Continuing with the "
           "provided token results in an inconsistent list - objects that were created, "
           "modified, or deleted between the time the first chunk was returned and now may "
           "show up in the list.")


def names(reply):
    return [i["metadata"]["name"] for i in reply.body["items"]]


def new_pod(name, **labels):
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": "node-0000"}}


def test_list_shape_matches_kube_apiserver(call):
    r = call("GET", PODS)
    assert r.status == 200
    assert (r.body["kind"], r.body["apiVersion"]) == ("PodList", "v1")
    assert set(r.body["metadata"]) == {"resourceVersion"}
    assert len(r.body["items"]) == 6
    # built-in lists carry no kind/apiVersion on their items
    assert all("kind" not in i and "apiVersion" not in i for i in r.body["items"])
    assert names(r) == sorted(names(r))
    lease = call("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0001")
    assert (lease.body["kind"], lease.body["apiVersion"]) == ("Lease", "coordination.k8s.io/v1")


def test_paged_list_equals_unpaged_and_counts_what_remains(call):
    whole = call("GET", "/api/v1/pods")
    seen, token, pages = [], None, 0
    while True:
        query = {"limit": 4}
        if token:
            query["continue"] = token
        r = call("GET", "/api/v1/pods", **query)
        assert r.body["metadata"]["resourceVersion"] == whole.body["metadata"]["resourceVersion"]
        seen += names(r)
        pages += 1
        token = r.body["metadata"].get("continue")
        if not token:
            assert "remainingItemCount" not in r.body["metadata"]
            break
        assert r.body["metadata"]["remainingItemCount"] == 6 - len(seen)
    assert seen == names(whole) and pages == 2


def test_continue_serves_the_snapshot_of_the_first_page(call):
    first = call("GET", PODS, limit=3)
    call("POST", PODS, new_pod("aaa-new"))
    call("DELETE", f"{PODS}/{names(first)[0]}")
    rest_ = call("GET", PODS, limit=100, **{"continue": first.body["metadata"]["continue"]})
    assert len(names(first) + names(rest_)) == 6
    assert "aaa-new" not in names(rest_)


def test_expired_continue_is_410_with_kube_apiservers_message(api, call):
    first = call("GET", PODS, limit=2)
    call("POST", PODS, new_pod("later"))
    api.store.compact()
    r = call("GET", PODS, limit=2, **{"continue": first.body["metadata"]["continue"]})
    assert r.status == 410
    assert (r.body["reason"], r.body["code"], r.body["message"]) == ("Expired", 410, EXPIRED)
    # The Status carries the token its message speaks of (etcd3's store makes one, at "the
    # newest version"): the rest of the list as it is now, from where the page would start.
    token = r.body["metadata"]["continue"]
    rest_ = call("GET", PODS, limit=100, **{"continue": token})
    assert rest_.status == 200, rest_.body
    now = names(call("GET", PODS))
    assert names(rest_) == now[now.index(names(first)[-1]) + 1:]
    assert "later" in names(first) + names(rest_)
    assert rest_.body["metadata"]["resourceVersion"] == str(api.store.rv)


@pytest.mark.parametrize("token", ["nope", "eyJ2IjoieCJ9", rest.encode_continue(0, "x")])
def test_bad_continue_token_is_400(call, token):
    r = call("GET", PODS, limit=1, **{"continue": token})
    assert r.status == 400 and r.body["message"].startswith("continue key is not valid")


def test_resource_version_rules(api, call, monkeypatch):
    monkeypatch.setattr(rest, "TOO_LARGE_WAIT", 0.05)
    before = call("GET", PODS).body["metadata"]["resourceVersion"]
    call("POST", PODS, new_pod("p-new"))
    # "0": any version (served at the newest) and limit is ignored, as the watch cache does
    r0 = call("GET", PODS, resourceVersion="0", limit=1)
    assert len(r0.body["items"]) == 7 and "continue" not in r0.body["metadata"]
    # Exact: the list as it was
    old = call("GET", PODS, resourceVersion=before, resourceVersionMatch="Exact")
    assert old.body["metadata"]["resourceVersion"] == before and "p-new" not in names(old)
    # NotOlderThan: the newest
    new = call("GET", PODS, resourceVersion=before, resourceVersionMatch="NotOlderThan")
    assert "p-new" in names(new)
    # a limit with a version and no match means Exact (kube-apiserver's legacy rule)
    assert "p-new" not in names(call("GET", PODS, resourceVersion=before, limit=50))
    # too large: 504 with kube-apiserver's cause
    big = call("GET", PODS, resourceVersion=str(api.store.rv + 100))
    assert big.status == 504 and big.body["reason"] == "Timeout"
    assert big.body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert ("Retry-After", "1") in big.response.headers
    api.store.compact()
    gone = call("GET", PODS, resourceVersion=before, resourceVersionMatch="Exact")
    assert gone.status == 410
    assert gone.body["message"] == "The resourceVersion for the provided list is too old."


@pytest.mark.parametrize("query, code, fragment", [
    ({"resourceVersionMatch": "Exact"}, 422, "resourceVersionMatch is forbidden unless"),
    ({"resourceVersionMatch": "Bogus", "resourceVersion": "1"}, 422, 'Unsupported value: "Bogus"'),
    ({"resourceVersionMatch": "Exact", "resourceVersion": "0"}, 422, '"exact" is forbidden'),
    ({"resourceVersion": "abc"}, 400, "invalid resource version"),
    # strconv.ParseUint, as kube-apiserver's storage parses it: no sign, no space, uint64
    ({"resourceVersion": " 5"}, 400, 'parsing " 5": invalid syntax'),
    ({"resourceVersion": "+5"}, 400, 'parsing "+5": invalid syntax'),
    ({"resourceVersion": "18446744073709551616"}, 400,
     'parsing "18446744073709551616": value out of range'),
    ({"limit": "x"}, 400, 'parsing "x": invalid syntax'),
    ({"continue": "e30", "resourceVersion": "5"}, 400, "specifying resource version"),
])
def test_bad_list_options(call, query, code, fragment):
    r = call("GET", PODS, **query)
    assert r.status == code and fragment in r.body["message"], r.body


@pytest.mark.parametrize("query, expected", [
    ({"labelSelector": "app=web"}, {"web"}),
    ({"labelSelector": "app in (web,api)"}, {"web", "api"}),
    ({"labelSelector": "app notin (web,api),!nothing"}, {"cache", "worker"}),
    ({"fieldSelector": "spec.nodeName=node-0001"}, None),
    ({"fieldSelector": "spec.nodeName=node-0001", "labelSelector": "app"}, None),
    ({"fieldSelector": "status.phase!=Running"}, set()),
])
def test_selectors(call, query, expected):
    r = call("GET", "/api/v1/pods", **query)
    assert r.status == 200
    items = r.body["items"]
    if expected is not None:
        assert {i["metadata"]["labels"]["app"] for i in items} == expected
    else:
        assert len(items) == 3
        assert all(i["spec"]["nodeName"] == "node-0001" for i in items)


@pytest.mark.parametrize("query, message", [
    ({"labelSelector": "a b"},
     "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ({"fieldSelector": "spec.foo=1"}, "field label not supported: spec.foo"),
    ({"fieldSelector": "foo"}, "invalid selector: 'foo'; can't understand 'foo'"),
])
def test_bad_selectors_are_400(call, query, message):
    r = call("GET", "/api/v1/pods", **query)
    assert (r.status, r.body["reason"], r.body["message"]) == (400, "BadRequest", message)


def test_get_and_not_found(call):
    r = call("GET", "/api/v1/nodes/node-0001")
    assert r.body["metadata"]["name"] == "node-0001" and r.body["kind"] == "Node"
    miss = call("GET", f"{PODS}/nope")
    assert miss.status == 404
    assert miss.body == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Failure", "message": 'pods "nope" not found',
                         "reason": "NotFound", "details": {"name": "nope", "kind": "pods"},
                         "code": 404}
    lease = call("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/x")
    assert lease.body["message"] == 'leases.coordination.k8s.io "x" not found'
    assert lease.body["details"] == {"name": "x", "group": "coordination.k8s.io",
                                     "kind": "leases"}


@pytest.mark.parametrize("method, path, code", [
    ("GET", "/api/v1/foos", 404),
    ("GET", "/apis/nope.io/v1/things", 404),
    ("GET", "/api/v1/pods/x", 404),            # namespaced resource without a namespace
    ("GET", "/api/v1/namespaces/default/nodes", 404),
    ("GET", "/api/v1/namespaces/default/configmaps/x/status", 404),
    ("PUT", PODS, 405),
    ("DELETE", "/api/v1/namespaces/default/pods/x/status", 405),
    ("POST", "/api", 405),
])
def test_unknown_resources_and_methods(call, method, path, code):
    r = call(method, path, {})
    assert r.status == code
    assert r.body["message"] in ("the server could not find the requested resource",
                                 "the server does not allow this method on the requested "
                                 "resource")


@pytest.mark.parametrize("accept, code", [
    ("application/json", 200),
    ("application/vnd.kubernetes.protobuf, */*", 200),
    ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", 200),
    ("application/vnd.kubernetes.protobuf", 406),
    ("application/yaml", 406),
])
def test_content_negotiation(call, accept, code):
    r = call("GET", PODS, headers={"Accept": accept})
    assert r.status == code
    if code == 406:
        assert r.body["reason"] == "NotAcceptable"


def test_discovery_documents(call):
    v1 = call("GET", "/api/v1").body
    names_ = {r["name"]: r for r in v1["resources"]}
    assert names_["pods"]["kind"] == "Pod" and names_["pods"]["shortNames"] == ["po"]
    assert names_["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert names_["nodes"]["namespaced"] is False
    groups = {g["name"] for g in call("GET", "/apis").body["groups"]}
    assert {"coordination.k8s.io", "discovery.k8s.io", "apiextensions.k8s.io"} <= groups
    assert call("GET", "/apis/discovery.k8s.io").body["preferredVersion"]["version"] == "v1"
    assert call("GET", "/version").body["gitVersion"].startswith("v1.")
    assert call("GET", "/healthz").body == "ok"
    index = call("GET", "/openapi/v3").body["paths"]
    assert "api/v1" in index
    doc = call("GET", index["api/v1"]["serverRelativeURL"].split("?")[0]).body
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert call("GET", "/openapi/v2").status == 404
