"""discardcloudservice: kube-proxy does not program Services that only the cloud can serve.

YurtHub's semantics (``pkg/yurthub/filter/discardcloudservice``): a ``LoadBalancer``
Service annotated ``svc.openyurt.io/discard: "true"`` is dropped, and so is
``kube-system/x-tunnel-server-internal-svc`` (the tunnel server's in-cloud address).
Disabled in ``--working-mode cloud``, as in YurtHub.
"""

from __future__ import annotations

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.context import FilterContext, annotations_of, namespace_name

NAME = "discardcloudservice"
DISCARD_ANNOTATION = "svc.openyurt.io/discard"
CLOUD_SERVICES = frozenset({("kube-system", "x-tunnel-server-internal-svc")})


class DiscardCloudService:
    name = NAME
    resources = {("", "services"): ("list", "watch")}
    default_components = ("kube-proxy",)
    drops = True

    def filter(self, obj: Obj, scope: Scope) -> Obj | None:
        if scope.resource != "services" or scope.group != "":
            return obj
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("type") == "LoadBalancer" \
                and annotations_of(obj).get(DISCARD_ANNOTATION) == "true":
            return None
        if namespace_name(obj) in CLOUD_SERVICES:
            return None
        return obj

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        return (b'"LoadBalancer"' in raw or b"x-tunnel-server-internal-svc" in raw
                or escaped(raw))

    def interest(self, scope: Scope) -> tuple[str, ...] | None:
        return ('"LoadBalancer"', "x-tunnel-server-internal-svc")

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return False
