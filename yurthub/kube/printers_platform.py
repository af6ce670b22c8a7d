"""kube-apiserver's printers for the platform's own objects: admission policy bindings and
mutating admission policies, flow schemas and priority levels, dynamic resource allocation,
service CIDRs and IP addresses, component statuses, cluster trust bundles, lease candidates,
volume attributes classes, storage versions and storage version migrations.

Each prints the cells of its counterpart in ``pkg/printers/internalversion/printers.go``
(kubernetes/kubernetes v1.32).  Two register fewer columns than their rows have cells, and
kube-apiserver sends them so: an IP address's row ends with its age, a storage version
migration's has none.  A list of flow schemas is printed in the order kube-apiserver prints
it: by matching precedence, then name.
"""

from __future__ import annotations

from typing import Any

from yurthub.kube import columns_platform as C
from yurthub.kube.humantime import since
from yurthub.kube.tablerow import Printer, Row, as_dict, as_int, as_list, as_str


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("metadata"))


def _name(obj: dict[str, Any]) -> str:
    return as_str(_meta(obj).get("name"))


def _age(obj: dict[str, Any], now: float) -> str:
    return since(_meta(obj).get("creationTimestamp"), now)


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("spec"))


def _go_list(values: Any) -> str:
    """``fmt.Sprintf("%v", []string)``: ``[a b]``."""
    return "[" + " ".join(as_str(v) for v in as_list(values)) + "]"


def label_selector_go_string(selector: dict[str, Any]) -> str:
    """The generated ``(*metav1.LabelSelector).String()``, which a binding's ParamRef cell
    prints for a selector: ``&LabelSelector{MatchLabels:map[string]string{k: v,},...}``."""
    labels = as_dict(selector.get("matchLabels"))
    pairs = "".join(f"{k}: {as_str(labels[k])}," for k in sorted(labels))
    exprs = "".join(
        f"LabelSelectorRequirement{{Key:{as_str(e.get('key'))},"
        f"Operator:{as_str(e.get('operator'))},Values:{_go_list(e.get('values'))},}},"
        for e in map(as_dict, as_list(selector.get("matchExpressions"))))
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{pairs}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}")


def print_admission_policy_binding(obj: dict[str, Any], wide: bool, now: float) -> Row:
    spec = _spec(obj)
    param = "<unset>"
    ref = spec.get("paramRef")
    if isinstance(ref, dict):
        name, ns = as_str(ref.get("name")), as_str(ref.get("namespace"))
        if name:
            param = f"{ns}/{name}" if ns else f"*/{name}"
        elif isinstance(ref.get("selector"), dict):
            param = label_selector_go_string(ref["selector"])
    return Row([_name(obj), as_str(spec.get("policyName")), param, _age(obj, now)])


def print_mutating_admission_policy(obj: dict[str, Any], wide: bool, now: float) -> Row:
    spec = _spec(obj)
    kind = spec.get("paramKind")
    param_kind = "<unset>" if not isinstance(kind, dict) else \
        f"{as_str(kind.get('apiVersion'))}/{as_str(kind.get('kind'))}"
    return Row([_name(obj), len(as_list(spec.get("mutations"))), param_kind, _age(obj, now)])


def print_flow_schema(obj: dict[str, Any], wide: bool, now: float) -> Row:
    spec = _spec(obj)
    method = spec.get("distinguisherMethod")
    missing = "?"
    for cond in map(as_dict, as_list(as_dict(obj.get("status")).get("conditions"))):
        if cond.get("type") == "Dangling":
            missing = as_str(cond.get("status"))
            break
    return Row([_name(obj), as_str(as_dict(spec.get("priorityLevelConfiguration")).get("name")),
                as_int(spec.get("matchingPrecedence")),
                as_str(method.get("type")) if isinstance(method, dict) else "<none>",
                _age(obj, now), missing])


