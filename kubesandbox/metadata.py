"""Metadata-only answers: ``as=PartialObjectMetadata(List);g=meta.k8s.io;v=v1``.

kube-apiserver answers such an Accept (client-go's metadata client, controller-runtime's
metadata-only informers, the garbage collector) with each object's ``metadata`` alone, under
the kind ``PartialObjectMetadata`` of ``meta.k8s.io``: a get asks for ``PartialObjectMetadata``,
a list for ``PartialObjectMetadataList`` (asking the other one is 406, as in its
``transformObject``), and a watch's events carry ``PartialObjectMetadata`` objects.  The
Content-Type stays ``application/json``, as kube-apiserver sends it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kubesandbox.wire import Request, Response
from yurthub.errors import NotAcceptable
from yurthub.kube import accept as kaccept


def metadata_request(req: Request, verb: str) -> kaccept.Transform | None:
    """The metadata-only form a get, list or watch asks for, or None."""
    accept = req.headers.get("Accept") or ""
    if "as=" not in accept:
        return None
    n = kaccept.negotiate(accept)
    t = n.transform if n is not None else None
    if t is None or not t.is_partial_metadata:
        return None
    if n is not None and n.media_type != kaccept.JSON:  # the sandbox writes JSON only
        raise NotAcceptable("only the following media types are accepted: application/json")
    wants_list = t.kind == "PartialObjectMetadataList"
    if verb == "get" and wants_list:
        raise NotAcceptable("you requested PartialObjectMetadataList, but the requested "
                            "object is not a list")
    if verb == "list" and not wants_list:
        raise NotAcceptable("you requested PartialObjectMetadata, but the requested object "
                            "is a list")
    return t


def _partial(obj: Any, api_version: str) -> dict[str, Any]:
    md = obj.get("metadata") if isinstance(obj, dict) else None
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version,
            "metadata": md if isinstance(md, dict) else {}}


def answer(resp: Response, t: kaccept.Transform) -> Response:
    """A get's or list's JSON answer in its metadata-only form (errors pass untouched)."""
    if resp.status != 200 or resp.stream is not None:
        return resp
    doc = json.loads(b"".join(resp.body))
    if t.kind == "PartialObjectMetadataList":
        out = {"kind": "PartialObjectMetadataList", "apiVersion": t.api_version,
               "metadata": doc.get("metadata") or {},
               "items": [_partial(o, t.api_version) for o in doc.get("items") or []]}
    else:
        out = _partial(doc, t.api_version)
    return Response(200, [json.dumps(out, separators=(",", ":")).encode()], kaccept.JSON,
                    resp.headers)


def watch(lines: Iterator[bytes], t: kaccept.Transform) -> Iterator[bytes]:
    """A watch's event lines with each object in its metadata-only form (ERROR's Status
    as it is)."""
    for line in lines:
        event = json.loads(line)
        if event.get("type") != "ERROR":
            event["object"] = _partial(event.get("object"), t.api_version)
        yield json.dumps(event, separators=(",", ":")).encode() + b"\n"
