"""kubectl's columns for the platform's own objects, which kube-apiserver prints with printers
of its own and the hub printed as NAME and AGE offline: admission policy bindings, mutating
admission policies, flow schemas and priority levels, DRA's objects, service CIDRs and IP
addresses, component statuses, cluster trust bundles, lease candidates, volume attributes
classes, storage versions and their migrations.

The objects are the ones Kubernetes serializes (tests/fixtures/k8s-api-testdata) and small
ones for the branches those do not reach; the expected cells follow each printer's code in
printers.go (v1.32), by hand."""

from __future__ import annotations

import json

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub.kube.printers import printer_for
from yurthub.kube.table import NAME_AGE, TableWriter, printer

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z; the fixtures were created 2008-01-01 (17y)
CREATED = "2025-06-15T12:06:40Z"  # NOW - 3h
ADM, FLOW, DRA, NET = ("admissionregistration.k8s.io", "flowcontrol.apiserver.k8s.io",
                       "resource.k8s.io", "networking.k8s.io")


def fixture(name: str) -> dict:
    return json.loads((K8S_TESTDATA / f"{name}.json").read_text())


@pytest.mark.parametrize("group,resource,name,header,cells", [
    (ADM, "validatingadmissionpolicybindings",
     "admissionregistration.k8s.io.v1.ValidatingAdmissionPolicyBinding",
     ["Name", "PolicyName", "ParamRef", "Age"],
     ["nameValue", "policyNameValue", "namespaceValue/nameValue", "17y"]),
    (ADM, "mutatingadmissionpolicybindings",
     "admissionregistration.k8s.io.v1beta1.MutatingAdmissionPolicyBinding",
     ["Name", "PolicyName", "ParamRef", "Age"],
     ["nameValue", "policyNameValue", "namespaceValue/nameValue", "17y"]),
    (ADM, "mutatingadmissionpolicies",
     "admissionregistration.k8s.io.v1beta1.MutatingAdmissionPolicy",
     ["Name", "Mutations", "ParamKind", "Age"],
     ["nameValue", 1, "apiVersionValue/kindValue", "17y"]),
    (FLOW, "flowschemas", "flowcontrol.apiserver.k8s.io.v1.FlowSchema",
     ["Name", "PriorityLevel", "MatchingPrecedence", "DistinguisherMethod", "Age", "MissingPL"],
     ["nameValue", "nameValue", 2, "typeValue", "17y", "?"]),
    (FLOW, "prioritylevelconfigurations",
     "flowcontrol.apiserver.k8s.io.v1.PriorityLevelConfiguration",
     ["Name", "Type", "NominalConcurrencyShares", "Queues", "HandSize", "QueueLengthLimit",
      "Age"],
     ["nameValue", "typeValue", 1, 1, 2, 3, "17y"]),
    ("internal.apiserver.k8s.io", "storageversions",
     "internal.apiserver.k8s.io.v1alpha1.StorageVersion",
     ["Name", "CommonEncodingVersion", "StorageVersions", "Age"],
     ["nameValue", "commonEncodingVersionValue", "apiServerIDValue=encodingVersionValue",
      "17y"]),
    (DRA, "deviceclasses", "resource.k8s.io.v1.DeviceClass", ["Name", "Age"],
     ["nameValue", "17y"]),
    (DRA, "resourceclaims", "resource.k8s.io.v1beta1.ResourceClaim", ["Name", "State", "Age"],
     ["nameValue", "deleted,allocated,reserved", "17y"]),
    (DRA, "resourceclaimtemplates", "resource.k8s.io.v1.ResourceClaimTemplate", ["Name", "Age"],
     ["nameValue", "17y"]),
    (DRA, "resourceslices", "resource.k8s.io.v1.ResourceSlice",
     ["Name", "Node", "Driver", "Pool", "Age"],
     ["nameValue", "nodeNameValue", "driverValue", "nameValue", "17y"]),
    (NET, "servicecidrs", "networking.k8s.io.v1.ServiceCIDR", ["Name", "CIDRs", "Age"],
     ["nameValue", "cidrsValue", "17y"]),
    # Two columns; kube-apiserver's row has the age too.
    (NET, "ipaddresses", "networking.k8s.io.v1.IPAddress", ["Name", "ParentRef"],
     ["nameValue", "resourcevalue.groupvalue/namespaceValue/nameValue", "17y"]),
    ("", "componentstatuses", "core.v1.ComponentStatus", ["Name", "Status", "Message", "Error"],
     ["nameValue", "Unknown", "", ""]),
    ("certificates.k8s.io", "clustertrustbundles",
     "certificates.k8s.io.v1beta1.ClusterTrustBundle", ["Name", "SignerName"],
     ["nameValue", "signerNameValue"]),
    ("coordination.k8s.io", "leasecandidates", "coordination.k8s.io.v1beta1.LeaseCandidate",
     ["Name", "LeaseName", "BinaryVersion", "EmulationVersion", "Age"],
     ["nameValue", "leaseNameValue", "binaryVersionValue", "emulationVersionValue", "17y"]),
    ("storage.k8s.io", "volumeattributesclasses", "storage.k8s.io.v1.VolumeAttributesClass",
     ["Name", "DriverName", "Age"], ["nameValue", "driverNameValue", "17y"]),
])
def test_what_kubernetes_serializes_prints_kube_apiservers_columns(group, resource, name,
                                                                   header, cells):
    p = printer(group, resource, "v1", None)
    assert p is not NAME_AGE
    assert [c.name for c in p.columns] == header
    assert all(c.priority == 0 for c in p.columns)
    obj = fixture(name)
    assert p.row(obj, True, NOW).cells == cells
    table = json.loads(b"".join(TableWriter(p, include="Object", now=NOW).table([obj], {})))
    assert table["rows"][0]["cells"] == cells and table["rows"][0]["object"] == obj


