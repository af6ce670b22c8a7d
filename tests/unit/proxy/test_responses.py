"""The upstream's response headers as a client is sent them (proxy/responses.py)."""

from __future__ import annotations

from yurthub.proxy.responses import upstream_headers

SENT = [("Content-Type", "application/json"), ("Warning", '299 - "one"'),
        ("Content-Length", "100"), ("Content-Encoding", "gzip"), ("Warning", '299 - "two"'),
        ("Transfer-Encoding", "chunked")]


def test_every_value_of_a_repeated_header_goes_out_and_hop_by_hop_ones_do_not():
    assert upstream_headers(SENT) == [
        ("Content-Type", "application/json"), ("Warning", '299 - "one"'),
        ("Warning", '299 - "two"'), ("Content-Length", "100"), ("Content-Encoding", "gzip")]


def test_what_the_proxy_changed_goes_out_once_what_it_dropped_not_at_all():
    final = dict(SENT)
    del final["Content-Encoding"]
    final["Content-Length"] = "42"
    assert upstream_headers(SENT, final) == [
        ("Content-Type", "application/json"), ("Warning", '299 - "one"'),
        ("Warning", '299 - "two"'), ("Content-Length", "42")]


def test_lines_no_server_may_send_are_dropped():
    sent = [("X-Ok", "fine \x80"), ("X-Ctl", "a\x00b"), ("X Bad", "v"), ("X-Cr", "a\r\n b"),
            ("Content-Length", "abc"), ("Content-Length", "7")]
    assert upstream_headers(sent) == [("X-Ok", "fine \x80"), ("Content-Length", "7")]


def test_headers_the_clouds_connection_header_names_are_hop_by_hop_too():
    # an HTTP proxy in front of kube-apiserver: its per-connection headers are not the
    # client's (RFC 9110 7.6.1; Go's ReverseProxy, YurtHub's, drops them)
    sent = [("Content-Type", "application/json"), ("Connection", "keep-alive, X-Lb-Conn"),
            ("connection", " X-Lb-Trace ,Upgrade"), ("X-LB-CONN", "7"), ("x-lb-trace", "a1"),
            ("Content-Length", "2")]
    assert upstream_headers(sent) == [("Content-Type", "application/json"),
                                      ("Content-Length", "2")]
