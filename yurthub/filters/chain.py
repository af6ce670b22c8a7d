"""The filter chain and its approver: which filters run for a request, and how objects pass.

A filter sees decoded objects of the responses it applies to and returns the object
(changed or not) or None to drop it.  The chain runs on the request path, before the tee,
so the client and the cache see the same filtered data (YurtHub's order): in a list a
dropped item is removed, in a watch a dropped object becomes a DELETED event, BOOKMARK and
ERROR events pass untouched.  The hub's own requests are never filtered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from yurthub.config import Config

log = logging.getLogger(__name__)

HUB_AGENTS = ("yurthub",)


class ObjectFilter(Protocol):
    """One filter; ``name`` is what ``disabled_resource_filters`` refers to."""

    name: str

    def applies(self, component: str, verb: str, resource: str) -> bool:
        """True when responses of this request go through the filter."""

    def filter(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The object to pass on, or None to drop it.  Must not raise for odd objects."""


class Chain:
    """The filters that apply to one request, applied in order."""

    def __init__(self, filters: Sequence[ObjectFilter]) -> None:
        self.filters = list(filters)

    @property
    def names(self) -> str:
        return ",".join(f.name for f in self.filters)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        out: dict[str, Any] | None = obj
        for f in self.filters:
            if out is None:
                return None
            out = f.filter(out)
        return out


class FilterChain:
    """All registered filters, minus the disabled ones; picks those a request needs."""

    def __init__(self, cfg: Config, filters: Iterable[ObjectFilter] = ()) -> None:
        disabled = set(cfg.disabled_resource_filters)
        if not cfg.enable_resource_filter or "*" in disabled:
            self.filters: list[ObjectFilter] = []
        else:
            self.filters = [f for f in filters if f.name not in disabled]
        if self.filters:
            log.info("response filters: %s", ", ".join(f.name for f in self.filters))

    def for_request(self, component: str, verb: str, resource: str) -> Chain | None:
        """The chain for a request, or None when nothing applies (the common case)."""
        if not self.filters or not component or component.startswith(HUB_AGENTS):
            return None
        picked = [f for f in self.filters if f.applies(component, verb, resource)]
        return Chain(picked) if picked else None
