"""masterservice, discardcloudservice and nodeportisolation, table-driven: sandbox Services in,
the expected outcome written by hand from YurtHub's semantics."""

from __future__ import annotations

import pytest

from tests.unit.filters.sandbox_objects import ctx, frozen, obj, raw, scope
from yurthub.filters.discardcloudservice import DiscardCloudService
from yurthub.filters.masterservice import MasterService
from yurthub.filters.nodeportisolation import NodePortIsolation, pool_enabled, pool_settings

SVC = ("", "v1", "services")


def test_masterservice_rewrites_the_kubernetes_service():
    o = obj("services", "default", "kubernetes")
    before = frozen(o)
    out = MasterService().filter(o, scope(*SVC, ctx(hub_host="169.254.2.1", hub_port=10268)))
    assert out["spec"]["clusterIP"] == "169.254.2.1"
    assert out["spec"]["clusterIPs"] == ["169.254.2.1"]
    assert out["spec"]["ports"] == [{"name": "https", "protocol": "TCP", "port": 10268,
                                     "targetPort": 6443}]
    assert out["metadata"] == before["metadata"] and out["status"] == before["status"]
    assert o == before


def test_masterservice_other_address_and_port_and_idempotence():
    f = MasterService()
    s = scope(*SVC, ctx(hub_host="10.0.0.7", hub_port=8443))
    out = f.filter(obj("services", "default", "kubernetes"), s)
    assert (out["spec"]["clusterIP"], out["spec"]["ports"][0]["port"]) == ("10.0.0.7", 8443)
    assert f.filter(out, s) is out  # an already rewritten copy (from the cache) is kept as is


@pytest.mark.parametrize("namespace, name", [("default", "web-plain"), ("default", "web-lb")])
def test_masterservice_leaves_other_services(namespace, name):
    o = obj("services", namespace, name)
    assert MasterService().filter(o, scope(*SVC)) is o


def test_masterservice_only_the_https_port_and_without_ports():
    o = obj("services", "default", "kubernetes")
    o["spec"]["ports"] = [{"name": "metrics", "port": 9000}, {"name": "https", "port": 443},
                          {"name": "https", "port": 444}]
    out = MasterService().filter(o, scope(*SVC))
    assert [p["port"] for p in out["spec"]["ports"]] == [9000, 10268, 444]
    del o["spec"]["ports"]
    assert MasterService().filter(o, scope(*SVC))["spec"]["clusterIP"] == "169.254.2.1"


DISCARD = [
    # (case, namespace, name, changes to the object, dropped?)
    ("LoadBalancer with discard=true", "default", "web-lb", {}, True),
    ("LoadBalancer without the annotation", "default", "web-lb-kept", {}, False),
    ("discard=false", "default", "web-lb",
     {"annotations": {"svc.openyurt.io/discard": "false"}}, False),
    ("discard=True is not true", "default", "web-lb",
     {"annotations": {"svc.openyurt.io/discard": "True"}}, False),
    ("ClusterIP with discard=true", "default", "web-plain",
     {"annotations": {"svc.openyurt.io/discard": "true"}}, False),
    ("the tunnel server's internal service", "kube-system", "x-tunnel-server-internal-svc",
     {}, True),
    ("kubernetes", "default", "kubernetes", {}, False),
]


@pytest.mark.parametrize("case, namespace, name, change, dropped", DISCARD,
                         ids=[c[0] for c in DISCARD])
def test_discardcloudservice(case, namespace, name, change, dropped):
    if name == "x-tunnel-server-internal-svc":
        o = obj("services", "default", "web-plain")
        o["metadata"].update(namespace=namespace, name=name)
    else:
        o = obj("services", namespace, name)
    o["metadata"].update(change)
    before = frozen(o)
    out = DiscardCloudService().filter(o, scope(*SVC))
    assert (out is None) == dropped
    assert out is None or out is o
    assert o == before
    if dropped:
        assert DiscardCloudService().may_change(raw("services", "default", "web-lb"),
                                                scope(*SVC))


ISOLATION = [
    # (case, listen annotation (None: absent), service type, node's pool, kept?)
    ("the node's pool is listed", "pool-a", "NodePort", "pool-a", True),
    ("another pool is listed", "pool-b", "NodePort", "pool-a", False),
    ("a list with the pool", "pool-b, pool-a", "NodePort", "pool-a", True),
    ("* enables every pool", "*", "NodePort", "pool-a", True),
    ("-pool excludes it, even with *", "-pool-a,*", "NodePort", "pool-a", False),
    ("* with another pool excluded", "*,-pool-b", "NodePort", "pool-a", True),
    ("first mention wins: pool-a then -pool-a", "pool-a,-pool-a", "NodePort", "pool-a", True),
    ("first mention wins: -pool-a then pool-a", "-pool-a,pool-a", "NodePort", "pool-a", False),
    ("empty annotation drops", "", "NodePort", "pool-a", False),
    ("only commas and dashes drop", " , -", "NodePort", "pool-a", False),
    ("LoadBalancer too", "pool-b", "LoadBalancer", "pool-a", False),
    ("ClusterIP never", "pool-b", "ClusterIP", "pool-a", True),
    ("no annotation", None, "NodePort", "pool-a", True),
    ("node in no pool sees everything", "pool-b", "NodePort", "", True),
]


@pytest.mark.parametrize("case, listen, kind, pool, kept", ISOLATION,
                         ids=[c[0] for c in ISOLATION])
def test_nodeportisolation(case, listen, kind, pool, kept):
    o = obj("services", "default", "web-nodeport")
    ann = o["metadata"].setdefault("annotations", {})
    if listen is None:
        del ann["nodeport.openyurt.io/listen"]
    else:
        ann["nodeport.openyurt.io/listen"] = listen
    o["spec"]["type"] = kind
    before = frozen(o)
    out = NodePortIsolation().filter(o, scope(*SVC, ctx(pool=pool)))
    assert (out is o) if kept else (out is None)
    assert o == before


def test_nodeportisolation_seeded_service_per_pool():
    f = NodePortIsolation()
    o = obj("services", "default", "web-nodeport")  # listen: pool-a
    assert f.filter(o, scope(*SVC, ctx(pool="pool-a"))) is o
    assert f.filter(o, scope(*SVC, ctx(pool="pool-b"))) is None
    r = raw("services", "default", "web-nodeport")
    assert f.may_change(r, scope(*SVC, ctx(pool="pool-b")))
    assert not f.may_change(r, scope(*SVC, ctx(pool="")))
    assert not f.may_change(raw("services", "default", "web-plain"),
                            scope(*SVC, ctx(pool="pool-b")))


def test_nodeportisolation_helpers():
    assert pool_settings(" a, -b ,a, -a , *") == frozenset({"a", "-b", "*"})
    assert pool_enabled(frozenset({"*"}), "x") and not pool_enabled(frozenset({"y"}), "x")


def test_depends():
    assert NodePortIsolation().depends(ctx(pool="a"), ctx(pool="b"))
    assert not NodePortIsolation().depends(ctx(pool="a"), ctx(pool="a", zone="z"))
    assert not DiscardCloudService().depends(ctx(pool="a"), ctx(pool="b"))
    assert MasterService().depends(ctx(hub_port=1), ctx(hub_port=2))
