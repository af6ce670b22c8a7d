"""Streaming decoders: list bodies, watch streams and gzip, cut at every kind of boundary.

Every test runs on the stdlib path, and on the msgspec path where msgspec is importable.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.fixtures import K8S_TESTDATA
from yurthub.errors import DecodeError
from yurthub.kube import framing
from yurthub.kube.framing import (
    HAVE_MSGSPEC,
    Event,
    Item,
    ListParser,
    WatchFramer,
)
from yurthub.kube.gunzip import Decompressor

TESTDATA = K8S_TESTDATA
TYPED = sorted(p for p in TESTDATA.glob("*.json") if p.name != "core.v1.WatchEvent.json")
BACKENDS = [pytest.param(False, id="stdlib")] + (
    [pytest.param(True, id="msgspec")] if HAVE_MSGSPEC else [])


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def fixture_items() -> list[dict]:
    """Every built-in type as a list item: without kind and apiVersion."""
    items = []
    for p in TYPED:
        obj = json.loads(p.read_bytes())
        obj.pop("kind")
        obj.pop("apiVersion")
        items.append(obj)
    return items


ITEMS = fixture_items()
# Items whose bytes are hard to frame: quotes, brackets and braces inside strings, escapes,
# multi-byte UTF-8, numbers right before a closing bracket, deep nesting.
TRICKY = [
    {},
    {"a": "]}", "b": "\"}]", "c": "\\", "d": "{\"x\":[1,2]}"},
    {"name": "é中😀", "emoji": "\U0001f680" * 3, "escaped": "\u005d\u007d"},
    {"n": [1, -2.5, 3e10, 0], "t": True, "f": False, "z": None, "last": 12345},
    {"deep": [[[[{"k": [[]]}]]]], "empty": {}, "list": []},
    {"ws": "  \t\n  ", "x": 1},
]


def body_of(items: list[bytes], order: str = "builtin", *, kind: bytes = b'"PodList"',
            metadata: bytes = b'{"resourceVersion":"10","continue":"tok","remainingItemCount":3}',
            items_value: bytes | None = None) -> bytes:
    """A list body with the items' bytes as they are, its top-level keys in ``order``."""
    members = {
        "kind": b'"kind":' + kind,
        "apiVersion": b'"apiVersion":"v1"',
        "metadata": b'"metadata":' + metadata,
        "items": b'"items":' + (items_value if items_value is not None
                                else b"[" + b",".join(items) + b"]"),
    }
    keys = {"builtin": ["kind", "apiVersion", "metadata", "items"],
            "unstructured": ["apiVersion", "items", "kind", "metadata"],
            "items-first": ["items", "metadata", "kind", "apiVersion"]}[order]
    return b"{" + b",".join(members[k] for k in keys) + b"}\n"


