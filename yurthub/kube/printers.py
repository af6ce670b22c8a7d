"""kube-apiserver's server-side printers for the built-in resources a node's users look at.

Each printer turns one object (as the API serializes it) into a Table row whose cells are
those of kube-apiserver's printer for that type (``pkg/printers/internalversion/printers.go``
in kubernetes/kubernetes, v1.32): the same values, the same ``<none>``/``<unknown>``
placeholders, the same truncations.  ``wide`` adds the priority-1 cells; kube-apiserver
always prints wide rows (kubectl hides those columns unless ``-o wide``), so Tables do too.
``PRINTERS`` maps (group, resource) to the printer; anything else gets the default Table
(see ``yurthub.kube.table``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from yurthub.kube import columns as C
from yurthub.kube.humantime import NS, since, timestamp
from yurthub.kube.podprinter import print_pod
from yurthub.kube.printers_apps import APPS_PRINTERS
from yurthub.kube.printers_cluster import CLUSTER_PRINTERS
from yurthub.kube.printers_control import CONTROL_PRINTERS
from yurthub.kube.printers_platform import PLATFORM_PRINTERS
from yurthub.kube.printers_storage import STORAGE_PRINTERS
from yurthub.kube.tablerow import (
    LOAD_BALANCER_WIDTH,
    Printer,
    Row,
    RowFunc,
    as_dict,
    as_int,
    as_list,
    as_str,
    format_labels,
)

__all__ = ["DEFAULT", "PRINTERS", "Printer", "RowFunc", "format_labels", "printer_for"]

_MORE = 3  # lists of addresses and ports show three, then "+ N more..."
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"


def go_trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace``: Unicode white space, but not the ASCII separators
    (0x1c-0x1f) that Python's ``str.strip`` also removes."""
    space = "".join(c for c in {*text[:1], *text[-1:]}
                    if c.isspace() and c not in "\x1c\x1d\x1e\x1f")
    return text.strip(space) if space else text


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _more(items: list[str], count: int, *, unset: str) -> str:
    text = ",".join(items[:_MORE])
    if count > _MORE:
        return f"{text} + {count - _MORE} more..."
    return text or unset


# -- nodes ------------------------------------------------------------------------------------

