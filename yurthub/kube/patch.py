"""The three patch types kube-apiserver applies: merge (RFC 7386), JSON (RFC 6902), strategic.

Every function is pure: it never mutates its inputs and returns a new document.  Errors are
raised as kube-apiserver answers them: an undecodable patch is ``400 BadRequest``, a JSON patch
that does not apply is ``422 Invalid`` with kube-apiserver's generic message (the detail is
kept on the exception as ``detail``), a malformed strategic-merge directive is ``400``.
The strategic merge patch knows the merge keys of the built-in types a node uses (the
``patchStrategy``/``patchMergeKey`` tags of their Go types, tabled at the end of this module);
custom resources accept no strategic merge patch (415).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from yurthub.errors import BadRequest, Invalid, UnsupportedMediaType
from yurthub.kube.patchschema import DEFAULT_FIELD, PatchField, schema_for

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

GENERIC_INVALID = "the server rejected our request due to an error in our request"

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"


class JSONPatchFailed(Invalid):
    """A JSON patch operation that does not apply; ``detail`` says why (kube-apiserver won't)."""

    def __init__(self, detail: str) -> None:
        super().__init__(GENERIC_INVALID)
        self.detail = detail


def copy_json(value: Any) -> Any:
    """A deep copy of decoded JSON (much faster than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """Equality of decoded JSON values, where ``true`` is not ``1`` and ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def json_error_message(err: json.JSONDecodeError) -> str:
    """A Python JSON decoding error in the words of Go's encoding/json."""
    doc, pos = err.doc, err.pos
    if pos >= len(doc.rstrip()) or err.msg.startswith("Unterminated"):
        return "unexpected end of JSON input"
    ch = doc[pos]
    shown = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "'": "\\'"}.get(ch, ch)
    where = {
        "Expecting property name enclosed in double quotes":
            "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Expecting ',' delimiter": "after object key:value pair",
        "Extra data": "after top-level value",
        "Invalid control character at": "in string literal",
    }.get(err.msg, "looking for beginning of value")
    return f"invalid character '{shown}' {where}"


def decode(body: bytes | str) -> Any:
    """Decode a JSON body; a syntax error is a ValueError with Go's wording."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise ValueError(json_error_message(e)) from e
    except UnicodeDecodeError as e:
        raise ValueError("invalid character in JSON input") from e


# -- RFC 7386 -------------------------------------------------------------------------------

def apply_merge_patch(obj: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy_json(patch)
    out = {k: copy_json(v) for k, v in obj.items()} if isinstance(obj, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


# -- RFC 6902 -------------------------------------------------------------------------------

def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise JSONPatchFailed(f"path is not a string: {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise JSONPatchFailed(f"JSON pointer must be empty or start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(segment: str, size: int, *, insert: bool) -> int:
    if insert and segment == "-":  # the end of the array
        return size
    digits = segment[1:] if segment.startswith("-") else segment
    if not digits.isdigit():
        raise JSONPatchFailed(f"invalid array index: {segment!r}")
    idx = int(segment)
    if idx < 0:
        idx += size  # evanphx/json-patch accepts negative indices, as kube-apiserver does
    limit = size if insert else size - 1
    if idx < 0 or idx > limit:
        raise JSONPatchFailed(f"array index out of bounds: {segment}")
    return idx


def _parent(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for token in parts[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise JSONPatchFailed(f"missing path segment {token!r}")
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(token, len(cur), insert=False)]
        else:
            raise JSONPatchFailed(f"cannot traverse into a scalar at {token!r}")
    return cur


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    parent, last = _parent(doc, parts), parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JSONPatchFailed(f"missing key {last!r}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(last, len(parent), insert=False)]
    raise JSONPatchFailed("cannot index a scalar")


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts), parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), insert=True), value)
    else:
        raise JSONPatchFailed("cannot add to a scalar")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise JSONPatchFailed("cannot remove the whole document")
    parent, last = _parent(doc, parts), parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JSONPatchFailed(f"remove of missing key {last!r}")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(last, len(parent), insert=False)]
    else:
        raise JSONPatchFailed("cannot remove from a scalar")
    return doc


def apply_json_patch(obj: Any, patch: Any) -> Any:
    """RFC 6902: apply every operation in order, or none (422 on the first that fails)."""
    if not isinstance(patch, list):
        raise BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy_json(obj)
    for op in patch:
        if not isinstance(op, dict):
            raise BadRequest("json: cannot unmarshal non-object into Go value of type "
                             "jsonpatch.Operation")
        kind = op.get("op")
        parts = _pointer(op.get("path"))
        if kind in ("add", "replace", "test") and "value" not in op:
            raise JSONPatchFailed(f"{kind} operation has no value")
        if kind == "add":
            doc = _add(doc, parts, copy_json(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _get(doc, parts)  # must exist
            doc = _add(_remove(doc, parts), parts, copy_json(op["value"])) if parts else \
                copy_json(op["value"])
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from"))
            value = _get(doc, source)
            if kind == "move":
                if parts[:len(source)] == source and len(parts) > len(source):
                    raise JSONPatchFailed("cannot move a value into one of its children")
                doc = _remove(doc, source) if source else doc
            doc = _add(doc, parts, copy_json(value))
        elif kind == "test":
            try:
                current = _get(doc, parts)
            except JSONPatchFailed:
                if op["value"] is None:
                    continue
                raise
            if not json_equal(current, op["value"]):
                raise JSONPatchFailed(f"testing value {op.get('path')} failed")
        else:
            raise JSONPatchFailed(f"Unexpected kind: {kind}")
    return doc


# -- strategic merge patch ------------------------------------------------------------------

def apply_strategic_merge_patch(obj: Mapping[str, Any], patch: Any, kind: str) -> dict[str, Any]:
    """Kubernetes' strategic merge patch of a built-in object of ``kind``."""
    if not isinstance(patch, dict):
        raise BadRequest("json: cannot unmarshal array into Go value of type "
                         "map[string]interface {}")
    return _merge_map(copy_json(dict(obj)), patch, schema_for(kind))