@pytest.mark.parametrize("ref,cell", [
    (None, "<unset>"),
    ({"name": "cfg"}, "*/cfg"),  # no namespace: it may be cluster-scoped
    ({"selector": {"matchLabels": {"b": "2", "a": "1"}}},
     "&LabelSelector{MatchLabels:map[string]string{a: 1,b: 2,},"
     "MatchExpressions:[]LabelSelectorRequirement{},}"),
    ({"selector": {"matchExpressions": [{"key": "env", "operator": "In",
                                         "values": ["prod", "edge"]}]}},
     "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement"
     "{LabelSelectorRequirement{Key:env,Operator:In,Values:[prod edge],},},}"),
    ({}, "<unset>"),
])
def test_a_bindings_param_ref(ref, cell):
    spec = {"policyName": "p"} if ref is None else {"policyName": "p", "paramRef": ref}
    row = printer_for(ADM, "validatingadmissionpolicybindings").row(
        {"metadata": {"name": "b", "creationTimestamp": CREATED}, "spec": spec}, True, NOW)
    assert row.cells == ["b", "p", cell, "3h"]


def test_an_exempt_priority_level_and_a_dangling_flow_schema():
    exempt = {"metadata": {"name": "exempt"}, "spec": {"type": "Exempt", "exempt": {}}}
    assert printer_for(FLOW, "prioritylevelconfigurations").row(exempt, True, NOW).cells == \
        ["exempt", "Exempt", "<none>", "<none>", "<none>", "<none>", "<unknown>"]
    reject = {"metadata": {"name": "l"}, "spec": {"type": "Limited", "limited": {
        "nominalConcurrencyShares": 5, "limitResponse": {"type": "Reject"}}}}
    assert printer_for(FLOW, "prioritylevelconfigurations").row(reject, True, NOW).cells == \
        ["l", "Limited", 5, "<none>", "<none>", "<none>", "<unknown>"]
    fs = {"metadata": {"name": "f"}, "spec": {"priorityLevelConfiguration": {"name": "gone"},
                                             "matchingPrecedence": 800},
          "status": {"conditions": [{"type": "Dangling", "status": "True"}]}}
    assert printer_for(FLOW, "flowschemas").row(fs, True, NOW).cells == \
        ["f", "gone", 800, "<none>", "<unknown>", "True"]


