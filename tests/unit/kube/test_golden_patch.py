"""The golden patch tables (tests/golden/) through ``yurthub.kube.patch``.

Strategic merge patch: every application apimachinery's ``patch_test.go`` performs, with its
test types' merge metadata.  JSON patch and merge patch: the tables of evanphx/json-patch,
the library kube-apiserver applies both with, and the RFC examples.
"""

from __future__ import annotations

import json

import pytest

from tests.golden import SCHEMAS, case_id, load
from yurthub.errors import ApiError, BadRequest, Invalid
from yurthub.kube import patch as P

SMP = load("strategicpatch")["cases"]
JSONPATCH = load("jsonpatch")["cases"]
MERGEPATCH = load("mergepatch")["cases"]


def canonical(doc: object) -> str:
    """Equal JSON as Go compares it after a round trip: map keys unordered, lists ordered."""
    return json.dumps(doc, sort_keys=True)


@pytest.mark.parametrize("case", SMP, ids=case_id)
def test_strategic_merge_patch(case):
    original, patch = case["original"], case["patch"]
    before = canonical((original, patch))
    if "error" in case:
        with pytest.raises(ApiError) as e:
            P.apply_strategic_merge_patch(original, patch, "", schema=SCHEMAS[case["schema"]])
        assert case["error"] in e.value.message
    else:
        got = P.apply_strategic_merge_patch(original, patch, "", schema=SCHEMAS[case["schema"]])
        assert canonical(got) == canonical(case["result"])
    assert canonical((original, patch)) == before  # inputs are never changed


def _patch_of(case: dict) -> object:
    return json.loads(case["patch_text"]) if "patch_text" in case else case["patch"]


@pytest.mark.parametrize("case", JSONPATCH, ids=case_id)
def test_json_patch(case):
    doc, patch = case["doc"], _patch_of(case)
    before = canonical(doc)
    if case.get("error"):
        with pytest.raises(Invalid) as e:
            P.apply_json_patch(doc, patch)
        assert (e.value.code, e.value.message) == (422, P.GENERIC_INVALID)
        assert e.value.details["causes"][0]["message"] == e.value.detail
        if "message" in case:
            assert e.value.detail == case["message"]
    elif case.get("applies"):
        P.apply_json_patch(doc, patch)
    elif case.get("changes"):
        assert canonical(P.apply_json_patch(doc, patch)) != canonical(doc)
    else:
        assert canonical(P.apply_json_patch(doc, patch)) == canonical(case["result"])
    assert canonical(doc) == before


@pytest.mark.parametrize("case", MERGEPATCH, ids=case_id)
def test_merge_patch(case):
    doc, patch = case["doc"], _patch_of(case)
    before = canonical(doc)
    if "error" in case:
        with pytest.raises(BadRequest) as e:
            P.apply_merge_patch(doc, patch)
        assert e.value.message == case["error"]
    else:
        assert canonical(P.apply_merge_patch(doc, patch)) == canonical(case["result"])
    assert canonical(doc) == before


def test_the_tables_are_whole():
    # A truncated or mangled data file must not pass as a smaller green run.
    assert len(SMP) >= 290 and len(JSONPATCH) >= 60 and len(MERGEPATCH) >= 30
    assert sum("error" in c for c in SMP) == 3
