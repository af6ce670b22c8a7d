"""yurthub.kube's Table pieces beyond the golden cases: timestamps, Go's formatting, the
streamed Table, CRD columns that kube-apiserver would not parse, and every printer on the
objects Kubernetes itself serializes (tests/fixtures/k8s-api-testdata)."""

from __future__ import annotations

import json
import math

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub.errors import JSONPathError
from yurthub.kube import gofmt
from yurthub.kube.humantime import NS, parse_rfc3339, since, timestamp
from yurthub.kube.jsonpath import JSONPath
from yurthub.kube.printers import PRINTERS
from yurthub.kube.table import (
    DEFAULT,
    NAME_AGE,
    TableWriter,
    crd_printer,
    is_table,
    list_meta,
    printer,
)

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
FIXTURES = {
    ("", "pods"): "core.v1.Pod", ("", "nodes"): "core.v1.Node",
    ("", "services"): "core.v1.Service", ("", "endpoints"): "core.v1.Endpoints",
    ("", "events"): "core.v1.Event", ("", "namespaces"): "core.v1.Namespace",
    ("", "secrets"): "core.v1.Secret", ("", "serviceaccounts"): "core.v1.ServiceAccount",
    ("", "configmaps"): "core.v1.ConfigMap",
    ("discovery.k8s.io", "endpointslices"): "discovery.k8s.io.v1.EndpointSlice",
    ("coordination.k8s.io", "leases"): "coordination.k8s.io.v1.Lease",
    ("events.k8s.io", "events"): "events.k8s.io.v1.Event",
    ("apps", "deployments"): "apps.v1.Deployment", ("apps", "replicasets"): "apps.v1.ReplicaSet",
    ("apps", "daemonsets"): "apps.v1.DaemonSet", ("apps", "statefulsets"): "apps.v1.StatefulSet",
    ("batch", "jobs"): "batch.v1.Job", ("batch", "cronjobs"): "batch.v1.CronJob",
    ("", "persistentvolumes"): "core.v1.PersistentVolume",
    ("", "persistentvolumeclaims"): "core.v1.PersistentVolumeClaim",
    ("storage.k8s.io", "storageclasses"): "storage.k8s.io.v1.StorageClass",
    ("certificates.k8s.io", "certificatesigningrequests"):
        "certificates.k8s.io.v1.CertificateSigningRequest",
    ("node.k8s.io", "runtimeclasses"): "node.k8s.io.v1.RuntimeClass",
    ("scheduling.k8s.io", "priorityclasses"): "scheduling.k8s.io.v1.PriorityClass",
    ("networking.k8s.io", "networkpolicies"): "networking.k8s.io.v1.NetworkPolicy",
    ("networking.k8s.io", "ingresses"): "networking.k8s.io.v1.Ingress",
    ("networking.k8s.io", "ingressclasses"): "networking.k8s.io.v1.IngressClass",
    ("rbac.authorization.k8s.io", "rolebindings"): "rbac.authorization.k8s.io.v1.RoleBinding",
    ("rbac.authorization.k8s.io", "clusterrolebindings"):
        "rbac.authorization.k8s.io.v1.ClusterRoleBinding",
    ("apps", "controllerrevisions"): "apps.v1.ControllerRevision",
    ("", "replicationcontrollers"): "core.v1.ReplicationController",
    ("policy", "poddisruptionbudgets"): "policy.v1.PodDisruptionBudget",
    ("", "resourcequotas"): "core.v1.ResourceQuota",
    ("storage.k8s.io", "csidrivers"): "storage.k8s.io.v1.CSIDriver",
    ("storage.k8s.io", "csinodes"): "storage.k8s.io.v1.CSINode",
    ("storage.k8s.io", "volumeattachments"): "storage.k8s.io.v1.VolumeAttachment",
}


