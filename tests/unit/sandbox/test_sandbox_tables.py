"""The sandbox answers ``as=Table`` as kube-apiserver does: lists, gets and watches as
Tables of the resource's printer, CRD columns, includeObject, and 406 for Tables it cannot
send (golden cases from kube-apiserver's handler tests, tests/golden/tables/wire.json)."""

from __future__ import annotations

import json

import pytest
from sandbox_api_helpers import Client, make_api

from tests.golden.tables import table_golden
from yurthub.kube.columns import POD

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
WIRE, _ = table_golden("wire")
CRD, CRD_NOW = table_golden("crd")


@pytest.fixture
def api():
    a = make_api()
    a.tables.clock = lambda: CRD_NOW
    return a


@pytest.fixture
def call(api):
    return Client(api)


def table(call, path, accept=TABLE, **query):
    r = call("GET", path, headers={"Accept": accept}, **query)
    assert r.status == 200, r.body
    assert r.response.content_type == "application/json"  # kube-apiserver's label, too
    assert r.body["kind"] == "Table"
    return r.body


def test_a_list_of_pods_is_a_table_of_the_pod_printer(call):
    plain = call("GET", "/api/v1/pods").body
    t = table(call, "/api/v1/pods")
    assert t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": plain["metadata"]["resourceVersion"]}
    assert t["columnDefinitions"] == [c.to_json() for c in POD]
    names = [p["metadata"]["name"] for p in plain["items"]]
    assert [r["cells"][0] for r in t["rows"]] == names
    first = t["rows"][0]
    assert first["cells"][1:4] == ["1/1", "Running", "0"]
    assert first["cells"][6] == plain["items"][0]["spec"]["nodeName"]
    assert first["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": plain["items"][0]["metadata"]}


def test_a_get_is_a_table_of_one_row_at_the_objects_version(call):
    node = call("GET", "/api/v1/nodes").body["items"][0]
    t = table(call, f"/api/v1/nodes/{node['metadata']['name']}",
              "application/json;as=Table;v=v1beta1;g=meta.k8s.io")
    assert t["apiVersion"] == "meta.k8s.io/v1beta1"
    assert t["metadata"] == {"resourceVersion": node["metadata"]["resourceVersion"]}
    assert len(t["rows"]) == 1 and t["rows"][0]["cells"][:3] == [
        node["metadata"]["name"], "Ready", "<none>"]
    assert t["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


@pytest.mark.parametrize("include", ["Object", "None", "Metadata"])
def test_include_object(call, include):
    pod = call("GET", "/api/v1/pods").body["items"][0]
    t = table(call, "/api/v1/pods", includeObject=include)
    obj = t["rows"][0]["object"]
    if include == "Object":
        assert obj == {"kind": "Pod", "apiVersion": "v1", **pod}
    elif include == "None":
        assert obj is None
    else:
        assert obj["kind"] == "PartialObjectMetadata"


def test_an_unknown_include_object_is_a_bad_request(call):
    r = call("GET", "/api/v1/pods", headers={"Accept": TABLE}, includeObject="All")
    assert r.status == 400 and r.body["reason"] == "BadRequest"
    assert "includeObject: Invalid value: \"All\"" in r.body["message"]


@pytest.mark.parametrize("case", [c for c in WIRE["get"] if c.get("status") == 406],
                         ids=lambda c: c["accept"])
def test_tables_that_cannot_be_sent_are_406(call, case):
    r = call("GET", "/api/v1/pods", headers={"Accept": case["accept"]})
    assert r.status == 406 and r.body["reason"] == "NotAcceptable"


def test_a_table_of_a_paged_list_carries_the_continue_token(call):
    plain = call("GET", "/api/v1/pods", limit=2).body
    t = table(call, "/api/v1/pods", limit=2)
    assert len(t["rows"]) == 2
    assert t["metadata"]["continue"] == plain["metadata"]["continue"]
    assert t["metadata"]["remainingItemCount"] == plain["metadata"]["remainingItemCount"]


def test_a_resource_without_a_printer_gets_the_default_table(call):
    t = table(call, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Created At"]


@pytest.mark.parametrize("version", ["v1beta1", "v1"])
def test_custom_resources_print_their_crds_columns(call, version):
    case = CRD["integration"][0]
    assert call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                case["crd"]).status == 201
    obj = dict(case["object"], metadata={"name": "foo"})
    assert call("POST", "/apis/mygroup.example.com/v1/tables", obj).status == 201
    t = table(call, f"/apis/mygroup.example.com/{version}/tables")
    want = case["versions"][version]
    assert t["columnDefinitions"][1:] == want["columns"]
    cells = t["rows"][0]["cells"]
    # The sandbox stamped the creation time; the rest is the golden row.
    assert cells[0] == "foo" and cells[2:] == want["cells"][2:]


def test_a_watch_sends_one_table_per_event_column_definitions_first(api, call):
    rv = call("GET", "/api/v1/namespaces/default/configmaps").body["metadata"]["resourceVersion"]
    for name in ("a", "b"):
        assert call("POST", "/api/v1/namespaces/default/configmaps",
                    {"metadata": {"name": name}, "data": {"k": "v"}}).status == 201
    r = call("GET", "/api/v1/namespaces/default/configmaps",
             headers={"Accept": TABLE}, watch="true", resourceVersion=rv, timeoutSeconds="1")
    events = [json.loads(line) for line in r.response.stream]
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]
    first, second = (e["object"] for e in events)
    assert first["kind"] == second["kind"] == "Table"
    assert [c["name"] for c in first["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert second["columnDefinitions"] is None
    assert [e["object"]["rows"][0]["cells"][:2] for e in events] == [["a", 1], ["b", 1]]
    assert second["metadata"]["resourceVersion"] == \
        second["rows"][0]["object"]["metadata"]["resourceVersion"]


def test_the_wire_golden_table_of_a_get(call):
    """kube-apiserver's TestGetTable, with a CRD (printed by the default convertor in 1.32)
    standing in for its test type."""
    crd = CRD["integration"][0]["crd"]
    created = call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).body
    for case in [c for c in WIRE["get"] if "table" in c]:
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        if case.get("item"):
            path += "/" + created["metadata"]["name"]
        query = case.get("params", {})
        t = table(call, path, case["accept"], **query)
        want = case["table"]
        assert t["apiVersion"] == want["apiVersion"]
        assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Created At"]
        # The sandbox serves OpenYurt's CRDs too (NodePools): the row of the one created.
        row, = [r for r in t["rows"] if r["cells"][0] == created["metadata"]["name"]]
        assert row["cells"] == [created["metadata"]["name"],
                                created["metadata"]["creationTimestamp"]]
        assert row["object"] == {"kind": "PartialObjectMetadata",
                                 "apiVersion": want["apiVersion"],
                                 "metadata": created["metadata"]}
