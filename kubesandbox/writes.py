"""Writing resources: create, update, patch, delete and deletecollection, as kube-apiserver does.

Every write runs under the store's lock from reading the current object to storing the new
one (kube-apiserver's GuaranteedUpdate), so preconditions (resourceVersion, uid) are exact.
The server owns uid, creationTimestamp, resourceVersion and generation (bumped when anything
outside metadata and status changes); a status subresource writes only status (and, for
built-in types, labels and annotations); an update that changes nothing writes nothing.
Objects with finalizers get a deletionTimestamp and go when the last finalizer does.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from typing import Any

from kubesandbox import crds, protobuf
from kubesandbox.discovery import Registry
from kubesandbox.objects import (
    Entry,
    apply_create_defaults,
    generate_name,
    make_entry,
    new_uid,
    now_rfc3339,
    reset_status_on_create,
    validate_metadata,
)
from kubesandbox.rest import Reader, Selection, details, not_found
from kubesandbox.routing import Route
from kubesandbox.store import Store
from kubesandbox.wire import Request, Response, json_response
from yurthub.errors import AlreadyExists, BadRequest, Conflict, NotFound, UnsupportedMediaType
from yurthub.kube import patch as kpatch
from yurthub.kube.patchlimits import check_json_patch
from yurthub.kube.resources import ResourceType

# Types whose delete answers with the deleted object (ReturnDeletedObject in kube-apiserver);
# the others answer with a Success Status.
_RETURN_DELETED = frozenset({("", "pods"), ("", "services"), ("", "serviceaccounts"),
                             ("", "namespaces")})
_SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                "deletionGracePeriodSeconds")


def _summary(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    return text[:30] + " ..." if len(text) > 30 else text


def decode_object(body: bytes, rt: ResourceType, custom: bool,
                  content_type: str = "application/json") -> dict[str, Any]:
    """The request body as an object of ``rt``; 400 in kube-apiserver's words otherwise."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == protobuf.PROTOBUF and not custom:
        return _checked(protobuf.decode_object(body), body, rt, custom)
    if media not in ("", "application/json", "*/*"):
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/vnd.kubernetes.protobuf")
    try:
        obj = kpatch.decode(body)
    except ValueError as e:
        raise BadRequest(f"the object provided is unrecognized (must be of type {rt.kind}): "
                         f"couldn't get version/kind; json parse error: {e} "
                         f"({_summary(body)})") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"the object provided is unrecognized (must be of type {rt.kind}): "
                         f"couldn't get version/kind; json parse error: json: cannot unmarshal "
                         f"{type(obj).__name__} into Go value of type struct "
                         f"({_summary(body)})")
    return _checked(obj, body, rt, custom)


def _checked(obj: dict[str, Any], body: bytes, rt: ResourceType,
             custom: bool) -> dict[str, Any]:
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if custom and not kind:
        raise BadRequest(f"Object 'Kind' is missing in '{body.decode('utf-8', 'replace')}'")
    if (kind and kind != rt.kind) or (api_version and api_version != rt.group_version):
        version = (api_version or "").rpartition("/")[2]
        raise BadRequest(f'{kind or rt.kind} in version "{version}" cannot be handled as a '
                         f"{rt.kind}: no kind \"{kind}\" is registered for version "
                         f'"{api_version}" in scheme for this resource')
    if not isinstance(obj.get("metadata", {}), dict):
        raise BadRequest(f"the object provided is unrecognized (must be of type {rt.kind}): "
                         "metadata must be an object")
    return obj


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind",
                                                       "apiVersion")}


