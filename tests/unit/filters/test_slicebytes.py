"""servicetopology on EndpointSlice bytes gives exactly what the object path gives.

The slices are built from the Kubernetes project's own v1 EndpointSlice (every field, in
the order Go writes them), with random endpoints, nodes, topologies and pools, and random
departures from kube-apiserver's writing: pretty-printing, escapes, unicode, other key
orders, hints, deprecatedTopology, strings holding the separators, a missing or repeated
nodeName.  Where the byte path answers, its bytes must decode to the object path's result;
where it cannot be sure it must decline (None), never pass the slice through unfiltered.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.unit.filters.sandbox_objects import ctx, scope
from yurthub.filters.chain import Chain
from yurthub.filters.forwardkubesvctraffic import ForwardKubeSvcTraffic
from yurthub.filters.liststream import ListFilter
from yurthub.filters.servicetopology import ServiceTopology
from yurthub.filters.slicebytes import filter_slice

FIXTURE = Path(__file__).parents[2] / "fixtures/k8s-api-testdata" \
    / "discovery.k8s.io.v1.EndpointSlice.json"
NODES = [f"node-{i:04d}" for i in range(8)] + ["édge-ü", "node-0001x", "node-000"]
TOPOLOGIES = ["kubernetes.io/hostname", "openyurt.io/nodepool", "kubernetes.io/zone", "",
              "other"]
ODD_STRINGS = ["},{", "}]", '},{"addresses":[', "a}],\"ports\":", '"nodeName":"node-0001"',
               "ü", "\u2028", "<&>", "{", "}", "\\", "\n"]


def fixture_slice() -> dict[str, Any]:
    return json.loads(FIXTURE.read_bytes())


def compact(obj: Any) -> bytes:
    """As Go's encoding/json writes it (minus its HTML escapes, which the byte path declines)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def random_endpoint(rng: random.Random, template: dict[str, Any]) -> dict[str, Any]:
    ep = json.loads(json.dumps(template))
    ep["addresses"] = [f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"
                       for _ in range(rng.randint(1, 2))]
    ep["nodeName"] = rng.choice(NODES)
    ep["zone"] = rng.choice(["zone-a", "zone-b"])
    for key in ("hostname", "targetRef", "hints", "deprecatedTopology"):
        if rng.random() < 0.6:
            ep.pop(key, None)
    if rng.random() < 0.05:
        del ep["nodeName"]
    elif rng.random() < 0.03:
        ep["nodeName"] = rng.choice([None, 7, ""])
    if "targetRef" in ep and rng.random() < 0.1:
        ep["targetRef"]["fieldPath"] = rng.choice(ODD_STRINGS)
    if "deprecatedTopology" in ep and rng.random() < 0.5:
        ep["deprecatedTopology"] = {"nodeName": rng.choice(NODES)}
    return ep


def random_slice(rng: random.Random, typed: bool) -> dict[str, Any]:
    base = fixture_slice()
    template = base["endpoints"][0]
    s = base if typed else {k: v for k, v in base.items() if k not in ("kind", "apiVersion")}
    meta = s["metadata"]
    meta["namespace"] = rng.choice(["default", "kube-system", "ns-ü"])
    meta["labels"] = {"app": "x", "kubernetes.io/service-name": rng.choice(
        ["svc-a", "svc-b", "svc-c", ""])}
    if rng.random() < 0.1:
        del meta["labels"]["kubernetes.io/service-name"]
    if rng.random() < 0.05:
        meta["annotations"] = {"kubernetes.io/service-name": "svc-a"}
    if rng.random() < 0.1:
        meta["annotations"] = {"note": rng.choice(ODD_STRINGS)}
    s["addressType"] = "IPv4"
    s["endpoints"] = [random_endpoint(rng, template) for _ in range(rng.randint(0, 12))]
    if rng.random() < 0.03:
        s["endpoints"] = None
    if rng.random() < 0.1:
        del s["ports"]
    return s


