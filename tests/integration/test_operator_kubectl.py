"""An operator's real kubectl on an edge node, through the hub, with the cloud cut: what it
is told must be true of the cloud, or a clear error and a non-zero exit."""

from __future__ import annotations

from tests.fixtures.kubectl import Kubectl
from tests.fixtures.waiting import wait_for

NODE = "node-0000"


def go_offline(sandbox, hub) -> None:
    sandbox.offline()
    wait_for(lambda: hub.metric("node_yurthub_server_healthy_status") == 0, timeout=10,
             what="the hub to notice the cloud is gone")


def test_kubectl_cordon_offline_fails_and_nothing_shows_cordoned(sandbox, hub_factory,
                                                                tmp_path):
    """`kubectl cordon` offline printed "node/node-0000 cordoned" and exited 0: the cordon
    went to kubectl's cache only, `kubectl get node` showed SchedulingDisabled, while the
    cloud never heard of it (and the next list from the cloud dropped it)."""
    hub = hub_factory(sandbox.url, node=NODE, extra=["--cache-agents", "kubectl"])
    kubectl = Kubectl(tmp_path, hub.url)
    assert NODE in kubectl("get", "nodes").stdout  # kubectl's cache now holds the nodes
    go_offline(sandbox, hub)

    for args in (("cordon", NODE),
                 ("taint", "node", NODE, "edge=down:NoSchedule")):
        r = kubectl(*args, check=False)
        # kubectl cordon prints its error and exits 0 whatever the server says; taint fails.
        assert r.returncode != 0 or args[0] == "cordon", (args, r.stdout, r.stderr)
        assert "cordoned" not in r.stdout and "tainted" not in r.stdout, r.stdout
        assert "cloud is unreachable" in r.stderr, r.stderr

    shown = kubectl("get", "node", NODE).stdout
    assert "SchedulingDisabled" not in shown, shown
    node = kubectl("get", "node", NODE, "-o", "jsonpath={.spec}").stdout
    assert "unschedulable" not in node and "taints" not in node, node
    assert not sandbox.get("nodes", NODE).get("spec", {}).get("unschedulable")


def test_kubectl_offline_services_say_they_come_from_the_cache(sandbox, hub_factory, tmp_path):
    """Services (a pool-scoped resource, answered by the multiplexer's shared state) came
    offline to `kubectl get svc -o name` / `-o yaml` with no word that they were the hub's
    last copy, while pods, and services as a Table, said "served from the yurthub cache"."""
    hub = hub_factory(sandbox.url, node=NODE)
    kubectl = Kubectl(tmp_path, hub.url)
    online = kubectl("get", "svc", "-A", "-o", "name")
    assert "service/kubernetes" in online.stdout
    assert "yurthub cache" not in online.stderr  # online: the cloud's answer, no warning
    go_offline(sandbox, hub)

    for args in (("get", "svc", "-A", "-o", "name"),
                 ("get", "svc", "-n", "default", "-o", "yaml"),
                 ("get", "svc", "-A", "-w", "-o", "name", "--request-timeout", "2s")):
        r = kubectl(*args)
        assert "service/kubernetes" in r.stdout or "name: kubernetes" in r.stdout, r.stdout
        assert "Warning: served from the yurthub cache, age" in r.stderr, (args, r.stderr)
