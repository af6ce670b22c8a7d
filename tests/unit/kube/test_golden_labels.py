"""apimachinery's label selector tables (tests/golden/labels.json) through yurthub.kube.labels."""

from __future__ import annotations

import pytest

from tests.golden import case_id, load
from yurthub.errors import BadRequest
from yurthub.kube import labels

GOLDEN = load("labels")
VALID = [c for c in GOLDEN["parse"] if c["valid"]]
INVALID = [c for c in GOLDEN["parse"] if not c["valid"]]


def go_requirements(reqs: list) -> frozenset:
    """The Go test's requirements, normalized as yurthub compares requirements."""
    return frozenset(labels.requirement(k, op, vals) for k, op, vals in reqs)


@pytest.mark.parametrize("case", VALID, ids=case_id)
def test_valid_selectors_parse(case):
    sel = labels.parse(case["selector"])
    if "requirements" in case:
        assert sel.requirements == go_requirements(case["requirements"])
    if "string" in case:
        # Go's String() of the parsed selector denotes the same selector ...
        assert labels.parse(case["string"]).requirements == sel.requirements
    # ... and so does ours, which is what views are keyed and re-parsed by.
    assert labels.parse(str(sel)).requirements == sel.requirements


@pytest.mark.parametrize("case", INVALID, ids=case_id)
def test_invalid_selectors_are_bad_requests(case):
    with pytest.raises(BadRequest) as e:
        labels.parse(case["selector"])
    assert e.value.code == 400
    assert e.value.message.startswith(("unable to parse requirement: ", "found '"))


@pytest.mark.parametrize("case", GOLDEN["match"], ids=case_id)
def test_matches(case):
    assert labels.parse(case["selector"]).matches(case["labels"]) is case["matches"]


@pytest.mark.parametrize("case", GOLDEN["exact"], ids=case_id)
def test_requires_exact_match(case):
    value = labels.parse(case["selector"]).exact(case["label"])
    assert value == (case["value"] if case["found"] else None)


@pytest.mark.parametrize("case", GOLDEN["requirement"], ids=lambda c: c["key"][:20])
def test_requirement_constructor_validation(case):
    if not case["errorField"]:
        req = labels.new_requirement(case["key"], case["operator"], case["values"])
        assert req == labels.requirement(case["key"], case["operator"], case["values"])
        return
    with pytest.raises(BadRequest) as e:
        labels.new_requirement(case["key"], case["operator"], case["values"])
    assert e.value.message.startswith(case["errorField"] + ": ")


def test_the_tables_are_whole():
    assert len(VALID) >= 50 and len(INVALID) >= 14 and len(GOLDEN["match"]) >= 35
