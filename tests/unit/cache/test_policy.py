"""Cacheability: YurtHub's CanCacheFor and what we refuse on top of it; where objects are filed."""

from __future__ import annotations

import pytest

from yurthub.cache.policy import REASONS, cache_resource, cacheable, is_historical_list
from yurthub.kube.requestinfo import parse_request_info

AGENTS = frozenset({"kubelet", "kube-proxy", "coredns", "flanneld"})
POM = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
POML = ("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def decide(method: str, target: str, component: str = "kubelet", accept: str | None = None,
           agents: frozenset[str] = AGENTS):
    path, _, query = target.partition("?")
    return cacheable(parse_request_info(method, path, query), component, agents, accept)


@pytest.mark.parametrize("method,target", [
    ("GET", "/api/v1/namespaces/default/pods/web-1"),
    ("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1"),
    ("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1&resourceVersion=0"),
    ("GET", "/api/v1/pods?watch=true&resourceVersion=1234&allowWatchBookmarks=true"),
    ("GET", "/api/v1/watch/namespaces/default/pods"),
    ("GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dedge-1"),
    ("GET", "/api/v1/services?limit=500&resourceVersion=0"),
    ("GET", "/api/v1/services?limit=500"),
    ("GET", "/api/v1/services?limit=500&continue=eyJ2IjoibWV0YS"),
    ("GET", "/api/v1/services?resourceVersion=1234"),
    ("GET", "/api/v1/services?resourceVersion=1234&resourceVersionMatch=NotOlderThan&limit=5"),
    ("GET", "/api/v1/namespaces/default/pods/web-1?resourceVersion=1234"),
    ("GET", "/apis/discovery.k8s.io/v1/endpointslices?labelSelector=a%3Db"),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1"),
    ("POST", "/api/v1/namespaces/default/events"),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1"),
    ("PATCH", "/api/v1/nodes/edge-1/status"),
    ("PUT", "/api/v1/namespaces/default/pods/web-1/status"),
    ("GET", "/apis/example.com/v1/namespaces/a/widgets"),
])
def test_cacheable_requests(method, target):
    d = decide(method, target)
    assert d.ok and bool(d) and d.reason == "cacheable"


@pytest.mark.parametrize("method,target,reason", [
    # YurtHub's CanCacheFor
    ("DELETE", "/api/v1/namespaces/default/pods/web-1", "verb"),
    ("DELETE", "/api/v1/namespaces/default/pods", "verb"),
    ("GET", "/api/v1/proxy/nodes/edge-1/metrics", "verb"),
    ("OPTIONS", "/api/v1/pods", "verb"),
    ("HEAD", "/api/v1/namespaces/default/pods/web-1", "verb"),
    ("HEAD", "/api/v1/pods", "verb"),
    ("GET", "/api/v1/namespaces/default/pods/web-1/log", "subresource"),
    ("POST", "/api/v1/namespaces/default/pods/web-1/exec", "subresource"),
    ("POST", "/api/v1/namespaces/default/pods/web-1/eviction", "subresource"),
    ("POST", "/api/v1/namespaces/default/pods/web-1/binding", "subresource"),
    ("POST", "/api/v1/namespaces/kube-system/serviceaccounts/default/token", "subresource"),
    ("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale", "subresource"),
    ("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", "resource"),
    ("GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1", "resource"),
    ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", "resource"),
    # ... and what we refuse on top of it
    ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", "resource"),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "resource"),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", "resource"),
    ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "resource"),
    ("POST", "/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews",
     "resource"),
    ("POST", "/api/v1/namespaces/default/bindings", "resource"),
    ("POST", "/apis/policy/v1/namespaces/default/evictions", "resource"),
    ("POST", "/api/v1/namespaces/default/pods?dryRun=All", "dry-run"),
    ("PATCH", "/api/v1/nodes/edge-1/status?dryRun=All", "dry-run"),
    ("GET", "/api/v1/pods?resourceVersion=1234&resourceVersionMatch=Exact", "historical-list"),
    ("GET", "/api/v1/pods?resourceVersion=1234&limit=500", "historical-list"),
    ("GET", "/api/v1/pods?resourceVersion=1234&resourceVersionMatch=Bogus", "historical-list"),
    # non-resource paths are cached elsewhere (discovery documents), never by this policy
    ("GET", "/version", "non-resource"),
    ("GET", "/apis/discovery.k8s.io/v1", "non-resource"),
    ("GET", "/api", "non-resource"),
])
def test_refused_requests(method, target, reason):
    d = decide(method, target)
    assert not d.ok and not bool(d)
    assert d.reason == reason


