"""Field selectors: parsing, escapes, validation per resource and selectable values."""

from __future__ import annotations

import json

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub.errors import BadRequest
from yurthub.kube import fields
from yurthub.kube.resources import BUILTIN, builtin, from_crd

FIXTURES = K8S_TESTDATA
PODS = builtin("", "v1", "pods")
NODES = builtin("", "v1", "nodes")
NAMESPACES = builtin("", "v1", "namespaces")
EVENTS = builtin("", "v1", "events")
SECRETS = builtin("", "v1", "secrets")
SERVICES = builtin("", "v1", "services")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("metadata.name=a", "metadata.name=a"),
    ("metadata.name==a", "metadata.name=a"),
    ("metadata.name!=a", "metadata.name!=a"),
    ("spec.nodeName=n1,status.phase!=Failed", "spec.nodeName=n1,status.phase!=Failed"),
    ("status.phase!=Failed,spec.nodeName=n1", "spec.nodeName=n1,status.phase!=Failed"),
    ("spec.nodeName=", "spec.nodeName="),
    ("metadata.name=a\\,b", "metadata.name=a\\,b"),
    ("metadata.name=a\\=b\\\\c", "metadata.name=a\\=b\\\\c"),
    ("spec.nodeName=n1,,", "spec.nodeName=n1"),
    ("spec.host=n1", "spec.nodeName=n1"),  # kube-apiserver's old alias for pods
])
def test_parse_canonical(text, canonical):
    sel = fields.parse(text, PODS)
    assert sel.canonical == canonical
    assert fields.parse(canonical, PODS).requirements == sel.requirements


def test_unescaped_values():
    sel = fields.parse("metadata.name=a\\,b\\=c\\\\d", PODS)
    assert sel.exact("metadata.name") == "a,b=c\\d"
    assert sel.matches({"metadata.name": "a,b=c\\d"})