def feed_all(parser: ListParser | WatchFramer, data: bytes, size: int) -> list:
    out: list = []
    for i in range(0, len(data), size):
        out += parser.feed(data[i:i + size])
    return out


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("order", ["builtin", "unstructured", "items-first"])
@pytest.mark.parametrize("size", [4096, 65536, 1 << 30])
def test_every_builtin_type_comes_out_byte_for_byte(accelerate, order, size):
    raws = [compact(o) for o in ITEMS]
    p = ListParser(accelerate=accelerate)
    items = feed_all(p, body_of(raws, order), size)
    info = p.close()
    assert [it.raw for it in items] == raws
    assert [it.obj for it in items] == ITEMS
    assert all(isinstance(it, Item) for it in items)
    assert (info.kind, info.api_version, info.resource_version) == ("PodList", "v1", "10")
    assert (info.continue_token, info.remaining_item_count) == ("tok", 3)
    assert info.item_count == len(ITEMS)
    assert not info.is_status and info.status is None
    assert info.resource_version_int == 10


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 1000])
def test_items_split_at_any_boundary(accelerate, size):
    raws = [compact(o) for o in TRICKY] + [compact(ITEMS[0])]
    p = ListParser(accelerate=accelerate)
    items = feed_all(p, body_of(raws, "unstructured"), size)
    assert p.close().item_count == len(raws)
    assert [it.raw for it in items] == raws
    assert [it.obj for it in items] == [*TRICKY, ITEMS[0]]


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("size", [1, 13, 4096, 1 << 30])
def test_pretty_printed_bodies_keep_each_items_bytes(accelerate, size):
    doc = {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
           "items": [*TRICKY, ITEMS[1]]}
    body = json.dumps(doc, indent=3, ensure_ascii=False).encode()
    p = ListParser(accelerate=accelerate)
    items = feed_all(p, body, size)
    p.close()
    assert [it.obj for it in items] == doc["items"]
    offset = 0
    for it in items:  # each raw is the exact slice of the body, in order
        found = body.find(it.raw, offset)
        assert found >= 0 and it.raw[:1] == b"{" and it.raw[-1:] == b"}"
        offset = found + len(it.raw)


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("items_value", [b"[]", b"[ ]", b"null", b" \n[\n]\n"])
@pytest.mark.parametrize("size", [1, 1 << 30])
def test_empty_lists(accelerate, items_value, size):
    p = ListParser(accelerate=accelerate)
    assert feed_all(p, body_of([], items_value=items_value), size) == []
    info = p.close()
    assert info.item_count == 0 and info.kind == "PodList" and not info.is_status


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_type_of_a_builtin_list_is_known_before_its_items(accelerate):
    p = ListParser(accelerate=accelerate)
    assert p.kind is None and p.api_version is None and p.head() == {}
    body = body_of([compact(o) for o in TRICKY])
    assert p.feed(body[:body.index(b'"items"') + 10]) == []
    assert (p.kind, p.api_version) == ("PodList", "v1")
    assert p.head() == {"kind": "PodList", "apiVersion": "v1", "metadata": {
        "resourceVersion": "10", "continue": "tok", "remainingItemCount": 3}}


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("size", [1, 1 << 30])
def test_a_status_instead_of_a_list_is_reported(accelerate, size):
    status = json.loads((TESTDATA / "core.v1.Status.json").read_bytes())
    status.update(kind="Status", apiVersion="v1")
    p = ListParser(accelerate=accelerate)
    assert feed_all(p, json.dumps(status, indent=2).encode(), size) == []
    info = p.close()
    assert info.is_status and info.kind == "Status"
    assert info.status == status
    assert info.item_count == 0


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_metadata_without_continue_or_count(accelerate):
    p = ListParser(accelerate=accelerate)
    p.feed(body_of([b"{}"], metadata=b"{}"))
    info = p.close()
    assert (info.resource_version, info.continue_token, info.remaining_item_count) == ("", "", None)
    assert info.resource_version_int == 0


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_every_torn_body_is_refused(accelerate):
    body = body_of([compact(o) for o in TRICKY[:4]])
    ends = [i for i in range(len(body)) if body[:i].strip() != body.strip()]
    assert len(ends) > 200
    for end in ends:
        p = ListParser(accelerate=accelerate)
        with pytest.raises(DecodeError):
            feed_all(p, body[:end], 7)
            p.close()


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_a_large_body_torn_anywhere_is_refused(accelerate, cut):
    body = body_of([compact(o) for o in ITEMS])
    p = ListParser(accelerate=accelerate)
    items = feed_all(p, body[:int(len(body) * cut)], 4096)
    assert len(items) < len(ITEMS)
    with pytest.raises(DecodeError):
        p.close()


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("body", [
    b"[]",
    b'"a list"',
    b'{"items":{}}',
    b'{"items":"x"}',
    b'{"items":[1]}',
    b'{"items":[[]]}',
    b'{"items":[{"a":1}}',
    b'{"items":[{"a":1}]}x',
    b'{"items":[{"a":1}]}{}',
    b'{"items":[{"a":tru}]}',
    b'{"items":[{"a":NaN}]}',
    b'{"items":[{"a":Infinity}]}',
    b'{"items":[{"a":1},]}',
    b'{"items":[{"a":1} {"b":2}]}',
    b'{"items"[]}',
    b'{"items":[],}',
    b'{"items":[],"items":[]}',
    b'{items:[]}',
    b'{"kind":"PodList"}',
    b'{"kind":"Pod","metadata":{"name":"p"}}',
    b'{"kind":5,"items":[]}',
    b'{"metadata":[],"items":[]}',
    b'{"items":[{"a":"\xff"}]}',
    b'{"items":[{"a":"\xc3"}]}',
    b'{"items":[{"a":"\x01"}]}',
    b'{"items":[{"a":"\\q"}]}',
    b"{}",
    b"",
    b"   ",
])
def test_invalid_bodies_are_refused(accelerate, body):
    p = ListParser(accelerate=accelerate)
    with pytest.raises(DecodeError):
        for i in range(0, len(body), 3):
            p.feed(body[i:i + 3])
        p.close()
    with pytest.raises(DecodeError):  # a failed parser stays failed
        p.feed(b"{}")
        p.close()


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("depth", [3000, 20000])
@pytest.mark.parametrize("size", [4096, 1 << 30])
def test_an_item_nested_deeper_than_the_decoders_recurse_is_a_decode_error(accelerate, depth,
                                                                           size):
    """kube-apiserver serves custom resources nested up to 10,000 levels; the decoders
    recurse and stop earlier: a DecodeError that says so (it was a RecursionError, which
    killed the hub's own readers), never a crash, for the items before it too."""
    deep = b'{"spec":' + b"[" * depth + b"]" * depth + b"}"
    p = ListParser(accelerate=accelerate)
    with pytest.raises(DecodeError, match="nests too deep"):
        feed_all(p, body_of([compact({"a": 1}), deep]), size)
        p.close()
    w = WatchFramer(accelerate=accelerate)
    with pytest.raises(DecodeError):
        w.feed(b'{"type":"ADDED","object":' + deep + b"}\n")


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_a_large_item_is_retried_geometrically(accelerate, monkeypatch):
    """A 1 MiB item in 64 KiB chunks is tried a handful of times, not once per chunk."""
    big = compact({"metadata": {"name": "big"}, "data": {"blob": "x" * (1 << 20)}})
    body = body_of([big, b'{"small":1}'])
    p = ListParser(accelerate=accelerate)
    attempts = []
    real_item = p._b.item

    def counting_item(pos: int, final: bool):
        attempts.append(len(p._b.buf) - pos)
        return real_item(pos, final)

    monkeypatch.setattr(p._b, "item", counting_item)
    items = feed_all(p, body, 65536)
    p.close()
    assert [it.raw for it in items] == [big, b'{"small":1}']
    assert len(attempts) <= 8, attempts
    # what is buffered is the item in progress, never the whole body
    assert len(p._b.buf) <= 4


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_memory_follows_the_largest_item_not_the_body(accelerate):
    raws = [compact(o) for o in ITEMS] * 5
    body = body_of(raws)
    p = ListParser(accelerate=accelerate)
    largest = max(len(r) for r in raws)
    peak = 0
    for i in range(0, len(body), 8192):
        p.feed(body[i:i + 8192])
        peak = max(peak, len(p._b.buf))
    p.close()
    assert len(body) > 20 * largest
    assert peak <= 2 * largest + 8192


