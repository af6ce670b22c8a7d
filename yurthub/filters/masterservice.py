"""masterservice: kubelet sees the ``default/kubernetes`` Service at the hub's address.

YurtHub's semantics (``pkg/yurthub/filter/masterservice``): ``spec.clusterIP`` and
``spec.clusterIPs`` become the hub's serving address (``--hub-serving-address``), and the
port named ``https`` becomes the hub's HTTPS port (``--secure-proxy-port``).  kubelet
builds every pod's ``KUBERNETES_SERVICE_HOST``/``PORT`` from this Service, so pods using
InClusterConfig talk to the hub, which keeps answering them while the cloud is away.
Every other Service passes unchanged.
"""

from __future__ import annotations

from yurthub.filters.chain import Obj, Scope
from yurthub.filters.common import KubernetesToHub, https_port
from yurthub.filters.context import namespace_name

NAME = "masterservice"
NAMESPACE = "default"
SERVICE = "kubernetes"


class MasterService(KubernetesToHub):
    name = NAME
    resources = {("", "services"): ("list", "watch")}
    default_components = ("kubelet",)

    def filter(self, obj: Obj, scope: Scope) -> Obj | None:
        if scope.resource != "services" or scope.group != "" \
                or namespace_name(obj) != (NAMESPACE, SERVICE):
            return obj
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return obj
        host, port = scope.ctx.hub_host, scope.ctx.hub_port
        new_spec = {**spec, "clusterIP": host, "clusterIPs": [host]}
        ports = spec.get("ports")
        if isinstance(ports, list):
            new_spec["ports"] = https_port(ports, port)
        if new_spec == spec:
            return obj  # already the hub's (a cached copy filtered before)
        return {**obj, "spec": new_spec}
