"""servicetopology, table-driven: sandbox EndpointSlices and Endpoints in, endpoints kept
written out by hand from YurtHub's semantics (pkg/yurthub/filter/servicetopology)."""

from __future__ import annotations

import pytest

from tests.unit.filters.sandbox_objects import ctx, frozen, obj, raw, scope
from yurthub.filters.chain import Chain
from yurthub.filters.servicetopology import ServiceTopology

F = ServiceTopology()
POOLS = {"pool-a": frozenset({"node-0000", "node-0001"}),
         "pool-b": frozenset({"node-0002", "node-0003"})}
TOPOLOGY = {("default", "web-hostname"): "kubernetes.io/hostname",
            ("default", "web-pool"): "openyurt.io/nodepool",
            ("default", "web-zone"): "kubernetes.io/zone"}


def slice_ctx(node: str = "node-0001", pool: str = "pool-a", **kw):
    kw.setdefault("pool_nodes", POOLS.get(pool))
    kw.setdefault("service_topology", TOPOLOGY)
    return ctx(node_name=node, pool=pool, **kw)


def addresses(o):
    return [a for ep in o["endpoints"] for a in ep["addresses"]]


CASES = [
    # (case, slice name, context, addresses kept)
    ("hostname keeps this node's endpoint", "web-hostname-sbx01", slice_ctx(),
     ["10.128.4.201"]),
    ("hostname on a pool-b node", "web-hostname-sbx01", slice_ctx("node-0003", "pool-b"),
     ["10.128.12.201"]),
    ("nodepool keeps the pool's endpoints", "web-pool-sbx01", slice_ctx(),
     ["10.128.0.206", "10.128.4.206"]),
    ("nodepool for pool-b", "web-pool-sbx01", slice_ctx("node-0002", "pool-b"),
     ["10.128.8.206", "10.128.12.206"]),
    ("zone is the pool, as in YurtHub", "web-zone-sbx01", slice_ctx("node-0003", "pool-b"),
     ["10.128.8.207", "10.128.12.207"]),
    ("no annotation: untouched", "web-plain-sbx01", slice_ctx(),
     ["10.128.0.205", "10.128.4.205", "10.128.8.205", "10.128.12.205"]),
    ("node in no pool: nodepool falls back to hostname", "web-pool-sbx01",
     slice_ctx(pool="", pool_nodes=None), ["10.128.4.206"]),
    ("node in no pool but in a zone: zone keeps its zone", "web-zone-sbx01",
     slice_ctx("node-0002", pool="", pool_nodes=None, zone="zone-b"),
     ["10.128.8.207", "10.128.12.207"]),
    ("pool without a NodePool: untouched, as in YurtHub", "web-pool-sbx01",
     slice_ctx(pool="pool-x", pool_nodes=None),
     ["10.128.0.206", "10.128.4.206", "10.128.8.206", "10.128.12.206"]),
    ("a pool with no members left: emptied, still returned", "web-pool-sbx01",
     slice_ctx(pool_nodes=frozenset()), []),
    ("hostname on a node with no endpoint: emptied", "web-hostname-sbx01",
     slice_ctx("node-0099", pool=""), []),
    ("unknown topology value: untouched", "web-pool-sbx01",
     slice_ctx(service_topology={("default", "web-pool"): "kubernetes.io/region"}),
     ["10.128.0.206", "10.128.4.206", "10.128.8.206", "10.128.12.206"]),
    ("annotation of a Service in another namespace: untouched", "web-pool-sbx01",
     slice_ctx(service_topology={("other", "web-pool"): "openyurt.io/nodepool"}),
     ["10.128.0.206", "10.128.4.206", "10.128.8.206", "10.128.12.206"]),
]


@pytest.mark.parametrize("case, name, context, kept", CASES, ids=[c[0] for c in CASES])
def test_endpointslices(case, name, context, kept):
    o = obj("endpointslices", "default", name)
    before = frozen(o)
    out = F.filter(o, scope("discovery.k8s.io", "v1", "endpointslices", context))
    assert out is not None and addresses(out) == kept
    assert o == before, "the filter changed its input"
    assert out["metadata"] == before["metadata"] and out["ports"] == before["ports"]
    if len(kept) == 4:
        assert out is o  # untouched: the same object, so its bytes go out unchanged


def test_an_endpoint_keeps_every_field_and_endpoints_without_a_node_go():
    o = obj("endpointslices", "default", "web-hostname-sbx01")
    o["endpoints"].append({"addresses": ["10.9.9.9"], "conditions": {"ready": True}})
    out = F.filter(o, scope("discovery.k8s.io", "v1", "endpointslices", slice_ctx()))
    assert out["endpoints"] == [{"addresses": ["10.128.4.201"], "conditions": {
        "ready": True, "serving": True, "terminating": False},
        "nodeName": "node-0001", "zone": "zone-a"}]


