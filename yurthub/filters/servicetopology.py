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
the endpoints of its zone (a v1 slice's per-endpoint ``zone``) instead of only its own.
Endpoints' addresses carry no zone: for them it is only its own, as for a node in no zone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.context import FilterContext, labels_of, namespace_name
from yurthub.filters.slicebytes import UNDECIDED, Undecided, filter_slice
from yurthub.kube.bulk import Keyed, keyed_regex

NAME = "servicetopology"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "kubernetes.io/zone"
NODEPOOL = "openyurt.io/nodepool"

SERVICE_LABEL_KEY = f'"{SERVICE_NAME_LABEL}"'
_SERVICE_LABEL = re.compile(keyed_regex(SERVICE_LABEL_KEY).encode())

Keep = Callable[[dict[str, Any]], bool]


def _node_of_endpoint(ep: dict[str, Any], v1beta1: bool) -> str | None:
    if v1beta1:
        topology = ep.get("topology")
        node = topology.get(HOSTNAME) if isinstance(topology, dict) else None
    else:
        node = ep.get("nodeName")
    return node if isinstance(node, str) and node else None


class _OnNodes:
    """Keep the endpoints on these nodes (a node name that is a non-empty string)."""

    def __init__(self, nodes: frozenset[str], v1beta1: bool) -> None:
        self.nodes = nodes
        self.v1beta1 = v1beta1

    def __call__(self, ep: dict[str, Any]) -> bool:
        return _node_of_endpoint(ep, self.v1beta1) in self.nodes


def _nodes_of(keep: Keep) -> frozenset[str] | None:
    return keep.nodes if isinstance(keep, _OnNodes) else None


def keeper(topology: str, ctx: FilterContext, v1beta1: bool = False, zones: bool = True
           ) -> Keep | None:
    """Which endpoints to keep for a Service of ``topology``, or None to keep them all
    (``zones``: the endpoints say their zone, as a v1 EndpointSlice's do)."""
    if topology == HOSTNAME:
        return _OnNodes(frozenset({ctx.node_name}) - {""}, v1beta1)
    if topology not in (NODEPOOL, ZONE):
        return None
    if ctx.pool:
        members = ctx.pool_nodes
        if members is None:
            return None  # YurtHub: the pool's nodes cannot be read, the slice passes as is
        return _OnNodes(frozenset(members) - {""}, v1beta1)
    if topology == ZONE and ctx.zone and zones and not v1beta1:
        zone = ctx.zone
        return lambda ep: _node_of_endpoint(ep, False) is not None and ep.get("zone") == zone
    return _OnNodes(frozenset({ctx.node_name}) - {""}, v1beta1)


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
        nodes = _nodes_of(keep)
        if nodes is not None and scope.version != "v1beta1":
            # the common cases (this node, this node's pool), without a call per endpoint
            kept = [ep for ep in endpoints if type(ep) is dict and ep.get("nodeName") in nodes]
        else:
            kept = [ep for ep in endpoints if isinstance(ep, dict) and keep(ep)]
        if len(kept) == len(endpoints) and isinstance(obj.get("endpoints"), list):
            return obj
        return {**obj, "endpoints": kept}

    def _endpoints(self, obj: Obj, scope: Scope) -> Obj:
        namespace, name = namespace_name(obj)
        keep = keeper(scope.ctx.topology_of(namespace, name), scope.ctx, zones=False)
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

    def bytes_filter(self, scope: Scope) -> Callable[[bytes], bytes | None] | None:
        """``filter`` on a v1 EndpointSlice's bytes (filters/slicebytes.py), for this scope:
        the new bytes, or None when the object must be decoded.  None for other resources."""
        ctx = scope.ctx
        if (scope.group, scope.version, scope.resource) != ("discovery.k8s.io", "v1",
                                                            "endpointslices") \
                or not ctx.service_topology:
            return None

        # topology -> what it keeps, decided once per scope: the kept set of a big pool is
        # built (and hashed, for its pattern's cache) once, not once per slice
        decided: dict[str, frozenset[str] | Undecided | None] = {}

        def lookup(namespace: str, service: str) -> frozenset[str] | Undecided | None:
            topology = ctx.topology_of(namespace, service)
            try:
                return decided[topology]
            except KeyError:
                pass
            keep = keeper(topology, ctx)
            nodes = None if keep is None else _nodes_of(keep)
            decided[topology] = got = None if keep is None else (
                UNDECIDED if nodes is None else nodes)
            return got

        return lambda raw: filter_slice(raw, lookup)

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

    def interest(self, scope: Scope) -> tuple[str | Keyed, ...] | None:
        names = scope.ctx.topology_names
        if not names:
            return ()
        if scope.resource == "endpointslices":
            return (Keyed(SERVICE_LABEL_KEY, names),)
        return (Keyed('"name"', names),)  # Endpoints are named after their Service

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return (old.pool, old.pool_nodes, old.zone, old.node_name, old.service_topology) != (
            new.pool, new.pool_nodes, new.zone, new.node_name, new.service_topology)
