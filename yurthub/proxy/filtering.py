"""Running the response filters on a proxied body, before the client and the tee see it.

Watches are filtered event by event as they stream; a get or a list is read whole (only
the few resources with filters go this way), filtered, and sent re-encoded without gzip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from yurthub.errors import DecodeError, NotFound, UpstreamError
from yurthub.filters.chain import Chain
from yurthub.kube.framing import Decompressor, WatchFramer

MAX_FILTERED_BODY = 64 << 20


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def filter_watch(chunks: Iterable[bytes], chain: Chain, gzip: bool) -> Iterator[bytes]:
    """Filtered watch lines; an object a filter drops becomes a DELETED event."""
    gunzip = Decompressor() if gzip else None
    framer = WatchFramer()
    try:
        for chunk in chunks:
            data = gunzip.feed(chunk) if gunzip is not None else chunk
            out = []
            for ev in framer.feed(data):
                if ev.type in ("BOOKMARK", "ERROR"):
                    out.append(b'{"type":"' + ev.type.encode() + b'","object":' + ev.raw + b"}\n")
                    continue
                obj = chain.apply(ev.obj)
                if obj is None:
                    out.append(b'{"type":"DELETED","object":' + ev.raw + b"}\n")
                else:
                    out.append(_dump({"type": ev.type, "object": obj}) + b"\n")
            if out:
                yield b"".join(out)
        framer.close()
    except DecodeError as e:
        raise UpstreamError(f"cannot filter the watch stream: {e}") from e


def filter_body(chunks: Iterable[bytes], chain: Chain, gzip: bool, listing: bool) -> bytes:
    """A whole get or list body, filtered (NotFound when a filter drops a got object)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > MAX_FILTERED_BODY:
            raise UpstreamError(f"a filtered body may not exceed {MAX_FILTERED_BODY} bytes")
    data = bytes(buf)
    try:
        if gzip:
            gunzip = Decompressor()
            data = gunzip.feed(data) + gunzip.close()
        doc = json.loads(data)
    except (DecodeError, ValueError) as e:
        raise UpstreamError(f"cannot filter the response: {e}") from e
    if not isinstance(doc, dict) or doc.get("kind") == "Status":
        return data
    if listing:
        items = doc.get("items") or []
        kept = []
        for item in items:
            out = chain.apply(item)
            if out is not None:
                kept.append(out)
        doc["items"] = kept
        return _dump(doc)
    out = chain.apply(doc)
    if out is None:
        md = doc.get("metadata") or {}
        raise NotFound(f'"{md.get("name", "")}" not found')
    return _dump(out)
