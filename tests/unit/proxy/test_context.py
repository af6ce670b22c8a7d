"""What the proxy forwards upstream of a client's request headers."""

from __future__ import annotations

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from yurthub.proxy.context import build_context


def context(headers: dict[str, str], data: bytes | None = None, method: str = "GET"):
    env = EnvironBuilder(path="/api/v1/namespaces/default/pods", method=method,
                         headers=headers, data=data).get_environ()
    return build_context(Request(env))


def test_hop_by_hop_and_connection_listed_headers_are_dropped_the_rest_kept():
    ctx = context({
        "Connection": "keep-alive, X-Private-Hop", "Keep-Alive": "timeout=5",
        "X-Private-Hop": "1", "TE": "trailers", "Upgrade": "h2c",
        "Proxy-Authorization": "Basic x", "Proxy-Connection": "keep-alive",
        "Authorization": "Bearer token-1", "User-Agent": "kubelet/v1.32.0",
        "Accept": "application/json", "X-Remote-User": "alice", "Impersonate-User": "bob",
    })
    assert ctx.forward_headers() == {
        "Authorization": "Bearer token-1", "User-Agent": "kubelet/v1.32.0",
        "Accept": "application/json", "X-Remote-User": "alice", "Impersonate-User": "bob",
    }
    assert ctx.component == "kubelet" and ctx.accept == "application/json"


def test_a_body_is_announced_by_its_length_and_type():
    ctx = context({"Content-Type": "application/merge-patch+json"}, data=b'{"a":1}',
                  method="PATCH")
    fwd = ctx.forward_headers()
    assert fwd["Content-Type"] == "application/merge-patch+json"
    assert fwd["Content-Length"] == "7"
    assert "Host" not in fwd
    assert ctx.has_body() and ctx.body_for_upstream() == b'{"a":1}'


def test_no_body_no_length_and_odd_lengths_mean_none():
    assert "Content-Length" not in context({}).forward_headers()
    assert not context({}).has_body() and context({}).body_for_upstream() is None
    env = EnvironBuilder(path="/api/v1/pods").get_environ()
    env["CONTENT_LENGTH"] = "-5"
    assert build_context(Request(env)).content_length is None
    env["CONTENT_LENGTH"] = "abc"
    assert build_context(Request(env)).content_length is None
    env["CONTENT_LENGTH"] = ""
    env["HTTP_TRANSFER_ENCODING"] = "chunked"
    assert build_context(Request(env)).has_body()


@pytest.mark.parametrize(("target", "headers", "long_running"), [
    ("/api/v1/pods?watch=true", {}, True),
    ("/api/v1/watch/namespaces/default/pods", {}, True),
    ("/api/v1/namespaces/default/pods/p/log", {}, True),   # follow or not, as kube-apiserver
    ("/api/v1/namespaces/default/pods/p/exec?command=sh", {}, True),
    ("/api/v1/namespaces/default/pods/p/portforward", {"Upgrade": "SPDY/3.1"}, True),
    ("/api/v1/namespaces/default/services/s/proxy/x", {}, True),
    ("/api/v1/pods", {}, False),
    ("/api/v1/namespaces/default/pods/p", {}, False),
    ("/api/v1/namespaces/default/pods/p/status", {}, False),
    ("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n", {}, False),
])
def test_long_running_requests_are_kube_apiservers(target, headers, long_running):
    env = EnvironBuilder(path=target, headers=headers).get_environ()
    assert build_context(Request(env)).long_running is long_running