@pytest.mark.parametrize("component,agents,reason", [
    ("", AGENTS, "no-component"),
    ("", frozenset({"*"}), "no-component"),
    ("kubectl", AGENTS, "not-a-cache-agent"),
    ("kubelet", frozenset(), "not-a-cache-agent"),
    ("Kubelet", AGENTS, "not-a-cache-agent"),
])
def test_components_that_are_not_cached(component, agents, reason):
    d = decide("GET", "/api/v1/pods", component, agents=agents)
    assert (d.ok, d.reason) == (False, reason)


def test_a_wildcard_admits_every_component():
    assert decide("GET", "/api/v1/pods", "my-operator", agents=frozenset({"*"})).ok
    assert decide("GET", "/api/v1/pods", "kubectl", agents=frozenset({"*", "kubelet"})).ok


@pytest.mark.parametrize("accept,ok,reason", [
    (None, True, "cacheable"),
    ("application/vnd.kubernetes.protobuf, */*", True, "cacheable"),
    (POM, True, "cacheable"),
    (POML, True, "cacheable"),
    (TABLE, False, "table"),
    ("application/yaml;as=Table;v=v1beta1;g=meta.k8s.io", False, "table"),
    # kube-apiserver skips a protobuf Table entry and serves the object itself
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json",
     True, "cacheable"),
])
def test_accept_transforms(accept, ok, reason):
    d = decide("GET", "/api/v1/namespaces/default/pods", accept=accept)
    assert (d.ok, d.reason) == (ok, reason)


def test_every_reason_is_declared():
    seen = {decide("GET", "/api/v1/pods").reason,
            decide("GET", "/api/v1/pods", "").reason,
            decide("GET", "/api/v1/pods", "kubectl").reason,
            decide("GET", "/version").reason,
            decide("DELETE", "/api/v1/pods").reason,
            decide("GET", "/api/v1/namespaces/a/pods/p/log").reason,
            decide("POST", "/api/v1/namespaces/a/bindings").reason,
            decide("POST", "/api/v1/namespaces/a/pods?dryRun=All").reason,
            decide("GET", "/api/v1/pods", accept=TABLE).reason,
            decide("GET", "/api/v1/pods?resourceVersion=5&resourceVersionMatch=Exact").reason}
    assert seen == set(REASONS)


@pytest.mark.parametrize("query,historical", [
    ("", False),
    ("resourceVersion=0", False),
    ("resourceVersion=0&limit=500", False),
    ("resourceVersion=7", False),
    ("resourceVersion=7&limit=0", False),
    ("resourceVersion=7&limit=500", True),
    ("resourceVersion=7&resourceVersionMatch=NotOlderThan&limit=500", False),
    ("resourceVersion=0&resourceVersionMatch=NotOlderThan", False),
    ("resourceVersion=7&resourceVersionMatch=Exact", True),
    ("resourceVersion=7&resourceVersionMatch=Exact&limit=10", True),
    ("limit=500&continue=abc", False),
    ("resourceVersionMatch=Exact&continue=abc", False),
    ("watch=1&resourceVersion=7&resourceVersionMatch=Exact", False),
])
def test_is_historical_list(query, historical):
    assert is_historical_list(parse_request_info("GET", "/api/v1/pods", query)) is historical


@pytest.mark.parametrize("target,accept,expected", [
    ("/api/v1/namespaces/a/pods", None, ("", "v1", "pods")),
    ("/api/v1/namespaces/a/pods", "application/vnd.kubernetes.protobuf, */*", ("", "v1", "pods")),
    ("/apis/apps/v1/deployments", "application/json", ("apps", "v1", "deployments")),
    ("/api/v1/namespaces/a/pods", POML,
     ("core.partialobjectmetadatas.v1.meta.k8s.io", "v1", "pods")),
    ("/api/v1/namespaces/a/pods/p", POM,
     ("core.partialobjectmetadatas.v1.meta.k8s.io", "v1", "pods")),
    ("/apis/apps/v1/deployments",
     "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1",
     ("apps.partialobjectmetadatas.v1beta1.meta.k8s.io", "v1", "deployments")),
    ("/apis/example.com/v2/widgets", POML,
     ("example.com.partialobjectmetadatas.v1.meta.k8s.io", "v2", "widgets")),
    ("/api/v1/namespaces/a/pods", TABLE, ("", "v1", "pods")),
])
def test_cache_resource(target, accept, expected):
    path, _, query = target.partition("?")
    assert cache_resource(parse_request_info("GET", path, query), accept) == expected


def test_partial_metadata_of_different_resources_never_share_a_collection():
    targets = ["/api/v1/pods", "/api/v1/configmaps", "/apis/events.k8s.io/v1/events",
               "/api/v1/events"]
    gvrs = {cache_resource(parse_request_info("GET", t, ""), POML) for t in targets}
    full = {cache_resource(parse_request_info("GET", t, ""), None) for t in targets}
    assert len(gvrs) == len(targets) and not gvrs & full
