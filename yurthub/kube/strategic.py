"""Strategic merge patch exactly as kube-apiserver applies it (apimachinery's ``strategicpatch``).

The rules are apimachinery's, including its corners, because a PATCH answered offline must
leave the same object the cloud would have: ``$patch: replace`` keeps the patch map as it is
(nulls too), a key the original lacks takes the patch value with nulls and ``$patch`` maps
dropped, a list item appended by a merge is taken as it is, ``$setElementOrder`` and
``$retainKeys`` are checked the way apimachinery checks them.  Which lists merge, and by
which key, comes from a :mod:`yurthub.kube.patchschema` table.

Errors carry kube-apiserver's status: the malformed-directive errors it knows are ``400``,
lists of lists ``422``, and everything else ``500`` with an empty reason, as kube-apiserver
answers an error the strategic merge code returns unclassified (``map: ... does not contain
declared merge key: name``, ``The order in patch list ... doesn't match ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from yurthub.errors import ApiError, BadRequest, Invalid
from yurthub.kube.patchschema import DEFAULT_FIELD, PatchField

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
ORDER_PREFIX = "$setElementOrder"
DELETE_PREFIX = "$deleteFromPrimitiveList"
GENERIC_INVALID = "the server rejected our request due to an error in our request"

Schema = Mapping[str, PatchField]


def go_value(v: Any) -> str:
    """A decoded JSON value as Go's ``%v`` prints the ``interface{}`` apimachinery holds."""
    if v is None:
        return "<nil>"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        f = float(v)
        if f.is_integer() and abs(f) < 1e21:
            text = str(int(f))
            return text if len(text.lstrip("-")) <= 21 else f"{f:g}"
        return repr(f)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_value(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_value(x) for x in v) + "]"
    return str(v)


def go_type(v: Any) -> str:
    """The Go type a decoded JSON value has in apimachinery (every number is a float64)."""
    if v is None:
        return "<nil>"
    if v is True or v is False:
        return "bool"
    if isinstance(v, (int, float)):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return "[]interface {}"


class UnclassifiedPatchError(ApiError):
    """An error kube-apiserver passes on unclassified: ``500`` with no reason."""

    code = 500
    reason = ""


def _bad_arg_type(expected: str, actual: Any) -> ApiError:
    shown = "%!s(<nil>)" if actual is None else go_type(actual)
    return UnclassifiedPatchError(f"expected a {expected}, but received a {shown}")


def _no_merge_key(m: Mapping[str, Any], key: str) -> ApiError:
    return UnclassifiedPatchError(f"map: {go_value(dict(m))} does not contain declared merge "
                                  f"key: {key}")


def _no_list_of_lists() -> ApiError:
    return Invalid(GENERIC_INVALID, details={"causes": [
        {"reason": "UnexpectedServerResponse", "message": "lists of lists are not supported"}]})


def _equal(a: Any, b: Any) -> bool:
    """Go's ``==`` on two ``interface{}`` values of decoded JSON (scalars only compare)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    return type(a) is type(b) and a == b


def apply(original: Mapping[str, Any], patch: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """Apply ``patch`` to ``original``; both are left as they were (copies are changed)."""
    return merge_map(_copy(original), _copy(patch), schema)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _lookup(schema: Schema, key: str) -> PatchField:
    return schema.get(key, DEFAULT_FIELD)


def merge_map(original: dict[str, Any] | None, patch: dict[str, Any],
              schema: Schema) -> dict[str, Any]:
    """Merge ``patch`` into ``original``; both belong to this call and may be changed."""
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            del patch[DIRECTIVE]
            return patch
        if directive == "delete":
            return {}
        raise UnclassifiedPatchError(f"unknown patch type: {go_value(directive)} in map: "
                                     f"{go_value(patch)}")
    if original is None:
        original = {}
    _retain_keys(original, patch)
    _set_element_orders(original, patch, schema)
    for key in list(patch):
        value = patch[key]
        delete_list = False
        if key.startswith(DELETE_PREFIX):
            name = _directive_key(key, DELETE_PREFIX)
            delete_list = True
            if name:
                key = name
        if value is None:
            original.pop(key, None)
            continue
        if key not in original or go_type(original[key]) != go_type(value):
            if not delete_list:
                _discard_nulls(value)
                kept, keep = remove_directives(value)
                if keep:
                    original[key] = kept
                else:
                    original.pop(key, None)
            continue
        current = original[key]
        fld = _lookup(schema, key)
        if isinstance(current, dict):
            original[key] = value if fld.strategy == "replace" else \
                merge_map(current, value, fld.fields)
        elif isinstance(current, list):
            original[key] = _merge_slice_handler(current, value, fld, delete_list)
        else:
            original[key] = value
    return original


def _directive_key(key: str, prefix: str) -> str:
    parts = key.split("/", 1)
    if len(parts) < 2 or parts[0] != prefix:
        if prefix == DELETE_PREFIX:
            raise BadRequest("invalid patch format of primitive list")
        raise BadRequest("invalid patch format of setElementOrder list")
    return parts[1]


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list):
        raise BadRequest("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_PREFIX, ORDER_PREFIX)):
            continue
        if not any(_equal(key, k) for k in keep):
            raise BadRequest("invalid patch format of retainKeys")
    for key in [k for k in original if not any(_equal(k, x) for x in keep)]:
        del original[key]


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for k in [k for k, v in value.items() if v is None]:
            del value[k]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def remove_directives(value: Any) -> tuple[Any, bool]:
    """The value without the maps that carry ``$patch`` (and whether to keep it at all)."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        for k in list(value):
            kept, keep = remove_directives(value[k])
            if keep:
                value[k] = kept
            else:
                del value[k]
        return value, True
    if isinstance(value, list):
        out = []
        for v in value:
            kept, keep = remove_directives(v)
            if keep:
                out.append(kept)
        return out, True
    return value, True


