"""Bounds on a PATCH body, checked in front of ``kube.patch`` before it does any work.

kube-apiserver refuses a JSON patch of more than 10,000 operations with ``413`` and stops one
whose ``copy`` operations together copy more than 3 MiB (its ``JSONPatchMaxCopyBytes``,
enforced inside evanphx/json-patch): that is ``422`` like any patch that does not apply, with
the library's words as the cause.  So a 700-byte patch of 17 ``copy`` operations, each
doubling the document, ends after about 3 MiB instead of building a 138 MB document.

A JSON patch with ``copy`` operations is applied here in slices that end before each copy:
the size of what the copy will add is measured on the document as it stands, before the
copy is made.  Each slice costs a copy of the document (``kube.patch`` is pure), so the
slicing has a budget too: a patch whose copies would make it copy more than
``MAX_SLICING_BYTES`` in all is refused (413) rather than let thousands of tiny copies keep
a request thread busy for seconds.  Merge and strategic merge patches cannot amplify (their
result is at most the object plus the body), but merging two long lists by key costs their
product in Python: a strategic patch whose lists would cost more than ``MAX_MERGE_WORK``
comparisons is refused (413).  The patched object must fit ``max_result_bytes`` (413).
The semantics of every patch stay in ``kube.patch``; nothing here decides what a patch means.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from yurthub.errors import BadRequest, NestingTooDeep, RequestEntityTooLarge
from yurthub.kube import patch as kpatch

MAX_JSON_PATCH_OPERATIONS = 10_000      # kube-apiserver's maxJSONPatchOperations
MAX_COPY_BYTES = 3 << 20                # kube-apiserver's JSONPatchMaxCopyBytes
MAX_REQUEST_BYTES = 3 << 20             # kube-apiserver's MaxRequestBodyBytes
MAX_SLICING_BYTES = 64 << 20            # document bytes copied to measure copies, at most
MAX_MERGE_WORK = 250_000                # (original + patch list items)^2, summed over lists

_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"


def too_large(message: str) -> RequestEntityTooLarge:
    """kube-apiserver's ``NewRequestEntityTooLargeError``: 413 with its message prefix."""
    return RequestEntityTooLarge(f"Request entity too large: {message}")


def json_size(value: Any) -> int:
    """Bytes of ``value`` encoded as compact JSON (what the patch library counts)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def check_json_patch(ops: Any) -> None:
    """413 for more operations than kube-apiserver applies; anything else is left to the
    patch itself (a body that is not a list is its 400)."""
    if isinstance(ops, list) and len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(ops)}")


def apply_json_patch(obj: Any, ops: Any,
                     apply: Callable[[Any, Any], Any] = kpatch.apply_json_patch) -> Any:
    """``apply(obj, ops)`` with kube-apiserver's bounds on the operations and their copies."""
    check_json_patch(ops)
    if not isinstance(ops, list):
        return apply(obj, ops)
    copies = [i for i, op in enumerate(ops) if isinstance(op, dict) and op.get("op") == "copy"]
    if not copies:
        return apply(obj, ops)
    doc, start, copied = obj, 0, 0
    estimate = json_size(obj)  # an upper bound of the document's size as the slices go
    sliced = 0
    for i in copies:
        if i > start:
            sliced += estimate
            if sliced > MAX_SLICING_BYTES:
                raise too_large(
                    f"the {len(copies)} copy operations of this JSON patch would need more "
                    f"than {MAX_SLICING_BYTES} bytes of copying to apply")
            estimate += sum(_added(op) for op in ops[start:i])
            doc = apply(doc, ops[start:i])  # raises as the operation that fails would
            start = i
        size = _source_size(doc, ops[i].get("from"))
        copied += size
        if copied > MAX_COPY_BYTES:
            raise kpatch.JSONPatchFailed(
                "Unable to complete the copy, the accumulated size increase of copy is "
                f"{copied}, exceeding the limit {MAX_COPY_BYTES}")
        estimate += size
    return apply(doc, ops[start:])


def _added(op: Any) -> int:
    """What an operation may add to the document (copies are counted exactly elsewhere)."""
    if isinstance(op, dict) and op.get("op") in ("add", "replace"):
        return json_size(op.get("value"))
    return 0


def _source_size(doc: Any, pointer: Any) -> int:
    """Size of the value at ``pointer``; 0 when it does not resolve (the copy fails there,
    or copies null, and then it adds nothing worth counting)."""
    if not isinstance(pointer, str):
        return 0
    cur = doc
    if pointer:
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(cur, dict):
                if token not in cur:
                    return 0
                cur = cur[token]
            elif isinstance(cur, list):
                try:
                    idx = int(token)
                except ValueError:
                    return 0
                if not -len(cur) <= idx < len(cur):
                    return 0
                cur = cur[idx]
            else:
                return 0
    return json_size(cur)


def check_merge_work(obj: Mapping[str, Any], patch: Any) -> None:
    """413 when a strategic merge patch would cost more than ``MAX_MERGE_WORK`` comparisons.

    Every list in the patch is merged with the object's list at the same keys, item by item:
    its cost is taken as (original items + patch items) squared, the original being the
    longest list found under those keys anywhere in the object.
    """
    if not isinstance(patch, dict):
        return
    longest: dict[tuple[str, ...], int] = {}
    _list_lengths(obj, (), longest)
    work = _patch_work(patch, (), longest)
    if work > MAX_MERGE_WORK:
        raise too_large(
            f"merging this strategic merge patch would take {work} comparisons of list items, "
            f"more than the {MAX_MERGE_WORK} allowed")


def _list_lengths(value: Any, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _list_lengths(v, (*path, k), out)
    elif isinstance(value, list):
        out[path] = max(out.get(path, 0), len(value))
        for v in value:
            _list_lengths(v, path, out)


def _patch_work(value: Any, path: tuple[str, ...], longest: dict[tuple[str, ...], int]) -> int:
    work = 0
    if isinstance(value, dict):
        for k, v in value.items():
            key = k
            if isinstance(k, str) and k.startswith((_ORDER_PREFIX, _DELETE_PREFIX)):
                key = k.split("/", 1)[1]
            work += _patch_work(v, (*path, key), longest)
    elif isinstance(value, list):
        n = len(value) + longest.get(path, 0)
        work += n * n
        for v in value:
            work += _patch_work(v, path, longest)
    return work


def check_result(result: Any, limit: int) -> bytes:
    """The patched object as JSON bytes; 413 when it is larger than ``limit``."""
    body = json.dumps(result, separators=(",", ":")).encode()
    if len(body) > limit:
        raise too_large(f"the patched object would be {len(body)} bytes, the limit "
                                    f"is {limit}")
    return body


def decode_patch(body: bytes, media: str) -> Any:
    """The decoded patch, with the 400 ``kube.patch`` gives for a body that is not JSON."""
    try:
        return kpatch.decode(body)
    except NestingTooDeep as e:
        raise BadRequest(str(e)) from e
    except ValueError as e:
        if media == kpatch.MERGE_PATCH:
            raise BadRequest(kpatch.MERGE_PATCH_INVALID) from e
        raise BadRequest(str(e)) from e