def test_v1beta1_slices_read_the_hostname_topology():
    o = {"metadata": {"name": "s", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "web-hostname"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": ["1.1.1.1"], "topology": {
             "kubernetes.io/hostname": "node-0001"}},
             {"addresses": ["2.2.2.2"], "topology": {"kubernetes.io/hostname": "node-0002"}}]}
    out = F.filter(o, scope("discovery.k8s.io", "v1beta1", "endpointslices", slice_ctx()))
    assert addresses(out) == ["1.1.1.1"]


ENDPOINTS = [
    ("hostname", "web-hostname", slice_ctx(), [["10.128.4.201"]]),
    ("nodepool", "web-pool", slice_ctx("node-0002", "pool-b"),
     [["10.128.8.206", "10.128.12.206"]]),
    ("no annotation", "web-plain", slice_ctx(),
     [["10.128.0.205", "10.128.4.205", "10.128.8.205", "10.128.12.205"]]),
    ("nothing left: the subset goes", "web-hostname", slice_ctx("node-0099", pool=""), []),
    # Endpoints' addresses carry no zone: a node in no pool falls back to hostname for
    # them (it emptied them all)
    ("node in no pool but in a zone: zone falls back to hostname", "web-zone",
     slice_ctx("node-0002", pool="", pool_nodes=None, zone="zone-b"), [["10.128.8.207"]]),
]


@pytest.mark.parametrize("case, name, context, kept", ENDPOINTS, ids=[c[0] for c in ENDPOINTS])
def test_endpoints_are_filtered_too(case, name, context, kept):
    o = obj("endpoints", "default", name)
    before = frozen(o)
    out = F.filter(o, scope("", "v1", "endpoints", context))
    assert [[a["ip"] for a in s["addresses"]] for s in out["subsets"]] == kept
    assert o == before


def test_not_ready_addresses_are_filtered_and_kept_apart():
    o = obj("endpoints", "default", "web-hostname")
    subset = o["subsets"][0]
    subset["notReadyAddresses"] = [subset["addresses"].pop(1)]  # node-0001's
    out = F.filter(o, scope("", "v1", "endpoints", slice_ctx()))
    assert out["subsets"] == [{"notReadyAddresses": [{"ip": "10.128.4.201",
                                                      "nodeName": "node-0001"}],
                               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


@pytest.mark.parametrize("name", ["web-hostname-sbx01", "web-pool-sbx01", "web-zone-sbx01",
                                  "web-plain-sbx01", "kubernetes"])
def test_may_change_is_true_whenever_the_filter_changes_a_slice(name):
    s = scope("discovery.k8s.io", "v1", "endpointslices", slice_ctx())
    o = obj("endpointslices", "default", name)
    changed = F.filter(o, s) is not o
    assert F.may_change(raw("endpointslices", "default", name), s) or not changed
    assert changed == (name in ("web-hostname-sbx01", "web-pool-sbx01", "web-zone-sbx01"))


def test_may_change_skips_slices_of_services_without_topology():
    s = scope("discovery.k8s.io", "v1", "endpointslices", slice_ctx())
    assert not F.may_change(raw("endpointslices", "default", "web-plain-sbx01"), s)
    assert not F.may_change(raw("endpointslices", "default", "web-pool-sbx01"),
                            scope("discovery.k8s.io", "v1", "endpointslices",
                                  slice_ctx(service_topology={})))
    # A \\u escape could hide the label: decode to be sure.
    escaped = raw("endpointslices", "default", "web-plain-sbx01").replace(
        b'"web-plain"', b'"web\\u002dplain"')
    assert F.may_change(escaped, s)


def test_chain_apply_raw_keeps_the_bytes_of_an_untouched_slice():
    chain = Chain([F], scope("discovery.k8s.io", "v1", "endpointslices", slice_ctx()))
    plain = raw("endpointslices", "default", "web-plain-sbx01")
    assert chain.apply_raw(plain) is plain
    pool = raw("endpointslices", "default", "web-pool-sbx01")
    import json
    assert addresses(json.loads(chain.apply_raw(pool))) == ["10.128.0.206", "10.128.4.206"]


def test_depends_on_pool_members_zone_and_annotations():
    a = slice_ctx()
    assert not F.depends(a, slice_ctx())
    assert F.depends(a, slice_ctx(pool_nodes=frozenset({"node-0001"})))
    assert F.depends(a, slice_ctx(service_topology={}))
    assert F.depends(a, slice_ctx("node-0002", "pool-b"))