def flow_schema_order(obj: dict[str, Any]) -> tuple[int, str]:
    """``FlowSchemaSequence``: the lower matching precedence first, then the name."""
    return as_int(_spec(obj).get("matchingPrecedence")), _name(obj)


def print_priority_level_configuration(obj: dict[str, Any], wide: bool, now: float) -> Row:
    spec = _spec(obj)
    cells: list[Any] = ["<none>"] * 4
    limited = spec.get("limited")
    if isinstance(limited, dict):
        cells[0] = as_int(limited.get("nominalConcurrencyShares"))
        queuing = as_dict(limited.get("limitResponse")).get("queuing")
        if isinstance(queuing, dict):
            cells[1:] = [as_int(queuing.get(k)) for k in ("queues", "handSize",
                                                           "queueLengthLimit")]
    return Row([_name(obj), as_str(spec.get("type")), *cells, _age(obj, now)])


def _list_with_more(items: list[str], limit: int = 3) -> str:
    """``listWithMoreString``: the first three, ``+ N more...``, or ``<unset>``."""
    text = ",".join(items[:limit])
    if len(items) > limit:
        return f"{text} + {len(items) - limit} more..."
    return text or "<unset>"


def print_storage_version(obj: dict[str, Any], wide: bool, now: float) -> Row:
    status = as_dict(obj.get("status"))
    common = status.get("commonEncodingVersion")
    versions = [f"{as_str(v.get('apiServerID'))}={as_str(v.get('encodingVersion'))}"
                for v in map(as_dict, as_list(status.get("storageVersions")))]
    return Row([_name(obj), as_str(common) if common is not None else "<unset>",
                _list_with_more(versions), _age(obj, now)])


def print_name_and_age(obj: dict[str, Any], wide: bool, now: float) -> Row:
    return Row([_name(obj), _age(obj, now)])


def resource_claim_state(obj: dict[str, Any]) -> str:
    """``resourceClaimState``: deleted, pending, allocated, reserved, comma-joined."""
    deleted = _meta(obj).get("deletionTimestamp") is not None
    status = as_dict(obj.get("status"))
    states = ["deleted"] if deleted else []
    if status.get("allocation") is None:
        if not deleted:
            states.append("pending")
    else:
        states.append("allocated")
        if as_list(status.get("reservedFor")):
            states.append("reserved")
    return ",".join(states)


def print_resource_claim(obj: dict[str, Any], wide: bool, now: float) -> Row:
    return Row([_name(obj), resource_claim_state(obj), _age(obj, now)])


def print_resource_slice(obj: dict[str, Any], wide: bool, now: float) -> Row:
    spec = _spec(obj)
    return Row([_name(obj), as_str(spec.get("nodeName")), as_str(spec.get("driver")),
                as_str(as_dict(spec.get("pool")).get("name")), _age(obj, now)])


def print_service_cidr(obj: dict[str, Any], wide: bool, now: float) -> Row:
    return Row([_name(obj), ",".join(as_str(c) for c in as_list(_spec(obj).get("cidrs"))),
                _age(obj, now)])


def print_ip_address(obj: dict[str, Any], wide: bool, now: float) -> Row:
    ref = _spec(obj).get("parentRef")
    parent = "<none>"
    if isinstance(ref, dict):
        group, resource = as_str(ref.get("group")), as_str(ref.get("resource"))
        # schema.GroupResource's String(): "resource.group", or the resource alone.
        parent = (f"{resource}.{group}" if group else resource).lower()
        if as_str(ref.get("namespace")):
            parent += "/" + as_str(ref.get("namespace"))
        parent += "/" + as_str(ref.get("name"))
    return Row([_name(obj), parent, _age(obj, now)])


def print_storage_version_migration(obj: dict[str, Any], wide: bool, now: float) -> Row:
    res = as_dict(_spec(obj).get("resource"))
    gvr = ".".join(as_str(res.get(k)) for k in ("resource", "version", "group"))
    return Row([_name(obj), gvr])


