"""The filters on the proxy's path: which responses, gzip in and out, objects, errors."""

from __future__ import annotations

import gzip as gz
import json
import time
import zlib

import pytest

from tests.unit.filters.sandbox_objects import list_body, obj, raw, scope
from yurthub.errors import NotFound, UpstreamError
from yurthub.filters.chain import Chain
from yurthub.filters.discardcloudservice import DiscardCloudService
from yurthub.filters.masterservice import MasterService
from yurthub.kube.printers import printer_for
from yurthub.kube.table import TableWriter
from yurthub.proxy import filtering

SVC = ("", "v1", "services")


@pytest.mark.parametrize("content_type, encoding, ok", [
    ("application/json", None, True),
    ("application/json;charset=utf-8", "gzip", True),
    ("application/json;stream=watch", "identity", True),
    ("application/json;as=Table;g=meta.k8s.io;v=v1", None, False),
    ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", None, False),
    ("application/vnd.kubernetes.protobuf", None, False),
    ("application/json", "br", False),
    (None, None, False),
])
def test_filterable(content_type, encoding, ok):
    assert filtering.filterable(content_type, encoding) is ok


@pytest.mark.parametrize("header, ok", [
    ("gzip", True), ("gzip, deflate", True), ("br;q=1.0, GZIP;q=0.5", True),
    ("gzip;q=0", False), ("identity", False), ("", False), ("x-gzip", False),
])
def test_accepts_gzip(header, ok):
    assert filtering.accepts_gzip(header) is ok


def test_a_gzipped_list_is_filtered_and_compressed_again():
    body = list_body("/api/v1/services")
    zipped = gz.compress(body, 1)
    chain = Chain([DiscardCloudService()], scope(*SVC))
    chunks = [zipped[i:i + 100] for i in range(0, len(zipped), 100)]
    out, whole = filtering.filter_stream("list", iter(chunks), chain, gzipped=True,
                                         gzip_out=True)
    assert whole is None
    doc = json.loads(gz.decompress(b"".join(out)))
    assert "web-lb" not in {i["metadata"]["name"] for i in doc["items"]}
    out, _ = filtering.filter_stream("list", iter(chunks), chain, gzipped=True, gzip_out=False)
    assert len(json.loads(b"".join(out))["items"]) == len(json.loads(body)["items"]) - 1


def test_a_watch_with_gzip_flushes_every_event():
    k = json.dumps({"type": "ADDED", "object": obj("services", "default", "kubernetes")})
    chain = Chain([MasterService()], scope(*SVC))
    out, _ = filtering.filter_stream("watch", iter([k.encode() + b"\n"] * 2), chain,
                                     gzipped=False, gzip_out=True)
    first = next(out)
    d = zlib.decompressobj(31)
    assert b'"169.254.2.1"' in d.decompress(first)  # readable without waiting for more


def test_objects_are_filtered_whole_and_a_dropped_one_is_not_found():
    chain = Chain([MasterService(), DiscardCloudService()], scope(*SVC))
    _, body = filtering.filter_stream("get", iter([raw("services", "default", "kubernetes")]),
                                      chain, gzipped=False, gzip_out=False)
    assert json.loads(body)["spec"]["clusterIP"] == "169.254.2.1"
    plain = raw("services", "default", "web-plain")
    assert filtering.filter_stream("get", iter([plain[:10], plain[10:]]), chain,
                                   gzipped=False, gzip_out=False)[1] == plain
    with pytest.raises(NotFound, match='"web-lb" not found'):
        filtering.filter_stream("get", iter([raw("services", "default", "web-lb")]), chain,
                                gzipped=False, gzip_out=False)
    status = b'{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}'
    assert filtering.filter_stream("get", iter([status]), chain, gzipped=False,
                                   gzip_out=False)[1] == status


def test_what_cannot_be_filtered_is_an_upstream_error():
    chain = Chain([MasterService()], scope(*SVC))
    with pytest.raises(UpstreamError):
        filtering.filter_stream("get", iter([b"not json"]), chain, gzipped=False,
                                gzip_out=False)
    out, _ = filtering.filter_stream("list", iter([b'{"kind":"ServiceList","items":[{']),
                                     chain, gzipped=False, gzip_out=False)
    with pytest.raises(UpstreamError):
        list(out)
    with pytest.raises(UpstreamError):
        filtering.read_whole(iter([b"x" * 10] * 3), limit=25)