def variants(rng: random.Random, s: dict[str, Any]) -> bytes:
    """The slice's bytes, mostly as kube-apiserver writes them, sometimes not."""
    roll = rng.random()
    if roll < 0.04:
        return json.dumps(s, indent=2).encode()
    if roll < 0.08:
        return json.dumps(s, separators=(",", ":")).encode()  # \\u escapes for unicode
    if roll < 0.12:
        return json.dumps(s, separators=(", ", ": "), ensure_ascii=False).encode()
    if roll < 0.16 and s.get("endpoints"):
        eps = [dict(reversed(list(ep.items()))) for ep in s["endpoints"]]
        return compact({**s, "endpoints": eps})
    raw = compact(s)
    if roll < 0.2 and b'"nodeName":"' in raw:  # a repeated key in one endpoint
        raw = raw.replace(b'"nodeName":"', b'"nodeName":"node-0005","nodeName":"', 1)
    return raw


def contexts(rng: random.Random) -> Any:
    pool = rng.choice(["", "pool-a"])
    members = rng.choice([None, frozenset(rng.sample(NODES, rng.randint(0, 5)))])
    topology = {(ns, svc): rng.choice(TOPOLOGIES) for ns in ("default", "kube-system", "ns-ü")
                for svc in ("svc-a", "svc-b", "svc-c")}
    return ctx(node_name=rng.choice(NODES), pool=pool, pool_nodes=members if pool else None,
               zone=rng.choice(["", "zone-a"]), service_topology=topology)


@pytest.mark.parametrize("seed", range(12))
def test_bytes_decode_to_what_the_object_path_returns(seed):
    rng = random.Random(seed)
    answered = declined = 0
    for _ in range(250):
        context = contexts(rng)
        sc = scope("discovery.k8s.io", "v1", "endpointslices", context)
        flt = ServiceTopology().bytes_filter(sc)
        assert flt is not None
        s = random_slice(rng, typed=rng.random() < 0.3)
        raw = variants(rng, s)
        expected = ServiceTopology().filter(json.loads(raw), sc)
        got = flt(raw)
        if got is None:
            declined += 1
            continue
        answered += 1
        assert json.loads(got) == expected, raw
        if expected is not None and expected == json.loads(raw):
            assert got is raw  # nothing changed: the very bytes
    assert answered > 100, (answered, declined)  # the byte path did most of the work


def plain_slice(endpoints: list[tuple[str, str]]) -> bytes:
    eps = [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": node}
           for ip, node in endpoints]
    return compact({"metadata": {"name": "web-1", "namespace": "default",
                                 "labels": {"kubernetes.io/service-name": "web"}},
                    "addressType": "IPv4", "endpoints": eps,
                    "ports": [{"name": "http", "port": 80}]})


def pool_lookup(nodes: frozenset[str] | None):
    return lambda namespace, service: nodes if (namespace, service) == ("default", "web") \
        else None


def test_kept_endpoints_are_spliced_by_hand():
    raw = plain_slice([("10.0.0.1", "n1"), ("10.0.0.2", "n2"), ("10.0.0.3", "n1"),
                       ("10.0.0.4", "n3")])
    got = filter_slice(raw, pool_lookup(frozenset({"n1", "n3"})))
    assert [ep["addresses"] for ep in json.loads(got)["endpoints"]] == [
        ["10.0.0.1"], ["10.0.0.3"], ["10.0.0.4"]]
    assert json.loads(filter_slice(raw, pool_lookup(frozenset())))["endpoints"] == []
    assert filter_slice(raw, pool_lookup(frozenset({"n1", "n2", "n3"}))) is raw
    assert filter_slice(raw, pool_lookup(None)) is raw  # no topology: as it is


@pytest.mark.parametrize("kept", [{"n1"}, {"n1", "n10"}, {"n10", "n2"}, {"n1", "n10", "n2"},
                                  {"n1", "n10", "n2", "n3"}])
def test_kept_endpoints_alike_for_one_node_and_for_many(kept):
    # one or two kept nodes are found one literal at a time, more by one regex: the same
    # endpoints either way, in the slice's order, a name that begins another no match
    nodes = ["n1", "n10", "n2", "n1", "n3", "n10", "n2", "n1"]
    raw = plain_slice([(f"10.0.0.{i}", n) for i, n in enumerate(nodes)])
    got = filter_slice(raw, pool_lookup(frozenset(kept)))
    assert [ep["addresses"] for ep in json.loads(got)["endpoints"]] == [
        [f"10.0.0.{i}"] for i, n in enumerate(nodes) if n in kept]


