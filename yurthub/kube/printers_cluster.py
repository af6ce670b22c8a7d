"""kube-apiserver's printers for the cluster's policy objects: certificate signing requests,
runtime and priority classes, network policies, ingresses and ingress classes, role bindings,
controller revisions, replication controllers, pod disruption budgets and resource quotas.

Each prints the cells of its counterpart in ``pkg/printers/internalversion/printers.go``
(kubernetes/kubernetes v1.32).  A priority class adds its PREEMPTIONPOLICY cell only to wide
rows although the column is not a wide one: kube-apiserver always prints wide, so kubectl
always shows it.
"""

from __future__ import annotations

from typing import Any

from yurthub.kube import columns_cluster as C
from yurthub.kube.humantime import NS, human_duration, since
from yurthub.kube.printers_apps import format_label_selector, layout_containers
from yurthub.kube.quantity import canonical
from yurthub.kube.tablerow import (
    LOAD_BALANCER_WIDTH,
    Printer,
    Row,
    as_dict,
    as_int,
    as_list,
    as_str,
    format_labels,
)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return as_dict(obj.get("metadata"))


def _csr_condition(status: dict[str, Any]) -> str:
    """``extractCSRStatus``: Denied over Approved over Pending, then Failed and Issued."""
    kinds = {as_str(as_dict(c).get("type")) for c in as_list(status.get("conditions"))}
    text = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        text += ",Failed"
    if as_str(status.get("certificate")):
        text += ",Issued"
    return text