@pytest.mark.parametrize("text,ns", [
    ("1970-01-01T00:00:00Z", 0),
    ("2025-06-15T15:06:40Z", int(NOW) * NS),
    ("2025-06-15T17:06:40+02:00", int(NOW) * NS),
    ("2025-06-15T15:06:40.123456Z", int(NOW) * NS + 123_456_000),
    ("0001-01-01T00:00:00Z", None),  # Go's zero time
])
def test_rfc3339_timestamps(text, ns):
    assert parse_rfc3339(text) == ns


@pytest.mark.parametrize("text", ["2025-06-15", "2025-06-15 15:06:40Z", "2025-13-01T00:00:00Z",
                                  "yesterday", "2025-06-15T15:06:40"])
def test_malformed_timestamps_are_errors_or_zero(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)
    assert timestamp(text) is None
    assert since(text, NOW) == "<unknown>"


@pytest.mark.parametrize("value,text", [
    (1.0, "1"), (1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5"), (math.inf, "+Inf"),
])
def test_go_prints_floats_with_v(value, text):
    assert gofmt.float_v(value) == text


@pytest.mark.parametrize("value,text", [
    ({"b": 1, "a": [1.0, "<&>", None, True]}, '{"a":[1,"\\u003c\\u0026\\u003e",null,true],"b":1}'),
    (1e21, "1e+21"), (1e-7, "1e-7"), (1e20, "100000000000000000000"), ("\x01\n", '"\\u0001\\n"'),
])
def test_go_writes_json(value, text):
    assert gofmt.to_json(value) == text


def test_a_table_streams_one_row_per_object():
    writer = TableWriter(printer("", "configmaps", "v1", None), now=NOW)
    objects = ({"metadata": {"name": f"cm{i}", "resourceVersion": str(i)}, "data": {"k": "v"}}
               for i in range(3))
    pieces = list(writer.table(objects, list_meta("7", "tok", 4)))
    assert len(pieces) == 5  # head, three rows, tail
    table = json.loads(b"".join(pieces))
    assert table["metadata"] == {"resourceVersion": "7", "continue": "tok",
                                 "remainingItemCount": 4}
    assert [r["cells"] for r in table["rows"]] == [[f"cm{i}", 1, "<unknown>"] for i in range(3)]
    assert is_table(table) and not is_table({"kind": "Table", "apiVersion": "example.com/v1"})
    empty = json.loads(b"".join(writer.table([], list_meta("8"))))
    assert empty["rows"] == [] and empty["metadata"] == {"resourceVersion": "8"}


def test_a_status_in_a_table_watch_passes_through():
    writer = TableWriter(DEFAULT, now=NOW)
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410}
    line = writer.watch_event("ERROR", status, headers=True)
    assert json.loads(line) == {"type": "ERROR", "object": status}


def test_a_crd_column_that_does_not_parse_ends_the_columns_there():
    crd = {"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [
        {"name": "A", "type": "string", "jsonPath": ".spec.a"},
        {"name": "Bad", "type": "string", "jsonPath": ".spec[?(@.x"},
        {"name": "C", "type": "string", "jsonPath": ".spec.c"}]}]}}
    p = crd_printer(crd, "v1")
    assert [c.name for c in p.columns] == ["Name", "A"]
    assert p.row({"metadata": {"name": "x"}, "spec": {"a": 1.5, "c": "c"}}, True, NOW).cells == \
        ["x", "1.5"]


def test_crd_string_columns_print_go_values():
    crd = {"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [
        {"name": "Ready", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Null", "type": "string", "jsonPath": ".spec.nothing"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.missing"},
        {"name": "Big", "type": "string", "jsonPath": ".spec.big"}]}]}}
    obj = {"metadata": {"name": "x"}, "spec": {"nothing": None, "big": 2.5e6},
           "status": {"conditions": [{"type": "Synced", "status": "False"},
                                     {"type": "Ready", "status": "True"}]}}
    assert crd_printer(crd, "v1").row(obj, True, NOW).cells == \
        ["x", "True", "<no value>", None, "2.5e+06"]


