"""nodeportisolation: a NodePort is opened only on the pools its Service names.

YurtHub's semantics (``pkg/yurthub/filter/nodeportisolation``): a ``NodePort`` or
``LoadBalancer`` Service with the ``nodeport.openyurt.io/listen`` annotation (a comma list
of pool names; ``-pool`` excludes a pool, ``*`` means every pool; the first mention of a
pool wins) is dropped for kube-proxy unless this node's pool is enabled by it.  A node in
no pool sees every Service; a Service without the annotation is never dropped.
"""

from __future__ import annotations

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.common import ServiceDropper
from yurthub.filters.context import FilterContext, annotations_of

NAME = "nodeportisolation"
LISTEN_ANNOTATION = "nodeport.openyurt.io/listen"


def pool_settings(value: str) -> frozenset[str]:
    """The annotation's entries, each pool (with or without "-") counted once, first wins."""
    seen: set[str] = set()
    out: set[str] = set()
    for name in value.split(","):
        name = name.strip()
        bare = name[1:] if name.startswith("-") else name
        if bare and bare not in seen:
            seen.add(bare)
            out.add(name)
    return frozenset(out)


def pool_enabled(settings: frozenset[str], pool: str) -> bool:
    if pool in settings:
        return True
    if "-" + pool in settings:
        return False
    return "*" in settings


class NodePortIsolation(ServiceDropper):
    name = NAME

    def keeps(self, obj: Obj, scope: Scope) -> bool:
        spec = obj.get("spec")
        if not isinstance(spec, dict) or spec.get("type") not in ("NodePort", "LoadBalancer"):
            return True
        ann = annotations_of(obj)
        pool = scope.ctx.pool
        if LISTEN_ANNOTATION not in ann or not pool:
            return True
        value = ann.get(LISTEN_ANNOTATION)
        settings = pool_settings(value if isinstance(value, str) else "")
        return bool(settings) and pool_enabled(settings, pool)

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        if not scope.ctx.pool:
            return False
        return b"nodeport.openyurt.io/listen" in raw or escaped(raw)

    def interest(self, scope: Scope) -> tuple[str, ...] | None:
        return ("nodeport.openyurt.io/listen",) if scope.ctx.pool else ()

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return old.pool != new.pool
