"""Printers kube-apiserver has and printers.json has no Go test case for: pod templates,
webhook configurations, validating admission policies, CSI storage capacities, and an
autoscaling/v1 autoscaler (its CPU target, as kube-apiserver converts it).  The expected
cells follow each printer's code in printers.go (v1.32)."""

from __future__ import annotations

import pytest

from yurthub.kube.printers import printer_for

NOW = 1_700_000_000.0
CREATED = "2023-11-14T19:13:20Z"  # NOW - 3h, as an RFC 3339 time


@pytest.mark.parametrize("group,resource,obj,cells", [
    ("", "podtemplates",
     {"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"b": "2", "a": "1"}},
                                             "spec": {"containers": [
                                                 {"name": "x", "image": "ix"},
                                                 {"name": "y", "image": "iy"}]}}},
     ["t", "x,y", "ix,iy", "a=1,b=2"]),
    ("", "podtemplates", {"metadata": {"name": "empty"}}, ["empty", "", "", "<none>"]),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations",
     {"metadata": {"name": "m", "creationTimestamp": CREATED}, "webhooks": [{}, {}, {}]},
     ["m", 3, "3h"]),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations",
     {"metadata": {"name": "v"}}, ["v", 0, "<unknown>"]),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies",
     {"metadata": {"name": "p"}, "spec": {"validations": [{"expression": "true"}],
                                         "paramKind": {"apiVersion": "v1",
                                                       "kind": "ConfigMap"}}},
     ["p", 1, "v1/ConfigMap", "<unknown>"]),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies",
     {"metadata": {"name": "q"}, "spec": {}}, ["q", 0, "<unset>", "<unknown>"]),
    ("storage.k8s.io", "csistoragecapacities",
     {"metadata": {"name": "c"}, "storageClassName": "local", "capacity": "1Gi"},
     ["c", "local", "1Gi"]),
    ("storage.k8s.io", "csistoragecapacities",
     {"metadata": {"name": "d"}, "storageClassName": "local"}, ["d", "local", "<unset>"]),
    ("autoscaling", "horizontalpodautoscalers",
     {"apiVersion": "autoscaling/v1", "metadata": {"name": "h", "creationTimestamp": CREATED},
      "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1,
               "maxReplicas": 4, "targetCPUUtilizationPercentage": 70},
      "status": {"currentReplicas": 2, "currentCPUUtilizationPercentage": 35}},
     ["h", "Deployment/web", "cpu: 35%/70%", "1", 4, 2, "3h"]),
    ("autoscaling", "horizontalpodautoscalers",
     {"apiVersion": "autoscaling/v1", "metadata": {"name": "h"},
      "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4,
               "targetCPUUtilizationPercentage": 70}, "status": {}},
     ["h", "Deployment/web", "cpu: <unknown>/70%", "<unset>", 4, 0, "<unknown>"]),
])
def test_rows(group, resource, obj, cells):
    printer = printer_for(group, resource)
    assert printer is not None
    row = printer.row(obj, True, NOW)
    assert row.cells == cells
    assert len(row.cells) == len(printer.columns)