@pytest.mark.parametrize("group,resource", [
    ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles"),
    ("", "limitranges"), ("apiextensions.k8s.io", "customresourcedefinitions")])
def test_built_ins_kube_apiserver_prints_with_its_default_convertor(group, resource):
    # Their registries have no printer: NAME and CREATED AT, online as offline.
    assert printer(group, resource, "v1", None) is DEFAULT


def test_resources_without_a_printer():
    group = "example.com"  # neither a built-in printer nor a CRD in the cache
    assert printer(group, "widgets", "v1", None) is NAME_AGE
    assert printer(group, "widgets", "v1", None, fallback=DEFAULT) is DEFAULT
    row = DEFAULT.row({"metadata": {"name": "d",
                                    "creationTimestamp": "2025-06-15T17:06:40+02:00"}}, True, NOW)
    assert row.cells == ["d", "2025-06-15T15:06:40Z"]
    assert DEFAULT.row({"metadata": {"name": "d"}}, True, NOW).cells == \
        ["d", "0001-01-01T00:00:00Z"]


@pytest.mark.parametrize("key", sorted(FIXTURES), ids=lambda k: k[1])
def test_every_printer_prints_what_kubernetes_serializes(key):
    obj = json.loads((K8S_TESTDATA / f"{FIXTURES[key]}.json").read_text())
    p = PRINTERS[key]
    for wide in (True, False):
        row = p.row(obj, wide, NOW)
        # The volume printers add their wide cell (VOLUMEMODE) always, as kube-apiserver's do;
        # a priority class its last, priority-0 cell only to wide rows.
        shown = len([c for c in p.columns if wide or c.priority == 0])
        short = key == ("scheduling.k8s.io", "priorityclasses") and not wide
        assert len(row.cells) in (shown, len(p.columns)) or (short and len(row.cells) == shown - 1)
        assert all(isinstance(c, (str, int)) for c in row.cells)
    table = json.loads(b"".join(TableWriter(p, include="Object", now=NOW).table([obj], {})))
    assert table["rows"][0]["object"] == obj


@pytest.mark.parametrize("fixture", ["events.k8s.io.v1.Event", "events.k8s.io.v1beta1.Event"])
def test_an_events_api_event_prints_as_kube_apiserver_prints_it(fixture):
    # kube-apiserver converts it to its one Event (note -> message, regarding ->
    # involvedObject, deprecatedSource -> source, ...) and uses the core printer: by hand
    # from printEvent, at NOW.  Its series wins over deprecatedLastTimestamp and its count.
    obj = json.loads((K8S_TESTDATA / f"{fixture}.json").read_text())
    p = printer("events.k8s.io", "events", fixture.split(".")[2], None)
    assert [c.name for c in p.columns] == ["Last Seen", "Type", "Reason", "Object",
                                           "Subobject", "Source", "Message", "First Seen",
                                           "Count", "Name"]
    assert p.row(obj, True, NOW).cells == [
        "23y", "typeValue", "reasonValue", "kindvalue/nameValue", "fieldPathValue",
        "componentValue, hostValue", "noteValue", "12y", 1, "nameValue"]
    del obj["series"], obj["deprecatedSource"]
    assert p.row(obj, False, NOW).cells == [
        "11y", "typeValue", "reasonValue", "kindvalue/nameValue", "noteValue"]
    assert p.row(obj, True, NOW).cells[5] == "reportingControllerValue, reportingInstanceValue"
    assert p.row(obj, True, NOW).cells[8] == 15


@pytest.mark.parametrize("template,error", [
    ("{.a", "unclosed action"), ("{.a[1}", "unterminated array"), ("{@x}", None),
    ("{range .a}{end}", "not supported"), ("{.a[x]}", "invalid array index x"),
])
def test_jsonpath_errors(template, error):
    with pytest.raises(JSONPathError) as e:
        JSONPath(template).execute({"a": [1]})
    if error:
        assert error in str(e.value)
