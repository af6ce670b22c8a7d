"""Strategic merge patch metadata of the built-in types: which lists merge, and by which key.

The table follows the Go types' ``patchStrategy``/``patchMergeKey`` tags.  A list without a
strategy is atomic (replaced whole): tolerations, node taints, container statuses, endpoint
subsets, EndpointSlice endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PatchField:
    """How a strategic merge patch treats one field: ``merge`` lists (by ``key`` when they hold
    objects), ``replace`` maps, and the fields of the objects it holds."""

    strategy: str = ""
    key: str = ""
    fields: Mapping[str, PatchField] = field(default_factory=dict)


DEFAULT_FIELD = PatchField()


def _merge(key: str = "", **fields: PatchField) -> PatchField:
    return PatchField("merge", key, fields)


def _struct(**fields: PatchField) -> PatchField:
    return PatchField("", "", fields)


_CONTAINER = dict(
    ports=_merge("containerPort"), env=_merge("name"), volumeMounts=_merge("mountPath"),
    volumeDevices=_merge("devicePath"),
)
_POD_SPEC = _struct(
    containers=_merge("name", **_CONTAINER), initContainers=_merge("name", **_CONTAINER),
    ephemeralContainers=_merge("name", **_CONTAINER), volumes=_merge("name"),
    imagePullSecrets=_merge("name"), hostAliases=_merge("ip"),
    topologySpreadConstraints=_merge("topologyKey"), schedulingGates=_merge("name"),
    resourceClaims=_merge("name"),
)
_CONDITIONS = _merge("type")
_META = _struct(ownerReferences=_merge("uid"), finalizers=_merge())
_TEMPLATE = _struct(metadata=_META, spec=_POD_SPEC)
_WORKLOAD = {
    "metadata": _META,
    "spec": _struct(template=_TEMPLATE),
    "status": _struct(conditions=_CONDITIONS),
}

_SCHEMAS: dict[str, dict[str, PatchField]] = {
    "Pod": {
        "metadata": _META,
        "spec": _POD_SPEC,
        "status": _struct(conditions=_CONDITIONS, podIPs=_merge("ip"), hostIPs=_merge("ip"),
                          resourceClaimStatuses=_merge("name")),
    },
    "Node": {
        "metadata": _META,
        "spec": _struct(podCIDRs=_merge()),
        "status": _struct(conditions=_CONDITIONS, addresses=_merge("type")),
    },
    "Service": {
        "metadata": _META,
        "spec": _struct(ports=_merge("port")),
        "status": _struct(conditions=_CONDITIONS),
    },
    "Namespace": {"metadata": _META, "status": _struct(conditions=_CONDITIONS)},
    "ServiceAccount": {"metadata": _META, "secrets": _merge("name")},
    "PodTemplate": {"metadata": _META, "template": _TEMPLATE},
    "ReplicationController": _WORKLOAD,
    "Deployment": _WORKLOAD,
    "ReplicaSet": _WORKLOAD,
    "DaemonSet": _WORKLOAD,
    "StatefulSet": _WORKLOAD,
    "Job": _WORKLOAD,
}
_GENERIC = {"metadata": _META}


def schema_for(kind: str) -> Mapping[str, PatchField]:
    """The strategic-merge metadata of a built-in ``kind`` (only metadata for the others)."""
    return _SCHEMAS.get(kind, _GENERIC)
