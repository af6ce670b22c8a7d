"""Could this node keep running if the cloud went now?  The verdict of the Autonomy condition.

YurtHub reports ``Autonomy`` True while its cache had fewer than 3 write errors in a row;
that says nothing about whether what a restarting component needs is there.  Here the
condition is True only when every cached component's *essential* collections have a
complete view on disk that is neither stale nor incomplete:

- kubelet: the pods of this node, this node, services, and every ConfigMap and Secret its
  (non-terminal) pods use — volumes, projected sources, env and envFrom, unless optional;
- kube-proxy and coredns: services and endpointslices (in-cluster ones, pods on 10268,
  under ``kube-proxy@pod`` and ``coredns@pod``).

kubelet is always essential (a node without its cache cannot restart a pod offline);
kube-proxy and coredns are when they have something cached.  Pool-scoped resources (the
multiplexer's) are read from its one shared copy, which every component is answered from;
each shared copy, once made, is essential too.  False names what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from yurthub.cache.views import CollectionState, View
from yurthub.config import MULTIPLEXER_AGENT
from yurthub.errors import StorageError
from yurthub.storage import CollectionKey, DiskStore

TRUE, FALSE = "True", "False"
_MESSAGE_ITEMS = 6
_ALL, _NODE_PODS, _OWN_NODE = "all", "pods of this node", "this node"
_EP = "discovery.k8s.io"
ESSENTIAL: dict[str, list[tuple[str, str, str]]] = {
    "kubelet": [("", "pods", _NODE_PODS), ("", "nodes", _OWN_NODE), ("", "services", _ALL)],
    "kube-proxy": [("", "services", _ALL), (_EP, "endpointslices", _ALL)],
    "coredns": [("", "services", _ALL), (_EP, "endpointslices", _ALL)],
}
_ALWAYS = frozenset({"kubelet"})
# In-cluster kube-proxy and coredns (pods on 10268) cache under "<name>@pod" (access/keys.py)
# and need the same; a pod saying kubelet/1 is not kubelet.
_POD = "@pod"
_IN_CLUSTER = ("kube-proxy", "coredns")


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    message: str
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "message": self.message,
                "missing": list(self.missing)}


def evaluate(store: DiskStore, node: str, shared: frozenset[str] = frozenset()) -> Verdict:
    """The Autonomy verdict for ``node`` from what ``store`` holds now.  Never raises.

    ``shared`` names the pool-scoped resources (``group/version/resource``): every component
    reads those from the multiplexer's one copy (its own only while there is none).
    """
    keys = store.collections()
    components = {ck.component for ck in keys}
    missing: list[str] = []
    checked = []
    essential = [*ESSENTIAL.items(), *((c + _POD, ESSENTIAL[c]) for c in _IN_CLUSTER)]
    for component, needs in essential:
        if component not in components and component not in _ALWAYS:
            continue
        checked.append(component)
        for group, resource, want in needs:
            owner = component
            if any(k.split("/")[0] == group and k.split("/")[-1] == resource for k in shared) \
                    and any((ck.component, ck.group, ck.resource) ==
                            (MULTIPLEXER_AGENT, group, resource) for ck in keys):
                owner = MULTIPLEXER_AGENT
            missing += _collection(store, keys, node, owner, group, resource, want)
    for key in sorted(shared):  # the shared copies every component is answered from
        group, resource = key.split("/")[0], key.split("/")[-1]
        if any((ck.component, ck.group, ck.resource) == (MULTIPLEXER_AGENT, group, resource)
               for ck in keys):
            if MULTIPLEXER_AGENT not in checked:
                checked.append(MULTIPLEXER_AGENT)
            missing += _collection(store, keys, node, MULTIPLEXER_AGENT, group, resource, _ALL)
    missing += list(_mounted(store, keys, node))
    if missing:
        shown = "; ".join(missing[:_MESSAGE_ITEMS])
        more = len(missing) - _MESSAGE_ITEMS
        return Verdict(FALSE, "EssentialCacheMissing",
                       shown + (f"; and {more} more" if more > 0 else ""), missing)
    return Verdict(TRUE, "EssentialCacheFresh",
                   f"fresh, complete views on disk of everything {', '.join(checked)} need "
                   "to run without the cloud")


def _collection(store: DiskStore, keys: list[CollectionKey], node: str, component: str,
                group: str, resource: str, want: str) -> list[str]:
    what = f"{resource}.{group}" if group else resource
    cks = [ck for ck in keys if (ck.component, ck.group, ck.resource)
           == (component, group, resource)]
    if not cks:
        return [f"{component}: {what} not cached"]
    covering: list[View] = []
    for ck in cks:
        state = CollectionState.from_json(store.state(ck) or {})
        covering += [v for v in state.views.values() if _covers(v, want, node)]
        if want == _OWN_NODE and any(v.key.namespace == "" for v in state.views.values()) \
                and ("", node) not in store.entries(ck):
            return [f"{component}: node {node} not in its cached nodes"]
    label = what if want == _ALL else f"{what} ({want})"
    if not covering:
        return [f"{component}: no complete list of {label}"]
    if any(not v.stale and not v.incomplete for v in covering):
        return []
    v = covering[0]
    if v.incomplete:
        return [f"{component}: {label} incomplete ({v.incomplete})"]
    return [f"{component}: {label} stale ({v.stale})"]


def _covers(view: View, want: str, node: str) -> bool:
    key = view.key
    if key.namespace:
        return False
    if want == _ALL:
        return True  # the component's own selectors (kube-proxy's labels) are its business
    name = "spec.nodeName" if want == _NODE_PODS else "metadata.name"
    return not key.labels and key.fields in ("", f"{name}={node}")


def _mounted(store: DiskStore, keys: list[CollectionKey], node: str) -> Iterator[str]:
    """ConfigMaps and Secrets the node's pods use that kubelet's cache lacks."""
    pods = [ck for ck in keys if (ck.component, ck.group, ck.resource) == ("kubelet", "",
                                                                           "pods")]
    by_kind = {r: [ck for ck in keys if (ck.component, ck.group, ck.resource)
                   == ("kubelet", "", r)] for r in ("configmaps", "secrets")}
    seen: set[tuple[str, str, str]] = set()
    for ck in pods:
        for (ns, name), entry in store.entries(ck).items():
            if (entry.meta.get("fields") or {}).get("spec.nodeName") != node:
                continue
            try:
                body = store.read(ck, ns, name)
                pod = json.loads(body) if body is not None else None
            except (StorageError, ValueError):
                continue  # the damage check reports it; the pods view says incomplete
            if not isinstance(pod, dict) or \
                    (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for resource, ref in _references(pod):
                if (resource, ns, ref) in seen:
                    continue
                seen.add((resource, ns, ref))
                problem = _has(store, by_kind[resource], ns, ref)
                if problem:
                    kind = resource[:-1]
                    yield f"kubelet: {kind} {ns}/{ref} (used by pod {name}) {problem}"


def _has(store: DiskStore, cks: list[CollectionKey], ns: str, name: str) -> str:
    for ck in cks:
        if (ns, name) in store.entries(ck):
            state = CollectionState.from_json(store.state(ck) or {})
            views = [v for v in state.views.values()
                     if v.key.namespace in ("", ns) and not v.key.labels
                     and v.key.fields in ("", f"metadata.name={name}")]
            if views and all(v.stale or v.incomplete for v in views):
                v = views[0]
                return f"stale ({v.stale or v.incomplete})"
            return ""
        state = CollectionState.from_json(store.state(ck) or {})
        if (ns, name) in state.lost:
            return f"set aside as damaged ({state.lost[(ns, name)]})"
    return "not cached"


def _references(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(configmaps|secrets, name) of every non-optional ConfigMap and Secret a pod uses."""
    spec = pod.get("spec") or {}
    for vol in spec.get("volumes") or []:
        yield from _source(vol.get("configMap"), "configmaps", "name")
        yield from _source(vol.get("secret"), "secrets", "secretName")
        for src in ((vol.get("projected") or {}).get("sources") or []):
            yield from _source(src.get("configMap"), "configmaps", "name")
            yield from _source(src.get("secret"), "secrets", "name")
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for c in containers:
        for env in c.get("envFrom") or []:
            yield from _source(env.get("configMapRef"), "configmaps", "name")
            yield from _source(env.get("secretRef"), "secrets", "name")
        for env in c.get("env") or []:
            ref = env.get("valueFrom") or {}
            yield from _source(ref.get("configMapKeyRef"), "configmaps", "name")
            yield from _source(ref.get("secretKeyRef"), "secrets", "name")


def _source(src: Any, resource: str, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(src, dict) and not src.get("optional") and isinstance(src.get(key), str) \
            and src[key]:
        yield resource, src[key]