def test_refilter_serves_what_it_cannot_decode_as_stored():
    chain = Chain([MasterService()], scope(*SVC))
    assert filtering.refilter_item(b'{"metadata":{"name":"kubernetes"', chain) == \
        b'{"metadata":{"name":"kubernetes"'
    assert json.loads(filtering.refilter_item(raw("services", "default", "kubernetes"),
                                              chain))["spec"]["clusterIP"] == "169.254.2.1"


def _writer(include: str = "Metadata") -> TableWriter:
    return TableWriter(printer_for("", "services"), include=include, now=time.time())


def test_a_table_is_printed_from_the_filtered_list():
    body = list_body("/api/v1/services")
    zipped = gz.compress(body, 1)
    chain = Chain([MasterService(), DiscardCloudService()], scope(*SVC))
    chunks = [zipped[i:i + 100] for i in range(0, len(zipped), 100)]
    out, whole = filtering.filter_stream("list", iter(chunks), chain, gzipped=True,
                                         gzip_out=False, table=_writer("Object"),
                                         item_type=("Service", "v1"))
    assert whole is None
    doc = json.loads(b"".join(out))
    listed = json.loads(body)
    assert doc["kind"] == "Table" and doc["metadata"] == {
        "resourceVersion": listed["metadata"]["resourceVersion"]}
    assert [c["name"] for c in doc["columnDefinitions"]][:3] == ["Name", "Type", "Cluster-IP"]
    assert [r["cells"][0] for r in doc["rows"]] == [
        i["metadata"]["name"] for i in listed["items"] if i["metadata"]["name"] != "web-lb"]
    k = next(r for r in doc["rows"] if r["cells"][0] == "kubernetes")
    assert k["cells"][2] == "169.254.2.1"  # masterservice's object, printed
    assert (k["object"]["kind"], k["object"]["apiVersion"]) == ("Service", "v1")
    assert k["object"]["spec"]["clusterIP"] == "169.254.2.1"
    # A torn list is still an error, never a shorter Table; a Status passes as it is.
    out, _ = filtering.filter_stream("list", iter([body[:len(body) // 2]]), chain,
                                     gzipped=False, gzip_out=False, table=_writer())
    with pytest.raises(UpstreamError):
        list(out)
    status = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","code":410}'
    out, _ = filtering.filter_stream("list", iter([status]), chain, gzipped=False,
                                     gzip_out=False, table=_writer())
    assert json.loads(b"".join(out))["code"] == 410


def test_a_table_watch_gets_one_row_tables_of_what_the_filters_let_through():
    def line(etype: str, name: str) -> bytes:
        return json.dumps({"type": etype, "object": obj("services", "default", name)}
                          ).encode() + b"\n"
    chain = Chain([DiscardCloudService()], scope(*SVC))
    out, _ = filtering.filter_stream(
        "watch", iter([line("ADDED", "web-lb") + line("ADDED", "web-plain"),
                       line("MODIFIED", "web-lb-kept")]),
        chain, gzipped=False, gzip_out=False, table=_writer())
    events = [json.loads(x) for chunk in out for x in chunk.splitlines()]
    assert [(e["type"], [r["cells"][0] for r in e["object"]["rows"]]) for e in events] == [
        ("ADDED", ["web-plain"]), ("MODIFIED", ["web-lb-kept"])]
    assert events[0]["object"]["columnDefinitions"] and \
        events[1]["object"]["columnDefinitions"] is None


def test_a_table_of_one_filtered_object():
    chain = Chain([MasterService()], scope(*SVC))
    _, body = filtering.filter_stream("get", iter([raw("services", "default", "kubernetes")]),
                                      chain, gzipped=False, gzip_out=False, table=_writer())
    doc = json.loads(body)
    assert doc["kind"] == "Table" and [r["cells"][2] for r in doc["rows"]] == ["169.254.2.1"]
