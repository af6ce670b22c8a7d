"""Where a request body ends, from its head and the bytes that arrived (worker/bodies.py)."""

from __future__ import annotations

import pytest

from yurthub.worker.bodies import (
    UNKNOWN,
    Framing,
    chunked_declared,
    chunked_end,
    framing,
    without_expect,
)


def head(*fields: str, line: str = "POST /x HTTP/1.1") -> bytes:
    return ("\r\n".join([line, *fields]) + "\r\n\r\n").encode()


@pytest.mark.parametrize("fields,line,want", [
    ((), "GET /x HTTP/1.1", Framing()),
    (("Content-Length: 12",), "POST /x HTTP/1.1", Framing(length=12)),
    (("content-length:  0 ",), "POST /x HTTP/1.1", Framing()),
    (("Transfer-Encoding: chunked",), "POST /x HTTP/1.1", Framing(chunked=True)),
    (("Transfer-Encoding: gzip, Chunked",), "POST /x HTTP/1.1", Framing(chunked=True)),
    (("Content-Length: 5", "Expect: 100-continue"), "PUT /x HTTP/1.1",
     Framing(length=5, expects=True)),
    (("Content-Length: 5", "Expect: 100-continue"), "PUT /x HTTP/1.0", Framing(length=5)),
    # What only gunicorn's parser may judge: it refuses these before reading a body.
    (("Content-Length: 5", "Content-Length: 5"), "POST /x HTTP/1.1", Framing(unknown=True)),
    (("Transfer-Encoding: chunked", "Content-Length: 5"), "GET /x HTTP/1.1",
     Framing(unknown=True)),
    (("Content-Length: -1",), "POST /x HTTP/1.1", Framing(unknown=True)),
    (("Content-Length: 0x10",), "POST /x HTTP/1.1", Framing(unknown=True)),
    (("Transfer-Encoding: chunked, gzip",), "POST /x HTTP/1.1", Framing(unknown=True)),
    (("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), "POST /x HTTP/1.1",
     Framing(unknown=True)),
    (("Transfer-Encoding: chunked",), "POST /x HTTP/1.0", Framing(unknown=True)),
])
def test_framing_from_the_head(fields, line, want):
    assert framing(head(*fields, line=line)) == want


def test_the_expect_field_is_dropped_and_nothing_else():
    h = head("Host: x", "Expect:  100-Continue", "Content-Length: 3")
    assert without_expect(h) == head("Host: x", "Content-Length: 3")
    assert without_expect(head("X-Expect: 100-continue")) == head("X-Expect: 100-continue")


def test_a_chunked_body_is_walked_once_as_it_arrives():
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nGET /next"
    end = len(body) - len(b"GET /next")
    at = 0
    for n in range(len(body) + 1):
        got, at = chunked_end(body[:n], at)
        assert got == (end if n >= end else -1), n
    assert at == body.index(b"0\r\n")
    trailers = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n"
    assert chunked_end(trailers, 0)[0] == len(trailers)
    assert chunked_end(trailers[:-2], 0)[0] == -1


@pytest.mark.parametrize("bad", [b"zz\r\nabc", b"3\r\nabcXY0\r\n\r\n", b"-3\r\nabc\r\n",
                                 b"3" * 5000])
def test_what_is_not_chunked_framing_is_left_to_gunicorn(bad):
    assert chunked_end(bad, 0)[0] == UNKNOWN


def test_a_chunk_says_where_it_ends_before_it_arrives():
    assert chunked_declared(b"100000\r\nab", 0) == 8 + 0x100000 + 2
    assert chunked_declared(b"1000", 0) == 0