def test_accelerate_needs_msgspec():
    if HAVE_MSGSPEC:
        assert isinstance(ListParser(accelerate=True)._b, framing.BytesBuffer)
        assert isinstance(ListParser()._b, framing.BytesBuffer)
    else:
        with pytest.raises(ValueError):
            ListParser(accelerate=True)
        with pytest.raises(ValueError):
            WatchFramer(accelerate=True)
        assert isinstance(ListParser()._b, framing.TextBuffer)
    assert isinstance(ListParser(accelerate=False)._b, framing.TextBuffer)


# -- watch streams ---------------------------------------------------------------------------

WATCH_OBJECTS = [json.loads(p.read_bytes()) for p in TYPED]


def stream_of(objects: list[dict], event_type: str = "MODIFIED", newline: bytes = b"\n") -> bytes:
    return b"".join(b'{"type":"' + event_type.encode() + b'","object":' + compact(o) + b"}"
                    + newline for o in objects)


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 30])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_watch_events_of_every_type(accelerate, size, newline):
    objects = WATCH_OBJECTS if size > 1 else [*WATCH_OBJECTS[:20], TRICKY[1], TRICKY[2]]
    w = WatchFramer(accelerate=accelerate)
    events = feed_all(w, stream_of(objects, newline=newline), size)
    w.close()
    assert [e.raw for e in events] == [compact(o) for o in objects]
    assert [e.obj for e in events] == objects
    assert {e.type for e in events} == {"MODIFIED"}
    assert all(isinstance(e, Event) for e in events)


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_watch_event_shapes(accelerate):
    bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {
        "resourceVersion": "12", "annotations": {"k8s.io/initial-events-end": "true"}}}
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
              "reason": "Expired", "message": "too old resource version: 1 (12)"}
    stream = (b'{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a"}}}\n'
              b"\n   \n"
              b'{ "object" : {"kind": "Pod",  "metadata": {"name": "b"}} , "type" : "DELETED" }\n'
              b'{"type":"BOOKMARK","object":' + compact(bookmark) + b"}\n"
              b'{"type":"ERROR","object":' + compact(status) + b',"extra":[1]}\n')
    w = WatchFramer(accelerate=accelerate)
    events = w.feed(stream)
    w.close()
    assert [e.type for e in events] == ["ADDED", "DELETED", "BOOKMARK", "ERROR"]
    assert events[1].raw == b'{"kind": "Pod",  "metadata": {"name": "b"}}'
    assert events[2].obj == bookmark and events[3].obj == status


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("tail", [b'{"type":"ADDED","obj', b'{"type":"ADDED","object":{}}', b"x"])
def test_a_torn_watch_frame_is_refused_at_close(accelerate, tail):
    w = WatchFramer(accelerate=accelerate)
    assert len(w.feed(stream_of(WATCH_OBJECTS[:3]) + tail)) == 3
    with pytest.raises(DecodeError):
        w.close()


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_a_watch_stream_may_end_with_whitespace(accelerate):
    w = WatchFramer(accelerate=accelerate)
    assert len(w.feed(stream_of(WATCH_OBJECTS[:2]) + b"  \r")) == 2
    w.close()


