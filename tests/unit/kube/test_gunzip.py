"""gzip bodies inflated as they stream: round trips, members, truncation, bombs."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub.errors import DecodeError
from yurthub.kube.gunzip import MAX_INFLATED_BYTES, Decompressor

# A list body of every built-in type as the Kubernetes project serialized it.
BODY = b'{"kind":"List","apiVersion":"v1","metadata":{},"items":[' + b",".join(
    p.read_bytes().strip() for p in sorted(K8S_TESTDATA.glob("*.json"))) + b"]}"


@pytest.mark.parametrize("size", [1, 100, 65536, 1 << 30])
def test_gzip_round_trip(size):
    packed = gzip.compress(BODY)
    d = Decompressor()
    out = b"".join(d.feed(packed[i:i + size]) for i in range(0, len(packed), size))
    assert out + d.close() == BODY


def test_gzip_members_are_concatenated():
    d = Decompressor()
    out = d.feed(gzip.compress(b"first,") + gzip.compress(b"second"))
    assert out + d.close() == b"first,second"


@pytest.mark.parametrize("cut", [1, 10, 100, -8, -4, -1])
def test_a_truncated_gzip_stream_is_refused(cut):
    packed = gzip.compress(BODY)
    d = Decompressor()
    d.feed(packed[:cut])
    with pytest.raises(DecodeError):
        d.close()


def test_an_empty_gzip_stream_is_refused():
    with pytest.raises(DecodeError):
        Decompressor().close()


@pytest.mark.parametrize("data", [b"not gzip at all", gzip.compress(b"ok") + b"garbage!!"])
def test_invalid_gzip_data_is_refused(data):
    with pytest.raises(DecodeError):
        Decompressor().feed(data)


def test_decompressor_pieces_bound_every_piece_and_equal_feed():
    body = json.dumps({"items": ["x" * 1000] * 5000}).encode()  # ~5 MB of text
    packed = gzip.compress(body) + gzip.compress(b"tail")
    d = Decompressor()
    out = []
    for i in range(0, len(packed), 1000):
        out += list(d.pieces(packed[i:i + 1000], max_piece=64 << 10))
    assert d.close() == b""
    assert all(len(p) <= 64 << 10 for p in out)
    assert b"".join(out) == body + b"tail"
    with pytest.raises(DecodeError):
        list(Decompressor().pieces(b"not gzip at all"))


def test_a_gzip_bomb_stops_at_the_inflation_limit_without_inflating_it():
    bomb = gzip.compress(b"\0" * (64 << 20), 9)  # 64 KiB that inflate to 64 MiB
    d = Decompressor(limit=1 << 20)
    got = 0
    with pytest.raises(DecodeError, match="inflates to more than 1048576 bytes"):
        for piece in d.pieces(bomb, max_piece=256 << 10):
            got += len(piece)
    assert got <= 1 << 20 and d.inflated <= (1 << 20) + (256 << 10)
    with pytest.raises(DecodeError):
        Decompressor(limit=1 << 20).feed(bomb)


def test_the_default_inflation_limit_holds_for_feed_too():
    d = Decompressor()
    chunk = gzip.compress(b" " * (MAX_INFLATED_BYTES + 1), 9)
    with pytest.raises(DecodeError):
        d.feed(chunk)
    stream = Decompressor(limit=None)  # a stream: no total, every piece bounded by its reader
    assert len(stream.feed(gzip.compress(b"x" * (3 << 20)))) == 3 << 20
