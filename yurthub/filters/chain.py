"""The filter chain: the filters that apply to one request, run in order on decoded objects.

A filter sees one object of the resource a request is about and returns it unchanged (the
same dict), a changed copy, or None to drop it.  It never changes the object it was given:
the same decoded object may be shared by several clients with different filters (a shared
upstream watch), and each must get its own answer.  ``Chain.apply`` is the whole API on
decoded objects; ``Chain.apply_raw`` adds the bytes side: an object no filter can change
is passed on as the very bytes it came in, without being decoded at all when every
filter's ``may_change`` says so from the bytes.  A filter may also offer
``bytes_filter(scope)``: None, or its ``filter`` done on the bytes for that scope (the new
bytes, ``raw`` when unchanged, None when the object must be decoded; never a drop), whose
result decodes to exactly what ``filter`` returns (servicetopology on v1 EndpointSlices).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from yurthub.errors import DecodeError
from yurthub.filters.context import FilterContext
from yurthub.kube.bulk import Interest, Keyed, hides
from yurthub.kube.jsonscan import HAVE_MSGSPEC, decode_object

if HAVE_MSGSPEC:
    import msgspec

    _encode = msgspec.json.Encoder().encode
else:
    def _encode(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

Obj = dict[str, Any]
OnBytes = Callable[[bytes], "bytes | None"]


def encode(obj: Any) -> bytes:
    """Compact JSON of a filtered object (UTF-8, key order kept)."""
    return _encode(obj)


@dataclass(frozen=True)
class Scope:
    """What one filtering pass is about: the resource being served and the cluster snapshot."""

    group: str
    version: str
    resource: str
    ctx: FilterContext = field(default_factory=FilterContext)


class ObjectFilter(Protocol):
    """One of YurtHub's response filters; ``name`` is what yurt-hub-cfg and
    ``disabled_resource_filters`` call it."""

    @property
    def name(self) -> str: ...

    @property
    def resources(self) -> Mapping[tuple[str, str], tuple[str, ...]]:
        """(group, resource) -> the verbs whose responses go through the filter."""

    @property
    def default_components(self) -> tuple[str, ...]:
        """The User-Agent names (before "/") that get the filter without yurt-hub-cfg."""

    @property
    def drops(self) -> bool:
        """Whether it ever drops an object (else it only changes objects)."""

    def filter(self, obj: Obj, scope: Scope) -> Obj | None:
        """The object to pass on (``obj`` itself when unchanged), or None to drop it.

        Must not change ``obj`` and must not raise for objects of an unexpected shape.
        """

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        """False only when ``filter`` would certainly return the object unchanged, judged
        from its JSON bytes alone (a necessary condition, checked without decoding)."""

    def interest(self, scope: Scope) -> tuple[str | Keyed, ...] | None:
        """ASCII byte patterns (or Keyed ones) one of which every object the filter may
        change contains (() when it changes nothing in this scope, None when no pattern
        says it)."""

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        """True when going from ``old`` to ``new`` may change what the filter returns."""


def escaped(raw: bytes) -> bool:
    """True when ``raw`` holds a ``\\u`` escape that could hide a byte pattern."""
    return hides(raw)


class Chain:
    """The filters of one request, bound to one scope (resource + cluster snapshot)."""

    def __init__(self, filters: Sequence[ObjectFilter], scope: Scope) -> None:
        self.filters = tuple(filters)
        self.scope = scope
        # each filter's byte-level version in this scope (None: it only has may_change)
        self._on_bytes: tuple[OnBytes | None, ...] = tuple(
            _bytes_filter(f, scope) for f in self.filters)
        # True when some filter of the chain can change objects on their bytes alone
        self.on_bytes = any(f is not None for f in self._on_bytes)

    @property
    def names(self) -> str:
        return ",".join(f.name for f in self.filters)

    @property
    def drops(self) -> bool:
        """True when some filter of the chain may drop objects (not only change them)."""
        return any(f.drops for f in self.filters)

    def apply(self, obj: Obj) -> Obj | None:
        """The object as this client must see it, or None when it must not see it.

        ``obj`` is never changed; the result is ``obj`` itself when no filter changed it.
        """
        scope = self.scope
        for f in self.filters:
            out = f.filter(obj, scope)
            if out is None:
                return None
            obj = out
        return obj

    def may_change(self, raw: bytes) -> bool:
        scope = self.scope
        return any(f.may_change(raw, scope) for f in self.filters)

    def interest(self) -> Interest:
        """What a list reader must look at item by item for this chain (kube.bulk)."""
        patterns: list[str | Keyed] = []
        for f in self.filters:
            got = f.interest(self.scope)
            if got is None:
                return Interest(None)
            patterns += got
        return Interest(patterns)

    def apply_raw(self, raw: bytes, obj: Obj | None = None) -> bytes | None:
        """``apply`` on an object's JSON: the same bytes when nothing changed, new bytes
        when something did, None when the object is dropped.  ``obj`` is the decoded
        object when the caller has it already.  Raises DecodeError for bytes that are
        not a JSON object, when they have to be decoded.
        """
        if obj is None:
            done = self.apply_bytes(raw)
            if done is not None:
                return done
            obj = decode_object(raw)
        out = self.apply(obj)
        if out is None:
            return None
        return raw if out is obj else encode(out)

    def apply_bytes(self, raw: bytes) -> bytes | None:
        """``apply`` on an object's JSON without decoding it: the bytes to send (``raw``
        itself when nothing changes), or None when some filter must see the decoded object
        (``apply`` then runs on it from the first filter on).  Never a drop."""
        if not self.on_bytes:
            return None if self.may_change(raw) else raw
        scope = self.scope
        out = raw
        for f, on_bytes in zip(self.filters, self._on_bytes, strict=True):
            if on_bytes is not None:
                got = on_bytes(out)
                if got is None:
                    return None
                out = got
            elif f.may_change(out, scope):
                return None
        return out


def _bytes_filter(f: ObjectFilter, scope: Scope) -> OnBytes | None:
    make = getattr(f, "bytes_filter", None)
    return None if make is None else make(scope)


def decode(raw: bytes) -> Obj:
    """An object's JSON decoded (DecodeError when it is not a JSON object)."""
    return decode_object(raw)


__all__ = ["Chain", "DecodeError", "ObjectFilter", "Scope", "decode", "encode", "escaped"]
