"""The three patch types kube-apiserver applies: merge (RFC 7386), JSON (RFC 6902), strategic.

Every function is pure: it never mutates its inputs and returns a new document.  The merge
and JSON patches follow the library kube-apiserver applies them with (evanphx/json-patch v4),
corners included, because kube-apiserver's answer is the one a client expects; the strategic
merge patch lives in :mod:`yurthub.kube.strategic`.  Errors are raised as kube-apiserver
answers them: an undecodable patch is ``400 BadRequest``, a JSON patch that does not apply is
``422 Invalid`` with kube-apiserver's generic message and the library's reason as the cause
(also kept on the exception as ``detail``).  Custom resources accept no strategic merge
patch (415).  ``tests/golden/`` holds the upstream tables these functions are checked against.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from yurthub.errors import BadRequest, Invalid, NestingTooDeep, UnsupportedMediaType
from yurthub.kube import strategic
from yurthub.kube.jsondepth import check_depth
from yurthub.kube.patchschema import PatchField, schema_for

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

GENERIC_INVALID = "the server rejected our request due to an error in our request"

MERGE_PATCH_INVALID = "Invalid JSON Patch"


class JSONPatchFailed(Invalid):
    """A JSON patch operation that does not apply; ``detail`` says why (kube-apiserver won't)."""

    def __init__(self, detail: str) -> None:
        super().__init__(GENERIC_INVALID, details={"causes": [
            {"reason": "UnexpectedServerResponse", "message": detail}]})
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
    """Decode a JSON body; a syntax error is a ValueError with Go's wording, a text nested
    too deep for the hub is ``NestingTooDeep`` (a ValueError too)."""
    check_depth(body)
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise ValueError(json_error_message(e)) from e
    except UnicodeDecodeError as e:
        raise ValueError("invalid character in JSON input") from e


# -- RFC 7386, as evanphx/json-patch (v4) applies it -------------------------------------------

def apply_merge_patch(obj: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch as kube-apiserver's library applies it.

    Objects merge and ``null`` deletes; a patch value put where the target has no object
    has its nulls pruned (also inside objects in arrays, unlike the RFC); an array patch
    replaces the document; a ``null`` or scalar patch is ``400 Invalid JSON Patch``.
    """
    if patch is None or not isinstance(patch, (dict, list)):
        raise BadRequest(MERGE_PATCH_INVALID)
    patch = copy_json(patch)
    if isinstance(patch, list):
        return _prune_nulls(patch)
    if not isinstance(obj, dict):
        return _prune_nulls(patch)
    doc = copy_json(obj)
    _merge_docs(doc, patch)
    return doc


def _merge_docs(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
            continue
        current = doc.get(key)
        if current is None:
            doc[key] = _prune_nulls(value)
        elif not isinstance(current, dict):
            doc[key] = _prune_nulls(value)
        elif not isinstance(value, dict):
            doc[key] = value  # the library prunes nothing here
        else:
            _merge_docs(current, value)


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for v in value.values():
            _prune_nulls(v)
    elif isinstance(value, list):
        for v in value:
            if v is not None:
                _prune_nulls(v)
    return value


# -- RFC 6902, as evanphx/json-patch (v4) applies it -------------------------------------------
# kube-apiserver's library has its own corners, kept here because kube-apiserver wins: no
# operation but ``test`` and ``replace`` takes the root ("") as a path; ``replace`` of a
# missing member adds it; ``copy`` from a missing member copies null; a missing ``value`` is
# null; ``-1`` as an ``add`` index appends; scalars compare by their JSON text.

_INT64 = 2 ** 63


def _atoi(text: str) -> int:
    """``strconv.Atoi``: an optional sign and decimal digits, in range, else ValueError."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f'strconv.Atoi: parsing {_go_quote(text)}: invalid syntax')
    value = int(text)
    if not -_INT64 <= value < _INT64:
        raise ValueError(f'strconv.Atoi: parsing {_go_quote(text)}: value out of range')
    return value


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _bad_index(idx: int) -> JSONPatchFailed:
    return JSONPatchFailed(f"Unable to access invalid index: {idx}: invalid index referenced")


def _decode_key(key: str) -> str:
    return key.replace("~1", "/").replace("~0", "~") if "~" in key else key


def _find(doc: Any, path: str) -> tuple[Any, str] | None:
    """``findObject``: the container that holds the last token of ``path``, and that token."""
    split = path.split("/")
    if len(split) < 2:
        return None
    cur = doc
    for part in split[1:-1]:
        try:
            nxt = _get(cur, _decode_key(part))
        except (JSONPatchFailed, ValueError):
            return None
        if not isinstance(nxt, (dict, list)):
            return None
        cur = nxt
    return cur, _decode_key(split[-1])


def _get(con: Any, key: str) -> Any:
    """A member (None when an object lacks it) or an element (bad indices raise)."""
    if isinstance(con, dict):
        return con.get(key)
    idx = _atoi(key)
    if idx < 0:
        if idx < -len(con):
            raise _bad_index(idx)
        idx += len(con)
    if idx >= len(con):
        raise _bad_index(idx)
    return con[idx]


def _set(con: Any, key: str, value: Any) -> None:
    if isinstance(con, dict):
        con[key] = value
        return
    idx = _atoi(key)
    if idx < 0:
        if idx < -len(con):
            raise _bad_index(idx)
        idx += len(con)
    con[idx] = value


def _add(con: Any, key: str, value: Any) -> None:
    if isinstance(con, dict):
        con[key] = value
        return
    if key == "-":
        con.append(value)
        return
    try:
        idx = _atoi(key)
    except ValueError as e:
        raise JSONPatchFailed(f"value was not a proper array index: '{key}': {e}") from None
    size = len(con) + 1
    if idx >= size:
        raise _bad_index(idx)
    if idx < 0:
        if idx < -size:
            raise _bad_index(idx)
        idx += size
    con.insert(idx, value)


def _remove(con: Any, key: str) -> None:
    if isinstance(con, dict):
        if key not in con:
            raise JSONPatchFailed(f"Unable to remove nonexistent key: {key}: missing value")
        del con[key]
        return
    idx = _atoi(key)
    if idx >= len(con):
        raise _bad_index(idx)
    if idx < 0:
        if idx < -len(con):
            raise _bad_index(idx)
        idx += len(con)
    del con[idx]


def _raw_equal(a: Any, b: Any) -> bool:
    """``lazyNode.equal``: objects and arrays structurally, scalars by their JSON text."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and \
            all(_raw_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
            all(_raw_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _field(op: dict[str, Any], name: str, verb: str, what: str = "path") -> str:
    value = op.get(name)
    if not isinstance(value, str):
        missing = "missing value" if value is None else "json: cannot unmarshal into string"
        raise JSONPatchFailed(f"{verb} operation failed to decode {what}: {missing}")
    return value


def _container(doc: Any, path: str, verb: str, what: str) -> tuple[Any, str]:
    found = _find(doc, path)
    if found is None:
        shown = f'"{path}"' if verb in ("add", "remove") else path
        raise JSONPatchFailed(f"{verb} operation does not apply: doc is missing {what}: "
                              f"{shown}: missing value")
    return found


def _wrap(prefix: str, action: Any) -> Any:
    try:
        return action()
    except ValueError as e:
        raise JSONPatchFailed(f"{prefix}{e}") from None
    except JSONPatchFailed as e:
        raise JSONPatchFailed(f"{prefix}{e.detail}") from None


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    kind = kind if isinstance(kind, str) else "unknown"
    value = copy_json(op.get("value"))
    if kind == "add":
        path = _field(op, "path", "add")
        con, key = _container(doc, path, "add", "path")
        _wrap(f"error in add for path: '{path}': ", lambda: _add(con, key, value))
    elif kind == "remove":
        path = _field(op, "path", "remove")
        con, key = _container(doc, path, "remove", "path")
        _wrap(f"error in remove for path: '{path}': ", lambda: _remove(con, key))
    elif kind == "replace":
        path = _field(op, "path", "replace")
        if path == "":
            if not isinstance(value, (dict, list)):
                raise JSONPatchFailed("replace operation value must be object or array: "
                                      "%!w(<nil>)")
            return value
        con, key = _container(doc, path, "replace", "path")
        _wrap(f"replace operation does not apply: doc is missing key: {path}: ",
              lambda: _get(con, key))
        _wrap(f"error in remove for path: '{path}': ", lambda: _set(con, key, value))
    elif kind in ("move", "copy"):
        source = _field(op, "from", kind, "from")
        con, key = _container(doc, source, kind, "from path")
        where = key if kind == "move" else source
        prefix = f"error in {kind} for path: '{where}': " if kind == "move" else \
            f"error in copy for from: '{where}': "
        moved = _wrap(prefix, lambda: _get(con, key))
        if kind == "move":
            _wrap(prefix, lambda: _remove(con, key))
        else:
            moved = copy_json(moved)
        path = _field(op, "path", kind)
        con, key = _container(doc, path, kind, "destination path")
        prefix = f"error in move for path: '{path}': " if kind == "move" else \
            "error while adding value during copy: "
        _wrap(prefix, lambda: _add(con, key, moved))
    elif kind == "test":
        _test(doc, op)
    else:
        raise JSONPatchFailed(f"Unexpected kind: {kind}")
    return doc


def _test(doc: Any, op: dict[str, Any]) -> None:
    path = _field(op, "path", "test")
    has_value = op.get("value") is not None
    if path == "":
        if _raw_equal(doc, op.get("value")):
            return
        raise JSONPatchFailed(f"testing value {path} failed: test failed")
    found = _find(doc, path)
    if found is None:
        raise JSONPatchFailed(f"test operation does not apply: is missing path: {path}: "
                              "missing value")
    con, key = found
    current = _wrap(f"error in test for path: '{path}': ", lambda: _get(con, key))
    if current is None:
        if not has_value:
            return
    elif has_value and _raw_equal(current, op["value"]):
        return
    raise JSONPatchFailed(f"testing value {path} failed: test failed")


def apply_json_patch(obj: Any, patch: Any) -> Any:
    """RFC 6902 as kube-apiserver applies it: every operation in order, or none (422)."""
    if not isinstance(patch, list):
        raise BadRequest(f"json: cannot unmarshal {_json_kind(patch)} into Go value of type "
                         "jsonpatch.Patch")
    for op in patch:
        if op is not None and not isinstance(op, dict):
            raise BadRequest(f"json: cannot unmarshal {_json_kind(op)} into Go value of type "
                             "jsonpatch.Operation")
    doc = copy_json(obj)
    for op in patch:
        doc = _apply_op(doc, op or {})
    return doc


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


# -- strategic merge patch ------------------------------------------------------------------

def apply_strategic_merge_patch(obj: Mapping[str, Any], patch: Any, kind: str, *,
                                schema: Mapping[str, PatchField] | None = None,
                                ) -> dict[str, Any]:
    """Kubernetes' strategic merge patch of a built-in object of ``kind``.

    ``schema`` replaces the built-in table of ``kind`` (tests use the tables of
    apimachinery's own test types).
    """
    if not isinstance(patch, dict):
        raise BadRequest(f"json: cannot unmarshal {_json_kind(patch)} into Go value of type "
                         "map[string]interface {}")
    return strategic.apply(obj, patch, schema if schema is not None else schema_for(kind))


# -- one entry point for a PATCH request ------------------------------------------------------

def apply_patch(obj: Mapping[str, Any], body: bytes, content_type: str,
                kind: str | None, *, schema: Mapping[str, PatchField] | None = None,
                ) -> dict[str, Any]:
    """Apply a PATCH request body of ``content_type`` to ``obj``.

    ``kind`` is the built-in kind (strategic merge patch needs it) or None for a custom
    resource, which accepts no strategic merge patch.  ``schema``, when given, is the
    strategic merge metadata to use instead of the built-in table of ``kind``.
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
    except NestingTooDeep as e:
        raise BadRequest(str(e)) from e
    except ValueError as e:
        if media == JSON_PATCH:
            raise BadRequest(str(e)) from e
        raise BadRequest(MERGE_PATCH_INVALID if media == MERGE_PATCH else str(e)) from e
    if media == JSON_PATCH:
        result = apply_json_patch(obj, patch)
    elif media == MERGE_PATCH:
        result = apply_merge_patch(obj, patch)
    else:
        result = apply_strategic_merge_patch(obj, patch, kind or "", schema=schema)
    if not isinstance(result, dict):
        # kube-apiserver cannot decode the patched document into an object: 422.
        shown = json.dumps(json.dumps(result, separators=(",", ":")))
        raise Invalid(f' "" is invalid: patch: Invalid value: {shown}: couldn\'t get '
                      "version/kind; json parse error: json: cannot unmarshal "
                      f"{_json_kind(result)} into Go value of type struct {{ APIVersion string "
                      '"json:\\"apiVersion,omitempty\\""; Kind string '
                      '"json:\\"kind,omitempty\\"" }')
    return result
