"""Golden Tables (tests/golden/tables/): durations, JSONPath, CRD columns, column
definitions and the Table wire format, through yurthub.kube."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.golden.tables import at, resolve, table_golden
from yurthub.errors import BadRequest, JSONPathError
from yurthub.kube import (
    columns,
    columns_apps,
    columns_cluster,
    columns_control,
    columns_platform,
    columns_storage,
    quantity,
)
from yurthub.kube.accept import negotiate
from yurthub.kube.humantime import human_duration, since
from yurthub.kube.jsonpath import JSONPath
from yurthub.kube.printers import PRINTERS
from yurthub.kube.table import (
    DEFAULT,
    TableWriter,
    cell_for_json_value,
    crd_printer,
    include_object,
    list_meta,
)

DURATIONS, D_NOW = table_golden("durations")
JSONPATH, _ = table_golden("jsonpath")
CRD, C_NOW = table_golden("crd")
COLUMNS, _ = table_golden("columns")
WIRE, W_NOW = table_golden("wire")
QUANTITIES, _ = table_golden("quantities")


def when(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=UTC)


# -- durations ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", DURATIONS["durations"], ids=lambda c: f"{c['ns']}ns")
def test_human_duration(case):
    assert human_duration(case["ns"]) == case["want"]


@pytest.mark.parametrize("case", DURATIONS["since"], ids=lambda c: str(c["time"]))
def test_translate_timestamp_since(case):
    value = resolve(case["time"], when(D_NOW))
    assert since(value, D_NOW) == case["want"]


# -- JSONPath -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", JSONPATH["cases"], ids=lambda c: f"{c['source']}-{c['name']}")
def test_jsonpath(case):
    def run() -> str:
        path = JSONPath(case["template"], allow_missing_keys=case.get("allowMissingKeys", False))
        return path.execute(case["data"])
    if "error" in case:
        with pytest.raises(JSONPathError):
            run()
        return
    out = run()
    if case.get("sortedFields"):  # map iteration order is random in Go: the test sorts
        assert sorted(out.split()) == sorted(case["expect"].split())
    else:
        assert out == case["expect"]


# -- CRD columns --------------------------------------------------------------------------

@pytest.mark.parametrize("case", CRD["cells"], ids=lambda c: f"{c['type']}-{c['value']!r}")
def test_cell_for_json_value(case):
    value = resolve(case["value"], when(C_NOW))
    got = cell_for_json_value(case["type"], value, C_NOW)
    assert got == case["want"] and type(got) is type(case["want"])


@pytest.mark.parametrize("case", CRD["convert"], ids=lambda c: c["name"])
def test_crd_columns_convert(case):
    crd = {"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": case["columns"]}]}}
    row = crd_printer(crd, "v1").row(case["object"], True, C_NOW)
    assert row.cells == case["cells"]


@pytest.mark.parametrize("case", CRD["integration"], ids=lambda c: c["source"])
@pytest.mark.parametrize("version", ["v1beta1", "v1"])
def test_crd_table(case, version):
    want = case["versions"][version]
    printer = crd_printer(case["crd"], version)
    assert [c.to_json() for c in printer.columns[1:]] == want["columns"]
    assert printer.columns[0] == columns.NAME
    obj = resolve(case["object"], when(C_NOW))
    assert printer.row(obj, True, C_NOW).cells == want["cells"]


def test_crd_without_columns_prints_name_and_age():
    crd = {"spec": {"versions": [{"name": "v1"}]}}
    printer = crd_printer(crd, "v1")
    assert [c.name for c in printer.columns] == ["Name", "Age"]
    assert printer.columns[1].type == "date"
    obj = {"metadata": {"name": "x", "creationTimestamp": at(when(C_NOW), "$now-300s")}}
    assert printer.row(obj, True, C_NOW).cells == ["x", "5m"]


# -- quantities (persistent volume capacities) -----------------------------------------------

@pytest.mark.parametrize("case", QUANTITIES["emit"], ids=lambda c: c["in"])
def test_quantity_string(case):
    assert quantity.canonical(case["in"]) == case["expect"]
    assert quantity.canonical("-" + case["in"]) == "-" + case["expect"]


# -- column definitions ---------------------------------------------------------------------

def test_descriptions_are_kubernetes_swagger_docs():
    described = {**columns.DESCRIPTIONS, **columns_apps.DESCRIPTIONS,
                 **columns_storage.DESCRIPTIONS, **columns_cluster.DESCRIPTIONS,
                 **columns_control.DESCRIPTIONS, **columns_platform.DESCRIPTIONS}
    assert described == COLUMNS["swagger"]


@pytest.mark.parametrize("resource", sorted(COLUMNS["resources"]))
def test_column_definitions(resource):
    name, _, group = resource.partition(".")
    printer = PRINTERS[(group, name)]
    want = []
    for col in COLUMNS["resources"][resource]:
        desc = col["description"]
        if desc.startswith("$"):
            desc = COLUMNS["swagger"][desc[1:]]
        want.append({"name": col["name"], "type": col["type"], "format": col.get("format", ""),
                     "description": desc, "priority": col.get("priority", 0)})
    assert [c.to_json() for c in printer.columns] == want


# -- the wire format ------------------------------------------------------------------------

def expected_table(table: dict, now: datetime) -> dict:
    """A golden Table with its placeholders filled in."""
    def fill(value):
        if isinstance(value, str) and value.startswith("$rfc3339:"):
            ts = value.split(":", 1)[1]
            ts = at(now, ts) if ts.startswith("$now") else ts
            return datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(value, str) and value.startswith("$ObjectMeta."):
            return COLUMNS["swagger"][value[1:]]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value
    return resolve(fill(table), now)


@pytest.mark.parametrize("case", WIRE["get"], ids=lambda c: c["accept"][:60])
def test_get_table(case):
    now = when(W_NOW)
    n = negotiate(case["accept"])
    if case.get("status") == 406:
        assert n is None or n.transform is None or not n.transform.is_table
        return
    assert n is not None and n.transform is not None and n.transform.is_table
    include = include_object({k: [v] for k, v in case.get("params", {}).items()})
    writer = TableWriter(DEFAULT, include=include, api_version=n.transform.api_version,
                         now=W_NOW)
    obj = resolve(WIRE["object"], now)
    if case.get("item"):
        body = b"".join(writer.table([obj], {"resourceVersion": "10"}))
    else:
        body = b"".join(writer.table([obj], list_meta("10")))
    assert json.loads(body) == expected_table(case["table"], now)


@pytest.mark.parametrize("case", WIRE["watch"], ids=lambda c: "-".join(c.get("send", ["406"])))
def test_watch_table(case):
    now = when(W_NOW)
    n = negotiate(case["accept"])
    if case.get("status") == 406:
        assert n is None or n.transform is None or not n.transform.is_table
        return
    assert n is not None and n.transform is not None
    writer = TableWriter(DEFAULT, api_version=n.transform.api_version, now=W_NOW)
    obj = resolve(WIRE["object"], now)
    obj["metadata"]["creationTimestamp"] = case["object_creationTimestamp"]
    lines = [writer.watch_event(t, obj, headers=i == 0) for i, t in enumerate(case["send"])]
    got = [json.loads(line) for line in lines]
    want = [{"type": t, "object": expected_table(table, now)} for t, table in case["events"]]
    for w in want:  # the watched object's own creation time
        w["object"]["rows"][0]["object"]["metadata"]["creationTimestamp"] = \
            case["object_creationTimestamp"]
    assert got == want
    assert all(line.endswith(b"}\n") for line in lines)


@pytest.mark.parametrize("value,include", [("", "Metadata"), ("Metadata", "Metadata"),
                                           ("Object", "Object"), ("None", "None")])
def test_include_object(value, include):
    assert include_object({"includeObject": [value]}) == include
    assert include_object({}) == "Metadata"


def test_include_object_rejects_other_values_as_kube_apiserver_does():
    with pytest.raises(BadRequest) as e:
        include_object({"includeObject": ["Everything"]})
    assert e.value.message == (
        'Unable to convert to Table as requested: includeObject: Invalid value: "Everything": '
        "must be 'Metadata', 'Object', 'None', or empty")
