"""The built-in resources a node's components use: kind, scope, verbs, short names, fields.

One table feeds the sandbox's discovery documents and the offline reader's list kinds, so the
two never disagree about what ``pods`` is.  Custom resources are described by the same
``ResourceType`` built from a CustomResourceDefinition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
OBJECT_META_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource of one group/version, as discovery describes it."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    # Field selectors kube-apiserver accepts for this resource (besides metadata.*).
    fields: tuple[str, ...] = ()
    singular: str = ""
    categories: tuple[str, ...] = ()
    # The metadata field selectors it accepts: kube-apiserver's Node and Namespace
    # conversions accept only metadata.name; every other type accepts both.
    meta_fields: tuple[str, ...] = OBJECT_META_FIELDS

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def selectable_fields(self) -> tuple[str, ...]:
        """Every field selector key kube-apiserver accepts for this resource.

        Cluster-scoped resources accept ``metadata.namespace`` too (always empty), as
        kube-apiserver's default field label conversion does, except nodes and namespaces
        whose own conversions accept only ``metadata.name``.
        """
        return self.meta_fields + self.fields

    def discovery_entry(self) -> dict[str, Any]:
        """The ``APIResource`` entry of ``/api/v1`` or ``/apis/<g>/<v>``."""
        entry: dict[str, Any] = {
            "name": self.resource,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        return entry


_POD_FIELDS = (
    "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
    "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
    "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
    "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
)

BUILTIN: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "pods", "Pod", True, ("po",), subresources=("status",),
                 fields=_POD_FIELDS, categories=("all",)),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), subresources=("status",),
                 fields=("spec.unschedulable",), meta_fields=("metadata.name",)),
    ResourceType("", "v1", "services", "Service", True, ("svc",), subresources=("status",),
                 fields=("spec.clusterIP", "spec.type"), categories=("all",)),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",), singular="endpoints"),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True, fields=("type",)),
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), subresources=("status",),
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
                 fields=("status.phase",), meta_fields=("metadata.name",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",), fields=_EVENT_FIELDS),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("certificates.k8s.io", "v1", "certificatesigningrequests",
                 "CertificateSigningRequest", False, ("csr",),
                 subresources=("approval", "status"), fields=("spec.signerName",)),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                 "CustomResourceDefinition", False, ("crd", "crds"), subresources=("status",)),
    # The workloads kube-apiserver prints columns for (yurthub.kube.printers_apps); a job's
    # status.successful and a replica set's status.replicas are computed (yurthub.kube.fields).
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",),
                 subresources=("status",), categories=("all",)),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",),
                 subresources=("status",), fields=("status.replicas",), categories=("all",)),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",),
                 subresources=("status",), categories=("all",)),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",),
                 subresources=("status",), categories=("all",)),
    ResourceType("batch", "v1", "jobs", "Job", True, subresources=("status",),
                 fields=("status.successful",), categories=("all",)),
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("cj",),
                 subresources=("status",), categories=("all",)),
    # Storage, printed by yurthub.kube.printers_storage.
    ResourceType("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",),
                 subresources=("status",)),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",),
                 subresources=("status",)),
    ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    ResourceType("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    ResourceType("storage.k8s.io", "v1", "csinodes", "CSINode", False),
    ResourceType("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False,
                 subresources=("status",)),
    # The cluster's policy objects (yurthub.kube.printers_cluster; roles, cluster roles and
    # limit ranges print with kube-apiserver's default convertor).
    ResourceType("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
    ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True,
                 ("netpol",)),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",),
                 subresources=("status",)),
    ResourceType("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                 "ClusterRoleBinding", False),
    ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    ResourceType("", "v1", "replicationcontrollers", "ReplicationController", True, ("rc",),
                 subresources=("status",), fields=("status.replicas",), categories=("all",)),
    ResourceType("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",),
                 subresources=("status",)),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True,
                 ("pdb",), subresources=("status",)),
    # Autoscalers, pod templates and the admission configuration
    # (yurthub.kube.printers_control), and CSI storage capacities.
    ResourceType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
                 True, ("hpa",), subresources=("status",), categories=("all",)),
    ResourceType("", "v1", "podtemplates", "PodTemplate", True),
    ResourceType("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                 "MutatingWebhookConfiguration", False, categories=("api-extensions",)),
    ResourceType("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                 "ValidatingWebhookConfiguration", False, categories=("api-extensions",)),
    ResourceType("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                 "ValidatingAdmissionPolicy", False, subresources=("status",),
                 categories=("api-extensions",)),
    ResourceType("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", True),
    # The platform's objects kube-apiserver v1.32 serves as GA (yurthub.kube.printers_platform).
    ResourceType("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
                 "ValidatingAdmissionPolicyBinding", False, categories=("api-extensions",)),
    ResourceType("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", False,
                 subresources=("status",)),
    ResourceType("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations",
                 "PriorityLevelConfiguration", False, subresources=("status",)),
)

_BY_GVR: dict[tuple[str, str, str], ResourceType] = {
    (t.group, t.version, t.resource): t for t in BUILTIN
}


def builtin(group: str, version: str, resource: str) -> ResourceType | None:
    """The built-in type for a group/version/resource, or None."""
    return _BY_GVR.get((group, version, resource))


# Kinds of other well-known built-in resources that clients list through the gateway even
# though the sandbox does not serve them; the offline reader needs their list kinds.
_OTHER_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("events.k8s.io", "events"): ("Event", True),
}


def known_kind(group: str, resource: str) -> tuple[str, bool] | None:
    """(kind, namespaced) of a well-known built-in resource of any version, or None."""
    for t in BUILTIN:
        if t.group == group and t.resource == resource:
            return t.kind, t.namespaced
    return _OTHER_KINDS.get((group, resource))


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The ResourceTypes a CustomResourceDefinition serves, one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        subresources = tuple(sorted((v.get("subresources") or {}).keys()))
        out.append(ResourceType(
            group=spec.get("group", ""),
            version=v.get("name", ""),
            resource=names.get("plural", ""),
            kind=names.get("kind", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            subresources=subresources,
            singular=names.get("singular", ""),
            categories=tuple(names.get("categories") or ()),
        ))
    return out
