"""Metadata-only reads (client-go's metadata client, controller-runtime's metadata-only
informers): ``Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1``.

Online the hub passes kube-apiserver's metadata-only answer through and files it apart from
the full objects; offline the same request gets the same items from the cache, and a watch
from the list's version carries PartialObjectMetadata objects, as kube-apiserver's does."""

from __future__ import annotations

import json
import socket
import threading

from tests.fixtures.waiting import wait_for
from tests.fixtures.web import read_watch_events

OPERATOR = "edge-operator/1.0"
LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json"
ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json"
PODS = "/api/v1/namespaces/default/pods"


def _get(hub, path: str, accept: str) -> tuple[int, dict]:
    status, _, body = hub.get(path, ua=OPERATOR, Accept=accept)
    return status, json.loads(body)


def _names(doc: dict) -> list[tuple[str, str]]:
    assert {i["kind"] for i in doc["items"]} <= {"PartialObjectMetadata"}, doc["items"][:1]
    return [(i["metadata"]["name"], i["metadata"]["resourceVersion"]) for i in doc["items"]]


def test_a_metadata_only_list_is_answered_offline_as_online(sandbox, hub_factory):
    hub = hub_factory(sandbox.url, extra=["--cache-agents", "edge-operator"])
    status, online = _get(hub, PODS + "?labelSelector=app%3Dweb", LIST)
    assert status == 200 and online["kind"] == "PartialObjectMetadataList", online
    assert online["apiVersion"] == "meta.k8s.io/v1" and online["items"]
    assert all("spec" not in i for i in online["items"])  # metadata only, as asked
    name = online["items"][0]["metadata"]["name"]
    status, one = _get(hub, f"{PODS}/{name}", ONE)
    assert status == 200 and one["kind"] == "PartialObjectMetadata" and "spec" not in one
    # online, a watch from the list's version carries metadata-only objects
    rv = online["metadata"]["resourceVersion"]
    events: list = []
    with socket.create_connection(("127.0.0.1", hub.proxy_port), timeout=30) as s:
        s.sendall((f"GET {PODS}?watch=true&resourceVersion={rv}&timeoutSeconds=5 HTTP/1.1\r\n"
                   f"Host: x\r\nUser-Agent: {OPERATOR}\r\nAccept: {ONE}\r\n\r\n").encode())
        reader = threading.Thread(target=read_watch_events, args=(s, events))
        reader.start()
        wait_for(lambda: sandbox.open_watches >= 1, 10, "the watch upstream")
        pod = sandbox.get("pods", name, "default")
        pod["metadata"].setdefault("labels", {})["touched"] = "yes"
        sandbox.put(pod)
        wait_for(lambda: events, 10, "the MODIFIED event")
        s.shutdown(socket.SHUT_RDWR)
        reader.join(10)
    _, event = events[0]
    assert event["type"] == "MODIFIED" and event["object"]["kind"] == "PartialObjectMetadata"
    assert event["object"]["metadata"]["labels"]["touched"] == "yes"
    assert "spec" not in event["object"]
    status, online = _get(hub, PODS + "?labelSelector=app%3Dweb", LIST)  # after the change
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 1, 10, "healthy")
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 10,
             "the hub to notice the cloud is gone")
    status, offline = _get(hub, PODS + "?labelSelector=app%3Dweb", LIST)
    assert status == 200 and offline["kind"] == "PartialObjectMetadataList", offline
    assert _names(offline) == _names(online)
    assert offline["metadata"]["resourceVersion"] == online["metadata"]["resourceVersion"]
    status, one_offline = _get(hub, f"{PODS}/{name}", ONE)
    assert status == 200 and one_offline["kind"] == "PartialObjectMetadata"
    assert one_offline["metadata"]["labels"]["touched"] == "yes"
    # the full objects were never listed: the metadata-only copy does not stand in for them
    status, full = _get(hub, PODS + "?labelSelector=app%3Dweb", "application/json")
    assert status == 503, full


def test_a_metadata_only_list_by_a_field_of_the_objects_is_not_refused_as_bad(sandbox,
                                                                              hub_factory):
    """Offline, a metadata-only list or watch of pods by ``spec.nodeName`` (a node agent's
    metadata informer) was answered 400 "field label not supported", which the cloud never
    says of it: the metadata-only cache cannot select by the objects' fields, so it says
    that (503), and still refuses a field the objects lack as the cloud does."""
    hub = hub_factory(sandbox.url, extra=["--cache-agents", "edge-operator"])
    node_pods = f"{PODS}?fieldSelector=spec.nodeName%3Dnode-0000"
    bad = f"{PODS}?fieldSelector=spec.bogus%3D1"
    nodes_by_ns = "/api/v1/nodes?fieldSelector=metadata.namespace%3D"
    status, online = _get(hub, node_pods, LIST)
    assert status == 200 and online["items"], online
    assert _get(hub, PODS, LIST)[0] == 200
    cloud_bad = _get(hub, bad, LIST)
    assert cloud_bad[0] == 400
    assert _get(hub, "/api/v1/nodes", LIST)[0] == 200
    cloud_nodes_by_ns = _get(hub, nodes_by_ns, LIST)
    assert cloud_nodes_by_ns[0] == 400
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 10,
             "the hub to notice the cloud is gone")
    for path in (node_pods, node_pods + "&watch=true&resourceVersion=0&timeoutSeconds=1"):
        status, doc = _get(hub, path, LIST)
        assert (status, doc["reason"]) == (503, "ServiceUnavailable"), (path, doc)
        assert "metadata" in doc["message"] and "spec.nodeName" in doc["message"], doc
    assert _get(hub, bad, LIST) == cloud_bad
    assert _get(hub, nodes_by_ns, LIST) == cloud_nodes_by_ns
    # What the metadata does hold still selects.
    status, doc = _get(hub, f"{PODS}?fieldSelector=metadata.name%3Dnope", LIST)
    assert status == 200 and doc["items"] == []


def test_the_other_metadata_kind_is_406_offline_as_online(sandbox, hub_factory):
    """A list asked ``as=PartialObjectMetadata`` (or a get ``as=...List``) is 406 from
    kube-apiserver, the plain JSON entry after it notwithstanding; offline the cache
    answered it 200 with a list (or the object)."""
    hub = hub_factory(sandbox.url, extra=["--cache-agents", "edge-operator"])
    status, online = _get(hub, PODS, LIST)
    assert status == 200
    name = online["items"][0]["metadata"]["name"]
    assert _get(hub, f"{PODS}/{name}", ONE)[0] == 200
    wrong = [(PODS, ONE), (f"{PODS}/{name}", LIST)]
    cloud = [_get(hub, path, accept) for path, accept in wrong]
    assert [status for status, _ in cloud] == [406, 406], cloud
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, 10,
             "the hub to notice the cloud is gone")
    assert _get(hub, PODS, LIST)[0] == 200  # the right kinds still are served
    assert _get(hub, f"{PODS}/{name}", ONE)[0] == 200
    for (path, accept), (_, want) in zip(wrong, cloud, strict=True):
        status, doc = _get(hub, path, accept)
        assert (status, doc["reason"], doc["message"]) == (406, "NotAcceptable",
                                                           want["message"]), (path, doc)
