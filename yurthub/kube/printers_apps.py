"""kube-apiserver's printers for the workloads: deployments, replica sets, daemon sets,
stateful sets, jobs and cron jobs.

Each prints the cells of its counterpart in ``pkg/printers/internalversion/printers.go``
(kubernetes/kubernetes v1.32), from the object as the API serializes it: a pointer the API
leaves out (``completions``, ``suspend``, ``timeZone``) reads as Go's nil, a number it leaves
out as the internal type's zero.  Label selectors print as apimachinery prints them
(``metav1.FormatLabelSelector`` and ``LabelSelectorAsSelector(...).String()``): requirements
sorted by key, ``in``/``notin`` values sorted, an invalid selector as ``<error>`` or
``<invalid>``.
"""

from __future__ import annotations

from typing import Any

from yurthub.kube import columns_apps as C
from yurthub.kube.humantime import human_duration, now_ns, since, timestamp
from yurthub.kube.labels import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    IN,
    NOT_IN,
    requirement_errors,
)
from yurthub.kube.tablerow import Printer, Row, as_dict, as_int, as_list, as_str, format_labels

# metav1.LabelSelectorOperator -> the selection operator LabelSelectorAsSelector makes of it.
_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def selector_string(selector: Any) -> str | None:
    """``LabelSelectorAsSelector(selector).String()``; None where it returns an error.

    A missing selector selects nothing and an empty one everything: both print as ``""``.
    """
    if not isinstance(selector, dict):
        return ""
    match_labels = as_dict(selector.get("matchLabels"))
    expressions = [as_dict(e) for e in as_list(selector.get("matchExpressions"))]
    requirements: list[tuple[str, str, list[str]]] = []
    for key, value in match_labels.items():
        requirements.append((key, EQUALS, [as_str(value)]))
    for expr in expressions:
        op = _OPERATORS.get(as_str(expr.get("operator")))
        if op is None:
            return None
        requirements.append((as_str(expr.get("key")), op,
                             [as_str(v) for v in as_list(expr.get("values"))]))
    for key, op, values in requirements:
        if requirement_errors(key, op, values):
            return None
    requirements.sort(key=lambda r: r[0])
    return ",".join(_requirement(*r) for r in requirements)


def _requirement(key: str, op: str, values: list[str]) -> str:
    """labels.Requirement.String(): the values of in/notin sorted, not made distinct."""
    if op == EXISTS:
        return key
    if op == DOES_NOT_EXIST:
        return "!" + key
    if op == EQUALS:
        return f"{key}={values[0]}"
    return f"{key} {op} ({','.join(sorted(values))})"


def format_label_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: ``<error>`` when invalid, ``<none>`` when empty."""
    text = selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def layout_containers(template: Any) -> tuple[str, str]:
    """``layoutContainerCells``: the template's container names and images, comma-joined."""
    containers = [as_dict(c) for c in as_list(as_dict(as_dict(template).get("spec"))
                                              .get("containers"))]
    return (",".join(as_str(c.get("name")) for c in containers),
            ",".join(as_str(c.get("image")) for c in containers))