class Writer:
    """The write verbs against one store and registry."""

    def __init__(self, store: Store, registry: Registry, reader: Reader) -> None:
        self.store = store
        self.registry = registry
        self.reader = reader
        self._ips = (str(ipaddress.IPv4Address("10.96.0.0") + i) for i in itertools.count(10))

    def allocate_ip(self) -> str:
        return next(self._ips)

    # -- the HTTP verbs ---------------------------------------------------------------------

    def create(self, rt: ResourceType, route: Route, req: Request) -> Response:
        custom = self.registry.is_custom(rt)
        obj = decode_object(req.body, rt, custom, req.content_type)
        reset_status_on_create(obj, rt, custom)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != route.namespace:
                raise BadRequest("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
            meta["namespace"] = route.namespace
        entry = self.create_object(rt, obj, dry_run=req.param("dryRun") == "All")
        return Response(201, [self.reader.view(entry, rt)])

    def update(self, rt: ResourceType, route: Route, req: Request) -> Response:
        obj = decode_object(req.body, rt, self.registry.is_custom(rt), req.content_type)
        self._check_identity(rt, route, obj)
        with self.store.lock:
            current = self.store.get(rt, route.namespace, route.name)
            if current is None:
                raise not_found(rt, route.name)
            entry = self.update_object(rt, current, obj, route.subresource,
                                       dry_run=req.param("dryRun") == "All")
        return Response(200, [self.reader.view(entry, rt)])

    def patch(self, rt: ResourceType, route: Route, req: Request) -> Response:
        schema = self.registry.patch_schema(rt)
        kind = None if self.registry.is_custom(rt) and schema is None else rt.kind
        with self.store.lock:
            current = self.store.get(rt, route.namespace, route.name)
            if current is None:
                # kube-apiserver checks the media type before it looks the object up
                kpatch.apply_patch({}, b"{}", req.content_type, kind, schema=schema)
                raise not_found(rt, route.name)
            _check_operations(req)
            obj = kpatch.apply_patch(current.obj(), req.body, req.content_type, kind,
                                     schema=schema)
            self._check_identity(rt, route, obj)
            entry = self.update_object(rt, current, obj, route.subresource,
                                       dry_run=req.param("dryRun") == "All")
        return Response(200, [self.reader.view(entry, rt)])

    def delete(self, rt: ResourceType, route: Route, req: Request) -> Response:
        options = self._delete_options(req.body)
        with self.store.lock:
            current = self.store.get(rt, route.namespace, route.name)
            if current is None:
                raise not_found(rt, route.name)
            self._check_preconditions(rt, current, options.get("preconditions") or {})
            if _dry_run(req, options):
                return Response(200, [self.reader.view(current, rt)])
            entry, gone = self.delete_object(rt, current)
        if not gone:
            return Response(202, [self.reader.view(entry, rt)])
        if (rt.group, rt.resource) in _RETURN_DELETED:
            return Response(200, [self.reader.view(entry, rt)])
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success",
                              "details": details(rt, route.name, uid=current.uid)})

    def deletecollection(self, rt: ResourceType, route: Route, req: Request) -> Response:
        sel = Selection.of(route, req, rt)
        dry_run = _dry_run(req, self._delete_options(req.body))
        results: list[Entry] = []
        with self.store.lock:
            for entry in self.store.page(rt, rv=None, namespace=sel.namespace or None,
                                         match=sel.matcher()).items:
                results.append(entry if dry_run else self.delete_object(rt, entry)[0])
            rv = self.store.rv
        return self.reader.render_list(rt, rv, results, None)

    # -- the operations (also used by the Python API) -------------------------------------

    def create_object(self, rt: ResourceType, obj: dict[str, Any], *,
                      dry_run: bool = False) -> Entry:
        obj = dict(obj)
        obj["kind"], obj["apiVersion"] = rt.kind, self.store.collection(rt).rt.group_version
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        if meta.get("resourceVersion"):
            raise BadRequest("resourceVersion should not be set on objects to be created")
        if not rt.namespaced:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(meta["generateName"])
        validate_metadata(rt, obj)
        if rt.resource == "customresourcedefinitions" and rt.group == crds.GROUP:
            crds.validate(rt, obj)
            crds.set_status(obj, now_rfc3339())
        for key in ("selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta.update(uid=new_uid(), creationTimestamp=now_rfc3339(), generation=1)
        apply_create_defaults(rt, obj, self.allocate_ip)
        with self.store.lock:
            if rt.namespaced:
                self._require_namespace(meta["namespace"])
            if self.store.get(rt, meta.get("namespace", ""), meta["name"]) is not None:
                raise AlreadyExists(f'{self._qualified(rt)} "{meta["name"]}" already exists',
                                    details=details(rt, meta["name"]))
            if dry_run:
                return Entry(meta.get("namespace", ""), meta["name"], 0,
                             json.dumps(obj).encode(), 0, {}, {})
            entry = self.store.put(rt, obj, None)
            if rt.resource == "customresourcedefinitions" and rt.group == crds.GROUP:
                for t in self.registry.add_crd(obj)[:1]:
                    self.store.collection(t)
        return entry

    def update_object(self, rt: ResourceType, current: Entry, obj: dict[str, Any],
                      subresource: str = "", *, dry_run: bool = False) -> Entry:
        """Replace ``current`` with ``obj`` (status only, for the status subresource)."""
        new_rv = (obj.get("metadata") or {}).get("resourceVersion")
        if new_rv and new_rv != str(current.rv):
            raise Conflict(f'Operation cannot be fulfilled on {self._qualified(rt)} '
                           f'"{current.name}": the object has been modified; please apply your '
                           "changes to the latest version and try again",
                           details=details(rt, current.name))
        new_uid_ = (obj.get("metadata") or {}).get("uid")
        if new_uid_ and new_uid_ != current.uid:
            raise Conflict(f"Precondition failed: UID in precondition: {new_uid_}, UID in "
                           f"object meta: {current.uid}", details=details(rt, current.name))
        old = current.obj()
        new = self._merged(rt, old, obj, subresource)
        validate_metadata(rt, new)
        if rt.resource == "customresourcedefinitions" and rt.group == crds.GROUP:
            crds.validate(rt, new)
        if kpatch.json_equal(new, old):
            return current
        if dry_run:  # the object as the update would leave it, stored nowhere
            new.setdefault("metadata", {})["resourceVersion"] = str(current.rv)
            return make_entry(new, self.store.collection(rt).rt, current.rv)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.put(rt, new, current)
            return self.delete_object(rt, self.store.get(rt, current.namespace, current.name)
                                      or current)[0]
        entry = self.store.put(rt, new, current)
        if rt.resource == "customresourcedefinitions" and rt.group == crds.GROUP:
            self.registry.add_crd(new)
        return entry

    def delete_object(self, rt: ResourceType, current: Entry) -> tuple[Entry, bool]:
        """Delete now, or mark for deletion when finalizers remain: (entry, deleted now)."""
        with self.store.lock:
            obj = current.obj()
            meta = obj.setdefault("metadata", {})
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return current, False
                meta["deletionTimestamp"] = now_rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
                return self.store.put(rt, obj, current), False
            if rt.group == "" and rt.resource == "namespaces":
                # What the namespace controller does, at once: Terminating, emptied, gone.
                meta["deletionTimestamp"] = now_rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
                obj.setdefault("status", {})["phase"] = "Terminating"
                current = self.store.put(rt, obj, current)
                self._empty_namespace(current.name)
            if rt.resource == "customresourcedefinitions" and rt.group == crds.GROUP:
                for t in self.registry.remove_crd(current.name)[:1]:
                    self.store.drop_collection(t)
            self.store.remove(rt, current)
            return current, True

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _qualified(rt: ResourceType) -> str:
        return f"{rt.resource}.{rt.group}" if rt.group else rt.resource

    def _merged(self, rt: ResourceType, old: dict[str, Any], obj: dict[str, Any],
                subresource: str) -> dict[str, Any]:
        if subresource == "approval":
            # Only the Approved/Denied conditions change through .../approval.
            new = dict(old)
            status = new["status"] = dict(old.get("status") or {})
            status["conditions"] = (obj.get("status") or {}).get("conditions") or []
            return new
        if subresource == "status":
            new = dict(old)
            new["status"] = obj.get("status", {})
            if not self.registry.is_custom(rt):
                meta = new["metadata"] = dict(old.get("metadata") or {})
                for key in ("labels", "annotations"):
                    value = (obj.get("metadata") or {}).get(key)
                    if value is None:
                        meta.pop(key, None)
                    else:
                        meta[key] = value
            return new
        new = dict(obj)
        new["kind"], new["apiVersion"] = old.get("kind"), old.get("apiVersion")
        meta = new["metadata"] = dict(obj.get("metadata") or {})
        old_meta = old.get("metadata") or {}
        meta["name"] = old_meta.get("name")
        if "namespace" in old_meta:
            meta["namespace"] = old_meta["namespace"]
        for key in _SERVER_META:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if "status" in rt.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if not kpatch.json_equal(_spec_of(new), _spec_of(old)):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        return new

    def _check_identity(self, rt: ResourceType, route: Route, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        if name != route.name:
            raise BadRequest(f"the name of the object ({name}) does not match the name on the "
                             f"URL ({route.name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != route.namespace:
            raise BadRequest("the namespace of the provided object does not match the namespace "
                             "sent on the request")

    @staticmethod
    def _delete_options(body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            options = kpatch.decode(body)
        except ValueError as e:
            raise BadRequest(f"the object provided is unrecognized (must be of type "
                             f"DeleteOptions): {e} ({_summary(body)})") from None
        return options if isinstance(options, dict) else {}

    def _check_preconditions(self, rt: ResourceType, current: Entry,
                             pre: dict[str, Any]) -> None:
        if pre.get("uid") and pre["uid"] != current.uid:
            raise Conflict(f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                           f"object meta: {current.uid}", details=details(rt, current.name))
        if pre.get("resourceVersion") and pre["resourceVersion"] != str(current.rv):
            raise Conflict(f"Precondition failed: ResourceVersion in precondition: "
                           f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                           f"{current.rv}", details=details(rt, current.name))

    def _require_namespace(self, namespace: str) -> None:
        ns_type = self.registry.lookup("", "v1", "namespaces")
        if ns_type is not None and self.store.get(ns_type, "", namespace) is None:
            raise NotFound(f'namespaces "{namespace}" not found',
                           details={"name": namespace, "kind": "namespaces"})

    def _empty_namespace(self, namespace: str) -> None:
        seen = set()
        for t in self.registry.all():
            if not t.namespaced or (t.group, t.resource) in seen:
                continue
            seen.add((t.group, t.resource))
            storage = self.store.collection(t).rt
            for entry in self.store.entries(storage, namespace):
                self.store.remove(storage, entry)


def _check_operations(req: Request) -> None:
    """kube-apiserver applies at most 10,000 operations of a JSON patch (413 beyond)."""
    if req.content_type.split(";", 1)[0].strip().lower() != kpatch.JSON_PATCH:
        return
    try:
        ops = kpatch.decode(req.body)
    except ValueError:
        return  # apply_patch answers it
    check_json_patch(ops)


def _dry_run(req: Request, options: dict[str, Any]) -> bool:
    """A delete asked to change nothing: ``?dryRun=All``, or DeleteOptions' ``dryRun`` in
    the body, which is where kubectl's ``delete --dry-run=server`` puts it."""
    body = options.get("dryRun")
    return req.param("dryRun") == "All" or (isinstance(body, list) and "All" in body)