@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("line", [
    b'{"type":"UPDATED","object":{}}',
    b'{"type":"added","object":{}}',
    b'{"type":"ADDED","object":[]}',
    b'{"type":"ADDED","object":"x"}',
    b'{"type":"ADDED","object":null}',
    b'{"type":"ADDED"}',
    b'{"object":{}}',
    b'{"type":1,"object":{}}',
    b'{"type":"ADDED","object":{}} x',
    b'{"type":"ADDED","object":{}',
    b'{"type":"ADDED","object":{"a":NaN}}',
    b'{"type":"ADDED","object":{"a":"\xff"}}',
    b'["ADDED",{}]',
    b"not json",
])
def test_invalid_watch_events_are_refused(accelerate, line):
    w = WatchFramer(accelerate=accelerate)
    with pytest.raises(DecodeError):
        w.feed(line + b"\n")
    with pytest.raises(DecodeError):  # a failed framer stays failed
        w.feed(stream_of(WATCH_OBJECTS[:1]))


# -- gzip into the list parser (the inflating itself: test_gunzip.py) ----------------------

BODY = body_of([compact(o) for o in ITEMS])


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_gzip_into_the_list_parser(accelerate):
    packed = gzip.compress(BODY)
    d, p = Decompressor(), ListParser(accelerate=accelerate)
    items = []
    for i in range(0, len(packed), 1000):
        items += p.feed(d.feed(packed[i:i + 1000]))
    items += p.feed(d.close())
    assert [it.obj for it in items] == ITEMS
    assert p.close().item_count == len(ITEMS)