def _merge_map(original: dict[str, Any], patch: Mapping[str, Any],
               schema: Mapping[str, PatchField]) -> dict[str, Any]:
    """Merge ``patch`` into ``original`` (which this call owns and may change)."""
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        return _fresh_map({k: v for k, v in patch.items() if k != _DIRECTIVE}, schema)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise BadRequest(f"unknown patch type: {directive} in map: {dict(patch)}")
    pending = {k: v for k, v in patch.items() if k != _DIRECTIVE}

    if _RETAIN_KEYS in pending:
        keep = pending.pop(_RETAIN_KEYS)
        if not isinstance(keep, list):
            raise BadRequest("invalid patch format of retainKeys")
        for k, v in pending.items():
            if v is not None and not k.startswith(("$", )) and k not in keep:
                raise BadRequest("invalid patch format of retainKeys")
        for k in [k for k in original if k not in keep]:
            del original[k]

    for key in [k for k in pending if k.startswith(_DELETE_PREFIX)]:
        doomed = pending.pop(key)
        name = key[len(_DELETE_PREFIX):]
        if not isinstance(doomed, list) or not name:
            raise BadRequest("invalid patch format of primitive list")
        current = original.get(name)
        if isinstance(current, list):
            original[name] = [x for x in current if not any(json_equal(x, d) for d in doomed)]

    for key in [k for k in pending if k.startswith(_ORDER_PREFIX)]:
        order = pending.pop(key)
        name = key[len(_ORDER_PREFIX):]
        if not isinstance(order, list) or not name:
            raise BadRequest("invalid patch format of setElementOrder list")
        fld = schema.get(name, DEFAULT_FIELD)
        current, change = original.get(name), pending.pop(name, None)
        if (current is not None and not isinstance(current, list)) or \
                (change is not None and not isinstance(change, list)):
            raise BadRequest("invalid patch format of setElementOrder list")
        if current is None and change is None:
            continue
        if change is None:
            merged = list(current or [])
        else:
            merged = _merge_list(list(current or []), change, fld)
        original[name] = _ordered(merged, order, list(current or []), fld.key)

    for key, value in pending.items():
        if value is None:
            original.pop(key, None)
            continue
        fld = schema.get(key, DEFAULT_FIELD)
        current = original.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            original[key] = _fresh_map(value, fld.fields) if fld.strategy == "replace" \
                else _merge_map(current, value, fld.fields)
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list(current, value, fld)
        else:
            original[key] = _fresh(value, fld)
    return original


def _fresh(value: Any, fld: PatchField) -> Any:
    """A patch value for a key the original lacks: merged into an empty value."""
    if isinstance(value, dict):
        return _fresh_map(value, fld.fields)
    if isinstance(value, list):
        return _merge_list([], value, fld)
    return value


def _fresh_map(value: Mapping[str, Any], schema: Mapping[str, PatchField]) -> dict[str, Any]:
    return _merge_map({}, value, schema)


