"""RequestInfo: kube-apiserver's classification of requests, case by case, and our query options."""

from __future__ import annotations

import urllib.parse

import pytest

from yurthub.errors import BadRequest
from yurthub.kube.requestinfo import (
    component_from_user_agent,
    exact_name_from_field_selector,
    parse_query,
    parse_request_info,
)


def C(method: str, target: str, verb: str, *, ns: str = "", res: str = "", name: str = "",
      sub: str = "", group: str = "", version: str = "v1", parts: list[str] | None = None,
      prefix: str | None = None) -> object:
    """One resource request and the RequestInfo kube-apiserver gives it.

    ``parts`` defaults to resource/name/subresource (whichever are set), as kube keeps them.
    """
    path, _, query = target.partition("?")
    if parts is None:
        parts = [p for p in (res, name, sub) if p]
    expected = (verb, prefix or ("apis" if group else "api"), group, version, ns, res, sub,
                name, parts)
    return pytest.param(method, path, query, expected, id=f"{method} {target}")


RESOURCE_CASES = [
    # the legacy group
    C("GET", "/api/v1/namespaces", "list", res="namespaces"),
    C("GET", "/api/v1/namespaces/other", "get", ns="other", res="namespaces", name="other"),
    C("GET", "/api/v1/namespaces/other/pods", "list", ns="other", res="pods"),
    C("GET", "/api/v1/namespaces/other/pods/foo", "get", ns="other", res="pods", name="foo"),
    C("HEAD", "/api/v1/namespaces/other/pods/foo", "get", ns="other", res="pods", name="foo"),
    C("GET", "/api/v1/pods", "list", res="pods"),
    C("HEAD", "/api/v1/pods", "list", res="pods"),
    C("GET", "/api/v1/nodes/edge-1", "get", res="nodes", name="edge-1"),
    C("GET", "/api/v1/namespaces/other/pods/foo/status", "get", ns="other", res="pods", name="foo",
      sub="status"),
    C("GET", "/api/v1/namespaces/other/pods/foo/log", "get", ns="other", res="pods", name="foo",
      sub="log"),
    C("GET", "/api/v1/namespaces/other/pods/foo/proxy/a/b", "get", ns="other", res="pods",
      name="foo", sub="proxy", parts=["pods", "foo", "proxy", "a", "b"]),
    C("POST", "/api/v1/namespaces/other/pods", "create", ns="other", res="pods"),
    C("POST", "/api/v1/namespaces/other/pods/foo/eviction", "create", ns="other", res="pods",
      name="foo", sub="eviction"),
    C("POST", "/api/v1/namespaces/other/pods/foo/binding", "create", ns="other", res="pods",
      name="foo", sub="binding"),
    C("POST", "/api/v1/namespaces/kube-system/serviceaccounts/default/token", "create",
      ns="kube-system", res="serviceaccounts", name="default", sub="token"),
    C("PUT", "/api/v1/namespaces/other/pods/foo", "update", ns="other", res="pods", name="foo"),
    C("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", ns="other", res="pods", name="foo"),
    C("PATCH", "/api/v1/nodes/edge-1/status", "patch", res="nodes", name="edge-1", sub="status"),
    C("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", ns="other", res="pods", name="foo"),
    C("DELETE", "/api/v1/namespaces/other/pods", "deletecollection", ns="other", res="pods"),
    C("DELETE", "/api/v1/namespaces/other", "delete", ns="other", res="namespaces", name="other"),
    C("OPTIONS", "/api/v1/pods", "", res="pods"),
    # the namespaces resource and its own subresources
    C("PUT", "/api/v1/namespaces/other/finalize", "update", ns="other", res="namespaces",
      name="other", sub="finalize"),
    C("PUT", "/api/v1/namespaces/other/status", "update", ns="other", res="namespaces",
      name="other", sub="status"),
    C("GET", "/api/v1/namespaces/other/status", "get", ns="other", res="namespaces", name="other",
      sub="status"),
    # a resource named like a namespace subresource is only one right after the namespace
    C("GET", "/api/v1/namespaces/other/configmaps/status", "get", ns="other", res="configmaps",
      name="status"),
    # watch and proxy as deprecated path prefixes
    C("GET", "/api/v1/watch/pods", "watch", res="pods"),
    C("GET", "/api/v1/watch/namespaces/other/pods", "watch", ns="other", res="pods"),
    C("GET", "/api/v1/watch/namespaces/other/pods/foo", "watch", ns="other", res="pods",
      name="foo"),
    C("GET", "/api/v1/watch/namespaces", "watch", res="namespaces"),
    C("GET", "/api/v1/watch/namespaces/other", "watch", ns="other", res="namespaces", name="other"),
    C("GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", ns="other", res="pods",
      name="foo"),
    C("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy",
      ns="other", res="pods", name="foo",
      parts=["pods", "foo", "subpath", "not", "a", "subresource"]),
    C("GET", "/api/v1/proxy/nodes/edge-1:10250/metrics", "proxy", res="nodes", name="edge-1:10250",
      parts=["nodes", "edge-1:10250", "metrics"]),
    # watch by query parameter: anything but 0 or false (in any case) is true, even empty
    C("GET", "/api/v1/pods?watch=true", "watch", res="pods"),
    C("GET", "/api/v1/pods?watch=1", "watch", res="pods"),
    C("GET", "/api/v1/pods?watch=", "watch", res="pods"),
    C("GET", "/api/v1/pods?watch", "watch", res="pods"),
    C("GET", "/api/v1/pods?watch=yes", "watch", res="pods"),
    C("GET", "/api/v1/pods?watch=false", "list", res="pods"),
    C("GET", "/api/v1/pods?watch=FALSE", "list", res="pods"),
    C("GET", "/api/v1/pods?watch=0", "list", res="pods"),
    C("GET", "/api/v1/pods?watch=false&watch=true", "list", res="pods"),
    C("GET", "/api/v1/namespaces/other/pods/foo?watch=true", "get", ns="other", res="pods",
      name="foo"),
    C("DELETE", "/api/v1/pods?watch=true", "deletecollection", res="pods"),
    # metadata.name field selectors name the object of a list or watch
    C("GET", "/api/v1/namespaces/other/pods?fieldSelector=metadata.name%3Dfoo", "list", ns="other",
      res="pods", name="foo", parts=["pods"]),
    C("GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dedge-1&watch=true", "watch", res="nodes",
      name="edge-1", parts=["nodes"]),
    C("GET", "/api/v1/nodes?fieldSelector=metadata.name==edge-1", "list", res="nodes",
      name="edge-1", parts=["nodes"]),
    C("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3De1%2Cmetadata.name%3Dp", "list",
      res="pods", name="p", parts=["pods"]),
    C("GET", "/api/v1/pods?fieldSelector=metadata.name!%3Dfoo", "list", res="pods"),
    C("GET", "/api/v1/pods?fieldSelector=metadata.namespace%3Dother", "list", res="pods"),
    C("GET", "/api/v1/pods?fieldSelector=metadata.name%3Da%2Fb", "list", res="pods"),
    C("GET", "/api/v1/pods?fieldSelector=metadata.name%3D..", "list", res="pods"),
    C("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dfoo%2Cbad", "list", res="pods"),
    C("GET", "/api/v1/namespaces/other/pods/bar?fieldSelector=metadata.name%3Dfoo", "get",
      ns="other", res="pods", name="bar"),
    C("GET", "/api/v1/watch/namespaces/other/pods?fieldSelector=metadata.name%3Dfoo", "watch",
      ns="other", res="pods"),
    C("DELETE", "/api/v1/namespaces/other/pods?fieldSelector=metadata.name%3Dfoo",
      "deletecollection", ns="other", res="pods"),
    # named groups
    C("GET", "/apis/apps/v1/namespaces/other/deployments", "list", group="apps", ns="other",
      res="deployments"),
    C("GET", "/apis/apps/v1/deployments", "list", group="apps", res="deployments"),
    C("PUT", "/apis/apps/v1/namespaces/other/deployments/web/scale", "update", group="apps",
      ns="other", res="deployments", name="web", sub="scale"),
    C("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1", "get",
      group="coordination.k8s.io", ns="kube-node-lease", res="leases", name="edge-1"),
    C("GET", "/apis/discovery.k8s.io/v1/endpointslices?watch=1", "watch", group="discovery.k8s.io",
      res="endpointslices"),
    C("GET", "/apis/apps/v1/watch/namespaces/other/deployments", "watch", group="apps", ns="other",
      res="deployments"),
    C("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", "create",
      group="authorization.k8s.io", res="subjectaccessreviews"),
    C("GET", "/apis/extensions/v1beta1/namespaces/other/extensions", "list", group="extensions",
      version="v1beta1", ns="other", res="extensions"),
    # the shape of the path, as kube splits it
    C("GET", "/api/v1/pods/", "list", res="pods"),
    C("GET", "//api/v1/pods//", "list", res="pods"),
    C("GET", "/api//v1/pods", "get", version="", res="v1", name="pods"),
    C("GET", "/api/v1/namespaces/other/pods/foo/status/extra", "get", ns="other", res="pods",
      name="foo", sub="status", parts=["pods", "foo", "status", "extra"]),
    # percent-decoding: once per segment, and an escaped slash stays in its segment
    C("GET", "/api/v1/namespaces/def%61ult/pods/p%2Dq", "get", ns="default", res="pods",
      name="p-q"),
    C("GET", "/api/v1/namespaces/default/pods/a%2Fb", "get", ns="default", res="pods", name="a/b"),
    C("GET", "/api/v1/namespaces/default/pods/a%2Fb/status", "get", ns="default", res="pods",
      name="a/b", sub="status"),
    C("GET", "/api/v1/namespaces/default/pods/%252F", "get", ns="default", res="pods", name="%2F"),
    C("GET", "/api/v1/namespaces/default/pods/a+b", "get", ns="default", res="pods", name="a+b"),
    C("GET", "/api/v1/namespaces/%2E%2E/pods", "list", ns="..", res="pods"),
]