def print_certificate_signing_request(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec = _meta(obj), as_dict(obj.get("spec"))
    seconds = spec.get("expirationSeconds")
    duration = "<none>" if seconds is None else human_duration(as_int(seconds) * NS)
    return Row([as_str(meta.get("name")), since(meta.get("creationTimestamp"), now),
                as_str(spec.get("signerName")) or "<none>", as_str(spec.get("username")),
                duration, _csr_condition(as_dict(obj.get("status")))])


def print_runtime_class(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta = _meta(obj)
    return Row([as_str(meta.get("name")), as_str(obj.get("handler")),
                since(meta.get("creationTimestamp"), now)])


def print_priority_class(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta = _meta(obj)
    cells: list[Any] = [as_str(meta.get("name")), as_int(obj.get("value")),
                        obj.get("globalDefault") is True, since(meta.get("creationTimestamp"), now)]
    if wide:
        cells.append(as_str(obj.get("preemptionPolicy")))
    return Row(cells)


def print_network_policy(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta = _meta(obj)
    selector = as_dict(obj.get("spec")).get("podSelector")
    return Row([as_str(meta.get("name")), format_label_selector(as_dict(selector)),
                since(meta.get("creationTimestamp"), now)])


def _ingress_hosts(rules: list[Any]) -> str:
    """``formatHosts``: the first three rules' hosts, ``*`` when none has one."""
    hosts: list[str] = []
    more = False
    for rule in map(as_dict, rules):
        if len(hosts) == 3:
            more = True
        if not more and as_str(rule.get("host")):
            hosts.append(as_str(rule["host"]))
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def _ingress_address(status: dict[str, Any]) -> str:
    """``ingressLoadBalancerStatusStringer`` of a wide row (kube-apiserver prints wide): each
    ingress point's IP, else its hostname, sorted and distinct."""
    lb = as_dict(status.get("loadBalancer"))
    found = set()
    for ing in map(as_dict, as_list(lb.get("ingress"))):
        if as_str(ing.get("ip")):
            found.add(as_str(ing["ip"]))
        elif as_str(ing.get("hostname")):
            found.add(as_str(ing["hostname"]))
    return ",".join(sorted(found))


def print_ingress(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec = _meta(obj), as_dict(obj.get("spec"))
    klass = spec.get("ingressClassName")
    address = _ingress_address(as_dict(obj.get("status")))
    if not wide and len(address.encode()) > LOAD_BALANCER_WIDTH:
        address = address.encode()[:LOAD_BALANCER_WIDTH - 3].decode(errors="ignore") + "..."
    return Row([as_str(meta.get("name")), "<none>" if klass is None else as_str(klass),
                _ingress_hosts(as_list(spec.get("rules"))), address,
                "80, 443" if as_list(spec.get("tls")) else "80",
                since(meta.get("creationTimestamp"), now)])


def print_ingress_class(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec = _meta(obj), as_dict(obj.get("spec"))
    params = spec.get("parameters")
    text = "<none>"
    if params is not None:
        p = as_dict(params)
        text = as_str(p.get("kind"))
        if p.get("apiGroup") is not None:
            text += "." + as_str(p.get("apiGroup"))
        text += "/" + as_str(p.get("name"))
    return Row([as_str(meta.get("name")), as_str(spec.get("controller")), text,
                since(meta.get("creationTimestamp"), now)])


def subjects(items: Any) -> tuple[list[str], list[str], list[str]]:
    """``rbac.SubjectsStrings``: users, groups and service accounts (``namespace/name``)."""
    users, groups, accounts = [], [], []
    for s in map(as_dict, as_list(items)):
        kind, name = as_str(s.get("kind")), as_str(s.get("name"))
        if kind == "ServiceAccount":
            accounts.append(f"{as_str(s.get('namespace'))}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return users, groups, accounts


def print_role_binding(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, ref = _meta(obj), as_dict(obj.get("roleRef"))
    cells: list[Any] = [as_str(meta.get("name")),
                        f"{as_str(ref.get('kind'))}/{as_str(ref.get('name'))}",
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        cells += [", ".join(names) for names in subjects(obj.get("subjects"))]
    return Row(cells)


def _controller(meta: dict[str, Any]) -> str:
    """``metav1.GetControllerOf`` printed by ``formatResourceName``: ``kind.group/name``."""
    for ref in map(as_dict, as_list(meta.get("ownerReferences"))):
        if ref.get("controller") is not True:
            continue
        api_version = as_str(ref.get("apiVersion"))
        group = api_version.split("/")[0] if "/" in api_version else ""
        kind = as_str(ref.get("kind"))
        name = as_str(ref.get("name"))
        if not group and not kind:
            return name
        return (f"{kind}.{group}" if group else kind).lower() + "/" + name
    return "<none>"


def print_controller_revision(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta = _meta(obj)
    return Row([as_str(meta.get("name")), _controller(meta), as_int(obj.get("revision")),
                since(meta.get("creationTimestamp"), now)])


def print_replication_controller(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = _meta(obj), as_dict(obj.get("spec")), as_dict(obj.get("status"))
    cells: list[Any] = [as_str(meta.get("name")), as_int(spec.get("replicas")),
                        as_int(status.get("replicas")), as_int(status.get("readyReplicas")),
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        cells += [*layout_containers(spec.get("template")), format_labels(spec.get("selector"))]
    return Row(cells)


def _int_or_string(value: Any) -> str:
    """``intstr.IntOrString.String()``, ``N/A`` where the field is unset."""
    if value is None:
        return "N/A"
    return as_str(value) if isinstance(value, str) else str(as_int(value))


def print_pod_disruption_budget(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec = _meta(obj), as_dict(obj.get("spec"))
    return Row([as_str(meta.get("name")), _int_or_string(spec.get("minAvailable")),
                _int_or_string(spec.get("maxUnavailable")),
                as_int(as_dict(obj.get("status")).get("disruptionsAllowed")),
                since(meta.get("creationTimestamp"), now)])


def print_resource_quota(obj: dict[str, Any], wide: bool, now: float) -> Row:
    """``printResourceQuota``: ``name: used/hard`` for each hard limit, sorted by name, the
    ``limits.*`` ones in their own column."""
    meta, status = _meta(obj), as_dict(obj.get("status"))
    hard, used = as_dict(status.get("hard")), as_dict(status.get("used"))
    requests: list[str] = []
    limits: list[str] = []
    for name in sorted(hard):
        text = f"{name}: {canonical(used.get(name))}/{canonical(hard[name])}"
        pieces = name.split(".")
        (limits if len(pieces) > 1 and pieces[0] == "limits" else requests).append(text)
    return Row([as_str(meta.get("name")), ", ".join(requests), ", ".join(limits),
                since(meta.get("creationTimestamp"), now)])


CLUSTER_PRINTERS: dict[tuple[str, str], Printer] = {
    ("certificates.k8s.io", "certificatesigningrequests"):
        Printer(C.CERTIFICATE_SIGNING_REQUEST, print_certificate_signing_request),
    ("node.k8s.io", "runtimeclasses"): Printer(C.RUNTIME_CLASS, print_runtime_class),
    ("scheduling.k8s.io", "priorityclasses"): Printer(C.PRIORITY_CLASS, print_priority_class),
    ("networking.k8s.io", "networkpolicies"): Printer(C.NETWORK_POLICY, print_network_policy),
    ("networking.k8s.io", "ingresses"): Printer(C.INGRESS, print_ingress),
    ("networking.k8s.io", "ingressclasses"): Printer(C.INGRESS_CLASS, print_ingress_class),
    ("rbac.authorization.k8s.io", "rolebindings"): Printer(C.ROLE_BINDING, print_role_binding),
    ("rbac.authorization.k8s.io", "clusterrolebindings"):
        Printer(C.CLUSTER_ROLE_BINDING, print_role_binding),
    ("apps", "controllerrevisions"): Printer(C.CONTROLLER_REVISION, print_controller_revision),
    ("", "replicationcontrollers"):
        Printer(C.REPLICATION_CONTROLLER, print_replication_controller),
    ("policy", "poddisruptionbudgets"):
        Printer(C.POD_DISRUPTION_BUDGET, print_pod_disruption_budget),
    ("", "resourcequotas"): Printer(C.RESOURCE_QUOTA, print_resource_quota),
}