def _merge_list(original: list[Any], patch: list[Any], fld: PatchField) -> list[Any]:
    if fld.strategy != "merge":
        return [_fresh(v, DEFAULT_FIELD) if isinstance(v, dict) else copy_json(v)
                for v in patch]
    if not original and not patch:
        return original
    if any(isinstance(v, list) for v in (*original, *patch)):
        raise Invalid(GENERIC_INVALID)  # "lists of lists are not supported"
    if any(isinstance(v, dict) for v in (*original, *patch)):
        return _merge_map_list(original, patch, fld)
    merged: list[Any] = []
    for v in (*original, *patch):
        if not any(json_equal(v, m) for m in merged):
            merged.append(v)
    return _ordered(merged, patch, original, "")


def _key_of(item: Any, key: str) -> Any:
    if not isinstance(item, dict) or key not in item:
        raise BadRequest(f"map: {item} does not contain declared merge key: {key}")
    return item[key]


def _merge_map_list(original: list[Any], patch: list[Any], fld: PatchField) -> list[Any]:
    key = fld.key
    if not key:
        raise BadRequest("cannot merge lists without merge key for type map")
    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise BadRequest("list element types are not identical")
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            doomed = _key_of(item, key)
            original = [o for o in original if not json_equal(_key_of(o, key), doomed)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise BadRequest("merging lists cannot yet be specified in the patch")
        else:
            raise BadRequest(f"unknown patch type: {directive} in map: {item}")
    if replace:
        return [_fresh_map(item, fld.fields) for item in plain]
    merged = list(original)
    for item in plain:
        wanted = _key_of(item, key)
        for i, current in enumerate(merged):
            if isinstance(current, dict) and key in current and json_equal(current[key], wanted):
                merged[i] = _merge_map(current, item, fld.fields)
                break
        else:
            merged.append(_fresh_map(item, fld.fields))
    return _ordered(merged, plain, original, key)


def _position(items: list[Any], item: Any, key: str) -> int:
    wanted = item.get(key) if key and isinstance(item, dict) else item
    for i, candidate in enumerate(items):
        value = candidate.get(key) if key and isinstance(candidate, dict) else candidate
        if json_equal(value, wanted):
            return i
    return -1


def _ordered(merged: list[Any], order: list[Any], server: list[Any], key: str) -> list[Any]:
    """Order a merged list as kube-apiserver does.

    Items named in ``order`` (the patch list or ``$setElementOrder``) come in that order;
    items only the server had keep their relative order and are slotted in before the first
    patch item that the server had listed after them.
    """
    in_patch = [m for m in merged if _position(order, m, key) >= 0]
    server_only = [m for m in merged if _position(order, m, key) < 0]
    in_patch.sort(key=lambda m: _position(order, m, key))
    server_only.sort(key=lambda m: (_position(server, m, key) < 0, _position(server, m, key)))
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) and j < len(in_patch):
        left = _position(server, server_only[i], key)
        right = _position(server, in_patch[j], key)
        if left >= 0 and right >= 0 and left < right:
            out.append(server_only[i])
            i += 1
        else:
            out.append(in_patch[j])
            j += 1
    out.extend(server_only[i:])
    out.extend(in_patch[j:])
    return out


# -- one entry point for a PATCH request ------------------------------------------------------

def apply_patch(obj: Mapping[str, Any], body: bytes, content_type: str,
                kind: str | None) -> dict[str, Any]:
    """Apply a PATCH request body of ``content_type`` to ``obj``.

    ``kind`` is the built-in kind (strategic merge patch needs it) or None for a custom
    resource, which accepts no strategic merge patch.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH) or \
            (media == STRATEGIC_MERGE_PATCH and kind is None):
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
        if kind is not None:
            accepted.append(STRATEGIC_MERGE_PATCH)
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types "
            "include: " + ", ".join(accepted))
    try:
        patch = decode(body)
    except ValueError as e:
        if media == JSON_PATCH:
            raise BadRequest(str(e)) from e
        raise BadRequest("Invalid JSON Patch" if media == MERGE_PATCH else str(e)) from e
    if media == JSON_PATCH:
        result = apply_json_patch(obj, patch)
    elif media == MERGE_PATCH:
        result = apply_merge_patch(obj, patch)
    else:
        result = apply_strategic_merge_patch(obj, patch, kind or "")
    if not isinstance(result, dict):
        raise BadRequest("the patched object is not a JSON object")
    return result
