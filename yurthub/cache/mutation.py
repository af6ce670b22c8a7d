"""What the cache writer's collections take: the changes handlers decide (``Mutation``), a
list being committed (``ListAssembly``), and an object's index metadata (what the offline
reader selects on without opening its file)."""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass, field
from typing import Any

from yurthub.cache.integrity import key_problem
from yurthub.cache.views import Selectors, ViewKey
from yurthub.kube import fields as kfields
from yurthub.kube.resources import ResourceType, builtin
from yurthub.storage import CollectionKey, Transaction

Meta = dict[str, Any]


def index_meta(obj: dict[str, Any], rt: ResourceType) -> Meta:
    """What the offline reader selects on, without opening the object's file."""
    md = obj.get("metadata") or {}
    values = kfields.selectable_values(obj, rt)
    return {"rv": rv_of(md.get("resourceVersion")), "labels": dict(md.get("labels") or {}),
            "fields": {k: v for k, v in values.items() if not k.startswith("metadata.")}}


def load_meta(ck: CollectionKey, namespace: str, name: str, body: bytes) -> Meta:
    """Rebuild an object's index meta from its file (the store calls it at recovery);
    ValueError when the file does not hold the object its path names."""
    obj = json.loads(body)
    problem = key_problem(ck, namespace, name, obj)
    if problem:
        raise ValueError(problem)
    rt = builtin(ck.group, ck.version, ck.resource) or ResourceType(
        ck.group, ck.version, ck.resource, str(obj.get("kind", "")), ck.namespaced)
    return index_meta(obj, rt)


def is_current(stored: Meta, rv: int) -> bool:
    """Should an object at ``rv`` replace the stored one?

    Not when the stored one is newer, nor when it is this very version (a relist or a
    repeated get then costs no write) — unless the stored copy was changed offline, which
    the cloud's version must replace.  Objects without a resourceVersion always replace.
    """
    old = int(stored.get("rv", 0))
    if rv <= 0 or stored.get("local"):
        return True
    return rv > old


def rv_of(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# A list this big leaves ~10 new long-lived containers per object in the index.
FREEZE_ABOVE = 1000


def freeze_long_lived() -> None:
    """Move what is alive now out of the cyclic collector's generations, as startup does.

    After a big list the new index entries wait in the young generations; the next full
    collection would walk them all (7-13 ms on a quiet machine, far more on a busy one)
    with the GIL held, so every request thread would wait, and again after each later
    list.  Frozen objects are still freed by reference counting when the index drops them;
    only a reference cycle alive at this moment would never be collected.
    """
    gc.collect(0)
    gc.freeze()


@dataclass
class Mutation:
    """A change decided by a handler, applied by ``CollectionWriter.apply``."""

    op: str  # "upsert", "delete", "event", "bookmark", "stale", "refilter", "lost", "went-back"
    view: ViewKey | None = None
    namespace: str = ""
    name: str = ""
    raw: bytes = b""
    meta: Meta = field(default_factory=dict)
    event_type: str = ""
    rv: int = 0
    why: str = ""
    local: bool = False          # an offline write: same resourceVersion, new content
    asked_at: float = 0.0        # upsert/event: when its filters were chosen (Entry)
    consistent: bool = False     # upsert: the cloud's state when it answered (Entry)


@dataclass
class ListAssembly:
    """A list being committed, possibly over several ``continue`` pages."""

    view: ViewKey
    selectors: Selectors
    txn: Transaction
    list_rv: int = 0
    seen: set[tuple[str, str]] = field(default_factory=set)
    expected_token: str = ""
    touched: float = field(default_factory=time.monotonic)
    objects: int = 0
    rewritten: list[tuple[str, str]] = field(default_factory=list)  # at the version stored
    written: int = 0             # objects new or changed on disk
    asked_at: float = 0.0        # when its (first page's) filters were chosen (Entry)
    consistent: bool = False     # its first page was a quorum read (Entry)
