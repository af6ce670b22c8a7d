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



# Cases and messages from apimachinery's TestValidateListOptions
# (pkg/apis/meta/internalversion/validation/validation_test.go, Apache-2.0), WatchList on.
@pytest.mark.parametrize("query, said", [
    ("resourceVersion=0&resourceVersionMatch=foo",
     'resourceVersionMatch: Unsupported value: "foo": supported values: "Exact", '
     '"NotOlderThan", ""'),
    ("sendInitialEvents=true",
     "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"),
    ("watch=1&resourceVersionMatch=NotOlderThan",
     "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless "
     "sendInitialEvents is provided"),
    ("watch=1&sendInitialEvents=true",
     "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
     "resourceVersionMatch to NotOlderThan"),
    ("watch=1&sendInitialEvents=false",
     "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
     "resourceVersionMatch to NotOlderThan"),
    ("watch=1&sendInitialEvents=true&resourceVersionMatch=Exact&allowWatchBookmarks=true",
     "[resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
     "resourceVersionMatch to NotOlderThan, resourceVersionMatch: Unsupported value: "
     '"Exact": supported values: "NotOlderThan"]'),
    ("watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
     "&allowWatchBookmarks=true&continue=123",
     "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is "
     "provided"),
])
def test_what_kube_apiserver_says_of_bad_options(query, said):
    with pytest.raises(Invalid) as got:
        check_list_options(info(query))
    assert got.value.message == f'ListOptions.meta.k8s.io "" is invalid: {said}'
    causes = got.value.details["causes"]
    assert len(causes) == said.count("Forbidden:") + said.count("Unsupported value:")
    assert {c["field"] for c in causes} <= {"resourceVersionMatch", "sendInitialEvents"}


@pytest.mark.parametrize("query", [
    "watch=1", "watch=1&resourceVersion=12", "watch=1&resourceVersion=0",
    "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    "watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=1",
])
def test_valid_watch_options_pass(query):
    check_list_options(info(query))


def test_a_watch_list_without_bookmarks_is_400_not_422():
    # Valid for ValidateListOptions (apimachinery's note: old clients), refused by the watch
    # cache before the stream starts.
    with pytest.raises(BadRequest, match="requires setting allowWatchBookmarks to true"):
        check_list_options(info("watch=1&sendInitialEvents=true"
                                "&resourceVersionMatch=NotOlderThan"))


def test_a_resource_version_past_uint64_is_out_of_range_as_go_says():
    with pytest.raises(BadRequest, match='parsing "18446744073709551616": value out of range'):
        check_list_options(info("resourceVersion=18446744073709551616"))


def test_a_watch_from_a_version_that_is_no_number_is_400():
    with pytest.raises(BadRequest, match="invalid resource version"):
        check_list_options(info("watch=1&resourceVersion=x1"))


@pytest.mark.parametrize("query, refused", [
    ("", False),
    ("fieldSelector=", False),
    ("fieldSelector=metadata.name%3Dp", False),
    ("fieldSelector=metadata.name%3D%3Dp,spec.nodeName%3Dn", False),
    ("fieldSelector=metadata.name%3Dq", True),
    ("fieldSelector=spec.nodeName%3Dn", True),
    ("fieldSelector=metadata.name!%3Dq", True),
])
def test_a_watch_of_one_object_may_pin_its_own_name_only(query, refused):
    # kube-apiserver's ListResource: a named watch's field selector must require that name
    info = parse_request_info("GET", "/api/v1/watch/namespaces/a/pods/p", query)
    if not refused:
        check_list_options(info)
        return
    with pytest.raises(BadRequest) as e:
        check_list_options(info)
    assert e.value.message == "fieldSelector metadata.name doesn't match requested name"


def test_a_list_pinned_by_its_field_selector_passes():
    check_list_options(parse_request_info(
        "GET", "/api/v1/pods", "watch=1&fieldSelector=metadata.name%3Dp,spec.nodeName%3Dn"))