def test_flow_schemas_list_by_matching_precedence_then_name():
    def fs(name, precedence):
        return {"metadata": {"name": name}, "spec": {"matchingPrecedence": precedence}}
    writer = TableWriter(printer_for(FLOW, "flowschemas"), include="None", now=NOW)
    table = json.loads(b"".join(writer.table(
        [fs("global-default", 9900), fs("system-nodes", 500), fs("exempt", 1),
         fs("kube-system", 500)], {})))
    assert [r["cells"][0] for r in table["rows"]] == \
        ["exempt", "kube-system", "system-nodes", "global-default"]


@pytest.mark.parametrize("obj,cells", [
    ({"metadata": {"name": "c"}, "status": {}}, ["c", "pending", "<unknown>"]),
    ({"metadata": {"name": "c", "deletionTimestamp": CREATED}}, ["c", "deleted", "<unknown>"]),
    ({"metadata": {"name": "c"}, "status": {"allocation": {}}}, ["c", "allocated", "<unknown>"]),
])
def test_a_resource_claims_state(obj, cells):
    assert printer_for(DRA, "resourceclaims").row(obj, True, NOW).cells == cells


def test_the_rest_of_the_branches():
    cs = {"metadata": {"name": "etcd-0"}, "conditions": [
        {"type": "Healthy", "status": "False", "message": "m", "error": "dial tcp: refused"}]}
    assert printer_for("", "componentstatuses").row(cs, True, NOW).cells == \
        ["etcd-0", "Unhealthy", "m", "dial tcp: refused"]
    cs["conditions"][0]["status"] = "True"
    assert printer_for("", "componentstatuses").row(cs, True, NOW).cells[1] == "Healthy"
    ip = {"metadata": {"name": "10.96.0.1"},
          "spec": {"parentRef": {"resource": "services", "namespace": "default",
                                 "name": "kubernetes"}}}
    assert printer_for(NET, "ipaddresses").row(ip, True, NOW).cells[1] == \
        "services/default/kubernetes"
    assert printer_for(NET, "ipaddresses").row({"metadata": {"name": "x"}}, True,
                                               NOW).cells[1] == "<none>"
    cidr = {"metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/12", "fd00::/108"]}}
    assert printer_for(NET, "servicecidrs").row(cidr, True, NOW).cells[1] == \
        "10.96.0.0/12,fd00::/108"
    sv = {"metadata": {"name": "apps.deployments"}, "status": {"storageVersions": [
        {"apiServerID": f"a{i}", "encodingVersion": "apps/v1"} for i in range(5)]}}
    assert printer_for("internal.apiserver.k8s.io", "storageversions").row(sv, True, NOW).cells \
        == ["apps.deployments", "<unset>",
            "a0=apps/v1,a1=apps/v1,a2=apps/v1 + 2 more...", "<unknown>"]
    vac = {"metadata": {"name": "gold", "annotations": {
        "volumeattributesclass.alpha.kubernetes.io/is-default-class": "true"}},
        "driverName": "csi.example.com"}
    assert printer_for("storage.k8s.io", "volumeattributesclasses").row(vac, True, NOW).cells \
        == ["gold (default)", "csi.example.com", "<unknown>"]
    assert printer_for("certificates.k8s.io", "clustertrustbundles").row(
        {"metadata": {"name": "b"}, "spec": {}}, True, NOW).cells == ["b", "<none>"]
    svm = {"metadata": {"name": "m"},
           "spec": {"resource": {"group": "apps", "version": "v1", "resource": "deployments"}}}
    assert printer_for("storagemigration.k8s.io", "storageversionmigrations").row(
        svm, True, NOW).cells == ["m", "deployments.v1.apps"]
