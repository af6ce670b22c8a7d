"""The cache's disk quota: how much it may hold in all and per component, and what to evict.

design: usage is counted per collection as its objects' bytes plus its history file; a
commit that would grow a collection past the component's quota or the cache past the total
first evicts the least recently used collections that are idle (no transaction open, no
stream feeding them: never one in the middle of a commit), and is refused when even that
cannot make room: then nothing is evicted for nothing.  The number of collections is bounded
too (each holds a directory descriptor and an index in memory).  ``plan`` is pure: sizes,
last-use times and the rule in, the victims (or QuotaExceeded) out; DiskStore acts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from yurthub.errors import StorageError
from yurthub.storage.keys import CollectionKey


@dataclass(frozen=True)
class Quota:
    """The bounds: bytes in all, bytes per component, and collections in all."""

    total: int
    per_component: int
    max_collections: int

    def __post_init__(self) -> None:
        if self.total < 1 or self.per_component < 1 or self.max_collections < 1:
            raise ValueError("every quota bound must be positive")


@dataclass(frozen=True)
class Use:
    """What one collection holds, and when it was last read or written (any clock)."""

    bytes: int
    last_used: float


class QuotaExceeded(StorageError):
    """A commit would pass a quota that evicting idle collections cannot bring back.

    ``scope`` is ``"total"``, ``"component"`` or ``"collections"``; ``needed`` the bytes (or
    collections) the commit wanted beyond what is free, so a caller knows when it fits.
    """

    def __init__(self, message: str, scope: str, needed: int, *, component: str = "",
                 growth: int = 0) -> None:
        super().__init__(message)
        self.scope = scope
        self.needed = needed
        self.component = component   # whose commit it was ("" for a new collection)
        self.growth = growth         # the bytes that commit wanted to add


def plan(quota: Quota, use: Mapping[CollectionKey, Use], target: CollectionKey, growth: int,
         evictable: Callable[[CollectionKey], bool]) -> list[CollectionKey]:
    """The collections to evict, least recently used first, so that ``target`` may grow by
    ``growth`` bytes; raises QuotaExceeded (evicting nothing) when no choice makes room."""
    if growth <= 0:
        return []
    component = target.component
    total = sum(u.bytes for u in use.values())
    mine = sum(u.bytes for ck, u in use.items() if ck.component == component)
    over_component = mine + growth - quota.per_component
    over_total = total + growth - quota.total
    if over_component <= 0 and over_total <= 0:
        return []
    candidates = sorted((ck for ck in use if ck != target and evictable(ck)),
                        key=lambda ck: use[ck].last_used)
    victims: list[CollectionKey] = []
    for ck in candidates:
        if over_component <= 0:
            break
        if ck.component == component:
            victims.append(ck)
            over_component -= use[ck].bytes
            over_total -= use[ck].bytes
    if over_component > 0:
        raise QuotaExceeded(
            f"the cache quota of component {component!r} ({quota.per_component} bytes) "
            f"cannot take {growth} more bytes for {target}", "component", over_component,
            component=component, growth=growth)
    for ck in candidates:
        if over_total <= 0:
            break
        if ck not in victims:
            victims.append(ck)
            over_total -= use[ck].bytes
    if over_total > 0:
        raise QuotaExceeded(
            f"the cache quota ({quota.total} bytes) cannot take {growth} more bytes for "
            f"{target}", "total", over_total, component=component, growth=growth)
    return victims


def plan_new_collection(quota: Quota, use: Mapping[CollectionKey, Use],
                        evictable: Callable[[CollectionKey], bool]) -> list[CollectionKey]:
    """The collections to evict so that one more may be created (at most ``max_collections``)."""
    over = len(use) + 1 - quota.max_collections
    if over <= 0:
        return []
    candidates = sorted((ck for ck in use if evictable(ck)), key=lambda ck: use[ck].last_used)
    if len(candidates) < over:
        raise QuotaExceeded(f"the cache holds {len(use)} collections, its limit, and none of "
                            "them is idle", "collections", over)
    return candidates[:over]
