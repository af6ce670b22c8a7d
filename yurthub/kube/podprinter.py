"""The row kube-apiserver prints for a Pod: READY, STATUS, RESTARTS, AGE (and -o wide's IP,
NODE, NOMINATED NODE, READINESS GATES).

STATUS is the printers' account of a pod, not its phase: a waiting or failed container, an
init container still running (``Init:1/2``), a pod being deleted (``Terminating``), a node
that stopped reporting (``Unknown``).  The rules follow ``printPod`` in kubernetes/kubernetes
``pkg/printers/internalversion/printers.go`` (v1.32), applied to the pod as the API
serializes it (v1 field names: ``lastState``, ``podIP``/``podIPs``).
"""

from __future__ import annotations

from typing import Any

from yurthub.kube.humantime import human_duration, now_ns, since, timestamp
from yurthub.kube.tablerow import Row, as_dict, as_int, as_list, as_str

# kube-apiserver's row conditions for finished pods (metav1.RowCompleted).
SUCCEEDED = [{"type": "Completed", "status": "True", "reason": "Succeeded",
              "message": "The pod has completed successfully."}]
FAILED = [{"type": "Completed", "status": "True", "reason": "Failed",
           "message": "The pod failed."}]
NODE_LOST = "NodeLost"  # node.NodeUnreachablePodReason
_ZERO = -(1 << 80)      # Go's zero time: before every real one


def _is_restartable(container: dict[str, Any] | None) -> bool:
    """A sidecar: an init container whose restartPolicy is Always."""
    return container is not None and container.get("restartPolicy") == "Always"


def _finished_at(status: dict[str, Any]) -> int | None:
    """When the container last terminated (its lastState), if it did."""
    last = as_dict(status.get("lastState"))
    term = last.get("terminated")
    if not isinstance(term, dict):
        return None
    return timestamp(term.get("finishedAt"))


def _later(current: int, candidate: int | None) -> int:
    return candidate if candidate is not None and candidate > current else current


def _condition(pod_status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in as_list(pod_status.get("conditions")):
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond
    return None


def _ready_condition(pod_status: dict[str, Any]) -> bool:
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
               for c in as_list(pod_status.get("conditions")))


def _terminated_reason(term: dict[str, Any], prefix: str) -> str:
    if as_str(term.get("reason")):
        return prefix + as_str(term["reason"])
    signal = as_int(term.get("signal"))
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{as_int(term.get('exitCode'))}"


def print_pod(pod: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = (as_dict(pod.get(k)) for k in ("metadata", "spec", "status"))
    phase = as_str(status.get("phase"))
    reason = as_str(status.get("reason")) or phase
    for cond in as_list(status.get("conditions")):
        if isinstance(cond, dict) and cond.get("type") == "PodScheduled" \
                and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    conditions = SUCCEEDED if phase == "Succeeded" else FAILED if phase == "Failed" else None

    containers = as_list(spec.get("containers"))
    init_specs = [c for c in as_list(spec.get("initContainers")) if isinstance(c, dict)]
    by_name = {as_str(c.get("name")): c for c in init_specs}
    total = len(containers) + sum(1 for c in init_specs if _is_restartable(c))
    ready = restarts = sidecar_restarts = 0
    last_restart = sidecar_last_restart = _ZERO

    initializing = False
    for i, cs in enumerate(as_list(status.get("initContainerStatuses"))):
        cs = as_dict(cs)
        restarts += as_int(cs.get("restartCount"))
        finished = _finished_at(cs)
        last_restart = _later(last_restart, finished)
        sidecar = _is_restartable(by_name.get(as_str(cs.get("name"))))
        if sidecar:
            sidecar_restarts += as_int(cs.get("restartCount"))
            sidecar_last_restart = _later(sidecar_last_restart, finished)
        state = as_dict(cs.get("state"))
        term, waiting = state.get("terminated"), state.get("waiting")
        if isinstance(term, dict) and as_int(term.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if isinstance(term, dict):
            reason = _terminated_reason(term, "Init:")
        elif isinstance(waiting, dict) and as_str(waiting.get("reason")) \
                and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + as_str(waiting["reason"])
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    initialized = _condition(status, "Initialized")
    if not initializing or (initialized is not None and initialized.get("status") == "True"):
        restarts, last_restart = sidecar_restarts, sidecar_last_restart
        running = False
        for cs in reversed(as_list(status.get("containerStatuses"))):
            cs = as_dict(cs)
            restarts += as_int(cs.get("restartCount"))
            last_restart = _later(last_restart, _finished_at(cs))
            state = as_dict(cs.get("state"))
            term, waiting = state.get("terminated"), state.get("waiting")
            if isinstance(waiting, dict) and as_str(waiting.get("reason")):
                reason = as_str(waiting["reason"])
            elif isinstance(term, dict):
                reason = _terminated_reason(term, "")
            elif cs.get("ready") is True and isinstance(state.get("running"), dict):
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _ready_condition(status) else "NotReady"

    if meta.get("deletionTimestamp") is not None:
        if status.get("reason") == NODE_LOST:
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart != _ZERO:
        restarts_cell = f"{restarts} ({human_duration(now_ns(now) - last_restart)} ago)"
    cells: list[Any] = [as_str(meta.get("name")), f"{ready}/{total}", reason, restarts_cell,
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        cells += [_pod_ip(status) or "<none>", as_str(spec.get("nodeName")) or "<none>",
                  as_str(status.get("nominatedNodeName")) or "<none>", _gates(spec, status)]
    return Row(cells, conditions)


def _pod_ip(status: dict[str, Any]) -> str:
    """The first pod IP as kube-apiserver's v1 conversion gives it: podIP wins over podIPs."""
    ip = as_str(status.get("podIP"))
    if ip:
        return ip
    ips = as_list(status.get("podIPs"))
    return as_str(as_dict(ips[0]).get("ip")) if ips else ""


def _gates(spec: dict[str, Any], status: dict[str, Any]) -> str:
    gates = as_list(spec.get("readinessGates"))
    if not gates:
        return "<none>"
    true = 0
    for gate in gates:
        cond = _condition(status, as_str(as_dict(gate).get("conditionType")))
        if cond is not None and cond.get("status") == "True":
            true += 1
    return f"{true}/{len(gates)}"
