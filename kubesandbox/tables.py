"""Server-side printing: get, list and watch answered with ``meta.k8s.io`` Tables.

kube-apiserver answers ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` with a Table
of the resource's printer (``yurthub.kube.table``: the same code the hub prints with offline,
both checked against golden Tables from Kubernetes' tests).  Custom resources print their
CRD's ``additionalPrinterColumns``; types without a printer (CRDs themselves, in 1.32) get
the default Name/Created At Table.  A watch gets one Table per event, with the column
definitions in the first only.  The Content-Type stays ``application/json``, as
kube-apiserver sends it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubesandbox.crds import GROUP as CRD_GROUP
from kubesandbox.discovery import Registry
from kubesandbox.rest import Reader, not_found
from kubesandbox.routing import Route
from kubesandbox.store import Store
from kubesandbox.wire import Request, Response
from yurthub.errors import NotAcceptable
from yurthub.kube import accept as kaccept
from yurthub.kube.resources import ResourceType
from yurthub.kube.table import DEFAULT, TableWriter, include_object, list_meta, printer

NOT_ACCEPTABLE = ("only the following media types are accepted: application/json, "
                  "application/json;as=Table;v=v1;g=meta.k8s.io, "
                  "application/json;as=Table;v=v1beta1;g=meta.k8s.io")


def table_request(req: Request) -> kaccept.Transform | None:
    """The Table a request asks for, or None.

    Only a header that asks for a transform (``as=``) is negotiated here, the way
    kube-apiserver does it: a Table of a version that does not exist, or as protobuf only,
    is 406.  Headers without ``as=`` keep the sandbox's plain JSON negotiation.
    """
    accept = req.headers.get("Accept") or ""
    if "as=" not in accept:
        return None
    n = kaccept.negotiate(accept)
    if n is None:
        raise NotAcceptable(NOT_ACCEPTABLE)
    t = n.transform
    if t is None or not t.is_table:
        return None
    if n.media_type != kaccept.JSON:  # the sandbox writes JSON only
        raise NotAcceptable(NOT_ACCEPTABLE)
    return t


class Tables:
    """Table answers for one store and registry."""

    def __init__(self, store: Store, registry: Registry, reader: Reader,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.registry = registry
        self.reader = reader
        self.clock = clock  # ages are printed against it (tests may fix it)

    def _writer(self, rt: ResourceType, req: Request, t: kaccept.Transform) -> TableWriter:
        crd = None
        if self.registry.is_custom(rt):
            crd_rt = self.registry.storage(CRD_GROUP, "customresourcedefinitions")
            entry = self.store.get(crd_rt, "", f"{rt.resource}.{rt.group}")
            crd = entry.obj() if entry is not None else None
        p = printer(rt.group, rt.resource, rt.version, crd, fallback=DEFAULT)
        return TableWriter(p, include=include_object(req.query), api_version=t.api_version,
                           now=self.clock())

    def _object(self, rt: ResourceType, data: bytes) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(data)
        return obj

    def get(self, rt: ResourceType, route: Route, req: Request,
            t: kaccept.Transform) -> Response:
        writer = self._writer(rt, req, t)
        entry = self.store.get(rt, route.namespace, route.name)
        if entry is None:
            raise not_found(rt, route.name)
        obj = self._object(rt, self.reader.view(entry, rt))
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        return Response(200, list(writer.table([obj], {"resourceVersion": rv} if rv else {})))

    def list(self, rt: ResourceType, route: Route, req: Request,
             t: kaccept.Transform) -> Response:
        writer = self._writer(rt, req, t)
        page, sel, token = self.reader.list_page(rt, route, req)
        remaining = page.remaining if token and sel.empty else None
        objects = (self._object(rt, self.reader.view(e, rt)) for e in page.items)
        return Response(200, list(writer.table(objects, list_meta(str(page.rv), token,
                                                                  remaining))))

    def watch(self, rt: ResourceType, req: Request, t: kaccept.Transform,
              lines: Iterator[bytes]) -> Iterator[bytes]:
        """The watch's event lines, each object turned into a one-row Table."""
        writer = self._writer(rt, req, t)
        first = True
        for line in lines:
            event = json.loads(line)
            obj = event.get("object") or {}
            writer.now = self.clock()
            yield writer.watch_event(event.get("type", ""), obj, headers=first)
            first = False  # kube-apiserver sends the column definitions once
