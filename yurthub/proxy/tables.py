"""kubectl's columns offline: a Table request answered from the cache with the Table
kube-apiserver would have sent.

kubectl asks ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...``.  Online the
cloud's Table passes through (for a cache agent asked with each row's whole object, which
the cache stores: ``whole_objects_path``); offline the local proxy reads the same objects it
would list and prints them with kube-apiserver's printers (``yurthub.kube.table``): the
built-in printer of the resource, or the columns of the resource's CRD when the cache holds
the CRD, Name and Created At where kube-apiserver prints with its default convertor (the
CRDs themselves), or Name and Age.  Lists, gets and watches are printed; the ``Warning`` header
saying how old the data is stays.

A client the response filters apply to gets its Table printed by the hub online too: the
cloud's Table holds rows of objects the filters would drop or change, and a Table cannot be
filtered (its rows hold no objects).  The remote proxy asks the cloud for JSON, filters it as
for any client, and prints the filtered objects with the same printers (``filtered_list``,
``table_events``): the rows are those of the JSON list the client would get.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote_plus

from yurthub.cache.manager import CacheManager
from yurthub.errors import BadRequest, DecodeError
from yurthub.filters.chain import Chain
from yurthub.filters.context import namespace_name
from yurthub.filters.visibility import object_rv
from yurthub.kube import accept as kaccept
from yurthub.kube.framing import ListParser
from yurthub.kube.jsonscan import decode_object
from yurthub.kube.printers import printer_for
from yurthub.kube.requestinfo import parse_query
from yurthub.kube.resources import ResourceType
from yurthub.kube.table import NAME_AGE, TableWriter, include_object, list_meta, printer
from yurthub.proxy.context import RequestContext


def requested_table(accept: str) -> kaccept.Transform | None:
    """The Table this Accept header gets from kube-apiserver (as JSON), or None."""
    if "Table" not in accept:
        return None  # every request asks this: most need no parse to say so
    n = kaccept.negotiate(accept)
    if n is None or n.transform is None or not n.transform.is_table:
        return None
    return n.transform if n.media_type == kaccept.JSON else None


def _decode(body: bytes) -> dict[str, Any]:
    """A cached object (msgspec when installed: 3-4x faster on 10,000 pods)."""
    try:
        return decode_object(body)
    except DecodeError:
        return {}  # not an object the cache would have stored; printed as an empty one


def table_writer(cache: CacheManager, ctx: RequestContext,
                 table: kaccept.Transform) -> TableWriter:
    """The writer for this request: its printer, ``includeObject`` and Table version.

    Raises BadRequest for an ``includeObject`` kube-apiserver would refuse.
    """
    include = include_object(parse_query(ctx.path_qs.partition("?")[2]))
    info = ctx.info
    crd = None
    if info.api_group and printer_for(info.api_group, info.resource) is None:
        crd = cache.crd(info.api_group, info.resource, ctx.component)
    chosen = printer(info.api_group, info.resource, info.api_version, crd, fallback=NAME_AGE)
    return TableWriter(chosen, include=include, api_version=table.api_version,
                       now=time.time())


class LocalTables:
    """Prints cached objects into Tables for the local proxy."""

    def __init__(self, cache: CacheManager) -> None:
        self.cache = cache

    def writer(self, ctx: RequestContext, rt: ResourceType,
               table: kaccept.Transform) -> TableWriter:
        """The writer for this request (see ``table_writer``)."""
        return table_writer(self.cache, ctx, table)

    def one(self, ctx: RequestContext, rt: ResourceType, table: kaccept.Transform,
            body: bytes) -> bytes:
        """The Table of one object (a get)."""
        return one_table(body, self.writer(ctx, rt, table))

    def rows(self, ctx: RequestContext, rt: ResourceType, table: kaccept.Transform,
             resource_version: str, continue_token: str, remaining: int | None,
             bodies: Iterable[bytes]) -> Iterator[bytes]:
        """The Table of a list page, streamed one row per cached object.

        The writer is made here, before the first byte: a bad ``includeObject`` is a 400.
        """
        writer = self.writer(ctx, rt, table)
        meta = list_meta(resource_version, continue_token, remaining)
        objects = (_decode(b) for b in bodies)
        return itertools.chain(writer.table(objects, meta), [b"\n"])

    def watch(self, ctx: RequestContext, rt: ResourceType, table: kaccept.Transform,
              stream: Any) -> TableWatch:
        return TableWatch(stream, self.writer(ctx, rt, table))


class TableWatch:
    """A local watch whose events carry one-row Tables, column definitions in the first."""

    def __init__(self, stream: Any, writer: TableWriter) -> None:
        self.stream = stream
        self.writer = writer

    def __iter__(self) -> Iterator[bytes]:
        return table_events(self.stream, self.writer)

    def close(self) -> None:
        self.stream.close()


def table_events(chunks: Iterable[bytes], writer: TableWriter) -> Iterator[bytes]:
    """JSON watch event lines (whole lines, one or more per chunk) as Table events: one
    output chunk per input chunk, each event's object a one-row Table, the column
    definitions in the first only (as kube-apiserver sends an ``as=Table`` watch)."""
    first = True
    for chunk in chunks:
        if not chunk.strip():
            yield chunk  # the empty piece that sends the headers
            continue
        out = []
        for line in chunk.splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            writer.now = time.time()
            out.append(writer.watch_event(str(event.get("type", "")),
                                          event.get("object") or {}, headers=first))
            first = False
        yield b"".join(out)


def filtered_list(chunks: Iterable[bytes], chain: Chain, writer: TableWriter,
                  item_type: tuple[str, str] | None = None,
                  on_dropped: Any = None,
                  served: Callable[[str], None] | None = None) -> Iterator[bytes]:
    """The Table of a JSON list body as ``chain`` filters it, for a client that asked for
    a Table (the cloud's own Table cannot be filtered).

    Each item is filtered as the JSON list's would be (``Chain.apply``, never changing it)
    and printed; ``on_dropped`` hears of each dropped item's (namespace, name) and
    resourceVersion (filters.liststream.OnDropped).  An item
    gets the ``kind`` and ``apiVersion`` of its list (``item_type``, else the list's own):
    an embedded object (``includeObject=Object``) carries them, as kube-apiserver's does.
    The rows are held (small: no objects unless asked for) until the body ended, because
    the Table's metadata comes first and a torn list must stay an error (DecodeError).
    ``served`` hears the list's resourceVersion once the whole list went out.
    """
    parser = ListParser()
    rows: list[bytes] = []
    for chunk in chunks:
        for item in parser.feed(chunk):
            obj = item.obj
            kind, version = item_type or _item_type(parser)
            typed = {"kind": kind, "apiVersion": version, **obj} if kind else obj
            out = chain.apply(typed)
            if out is None:
                if on_dropped is not None:
                    on_dropped(namespace_name(obj), object_rv(obj))
                continue
            rows.append(writer.row(out) if not rows else b"," + writer.row(out))
    info = parser.close()
    if info.status is not None:
        yield json.dumps(info.status, separators=(",", ":")).encode() + b"\n"
        return
    meta = list_meta(info.resource_version, info.continue_token, info.remaining_item_count)
    yield b"".join([writer.head(meta), *rows, b"]}\n"])
    if served is not None and info.resource_version:
        served(info.resource_version)  # a resume point (filters/visibility.py)


def _item_type(parser: ListParser) -> tuple[str, str]:
    """(kind, apiVersion) of a list's items, from the list's own (``PodList``)."""
    kind = parser.kind or ""
    return (kind[:-4] if kind.endswith("List") else "", parser.api_version or "")


def one_table(body: bytes, writer: TableWriter) -> bytes:
    """The Table of one (filtered) object: a get."""
    obj = _decode(body)
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    meta = {"resourceVersion": rv} if isinstance(rv, str) and rv else {}
    return b"".join(writer.table([obj], meta))


def whole_objects_path(path_qs: str) -> str | None:
    """The upstream path of a Table ``get``/``list`` by a cache agent, asking the cloud for
    every row's whole object (``includeObject=Object``) so that the cache can store them
    and print kubectl's columns offline (cache/list_handler.py); None to send it as it came.

    The client gets the cloud's own Table, cells and all; each row's ``object`` is a
    superset of the metadata it asked for, which kubectl reads the same way.  An
    ``includeObject`` kube-apiserver would refuse is left for the cloud to refuse.
    """
    path, _, qs = path_qs.partition("?")
    try:
        include_object(parse_query(qs))
    except BadRequest:
        return None
    kept = [p for p in qs.split("&") if p and unquote_plus(p.partition("=")[0]) != "includeObject"]
    return path + "?" + "&".join([*kept, "includeObject=Object"])