def test_a_big_pool_keeps_exactly_its_nodes():
    # hundreds of kept names, some the beginning of others or of names not kept, with
    # characters a regex would read otherwise: the same endpoints as the object path
    pool = {f"node-{i}" for i in range(300)} | {"edge.a", "edge.a.b", "nöde-ü", "x+y", "a" * 253}
    present = ["node-1", "node-10", "node-100", "node-1000", "node-29", "node-299", "node-2999",
               "edge.a", "edgeXa", "edge.a.b", "edge.a.bc", "nöde-ü", "nöde-üü", "x+y", "xxy",
               "a" * 253, "a" * 252, "node-", "node-0"]
    raw = plain_slice([(f"10.0.{i // 250}.{i % 250}", n) for i, n in enumerate(present * 3)])
    got = filter_slice(raw, pool_lookup(frozenset(pool)))
    assert got is not None
    assert [ep["nodeName"] for ep in json.loads(got)["endpoints"]] == [
        n for n in present * 3 if n in pool]
    # a repeated topology in one scope is decided once: every slice still gets it right
    sc = scope("discovery.k8s.io", "v1", "endpointslices", ctx(
        pool="pool-a", pool_nodes=frozenset(pool),
        service_topology={("default", "web"): "openyurt.io/nodepool"}))
    flt = ServiceTopology().bytes_filter(sc)
    for _ in range(3):
        assert flt(raw) == got


def test_scattered_kept_endpoints_are_each_checked():
    # kept endpoints one by one among dropped ones: what only the decoded object can read
    # in the last of them still sends the slice to the object path
    nodes = ["n1", "n2", "n1", "n2", "n1"]
    raw = plain_slice([(f"10.0.0.{i}", n) for i, n in enumerate(nodes)])
    keep = pool_lookup(frozenset({"n1"}))
    assert [ep["addresses"] for ep in json.loads(filter_slice(raw, keep))["endpoints"]] == [
        ["10.0.0.0"], ["10.0.0.2"], ["10.0.0.4"]]
    last = raw.rindex(b'"nodeName":"n1"')
    for extra in (b',"hints":{"forZones":[{"name":"a"}]}',
                  b',"deprecatedTopology":{"nodeName":"n1"}',
                  b',"x":[{"a":1},{"b":2}]', b',"nodeName":"n3"'):
        odd = raw[:last] + raw[last:].replace(b'"n1"', b'"n1"' + extra, 1)
        assert filter_slice(odd, keep) is None, extra
    # the same in a dropped endpoint is never read
    first_n2 = raw.index(b'"nodeName":"n2"')
    odd = raw[:first_n2] + raw[first_n2:].replace(
        b'"n2"', b'"n2","hints":{"forZones":[{"name":"a"}]}', 1)
    assert [ep["addresses"] for ep in json.loads(filter_slice(odd, keep))["endpoints"]] == [
        ["10.0.0.0"], ["10.0.0.2"], ["10.0.0.4"]]


def test_what_it_cannot_read_goes_to_the_object_path():
    raw = plain_slice([("10.0.0.1", "n1"), ("10.0.0.2", "n2")])
    nodes = pool_lookup(frozenset({"n1"}))
    assert filter_slice(raw.replace(b"n2", b"n\\u0032"), nodes) is None
    for spaced in (b'"nodeName": "n1"', b'"nodeName" :"n1"', b'"nodeName":\t"n1"'):
        # a kept endpoint the pattern would not see: never dropped by mistake
        assert filter_slice(raw.replace(b'"nodeName":"n1"', spaced), nodes) is None
    assert filter_slice(raw.replace(b'"nodeName":"n1"', b'"nodeName":"n1","nodeName":"n2"'),
                        nodes) is None
    assert filter_slice(raw[:-1] + b"\xff}", nodes) is None
    # a field between the endpoints and the ports (not in the type): where the endpoints
    # end is not where the bytes suggest, and the field must not go with a dropped endpoint
    for field in (b'"extra":[{"a":1}]', b'"extra":[{"nodeName":"n1"},{"a":[]}]'):
        extra = raw.replace(b'],"ports":', b'],' + field + b',"ports":')
        want = ServiceTopology().filter(json.loads(extra), scope(
            "discovery.k8s.io", "v1", "endpointslices", ctx(
                pool="pool-a", pool_nodes=frozenset({"n1"}),
                service_topology={("default", "web"): "openyurt.io/nodepool"})))
        got = filter_slice(extra, nodes)
        assert got is None or json.loads(got) == want


