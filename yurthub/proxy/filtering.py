"""The response filters on the proxy's path: before the tee, so client and cache agree.

design: the filters themselves are pure (``yurthub.filters``); this module puts them on a
response.  A list streams through ``filter_list`` item by item and a watch through
``filter_watch`` event by event, so neither is ever held whole; a get (or kubelet's pod
patch) is one object, read whole (bounded) and filtered.  gzip from upstream is undone
first and, when the client asked for gzip, the filtered answer is compressed again (a watch
flushed at every event, so nothing waits in the compressor).  The headers follow: no
Content-Length for a stream whose length changed.  The local proxy runs the same filters
on what it serves from the cache (``refilter``): what an older configuration (or an older
hub) cached is served as the current configuration wants it.  A client that asked for a
Table gets the Table of the filtered objects (``table``: the cloud was asked for JSON, see
proxy/tables.py).
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Iterator

from werkzeug.wrappers import Response

from yurthub.errors import DecodeError, Gone, NotFound, UpstreamError
from yurthub.filters.chain import Chain
from yurthub.filters.context import namespace_name
from yurthub.filters.liststream import ListStats, filter_list
from yurthub.filters.visibility import ClientView
from yurthub.filters.watchstream import filter_watch
from yurthub.kube.accept import is_json_content_type, transform
from yurthub.kube.gunzip import Decompressor
from yurthub.kube.jsonscan import decode_object
from yurthub.kube.status import status_object
from yurthub.kube.table import TableWriter
from yurthub.proxy import tables
from yurthub.proxy.streams import RELIST, Reason, Stream

log = logging.getLogger(__name__)

MAX_FILTERED_OBJECT = 16 << 20   # a single object (get, patch) is read whole to filter it
FILTERED_SUBRESOURCES = frozenset({"", "status"})
GZIP_LEVEL = 1                   # kube-apiserver's level: speed over size


def filterable(content_type: str | None, content_encoding: str | None) -> bool:
    """True for a response the filters can read: plain JSON objects, not a Table or
    PartialObjectMetadata (``as=``), identity or gzip."""
    if not is_json_content_type(content_type) or transform(content_type) is not None:
        return False
    return (content_encoding or "").strip().lower() in ("", "identity", "gzip")


def accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


def gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    d = Decompressor()
    for chunk in chunks:
        yield from d.pieces(chunk)
    d.close()


def gzip(chunks: Iterable[bytes], *, flush_each: bool) -> Iterator[bytes]:
    """gzip the chunks; ``flush_each`` makes each input chunk decodable at once (watches)."""
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = z.compress(chunk)
        if flush_each:
            out += z.flush(zlib.Z_SYNC_FLUSH)
        if out:
            yield out
    yield z.flush()


def _decode_errors(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """Upstream bytes that the filters cannot read end the body as a broken one."""
    try:
        yield from chunks
    except DecodeError as e:
        raise UpstreamError(f"cannot filter the {what}: {e}") from e


def _then_served(chunks: Iterator[bytes], stats: ListStats, view: ClientView
                 ) -> Iterator[bytes]:
    """The list's chunks; once the whole list went by, its resourceVersion is a resume
    point (at the generation the view was taken at, whatever changed meanwhile)."""
    yield from chunks
    if stats.info is not None and stats.info.resource_version:
        view.served(stats.info.resource_version)


def filter_object(body: bytes, chain: Chain) -> bytes:
    """One object (get, patch) filtered; NotFound when the filter drops it."""
    try:
        obj = decode_object(body)
    except DecodeError as e:
        raise UpstreamError(f"cannot filter the response: {e}") from e
    if obj.get("kind") == "Status":
        return body
    out = chain.apply_raw(body, obj)
    if out is None:
        _ns, name = namespace_name(obj)
        raise NotFound(f'"{name}" not found')
    return out


def _is_status(body: bytes) -> bool:
    try:
        return decode_object(body).get("kind") == "Status"
    except DecodeError:
        return False


def read_whole(chunks: Iterable[bytes], limit: int = MAX_FILTERED_OBJECT) -> bytes:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise UpstreamError(f"an object to filter may not exceed {limit} bytes")
    return bytes(buf)


def filter_stream(verb: str, chunks: Iterator[bytes], chain: Chain, *, gzipped: bool,
                  gzip_out: bool, visibility: ClientView | None = None,
                  table: TableWriter | None = None,
                  item_type: tuple[str, str] | None = None
                  ) -> tuple[Iterator[bytes], bytes | None]:
    """(body chunks, whole body or None) of a filtered response.

    A get or patch answer is filtered whole (returned as bytes, so the caller can set
    Content-Length; NotFound or UpstreamError raised here); a list or watch is returned as
    a lazy iterator that raises UpstreamError when the upstream body cannot be filtered.
    With ``table`` the (JSON) upstream answer is filtered and printed as a Table, each
    watch event's object a one-row Table; ``item_type`` is the (kind, apiVersion) of a
    list's items.
    """
    source: Iterator[bytes] = gunzip(chunks) if gzipped else chunks
    if verb == "watch":
        out: Iterator[bytes] = filter_watch(source, chain, visibility)
        if table is not None:
            out = tables.table_events(out, table)
        out = _decode_errors(out, "watch stream")
        return (gzip(out, flush_each=True) if gzip_out else out), None
    if verb == "list":
        on_dropped: Callable[[tuple[str, str], int], None] | None = None
        if visibility is not None and chain.drops:
            view = visibility

            def on_dropped(key: tuple[str, str], rv: int) -> None:
                view.mark(key, True, rv)
        if table is not None:
            out = tables.filtered_list(source, chain, table, item_type, on_dropped,
                                       served=visibility.served if visibility else None)
        else:
            stats = ListStats()
            out = filter_list(source, chain, on_dropped=on_dropped, stats=stats)
            if visibility is not None:
                out = _then_served(out, stats, visibility)
        out = _decode_errors(out, "list")
        return (gzip(out, flush_each=False) if gzip_out else out), None
    try:
        body = read_whole(source)
    except DecodeError as e:
        raise UpstreamError(f"cannot filter the response: {e}") from e
    body = filter_object(body, chain)
    if table is not None and not _is_status(body):
        body = tables.one_table(body, table)
    if gzip_out:
        body = b"".join(gzip([body], flush_each=False))
    return iter(()), body


def outdated_event(rv: str, why: str = RELIST[Reason.FILTERS_CHANGED]) -> bytes:
    """The ERROR event (410 Expired) that ends a watch whose client holds data filtered
    under an older configuration (``rv``: where it watched from, or got to): client-go
    lists again, as after any expired resourceVersion.  A watch that merely ended would be
    resumed from its last resourceVersion, keeping what it had."""
    err = Gone(f"too old resource version: {rv} ({why}: list again)")
    return json.dumps({"type": "ERROR", "object": status_object(err)}).encode() + b"\n"


# The list's own resourceVersion: the first in its body, as kube-apiserver writes the
# list's metadata before its items.
_LIST_RV = re.compile(rb'^\{[^\[]{0,512}?"resourceVersion":"([0-9]{1,20})"')


def served_list_head(view: ClientView, first: bytes, headers: dict[str, str]) -> None:
    """Record the resume point of an unfiltered list from its first bytes (not when they
    are compressed or do not begin as kube-apiserver writes a list)."""
    encoding = {k.lower(): v for k, v in headers.items()}.get("content-encoding", "")
    if encoding.strip().lower() not in ("", "identity"):
        return
    m = _LIST_RV.match(first)
    if m is not None:
        view.served(m.group(1).decode())


def outdated_watch(view: ClientView | None, rv: str) -> Response | None:
    """The answer to a watch from ``rv`` when that resume point was served to the client
    under an older filter configuration (``outdated_event`` alone), else None: serve it."""
    if view is None or not view.outdated(rv):
        return None
    return Response([outdated_event(rv)], status=200, content_type="application/json")


def refilter_item(raw: bytes, chain: Chain) -> bytes | None:
    """A cached object as the client must see it now (None: not at all).  An object the
    cache cannot decode is served as it is stored (the cache wrote it; it is JSON)."""
    try:
        return chain.apply_raw(raw)
    except DecodeError:
        log.warning("a cached object could not be filtered; served as stored")
        return raw


def watches_of(clients: set[tuple[str, str, str]], *, by_agent: bool = False
               ) -> Callable[[Stream], bool]:
    """A predicate for StreamRegistry: the open watches of these (component, group,
    resource); with ``by_agent``, of these (agent, group, resource), whatever the component
    (the filters' clients: ``kube-proxy@pod`` is kube-proxy to them, as to ``chain_for``).
    Watches alone: a followed log, an exec or a port-forward of a pod is no view to relist."""
    def match(stream: Stream) -> bool:
        ctx = getattr(stream, "ctx", None)
        info = getattr(ctx, "info", None)
        if ctx is None or info is None or info.verb != "watch":
            return False
        who = ctx.agent if by_agent else ctx.component
        return (who, info.api_group, info.resource) in clients
    return match
