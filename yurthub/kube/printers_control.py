"""kube-apiserver's printers for autoscalers, pod templates and the admission configuration:
horizontal pod autoscalers, pod templates, mutating and validating webhook configurations and
validating admission policies.

Each prints the cells of its counterpart in ``pkg/printers/internalversion/printers.go``
(kubernetes/kubernetes v1.32).  That code prints the internal autoscaler, which is
autoscaling/v2's shape; an autoscaling/v1 object (``targetCPUUtilizationPercentage``) is read
as kube-apiserver converts it, a CPU utilization target.
"""

from __future__ import annotations

from typing import Any

from yurthub.kube import columns_control as C
from yurthub.kube.humantime import since
from yurthub.kube.printers_apps import layout_containers
from yurthub.kube.quantity import canonical
from yurthub.kube.tablerow import Printer, Row, as_dict, as_int, as_list, as_str, format_labels

_MAX_METRICS = 2  # formatHPAMetrics shows two targets, then "+ N more..."


def _quantity(value: Any) -> str:
    """``(*resource.Quantity).String()``: ``<nil>`` for an unset one."""
    if value is None:
        return "<nil>"
    return canonical(str(value) if isinstance(value, int | float) else value)


def _metric(spec: dict[str, Any], status: dict[str, Any] | None) -> str:
    """One target of ``formatHPAMetrics``: ``current/target``, ``<unknown>`` current while
    the status has none."""
    kind = as_str(spec.get("type"))
    if kind in ("External", "Object"):
        key = kind.lower()
        target = as_dict(as_dict(spec.get(key)).get("target"))
        current = as_dict(as_dict((status or {}).get(key)).get("current"))
        present = status is not None and isinstance(status.get(key), dict)
        if target.get("averageValue") is not None:
            now = _quantity(current.get("averageValue")) if present and \
                current.get("averageValue") is not None else "<unknown>"
            return f"{now}/{_quantity(target.get('averageValue'))} (avg)"
        now = _quantity(current.get("value")) if present else "<unknown>"
        return f"{now}/{_quantity(target.get('value'))}"
    if kind == "Pods":
        target = as_dict(as_dict(spec.get("pods")).get("target"))
        present = status is not None and isinstance(status.get("pods"), dict)
        now = _quantity(as_dict(as_dict((status or {}).get("pods")).get("current"))
                        .get("averageValue")) if present else "<unknown>"
        return f"{now}/{_quantity(target.get('averageValue'))}"
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        source = as_dict(spec.get(key))
        target = as_dict(source.get("target"))
        present = status is not None and isinstance(status.get(key), dict)
        current = as_dict(as_dict((status or {}).get(key)).get("current"))
        name = as_str(source.get("name"))
        if target.get("averageValue") is not None:
            now = _quantity(current.get("averageValue")) if present else "<unknown>"
            return f"{name}: {now}/{_quantity(target.get('averageValue'))}"
        now = f"{as_int(current.get('averageUtilization'))}%" if present and \
            current.get("averageUtilization") is not None else "<unknown>"
        want = f"{as_int(target.get('averageUtilization'))}%" if \
            target.get("averageUtilization") is not None else "<auto>"
        return f"{name}: {now}/{want}"
    return "<unknown type>"


def _v1_metrics(spec: dict[str, Any], status: dict[str, Any]
                ) -> tuple[list[Any], list[Any]]:
    """autoscaling/v1's CPU target and current utilization as the v2 metrics they convert to."""
    target = spec.get("targetCPUUtilizationPercentage")
    if target is None:
        return [], []
    specs = [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": target}}}]
    current = status.get("currentCPUUtilizationPercentage")
    statuses = [] if current is None else [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": current}}}]
    return specs, statuses


def format_hpa_metrics(specs: list[Any], statuses: list[Any]) -> str:
    """``formatHPAMetrics``: the first two targets, then how many more; ``<none>``."""
    if not specs:
        return "<none>"
    shown = [_metric(as_dict(spec), as_dict(statuses[i]) if i < len(statuses) else None)
             for i, spec in enumerate(specs)]
    text = ", ".join(shown[:_MAX_METRICS])
    if len(shown) > _MAX_METRICS:
        return f"{text} + {len(shown) - _MAX_METRICS} more..."
    return text


def print_horizontal_pod_autoscaler(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = (as_dict(obj.get(k)) for k in ("metadata", "spec", "status"))
    target = as_dict(spec.get("scaleTargetRef"))
    if "metrics" in spec or "targetCPUUtilizationPercentage" not in spec:
        specs, statuses = as_list(spec.get("metrics")), as_list(status.get("currentMetrics"))
    else:
        specs, statuses = _v1_metrics(spec, status)
    min_pods = spec.get("minReplicas")
    return Row([as_str(meta.get("name")),
                f"{as_str(target.get('kind'))}/{as_str(target.get('name'))}",
                format_hpa_metrics(specs, statuses),
                "<unset>" if min_pods is None else str(as_int(min_pods)),
                as_int(spec.get("maxReplicas")), as_int(status.get("currentReplicas")),
                since(meta.get("creationTimestamp"), now)])


def print_pod_template(obj: dict[str, Any], wide: bool, now: float) -> Row:
    template = as_dict(obj.get("template"))
    return Row([as_str(as_dict(obj.get("metadata")).get("name")), *layout_containers(template),
                format_labels(as_dict(template.get("metadata")).get("labels"))])


def print_webhook_configuration(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta = as_dict(obj.get("metadata"))
    return Row([as_str(meta.get("name")), len(as_list(obj.get("webhooks"))),
                since(meta.get("creationTimestamp"), now)])


def print_validating_admission_policy(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec = as_dict(obj.get("metadata")), as_dict(obj.get("spec"))
    param = spec.get("paramKind")
    param_kind = "<unset>" if not isinstance(param, dict) else \
        f"{as_str(param.get('apiVersion'))}/{as_str(param.get('kind'))}"
    return Row([as_str(meta.get("name")), len(as_list(spec.get("validations"))), param_kind,
                since(meta.get("creationTimestamp"), now)])


_ADMISSION = "admissionregistration.k8s.io"
CONTROL_PRINTERS: dict[tuple[str, str], Printer] = {
    ("autoscaling", "horizontalpodautoscalers"):
        Printer(C.HORIZONTAL_POD_AUTOSCALER, print_horizontal_pod_autoscaler),
    ("", "podtemplates"): Printer(C.POD_TEMPLATE, print_pod_template),
    (_ADMISSION, "mutatingwebhookconfigurations"):
        Printer(C.WEBHOOK_CONFIGURATION, print_webhook_configuration),
    (_ADMISSION, "validatingwebhookconfigurations"):
        Printer(C.WEBHOOK_CONFIGURATION, print_webhook_configuration),
    (_ADMISSION, "validatingadmissionpolicies"):
        Printer(C.VALIDATING_ADMISSION_POLICY, print_validating_admission_policy),
}
