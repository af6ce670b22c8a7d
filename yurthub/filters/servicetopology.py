"""servicetopology: a Service's endpoints narrowed to this node, or to this node's pool.

YurtHub's semantics (``pkg/yurthub/filter/servicetopology``): the owning Service's
``openyurt.io/topologyKeys`` annotation decides.  ``kubernetes.io/hostname`` keeps the
endpoints on this node; ``openyurt.io/nodepool`` or ``kubernetes.io/zone`` keeps those on
the nodes of this node's pool (its NodePool's ``status.nodes``).  Endpoints without a node
are dropped; a slice left with no endpoints is still returned (with ``[]``).  A node in no
pool falls back to hostname topology; a pool whose NodePool is unknown leaves the slice
as it is, as YurtHub does.

Beyond YurtHub: Endpoints (v1) are filtered too (YurtHub registers the filter for them but
passes them through), address by address, a subset left empty being removed; and a node in
no pool with a ``topology.kubernetes.io/zone`` label keeps, for ``kubernetes.io/zone``,
the endpoints of its zone (the slice's per-endpoint ``zone``) instead of only its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.context import FilterContext, labels_of, namespace_name

NAME = "servicetopology"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "kubernetes.io/zone"
NODEPOOL = "openyurt.io/nodepool"

MAX_PATTERNS = 32  # more annotated Services: every slice is looked at (may_change)
_SERVICE_LABEL = re.compile(rb'"kubernetes\.io/service-name":"([^"\\]*)"')

Keep = Callable[[dict[str, Any]], bool]


def _node_of_endpoint(ep: dict[str, Any], v1beta1: bool) -> str | None:
    if v1beta1:
        topology = ep.get("topology")
        node = topology.get(HOSTNAME) if isinstance(topology, dict) else None
    else:
        node = ep.get("nodeName")
    return node if isinstance(node, str) and node else None


def keeper(topology: str, ctx: FilterContext, v1beta1: bool = False) -> Keep | None:
    """Which endpoints to keep for a Service of ``topology``, or None to keep them all."""
    if topology == HOSTNAME:
        node = ctx.node_name
        return lambda ep: _node_of_endpoint(ep, v1beta1) == node
    if topology not in (NODEPOOL, ZONE):
        return None
    if ctx.pool:
        members = ctx.pool_nodes
        if members is None:
            return None  # YurtHub: the pool's nodes cannot be read, the slice passes as is
        return lambda ep: _node_of_endpoint(ep, v1beta1) in members
    if topology == ZONE and ctx.zone and not v1beta1:
        zone = ctx.zone
        return lambda ep: _node_of_endpoint(ep, False) is not None and ep.get("zone") == zone
    node = ctx.node_name
    return lambda ep: _node_of_endpoint(ep, v1beta1) == node


class ServiceTopology:
    name = NAME
    resources = {("discovery.k8s.io", "endpointslices"): ("list", "watch"),
                 ("", "endpoints"): ("list", "watch")}
    default_components = ("kube-proxy", "coredns", "nginx-ingress-controller")
    drops = False

    def filter(self, obj: Obj, scope: Scope) -> Obj | None:
        if scope.resource == "endpointslices" and scope.group == "discovery.k8s.io":
            return self._slice(obj, scope)
        if scope.resource == "endpoints" and scope.group == "":
            return self._endpoints(obj, scope)
        return obj

    def _slice(self, obj: Obj, scope: Scope) -> Obj:
        namespace, _ = namespace_name(obj)
        service = labels_of(obj).get(SERVICE_NAME_LABEL)
        if not isinstance(service, str) or not service:
            return obj
        keep = keeper(scope.ctx.topology_of(namespace, service), scope.ctx,
                      v1beta1=scope.version == "v1beta1")
        if keep is None:
            return obj
        endpoints = obj.get("endpoints")
        if not isinstance(endpoints, list):
            endpoints = []
        kept = [ep for ep in endpoints if isinstance(ep, dict) and keep(ep)]
        if len(kept) == len(endpoints) and isinstance(obj.get("endpoints"), list):
            return obj
        return {**obj, "endpoints": kept}

    def _endpoints(self, obj: Obj, scope: Scope) -> Obj:
        namespace, name = namespace_name(obj)
        keep = keeper(scope.ctx.topology_of(namespace, name), scope.ctx)
        subsets = obj.get("subsets")
        if keep is None or not isinstance(subsets, list):
            return obj
        out: list[Any] = []
        changed = False
        for subset in subsets:
            if not isinstance(subset, dict):
                out.append(subset)
                continue
            new = dict(subset)
            for key in ("addresses", "notReadyAddresses"):
                addrs = subset.get(key)
                if isinstance(addrs, list):
                    kept = [a for a in addrs if isinstance(a, dict) and keep(a)]
                    if len(kept) != len(addrs):
                        changed = True
                        if kept:
                            new[key] = kept
                        else:
                            del new[key]
            if new.get("addresses") or new.get("notReadyAddresses"):
                out.append(new)
            else:
                changed = True
        if not changed:
            return obj
        return {**obj, "subsets": out}

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        topologies = scope.ctx.service_topology
        if not topologies:
            return False
        if scope.resource != "endpointslices" or escaped(raw):
            return True  # Endpoints are named after their Service: decode them
        found = _SERVICE_LABEL.findall(raw)
        if len(found) != raw.count(b'"kubernetes.io/service-name"'):
            return True  # written in a way the pattern does not read: decode to be sure
        names = scope.ctx.topology_names
        return any(name.decode("utf-8", "replace") in names for name in found)

    def interest(self, scope: Scope) -> tuple[str, ...] | None:
        names = scope.ctx.topology_names
        if not names:
            return ()
        if len(names) > MAX_PATTERNS:
            return ('"kubernetes.io/service-name"',) if scope.resource == "endpointslices" \
                else None
        return tuple(f'"{n}"' for n in names)

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return (old.pool, old.pool_nodes, old.zone, old.node_name, old.service_topology) != (
            new.pool, new.pool_nodes, new.zone, new.node_name, new.service_topology)
