"""kubectl's columns offline: the hub answers ``as=Table`` from its cache with the Table the
cloud's kube-apiserver (here the sandbox) printed online.

The real kubectl runs the same commands through the real hub twice: online (the sandbox's
Tables pass through) and offline (the cloud cut, the hub prints from the cache), and the two
outputs are compared as text, column by column.  Ages move between the two runs: an age cell
may differ, but only by what the clock moved between the runs, measured, at the resolution
the age is printed with (``3h30m`` is known to the minute).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures.kubectl import Kubectl
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http
from tests.golden.tables import table_golden

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
OPERATOR = "kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd"
_COLUMN = re.compile(r"\S+(?: \S+)*")
_AGE = re.compile(r"^\(?(\d+)([smhdy])(?:(\d+)([smhd]))?\)?$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


def ago(**kw: float) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_offline(sandbox, hub) -> None:
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")


def cells(text: str) -> tuple[list[str], list[list[str]]]:
    """kubectl's table output as (header, rows), cut at the header's column starts."""
    lines = text.splitlines()
    starts = [m.start() for m in _COLUMN.finditer(lines[0])]
    ends = [*starts[1:], None]

    def cut(line: str) -> list[str]:
        return [line[s:e].strip() for s, e in zip(starts, ends, strict=True)]
    return cut(lines[0]), [cut(line) for line in lines[1:]]


def age_range(token: str) -> tuple[int, int] | None:
    """The ages (seconds) a printed age stands for: ``3h30m`` is [12600, 12660)."""
    m = _AGE.match(token)
    if m is None:
        return None
    n1, u1, n2, u2 = m.groups()
    low = int(n1) * _UNIT[u1] + (int(n2) * _UNIT[u2] if n2 else 0)
    return low, low + _UNIT[u2 or u1]


def same_cell(online: str, offline: str, moved: float) -> bool:
    """Equal, or ages the clock's movement between the two runs explains."""
    if online == offline:
        return True
    a, b = online.split(), offline.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        rx, ry = age_range(x), age_range(y)
        if rx is None or ry is None:
            return False
        # offline age = online age + t, 0 <= t <= moved, for some ages they print.
        if not (ry[1] > rx[0] and ry[0] < rx[1] + moved):
            return False
    return True


def assert_same_table(online: str, offline: str, moved: float, what: tuple) -> None:
    head_on, rows_on = cells(online)
    head_off, rows_off = cells(offline)
    assert head_off == head_on, what
    assert len(rows_off) == len(rows_on), what
    for r_on, r_off in zip(rows_on, rows_off, strict=True):
        assert all(same_cell(a, b, moved) for a, b in zip(r_on, r_off, strict=True)), \
            (what, r_on, r_off)


