"""The filter manager: readiness, chains per request, and what a change touches."""

from __future__ import annotations

import pytest

from yurthub import config
from yurthub.errors import ServiceUnavailable
from yurthub.filters.manager import FilterManager, Inputs, Own

POOLS = {"pool-a": frozenset({"node-0000", "node-0001"}), "pool-b": frozenset({"node-0002"})}
TOPO = {("default", "web-pool"): "openyurt.io/nodepool"}


def manager(**settings) -> FilterManager:
    cfg = config.load(None, {"node_name": "node-0001", **settings})
    return FilterManager(cfg)


def ready(m: FilterManager, **over) -> FilterManager:
    parts = {"configmap": {}, "node": ("pool-a", "zone-a"), "nodepools": POOLS,
             "services": TOPO}
    parts.update(over)
    m.update("test", **parts)
    return m


def test_not_ready_until_everything_is_known_then_chains():
    m = manager()
    assert "yurt-hub-cfg" in m.not_ready()
    with pytest.raises(ServiceUnavailable) as e:
        m.chain_for("kube-proxy", "list", "discovery.k8s.io", "v1", "endpointslices")
    assert e.value.code == 503 and e.value.details == {"retryAfterSeconds": 1}
    # A request no filter could ever apply to is not held up; nor is the hub itself.
    assert m.chain_for("kubelet", "list", "", "v1", "secrets") is None
    assert m.chain_for("yurthub", "list", "", "v1", "services") is None
    # Even a client that only yurt-hub-cfg might name must wait: never unfiltered data.
    with pytest.raises(ServiceUnavailable):
        m.chain_for("kubectl", "list", "", "v1", "services")
    m.update("cm", configmap={})
    m.update("node", node=("pool-a", "zone-a"))
    m.update("pools", nodepools=POOLS)
    assert m.not_ready() == ("the filter configuration is not known yet (waiting for "
                             "services)")
    m.update("services", services=TOPO)
    assert m.not_ready() is None
    chain = m.chain_for("kube-proxy", "list", "discovery.k8s.io", "v1", "endpointslices")
    assert chain.names == "servicetopology,forwardkubesvctraffic"
    c = chain.scope.ctx
    assert (c.pool, c.pool_nodes, c.zone, c.node_name) == (
        "pool-a", POOLS["pool-a"], "zone-a", "node-0001")
    assert m.chain_for("kubectl", "list", "", "v1", "services") is None


def test_what_must_be_known_follows_the_active_filters():
    assert manager(enable_resource_filter="false").not_ready() is None
    m = manager(disabled_resource_filters="servicetopology,nodeportisolation")
    m.update("cm", configmap={})
    assert m.not_ready() is None  # no pool, NodePools or Services needed
    m = manager(nodepool_name="pool-b", disabled_resource_filters="servicetopology")
    m.update("cm", configmap={})
    assert m.not_ready() is None  # the pool is a setting: the Node is not needed
    assert m.snapshot.ctx.pool == "pool-b"


def test_nodepool_name_setting_wins_over_the_label():
    m = ready(manager(nodepool_name="pool-b"))
    assert (m.snapshot.ctx.pool, m.snapshot.ctx.pool_nodes) == ("pool-b", POOLS["pool-b"])


def test_changes_tell_the_clients_they_touch():
    m = ready(manager())
    seen: list = []
    m.on_change(lambda clients, why: seen.append((clients, why)))
    topology = {(c, "discovery.k8s.io", "endpointslices") for c in
                ("kube-proxy", "coredns", "nginx-ingress-controller")} | {
        (c, "", "endpoints") for c in ("kube-proxy", "coredns", "nginx-ingress-controller")}
    assert m.update("same", nodepools=dict(POOLS)) == set() and seen == []
    assert m.update("members", nodepools={**POOLS, "pool-a": frozenset({"node-0001"})}) == \
        topology
    assert m.update("other pool's members", nodepools={
        "pool-a": frozenset({"node-0001"}), "pool-b": frozenset()}) == set()
    assert m.update("annotation", services={}) == topology
    assert m.update("pool", node=("pool-b", "zone-b")) == topology | {
        ("kube-proxy", "", "services")}
    assert m.update("cfg", configmap={"masterservice": "python"}) == {
        ("python", "", "services")}
    assert [why for _, why in seen] == ["members", "annotation", "pool", "cfg"]


def test_cache_agents_are_told_when_they_change():
    m = ready(manager())
    agents: list = []
    m.on_cache_agents(agents.append)
    m.update("cfg", configmap={"cache_agents": "kubectl"})
    m.update("cfg", configmap={"cache_agents": "kubectl", "masterservice": "x"})
    assert agents == [frozenset({"kubectl"})] and m.cache_agents() == {"kubectl"}


def test_first_knowledge_and_a_persisted_baseline_tell_nobody():
    m = manager()
    seen: list = []
    m.on_change(lambda clients, why: seen.append(clients))
    ready(m)
    assert seen == []
    restored = manager()
    restored.on_change(lambda clients, why: seen.append(clients))
    restored.load(Inputs.from_json(m.inputs.to_json()))
    assert restored.not_ready() is None and restored.inputs == m.inputs and seen == []
    restored.update("cloud", services={})
    assert seen and ("kube-proxy", "discovery.k8s.io", "endpointslices") in seen[0]


def test_a_start_with_other_settings_than_the_cache_was_filtered_under_tells_who():
    before = ready(manager())
    doc = before.persisted()
    assert Own.from_json(doc["own"]) == before.own
    inputs = Inputs.from_json(doc)
    seen: list = []
    same = manager()
    same.on_change(lambda clients, why: seen.append(clients))
    assert same.load(inputs, Own.from_json(doc["own"])) == set() and seen == []
    assert manager().load(inputs, None) == set()  # an older hub's copy: taken as the same
    off = manager(disabled_resource_filters="serviceenvupdater")
    off.on_change(lambda clients, why: seen.append((clients, why)))
    touched = off.load(inputs, before.own)
    assert ("kubelet", "", "pods") in touched and seen[0][0] == touched
    assert "serviceenvupdater" in seen[0][1]
    assert ("kube-proxy", "discovery.k8s.io", "endpointslices") not in touched
    moved = manager(hub_serving_address="169.254.2.9", nodepool_name="pool-b")
    touched = moved.load(inputs, before.own)
    assert {("kubelet", "", "pods"), ("kube-proxy", "discovery.k8s.io", "endpointslices"),
            ("kube-proxy", "", "services")} <= touched


@pytest.mark.parametrize("bad", [{"node": 5}, {"services": [["a"]]}, {"nodepools": [1]},
                                 {"configmap": "x"}])
def test_a_bad_persisted_copy_is_an_error(bad):
    with pytest.raises(ValueError, match="not a persisted filter configuration"):
        Inputs.from_json({"configmap": {}, **bad})



def test_no_https_port_here_the_filters_still_point_at_yurthubs_port():
    assert ready(manager(secure_proxy_port="0")).snapshot.ctx.hub_port == 10268
    assert ready(manager(secure_proxy_port="20268")).snapshot.ctx.hub_port == 20268
