"""Which clients get which filter: YurtHub's defaults, yurt-hub-cfg, the settings."""

from __future__ import annotations

import pytest

from yurthub import config
from yurthub.errors import ConfigError
from yurthub.filters.settings import (
    REGISTRY,
    FilterSettings,
    active_filters,
    affected,
    cache_agents,
)


def table(configmap=None, **settings):
    cfg = config.load(None, {"node_name": "n1", **settings})
    active = active_filters(cfg.enable_resource_filter, cfg.disabled_resource_filters,
                            cfg.working_mode)
    return FilterSettings.build(active, configmap)


DEFAULTS = [
    # YurtHub's FilterToComponentsResourcesAndVerbs, written out.
    ("kubelet", "list", "", "services", ("masterservice",)),
    ("kubelet", "watch", "", "services", ("masterservice",)),
    ("kubelet", "get", "", "services", ()),
    ("kube-proxy", "list", "", "services", ("discardcloudservice", "nodeportisolation")),
    ("kube-proxy", "watch", "discovery.k8s.io", "endpointslices",
     ("servicetopology", "forwardkubesvctraffic")),
    ("kube-proxy", "list", "", "endpoints", ("servicetopology",)),
    ("coredns", "list", "discovery.k8s.io", "endpointslices", ("servicetopology",)),
    ("nginx-ingress-controller", "watch", "", "endpoints", ("servicetopology",)),
    ("kubelet", "get", "", "configmaps", ("inclusterconfig",)),
    ("kubelet", "watch", "", "configmaps", ("inclusterconfig",)),
    ("kubelet", "get", "", "pods", ("serviceenvupdater",)),
    ("kubelet", "patch", "", "pods", ("serviceenvupdater",)),
    ("kubelet", "create", "", "pods", ()),
    ("kube-proxy", "list", "", "pods", ()),
    ("kubectl", "list", "discovery.k8s.io", "endpointslices", ()),
    ("kube-proxy", "list", "other.io", "endpointslices", ()),
]


@pytest.mark.parametrize("component, verb, group, resource, names", DEFAULTS)
def test_defaults(component, verb, group, resource, names):
    assert table().names_for(component, verb, group, resource) == names


def test_yurt_hub_cfg_adds_clients():
    t = table({"servicetopology": " kubectl , Cilium-Agent,", "masterservice": "python",
               "cache_agents": "kubectl", "unknownfilter": "kubectl"})
    assert t.names_for("kubectl", "list", "discovery.k8s.io", "endpointslices") == (
        "servicetopology",)
    assert t.names_for("cilium-agent", "watch", "", "endpoints") == ("servicetopology",)
    assert t.names_for("python", "list", "", "services") == ("masterservice",)
    assert t.names_for("kube-proxy", "list", "discovery.k8s.io", "endpointslices") == (
        "servicetopology", "forwardkubesvctraffic")


def test_disabled_and_cloud_mode():
    t = table(disabled_resource_filters="servicetopology,masterservice")
    assert t.names_for("kube-proxy", "list", "discovery.k8s.io", "endpointslices") == (
        "forwardkubesvctraffic",)
    assert t.names_for("kubelet", "list", "", "services") == ()
    assert table(disabled_resource_filters="*").table == {}
    assert table(enable_resource_filter="false").table == {}
    cloud = table(working_mode="cloud")
    assert {f.name for f in cloud.active} == {"servicetopology", "masterservice",
                                              "inclusterconfig", "nodeportisolation"}
    assert cloud.names_for("kubelet", "get", "", "pods") == ()


def test_unknown_filter_names_are_a_config_error():
    with pytest.raises(ConfigError, match="'servicetopolgy' is not a filter"):
        config.load(None, {"disabled_resource_filters": "servicetopolgy"})


def test_may_filter_and_clients_of():
    t = table()
    assert t.may_filter("list", "", "services") and t.may_filter("get", "", "pods")
    assert not t.may_filter("get", "", "services") and not t.may_filter("list", "", "secrets")
    assert t.clients_of(["servicetopology"]) == {
        (c, g, r) for c in ("kube-proxy", "coredns", "nginx-ingress-controller")
        for g, r in (("discovery.k8s.io", "endpointslices"), ("", "endpoints"))}


def test_affected():
    old = table()
    new = table({"masterservice": "python", "servicetopology": "coredns"})
    assert affected(old, new) == {("python", "", "services")}
    assert affected(new, old) == {("python", "", "services")}
    assert affected(old, table()) == set()


def test_cache_agents_and_registry_order():
    assert cache_agents({"cache_agents": "a, B,,c"}) == {"a", "b", "c"}
    assert cache_agents(None) == frozenset()
    assert tuple(f.name for f in REGISTRY) == config.FILTER_NAMES
