"""forwardkubesvctraffic: kube-proxy sends ``kubernetes`` Service traffic to the hub.

YurtHub's semantics (``pkg/yurthub/filter/forwardkubesvctraffic``): the
``default/kubernetes`` EndpointSlice gets one ready endpoint, the hub's serving address, and
its port named ``https`` becomes the hub's HTTPS port; only when the slice's address type is
the family of that address (IPv4, or IPv6 for an IPv6 address), otherwise it is left alone.
Pods reaching the ``kubernetes`` Service IP are then served by the hub, online and offline.
Disabled in ``--working-mode cloud``, as in YurtHub.
"""

from __future__ import annotations

import ipaddress

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.context import FilterContext, namespace_name

NAME = "forwardkubesvctraffic"
SLICE = ("default", "kubernetes")
PORT_NAME = "https"


def address_type(host: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(host).version == 6 else "IPv4"
    except ValueError:
        return "IPv4"


class ForwardKubeSvcTraffic:
    name = NAME
    resources = {("discovery.k8s.io", "endpointslices"): ("list", "watch")}
    default_components = ("kube-proxy",)
    drops = False

    def filter(self, obj: Obj, scope: Scope) -> Obj | None:
        if scope.resource != "endpointslices" or scope.group != "discovery.k8s.io" \
                or scope.version != "v1" or namespace_name(obj) != SLICE:
            return obj
        host, port = scope.ctx.hub_host, scope.ctx.hub_port
        if obj.get("addressType") != address_type(host):
            return obj
        new: Obj = {**obj, "endpoints": [{"addresses": [host],
                                          "conditions": {"ready": True}}]}
        ports = obj.get("ports")
        if isinstance(ports, list):
            new_ports = list(ports)
            for i, p in enumerate(ports):
                if isinstance(p, dict) and p.get("name") == PORT_NAME:
                    new_ports[i] = {**p, "port": port}
                    break
            new["ports"] = new_ports
        return obj if new == obj else new

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        return b'"kubernetes"' in raw or escaped(raw)

    def interest(self, scope: Scope) -> tuple[str, ...] | None:
        return ('"kubernetes"',)

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return (old.hub_host, old.hub_port) != (new.hub_host, new.hub_port)
