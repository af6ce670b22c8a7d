"""The streaming list filter: sandbox list bodies in, any chunking, expected items by hand."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from tests.unit.filters.sandbox_objects import ctx, list_body, scope
from yurthub.errors import DecodeError
from yurthub.filters.chain import Chain
from yurthub.filters.discardcloudservice import DiscardCloudService
from yurthub.filters.forwardkubesvctraffic import ForwardKubeSvcTraffic
from yurthub.filters.liststream import ListFilter, ListStats, filter_list
from yurthub.filters.masterservice import MasterService
from yurthub.filters.servicetopology import ServiceTopology
from yurthub.kube.bulk import TRUSTED_SEPARATOR
from yurthub.kube.framing import HAVE_MSGSPEC

SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
SERVICES = "/api/v1/services"
PARSERS = [False, True] if HAVE_MSGSPEC else [False]
POOL_A = frozenset({"node-0000", "node-0001"})
TOPOLOGY = {("default", "web-hostname"): "kubernetes.io/hostname",
            ("default", "web-pool"): "openyurt.io/nodepool",
            ("default", "web-zone"): "kubernetes.io/zone"}


def chunked(body: bytes, size: int) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


def run(body: bytes, chain: Chain, size: int, accelerate: bool) -> tuple[bytes, ListStats]:
    lf = ListFilter(chain, accelerate=accelerate)
    out = [b"".join(lf.feed(c)) for c in chunked(body, size)]
    out.append(b"".join(lf.close()))
    return b"".join(out), lf.stats


def kube_proxy_slices_chain(**kw) -> Chain:
    kw.setdefault("service_topology", TOPOLOGY)
    context = ctx(node_name="node-0001", pool="pool-a", pool_nodes=POOL_A, **kw)
    return Chain([ServiceTopology(), ForwardKubeSvcTraffic()],
                 scope("discovery.k8s.io", "v1", "endpointslices", context))


@pytest.mark.parametrize("accelerate", PARSERS)
@pytest.mark.parametrize("size", [1, 7, 1000, 1 << 20])
def test_endpointslices_as_kube_proxy_on_node_0001(size, accelerate):
    body = list_body(SLICES)
    out, stats = run(body, kube_proxy_slices_chain(), size, accelerate)
    doc = json.loads(out)
    got = {i["metadata"]["name"]: [a for ep in i["endpoints"] for a in ep["addresses"]]
           for i in doc["items"]}
    assert got == {
        "kubernetes": ["169.254.2.1"],
        "web-hostname-sbx01": ["10.128.4.201"],
        "web-lb-sbx01": ["10.128.0.202", "10.128.4.202", "10.128.8.202", "10.128.12.202"],
        "web-lb-kept-sbx01": ["10.128.0.203", "10.128.4.203", "10.128.8.203",
                              "10.128.12.203"],
        "web-nodeport-sbx01": ["10.128.0.204", "10.128.4.204", "10.128.8.204",
                               "10.128.12.204"],
        "web-plain-sbx01": ["10.128.0.205", "10.128.4.205", "10.128.8.205", "10.128.12.205"],
        "web-pool-sbx01": ["10.128.0.206", "10.128.4.206"],
        "web-zone-sbx01": ["10.128.0.207", "10.128.4.207"],
    }
    assert doc["kind"] == "EndpointSliceList"
    assert doc["metadata"] == json.loads(body)["metadata"]
    assert (stats.changed, stats.dropped) == (4, 0)
    # Untouched items go out as the bytes they came in as.
    original = json.loads(body)["items"]
    plain = next(i for i in original if i["metadata"]["name"] == "web-plain-sbx01")
    assert json.dumps(plain, separators=(",", ":")).encode() in out


@pytest.mark.parametrize("accelerate", PARSERS)
@pytest.mark.parametrize("size", [1, 13, 1 << 20])
def test_a_list_nothing_changes_is_byte_identical(size, accelerate):
    body = list_body(SLICES)
    chain = kube_proxy_slices_chain(service_topology={}, hub_host="fd00::1")
    out, stats = run(body, chain, size, accelerate)
    assert out == body and stats.changed == 0 == stats.dropped


@pytest.mark.parametrize("accelerate", PARSERS)
@pytest.mark.parametrize("drop", [
    ("web-external",), ("kubernetes",), ("web-zone",), ("kubernetes", "web-lb"),
    ("web-hostname", "web-lb", "web-nodeport"), ("kubernetes", "web-external", "web-hostname",
                                                 "web-lb", "web-lb-kept", "web-nodeport",
                                                 "web-plain", "web-pool", "web-zone"),
])
def test_dropped_items_take_their_commas_with_them(drop, accelerate):
    class Drop:
        name, drops = "drop", True

        def filter(self, obj, scope):
            return None if obj["metadata"]["name"] in drop else obj

        def may_change(self, raw, scope):
            return True

        def interest(self, scope):
            return None

        def depends(self, old, new):
            return False

    body = list_body("/api/v1/namespaces/default/services")
    out, stats = run(body, Chain([Drop()], scope("", "v1", "services")), 5, accelerate)
    names = [i["metadata"]["name"] for i in json.loads(out)["items"]]
    everything = ["kubernetes", "web-external", "web-hostname", "web-lb", "web-lb-kept",
                  "web-nodeport", "web-plain", "web-pool", "web-zone"]
    assert names == [n for n in everything if n not in drop]
    assert stats.dropped == len(drop)
    assert sorted(stats.dropped_keys) == sorted(("default", n) for n in drop)


def test_services_as_kubelet_and_kube_proxy():
    body = list_body(SERVICES)
    kubelet = Chain([MasterService()], scope("", "v1", "services"))
    doc = json.loads(b"".join(filter_list(chunked(body, 4096), kubelet)))
    k = next(i for i in doc["items"] if i["metadata"]["name"] == "kubernetes")
    assert k["spec"]["clusterIP"] == "169.254.2.1" and k["spec"]["ports"][0]["port"] == 10268
    proxy = Chain([DiscardCloudService()], scope("", "v1", "services"))
    dropped: list = []
    doc = json.loads(b"".join(filter_list(chunked(body, 4096), proxy,
                                          on_dropped=lambda k, rv: dropped.append(k))))
    assert "web-lb" not in {i["metadata"]["name"] for i in doc["items"]}
    assert "web-lb-kept" in {i["metadata"]["name"] for i in doc["items"]}
    assert dropped == [("default", "web-lb")]


@pytest.mark.parametrize("accelerate", PARSERS)
def test_pretty_printed_and_unstructured_lists(accelerate):
    doc = json.loads(list_body(SERVICES))
    pretty = json.dumps(doc, indent=2).encode()
    chain = Chain([DiscardCloudService()], scope("", "v1", "services"))
    out, _ = run(pretty, chain, 100, accelerate)
    assert [i["metadata"]["name"] for i in json.loads(out)["items"]] == \
        [i["metadata"]["name"] for i in doc["items"] if i["metadata"]["name"] != "web-lb"]
    # A CRD-style list: members sorted, items before kind and metadata.
    crd = json.dumps({"apiVersion": "v1", "items": doc["items"], "kind": "ServiceList",
                      "metadata": doc["metadata"]}, separators=(",", ":")).encode()
    out, stats = run(crd, chain, 64, accelerate)
    assert json.loads(out)["kind"] == "ServiceList" and stats.dropped == 1


@pytest.mark.parametrize("accelerate", PARSERS)
def test_empty_list_and_status_pass_unchanged(accelerate):
    chain = Chain([DiscardCloudService()], scope("", "v1", "services"))
    empty = b'{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"5"},' \
            b'"items":[]}\n'
    assert run(empty, chain, 3, accelerate)[0] == empty
    status = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",' \
             b'"message":"x","reason":"Expired","code":410}\n'
    out, stats = run(status, chain, 3, accelerate)
    assert out == status and stats.info is not None and stats.info.is_status


@pytest.mark.parametrize("accelerate", PARSERS)
def test_a_torn_list_is_an_error_not_a_shorter_list(accelerate):
    body = list_body(SERVICES)
    chain = Chain([DiscardCloudService()], scope("", "v1", "services"))
    lf = ListFilter(chain, accelerate=accelerate)
    lf.feed(body[: len(body) // 2])
    with pytest.raises(DecodeError):
        lf.close()
    with pytest.raises(DecodeError):
        list(filter_list([b'{"kind":"ServiceList","items":[{"a":1}, 7]}'], chain))


def test_a_big_list_is_never_held_whole():
    """A 20 MB list fed in 64 KiB chunks: the filter holds one item and one output chunk."""
    doc = json.loads(list_body(SLICES))
    item = next(i for i in doc["items"] if i["metadata"]["name"] == "web-pool-sbx01")
    item["endpoints"] = item["endpoints"] * 50
    items = []
    for n in range(2000):
        i = json.loads(json.dumps(item))
        i["metadata"]["name"] = f"web-pool-{n:05d}"
        items.append(json.dumps(i, separators=(",", ":")))
    body = (b'{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":'
            b'{"resourceVersion":"9"},"items":[' + ",".join(items).encode() + b"]}\n")
    assert len(body) > 20_000_000
    chunks = chunked(body, 64 << 10)
    del items, doc
    chain = kube_proxy_slices_chain()
    tracemalloc.start()
    try:
        total = 0
        for out in filter_list(iter(chunks), chain):
            total += len(out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total < len(body) * 0.6         # half of the endpoints (pool-b's) went
    assert peak < 3 << 20, f"peak {peak} bytes while filtering a {len(body)} byte list"


@pytest.mark.parametrize("accelerate", PARSERS)
def test_whole_items_of_no_interest_go_out_with_their_chunk(accelerate):
    """A slow upstream (a list that stalls mid-body): the client already has every item the
    hub received up to the last item boundary; only the item running on is held."""
    doc = json.loads(list_body(SLICES))
    plain = next(i for i in doc["items"] if i["metadata"]["name"] == "web-lb-sbx01")
    items = []
    for n in range(60):
        i = json.loads(json.dumps(plain))
        i["metadata"]["name"] = f"plain-{n:03d}"
        items.append(json.dumps(i, separators=(",", ":")).encode())
    body = (b'{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":'
            b'{"resourceVersion":"9"},"items":[' + b",".join(items) + b"]}\n")
    # Feed the body in uneven pieces and check what is out after each one.
    lf = ListFilter(kube_proxy_slices_chain(), accelerate=accelerate)
    sent, fed = b"", 0
    for cut in (len(body) // 7, len(body) // 3, (len(body) * 4) // 5):
        sent += b"".join(lf.feed(body[fed:cut]))
        fed = cut
        # The end of the last item whose following separator was received in full.
        whole = body[:cut].rfind(TRUSTED_SEPARATOR) + 1
        assert body[:whole] == sent[:whole] and len(sent) >= whole, \
            f"{whole - len(sent)} bytes of whole items held back after {cut} bytes"
    sent += b"".join(lf.feed(body[fed:])) + b"".join(lf.close())
    assert sent == body  # nothing filtered: byte-identical


def reference(body: bytes, chain: Chain) -> list:
    """The filtered items, the slow and obvious way: decode all, filter each."""
    return [o for o in (chain.apply(i) for i in json.loads(body)["items"]) if o is not None]


@pytest.mark.parametrize("accelerate", PARSERS)
@pytest.mark.parametrize("seed_", range(6))
def test_scanning_big_lists_gives_what_filtering_every_item_gives(seed_, accelerate):
    """kubelet's pod list: a few pods set KUBERNETES_SERVICE_* (anywhere, also first or
    last); chunks of random sizes.  Items no filter touches are skipped by scanning, the
    answer is what filtering each decoded item gives, and untouched lists are identical."""
    import random

    from kubesandbox import seed
    from yurthub.filters.serviceenvupdater import ServiceEnvUpdater

    rnd = random.Random(seed_)
    entries, _ = seed.pod_entries(20, 30, 0)
    items = [b"".join(e.item()) for e in entries]
    picks = sorted(rnd.sample(range(len(items)), rnd.choice([0, 1, 3])) +
                   rnd.choice([[], [0], [len(items) - 1]]))
    for i in picks:
        pod = json.loads(items[i])
        pod["spec"]["containers"][0]["env"].append({"name": "KUBERNETES_SERVICE_HOST",
                                                    "value": "10.96.0.1"})
        items[i] = json.dumps(pod, separators=(",", ":")).encode()
    body = (b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"77"},'
            b'"items":[' + b",".join(items) + b"]}\n")
    chain = Chain([ServiceEnvUpdater()], scope("", "v1", "pods"))
    lf = ListFilter(chain, accelerate=accelerate)
    out, pos = [], 0
    while pos < len(body):
        n = rnd.choice([1 << 20, 300_000, 65536, 4096, 777])
        out += lf.feed(body[pos:pos + n])
        pos += n
    out += lf.close()
    got = b"".join(out)
    assert json.loads(got)["items"] == reference(body, chain)
    assert json.loads(got)["metadata"] == {"resourceVersion": "77"}
    assert lf.stats.changed == len(set(picks))
    if not picks:
        assert got == body
    if len(body) > 1 << 20 and not picks:
        assert lf.stats.scanned > len(body) // 3  # much of it was only scanned


@pytest.mark.parametrize("accelerate", PARSERS)
@pytest.mark.parametrize("size", [700, 5000, 1 << 20])
def test_scanning_with_dropped_items_keeps_valid_json(size, accelerate):
    doc = json.loads(list_body(SERVICES))
    items = []
    for n in range(400):  # every 7th a discarded LoadBalancer, the first one too
        s = json.loads(json.dumps(doc["items"][n % len(doc["items"])]))
        s["metadata"]["name"] = f"svc-{n:04d}"
        s["metadata"].setdefault("annotations", {})["pad"] = "x" * 300
        if n % 7 == 0:
            s["spec"]["type"] = "LoadBalancer"
            s["metadata"]["annotations"]["svc.openyurt.io/discard"] = "true"
        elif s["spec"].get("type") == "LoadBalancer":
            s["spec"]["type"] = "ClusterIP"
        items.append(json.dumps(s, separators=(",", ":")))
    body = (b'{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"9"},'
            b'"items":[' + ",".join(items).encode() + b"]}\n")
    chain = Chain([DiscardCloudService()], scope("", "v1", "services"))
    out, stats = run(body, chain, size, accelerate)
    assert json.loads(out)["items"] == reference(body, chain)
    assert stats.dropped == len([n for n in range(400) if n % 7 == 0])


@pytest.mark.parametrize("accelerate", PARSERS)
@pytest.mark.parametrize("seed_", range(4))
def test_a_mostly_compact_list_with_some_items_written_otherwise_is_still_filtered(
        seed_, accelerate):
    """Endpoints named after Services with and without a topology, mostly compact as
    kube-apiserver writes them, a few with JSON's whitespace around their colons, indented
    deep, or with their name's key escaped: each one of them is filtered as the decoded item
    would be (none slips through unread for not looking like the pattern)."""
    import random

    rnd = random.Random(seed_)
    topology = {("default", f"svc-{n}"): "kubernetes.io/hostname" for n in range(0, 40, 2)}
    chain = Chain([ServiceTopology()], scope("", "v1", "endpoints", ctx(
        node_name="node-0001", pool="", service_topology=topology)))
    items = []
    for n in range(40):
        ep = {"metadata": {"name": f"svc-{n}", "namespace": "default",
                           "annotations": {"pad": "x" * rnd.randint(0, 3000)}},
              "subsets": [{"addresses": [{"ip": f"10.0.{n}.{i}", "nodeName": f"node-000{i}"}
                                         for i in range(3)], "ports": [{"port": 80}]}]}
        roll = rnd.random()
        if roll < 0.15:
            raw = json.dumps(ep, separators=(",", " : "))
        elif roll < 0.25:
            raw = json.dumps(ep, indent=40)
        elif roll < 0.3:
            raw = json.dumps(ep, separators=(",", ":")).replace('"name"', '"n\\u0061me"')
        else:
            raw = json.dumps(ep, separators=(",", ":"))
        items.append(raw)
    body = (b'{"kind":"EndpointsList","apiVersion":"v1","metadata":{"resourceVersion":"3"},'
            b'"items":[' + ",".join(items).encode() + b"]}")
    for size in (rnd.randint(100, 5000), 1 << 16):
        out, _ = run(body, chain, size, accelerate)
        got = json.loads(out)["items"]
        assert got == reference(body, chain)
        assert all(a["nodeName"] == "node-0001" for i in got[0::2]
                   for s in i["subsets"] for a in s["addresses"])
