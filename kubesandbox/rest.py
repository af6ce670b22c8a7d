"""Reading resources: get and list, with kube-apiserver's resourceVersion and paging rules.

A list is picked under the store's lock (cheap: entries are pre-rendered) and its body is
joined from the entries' bytes afterwards, so a 10,000-pod list costs one join, not 10,000
``json.dumps``.  ``continue`` tokens encode the list's revision and the key to resume after,
as kube-apiserver's do; a token older than the history is ``410 Expired``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubesandbox.discovery import Registry
from kubesandbox.objects import Entry, render
from kubesandbox.routing import NOT_ALLOWED, NOT_FOUND, Route
from kubesandbox.store import Page, Store
from kubesandbox.wire import Request, Response
from yurthub.errors import BadRequest, Gone, Invalid, MethodNotAllowed, NotFound
from yurthub.kube import fields as kfields
from yurthub.kube import labels as klabels
from yurthub.kube.listoptions import parse_resource_version
from yurthub.kube.listoptions import too_large_resource_version as too_large
from yurthub.kube.resources import ResourceType
from yurthub.kube.status import not_found_message

CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list.")
LATEST = -1  # a continue token's resourceVersion (any < 0): "at the newest" (inconsistent)
TOO_LARGE_WAIT = 3.0  # kube-apiserver waits this long for a future resourceVersion


def details(rt: ResourceType, name: str, **extra: Any) -> dict[str, Any]:
    """``StatusDetails`` naming an object as kube-apiserver does (no empty group)."""
    out: dict[str, Any] = {"name": name}
    if rt.group:
        out["group"] = rt.group
    out["kind"] = rt.resource
    out.update(extra)
    return out


def not_found(rt: ResourceType, name: str) -> NotFound:
    return NotFound(not_found_message(rt.group, rt.resource, name), details=details(rt, name))


def parse_rv(value: str) -> int:
    """A resourceVersion as kube-apiserver's storage reads it (strconv.ParseUint): decimal
    digits only (no sign, no space) within uint64; else 400."""
    return parse_resource_version(value)


def encode_continue(rv: int, start: str) -> str:
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start},
                       separators=(",", ":"))
    return base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        rv, start = int(data["rv"]), str(data["start"])
        if rv == 0:
            raise ValueError("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        return rv, start
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise BadRequest(f"continue key is not valid: {e}") from None


def decode_options(req: Request) -> None:
    """The 400 of an integer option that does not decode: kube-apiserver decodes all of
    ListOptions for a list and a watch alike (timeoutSeconds before limit), before it
    parses the selectors or validates the options."""
    req.int_param("timeoutSeconds")
    req.int_param("limit")


def check_options(req: Request, watch: bool) -> None:
    """422 Invalid (kind ListOptions) with every problem apimachinery's ValidateListOptions
    finds in a list's or watch's options (the WatchList feature on)."""
    match = req.param("resourceVersionMatch") or ""
    initial = req.param("sendInitialEvents")
    rv, token = req.param("resourceVersion") or "", req.param("continue") or ""
    problems: list[tuple[str, str, str]] = []

    def forbid(detail: str, field: str = "resourceVersionMatch") -> None:
        problems.append((field, "FieldValueForbidden", f"Forbidden: {detail}"))

    def unsupported(values: str) -> None:
        problems.append(("resourceVersionMatch", "FieldValueNotSupported",
                         f'Unsupported value: "{match}": supported values: {values}'))

    if watch:
        if initial is not None and match != "NotOlderThan":
            forbid("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
        if match and initial is None:
            forbid("resourceVersionMatch is forbidden for watch unless sendInitialEvents is "
                   "provided")
        if match and match != "NotOlderThan":
            unsupported('"NotOlderThan"')
        if match and token:
            forbid("resourceVersionMatch is forbidden when continue is provided")
    else:
        if match and not rv:
            forbid("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if match and token:
            forbid("resourceVersionMatch is forbidden when continue is provided")
        if match and match not in ("Exact", "NotOlderThan"):
            unsupported('"Exact", "NotOlderThan", ""')
        if match == "Exact" and rv == "0":
            forbid('resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
        if initial is not None:
            forbid("sendInitialEvents is forbidden for list", "sendInitialEvents")
    if not problems:
        return
    texts: list[str] = []
    for field, _, detail in problems:
        if f"{field}: {detail}" not in texts:
            texts.append(f"{field}: {detail}")
    said = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    raise Invalid(f'ListOptions.meta.k8s.io "" is invalid: {said}',
                  details={"group": "meta.k8s.io", "kind": "ListOptions",
                           "causes": [{"reason": reason, "message": detail, "field": field}
                                      for field, reason, detail in problems]})


@dataclass
class Selection:
    """The namespace, label and field selectors of a list or watch."""

    namespace: str
    labels: klabels.Selector
    fields: kfields.Selector

    @classmethod
    def of(cls, route: Route, req: Request, rt: ResourceType) -> Selection:
        fsel = kfields.parse(req.param("fieldSelector"), rt)
        if route.name:  # a watch of one object: its selector may pin that name only
            if not fsel.empty and fsel.exact("metadata.name") != route.name:
                raise BadRequest("fieldSelector metadata.name doesn't match requested name")
            fsel = kfields.Selector(fsel.requirements | {
                kfields.Requirement("metadata.name", kfields.EQUALS, route.name)})
        return cls(route.namespace, klabels.parse(req.param("labelSelector")), fsel)

    @property
    def empty(self) -> bool:
        return self.labels.empty and self.fields.empty

    def matcher(self) -> Callable[[Entry], bool] | None:
        if self.empty:
            return None
        lsel, fsel = self.labels, self.fields
        return lambda e: lsel.matches(e.labels) and fsel.matches(e.fields)

    def matches(self, entry: Entry) -> bool:
        if self.namespace and entry.namespace != self.namespace:
            return False
        return self.labels.matches(entry.labels) and self.fields.matches(entry.fields)


class Reader:
    """The get and list verbs against one store and registry."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    def view(self, entry: Entry, rt: ResourceType) -> bytes:
        """The entry as ``rt``'s version serves it (CRDs may serve several versions)."""
        storage = self.store.collection(rt).rt
        if storage.version == rt.version:
            return entry.data
        obj = entry.obj()
        obj["apiVersion"] = rt.group_version
        return render(obj, rt.kind, rt.group_version)[0]

    def read_one(self, rt: ResourceType, route: Route) -> Response:
        entry = self.store.get(rt, route.namespace, route.name)
        if entry is None:
            raise not_found(rt, route.name)
        return Response(200, [self.view(entry, rt)])

    def read_list(self, rt: ResourceType, route: Route, req: Request) -> Response:
        page, sel, token = self.list_page(rt, route, req)
        return self.render_list(rt, page.rv, page.items, sel, token, page.remaining)

    def list_page(self, rt: ResourceType, route: Route, req: Request
                  ) -> tuple[Page, Selection, str]:
        """The page a list request selects, its selection, and the continue token to send."""
        decode_options(req)
        sel = Selection.of(route, req, rt)
        limit = req.int_param("limit") or 0
        if limit < 0:
            limit = 0
        token = req.param("continue") or ""
        rv_param = req.param("resourceVersion") or ""
        check_options(req, watch=False)
        match = req.param("resourceVersionMatch") or ""
        if token and rv_param and rv_param != "0":
            raise BadRequest("specifying resource version is not allowed when using continue")

        at: int | None = None
        start = ""
        if token:
            at, start = decode_continue(token)
            if at < 0:
                at = None  # the inconsistent token of an expired one: go on at the newest
        elif rv_param == "0":
            limit = 0  # served from the watch cache, which ignores limit
        elif rv_param:
            wanted = parse_rv(rv_param)
            if wanted > self.store.rv and not self.store.wait_for_rv(wanted, TOO_LARGE_WAIT):
                raise too_large(wanted, self.store.rv)
            if match == "Exact" or (not match and limit):
                at = wanted
        with self.store.lock:
            if at is not None and not self.store.can_serve(at):
                if token:
                    # As etcd3's store: the rest of the list at the newest version, should
                    # the client accept an inconsistent list (client-go lists again instead).
                    raise Gone(CONTINUE_EXPIRED,
                               list_meta={"continue": encode_continue(LATEST, start)})
                raise Gone("The resourceVersion for the provided list is too old.")
            page = self.store.page(rt, rv=at, namespace=sel.namespace or None,
                                   match=sel.matcher(), start=start, limit=limit)
        token = encode_continue(page.rv, page.continue_key) if page.continue_key else ""
        return page, sel, token

    def render_list(self, rt: ResourceType, rv: int, items: list[Entry], sel: Selection | None,
                    continue_token: str = "", remaining: int = 0) -> Response:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if continue_token:
            meta["continue"] = continue_token
            if sel is None or sel.empty:
                meta["remainingItemCount"] = remaining
        head = b'{"kind":%s,"apiVersion":%s,"metadata":%s,"items":[' % (
            json.dumps(rt.list_kind).encode(), json.dumps(rt.group_version).encode(),
            json.dumps(meta, separators=(",", ":")).encode())
        pieces: list[bytes | memoryview] = [head]
        custom = self.registry.is_custom(rt)
        storage_version = self.store.collection(rt).rt.version
        for i, entry in enumerate(items):
            if i:
                pieces.append(b",")
            if not custom:
                pieces.extend(entry.item())  # built-in lists omit the items' kind/apiVersion
            elif storage_version == rt.version:
                pieces.append(entry.data)
            else:
                pieces.append(self.view(entry, rt))
        pieces.append(b"]}")
        return Response(200, pieces)


def resolve(registry: Registry, route: Route) -> ResourceType:
    """The type a resource route names, or 404/405 as kube-apiserver answers."""
    rt = registry.lookup(route.group, route.version, route.resource)
    if rt is None:
        raise NotFound(NOT_FOUND)
    if route.namespace and not rt.namespaced:
        raise NotFound(NOT_FOUND)
    if rt.namespaced and not route.namespace and route.verb not in ("list", "watch"):
        raise NotFound(NOT_FOUND)  # e.g. /api/v1/pods/x: only the namespaced path exists
    if route.subresource:
        if route.subresource not in rt.subresources:
            raise NotFound(NOT_FOUND)
        if route.verb not in ("get", "update", "patch"):
            raise MethodNotAllowed(NOT_ALLOWED)
    return rt
