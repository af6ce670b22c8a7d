"""kubectl's columns offline for the platform's own objects: flow schemas, priority levels and
validating admission policy bindings are printed by kube-apiserver with printers of their
own; offline the hub printed NAME and AGE (kubectl's fallback), so `kubectl get flowschemas`
lost the priority level and precedence an operator looks for when requests queue."""

from __future__ import annotations

import time

from tests.fixtures.kubectl import Kubectl
from tests.integration.test_tables import assert_same_table, cells, go_offline


def test_kubectl_prints_flow_control_and_policy_bindings_offline_as_online(sandbox, hub,
                                                                          tmp_path):
    for name, precedence in (("workload-low", 9000), ("system-nodes", 500)):
        sandbox.put({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
                     "metadata": {"name": name},
                     "spec": {"priorityLevelConfiguration": {"name": name},
                              "matchingPrecedence": precedence,
                              "distinguisherMethod": {"type": "ByUser"}},
                     "status": {"conditions": [{"type": "Dangling", "status": "False"}]}})
    sandbox.put({"apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                 "kind": "PriorityLevelConfiguration", "metadata": {"name": "system-nodes"},
                 "spec": {"type": "Limited", "limited": {
                     "nominalConcurrencyShares": 30, "limitResponse": {
                         "type": "Queue", "queuing": {"queues": 64, "handSize": 6,
                                                      "queueLengthLimit": 50}}}}})
    sandbox.put({"apiVersion": "admissionregistration.k8s.io/v1",
                 "kind": "ValidatingAdmissionPolicyBinding",
                 "metadata": {"name": "replicas-limit"},
                 "spec": {"policyName": "max-replicas", "validationActions": ["Deny"],
                          "paramRef": {"name": "limits", "namespace": "default",
                                       "parameterNotFoundAction": "Deny"}}})
    kubectl = Kubectl(tmp_path, hub.url)
    kinds = "flowschemas,prioritylevelconfigurations,validatingadmissionpolicybindings"
    started = time.monotonic()
    online = kubectl("get", kinds).stdout
    go_offline(sandbox, hub)
    offline = kubectl("get", kinds)
    assert "served from the yurthub cache" in offline.stderr
    tables_on, tables_off = online.split("\n\n"), offline.stdout.split("\n\n")
    assert len(tables_off) == len(tables_on) == 3, offline.stdout
    for t_on, t_off in zip(tables_on, tables_off, strict=True):
        assert_same_table(t_on, t_off, time.monotonic() - started + 1, (kinds,))
    (fh, frows), (ph, prows), (bh, brows) = map(cells, tables_off)
    assert fh == ["NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE",
                  "MISSINGPL"]
    # kube-apiserver lists them by precedence, not by name.
    assert [r[0] for r in frows] == ["flowschema.flowcontrol.apiserver.k8s.io/system-nodes",
                                     "flowschema.flowcontrol.apiserver.k8s.io/workload-low"]
    assert frows[0][1:4] == ["system-nodes", "500", "ByUser"] and frows[0][5] == "False"
    assert ph == ["NAME", "TYPE", "NOMINALCONCURRENCYSHARES", "QUEUES", "HANDSIZE",
                  "QUEUELENGTHLIMIT", "AGE"]
    assert prows[0][1:6] == ["Limited", "30", "64", "6", "50"]
    assert bh == ["NAME", "POLICYNAME", "PARAMREF", "AGE"]
    assert brows[0][1:3] == ["max-replicas", "default/limits"]