class GoSlice:
    """A Go ``[]interface{}`` over a shared backing array.

    apimachinery deletes list items with ``append(s[:i], s[i+1:]...)`` and appends merged-in
    items with ``append``, both writing into the array the caller's slice still points at
    when there is room: the order ``$setElementOrder`` then puts server-only items in depends
    on it.  Capacities grow as Go's append grows them from an empty slice (which is how the
    JSON and protobuf decoders build the lists kube-apiserver patches).
    """

    def __init__(self, items: list[Any]) -> None:
        self.len = len(items)
        self.array = items + [None] * (_grown_cap(len(items)) - len(items))

    def view(self, length: int | None = None) -> list[Any]:
        return self.array[:self.len if length is None else length]

    def delete_at(self, i: int) -> None:
        self.array[i:self.len - 1] = self.array[i + 1:self.len]
        self.len -= 1

    def append(self, item: Any) -> None:
        if self.len == len(self.array):  # full: a new, unshared array
            self.array = self.array[:self.len] + [None] * max(1, self.len)
        self.array[self.len] = item
        self.len += 1


def _grown_cap(n: int) -> int:
    cap = 0
    while cap < n:
        cap = 1 if cap == 0 else cap * 2
    return cap


def _merge_slice_handler(original: Any, patch: Any, fld: PatchField, delete_list: bool,
                         backing: GoSlice | None = None) -> list[Any]:
    if not isinstance(original, list):
        raise _bad_arg_type("[]interface {}", original)
    if not isinstance(patch, list):
        raise _bad_arg_type("[]interface {}", patch)
    if fld.strategy == "merge" or delete_list:
        return _merge_slice(original, patch, fld, delete_list, backing)
    return patch


def element_kind(*lists: list[Any] | None) -> str:
    """``sliceElementType``: the one Go type of every element ("map" or another)."""
    seen: str | None = None
    for lst in lists:
        for v in lst or ():
            t = go_type(v)
            if seen is None:
                seen = t
                if t == "[]interface {}":
                    raise _no_list_of_lists()
            elif seen != t:
                shown = " ".join("[" + " ".join(go_value(x) for x in (s or [])) + "]"
                                 for s in lists)
                raise UnclassifiedPatchError(f"list element types are not identical: [{shown}]")
    if seen is None:
        raise UnclassifiedPatchError("no elements in any of the given slices")
    return "map" if seen == "map[string]interface {}" else seen


def _merge_slice(original: list[Any], patch: list[Any], fld: PatchField,
                 delete_list: bool, backing: GoSlice | None = None) -> list[Any]:
    if not original and not patch:
        return original
    kind = element_kind(original, patch)
    key = fld.key
    if kind != "map":
        if delete_list:
            return [v for v in original if not any(_equal(v, d) for d in patch)]
        merged: list[Any] = []
        for v in (*original, *patch):
            if not any(_equal(v, m) for m in merged):
                merged.append(v)
    else:
        if not key:
            raise UnclassifiedPatchError("cannot merge lists without merge key for struct")
        items = backing if backing is not None else GoSlice(list(original))
        items, patch = _special_elements(items, patch, key)
        original = items.view()
        _merge_items(items, patch, key, fld.fields)
        merged = items.view()
    in_patch, server_only = _partition(merged, patch, key)
    return normalize_order(in_patch, server_only, patch, original, key, kind)


def _special_elements(items: GoSlice, patch: list[Any], key: str) -> tuple[GoSlice, list[Any]]:
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise _no_merge_key(item, key)
            while (i := _find(items.view(), key, item[key])) >= 0:
                items.delete_at(i)
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise UnclassifiedPatchError("merging lists cannot yet be specified in the patch")
        else:
            raise UnclassifiedPatchError(f"unknown patch type: {go_value(directive)} in map: "
                                         f"{go_value(item)}")
    if replace:
        return GoSlice(plain), []
    return items, plain