def _parts(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return as_dict(obj.get("metadata")), as_dict(obj.get("spec")), as_dict(obj.get("status"))


def print_deployment(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = _parts(obj)
    cells: list[Any] = [as_str(meta.get("name")),
                        f"{as_int(status.get('readyReplicas'))}/{as_int(spec.get('replicas'))}",
                        as_int(status.get("updatedReplicas")),
                        as_int(status.get("availableReplicas")),
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        selector = selector_string(spec.get("selector"))
        cells += [*layout_containers(spec.get("template")),
                  "<invalid>" if selector is None else selector]
    return Row(cells)


def print_replica_set(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = _parts(obj)
    cells: list[Any] = [as_str(meta.get("name")), as_int(spec.get("replicas")),
                        as_int(status.get("replicas")), as_int(status.get("readyReplicas")),
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        cells += [*layout_containers(spec.get("template")),
                  format_label_selector(spec.get("selector"))]
    return Row(cells)


def print_daemon_set(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = _parts(obj)
    template = as_dict(spec.get("template"))
    cells: list[Any] = [as_str(meta.get("name")),
                        *(as_int(status.get(k)) for k in (
                            "desiredNumberScheduled", "currentNumberScheduled", "numberReady",
                            "updatedNumberScheduled", "numberAvailable")),
                        format_labels(as_dict(template.get("spec")).get("nodeSelector")),
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        cells += [*layout_containers(template), format_label_selector(spec.get("selector"))]
    return Row(cells)


def print_stateful_set(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = _parts(obj)
    cells: list[Any] = [as_str(meta.get("name")),
                        f"{as_int(status.get('readyReplicas'))}/{as_int(spec.get('replicas'))}",
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        cells += [*layout_containers(spec.get("template"))]
    return Row(cells)


def _has_condition(status: dict[str, Any], kind: str) -> bool:
    """``hasJobCondition``: the first condition of that type decides."""
    for cond in map(as_dict, as_list(status.get("conditions"))):
        if cond.get("type") == kind:
            return cond.get("status") == "True"
    return False


def _job_status(meta: dict[str, Any], status: dict[str, Any]) -> str:
    if _has_condition(status, "Complete"):
        return "Complete"
    if _has_condition(status, "Failed"):
        return "Failed"
    if meta.get("deletionTimestamp") is not None:
        return "Terminating"
    if _has_condition(status, "Suspended"):
        return "Suspended"
    if _has_condition(status, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_duration(status: dict[str, Any], now: float) -> str:
    if status.get("startTime") is None:
        return ""
    start = timestamp(status.get("startTime"))
    start_ns = 0 if start is None else start  # a zero time is Go's year 1: not reachable here
    if status.get("completionTime") is None:
        return human_duration(now_ns(now) - start_ns)
    end = timestamp(status.get("completionTime"))
    return human_duration((0 if end is None else end) - start_ns)


def print_job(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = _parts(obj)
    succeeded = as_int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{as_int(spec.get('completions'))}"
    elif as_int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {as_int(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"
    cells: list[Any] = [as_str(meta.get("name")), _job_status(meta, status), completions,
                        _job_duration(status, now), since(meta.get("creationTimestamp"), now)]
    if wide:
        cells += [*layout_containers(spec.get("template")),
                  format_label_selector(spec.get("selector"))]
    return Row(cells)


def _bool_ptr(value: Any) -> str:
    """``printBoolPtr``: ``True``/``False``, ``<unset>`` for nil."""
    if value is None:
        return "<unset>"
    return "True" if value is True else "False"


def print_cron_job(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = _parts(obj)
    last = status.get("lastScheduleTime")
    zone = spec.get("timeZone")
    cells: list[Any] = [as_str(meta.get("name")), as_str(spec.get("schedule")),
                        "<none>" if zone is None else as_str(zone),
                        _bool_ptr(spec.get("suspend")), len(as_list(status.get("active"))),
                        "<none>" if last is None else since(last, now),
                        since(meta.get("creationTimestamp"), now)]
    if wide:
        job_spec = as_dict(as_dict(spec.get("jobTemplate")).get("spec"))
        cells += [*layout_containers(job_spec.get("template")),
                  format_label_selector(job_spec.get("selector"))]
    return Row(cells)


APPS_PRINTERS: dict[tuple[str, str], Printer] = {
    ("apps", "deployments"): Printer(C.DEPLOYMENT, print_deployment),
    ("apps", "replicasets"): Printer(C.REPLICA_SET, print_replica_set),
    ("apps", "daemonsets"): Printer(C.DAEMON_SET, print_daemon_set),
    ("apps", "statefulsets"): Printer(C.STATEFUL_SET, print_stateful_set),
    ("batch", "jobs"): Printer(C.JOB, print_job),
    ("batch", "cronjobs"): Printer(C.CRON_JOB, print_cron_job),
}
