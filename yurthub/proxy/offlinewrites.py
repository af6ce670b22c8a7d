"""Writes while the cloud is away: this node's own truth applied to the cache.

The Node and its status, this node's pods' status and kubelet's Lease are applied to the
cache (updates and the three patch types, within kube-apiserver's bounds) and answered with
the object as it now is, so the offline view follows the node; Events are accepted with 201
and dropped; kubelet's TokenRequests are answered by proxy/tokens.py; any other write gets
503.  Nothing written here is claimed to have reached the
cloud (a ``Warning: 299`` says so).  ``LocalProxy`` routes to it; the commit itself is the
cache writer's (``CacheManager.write_local``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from yurthub.cache.manager import CacheManager
from yurthub.config import Config
from yurthub.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    InvalidKeyError,
    LocalWriteError,
    NestingTooDeep,
    NotFound,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from yurthub.health import LEASE_NAMESPACE
from yurthub.kube import patch as kpatch
from yurthub.kube import protoobjects
from yurthub.kube.accept import PROTOBUF
from yurthub.kube.jsondepth import check_depth
from yurthub.kube.naming import check_name, check_path_name, check_type, ensure_namespace
from yurthub.kube.patchlimits import (
    apply_json_patch,
    check_json_patch,
    check_merge_work,
    decode_patch,
)
from yurthub.kube.requestinfo import RequestInfo
from yurthub.kube.resources import known_kind
from yurthub.proxy.context import BUFFERED_BODY_LIMIT, RequestContext
from yurthub.proxy.tokens import KeptTokens

JSON = "application/json"
_PATCH_TYPES = (kpatch.MERGE_PATCH, kpatch.STRATEGIC_MERGE_PATCH, kpatch.JSON_PATCH)
# What kubelet's registration is read for: a Node's metadata (its spec and status skipped).
_NODE_NAME: dict[tuple[str, str], protoobjects.Schema] = {
    ("v1", "Node"): {1: ("metadata", "m", protoobjects.META)}}


class OfflineWrites:
    """The writes the cache takes while the cloud is away, for ``LocalProxy``."""

    def __init__(self, cfg: Config, cache: CacheManager,
                 tokens: KeptTokens | None = None) -> None:
        self.cfg = cfg
        self.cache = cache
        self.reader = cache.reader
        self.tokens = tokens

    def takes(self, ctx: RequestContext) -> bool:
        """A write the cache applies while the cloud is away (this node's own truth, node
        events), whose body is at hand: after a connect failure nothing reached the cloud,
        so it is answered as it would be a moment later, once the cloud is seen unhealthy."""
        info = ctx.info
        if not info.is_resource_request or (ctx.has_body() and not ctx.body_buffered):
            return False
        if info.dry_run and info.verb != "create":
            return False  # _refuse_dry_run
        if info.verb in ("update", "patch"):
            return self._owned(ctx)
        if info.verb == "create":
            return self.is_kubelet_lease(ctx) or (info.resource == "events"
                                                  and not info.subresource) \
                or (self.tokens is not None and self.tokens.applies(ctx)) \
                or self.is_kubelet_registration(ctx)
        return False

    def is_kubelet_registration(self, ctx: RequestContext) -> bool:
        """kubelet creating a Node (its registration: create, on 409 get and patch)."""
        info = ctx.info
        return (ctx.caller.kubelet and info.verb == "create" and info.api_group == ""
                and info.resource == "nodes" and not info.subresource)

    def is_kubelet_lease(self, ctx: RequestContext) -> bool:
        info = ctx.info
        return (ctx.caller.kubelet and info.is_resource_request
                and info.api_group == "coordination.k8s.io" and info.resource == "leases"
                and info.namespace == LEASE_NAMESPACE
                and info.name in ("", self.cfg.node_name))

    def created_name(self, ctx: RequestContext) -> str | None:
        """The name a small create body gives its object (None: not readable as one)."""
        length = ctx.content_length
        if length is None or length > BUFFERED_BODY_LIMIT:
            return None  # a Lease is small; a big or chunked body streams to the cloud
        try:
            md = _decode(ctx.read_body(BUFFERED_BODY_LIMIT), ctx).get("metadata") or {}
            name = md.get("name")
        except (ValueError, AttributeError, ApiError):
            return None
        return name if isinstance(name, str) else None

    def create(self, ctx: RequestContext) -> Response:
        info = ctx.info
        if self.tokens is not None and self.tokens.applies(ctx):
            return self.tokens.answer(ctx)  # kubelet's ServiceAccount token (tokens.py)
        body = ctx.read_body()
        if self.is_kubelet_lease(ctx):
            _refuse_dry_run(ctx)
            obj = _decode(body, ctx)
            _check_type(obj, info)
            ensure_namespace(obj, info.namespace)
            if obj.get("metadata", {}).get("name") != self.cfg.node_name:
                raise ServiceUnavailable(_no_writes(ctx), details={"retryAfterSeconds": 5})
            return self._commit(ctx, self.cfg.node_name, lambda _old: obj, status=201)
        if self.is_kubelet_registration(ctx):
            self._registered(ctx, body)
        if info.resource == "events" and not info.subresource:
            # Accepted and dropped: node events are advisory and the cloud is away.  The
            # answer is the event as sent, labelled as it came (client-go sends protobuf).
            media = PROTOBUF if _is_protobuf(ctx) else JSON
            return Response(body, status=201, content_type=media,
                            headers=[("Warning", '299 - "yurthub: the cloud is unreachable; '
                                      'this event was not recorded"')])
        raise ServiceUnavailable(_no_writes(ctx), details={"retryAfterSeconds": 5})

    def _registered(self, ctx: RequestContext, body: bytes) -> None:
        """Raise the cloud's 409 for kubelet's registration of this node when its Node is
        cached: only the cloud put it there, so the cloud has it (kubelet then gets it and
        patches its status, both answered here).  Else return: 503 like any write."""
        if _is_protobuf(ctx):  # kubelet's default: only the Node's name is read
            try:
                obj = protoobjects.decode_object(body, _NODE_NAME, strict=False)
            except (protoobjects.Unknown, ValueError):
                return
        else:
            obj = _decode(body, ctx)
            _check_type(obj, ctx.info)
        node = self.cfg.node_name
        if (obj.get("metadata") or {}).get("name") != node:
            return
        target = self.cache.read_target(ctx.info, ctx.component, ctx.accept)
        if target is None:
            return
        try:
            self.reader.get(target[0], "", node)
        except (ApiError, InvalidKeyError):
            return  # not cached (or not readable): the cloud's answer is not known
        raise AlreadyExists(f'nodes "{node}" already exists',
                            details={"name": node, "kind": "nodes"})

    def write(self, ctx: RequestContext) -> Response:
        info = ctx.info
        check_path_name(info.name)
        _refuse_dry_run(ctx)
        if not self._owned(ctx):
            raise ServiceUnavailable(_no_writes(ctx), details={"retryAfterSeconds": 5})
        body = ctx.read_body()
        status_only = info.subresource == "status"
        if info.verb == "update":
            new = _decode(body, ctx)
            _check_type(new, info)
            check_name(new, info.name, info.namespace)
            ensure_namespace(new, info.namespace)

            def change(old: dict[str, Any] | None) -> dict[str, Any]:
                assert old is not None  # write_local answers 404 for a missing object
                if status_only:
                    return {**old, "status": new.get("status", old.get("status"))}
                out = dict(new)
                out.setdefault("metadata", {})["resourceVersion"] = \
                    (old.get("metadata") or {}).get("resourceVersion", "")
                return out
        else:
            media = (ctx.request.mimetype or "").lower()
            if media not in _PATCH_TYPES:
                raise UnsupportedMediaType(
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join(_PATCH_TYPES)}")
            doc = decode_patch(body, media)  # 400 before any object is read
            check_json_patch(doc if media == kpatch.JSON_PATCH else None)

            def change(old: dict[str, Any] | None) -> dict[str, Any]:
                assert old is not None
                out = _patched(old, body, doc, media)
                _check_type(out, info)
                ensure_namespace(out, info.namespace)
                check_name(out, info.name, info.namespace)
                if status_only:
                    out = {**old, "status": out.get("status", old.get("status"))}
                out.setdefault("metadata", {})["resourceVersion"] = \
                    (old.get("metadata") or {}).get("resourceVersion", "")
                return out
        kept = _spec_kept(change) if info.resource == "nodes" and not status_only else change
        return self._commit(ctx, info.name, kept, status=200)

    def _owned(self, ctx: RequestContext) -> bool:
        """This node's own objects: its Node, its pods' status, its Lease."""
        info = ctx.info
        node = self.cfg.node_name
        if info.api_group == "" and info.resource == "nodes":
            return info.name == node
        if info.api_group == "" and info.resource == "pods" and info.subresource == "status":
            target = self.cache.read_target(info, ctx.component, ctx.accept)
            if target is None:
                return False
            try:
                raw, _ = self.reader.get(target[0], info.namespace, info.name)
            except (NotFound, InvalidKeyError):
                return False
            return bool(_decode(raw).get("spec", {}).get("nodeName") == node)
        return self.is_kubelet_lease(ctx) and info.name == node

    def _commit(self, ctx: RequestContext, name: str, change: Any, status: int) -> Response:
        info = ctx.info
        try:
            body = self.cache.write_local(info, ctx.component, ctx.accept, name, change)
        except LocalWriteError as e:
            raise ServiceUnavailable(f"cannot apply {info.verb} to the local cache: {e}",
                                     details={"retryAfterSeconds": 5}) from e
        if self.is_kubelet_lease(ctx):
            warning = ('299 - "yurthub: kubelet\'s Lease is kept by the hub, which renews it in '
                       'the cloud while kubelet is alive"')
        else:
            warning = ('299 - "yurthub: the cloud is unreachable; applied to the local cache '
                       'only, not sent to the cloud"')
        return Response(body, status=status, content_type=JSON, headers=[("Warning", warning)])


def _spec_kept(change: Callable[[dict[str, Any] | None], dict[str, Any]]
               ) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
    """``change`` of the Node, refused (503) if it changes the Node's spec.

    The spec (unschedulable, taints, podCIDR) is the cloud's decision, not the node's truth:
    kubelet writes it only when it registers, never as a status.  Applied to the cache
    alone, ``kubectl cordon`` printed "cordoned" and exited 0 while the cloud went on
    scheduling to the node, and the cordon vanished at the next list from the cloud."""
    def guarded(old: dict[str, Any] | None) -> dict[str, Any]:
        out = change(old)
        if out.get("spec") != (old or {}).get("spec"):
            raise ServiceUnavailable(
                "the cloud is unreachable: a change of the Node's spec (cordon, taints) is "
                "the cloud's to make and cannot be accepted by the yurthub cache; retry when "
                "the cloud is back", details={"retryAfterSeconds": 5})
        return out
    return guarded


def _check_type(obj: dict[str, Any], info: RequestInfo) -> None:
    """The body's (or patched object's) apiVersion and kind are the resource's (400)."""
    known = known_kind(info.api_group, info.resource)
    check_type(obj, info.group_version, known[0] if known else None)