@pytest.mark.parametrize("text, message", [
    ("foo", "invalid selector: 'foo'; can't understand 'foo'"),
    ("a=1,foo", "invalid selector: 'a=1,foo'; can't understand 'foo'"),
    ("metadata.name=a\\q", "invalid field selector: invalid escape sequence: \\q"),
    ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
    ("metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
])
def test_syntax_errors(text, message):
    with pytest.raises(BadRequest) as e:
        fields.parse(text)
    assert e.value.message == message


@pytest.mark.parametrize("rt, key", [
    (PODS, "spec.foo"),
    (PODS, "metadata.labels"),
    (NODES, "metadata.namespace"),       # Node's conversion accepts metadata.name only
    (NAMESPACES, "metadata.namespace"),
    (SECRETS, "spec.nodeName"),
    (builtin("", "v1", "configmaps"), "data.x"),
])
def test_unsupported_field_is_400_like_kube_apiserver(rt, key):
    with pytest.raises(BadRequest) as e:
        fields.parse(f"{key}=x", rt)
    assert e.value.code == 400
    assert e.value.message == f"field label not supported: {key}"


@pytest.mark.parametrize("rt", BUILTIN, ids=lambda rt: rt.resource)
def test_every_selectable_field_is_accepted(rt):
    for name in rt.selectable_fields:
        assert fields.parse(f"{name}=v", rt).exact(name) == "v"


def test_crd_resources_accept_metadata_fields():
    crd = {"spec": {"group": "x.io", "scope": "Cluster", "names": {"plural": "ws", "kind": "W"},
                    "versions": [{"name": "v1", "served": True}]}}
    rt = from_crd(crd)[0]
    fields.parse("metadata.name=a,metadata.namespace=", rt)
    with pytest.raises(BadRequest):
        fields.parse("spec.x=1", rt)


@pytest.mark.parametrize("selector, values, expected", [
    ("", {}, True),
    ("spec.nodeName=n1", {"spec.nodeName": "n1"}, True),
    ("spec.nodeName=n1", {"spec.nodeName": "n2"}, False),
    ("spec.nodeName=", {}, True),
    ("spec.nodeName!=", {"spec.nodeName": "n1"}, True),
    ("spec.nodeName!=n1", {}, True),
    ("spec.nodeName=n1,status.phase=Running", {"spec.nodeName": "n1", "status.phase": "Running"},
     True),
    ("spec.nodeName=n1,status.phase=Running", {"spec.nodeName": "n1"}, False),
])
def test_matches(selector, values, expected):
    assert fields.parse(selector, PODS).matches(values) is expected


def test_covers():
    assert fields.parse("spec.nodeName=n1").covers(fields.parse("spec.nodeName=n1,status.phase=R"))
    assert not fields.parse("spec.nodeName=n1").covers(fields.parse("spec.nodeName=n2"))
    assert fields.EVERYTHING.covers(fields.parse("metadata.name=x"))


def test_pod_fixture_values():
    assert fields.selectable_values(fixture("core.v1.Pod.json"), PODS) == {
        "metadata.name": "nameValue",
        "metadata.namespace": "namespaceValue",
        "spec.nodeName": "nodeNameValue",
        "spec.restartPolicy": "restartPolicyValue",
        "spec.schedulerName": "schedulerNameValue",
        "spec.serviceAccountName": "serviceAccountNameValue",
        "spec.hostNetwork": "true",
        "status.phase": "phaseValue",
        "status.podIP": "ipValue",  # podIPs[0].ip, as kube-apiserver takes it
        "status.nominatedNodeName": "nominatedNodeNameValue",
    }


@pytest.mark.parametrize("pod, field, value", [
    ({}, "spec.hostNetwork", "false"),
    ({"spec": {"hostNetwork": False}}, "spec.hostNetwork", "false"),
    ({}, "spec.nodeName", ""),
    ({"status": {"podIP": "10.0.0.1"}}, "status.podIP", "10.0.0.1"),
    ({"status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "fd00::1"}]}}, "status.podIP", "fd00::1"),
    ({"metadata": {"name": "p", "namespace": "ns"}}, "metadata.namespace", "ns"),
    # Odd shapes (a CRD-like mistake, a broken object) never crash the writer thread.
    ({"status": 7}, "status.podIP", ""),
    ({"status": {"podIP": "10.0.0.1", "podIPs": {"ip": "x"}}}, "status.podIP", "10.0.0.1"),
    ({"status": {"podIPs": "10.0.0.2"}}, "status.podIP", ""),
    ({"spec": "x"}, "spec.nodeName", ""),
])
def test_pod_computed_values(pod, field, value):
    assert fields.selectable_values(pod, PODS)[field] == value


def test_node_event_secret_service_namespace_fixtures():
    assert fields.selectable_values(fixture("core.v1.Node.json"), NODES) == {
        "metadata.name": "nameValue", "spec.unschedulable": "true"}
    assert fields.selectable_values({"metadata": {"name": "n"}}, NODES)["spec.unschedulable"] \
        == "false"
    ev = fields.selectable_values(fixture("core.v1.Event.json"), EVENTS)
    assert ev["source"] == "componentValue"
    assert ev["reportingComponent"] == "reportingComponentValue"
    assert ev["involvedObject.kind"] == "kindValue"
    assert fields.selectable_values({"reportingComponent": "kubelet"}, EVENTS)["source"] == \
        "kubelet"
    assert fields.selectable_values(fixture("core.v1.Secret.json"), SECRETS)["type"] == \
        "typeValue"
    svc = fields.selectable_values(fixture("core.v1.Service.json"), SERVICES)
    assert (svc["spec.clusterIP"], svc["spec.type"]) == ("clusterIPValue", "typeValue")
    ns = fields.selectable_values(fixture("core.v1.Namespace.json"), NAMESPACES)
    assert ns == {"metadata.name": "nameValue", "status.phase": "phaseValue"}


@pytest.mark.parametrize("resource, obj, field, value", [
    ("jobs", {}, "status.successful", "0"),
    ("jobs", {"status": {"succeeded": 3}}, "status.successful", "3"),
    ("replicasets", {}, "status.replicas", "0"),
    ("replicasets", {"status": {"replicas": 2}}, "status.replicas", "2"),
    ("replicationcontrollers", {"status": {"replicas": 5}}, "status.replicas", "5"),
])
def test_workload_fields_kube_apiserver_selects_on(resource, obj, field, value):
    # JobToSelectableFields, ReplicaSetToSelectableFields, ControllerToSelectableFields:
    # strconv.Itoa of the status counter, so an absent one is "0".
    group = {"jobs": "batch", "replicasets": "apps"}.get(resource, "")
    rt = builtin(group, "v1", resource)
    assert rt is not None
    values = fields.selectable_values(obj, rt)
    assert values[field] == value
    assert fields.parse(f"{field}={value}", rt).matches(values)
    assert not fields.parse(f"{field}!={value}", rt).matches(values)


def test_selector_against_fixture_values():
    values = fields.selectable_values(fixture("core.v1.Pod.json"), PODS)
    assert fields.parse("spec.nodeName=nodeNameValue,metadata.namespace=namespaceValue",
                        PODS).matches(values)
    assert not fields.parse("spec.hostNetwork=false", PODS).matches(values)