@pytest.mark.parametrize("method,path,query,expected", RESOURCE_CASES)
def test_resource_requests(method, path, query, expected):
    info = parse_request_info(method, path, query)
    assert info.is_resource_request
    assert info.method == method
    got = (info.verb, info.api_prefix, info.api_group, info.api_version, info.namespace,
           info.resource, info.subresource, info.name, list(info.parts))
    assert got == expected
    assert info.path == path


NON_RESOURCE_CASES = [
    ("GET", "/", "get"),
    ("GET", "", "get"),
    ("GET", "/api", "get"),
    ("GET", "/apis", "get"),
    ("GET", "/api/v1", "get"),
    ("GET", "/api/v1/", "get"),
    ("GET", "/apis/apps", "get"),
    ("GET", "/apis/apps/v1", "get"),
    ("GET", "/apis/discovery.k8s.io/v1/", "get"),
    ("GET", "/version", "get"),
    ("GET", "/healthz", "get"),
    ("GET", "/openapi/v2", "get"),
    ("GET", "/openapi/v3/api/v1", "get"),
    ("POST", "/apis/apps", "post"),
    ("DELETE", "/metrics", "delete"),
    ("GET", "/other/v1/pods", "get"),
    ("GET", "/API/v1/pods", "get"),
]


@pytest.mark.parametrize("method,path,verb", NON_RESOURCE_CASES)
def test_non_resource_requests(method, path, verb):
    info = parse_request_info(method, path, "watch=true&limit=x")
    assert not info.is_resource_request
    assert (info.verb, info.path, info.resource, info.api_prefix, info.parts) == (
        verb, path, "", "", ())
    assert info.method == method


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/default/pods/%zz",
    "/api/v1/namespaces/default/pods/a%2",
    "/api/v1/namespaces/%ff/pods",
    "/api/v1/watch",
    "/apis/apps/v1/proxy/",
])
def test_unparseable_paths_are_bad_requests(path):
    with pytest.raises(BadRequest):
        parse_request_info("GET", path, "")