def print_component_status(obj: dict[str, Any], wide: bool, now: float) -> Row:
    status, message, error = "Unknown", "", ""
    for cond in map(as_dict, as_list(obj.get("conditions"))):
        if cond.get("type") == "Healthy":
            status = "Healthy" if cond.get("status") == "True" else "Unhealthy"
            message, error = as_str(cond.get("message")), as_str(cond.get("error"))
            break
    return Row([_name(obj), status, message, error])


def print_cluster_trust_bundle(obj: dict[str, Any], wide: bool, now: float) -> Row:
    return Row([_name(obj), as_str(_spec(obj).get("signerName")) or "<none>"])


def print_lease_candidate(obj: dict[str, Any], wide: bool, now: float) -> Row:
    spec = _spec(obj)
    return Row([_name(obj), *(as_str(spec.get(k)) for k in ("leaseName", "binaryVersion",
                                                             "emulationVersion")),
                _age(obj, now)])


_DEFAULT_CLASS = "volumeattributesclass.alpha.kubernetes.io/is-default-class"


def print_volume_attributes_class(obj: dict[str, Any], wide: bool, now: float) -> Row:
    name = _name(obj)
    # storageutil.IsDefaultAnnotationForVolumeAttributesClass: its alpha annotation is "true".
    if as_dict(_meta(obj).get("annotations")).get(_DEFAULT_CLASS) == "true":
        name += " (default)"
    return Row([name, as_str(obj.get("driverName")), _age(obj, now)])


_ADMISSION = "admissionregistration.k8s.io"
_FLOW = "flowcontrol.apiserver.k8s.io"
_DRA = "resource.k8s.io"
_BINDING = Printer(C.ADMISSION_POLICY_BINDING, print_admission_policy_binding)
PLATFORM_PRINTERS: dict[tuple[str, str], Printer] = {
    (_ADMISSION, "validatingadmissionpolicybindings"): _BINDING,
    (_ADMISSION, "mutatingadmissionpolicybindings"): _BINDING,
    (_ADMISSION, "mutatingadmissionpolicies"):
        Printer(C.MUTATING_ADMISSION_POLICY, print_mutating_admission_policy),
    (_FLOW, "flowschemas"): Printer(C.FLOW_SCHEMA, print_flow_schema, flow_schema_order),
    (_FLOW, "prioritylevelconfigurations"):
        Printer(C.PRIORITY_LEVEL_CONFIGURATION, print_priority_level_configuration),
    ("internal.apiserver.k8s.io", "storageversions"):
        Printer(C.STORAGE_VERSION, print_storage_version),
    (_DRA, "deviceclasses"): Printer(C.NAME_AND_AGE, print_name_and_age),
    (_DRA, "resourceclaims"): Printer(C.RESOURCE_CLAIM, print_resource_claim),
    (_DRA, "resourceclaimtemplates"): Printer(C.NAME_AND_AGE, print_name_and_age),
    (_DRA, "resourceslices"): Printer(C.RESOURCE_SLICE, print_resource_slice),
    ("networking.k8s.io", "servicecidrs"): Printer(C.SERVICE_CIDR, print_service_cidr),
    ("networking.k8s.io", "ipaddresses"): Printer(C.IP_ADDRESS, print_ip_address),
    ("storagemigration.k8s.io", "storageversionmigrations"):
        Printer(C.STORAGE_VERSION_MIGRATION, print_storage_version_migration),
    ("", "componentstatuses"): Printer(C.COMPONENT_STATUS, print_component_status),
    ("certificates.k8s.io", "clustertrustbundles"):
        Printer(C.CLUSTER_TRUST_BUNDLE, print_cluster_trust_bundle),
    ("coordination.k8s.io", "leasecandidates"):
        Printer(C.LEASE_CANDIDATE, print_lease_candidate),
    ("storage.k8s.io", "volumeattributesclasses"):
        Printer(C.VOLUME_ATTRIBUTES_CLASS, print_volume_attributes_class),
}
