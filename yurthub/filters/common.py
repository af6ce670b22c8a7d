"""What several filters share: pointing the ``kubernetes`` Service at the hub, dropping
Services for kube-proxy.

``KubernetesToHub`` is the byte-level side of masterservice and forwardkubesvctraffic
(both only touch objects named ``kubernetes``, and both depend on the hub's address) and
``https_port`` their port rewrite; ``ServiceDropper`` is the frame of discardcloudservice
and nodeportisolation (kube-proxy's Services, an object either stays as it is or goes).
"""

from __future__ import annotations

from typing import Any

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.context import FilterContext

HTTPS_PORT_NAME = "https"


def https_port(ports: list[Any], port: int) -> list[Any]:
    """``ports`` with the first port named ``https`` moved to ``port`` (a new list)."""
    out = list(ports)
    for i, p in enumerate(ports):
        if isinstance(p, dict) and p.get("name") == HTTPS_PORT_NAME:
            out[i] = {**p, "port": port}
            break
    return out


class KubernetesToHub:
    """Only objects named ``kubernetes`` change, and only when the hub's address does."""

    drops = False

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        return b'"kubernetes"' in raw or escaped(raw)

    def interest(self, scope: Scope) -> tuple[str, ...] | None:
        return ('"kubernetes"',)

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return (old.hub_host, old.hub_port) != (new.hub_host, new.hub_port)


class ServiceDropper:
    """kube-proxy's Services: ``keeps`` decides whether one stays (as it is) or goes."""

    resources = {("", "services"): ("list", "watch")}
    default_components = ("kube-proxy",)
    drops = True

    def filter(self, obj: Obj, scope: Scope) -> Obj | None:
        if scope.resource != "services" or scope.group != "":
            return obj
        return obj if self.keeps(obj, scope) else None

    def keeps(self, obj: Obj, scope: Scope) -> bool:
        raise NotImplementedError