def test_query_options_of_a_list():
    info = parse_request_info(
        "GET", "/api/v1/pods",
        "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&fieldSelector=spec.nodeName%3Dedge-1"
        "&resourceVersion=0&resourceVersionMatch=NotOlderThan&limit=500&continue=abc%3D%3D"
        "&timeoutSeconds=30&allowWatchBookmarks=true&sendInitialEvents=false&dryRun=All")
    assert info.label_selector == "app=web,tier in (a,b)"
    assert info.field_selector == "spec.nodeName=edge-1"
    assert (info.resource_version, info.resource_version_match) == ("0", "NotOlderThan")
    assert (info.limit, info.continue_token, info.timeout_seconds) == (500, "abc==", 30)
    assert info.allow_watch_bookmarks is True
    assert info.send_initial_events is False
    assert info.dry_run == ("All",)
    assert info.gvr == ("", "v1", "pods")
    assert info.group_version == "v1"


def test_query_options_default_to_unset():
    info = parse_request_info("GET", "/apis/apps/v1/deployments", "")
    assert (info.label_selector, info.field_selector, info.resource_version,
            info.resource_version_match, info.continue_token) == ("", "", "", "", "")
    assert (info.limit, info.timeout_seconds, info.send_initial_events) == (None, None, None)
    assert info.allow_watch_bookmarks is False
    assert info.dry_run == ()
    assert info.group_version == "apps/v1"


