"""serviceenvupdater: the ``KUBERNETES_SERVICE_*`` variables kubelet sees point at the hub.

YurtHub's semantics (``pkg/yurthub/filter/serviceenvupdater``): in every container of
``spec.containers`` (not init containers), the values of ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT`` that a pod sets itself (every occurrence) become the hub's
serving address and HTTPS port.  Variables a pod does not set are not added.  As in
YurtHub, the filter also runs on kubelet's pod patches: their answer is cached as the pod,
and an offline answer must show the same environment as an online one (a changed env
would restart a container).
Disabled in ``--working-mode cloud``, as in YurtHub.
"""

from __future__ import annotations

from typing import Any

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.context import FilterContext

NAME = "serviceenvupdater"
HOST_VAR = "KUBERNETES_SERVICE_HOST"
PORT_VAR = "KUBERNETES_SERVICE_PORT"


def _container(c: Any, host: str, port: str) -> Any:
    env = c.get("env") if isinstance(c, dict) else None
    if not isinstance(env, list):
        return c
    new_env: list[Any] | None = None
    for j, var in enumerate(env):
        if not isinstance(var, dict):
            continue
        name = var.get("name")
        if name in (HOST_VAR, PORT_VAR):
            # Every occurrence: of a name set twice, the container gets the last one.
            value = host if name == HOST_VAR else port
            if var.get("value") != value:
                if new_env is None:
                    new_env = list(env)
                new_env[j] = {**var, "value": value}
    return c if new_env is None else {**c, "env": new_env}


class ServiceEnvUpdater:
    name = NAME
    resources = {("", "pods"): ("get", "list", "watch", "patch")}
    default_components = ("kubelet",)
    drops = False

    def filter(self, obj: Obj, scope: Scope) -> Obj | None:
        if scope.resource != "pods" or scope.group != "":
            return obj
        spec = obj.get("spec")
        containers = spec.get("containers") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(containers, list):
            return obj
        host, port = scope.ctx.hub_host, str(scope.ctx.hub_port)
        new = [_container(c, host, port) for c in containers]
        if all(a is b for a, b in zip(new, containers, strict=True)):
            return obj
        return {**obj, "spec": {**spec, "containers": new}}

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        return b"KUBERNETES_SERVICE_" in raw or escaped(raw)

    def interest(self, scope: Scope) -> tuple[str, ...] | None:
        return ("KUBERNETES_SERVICE_",)

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return (old.hub_host, old.hub_port) != (new.hub_host, new.hub_port)