# -- size caps: nothing from upstream grows memory past the largest object ----------------

@pytest.mark.parametrize("accelerate", BACKENDS)
def test_a_list_item_larger_than_any_object_is_refused_while_it_streams(accelerate):
    p = ListParser(accelerate=accelerate, max_item=1 << 20)
    assert p.feed(b'{"kind":"PodList","items":[{"a":1},{"b":[') != []
    with pytest.raises(DecodeError, match="larger than 1048576"):
        for _ in range(100):  # never a "}" at the end of a chunk: no early retry helps
            p.feed(b'"' + b"y" * (64 << 10) + b'",')
    with pytest.raises(DecodeError):
        p.feed(b"}")  # it stays failed


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_a_big_item_under_the_cap_still_passes(accelerate):
    big = {"metadata": {"name": "big"}, "data": {"k": "v" * (900 << 10)}}
    body = b'{"kind":"ConfigMapList","items":[' + compact(big) + b"]}"
    p = ListParser(accelerate=accelerate, max_item=1 << 20)
    items = []
    for i in range(0, len(body), 4096):
        items += p.feed(body[i:i + 4096])
    assert [it.obj for it in items] == [big]
    assert p.close().item_count == 1


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_a_watch_event_larger_than_any_object_is_refused_while_it_streams(accelerate):
    w = WatchFramer(accelerate=accelerate, max_object=1 << 20)
    w.feed(b'{"type":"ADDED","object":{"a":"')
    with pytest.raises(DecodeError, match="larger than"):
        for _ in range(40):
            w.feed(b"z" * (64 << 10))
    assert w._pending_len == 0  # nothing is kept of a failed stream
    with pytest.raises(DecodeError):
        w.feed(b'"}}\n')


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_a_whole_watch_event_larger_than_any_object_is_refused(accelerate):
    w = WatchFramer(accelerate=accelerate, max_object=1 << 20)
    small = b'{"type":"ADDED","object":{"a":"b"}}\n'
    assert len(w.feed(small)) == 1
    with pytest.raises(DecodeError, match="larger than"):
        w.feed(small + b'{"type":"ADDED","object":{"a":"' + b"z" * (2 << 20) + b'"}}\n')
@pytest.mark.parametrize("accelerate", BACKENDS)
@pytest.mark.parametrize("order", ["builtin", "unstructured", "items-first"])
@pytest.mark.parametrize("size", [1, 3, 64, 1 << 30])
def test_pieces_give_back_every_byte_in_order(accelerate, order, size):
    """feed_pieces: items and the bytes between them, joined, are the body exactly."""
    raws = [compact(o) for o in [*TRICKY, *ITEMS]]
    for body in (body_of(raws, order),
                 json.dumps({"kind": "PodList", "items": [*TRICKY, *ITEMS]},
                            indent=2, ensure_ascii=False).encode() + b"\n"):
        p = ListParser(accelerate=accelerate)
        pieces: list = []
        for i in range(0, len(body), size):
            pieces += p.feed_pieces(body[i:i + size])
        last, info = p.close_pieces()
        pieces += last
        assert b"".join(x.raw if isinstance(x, Item) else x for x in pieces) == body
        items = [x for x in pieces if isinstance(x, Item)]
        assert [it.obj for it in items] == [*TRICKY, *ITEMS]
        assert info.item_count == len(items)


@pytest.mark.parametrize("accelerate", BACKENDS)
def test_pieces_of_a_torn_body_are_an_error(accelerate):
    body = body_of([compact(o) for o in ITEMS], "builtin")
    p = ListParser(accelerate=accelerate)
    p.feed_pieces(body[:-3])
    with pytest.raises(DecodeError):
        p.close_pieces()
