"""The stdlib list decoder near the end of a big chunk (Debian 12's path: no msgspec).

The cache writer feeds a spooled list 256 KiB at a time; the item the chunk cuts is tried,
fails, and is tried again with the next chunk.  json's error for it counted every newline
before it (JSONDecodeError's line number): a pass over the whole buffer per chunk, ~6 % of
the decode of a 10,000-pod list.  Such an item is now scanned in a copy of the tail.
"""

from __future__ import annotations

import json

import pytest

from tests.unit.kube.test_framing import ITEMS, TRICKY, body_of, compact, feed_all
from yurthub.errors import DecodeError
from yurthub.kube.framing import ListParser


def _items(n: int) -> list[bytes]:
    base = [compact(o) for o in [*TRICKY, *ITEMS[:4]]]
    out = []
    for i in range(n):
        obj = json.loads(base[i % len(base)])
        obj["n"] = f"item-{i}-é中"  # multi-byte characters: str and byte offsets differ
        out.append(compact(obj))
    return out


@pytest.mark.parametrize("size", [256 << 10, 100_003, 65_536, 9_000, 8_193, 4_099])
def test_items_cut_by_big_chunks_come_out_whole_and_exact(size):
    raws = _items(400)
    body = body_of(raws)
    p = ListParser(accelerate=False)
    items = feed_all(p, body, size)
    assert p.close().item_count == len(raws)
    assert [it.raw for it in items] == raws
    assert [it.obj for it in items] == [json.loads(r) for r in raws]


@pytest.mark.parametrize("tail", [b"", b"]", b"]}", b'{"metadata":{"name":"x"'])
def test_a_body_torn_near_the_end_of_a_big_buffer_is_still_torn(tail):
    raws = _items(200)
    body = body_of(raws)
    cut = body[:body.rindex(b'},{') + 2] + tail  # the last item(s) never came
    p = ListParser(accelerate=False)
    feed_all(p, cut, 1 << 20)
    with pytest.raises(DecodeError):
        p.close()


def test_a_number_at_the_end_of_the_tail_waits_for_the_next_chunk():
    raws = _items(100) + [b'{"metadata":{"name":"last"},"count":12345}']
    body = body_of(raws)
    at = body.rindex(b"12345") + 3  # "123" now, "45}]}" later
    p = ListParser(accelerate=False)
    first = p.feed(body[:at])
    rest = p.feed(body[at:])
    p.close()
    assert len(first) == 100 and [it.obj for it in rest] == [json.loads(raws[-1])]


def test_the_item_a_big_chunk_cuts_is_not_scanned_with_the_whole_buffer(monkeypatch):
    """json's error for the unfinished item counts the lines of the text it was given."""
    scanned: list[int] = []
    init = json.JSONDecodeError.__init__

    def recording(self, msg, doc, pos):
        scanned.append(len(doc))
        init(self, msg, doc, pos)

    monkeypatch.setattr(json.JSONDecodeError, "__init__", recording)
    raws = _items(2000)
    p = ListParser(accelerate=False)
    items = feed_all(p, body_of(raws), 256 << 10)
    p.close()
    assert len(items) == len(raws)
    assert scanned, "no chunk cut an item"
    assert max(scanned) <= 8192 + 16, f"an unfinished item was scanned in {max(scanned):,} chars"
