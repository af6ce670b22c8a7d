"""The filter manager: the current settings and cluster snapshot, and what a change touches.

design: what the filters depend on arrives piece by piece from the hub's own watches
(yurt-hub-cfg, this Node, the NodePools, the Services with a topology annotation) or, at
start, from the copy persisted in the cache, which also records the hub's own settings the
filters were built from (``Own``: a start with others tells who they touch, as a change of
the cluster's pieces does).  Each piece replaces its part of ``Inputs``;
the manager rebuilds the immutable ``FilterSettings`` and ``FilterContext`` from them and
swaps both in at once, so a request sees one consistent pair.  It then works out which
clients' answers may differ — (agent, group, resource) triples, each agent's every cache
component — and tells the
listener, which ends those clients' open watches and marks their cached views stale.
Until every piece the active filters need is known, ``chain_for`` refuses requests that
some filter could apply to (503): a client gets filtered data or none, never unfiltered.
Pure apart from a lock: no sockets, files or threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from yurthub.config import Config
from yurthub.errors import ServiceUnavailable
from yurthub.filters.chain import Chain, Scope
from yurthub.filters.context import FilterContext
from yurthub.filters.settings import (
    BY_NAME,
    FilterSettings,
    active_filters,
    affected,
    cache_agents,
)
from yurthub.filters.visibility import ClientView, Visibility

log = logging.getLogger(__name__)

HUB_AGENTS = ("yurthub",)
# (agent, group, resource): the User-Agent's name, as the filters are chosen by it; a change
# touches every cache component of that agent (``kube-proxy``, ``kube-proxy@pod``, ...)
Client = tuple[str, str, str]
ServiceKey = tuple[str, str]


@dataclass(frozen=True)
class Inputs:
    """What the cluster said, each part None until it is known."""

    configmap: Mapping[str, str] | None = None          # yurt-hub-cfg's data ({} if none)
    node: tuple[str, str] | None = None                 # this Node's (pool, zone) labels
    nodepools: Mapping[str, frozenset[str]] | None = None   # pool -> status.nodes
    services: Mapping[ServiceKey, str] | None = None    # annotated Service -> topologyKeys

    def to_json(self) -> dict[str, object]:
        return {
            "configmap": None if self.configmap is None else dict(self.configmap),
            "node": None if self.node is None else list(self.node),
            "nodepools": None if self.nodepools is None else
            {k: sorted(v) for k, v in sorted(self.nodepools.items())},
            "services": None if self.services is None else
            [[ns, name, t] for (ns, name), t in sorted(self.services.items())],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> Inputs:
        """The persisted copy; ValueError when it is not one."""
        try:
            return cls._from_json(d)
        except (TypeError, ValueError, IndexError, AttributeError, KeyError) as e:
            raise ValueError(f"not a persisted filter configuration: {e!r}") from None

    @classmethod
    def _from_json(cls, d: Mapping[str, Any]) -> Inputs:
        cm, node, pools, services = (d.get("configmap"), d.get("node"), d.get("nodepools"),
                                     d.get("services"))
        return cls(
            configmap=None if cm is None else {str(k): str(v) for k, v in dict(cm).items()},
            node=None if node is None else (str(node[0]), str(node[1])),
            nodepools=None if pools is None else
            {str(k): frozenset(str(n) for n in v) for k, v in dict(pools).items()},
            services=None if services is None else
            {(str(s[0]), str(s[1])): str(s[2]) for s in list(services)},
        )


@dataclass(frozen=True)
class Own:
    """What the hub's own settings give the filters: which run (``enable_resource_filter``,
    ``disabled_resource_filters``, ``working_mode``), this node and its pool setting, and
    where pods are pointed at the hub.  Persisted with the inputs: the cache holds what was
    filtered under them."""

    filters: tuple[str, ...]
    node_name: str
    nodepool_name: str
    hub_host: str
    hub_port: int

    @classmethod
    def of(cls, cfg: Config) -> Own:
        active = active_filters(cfg.enable_resource_filter, cfg.disabled_resource_filters,
                                cfg.working_mode)
        return cls(tuple(f.name for f in active), cfg.node_name, cfg.nodepool_name,
                   cfg.hub_serving_address, cfg.secure_proxy_port or DEFAULT_SECURE_PROXY_PORT)

    def to_json(self) -> dict[str, object]:
        return {"filters": list(self.filters), "nodeName": self.node_name,
                "nodepoolName": self.nodepool_name, "hubHost": self.hub_host,
                "hubPort": self.hub_port}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Own:
        """The persisted copy; ValueError when it is not one."""
        try:
            return cls(tuple(str(n) for n in d["filters"] if str(n) in BY_NAME),
                       str(d["nodeName"]), str(d["nodepoolName"]), str(d["hubHost"]),
                       int(d["hubPort"]))
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"not persisted filter settings: {e!r}") from None

    def differences(self, other: Own) -> str:
        """What differs, for a log line and the views' stale reason."""
        mine, theirs = self.to_json(), other.to_json()
        return ", ".join(f"{k} {mine[k]} -> {theirs[k]}" for k in mine if mine[k] != theirs[k])


