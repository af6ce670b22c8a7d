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

from yurthub.filters.chain import Obj, Scope
from yurthub.filters.common import KubernetesToHub, https_port
from yurthub.filters.context import namespace_name

NAME = "forwardkubesvctraffic"
SLICE = ("default", "kubernetes")


def address_type(host: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(host).version == 6 else "IPv4"
    except ValueError:
        return "IPv4"


class ForwardKubeSvcTraffic(KubernetesToHub):
    name = NAME
    resources = {("discovery.k8s.io", "endpointslices"): ("list", "watch")}
    default_components = ("kube-proxy",)

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
            new["ports"] = https_port(ports, port)
        return obj if new == obj else new