@pytest.mark.parametrize("separators", ["go", "spaced after 3"])
def test_a_list_of_slices_is_filtered_through_the_byte_path(separators):
    items = [plain_slice([(f"10.0.{i}.{j}", f"node-{j % 4:04d}") for j in range(8)])
             for i in range(200)]
    joined = b",".join(items) if separators == "go" else \
        b",".join(items[:3]) + b", " + b", ".join(items[3:])  # not as kube-apiserver writes
    body = b'{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{' \
        b'"resourceVersion":"5"},"items":[' + joined + b"]}"
    context = ctx(node_name="node-0001", pool="pool-a",
                  pool_nodes=frozenset({"node-0000", "node-0001"}),
                  service_topology={("default", "web"): "openyurt.io/nodepool"})
    chain = Chain([ServiceTopology(), ForwardKubeSvcTraffic()],
                  scope("discovery.k8s.io", "v1", "endpointslices", context))
    for size in (1000, 1 << 16, 1 << 20):
        lf = ListFilter(chain)
        out = b"".join(b"".join(lf.feed(body[i:i + size])) for i in range(0, len(body), size))
        out += b"".join(lf.close())
        doc = json.loads(out)
        assert len(doc["items"]) == 200
        for item in doc["items"]:
            assert [ep["nodeName"] for ep in item["endpoints"]] == [
                "node-0000", "node-0001", "node-0000", "node-0001"]
        assert lf.stats.changed == 200


def list_item(rng: random.Random) -> bytes:
    """A slice as a list item: mostly as kube-apiserver writes one, now and then typed (the
    separator before it is not the trusted one), with a label named "metadata", or with
    its service-name key written with JSON's \\/ escape."""
    s = random_slice(rng, typed=rng.random() < 0.1)
    if rng.random() < 0.05:
        s["metadata"]["labels"]["metadata"] = "x"
    raw = variants(rng, s)
    if rng.random() < 0.05:
        raw = raw.replace(b"kubernetes.io/service-name", b"kubernetes.io\\/service-name")
    return raw


@pytest.mark.parametrize("seed", range(8))
def test_a_list_of_mixed_slices_and_separators_is_filtered_as_the_object_path_does(seed):
    # Slices of Services with and without a topology (those without go out unread), written
    # mostly as kube-apiserver writes them, joined mostly by "," but now and then by a
    # spaced separator: one the byte path does not see must never make two slices pass
    # for one (the second would go out unfiltered).
    rng = random.Random(1000 + seed)
    for _ in range(6):
        context = contexts(rng)
        sc = scope("discovery.k8s.io", "v1", "endpointslices", context)
        raws = [list_item(rng) for _ in range(rng.randint(1, 60))]
        seps = [rng.choice([b","] * 8 + [b", ", b",\n ", b" ,"]) for _ in raws[1:]]
        body = b'{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1",' \
            b'"metadata":{"resourceVersion":"7"},"items":[' + raws[0] + b"".join(
                s + r for s, r in zip(seps, raws[1:], strict=True)) + b"]}"
        expected = [ServiceTopology().filter(json.loads(r), sc) for r in raws]
        chain = Chain([ServiceTopology(), ForwardKubeSvcTraffic()], sc)
        size = rng.choice([97, 1000, 4096, 1 << 16])
        lf = ListFilter(chain)
        out = b"".join(b"".join(lf.feed(body[i:i + size]))
                       for i in range(0, len(body), size)) + b"".join(lf.close())
        assert json.loads(out)["items"] == expected
        if all(e == json.loads(r) for e, r in zip(expected, raws, strict=True)):
            assert out == body  # nothing changed: the very bytes
