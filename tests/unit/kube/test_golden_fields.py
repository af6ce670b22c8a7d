"""apimachinery's field selector tables (tests/golden/fields.json) through yurthub.kube.fields."""

from __future__ import annotations

import pytest

from tests.golden import case_id, load
from yurthub.errors import BadRequest
from yurthub.kube import fields

GOLDEN = load("fields")
VALID = [c for c in GOLDEN["parse"] if c["valid"]]
INVALID = [c for c in GOLDEN["parse"] if not c["valid"]]


@pytest.mark.parametrize("case", GOLDEN["splitTerms"], ids=case_id)
def test_split_terms(case):
    assert fields.split_terms(case["selector"]) == (case["terms"] or [])


@pytest.mark.parametrize("case", GOLDEN["splitTerm"], ids=case_id)
def test_split_term(case):
    got = fields.split_term(case["term"])
    assert got == ((case["lhs"], case["op"], case["rhs"]) if case["ok"] else None)


@pytest.mark.parametrize("case", GOLDEN["escape"], ids=lambda c: repr(c["value"]))
def test_escape_round_trip(case):
    assert fields.escape_value(case["value"]) == case["escaped"]
    assert fields.unescape_value(case["escaped"]) == case["value"]


@pytest.mark.parametrize("value", GOLDEN["badEscape"], ids=repr)
def test_invalid_escape_sequences(value):
    with pytest.raises(BadRequest) as e:
        fields.unescape_value(value)
    assert e.value.message.startswith("invalid field selector: invalid escape sequence: ")


@pytest.mark.parametrize("case", VALID, ids=case_id)
def test_valid_selectors_round_trip_to_gos_string(case):
    sel = fields.parse(case["selector"])
    assert str(sel) == case["string"]
    assert fields.parse(str(sel)).requirements == sel.requirements


@pytest.mark.parametrize("case", INVALID, ids=case_id)
def test_invalid_selectors_are_bad_requests(case):
    with pytest.raises(BadRequest) as e:
        fields.parse(case["selector"])
    assert e.value.message.startswith(("invalid selector: ", "invalid field selector: "))


@pytest.mark.parametrize("case", GOLDEN["match"], ids=case_id)
def test_matches(case):
    assert fields.parse(case["selector"]).matches(case["fields"]) is case["matches"]


@pytest.mark.parametrize("case", GOLDEN["exact"], ids=lambda c: c["name"])
def test_requires_exact_match(case):
    value = fields.parse(case["selector"]).exact(case["field"])
    assert value == (case["value"] if case["found"] else None)


def test_the_tables_are_whole():
    assert len(VALID) >= 10 and len(INVALID) >= 6 and len(GOLDEN["match"]) >= 25
