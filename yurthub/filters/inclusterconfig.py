"""inclusterconfig: kube-proxy's own kubeconfig line is commented out, for kubelet's copy.

YurtHub's semantics (``pkg/yurthub/filter/inclusterconfig``): in the ``config.conf`` of
``kube-system/kube-proxy``, a line that is ``kubeconfig: <path>`` once trimmed of spaces
(exactly one ``:``) gets ``#`` before ``kubeconfig``.  kube-proxy then uses InClusterConfig,
built from the ``KUBERNETES_SERVICE_*`` variables that kubelet gives its pod, which the
masterservice filter points at the hub.  The ConfigMap reaches kube-proxy through kubelet
(a volume), which is why the filter is kubelet's.
"""

from __future__ import annotations

from yurthub.filters.chain import Obj, Scope, escaped
from yurthub.filters.context import FilterContext, namespace_name

NAME = "inclusterconfig"
CONFIGMAP = ("kube-system", "kube-proxy")
DATA_KEY = "config.conf"
KEY = "kubeconfig"


def comment_out_kubeconfig(text: str) -> str:
    """``config.conf`` with its ``kubeconfig:`` line commented (the same text without one)."""
    lines = text.split("\n")
    out = []
    for line in lines:
        items = line.strip(" ").split(":")
        if len(items) == 2 and items[0] == KEY:
            line = line.replace(KEY, "#" + KEY, 1)
        out.append(line)
    return "\n".join(out)


class InClusterConfig:
    name = NAME
    resources = {("", "configmaps"): ("get", "list", "watch")}
    default_components = ("kubelet",)
    drops = False

    def filter(self, obj: Obj, scope: Scope) -> Obj | None:
        if scope.resource != "configmaps" or scope.group != "" \
                or namespace_name(obj) != CONFIGMAP:
            return obj
        data = obj.get("data")
        text = data.get(DATA_KEY) if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(text, str) or not text:
            return obj
        new = comment_out_kubeconfig(text)
        if new == text:
            return obj
        return {**obj, "data": {**data, DATA_KEY: new}}

    def may_change(self, raw: bytes, scope: Scope) -> bool:
        return b'"kube-proxy"' in raw or escaped(raw)

    def interest(self, scope: Scope) -> tuple[str, ...] | None:
        return ('"kube-proxy"',)

    def depends(self, old: FilterContext, new: FilterContext) -> bool:
        return False
