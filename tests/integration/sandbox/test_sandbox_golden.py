"""The golden tables (tests/golden/) through a real sandbox over HTTP.

Every selector case is a list request against objects seeded with the case's labels or
fields; every patch case is a PATCH of a seeded object.  One sandbox serves the module and
each table runs as one test that reports every case that disagrees, so the few thousand
requests cost seconds.

How the cases are put on the wire:
- label selectors: one ConfigMap per distinct label set of the match table, in one
  namespace; a case passes when its set's object is listed exactly when Go says it matches.
- field selectors: the Go tests use made-up field names; each becomes one of an Event's
  selectable string fields (``x`` -> ``involvedObject.kind`` ...), and the case's values are
  set there.
- patches: the document is the ``spec`` of a custom resource and each patch is aimed at it
  (``{"spec": patch}``, JSON pointers prefixed with ``/spec``).  Strategic merge patches use
  the merge metadata of apimachinery's test types, which the test gives the sandbox for that
  resource (kube-apiserver takes strategic merge patches only for its compiled-in types).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from kubesandbox.server import Sandbox
from tests.golden import SCHEMAS, load
from yurthub.kube import fields as kfields
from yurthub.kube import patch as kpatch
from yurthub.kube.patchschema import PatchField

GROUP, PLURAL, KIND = "golden.yurthub.test", "goldens", "Golden"
NS = "golden"


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(nodes=0, pods_per_node=0, control_port=0).start()
    sandbox.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    sandbox.create({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": PLURAL, "singular": "golden", "kind": KIND},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}}}]},
    })
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="module")
def http(sb: Sandbox) -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(maxsize=1)
    yield pool
    pool.clear()


def call(http: urllib3.PoolManager, sb: Sandbox, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> tuple[int, Any]:
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    r = http.request(method, sb.url + path, body=data, headers={"Content-Type": content_type},
                     retries=False)
    return r.status, json.loads(r.data)


def listed(http: urllib3.PoolManager, sb: Sandbox, path: str, param: str,
           selector: str) -> tuple[int, Any]:
    query = urllib.parse.urlencode({param: selector})
    return call(http, sb, "GET", f"{path}?{query}")


# -- label selectors --------------------------------------------------------------------------

def test_label_selectors(sb, http):
    golden = load("labels")
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    sets: dict[str, str] = {}
    for case in golden["match"]:
        key = json.dumps(case["labels"], sort_keys=True)
        if key not in sets:
            sets[key] = name = f"set-{len(sets)}"
            status, _ = call(http, sb, "POST", cms, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": case["labels"]}})
            assert status == 201
    wrong = []
    for case in golden["match"]:
        status, body = listed(http, sb, cms, "labelSelector", case["selector"])
        names = {i["metadata"]["name"] for i in body.get("items", [])}
        got = sets[json.dumps(case["labels"], sort_keys=True)] in names
        if status != 200 or got is not case["matches"]:
            wrong.append((case["selector"], case["labels"], status, got))
    for case in golden["parse"] + [{"selector": c["selector"], "valid": True}
                                   for c in golden["exact"]]:
        status, body = listed(http, sb, cms, "labelSelector", case["selector"])
        if case["valid"] and status != 200:
            wrong.append((case["selector"], status, body.get("message")))
        if not case["valid"] and (status, body.get("reason")) != (400, "BadRequest"):
            wrong.append((case["selector"], status, body))
        elif not case["valid"] and not body["message"].startswith(
                ("unable to parse requirement: ", "found '")):
            wrong.append((case["selector"], body["message"]))
    assert wrong == []
    assert len(golden["match"]) + len(golden["parse"]) > 90


# -- field selectors --------------------------------------------------------------------------

_EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                 "involvedObject.uid", "involvedObject.apiVersion",
                 "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                 "type", "reportingComponent")


def _field_map(golden: dict[str, Any]) -> dict[str, str]:
    names: list[str] = []
    for case in golden["match"]:
        names.extend(n for n in case["fields"] if n not in names)
        for term in kfields.split_terms(case["selector"]):
            parts = kfields.split_term(term)
            if parts and parts[0] not in names:
                names.append(parts[0])
    assert len(names) <= len(_EVENT_FIELDS)
    return dict(zip(names, _EVENT_FIELDS, strict=False))


def _rename(selector: str, mapping: dict[str, str]) -> str:
    terms = []
    for term in kfields.split_terms(selector):
        parts = kfields.split_term(term)
        if parts is None:
            terms.append(term)
        else:
            lhs, op, rhs = parts
            terms.append(mapping.get(lhs, "reason") + op + rhs)
    return ",".join(terms)


def _set_field(obj: dict[str, Any], dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        obj = obj.setdefault(p, {})
    obj[last] = value


def test_field_selectors(sb, http):
    golden = load("fields")
    mapping = _field_map(golden)
    events = f"/api/v1/namespaces/{NS}/events"
    sets: dict[str, str] = {}
    for case in golden["match"]:
        key = json.dumps(case["fields"], sort_keys=True)
        if key not in sets:
            sets[key] = name = f"fields-{len(sets)}"
            event: dict[str, Any] = {"apiVersion": "v1", "kind": "Event",
                                     "metadata": {"name": name}}
            for field, value in case["fields"].items():
                _set_field(event, mapping[field], value)
            status, body = call(http, sb, "POST", events, event)
            assert status == 201, body
    wrong = []
    for case in golden["match"]:
        selector = _rename(case["selector"], mapping)
        status, body = listed(http, sb, events, "fieldSelector", selector)
        names = {i["metadata"]["name"] for i in body.get("items", [])}
        got = sets[json.dumps(case["fields"], sort_keys=True)] in names
        if status != 200 or got is not case["matches"]:
            wrong.append((selector, case["fields"], status, got))
    for case in golden["parse"] + [{"selector": c["selector"], "valid": True}
                                   for c in golden["exact"]]:
        selector = _rename(case["selector"], mapping)
        status, body = listed(http, sb, events, "fieldSelector", selector)
        if case["valid"] != (status == 200):
            wrong.append((selector, status, body.get("message")))
        if not case["valid"] and not body.get("message", "").startswith(
                ("invalid selector: ", "invalid field selector: ")):
            wrong.append((selector, body))
    for value in golden["badEscape"]:
        status, body = listed(http, sb, events, "fieldSelector", "reason=" + value)
        if (status, body.get("reason")) != (400, "BadRequest"):
            wrong.append((value, status, body))
    assert wrong == []


# -- patches ----------------------------------------------------------------------------------

def _seed(http: urllib3.PoolManager, sb: Sandbox, name: str, doc: Any) -> None:
    status, body = call(http, sb, "POST", f"/apis/{GROUP}/v1/namespaces/{NS}/{PLURAL}", {
        "apiVersion": f"{GROUP}/v1", "kind": KIND, "metadata": {"name": name}, "spec": doc})
    assert status == 201, body


def _patch(http: urllib3.PoolManager, sb: Sandbox, name: str, body: Any,
           media: str) -> tuple[int, Any]:
    return call(http, sb, "PATCH", f"/apis/{GROUP}/v1/namespaces/{NS}/{PLURAL}/{name}",
                body, media)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_strategic_merge_patches(sb, http):
    sb.registry.set_patch_schema(GROUP, PLURAL, {"spec": PatchField("", "", SCHEMAS["mergeItem"])})
    cases = [c for c in load("strategicpatch")["cases"] if c["schema"] == "mergeItem"]
    wrong = []
    for case in cases:
        name = case["id"]
        _seed(http, sb, name, case["original"])
        status, body = _patch(http, sb, name, {"spec": case["patch"]},
                              kpatch.STRATEGIC_MERGE_PATCH)
        if "error" in case:
            if status < 400 or case["error"] not in body.get("message", ""):
                wrong.append((name, status, body.get("message")))
        elif status != 200 or not _same(body["spec"], case["result"]):
            wrong.append((name, status, body.get("spec", body.get("message"))))
    assert wrong == []
    assert len(cases) > 250


def _wrap_pointer(value: Any) -> Any:
    return "/spec" + value if isinstance(value, str) and (value == "" or value[0] == "/") \
        else value


def _wrap_ops(patch: Any) -> Any:
    out = []
    for op in patch:
        op = dict(op) if isinstance(op, dict) else op
        if isinstance(op, dict):
            for k in ("path", "from"):
                if k in op:
                    op[k] = _wrap_pointer(op[k])
        out.append(op)
    return out


def _touches_root(patch: Any) -> bool:
    return any(isinstance(op, dict) and "" in (op.get("path"), op.get("from"))
               for op in patch)


def test_json_patches(sb, http):
    wrong = []
    cases = load("jsonpatch")["cases"]
    for case in cases:
        name = case["id"]
        _seed(http, sb, name, case["doc"])
        if "patch_text" in case:
            body = case["patch_text"].replace('"path": "/', '"path": "/spec/').encode()
        elif _touches_root(case["patch"]) and not case.get("error"):
            continue  # "" is the whole document, not its spec: unit-tested only
        elif _touches_root(case["patch"]):
            body = json.dumps(case["patch"]).encode()  # fails on any document
        else:
            body = json.dumps(_wrap_ops(case["patch"])).encode()
        status, got = _patch(http, sb, name, body, kpatch.JSON_PATCH)
        if case.get("error"):
            expected = (case.get("message") or "").replace("value /", "value /spec/")
            cause = got.get("details", {}).get("causes", [{}])[0].get("message", "")
            if (status, got.get("message")) != (422, kpatch.GENERIC_INVALID) or \
                    (expected and cause != expected):
                wrong.append((name, status, got))
        elif status != 200:
            wrong.append((name, status, got.get("message")))
        elif "result" in case and not _same(got.get("spec"), case["result"]):
            wrong.append((name, got.get("spec")))
        elif case.get("changes") and _same(got.get("spec"), case["doc"]):
            wrong.append((name, "unchanged"))
    assert wrong == []
    assert len(cases) > 60


def test_merge_patches(sb, http):
    wrong = []
    cases = load("mergepatch")["cases"]
    for case in cases:
        name = case["id"]
        _seed(http, sb, name, case["doc"])
        if "patch_text" in case:  # null or a scalar: refused whatever the document is
            status, got = _patch(http, sb, name, case["patch_text"].encode(),
                                 kpatch.MERGE_PATCH)
            if (status, got.get("message")) != (400, case["error"]):
                wrong.append((name, status, got))
            continue
        status, got = _patch(http, sb, name, {"spec": case["patch"]}, kpatch.MERGE_PATCH)
        if status != 200 or not _same(got.get("spec"), case["result"]):
            wrong.append((name, status, got.get("spec", got)))
    assert wrong == []
    assert len(cases) > 30