def print_node(node: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = (as_dict(node.get(k)) for k in ("metadata", "spec", "status"))
    by_type = {as_str(c.get("type")): c for c in map(as_dict, as_list(status.get("conditions")))}
    ready = by_type.get("Ready")
    states = ["Unknown" if ready is None else "Ready" if ready.get("status") == "True"
              else "NotReady"]
    if spec.get("unschedulable") is True:
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in as_dict(meta.get("labels")).items():
        if key.startswith(NODE_ROLE_PREFIX) and key[len(NODE_ROLE_PREFIX):]:
            roles.add(key[len(NODE_ROLE_PREFIX):])
        elif key == NODE_ROLE_LABEL and as_str(value):
            roles.add(as_str(value))
    info = as_dict(status.get("nodeInfo"))
    cells: list[Any] = [as_str(meta.get("name")), ",".join(states),
                        ",".join(sorted(roles)) or "<none>",
                        since(meta.get("creationTimestamp"), now),
                        as_str(info.get("kubeletVersion"))]
    if wide:
        cells += [_node_address(status, "InternalIP"), _node_address(status, "ExternalIP"),
                  as_str(info.get("osImage")) or "<unknown>",
                  as_str(info.get("kernelVersion")) or "<unknown>",
                  as_str(info.get("containerRuntimeVersion")) or "<unknown>"]
    return Row(cells)


def _node_address(status: dict[str, Any], kind: str) -> str:
    for addr in map(as_dict, as_list(status.get("addresses"))):
        if addr.get("type") == kind:
            return as_str(addr.get("address"))
    return "<none>"


# -- services, endpoints, endpoint slices -----------------------------------------------------

def _load_balancer(status: dict[str, Any], wide: bool) -> str:
    found = set()
    for ing in map(as_dict, as_list(as_dict(status.get("loadBalancer")).get("ingress"))):
        if as_str(ing.get("ip")):
            found.add(as_str(ing["ip"]))
        elif as_str(ing.get("hostname")):
            found.add(as_str(ing["hostname"]))
    text = ",".join(sorted(found))
    if not wide and len(text.encode()) > LOAD_BALANCER_WIDTH:
        text = text.encode()[:LOAD_BALANCER_WIDTH - 3].decode(errors="ignore") + "..."
    return text


def _external_ip(svc: dict[str, Any], wide: bool) -> str:
    spec = as_dict(svc.get("spec"))
    external = [as_str(ip) for ip in as_list(spec.get("externalIPs"))]
    stype = spec.get("type")
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if stype == "LoadBalancer":
        lb = _load_balancer(as_dict(svc.get("status")), wide)
        if external:
            return ",".join([*(lb.split(",") if lb else []), *external])
        return lb or "<pending>"
    if stype == "ExternalName":
        return as_str(spec.get("externalName"))
    return "<unknown>"


def _cluster_ip(spec: dict[str, Any]) -> str:
    """The first cluster IP as the v1 conversion gives it: clusterIP wins over clusterIPs."""
    ip = as_str(spec.get("clusterIP"))
    if ip:
        return ip
    ips = as_list(spec.get("clusterIPs"))
    return as_str(ips[0]) if ips else "<none>"


def print_service(svc: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec = as_dict(svc.get("metadata")), as_dict(svc.get("spec"))
    ports = []
    for p in map(as_dict, as_list(spec.get("ports"))):
        node_port, proto = as_int(p.get("nodePort")), as_str(p.get("protocol"))
        port = as_int(p.get("port"))
        ports.append(f"{port}:{node_port}/{proto}" if node_port > 0 else f"{port}/{proto}")
    cells: list[Any] = [as_str(meta.get("name")), as_str(spec.get("type")), _cluster_ip(spec),
                        _external_ip(svc, wide), ",".join(ports) or "<none>",
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        cells.append(format_labels(spec.get("selector")))
    return Row(cells)


def format_endpoints(ep: dict[str, Any]) -> str:
    subsets = as_list(ep.get("subsets"))
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for ss in map(as_dict, subsets):
        addresses = [as_str(as_dict(a).get("ip")) for a in as_list(ss.get("addresses"))]
        ports = as_list(ss.get("ports"))
        if not ports:  # a headless service without ports
            count += len(addresses)
            shown += addresses[:max(0, _MORE - len(shown))]
            continue
        for port in map(as_dict, ports):
            count += len(addresses)
            number = as_int(port.get("port"))
            room = max(0, _MORE - len(shown))
            shown += [join_host_port(ip, number) for ip in addresses[:room]]
    text = ",".join(shown)
    return f"{text} + {count - _MORE} more..." if count > len(shown) else text


def print_endpoints(ep: dict[str, Any], wide: bool, now: float) -> Row:
    meta = as_dict(ep.get("metadata"))
    return Row([as_str(meta.get("name")), format_endpoints(ep),
                since(meta.get("creationTimestamp"), now)])


def print_endpoint_slice(es: dict[str, Any], wide: bool, now: float) -> Row:
    meta = as_dict(es.get("metadata"))
    ports = []
    for p in map(as_dict, as_list(es.get("ports"))):
        if p.get("port") is not None:
            ports.append(str(as_int(p["port"])))
        elif p.get("name") is not None:
            ports.append(as_str(p["name"]))
        else:
            ports.append("*")
    addresses = [as_str(a) for e in map(as_dict, as_list(es.get("endpoints")))
                 for a in as_list(e.get("addresses"))]
    return Row([as_str(meta.get("name")), as_str(es.get("addressType")),
                _more(ports, len(ports), unset="<unset>"),
                _more(addresses, len(addresses), unset="<unset>"),
                since(meta.get("creationTimestamp"), now)])


# -- events -----------------------------------------------------------------------------------

def print_event(ev: dict[str, Any], wide: bool, now: float) -> Row:
    meta = as_dict(ev.get("metadata"))
    first = since(ev.get("firstTimestamp"), now)
    if timestamp(ev.get("firstTimestamp")) is None:
        first = since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now)
    if timestamp(ev.get("lastTimestamp")) is None:
        last = first
    count = as_int(ev.get("count"))
    series = ev.get("series")
    if isinstance(series, dict):
        last = since(series.get("lastObservedTime"), now)
        count = as_int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the events.k8s.io API carry no count
    involved = as_dict(ev.get("involvedObject"))
    kind, name = as_str(involved.get("kind")).lower(), as_str(involved.get("name"))
    target = f"{kind}/{name}" if name else kind
    message = go_trim_space(as_str(ev.get("message")))
    if not wide:
        return Row([last, as_str(ev.get("type")), as_str(ev.get("reason")), target, message])
    source = as_dict(ev.get("source"))
    component = as_str(source.get("component")) or as_str(ev.get("reportingComponent"))
    instance = as_str(source.get("host")) or as_str(ev.get("reportingInstance"))
    return Row([last, as_str(ev.get("type")), as_str(ev.get("reason")), target,
                as_str(involved.get("fieldPath")),
                f"{component}, {instance}" if instance else component,
                message, first, count, as_str(meta.get("name"))])


# kube-apiserver stores one Event for both APIs and prints events.k8s.io's with the core
# printer, after its conversion (pkg/apis/events/v1): these are the core names of its fields.
_EVENTS_API_FIELDS = {
    "regarding": "involvedObject", "note": "message", "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp", "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count", "reportingController": "reportingComponent",
}


def print_events_api_event(ev: dict[str, Any], wide: bool, now: float) -> Row:
    """An ``events.k8s.io`` Event (v1 or v1beta1), printed as kube-apiserver prints it."""
    return print_event({_EVENTS_API_FIELDS.get(k, k): v for k, v in ev.items()}, wide, now)


# -- the simple ones --------------------------------------------------------------------------

def _simple(*cells: Callable[[dict[str, Any]], Any]) -> RowFunc:
    """A row of name, the given cells, and age."""
    def row(obj: dict[str, Any], wide: bool, now: float) -> Row:
        meta = as_dict(obj.get("metadata"))
        return Row([as_str(meta.get("name")), *(cell(obj) for cell in cells),
                    since(meta.get("creationTimestamp"), now)])
    return row


def _count(*fields: str) -> Callable[[dict[str, Any]], int]:
    def count(obj: dict[str, Any]) -> int:
        total = 0
        for f in fields:
            value = obj.get(f)
            total += len(value) if isinstance(value, (dict, list)) else 0
        return total
    return count


def _path(*keys: str) -> Callable[[dict[str, Any]], str]:
    def get(obj: dict[str, Any]) -> str:
        value: Any = obj
        for k in keys:
            value = as_dict(value).get(k)
        return as_str(value)
    return get


def _created_at(obj: dict[str, Any], wide: bool, now: float) -> Row:
    """``rest.NewDefaultTableConvertor``'s row: the name and the creation time, RFC 3339."""
    meta = as_dict(obj.get("metadata"))
    ts = timestamp(meta.get("creationTimestamp"))
    if ts is None:
        text = "0001-01-01T00:00:00Z"
    else:
        text = datetime.fromtimestamp(ts // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Row([as_str(meta.get("name")), text])


# What kube-apiserver prints for a resource without a printer of its own.
DEFAULT = Printer(C.DEFAULT, _created_at)

# Built-in resources whose registries use that default convertor (roles' and cluster roles'
# storage say so, with a TODO; limit ranges and CRDs have no printer either): offline they
# must print NAME and CREATED AT too, not kubectl's NAME and AGE.
DEFAULT_CONVERTOR = frozenset({
    ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles"),
    ("", "limitranges"), ("apiextensions.k8s.io", "customresourcedefinitions"),
})

PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "pods"): Printer(C.POD, print_pod),
    ("", "nodes"): Printer(C.NODE, print_node),
    ("", "services"): Printer(C.SERVICE, print_service),
    ("", "endpoints"): Printer(C.ENDPOINTS, print_endpoints),
    ("discovery.k8s.io", "endpointslices"): Printer(C.ENDPOINT_SLICE, print_endpoint_slice),
    ("", "events"): Printer(C.EVENT, print_event),
    ("events.k8s.io", "events"): Printer(C.EVENT, print_events_api_event),
    ("", "namespaces"): Printer(C.NAMESPACE, _simple(_path("status", "phase"))),
    ("", "secrets"): Printer(C.SECRET, _simple(_path("type"), _count("data"))),
    ("", "serviceaccounts"): Printer(C.SERVICE_ACCOUNT, _simple(_count("secrets"))),
    ("", "configmaps"): Printer(C.CONFIG_MAP, _simple(_count("data", "binaryData"))),
    ("coordination.k8s.io", "leases"): Printer(C.LEASE, _simple(_path("spec", "holderIdentity"))),
    **APPS_PRINTERS,
    **STORAGE_PRINTERS,
    **CLUSTER_PRINTERS,
    **CONTROL_PRINTERS,
    **PLATFORM_PRINTERS,
}


def printer_for(group: str, resource: str) -> Printer | None:
    """kube-apiserver's printer for a built-in resource (any version), or None."""
    if (group, resource) in DEFAULT_CONVERTOR:
        return DEFAULT
    return PRINTERS.get((group, resource))
