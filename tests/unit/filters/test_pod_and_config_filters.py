"""inclusterconfig, forwardkubesvctraffic and serviceenvupdater, table-driven: sandbox
objects in, the expected output written by hand from YurtHub's semantics."""

from __future__ import annotations

import json

import pytest

from tests.unit.filters.sandbox_objects import ctx, frozen, obj, raw, scope
from yurthub.filters.chain import Chain
from yurthub.filters.forwardkubesvctraffic import ForwardKubeSvcTraffic
from yurthub.filters.inclusterconfig import InClusterConfig
from yurthub.filters.serviceenvupdater import ServiceEnvUpdater

CM = ("", "v1", "configmaps")
SLICES = ("discovery.k8s.io", "v1", "endpointslices")
PODS = ("", "v1", "pods")

SEEDED_EXPECTED = """apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  #kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 0s
kind: KubeProxyConfiguration
mode: iptables
"""


def test_inclusterconfig_comments_out_the_seeded_kubeconfig_line():
    o = obj("configmaps", "kube-system", "kube-proxy")
    before = frozen(o)
    out = InClusterConfig().filter(o, scope(*CM))
    assert out["data"]["config.conf"] == SEEDED_EXPECTED
    assert out["data"]["kubeconfig.conf"] == before["data"]["kubeconfig.conf"]
    assert o == before
    assert InClusterConfig().filter(out, scope(*CM)) is out  # already commented: kept


CONF = [
    # (case, config.conf, expected)
    ("top level", "kubeconfig: /k\nmode: x", "#kubeconfig: /k\nmode: x"),
    ("indented keeps its indent", "a:\n    kubeconfig: /k", "a:\n    #kubeconfig: /k"),
    ("a second colon: left alone (as YurtHub)", "kubeconfig: C:/k", "kubeconfig: C:/k"),
    ("only the first word is replaced", "kubeconfig: /kubeconfig",
     "#kubeconfig: /kubeconfig"),
    ("another key containing it", "mykubeconfig: /k", "mykubeconfig: /k"),
    ("two lines", "kubeconfig: /a\nkubeconfig: /b", "#kubeconfig: /a\n#kubeconfig: /b"),
    ("tab indent is not trimmed (as YurtHub)", "\tkubeconfig: /k", "\tkubeconfig: /k"),
]


@pytest.mark.parametrize("case, text, expected", CONF, ids=[c[0] for c in CONF])
def test_inclusterconfig_lines(case, text, expected):
    o = obj("configmaps", "kube-system", "kube-proxy")
    o["data"]["config.conf"] = text
    out = InClusterConfig().filter(o, scope(*CM))
    assert out["data"]["config.conf"] == expected
    assert (out is o) == (text == expected)


@pytest.mark.parametrize("namespace, name", [("kube-system", "yurt-hub-cfg"),
                                             ("default", "kube-root-ca.crt")])
def test_inclusterconfig_other_configmaps(namespace, name):
    o = obj("configmaps", namespace, name)
    assert InClusterConfig().filter(o, scope(*CM)) is o


def test_inclusterconfig_same_name_elsewhere_and_no_data():
    o = obj("configmaps", "kube-system", "kube-proxy")
    o["metadata"]["namespace"] = "default"
    assert InClusterConfig().filter(o, scope(*CM)) is o
    o = obj("configmaps", "kube-system", "kube-proxy")
    del o["data"]
    assert InClusterConfig().filter(o, scope(*CM)) is o


def test_forwardkubesvctraffic_points_the_kubernetes_slice_at_the_hub():
    o = obj("endpointslices", "default", "kubernetes")
    before = frozen(o)
    out = ForwardKubeSvcTraffic().filter(o, scope(*SLICES))
    assert out["endpoints"] == [{"addresses": ["169.254.2.1"], "conditions": {"ready": True}}]
    assert out["ports"] == [{"name": "https", "protocol": "TCP", "port": 10268}]
    assert out["addressType"] == "IPv4" and out["metadata"] == before["metadata"]
    assert o == before
    assert ForwardKubeSvcTraffic().filter(out, scope(*SLICES)) is out