@dataclass(frozen=True)
class Snapshot:
    settings: FilterSettings
    ctx: FilterContext
    missing: tuple[str, ...] = field(default=())   # what is not known yet ("" when ready)


Listener = Callable[[set[Client], str], None]


# Where the filters point pods when this hub serves no HTTPS (secure_proxy_port = 0): YurtHub's
# port, on hub_serving_address (a TLS front the operator runs there, or a hub that will).
DEFAULT_SECURE_PROXY_PORT = 10268


class FilterManager:
    """Answers "which chain for this request" and notices what a change of inputs touches."""

    def __init__(self, cfg: Config, *, visibility: Visibility | None = None) -> None:
        self.cfg = cfg
        self.own = Own.of(cfg)
        self.active = tuple(BY_NAME[n] for n in self.own.filters)
        self.visibility = visibility or Visibility()
        self._inputs = Inputs()
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._agent_listeners: list[Callable[[frozenset[str]], None]] = []
        self._snapshot = self._build(self._inputs)
        if self.active:
            log.info("response filters: %s", ", ".join(f.name for f in self.active))

    # -- what is needed -----------------------------------------------------------------

    @property
    def needs_pool(self) -> bool:
        """Whether this node's pool matters (and must be read from its Node)."""
        return _needs_pool(self.own.filters)

    @property
    def needs_topology(self) -> bool:
        """Whether NodePools and Services' topology annotations matter."""
        return "servicetopology" in self.own.filters

    @staticmethod
    def _missing(inputs: Inputs, own: Own) -> tuple[str, ...]:
        if not own.filters:
            return ()
        out = []
        if inputs.configmap is None:
            out.append("kube-system/yurt-hub-cfg")
        if _needs_pool(own.filters) and not own.nodepool_name and inputs.node is None:
            out.append(f"node {own.node_name}")
        if "servicetopology" in own.filters:
            if inputs.nodepools is None:
                out.append("nodepools")
            if inputs.services is None:
                out.append("services")
        return tuple(out)

    # -- building ---------------------------------------------------------------------------

    def _build(self, inputs: Inputs, own: Own | None = None) -> Snapshot:
        own = own or self.own
        pool, zone = inputs.node or ("", "")
        if own.nodepool_name:
            pool = own.nodepool_name
        members = None
        if pool and inputs.nodepools is not None:
            members = inputs.nodepools.get(pool)
        ctx = FilterContext(
            node_name=own.node_name, hub_host=own.hub_host, hub_port=own.hub_port, pool=pool,
            pool_nodes=members, zone=zone,
            service_topology=dict(inputs.services or {}))
        settings = FilterSettings.build(tuple(BY_NAME[n] for n in own.filters),
                                        inputs.configmap)
        return Snapshot(settings, ctx, self._missing(inputs, own))

    # -- reading ----------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def inputs(self) -> Inputs:
        return self._inputs

    def persisted(self) -> dict[str, object]:
        """The copy to persist: the inputs and the settings they are filtered under."""
        return {**self._inputs.to_json(), "own": self.own.to_json()}

    def not_ready(self) -> str | None:
        """Why filtered requests cannot be served yet (None once the configuration is known)."""
        missing = self._snapshot.missing
        if not missing:
            return None
        return "the filter configuration is not known yet (waiting for " + \
            ", ".join(missing) + ")"

    def chain_for(self, component: str, verb: str, group: str, version: str,
                  resource: str) -> Chain | None:
        """The chain for a request, or None when no filter applies (the common case).

        Raises ServiceUnavailable while the configuration is not known and some client
        could get a filter on this verb and resource.
        """
        snap = self._snapshot
        if not snap.settings.active or not component or component.startswith(HUB_AGENTS):
            return None
        if snap.missing and snap.settings.may_filter(verb, group, resource):
            raise ServiceUnavailable(f"yurthub: {self.not_ready()}",
                                     details={"retryAfterSeconds": 1})
        filters = snap.settings.filters_for(component, verb, group, resource)
        if not filters:
            return None
        return Chain(filters, Scope(group, version, resource, snap.ctx))

    def client_view(self, component: str, verb: str, group: str, resource: str
                    ) -> ClientView | None:
        """The client's part of ``visibility`` for a list or watch that some filter could
        apply to, whether or not one applies to this client now (a change may give it one);
        None for anything else.  Take it before ``chain_for``."""
        if verb not in ("list", "watch") or not component or component.startswith(HUB_AGENTS):
            return None
        if not self._snapshot.settings.may_filter(verb, group, resource):
            return None
        return self.visibility.view((component, group, resource))

    def cache_agents(self) -> frozenset[str]:
        return cache_agents(self._inputs.configmap)

    # -- changes ----------------------------------------------------------------------------

    def on_change(self, listener: Listener) -> None:
        """``listener(clients, why)`` after a change that may alter those clients' answers."""
        self._listeners.append(listener)

    def on_cache_agents(self, listener: Callable[[frozenset[str]], None]) -> None:
        self._agent_listeners.append(listener)

    def load(self, inputs: Inputs, own: Own | None = None) -> set[Client]:
        """Start from a persisted copy: the baseline the cache was written under, so no
        listener is told, unless the hub's own settings it was filtered under (``own``;
        None when the copy does not say) differ from this start's.  Returns the clients
        told."""
        with self._lock:
            self._inputs = inputs
            self._snapshot = new = self._build(inputs)
        if not new.missing:
            log.info("filter configuration loaded from the cache")
        if own is None or own == self.own:
            return set()
        why = f"the hub's settings changed since the cache was written: {own.differences(self.own)}"
        touched = self._touched(self._build(inputs, own), new)
        if touched:
            self._tell(touched, why)
        return touched

    def update(self, why: str, **parts: object) -> set[Client]:
        """Replace parts of the inputs (``configmap=``, ``node=``, ``nodepools=``,
        ``services=``); returns the clients whose answers may differ (listeners told)."""
        with self._lock:
            old_inputs, old = self._inputs, self._snapshot
            inputs = replace(old_inputs, **parts)  # type: ignore[arg-type]
            if inputs == old_inputs:
                return set()
            new = self._build(inputs)
            self._inputs, self._snapshot = inputs, new
            touched = self._touched(old, new)
        if old.missing and not new.missing:
            log.info("filter configuration known (%s)", why)
        agents_changed = cache_agents(old_inputs.configmap) != cache_agents(inputs.configmap)
        if touched:
            self._tell(touched, why)
        if agents_changed:
            for agent_listener in self._agent_listeners:
                agent_listener(self.cache_agents())
        return touched

    def _tell(self, touched: set[Client], why: str) -> None:
        log.info("filters changed (%s): ending the watches and marking the cached views "
                 "of %s", why, ", ".join(sorted(_describe(c) for c in touched)))
        self.visibility.forget(touched)
        for listener in self._listeners:
            listener(touched, why)

    def _touched(self, old: Snapshot, new: Snapshot) -> set[Client]:
        if old.missing:
            # No filtered request was served before (they got 503), so no watch is open on
            # an older configuration.  The cache may hold what an older hub wrote; the local
            # proxy filters what it serves again, with the configuration it has then.
            return set()
        out = affected(old.settings, new.settings)
        changed = [f.name for f in self.active if f.depends(old.ctx, new.ctx)]
        if changed:
            out |= new.settings.clients_of(changed)
        return out


def _needs_pool(filters: tuple[str, ...]) -> bool:
    return bool({"servicetopology", "nodeportisolation"} & set(filters))


def _describe(client: Client) -> str:
    component, group, resource = client
    return f"{component} {resource}" + (f".{group}" if group else "")
