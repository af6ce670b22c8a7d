"""discardcloudservice: kube-proxy does not program Services that only the cloud can serve.

YurtHub's semantics (``pkg/yurthub/filter/discardcloudservice``): a ``LoadBalancer``
Service annotated ``svc.openyurt.io/discard: "true"`` is dropped, and so is
``kube-system/x-tunnel-server-internal-svc`` (the tunnel server's in-cloud address).
Disabled in ``--working-mode cloud``, as in YurtHub.
"""

from __future__ import annotations

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.common import ServiceDropper
from yurthub.filters.context import FilterContext, annotations_of, namespace_name

NAME = "discardcloudservice"
DISCARD_ANNOTATION = "svc.openyurt.io/discard"
CLOUD_SERVICES = frozenset({("kube-system", "x-tunnel-server-internal-svc")})


class DiscardCloudService(ServiceDropper):
    name = NAME

    def keeps(self, obj: Obj, scope: Scope) -> bool:
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("type") == "LoadBalancer" \
                and annotations_of(obj).get(DISCARD_ANNOTATION) == "true":
            return False
        return namespace_name(obj) not in CLOUD_SERVICES

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        return (b'"LoadBalancer"' in raw or b"x-tunnel-server-internal-svc" in raw
                or escaped(raw))

    def interest(self, scope: Scope) -> tuple[str, ...] | None:
        return ('"LoadBalancer"', "x-tunnel-server-internal-svc")

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return False