def _find(items: list[Any], key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise UnclassifiedPatchError(f"value for key {i} is not a map")
        if key in item and _equal(item[key], value):
            return i
    return -1


def _merge_items(items: GoSlice, patch: list[Any], key: str, schema: Schema) -> None:
    for item in patch:
        if key not in item:
            raise _no_merge_key(item, key)
        i = _find(items.view(), key, item[key])
        if i >= 0:
            items.array[i] = merge_map(items.array[i], item, schema)
        else:
            items.append(item)


def _partition(merged: list[Any], by: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    in_list: list[Any] = []
    others: list[Any] = []
    for v in merged:
        if key:
            if not isinstance(v, dict):
                raise _bad_arg_type("map[string]interface {}", v)
            if key not in v:
                raise _no_merge_key(v, key)
            found = _find(by, key, v[key]) >= 0
        else:
            found = any(_equal(v, b) for b in by)
        (in_list if found else others).append(v)
    return in_list, others


def _index(items: list[Any], item: Any, key: str, kind: str) -> int:
    def val(x: Any) -> Any:
        if kind == "map":
            return x.get(key) if isinstance(x, dict) else None
        return x
    wanted = val(item)
    for i, candidate in enumerate(items):
        if _equal(val(candidate), wanted):
            return i
    return -1


def _normalize_slice(items: list[Any], order: list[Any], key: str, kind: str) -> list[Any]:
    doomed: list[Any] = []
    if kind == "map":
        for lst in (items, order):
            for item in lst:
                if not isinstance(item, dict):
                    raise _bad_arg_type("map[string]interface {}", item)
                if key not in item:
                    raise _no_merge_key(item, key)
        doomed = [i for i in items if i.get(DIRECTIVE) == "delete"]
        items = [i for i in items if i.get(DIRECTIVE) != "delete"]
    # Every item is found in ``order`` wherever apimachinery sorts, so its comparator is an
    # ordinary stable sort by position.
    positions = [_index(order, i, key, kind) for i in items]
    ranked = sorted(range(len(items)), key=lambda n: positions[n])
    return [items[n] for n in ranked] + doomed


def normalize_order(in_patch: list[Any], server_only: list[Any], patch_order: list[Any],
                    server_order: list[Any], key: str, kind: str) -> list[Any]:
    """Patch items in patch order, server-only items slotted in by their live order."""
    right = _normalize_slice(in_patch, patch_order, key, kind)
    left = _normalize_slice(server_only, server_order, key, kind)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], key, kind)
            ri = _index(server_order, right[j], key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _set_element_orders(original: dict[str, Any], patch: dict[str, Any],
                        schema: Schema) -> None:
    for directive in [k for k in patch if k.startswith(ORDER_PREFIX)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        name = _directive_key(directive, ORDER_PREFIX)
        found_original, found_patch = name in original, name in patch
        current: list[Any] = original.get(name) or []
        change: list[Any] = patch.get(name) or []
        if found_original and not isinstance(original[name], list):
            raise _bad_arg_type("[]interface {}", original[name])
        if found_patch and not isinstance(patch[name], list):
            raise _bad_arg_type("[]interface {}", patch[name])
        fld = _lookup(schema, name)
        key = fld.key
        _check_order(change, order, key)
        merged: list[Any]
        if found_original and not found_patch:
            merged = current
        elif found_patch and not found_original:
            merged = remove_directives(change)[0]
        elif found_original and found_patch:
            # ``current`` as Go's caller sees it after the merge wrote into its array.
            shared = GoSlice(list(current))
            merged = _merge_slice_handler(current, change, fld, False, shared)
            current = shared.view(len(current))
        else:
            continue
        in_order, server_only = _partition(merged, order, key)
        kind = element_kind(current if found_original else None, change if found_patch else None)
        original[name] = normalize_order(in_order, server_only, order, current, key, kind)
        patch.pop(name, None)


def _check_order(change: list[Any], order: list[Any], key: str) -> None:
    """``validatePatchWithSetOrderList``: the patch list is a subsequence of the order."""
    if not order or not change:
        return
    items = change
    if key:
        for item in change:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
        items = [i for i in change if i.get(DIRECTIVE) != "delete"]
    p = s = 0
    while p < len(items) and s < len(order):
        item = items[p]
        if isinstance(item, dict) and DIRECTIVE in item:
            p += 1
            continue
        if key:
            other = order[s]
            if not isinstance(item, dict) or not isinstance(other, dict):
                raise _bad_arg_type("map[string]interface {}", other)
            if key not in item:
                raise _no_merge_key(item, key)
            if key not in other:
                raise _no_merge_key(other, key)
            same = _equal(item[key], other[key])
        else:
            same = _equal(item, order[s])
        if same:
            p += 1
        s += 1
    if p < len(items) and s >= len(order):
        raise UnclassifiedPatchError(
            f"The order in patch list:\n{go_value(change)}\n doesn't match {ORDER_PREFIX} "
            f"list:\n{go_value(order)}\n")
