"""The Kubernetes API of the sandbox: one request in, one response out.

``Api.handle`` routes a request to discovery, health or a resource verb; it raises
:class:`yurthub.errors.ApiError` for every failure (the HTTP layer turns it into a Status).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubesandbox import certificates, discovery, metadata, openapi, protobuf
from kubesandbox.auth import ADMIN, authorize
from kubesandbox.discovery import Registry
from kubesandbox.rest import Reader, Selection, check_options, decode_options, resolve
from kubesandbox.routing import NOT_ALLOWED, Route, route
from kubesandbox.satokens import TokenSigner
from kubesandbox.store import Store
from kubesandbox.tables import Tables, table_request
from kubesandbox.tokenrequest import create_token
from kubesandbox.watch import WatchOptions, WatchStream
from kubesandbox.wire import Request, Response, json_response, negotiate, text_response
from kubesandbox.writes import Writer
from yurthub.errors import MethodNotAllowed
from yurthub.kube.accept import PROTOBUF
from yurthub.kube.accept import negotiate as served_media
from yurthub.kube.patch import decode
from yurthub.kube.resources import ResourceType


class Api:
    """Discovery, health and the resource verbs over one store."""

    def __init__(self, store: Store, registry: Registry, *, bookmark_interval: float = 60.0,
                 watch_timeout: float = 1800.0,
                 server_address: Callable[[], str] = lambda: "127.0.0.1:0",
                 signer: TokenSigner | None = None) -> None:
        self.store = store
        self.signer = signer or TokenSigner()
        self.registry = registry
        self.reader = Reader(store, registry)
        self.writer = Writer(store, registry, self.reader)
        self.tables = Tables(store, registry, self.reader)
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.server_address = server_address

    def handle(self, req: Request, is_closed: Callable[[], bool] = lambda: False) -> Response:
        if req.path == "/openapi/v3" or req.path.startswith("/openapi/v3/"):
            negotiate(req.headers.get("Accept"))
            return json_response(openapi.document(self.registry, req.path))
        r = route(req.method, req.path, req.query)
        user = req.user or ADMIN
        if r.doc != "health":
            authorize(user, r)
        if r.doc == "health":
            return text_response("ok")
        negotiate(req.headers.get("Accept"))
        if r.is_discovery:
            if req.method not in ("GET", "HEAD"):
                raise MethodNotAllowed(NOT_ALLOWED)
            return self._discovery(r)
        if r.group == "" and r.resource == "serviceaccounts" and r.subresource == "token":
            if r.verb != "create":
                raise MethodNotAllowed(NOT_ALLOWED)
            return create_token(self.store, self.signer, r, req, user)
        rt = resolve(self.registry, r)
        if r.verb in ("get", "list", "watch") and not r.subresource:
            table = table_request(req)
            if table is not None:
                if r.verb == "get":
                    return self.tables.get(rt, r, req, table)
                if r.verb == "list":
                    return self.tables.list(rt, r, req, table)
                resp = self.watch(rt, r, req, is_closed)
                assert resp.stream is not None
                resp.stream = self.tables.watch(rt, req, table, resp.stream)
                return resp
            partial = metadata.metadata_request(req, r.verb)
            if partial is not None:
                if r.verb == "watch":
                    resp = self.watch(rt, r, req, is_closed)
                    assert resp.stream is not None
                    resp.stream = metadata.watch(resp.stream, partial)
                    return resp
                read = self.reader.read_one if r.verb == "get" else None
                return metadata.answer(read(rt, r) if read is not None
                                       else self.reader.read_list(rt, r, req), partial)
        if r.verb == "get":
            return _as_asked(self.reader.read_one(rt, r), req)
        if r.verb == "list":
            return _as_asked(self.reader.read_list(rt, r, req), req)
        if r.verb == "watch":
            return self.watch(rt, r, req, is_closed)
        if r.verb == "create":
            if (rt.group, rt.resource) == ("certificates.k8s.io", "certificatesigningrequests"):
                self._admit_csr(req, user)
            return self.writer.create(rt, r, req)
        if r.verb == "update":
            return self.writer.update(rt, r, req)
        if r.verb == "patch":
            return self.writer.patch(rt, r, req)
        if r.verb == "delete":
            return self.writer.delete(rt, r, req)
        return self.writer.deletecollection(rt, r, req)

    @staticmethod
    def _admit_csr(req: Request, user: Any) -> None:
        try:
            obj = decode(req.body)
        except ValueError:
            return  # the writer answers a body that is not JSON
        if isinstance(obj, dict):
            req.body = json.dumps(certificates.admit(obj, user)).encode()

    def _discovery(self, r: Route) -> Response:
        if r.doc == "version":
            return json_response(discovery.version_document())
        if r.doc == "api":
            return json_response(discovery.api_versions_document(self.server_address()))
        if r.doc == "apis":
            return json_response(discovery.api_group_list_document(self.registry))
        if r.doc == "group":
            return json_response(discovery.api_group_document(self.registry, r.group))
        return json_response(discovery.resource_list_document(self.registry, r.group,
                                                              r.version))

    def watch(self, rt: ResourceType, r: Route, req: Request,
              is_closed: Callable[[], bool]) -> Response:
        decode_options(req)
        check_options(req, watch=True)
        send_initial = req.flag("sendInitialEvents") \
            if req.param("sendInitialEvents") is not None else None
        opts = WatchOptions(
            resource_version=req.param("resourceVersion") or "",
            bookmarks=req.flag("allowWatchBookmarks"),
            timeout=float(req.int_param("timeoutSeconds") or 0),
            send_initial_events=send_initial,
        )
        stream = WatchStream(self.store, self.reader, rt, Selection.of(r, req, rt), opts,
                             bookmark_interval=self.bookmark_interval,
                             max_timeout=self.watch_timeout, is_closed=is_closed)
        return Response(200, stream=iter(stream))


def _as_asked(resp: Response, req: Request) -> Response:
    """A get or list answered in protobuf when the client prefers it (client-go asks
    ``application/vnd.kubernetes.protobuf, application/json``) and the kind is in the
    sandbox's protobuf table; JSON otherwise, which such a client also accepts."""
    n = served_media(req.headers.get("Accept"))
    if n is None or n.media_type != PROTOBUF or n.transform is not None or resp.status != 200:
        return resp
    try:
        data = protobuf.encode(json.loads(b"".join(resp.body)))
    except protobuf.NotEncodable:
        return resp
    return Response(resp.status, [data], PROTOBUF, resp.headers)