@pytest.fixture
def edge(sandbox, hub):
    """A node's world: pods that restarted, a load balancer, events kubelet recorded."""
    sandbox.put({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "flaky", "namespace": "default"},
                 "spec": {"nodeName": "node-0000",
                          "containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]},
                 "status": {"phase": "Running", "podIP": "10.9.0.7", "containerStatuses": [
                     {"name": "a", "ready": True, "restartCount": 4, "state": {"running": {}},
                      "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(hours=5)}}},
                     {"name": "b", "ready": False, "restartCount": 1,
                      "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})
    sandbox.put({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "front", "namespace": "default"},
                 "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                          "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
                 "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}})
    for i, (reason, kind, name) in enumerate([("BackOff", "Pod", "flaky"),
                                              ("NodeHasSufficientMemory", "Node", "node-0000")]):
        sandbox.put({"apiVersion": "v1", "kind": "Event",
                     "metadata": {"name": f"ev-{i}", "namespace": "default"},
                     "involvedObject": {"kind": kind, "name": name, "namespace": "default",
                                        "fieldPath": "spec.containers{b}" if i == 0 else ""},
                     "reason": reason, "message": f"  {reason} happened  ", "type": "Warning",
                     "source": {"component": "kubelet", "host": "node-0000"},
                     "firstTimestamp": ago(hours=26), "lastTimestamp": ago(hours=3, minutes=30),
                     "count": 7 + i})
    return hub


COMMANDS = [(res, *wide) for res in ("pods", "nodes", "services", "events")
            for wide in ((), ("-o", "wide"))] + [("pods", "--show-labels")]


def test_kubectl_prints_the_same_columns_online_and_offline(sandbox, edge, tmp_path):
    kubectl = Kubectl(tmp_path, edge.url)
    # Nothing but kubectl's own Tables online fills its cache (kubectl is a cache agent
    # here): their rows' objects are stored. LABELS come from each row's object.
    started = time.monotonic()
    online = [kubectl("get", *cmd[:1], "-A", *cmd[1:]).stdout for cmd in COMMANDS]
    go_offline(sandbox, edge)
    offline = [kubectl("get", *cmd[:1], "-A", *cmd[1:]) for cmd in COMMANDS]
    moved = time.monotonic() - started + 1  # a second more: the printers' clocks are theirs
    for cmd, before, after in zip(COMMANDS, online, offline, strict=True):
        assert "served from the yurthub cache" in after.stderr, cmd
        assert_same_table(before, after.stdout, moved, cmd)
    # kubectl's columns, not its NAME/AGE fallback: the values come from the printers.
    header, rows = cells(offline[1].stdout)
    assert header == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                      "NOMINATED NODE", "READINESS GATES"]
    flaky = next(r for r in rows if r[1] == "flaky")
    assert flaky[2:5] == ["1/2", "CrashLoopBackOff", flaky[4]]
    assert flaky[4].startswith("5 (5h") and flaky[6:] == ["10.9.0.7", "node-0000", "<none>",
                                                          "<none>"]
    header, rows = cells(offline[4].stdout)
    front = next(r for r in rows if r[1] == "front")
    assert front[2:6] == ["LoadBalancer", front[3], "203.0.113.9", "80:30080/TCP"]
    header, rows = cells(offline[7].stdout)
    assert header[:5] == ["NAMESPACE", "LAST SEEN", "TYPE", "REASON", "OBJECT"]
    backoff = next(r for r in rows if r[4] == "pod/flaky")
    assert backoff[3] == "BackOff" and backoff[5:8] == ["spec.containers{b}",
                                                        "kubelet, node-0000",
                                                        "BackOff happened"]
    assert backoff[8].startswith(("26h", "1d")) and backoff[9:] == ["7", "ev-0"]


def test_custom_resources_print_their_crds_columns_offline(sandbox, hub, tmp_path):
    golden, _ = table_golden("crd")
    case = golden["integration"][0]
    sandbox.create(case["crd"])
    obj = json.loads(json.dumps(case["object"]))
    obj["metadata"] = {"name": "foo"}
    sandbox.create(obj)
    kubectl = Kubectl(tmp_path, hub.url)
    kubectl("get", "crd", "-o", "json")  # the CRD, for its printer columns ...
    kubectl("get", "tables.mygroup.example.com", "-o", "json")  # ... and the objects
    started = time.monotonic()
    online = kubectl("get", "tables.mygroup.example.com", "-o", "wide").stdout
    go_offline(sandbox, hub)
    offline = kubectl("get", "tables.mygroup.example.com", "-o", "wide").stdout
    assert_same_table(online, offline, time.monotonic() - started + 1, ("tables",))
    header, rows = cells(offline)
    assert header == ["NAME", "AGE", "ALPHA", "BETA", "GAMMA", "EPSILON", "ZETA"]
    # GAMMA holds a string in an integer column: kube-apiserver sends null, kubectl "".
    assert rows[0][0] == "foo" and rows[0][2:] == ["foo_123", "10", "", "[1,2,3]", "5"]


def table_of(hub, path: str, **headers: str) -> tuple[int, dict, dict]:
    status, hdrs, body = http(hub.url + path, headers={"User-Agent": OPERATOR,
                                                       "Accept": TABLE, **headers})
    return status, hdrs, json.loads(body)


def test_table_requests_offline_over_http(sandbox, hub):
    pods = "/api/v1/namespaces/default/pods"
    status, _, online = table_of(hub, pods)  # the Table alone fills kubectl's cache
    assert status == 200 and online["kind"] == "Table"
    # A cache agent's Table is asked of the cloud with each row's whole object (a superset
    # of the metadata asked for by default), which is what the cache stores.
    direct = json.loads(http(sandbox.url + pods, headers={"Accept": TABLE})[2])
    assert [r["cells"] for r in online["rows"]] == [r["cells"] for r in direct["rows"]]
    assert [r["object"]["metadata"] for r in online["rows"]] == [
        r["object"]["metadata"] for r in direct["rows"]]
    assert {r["object"]["kind"] for r in online["rows"]} == {"Pod"}
    go_offline(sandbox, hub)
    status, headers, offline = table_of(hub, pods)
    assert status == 200 and "Warning" in headers
    assert offline["columnDefinitions"] == online["columnDefinitions"]
    assert [r["cells"][:4] for r in offline["rows"]] == [r["cells"][:4] for r in online["rows"]]
    assert [r["object"] for r in offline["rows"]] == [r["object"] for r in direct["rows"]]
    assert offline["metadata"]["resourceVersion"]
    name = offline["rows"][0]["cells"][0]
    # A get is a one-row Table; includeObject=Object embeds the cached object itself.
    status, _, one = table_of(hub, f"{pods}/{name}?includeObject=Object")
    assert status == 200 and len(one["rows"]) == 1
    assert one["rows"][0]["object"]["kind"] == "Pod"
    assert one["rows"][0]["object"]["metadata"]["name"] == name
    status, _, none = table_of(hub, f"{pods}?includeObject=None")
    assert status == 200 and all(r["object"] is None for r in none["rows"])
    status, _, bad = table_of(hub, f"{pods}?includeObject=Everything")
    assert status == 400 and bad["kind"] == "Status" and "includeObject" in bad["message"]
    status, _, refused = table_of(hub, pods, Accept="application/json;as=Table;v=v1alpha1;"
                                  "g=meta.k8s.io")
    assert status == 406 and refused["reason"] == "NotAcceptable"


def test_a_watch_for_tables_offline_gets_one_table_per_event(sandbox, hub):
    pods = "/api/v1/namespaces/default/pods"
    status, _, body = http(hub.url + pods, headers={"User-Agent": OPERATOR})
    rv = json.loads(body)["metadata"]["resourceVersion"]
    go_offline(sandbox, hub)
    status, _, raw = http(f"{hub.url}{pods}?watch=true&resourceVersion=0&timeoutSeconds=1",
                          headers={"User-Agent": OPERATOR, "Accept": TABLE})
    assert status == 200 and rv
    events = [json.loads(line) for line in raw.splitlines() if line.strip()]
    assert events and all(e["type"] == "ADDED" and e["object"]["kind"] == "Table"
                          for e in events)
    assert [c["name"] for c in events[0]["object"]["columnDefinitions"]][:3] == [
        "Name", "Ready", "Status"]
    assert all(e["object"]["columnDefinitions"] is None for e in events[1:])
    assert all(len(e["object"]["rows"]) == 1 for e in events)


@pytest.fixture
def workloads(sandbox, hub):
    """What an edge node runs besides pods: a deployment, a daemon set, a finished job, a
    bound claim."""
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                        {"name": "log", "image": "busybox"}]}}
    sandbox.put({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "web", "namespace": "default"},
                 "spec": {"replicas": 3, "template": template,
                          "selector": {"matchLabels": {"app": "web"},
                                       "matchExpressions": [{"key": "tier", "operator": "In",
                                                             "values": ["front", "edge"]}]}},
                 "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3,
                            "availableReplicas": 2}})
    sandbox.put({"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "agent", "namespace": "default"},
                 "spec": {"selector": {"matchLabels": {"app": "agent"}},
                          "template": {**template, "spec": {**template["spec"],
                                                            "nodeSelector": {"edge": "true"}}}},
                 "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                            "numberReady": 1, "updatedNumberScheduled": 2,
                            "numberAvailable": 1}})
    sandbox.put({"apiVersion": "batch/v1", "kind": "Job",
                 "metadata": {"name": "backup", "namespace": "default"},
                 "spec": {"completions": 1, "template": template,
                          "selector": {"matchLabels": {"job": "backup"}}},
                 "status": {"succeeded": 1, "startTime": ago(hours=2),
                            "completionTime": ago(hours=1, minutes=30),
                            "conditions": [{"type": "Complete", "status": "True"}]}})
    sandbox.put({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "data", "namespace": "default"},
                 "spec": {"volumeName": "pv-data", "storageClassName": "local-path",
                          "volumeMode": "Filesystem",
                          "resources": {"requests": {"storage": "1Gi"}}},
                 "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                            "capacity": {"storage": "1024Mi"}}})
    return hub


def test_kubectl_prints_the_workloads_columns_offline_as_online(sandbox, workloads, tmp_path):
    kubectl = Kubectl(tmp_path, workloads.url)
    kinds = "deployments,daemonsets,jobs,pvc"  # kubectl's Tables alone fill its cache
    commands = [(kinds, "-A"), (kinds, "-A", "-o", "wide")]
    # kube-apiserver selects jobs on status.successful (their succeeded count, as text).
    done = ("jobs", "-A", "--field-selector", "status.successful=1", "-o", "name")
    started = time.monotonic()
    online = [kubectl("get", *cmd).stdout for cmd in commands]
    assert kubectl("get", *done).stdout == "job.batch/backup\n"
    go_offline(sandbox, workloads)
    offline = [kubectl("get", *cmd) for cmd in commands]
    assert kubectl("get", *done).stdout == "job.batch/backup\n"
    moved = time.monotonic() - started + 1
    for cmd, before, after in zip(commands, online, offline, strict=True):
        assert "served from the yurthub cache" in after.stderr, cmd
        # kubectl prints one table per kind, separated by a blank line.
        tables_on, tables_off = before.split("\n\n"), after.stdout.split("\n\n")
        assert len(tables_off) == len(tables_on) == 4, (cmd, after.stdout)
        for t_on, t_off in zip(tables_on, tables_off, strict=True):
            assert_same_table(t_on, t_off, moved, cmd)
    # kube-apiserver's columns, not NAME and AGE: the values come from the printers.
    tables = [cells(t) for t in offline[1].stdout.split("\n\n")]
    (dh, drows), (sh, srows), (jh, jrows), (ph, prows) = tables
    assert dh == ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS",
                  "IMAGES", "SELECTOR"]
    assert drows[0][1:5] == ["deployment.apps/web", "2/3", "3", "2"]
    assert drows[0][6:] == ["nginx,log", "nginx:1.27,busybox", "app=web,tier in (edge,front)"]
    assert sh[2:8] == ["DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR"]
    assert srows[0][1:8] == ["daemonset.apps/agent", "2", "2", "1", "2", "1",
                             "edge=true"]
    assert srows[0][-1] == "app=agent"
    assert jh[2:5] == ["STATUS", "COMPLETIONS", "DURATION"]
    assert jrows[0][1:5] == ["job.batch/backup", "Complete", "1/1", "30m"]
    assert ph[2:9] == ["STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                       "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert prows[0][1:8] == ["persistentvolumeclaim/data", "Bound", "pv-data", "1Gi", "RWO",
                             "local-path", "<unset>"]
    assert prows[0][-1] == "Filesystem"


def test_resources_kube_apiserver_prints_by_default_keep_created_at_offline(sandbox, hub,
                                                                            tmp_path):
    # CustomResourceDefinitions (like roles, cluster roles and limit ranges) have no printer
    # in kube-apiserver: it answers with rest.NewDefaultTableConvertor's NAME and CREATED AT.
    golden, _ = table_golden("crd")
    sandbox.create(golden["integration"][0]["crd"])
    kubectl = Kubectl(tmp_path, hub.url)
    online = kubectl("get", "crd").stdout  # its Table alone fills kubectl's cache
    go_offline(sandbox, hub)
    offline = kubectl("get", "crd")
    assert "served from the yurthub cache" in offline.stderr
    assert offline.stdout == online
    header, rows = cells(offline.stdout)
    assert header == ["NAME", "CREATED AT"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", rows[0][1]), rows


def test_kubectl_prints_the_policy_objects_offline_as_online(sandbox, hub, tmp_path):
    sandbox.put({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "readers", "namespace": "default"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": "view"},
                 "subjects": [{"kind": "User", "name": "alice"},
                              {"kind": "ServiceAccount", "name": "agent",
                               "namespace": "kube-system"}]})
    sandbox.put({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {"name": "view"}, "rules": []})
    sandbox.put({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": {"name": "web", "namespace": "default"},
                 "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "web"}}},
                 "status": {"disruptionsAllowed": 1}})
    sandbox.put({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                 "metadata": {"name": "edge-critical"}, "value": 100000, "globalDefault": False,
                 "preemptionPolicy": "Never"})
    kubectl = Kubectl(tmp_path, hub.url)
    kinds = "rolebindings,clusterroles,pdb,priorityclasses"
    started = time.monotonic()
    online = kubectl("get", kinds, "-A", "-o", "wide").stdout
    go_offline(sandbox, hub)
    offline = kubectl("get", kinds, "-A", "-o", "wide")
    assert "served from the yurthub cache" in offline.stderr
    tables_on, tables_off = online.split("\n\n"), offline.stdout.split("\n\n")
    assert len(tables_off) == len(tables_on) == 4, offline.stdout
    for t_on, t_off in zip(tables_on, tables_off, strict=True):
        assert_same_table(t_on, t_off, time.monotonic() - started + 1, (kinds,))
    (bh, brows), (ch, crows), (ph, prows), (qh, qrows) = map(cells, tables_off)
    assert bh[2:] == ["ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert brows[0][2] == "ClusterRole/view" and brows[0][4:] == ["alice", "",
                                                                  "kube-system/agent"]
    assert ch == ["NAMESPACE", "NAME", "CREATED AT"]
    assert prows[0][1:5] == ["poddisruptionbudget.policy/web", "N/A", "25%", "1"]
    assert qh[1:] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    assert qrows[0][2:4] == ["100000", "false"] and qrows[0][5] == "Never"


def test_kubectl_prints_autoscalers_templates_and_webhooks_offline_as_online(sandbox, hub,
                                                                            tmp_path):
    """kube-apiserver prints these with printers of their own; offline the hub printed NAME
    and AGE (kubectl's fallback), so `kubectl get hpa` lost its TARGETS and REPLICAS."""
    sandbox.put({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                 "metadata": {"name": "web", "namespace": "default"},
                 "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "web"},
                          "minReplicas": 2, "maxReplicas": 10, "metrics": [
                              {"type": "Resource", "resource": {"name": "cpu", "target": {
                                  "type": "Utilization", "averageUtilization": 80}}}]},
                 "status": {"currentReplicas": 3, "desiredReplicas": 3, "currentMetrics": [
                     {"type": "Resource", "resource": {"name": "cpu", "current": {
                         "averageUtilization": 41, "averageValue": "120m"}}}]}})
    sandbox.put({"apiVersion": "v1", "kind": "PodTemplate",
                 "metadata": {"name": "probe", "namespace": "default"},
                 "template": {"metadata": {"labels": {"app": "probe"}}, "spec": {
                     "containers": [{"name": "p", "image": "busybox"}]}}})
    for kind in ("Mutating", "Validating"):
        sandbox.put({"apiVersion": "admissionregistration.k8s.io/v1",
                     "kind": f"{kind}WebhookConfiguration",
                     "metadata": {"name": f"{kind.lower()}-hooks"}, "webhooks": [
                         {"name": f"{n}.example.com", "sideEffects": "None",
                          "admissionReviewVersions": ["v1"],
                          "clientConfig": {"url": "https://hooks.example.com"}}
                         for n in ("a", "b")]})
    kubectl = Kubectl(tmp_path, hub.url)
    kinds = "hpa,podtemplates,mutatingwebhookconfigurations,validatingwebhookconfigurations"
    started = time.monotonic()
    online = kubectl("get", kinds, "-A").stdout
    go_offline(sandbox, hub)
    offline = kubectl("get", kinds, "-A")
    assert "served from the yurthub cache" in offline.stderr
    tables_on, tables_off = online.split("\n\n"), offline.stdout.split("\n\n")
    assert len(tables_off) == len(tables_on) == 4, offline.stdout
    for t_on, t_off in zip(tables_on, tables_off, strict=True):
        assert_same_table(t_on, t_off, time.monotonic() - started + 1, (kinds,))
    (hh, hrows), (th, trows), (mh, mrows), (vh, vrows) = map(cells, tables_off)
    assert hh[1:] == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert hrows[0][1:7] == ["horizontalpodautoscaler.autoscaling/web", "Deployment/web",
                             "cpu: 41%/80%", "2", "10", "3"]
    assert th[1:] == ["NAME", "CONTAINERS", "IMAGES", "POD LABELS"]
    assert trows[0][1:] == ["podtemplate/probe", "p", "busybox", "app=probe"]
    assert mh == vh == ["NAMESPACE", "NAME", "WEBHOOKS", "AGE"]
    assert mrows[0][1:3] == ["mutatingwebhookconfiguration.admissionregistration.k8s.io/"
                             "mutating-hooks", "2"]
    assert vrows[0][2] == "2"
