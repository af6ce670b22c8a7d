"""What the filters know about the cluster: one immutable snapshot, swapped whole on a change.

A ``FilterContext`` is built from the objects the hub watches under its own identity (this
Node, the NodePools, the Services that carry a topology annotation) and from settings (the
hub's serving address and port, ``--nodepool-name``).  Filters read it and never change it,
so a request keeps one consistent view of the cluster from its first byte to its last while
a newer snapshot serves the requests that start later.  The functions here turn watched
objects into the snapshot's parts; they are pure and never raise for odd objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

POOL_LABEL = "apps.openyurt.io/nodepool"
ZONE_LABEL = "topology.kubernetes.io/zone"
TOPOLOGY_ANNOTATION = "openyurt.io/topologyKeys"


@dataclass(frozen=True)
class FilterContext:
    """This node's place in the cluster, as the filters see it.

    ``pool`` is this node's pool ("" when it is in none); ``pool_nodes`` the members of that
    pool by its NodePool's ``status.nodes``, or None when no NodePool of that name is known.
    ``service_topology`` maps ``(namespace, name)`` of each Service that has the
    ``openyurt.io/topologyKeys`` annotation to the annotation's value.
    """

    node_name: str = ""
    hub_host: str = "169.254.2.1"
    hub_port: int = 10268
    pool: str = ""
    pool_nodes: frozenset[str] | None = None
    zone: str = ""
    service_topology: Mapping[tuple[str, str], str] = field(default_factory=dict)
    topology_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The names alone, for the byte-level check of a list item (no namespace at hand).
        names = frozenset(name for (_ns, name) in self.service_topology)
        object.__setattr__(self, "topology_names", names)

    def topology_of(self, namespace: str, service: str) -> str:
        return self.service_topology.get((namespace, service), "")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object's metadata ({} when it has none or it is not an object)."""
    return _dict(obj.get("metadata"))


def namespace_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    md = metadata(obj)
    return _str(md.get("namespace")), _str(md.get("name"))


def labels_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(metadata(obj).get("labels"))


def annotations_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(metadata(obj).get("annotations"))


def node_pool_and_zone(node: Mapping[str, Any] | None) -> tuple[str, str]:
    """(pool, zone) from a Node's labels; ("", "") without a Node."""
    if node is None:
        return "", ""
    lb = labels_of(node)
    return _str(lb.get(POOL_LABEL)), _str(lb.get(ZONE_LABEL))


def pool_members(nodepool: Mapping[str, Any]) -> frozenset[str]:
    """The node names in a NodePool's ``status.nodes`` (apps.openyurt.io/v1beta2)."""
    nodes = _dict(nodepool.get("status")).get("nodes")
    if not isinstance(nodes, list):
        return frozenset()
    return frozenset(n for n in nodes if isinstance(n, str) and n)


def service_topology(service: Mapping[str, Any]) -> str:
    """The value of a Service's ``openyurt.io/topologyKeys`` annotation ("" without one)."""
    return _str(annotations_of(service).get(TOPOLOGY_ANNOTATION))
