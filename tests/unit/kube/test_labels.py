"""Label selectors: kube-apiserver's grammar, normalization, matching, validation and errors."""

from __future__ import annotations

import pytest

from yurthub.errors import BadRequest
from yurthub.kube import labels


@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("   ", ""),
    ("app=web", "app=web"),
    ("app==web", "app=web"),
    ("app = web", "app=web"),
    ("app!=web", "app!=web"),
    ("app", "app"),
    ("!app", "!app"),
    ("app in (b,a)", "app in (a,b)"),
    ("app in (a)", "app=a"),
    ("app notin (a)", "app!=a"),
    ("app notin (b, a, b)", "app notin (a,b)"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z!="),
    ("a=", "a="),
    ("a in (,)", "a="),
    ("in in (in)", "in=in"),
    ("k<10,k>3", "k>3,k<10"),
    ("tier=be,app=web,!canary", "app=web,!canary,tier=be"),
    ("example.com/role=edge", "example.com/role=edge"),
    ("\tapp\t=\tweb\n", "app=web"),
])
def test_parse_normalizes(text, canonical):
    sel = labels.parse(text)
    assert sel.canonical == canonical
    assert str(sel) == canonical
    # The canonical form parses back to the same requirements.
    assert labels.parse(canonical).requirements == sel.requirements


@pytest.mark.parametrize("a, b", [
    ("app=web", "app==web"),
    ("app=web", "app in (web)"),
    ("app!=web", "app notin (web)"),
    ("a=1,b=2", "b=2,a=1"),
    ("x in (a,b)", "x in (b,a,a)"),
])
def test_equivalent_spellings_have_equal_requirements(a, b):
    assert labels.parse(a).requirements == labels.parse(b).requirements
    assert labels.parse(a) == labels.parse(b)


@pytest.mark.parametrize("selector, lbls, expected", [
    ("", {}, True),
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app=web", {}, False),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("app in (a,b)", {"app": "b"}, True),
    ("app in (a,b)", {}, False),
    ("app notin (a,b)", {}, True),
    ("app notin (a,b)", {"app": "a"}, False),
    ("app", {"app": ""}, True),
    ("app", {"other": "x"}, False),
    ("!app", {}, True),
    ("!app", {"app": "x"}, False),
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    ("k>3", {"k": "4"}, True),
    ("k>3", {"k": "3"}, False),
    ("k>3", {"k": "x"}, False),
    ("k<3", {"k": "-1"}, True),
    ("k<3", {}, False),
    ("app=web,tier=fe", {"app": "web", "tier": "fe", "x": "y"}, True),
    ("app=web,tier=fe", {"app": "web"}, False),
])
def test_matches(selector, lbls, expected):
    assert labels.parse(selector).matches(lbls) is expected


def test_matches_accepts_none():
    assert labels.parse("!a").matches(None)
    assert not labels.parse("a").matches(None)


@pytest.mark.parametrize("view, request_sel, covered", [
    ("", "app=web", True),
    ("app=web", "app=web,tier=fe", True),
    ("app=web", "app in (web)", True),
    ("app=web,tier=fe", "app=web", False),
    ("app=web", "app=db", False),
    ("app in (a,b)", "app in (a,b),x", True),
    ("app in (a,b)", "app=a", False),  # semantically narrower, but not by requirements
])
def test_covers_is_requirement_subset(view, request_sel, covered):
    assert labels.parse(view).covers(labels.parse(request_sel)) is covered
    assert (labels.parse(view).requirements <= labels.parse(request_sel).requirements) is covered


def test_exact_and_from_set():
    sel = labels.parse("app in (web),tier!=x")
    assert sel.exact("app") == "web"
    assert sel.exact("tier") is None
    assert labels.from_set({"b": "2", "a": "1"}).canonical == "a=1,b=2"
    assert labels.from_set({"a": "1"}).matches({"a": "1"})
    assert labels.EVERYTHING.empty and labels.parse("").empty


NAME_RULE = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
             "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
             "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
VALUE_RULE = ("a valid label must be an empty string or consist of alphanumeric characters, "
              "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
              "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
              "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


@pytest.mark.parametrize("text, message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a=b,", "found '', expected: identifier after ','"),
    (",", "found ',', expected: !, identifier, or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a@b=c", 'unable to parse requirement: <nil>: Invalid value: "a@b": name part ' + NAME_RULE),
    ("-a", 'unable to parse requirement: <nil>: Invalid value: "-a": name part ' + NAME_RULE),
    ("a=b@c", 'unable to parse requirement: values[0][a]: Invalid value: "b@c": ' + VALUE_RULE),
    ("a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' "
            "operators, the value must be an integer"),
    ("a/b/c", "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name "),
    ("Bad.Prefix/x", 'unable to parse requirement: <nil>: Invalid value: "Bad.Prefix/x": '
                     "prefix part a lowercase RFC 1123 subdomain must consist of"),
    ("/x", 'unable to parse requirement: <nil>: Invalid value: "/x": prefix part must be '
           "non-empty"),
    ("a" * 64, "name part must be no more than 63 characters"),
    ("a=" + "b" * 64, "must be no more than 63 characters"),
])
def test_bad_selectors_are_bad_requests_in_kube_apiserver_words(text, message):
    with pytest.raises(BadRequest) as e:
        labels.parse(text)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert e.value.message.startswith(message) or \
        (message.startswith(("name part", "must be")) and message in e.value.message)


def test_several_bad_values_are_aggregated():
    with pytest.raises(BadRequest) as e:
        labels.parse("a in (x@,y@)")
    assert e.value.message.startswith("unable to parse requirement: [values[0][a]: ")
    assert "values[1][a]: Invalid value: \"y@\"" in e.value.message