def test_forwardkubesvctraffic_address_family_must_match():
    o = obj("endpointslices", "default", "kubernetes")
    assert ForwardKubeSvcTraffic().filter(o, scope(*SLICES, ctx(hub_host="fd00::1"))) is o
    o["addressType"] = "IPv6"
    out = ForwardKubeSvcTraffic().filter(o, scope(*SLICES, ctx(hub_host="fd00::1")))
    assert out["endpoints"][0]["addresses"] == ["fd00::1"]


def test_forwardkubesvctraffic_other_slices_and_v1beta1():
    o = obj("endpointslices", "default", "web-plain-sbx01")
    assert ForwardKubeSvcTraffic().filter(o, scope(*SLICES)) is o
    k = obj("endpointslices", "default", "kubernetes")
    assert ForwardKubeSvcTraffic().filter(
        k, scope("discovery.k8s.io", "v1beta1", "endpointslices")) is k


def pod_with_env(env, init_env=None):
    o = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "p", "namespace": "kube-system"},
         "spec": {"nodeName": "node-0001",
                  "containers": [{"name": "a", "image": "x", "env": env},
                                 {"name": "b", "image": "x"}]}}
    if init_env is not None:
        o["spec"]["initContainers"] = [{"name": "i", "image": "x", "env": init_env}]
    return o


ENV = [
    ("both set", [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.1"},
                  {"name": "KUBERNETES_SERVICE_PORT", "value": "443"},
                  {"name": "OTHER", "value": "1"}],
     [{"name": "KUBERNETES_SERVICE_HOST", "value": "169.254.2.1"},
      {"name": "KUBERNETES_SERVICE_PORT", "value": "10268"},
      {"name": "OTHER", "value": "1"}]),
    ("only the host: the port is not added", [{"name": "KUBERNETES_SERVICE_HOST",
                                               "value": "1.2.3.4"}],
     [{"name": "KUBERNETES_SERVICE_HOST", "value": "169.254.2.1"}]),
    ("neither", [{"name": "OTHER", "value": "1"}], [{"name": "OTHER", "value": "1"}]),
    ("other KUBERNETES_ variables stay", [{"name": "KUBERNETES_SERVICE_PORT_HTTPS",
                                           "value": "443"}],
     [{"name": "KUBERNETES_SERVICE_PORT_HTTPS", "value": "443"}]),
]


@pytest.mark.parametrize("case, env, expected", ENV, ids=[c[0] for c in ENV])
def test_serviceenvupdater(case, env, expected):
    init = [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.1"}]
    o = pod_with_env(env, init)
    before = frozen(o)
    out = ServiceEnvUpdater().filter(o, scope(*PODS))
    assert out["spec"]["containers"][0]["env"] == expected
    assert out["spec"]["initContainers"] == before["spec"]["initContainers"]
    assert out["spec"]["containers"][1] == before["spec"]["containers"][1]
    assert o == before
    assert (out is o) == (env == expected)


def test_serviceenvupdater_leaves_seeded_pods_alone():
    o = obj("pods", "default", next(n for (r, ns, n) in _pods()))
    assert ServiceEnvUpdater().filter(o, scope(*PODS)) is o
    assert not ServiceEnvUpdater().may_change(json.dumps(o).encode(), scope(*PODS))


def _pods():
    from tests.unit.filters.sandbox_objects import _objects
    return [k for k in _objects() if k[0] == "pods"]


def test_chain_runs_in_order_and_apply_raw_reencodes_only_changes():
    from yurthub.filters.servicetopology import ServiceTopology
    context = ctx(service_topology={("default", "kubernetes"): "kubernetes.io/hostname"})
    chain = Chain([ServiceTopology(), ForwardKubeSvcTraffic()], scope(*SLICES, context))
    # servicetopology empties the slice first, then forwardkubesvctraffic points it at the hub
    out = json.loads(chain.apply_raw(raw("endpointslices", "default", "kubernetes")))
    assert out["endpoints"] == [{"addresses": ["169.254.2.1"], "conditions": {"ready": True}}]
    plain = raw("endpointslices", "default", "web-plain-sbx01")
    assert chain.apply_raw(plain) is plain