@pytest.mark.parametrize("query,limit,timeout", [
    ("limit=0", 0, None),
    ("limit=-1", -1, None),
    ("limit=%2B7", 7, None),
    ("timeoutSeconds=300", None, 300),
    ("limit=9223372036854775807", 2**63 - 1, None),
    ("limit=1&limit=x", 1, None),
])
def test_integer_options(query, limit, timeout):
    info = parse_request_info("GET", "/api/v1/pods", query)
    assert (info.limit, info.timeout_seconds) == (limit, timeout)


@pytest.mark.parametrize("query", [
    "limit=ten", "limit=1.5", "limit=1_000", "limit=%201", "limit=9223372036854775808",
    "timeoutSeconds=30s", "timeoutSeconds=x", "limit=", "timeoutSeconds=",
])
@pytest.mark.parametrize("method,path,extra", [
    ("GET", "/api/v1/pods", ""),
    ("GET", "/api/v1/pods", "&watch=1"),
    ("DELETE", "/api/v1/namespaces/a/pods", ""),
])
def test_bad_integer_options_refuse_lists_and_watches(query, method, path, extra):
    with pytest.raises(BadRequest) as e:
        parse_request_info(method, path, query + extra)
    # As kube-apiserver says it (its query decoding's strconv.ParseInt error), not ours.
    raw = urllib.parse.unquote(query.split("=", 1)[1])
    why = "value out of range" if raw.isdigit() else "invalid syntax"
    assert e.value.message == f'strconv.ParseInt: parsing "{raw}": {why}'


@pytest.mark.parametrize("query,message", [
    # kube-apiserver converts the first value of a present key with strconv.ParseInt
    ("limit=ten", 'strconv.ParseInt: parsing "ten": invalid syntax'),
    ("limit=", 'strconv.ParseInt: parsing "": invalid syntax'),
    ("timeoutSeconds=&limit=5", 'strconv.ParseInt: parsing "": invalid syntax'),
    ("limit=9223372036854775808",
     'strconv.ParseInt: parsing "9223372036854775808": value out of range'),
    ("limit=-9223372036854775809",
     'strconv.ParseInt: parsing "-9223372036854775809": value out of range'),
    ("timeoutSeconds=%22%0A", 'strconv.ParseInt: parsing "\\"\\n": invalid syntax'),
    # ListOptions' order: timeoutSeconds is decoded before limit
    ("limit=x&timeoutSeconds=y", 'strconv.ParseInt: parsing "y": invalid syntax'),
])
def test_bad_integer_options_are_worded_as_kube_apiserver_words_them(query, message):
    with pytest.raises(BadRequest) as e:
        parse_request_info("GET", "/api/v1/pods", query)
    assert e.value.message == message


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/namespaces/a/pods/p"),
    ("PUT", "/api/v1/namespaces/a/pods/p"),
    ("POST", "/api/v1/namespaces/a/pods"),
])
def test_bad_integer_options_are_ignored_where_kube_ignores_them(method, path):
    info = parse_request_info(method, path, "limit=ten&timeoutSeconds=")
    assert (info.limit, info.timeout_seconds) == (None, None)


