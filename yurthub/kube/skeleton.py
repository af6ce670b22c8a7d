"""Decode only the parts of an object that the cache indexes (msgspec path).

The writer needs, of each list item, its kind and apiVersion, its metadata, and the few
fields that field selectors read (``spec.nodeName``, ``status.phase``...): never the rest
of a 5 KB pod.  With msgspec, a ``Struct`` type per resource type names exactly those
paths; msgspec then skips every other member without building it, which is 3-4x faster
than a full decode and leaves the garbage collector almost nothing to track.

``decoder(paths)`` gives a function ``bytes -> dict`` whose dict holds the same values at
``paths`` (and under ``kind``, ``apiVersion``, ``metadata``) as a full decode, and nothing
else.  When an intermediate member is not an object (``"spec": []``), or the bytes are not
one JSON object, it falls back to the full decode, whose result or error is the reference.
Without msgspec (Debian 12) there is nothing to gain: the stdlib scanner builds each item
anyway to find where it ends, so ``decoder`` returns None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from yurthub.kube.jsonscan import HAVE_MSGSPEC, decode_object

if HAVE_MSGSPEC:
    import msgspec

# Always kept whole: what to_item, index_meta and the offline reader use.
TOP = ("kind", "apiVersion", "metadata")

Tree = dict[str, "Tree | None"]  # None: keep the whole value at this key


def _tree(paths: Iterable[str]) -> Tree:
    tree: Tree = {key: None for key in TOP}
    for path in paths:
        node = tree
        parts = path.split(".")
        for i, part in enumerate(parts):
            if part in node and node[part] is None:
                break  # an ancestor is kept whole already
            if i == len(parts) - 1:
                node[part] = None
            else:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                node = child
    return tree


def _struct(tree: Tree, name: str) -> Any:
    fields = []
    for key, sub in tree.items():
        if sub is None:
            fields.append((key, Any, msgspec.UNSET))
        else:
            inner = _struct(sub, f"{name}_{len(fields)}")
            fields.append((key, inner | None, msgspec.UNSET))
    # Python identifiers are not required: rename maps each field to its JSON key.
    attrs = [(f"f{i}", typ, default) for i, (_, typ, default) in enumerate(fields)]
    rename = {f"f{i}": key for i, (key, _, _) in enumerate(fields)}
    return msgspec.defstruct(name, attrs, rename=rename, omit_defaults=True)


@lru_cache(maxsize=256)
def _decoder(paths: tuple[str, ...]) -> Callable[[bytes], dict[str, Any]]:
    typ = _struct(_tree(paths), "Skeleton")
    decode = msgspec.json.Decoder(typ).decode
    to_builtins = msgspec.to_builtins

    def skeleton(raw: bytes) -> dict[str, Any]:
        try:
            out = to_builtins(decode(raw))
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return decode_object(raw)  # the reference: its value, or its DecodeError
        return out

    return skeleton


def decoder(paths: Iterable[str]) -> Callable[[bytes], dict[str, Any]] | None:
    """A partial decoder keeping ``kind``, ``apiVersion``, ``metadata`` and ``paths``."""
    if not HAVE_MSGSPEC:
        return None
    return _decoder(tuple(sorted(set(paths))))
