"""Which client gets which filter: YurtHub's defaults, ``yurt-hub-cfg`` and the settings.

The seven filters are registered here in YurtHub's order (which is also the order a chain
runs them in).  ``FilterSettings.build`` turns the settings (``enable_resource_filter``,
``disabled_resource_filters``, ``working_mode``) and the data of the ``kube-system/yurt-hub-cfg``
ConfigMap (key = filter name, value = extra client names, comma-separated; key
``cache_agents`` = extra cache agents) into a table from (component, verb, group,
resource) to the names of the filters that run.  ``affected`` tells which clients'
answers a change of table touches.  Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from yurthub.config import FILTER_NAMES
from yurthub.filters.chain import ObjectFilter
from yurthub.filters.discardcloudservice import DiscardCloudService
from yurthub.filters.forwardkubesvctraffic import ForwardKubeSvcTraffic
from yurthub.filters.inclusterconfig import InClusterConfig
from yurthub.filters.masterservice import MasterService
from yurthub.filters.nodeportisolation import NodePortIsolation
from yurthub.filters.serviceenvupdater import ServiceEnvUpdater
from yurthub.filters.servicetopology import ServiceTopology

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "yurt-hub-cfg"
CACHE_AGENTS_KEY = "cache_agents"

# YurtHub's order (cmd/yurthub/app/options/filters.go RegisterAllFilters).
REGISTRY: tuple[ObjectFilter, ...] = (
    ServiceTopology(), MasterService(), DiscardCloudService(), InClusterConfig(),
    NodePortIsolation(), ForwardKubeSvcTraffic(), ServiceEnvUpdater(),
)
BY_NAME: dict[str, ObjectFilter] = {f.name: f for f in REGISTRY}
assert tuple(BY_NAME) == FILTER_NAMES, "config.FILTER_NAMES must list the registry"

# YurtHub's DisabledInCloudMode.
CLOUD_DISABLED = frozenset({"discardcloudservice", "forwardkubesvctraffic", "serviceenvupdater"})

Key = tuple[str, str, str, str]  # (component, verb, group, resource)


def split_names(value: str) -> list[str]:
    """A comma-separated list of client names, trimmed and lower-cased (as components are)."""
    return [p.strip().lower() for p in value.split(",") if p.strip()]


def active_filters(enabled: bool, disabled: Iterable[str], working_mode: str
                   ) -> tuple[ObjectFilter, ...]:
    off = set(disabled)
    if not enabled or "*" in off:
        return ()
    if working_mode == "cloud":
        off |= CLOUD_DISABLED
    return tuple(f for f in REGISTRY if f.name not in off)


@dataclass(frozen=True)
class FilterSettings:
    """The table of who gets which filter, and the filters that run at all."""

    active: tuple[ObjectFilter, ...] = ()
    table: Mapping[Key, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, active: tuple[ObjectFilter, ...],
              configmap: Mapping[str, str] | None = None) -> FilterSettings:
        table: dict[Key, list[str]] = {}
        data = configmap or {}
        for f in active:
            extra = data.get(f.name)
            components = list(f.default_components)
            if isinstance(extra, str):
                components += [c for c in split_names(extra) if c not in components]
            for component in components:
                for (group, resource), verbs in f.resources.items():
                    for verb in verbs:
                        table.setdefault((component, verb, group, resource), []).append(f.name)
        return cls(active, {k: tuple(v) for k, v in table.items()})

    def names_for(self, component: str, verb: str, group: str, resource: str
                  ) -> tuple[str, ...]:
        return self.table.get((component, verb, group, resource), ())

    def filters_for(self, component: str, verb: str, group: str, resource: str
                    ) -> tuple[ObjectFilter, ...]:
        return tuple(BY_NAME[n] for n in self.names_for(component, verb, group, resource))

    def may_filter(self, verb: str, group: str, resource: str) -> bool:
        """True when some client could get a filter on this verb and resource (whatever
        yurt-hub-cfg says): such requests wait until the configuration is known."""
        return any(verb in f.resources.get((group, resource), ()) for f in self.active)

    def clients_of(self, names: Iterable[str]) -> set[tuple[str, str, str]]:
        """(component, group, resource) of every client that gets one of the filters ``names``."""
        wanted = set(names)
        return {(c, g, r) for (c, _v, g, r), fs in self.table.items() if wanted & set(fs)}


def affected(old: FilterSettings, new: FilterSettings) -> set[tuple[str, str, str]]:
    """(component, group, resource) whose filters differ between two tables."""
    out = set()
    for key in old.table.keys() | new.table.keys():
        if old.table.get(key, ()) != new.table.get(key, ()):
            component, _verb, group, resource = key
            out.add((component, group, resource))
    return out


def cache_agents(configmap: Mapping[str, str] | None) -> frozenset[str]:
    """The extra cache agents named by yurt-hub-cfg's ``cache_agents`` key."""
    value = (configmap or {}).get(CACHE_AGENTS_KEY)
    return frozenset(split_names(value)) if isinstance(value, str) else frozenset()