@pytest.mark.parametrize("value,expected", [
    ("true", True), ("1", True), ("", True), ("anything", True),
    ("false", False), ("False", False), ("0", False),
])
def test_boolean_options(value, expected):
    info = parse_request_info("GET", "/api/v1/pods",
                              f"watch=1&allowWatchBookmarks={value}&sendInitialEvents={value}")
    assert info.allow_watch_bookmarks is expected
    assert info.send_initial_events is expected


@pytest.mark.parametrize("query,expected", [
    ("a=1&b=2", {"a": ["1"], "b": ["2"]}),
    ("a=1&a=2", {"a": ["1", "2"]}),
    ("a", {"a": [""]}),
    ("a=", {"a": [""]}),
    ("=v", {"": ["v"]}),
    ("a=x+y%20z", {"a": ["x y z"]}),
    ("a=%3D%26", {"a": ["=&"]}),
    ("a=1;b=2&c=3", {"c": ["3"]}),
    ("a=%zz&b=1", {"b": ["1"]}),
    ("&&a=1&", {"a": ["1"]}),
    ("k%C3%A9=%C3%A9", {"ké": ["é"]}),
    ("", {}),
])
def test_parse_query_follows_go(query, expected):
    assert parse_query(query) == expected


@pytest.mark.parametrize("selector,name", [
    ("metadata.name=foo", "foo"),
    ("metadata.name==foo", "foo"),
    ("metadata.name!=foo", None),
    ("metadata.name=", ""),
    ("", None),
    ("spec.nodeName=n", None),
    ("spec.nodeName=n,metadata.name=foo", "foo"),
    # fields.ParseSelector sorts its terms, so the smaller value wins
    ("metadata.name=b,metadata.name=a", "a"),
    ("metadata.name=a\\,b", "a,b"),
    ("metadata.name=a\\=b", "a=b"),
    ("metadata.name=a\\\\b", "a\\b"),
    ("metadata.name=a\\b", None),
    ("metadata.name=a\\", None),
    ("metadata.name=a=b", None),
    ("metadata.name=foo,garbage", None),
    ("metadata.name = foo", None),
    ("metadata.name=foo,", "foo"),
])
def test_exact_name_from_field_selector(selector, name):
    assert exact_name_from_field_selector(selector) == name


@pytest.mark.parametrize("user_agent,component", [
    ("kubelet/v1.30.1 (linux/amd64) kubernetes/abcdef", "kubelet"),
    ("kube-proxy/v1.30.1 (linux/arm64) kubernetes/abcdef", "kube-proxy"),
    ("CoreDNS/1.11.1", "coredns"),
    ("flanneld", "flanneld"),
    ("Go-http-client/1.1", "go-http-client"),
    ("/leading-slash", ""),
    ("", ""),
    (None, ""),
])
def test_component_from_user_agent(user_agent, component):
    assert component_from_user_agent(user_agent) == component


def test_method_is_kept_upper_cased():
    info = parse_request_info("head", "/api/v1/pods", "")
    assert (info.method, info.verb) == ("HEAD", "list")


def test_request_info_is_frozen_and_hashable():
    info = parse_request_info("GET", "/api/v1/pods", "limit=5")
    with pytest.raises(AttributeError):
        info.verb = "watch"  # type: ignore[misc]
    assert info == parse_request_info("GET", "/api/v1/pods", "limit=5")
    assert hash(info) == hash(parse_request_info("GET", "/api/v1/pods", "limit=5"))


@pytest.mark.parametrize("path,namespace,in_namespace", [
    ("/api/v1/namespaces/kube-system", "kube-system", False),  # the Namespace itself
    ("/api/v1/namespaces/kube-system/status", "kube-system", False),
    ("/api/v1/namespaces/default/pods/web", "default", True),
    ("/api/v1/namespaces/default/nodes", "default", True),  # kube serves no such path
    ("/api/v1/namespaces/default/namespaces/default", "default", True),
    ("/api/v1/nodes/node-1", "", False),
])
def test_whether_the_path_scopes_the_resource_to_a_namespace(path, namespace, in_namespace):
    info = parse_request_info("GET", path, "")
    assert (info.namespace, info.in_namespace) == (namespace, in_namespace)
