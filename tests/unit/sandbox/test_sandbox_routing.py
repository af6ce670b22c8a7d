"""Request paths as kube-apiserver reads them."""

from __future__ import annotations

import pytest

from kubesandbox.routing import route
from yurthub.errors import MethodNotAllowed, NotFound


@pytest.mark.parametrize("method, path, query, expected", [
    ("GET", "/version", {}, dict(doc="version")),
    ("GET", "/healthz", {}, dict(doc="health")),
    ("GET", "/readyz/etcd", {}, dict(doc="health")),
    ("GET", "/api", {}, dict(doc="api")),
    ("GET", "/api/v1", {}, dict(doc="resources", version="v1")),
    ("GET", "/apis", {}, dict(doc="apis")),
    ("GET", "/apis/coordination.k8s.io", {}, dict(doc="group", group="coordination.k8s.io")),
    ("GET", "/apis/coordination.k8s.io/v1", {},
     dict(doc="resources", group="coordination.k8s.io", version="v1")),
    ("GET", "/api/v1/pods", {}, dict(verb="list", version="v1", resource="pods")),
    ("GET", "/api/v1/pods", {"watch": ["true"]}, dict(verb="watch", resource="pods")),
    ("GET", "/api/v1/pods", {"watch": ["1"]}, dict(verb="watch", resource="pods")),
    ("GET", "/api/v1/pods", {"watch": ["false"]}, dict(verb="list", resource="pods")),
    ("GET", "/api/v1/watch/namespaces/ns/pods", {},
     dict(verb="watch", resource="pods", namespace="ns")),
    ("GET", "/api/v1/namespaces/ns/pods/p", {},
     dict(verb="get", resource="pods", namespace="ns", name="p")),
    # kube-apiserver reads ?watch on a GET of a collection only (a GET of one object
    # decodes GetOptions, which has no watch): the object, not a stream
    ("GET", "/api/v1/namespaces/ns/pods/p", {"watch": ["1"]},
     dict(verb="get", resource="pods", namespace="ns", name="p")),
    ("GET", "/api/v1/watch/namespaces/ns/pods/p", {},
     dict(verb="watch", resource="pods", namespace="ns", name="p")),
    # the first value, and anything but "0" or "false" is true, even ""
    ("GET", "/api/v1/pods", {"watch": ["0", "1"]}, dict(verb="list")),
    ("GET", "/api/v1/pods", {"watch": ["1", "0"]}, dict(verb="watch")),
    ("GET", "/api/v1/pods", {"watch": [""]}, dict(verb="watch")),
    ("GET", "/api/v1/pods", {"watch": ["FALSE"]}, dict(verb="list")),
    ("POST", "/api/v1/namespaces/ns/configmaps", {"watch": ["1"]}, dict(verb="create")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps", {"watch": ["1"]},
     dict(verb="deletecollection")),
    ("PUT", "/api/v1/namespaces/ns/pods/p/status", {},
     dict(verb="update", resource="pods", namespace="ns", name="p", subresource="status")),
    ("PATCH", "/api/v1/nodes/n1/status", {},
     dict(verb="patch", resource="nodes", name="n1", subresource="status")),
    ("POST", "/api/v1/namespaces/ns/configmaps", {},
     dict(verb="create", resource="configmaps", namespace="ns")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps", {},
     dict(verb="deletecollection", resource="configmaps", namespace="ns")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps/c", {},
     dict(verb="delete", resource="configmaps", namespace="ns", name="c")),
    # a namespace object and its status, not resources inside it
    ("GET", "/api/v1/namespaces/ns", {}, dict(verb="get", resource="namespaces", name="ns")),
    ("PUT", "/api/v1/namespaces/ns/status", {},
     dict(verb="update", resource="namespaces", name="ns", subresource="status")),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", {},
     dict(verb="get", group="coordination.k8s.io", resource="leases",
          namespace="kube-node-lease", name="n1")),
    ("GET", "/apis/example.com/v1/widgets", {}, dict(verb="list", group="example.com",
                                                     resource="widgets")),
    ("GET", "/api/v1/namespaces/ns/configmaps/a%3Ab", {},
     dict(verb="get", resource="configmaps", namespace="ns", name="a:b")),
])
def test_route(method, path, query, expected):
    r = route(method, path, query)
    for key, value in expected.items():
        assert getattr(r, key) == value, key


@pytest.mark.parametrize("method, path, error", [
    ("GET", "/", NotFound),
    ("GET", "/foo", NotFound),
    ("GET", "/api/v2", NotFound),
    ("GET", "/api/v1/namespaces/ns/pods/p/status/extra", NotFound),
    ("GET", "/api/v1/watch", NotFound),
    ("PUT", "/api/v1/namespaces/ns/pods", MethodNotAllowed),
    ("PATCH", "/api/v1/pods", MethodNotAllowed),
    ("POST", "/api/v1/namespaces/ns/pods/p", MethodNotAllowed),
    ("OPTIONS", "/api/v1/pods", MethodNotAllowed),
])
def test_bad_routes(method, path, error):
    with pytest.raises(error) as e:
        route(method, path, {})
    assert e.value.message in ("the server could not find the requested resource",
                               "the server does not allow this method on the requested resource")