def _patched(old: dict[str, Any], body: bytes, doc: Any, media: str) -> dict[str, Any]:
    """``old`` with the PATCH ``body`` (decoded: ``doc``) applied, within kube-apiserver's
    bounds; what a patch means and how it fails is ``kube.patch.apply_patch``'s."""
    if media == kpatch.JSON_PATCH:
        out = apply_json_patch(old, doc)  # its copies measured before they are made
        if isinstance(out, dict):
            return out
    elif media == kpatch.STRATEGIC_MERGE_PATCH:
        check_merge_work(old, doc)
    return kpatch.apply_patch(old, body, media, str(old.get("kind") or "") or None)


def _is_protobuf(ctx: RequestContext) -> bool:
    return (ctx.request.mimetype or "").lower() == PROTOBUF


def _decode(body: bytes, ctx: RequestContext | None = None) -> dict[str, Any]:
    """The object a write's body holds: JSON, or protobuf (client-go's default, as kubelet
    sends its Lease) of the kinds ``kube.protoobjects`` reads (415 for the others)."""
    if ctx is not None and _is_protobuf(ctx):
        try:
            return protoobjects.decode_object(body)
        except protoobjects.Unknown:
            raise UnsupportedMediaType(
                f"the yurthub cache reads protobuf {ctx.info.resource} bodies only of "
                f"{', '.join(f'{v} {k}' for v, k in protoobjects.HUB_SCHEMAS)}; send "
                "application/json") from None
        except ValueError as e:
            raise BadRequest(f"the protobuf body does not decode: {e}") from None
    try:
        check_depth(body)
        obj = json.loads(body)
    except NestingTooDeep as e:
        raise BadRequest(str(e)) from None
    except ValueError as e:
        raise BadRequest(f"the request body is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadRequest("the request body is not a JSON object")
    return obj


def _refuse_dry_run(ctx: RequestContext) -> None:
    """A dry run (``dryRun=All``) must change nothing, and what the cloud would answer it
    (its admission, its validation, a 422 for another value) is not the cache's to say:
    503, never the write applied to the cache as if it were real."""
    if ctx.info.dry_run:
        raise ServiceUnavailable(
            f"the cloud is unreachable: a dry run of {ctx.info.verb} cannot be answered by "
            "the yurthub cache; retry when the cloud is back", details={"retryAfterSeconds": 5})


def _no_writes(ctx: RequestContext) -> str:
    what = ctx.info.resource + (f"/{ctx.info.subresource}" if ctx.info.subresource else "")
    return (f"the cloud is unreachable: {ctx.info.verb} of {what} cannot be accepted by the "
            "yurthub cache (only this node's own status is); retry when the cloud is back")
