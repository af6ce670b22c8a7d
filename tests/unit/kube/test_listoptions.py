"""The list options kube-apiserver refuses before it reads anything (ValidateListOptions)."""

from __future__ import annotations

import pytest

from yurthub.errors import BadRequest, Invalid
from yurthub.kube.listoptions import check_list_options, effective_limit
from yurthub.kube.requestinfo import parse_request_info


def info(query: str):
    return parse_request_info("GET", "/api/v1/pods", query)


@pytest.mark.parametrize("query, message", [
    ("resourceVersionMatch=NotOlderThan", "forbidden unless resourceVersion is provided"),
    ("resourceVersionMatch=Exact", "forbidden unless resourceVersion is provided"),
    ("resourceVersionMatch=bogus&resourceVersion=5", 'Unsupported value: "bogus"'),
    ("resourceVersion=0&resourceVersionMatch=Exact", 'forbidden for resourceVersion "0"'),
    ("resourceVersion=5&resourceVersionMatch=Exact&continue=x",
     "forbidden when continue is provided"),
])
def test_invalid_options_are_422(query, message):
    with pytest.raises(Invalid) as got:
        check_list_options(info(query))
    assert message in got.value.message
    assert got.value.details["kind"] == "ListOptions"


@pytest.mark.parametrize("rv", ["abc", "-1", "1.5", "٣"])
def test_a_resource_version_that_is_no_number_is_400(rv):
    with pytest.raises(BadRequest, match="invalid resource version"):
        check_list_options(info(f"resourceVersion={rv}"))


@pytest.mark.parametrize("query", ["", "resourceVersion=0", "resourceVersion=12",
                                   "resourceVersion=12&resourceVersionMatch=NotOlderThan",
                                   "resourceVersion=0&resourceVersionMatch=NotOlderThan",
                                   "resourceVersion=12&resourceVersionMatch=Exact"])
def test_valid_options_pass(query):
    check_list_options(info(query))


def test_limit_zero_or_less_is_no_limit():
    assert [effective_limit(x) for x in (None, 0, -1, 1, 500)] == [None, None, None, 1, 500]

