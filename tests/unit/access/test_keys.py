"""Component keys, access keys and what they cover, JWT expiry, kube-apiserver's wording."""

from __future__ import annotations

import base64
import json

import pytest

from yurthub.access import keys
from yurthub.access.keys import AccessKey, client_authorization
from yurthub.kube.requestinfo import agent_name, parse_request_info
from yurthub.storage.keys import check_component

TRUSTED = frozenset({0, 998})


@pytest.mark.parametrize("agent, uid, identified, key", [
    ("kubelet", 0, True, "kubelet"),
    ("kubelet", 998, True, "kubelet"),
    ("kubelet", 1000, True, "kubelet@1000"),
    ("kube-proxy", 65534, True, "kube-proxy@65534"),
    ("kubelet", None, True, ""),              # owner unknown: nothing cached, nothing served
    ("kubelet", None, False, "kubelet"),      # nobody checked: as before
    ("kubelet@0", 1000, True, ""),            # "@" is never part of an agent's name
    ("kubelet@0", 0, True, ""),
    ("mozilla 5.0 (x11", 0, True, ""),
    ("", 0, True, ""),
    ("a" * 201, 0, True, ""),
])
def test_component_keys(agent, uid, identified, key):
    assert keys.component_key(agent, uid, identified, TRUSTED) == key
    if key:
        assert check_component(key) == key   # a valid, unambiguous path segment


@pytest.mark.parametrize("bad", ["kubelet@", "kubelet@x", "@1", "kubelet@1@2", "kubelet@-1",
                                 "kubelet@pods", "kubelet@pod@1", "@pod"])
def test_component_keys_on_disk_are_checked(bad):
    with pytest.raises(Exception, match="not a valid name"):
        check_component(bad)


def test_agent_name():
    assert agent_name("kubelet@1000") == "kubelet" == agent_name("kubelet")


def info(method: str, path: str, query: str = ""):
    return parse_request_info(method, path, query)


@pytest.mark.parametrize("method, path, query, key", [
    ("GET", "/api/v1/namespaces/ns/secrets/s1", "",
     AccessKey("get", "", "secrets", "", "ns", "s1")),
    ("GET", "/api/v1/namespaces/ns/secrets", "watch=true",
     AccessKey("list", "", "secrets", "", "ns", "")),
    ("GET", "/api/v1/namespaces/ns/secrets", "fieldSelector=metadata.name%3Ds1",
     AccessKey("list", "", "secrets", "", "ns", "s1")),
    ("PATCH", "/api/v1/nodes/n1/status", "", AccessKey("patch", "", "nodes", "status", "", "n1")),
    ("GET", "/version", "", AccessKey("nonresource", "", "/version", "", "", "")),
])
def test_access_keys(method, path, query, key):
    assert keys.access_key(info(method, path, query)) == key


def test_a_list_covers_gets_and_pinned_lists_inside_it():
    get = AccessKey("get", "", "secrets", "", "ns", "s1")
    assert get.covering() == (
        get, AccessKey("list", "", "secrets", "", "ns", "s1"),
        AccessKey("list", "", "secrets", "", "ns", ""),
        AccessKey("list", "", "secrets", "", "", ""))
    pinned = AccessKey("list", "", "secrets", "", "ns", "s1")
    assert AccessKey("list", "", "secrets", "", "", "") in pinned.covering()
    patch = AccessKey("patch", "", "nodes", "status", "", "n1")
    assert patch.covering() == (patch,)


@pytest.mark.parametrize("status, ok", [(200, True), (201, True), (404, True), (409, True),
                                        (410, True), (422, True), (401, False), (403, False),
                                        (429, False), (500, False), (400, False)])
def test_answers_that_show_the_cloud_allowed_a_request(status, ok):
    assert keys.accepted(status) is ok


def jwt(claims: dict) -> str:
    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize("authorization, exp", [
    ("Bearer " + jwt({"exp": 1900000000, "sub": "system:serviceaccount:kube-system:x"}),
     1900000000.0),
    ("bearer " + jwt({"exp": 1.5}), 1.5),
    ("Bearer " + jwt({"sub": "no-exp"}), None),
    ("Bearer " + jwt({"exp": "soon"}), None),
    ("Bearer " + jwt({"exp": True}), None),
    ("Bearer abcdef.0123456789abcdef", None),    # a bootstrap token
    ("Bearer a.!!!.c", None),
    ("Basic dXNlcjpwYXNz", None),
])
def test_jwt_expiry(authorization, exp):
    assert keys.bearer_expiry(authorization) == exp


def test_jwt_subject():
    token = "Bearer " + jwt({"sub": "system:serviceaccount:kube-system:x"})
    assert keys.bearer_subject(token) == "system:serviceaccount:kube-system:x"
    assert keys.bearer_subject("Bearer opaque") == ""


@pytest.mark.parametrize("method, path, message", [
    ("GET", "/api/v1/namespaces/kube-system/secrets/s1",
     'secrets "s1" is forbidden: User "u" cannot get resource "secrets" in API group "" in '
     'the namespace "kube-system"'),
    ("GET", "/api/v1/nodes", 'nodes is forbidden: User "u" cannot list resource "nodes" in '
     'API group "" at the cluster scope'),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
     'leases.coordination.k8s.io "n1" is forbidden: User "u" cannot update resource "leases" '
     'in API group "coordination.k8s.io" in the namespace "kube-node-lease"'),
    ("PATCH", "/api/v1/nodes/n1/status", 'nodes "n1" is forbidden: User "u" cannot patch '
     'resource "nodes/status" in API group "" at the cluster scope'),
    ("GET", "/version", 'forbidden: User "u" cannot get path "/version"'),
])
def test_refusals_are_worded_as_kube_apiserver_words_them(method, path, message):
    assert keys.forbidden_message(info(method, path), 'User "u"') == message


@pytest.mark.parametrize("environ, want", [
    ({"HTTP_AUTHORIZATION": "Bearer t"}, "Bearer t"),
    ({"HTTP_AUTHORIZATION": "Bearer t", "HTTP_CONNECTION": "keep-alive"}, "Bearer t"),
    ({"HTTP_AUTHORIZATION": "Bearer t", "HTTP_CONNECTION": "Authorization"}, ""),
    ({"HTTP_AUTHORIZATION": "Bearer t", "HTTP_CONNECTION": "Upgrade, authorization "}, ""),
    ({"HTTP_CONNECTION": "authorization"}, ""),
    ({}, ""),
])
def test_a_token_named_hop_by_hop_is_no_token_of_the_request(environ, want):
    # The proxy drops it (forward_headers), and the request then uses the hub's identity.
    assert client_authorization(environ) == want


def test_pods_on_the_https_port_have_components_of_their_own():
    assert keys.pod_component("kubelet") == "kubelet@pod"
    assert check_component("kubelet@pod") == "kubelet@pod"   # a valid path segment
    assert agent_name("kube-proxy@pod") == "kube-proxy"  # the filters' name
    assert keys.pod_component("Mozilla 5.0") == ""
    assert keys.legacy_component("kube-proxy@pod") == "kube-proxy"
    assert keys.legacy_component("kubelet@1000") == "" == keys.legacy_component("kubelet")
