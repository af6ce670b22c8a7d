"""The sandbox answers metadata-only requests (``as=PartialObjectMetadata(List)``) as
kube-apiserver does: each object's metadata alone, labelled plain JSON, and 406 for the list
form asked of one object or the reverse."""

from __future__ import annotations

import pytest
from sandbox_api_helpers import Client, make_api

LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"


@pytest.fixture
def call():
    return Client(make_api())


def test_a_list_and_a_get_carry_the_metadata_alone(call):
    plain = call("GET", "/api/v1/pods").body
    r = call("GET", "/api/v1/pods", headers={"Accept": LIST})
    assert r.status == 200 and r.response.content_type == "application/json"
    assert r.body["kind"] == "PartialObjectMetadataList"
    assert r.body["apiVersion"] == "meta.k8s.io/v1"
    assert r.body["metadata"] == plain["metadata"]
    assert r.body["items"] == [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": p["metadata"]} for p in plain["items"]]
    first = plain["items"][0]["metadata"]
    one = call("GET", f"/api/v1/namespaces/{first['namespace']}/pods/{first['name']}",
               headers={"Accept": ONE})
    assert one.status == 200 and one.body == {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1beta1", "metadata": first}


def test_the_wrong_form_is_406_and_errors_stay_statuses(call):
    first = call("GET", "/api/v1/pods").body["items"][0]["metadata"]
    path = f"/api/v1/namespaces/{first['namespace']}/pods/{first['name']}"
    assert call("GET", path, headers={"Accept": LIST}).status == 406
    assert call("GET", "/api/v1/pods",
                headers={"Accept": ONE.replace("v1beta1", "v1")}).status == 406
    missing = call("GET", "/api/v1/namespaces/default/pods/nope", headers={"Accept": ONE})
    assert missing.status == 404 and missing.body["kind"] == "Status"
