"""Accept headers: the JSON rewrite for upstream, and the transform kube-apiserver negotiates."""

from __future__ import annotations

import pytest

from yurthub.kube.accept import (
    Transform,
    is_json_content_type,
    negotiate,
    parse_accept,
    transform,
    upstream_accept,
)

PB = "application/vnd.kubernetes.protobuf"
POM = "as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
POML = "as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
TABLE = "as=Table;v=v1;g=meta.k8s.io"


@pytest.mark.parametrize("accept,expected", [
    # what kubelet and kube-proxy send
    (f"{PB}, */*", "application/json,*/*"),
    (f"{PB};stream=watch, */*", "application/json;stream=watch,*/*"),
    # metadata informers: the as/g/v parameters survive, duplicates go
    (f"{PB};{POML},application/json;{POML},application/json",
     f"application/json;{POML},application/json"),
    (f"{PB};{POM},application/json;{POM},application/json",
     f"application/json;{POM},application/json"),
    # parameter order and spacing do not make a different entry
    (f"{PB};as=PartialObjectMetadataList;v=v1;g=meta.k8s.io, application/json;{POML}",
     "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
    (f"{PB}", "application/json"),
    (f"{PB};q=0.9, application/yaml", "application/json;q=0.9,application/yaml"),
    ("APPLICATION/VND.KUBERNETES.PROTOBUF, application/json", "application/json"),
    # kube-apiserver never serves a Table as protobuf: that entry is dropped, not rewritten
    (f"{PB};{TABLE}, application/json", "application/json"),
    (f"{PB};{TABLE}, {PB}", "application/json"),
    (f"{PB};{TABLE}", f"{PB};{TABLE}"),
])
def test_upstream_accept_rewrites_protobuf(accept, expected):
    assert upstream_accept(accept) == expected


@pytest.mark.parametrize("accept", [
    "application/json",
    "application/json, */*",
    f"application/json;{TABLE},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
    "application/yaml",
    "*/*",
    "application/json,application/json",
    "",
])
def test_upstream_accept_leaves_json_yaml_and_wildcards_alone(accept):
    assert upstream_accept(accept) == accept


def test_upstream_accept_of_no_header():
    assert upstream_accept(None) == ""


@pytest.mark.parametrize("accept,media_type,t", [
    (None, "application/json", None),
    ("", "application/json", None),
    ("*/*", "application/json", None),
    ("application/*", "application/json", None),
    (f"{PB}, */*", PB, None),
    ("application/yaml", "application/yaml", None),
    (f"application/json;{POM}", "application/json",
     Transform("PartialObjectMetadata", "meta.k8s.io", "v1")),
    (f"{PB};{POML},application/json;{POML},application/json", PB,
     Transform("PartialObjectMetadataList", "meta.k8s.io", "v1")),
    ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1",
     "application/json", Transform("PartialObjectMetadataList", "meta.k8s.io", "v1beta1")),
    (f"application/json;{TABLE},application/json", "application/json",
     Transform("Table", "meta.k8s.io", "v1")),
    (f"application/yaml;{TABLE}", "application/yaml", Transform("Table", "meta.k8s.io", "v1")),
    # a Table is served as JSON or YAML only: the protobuf entry is skipped
    (f"{PB};{TABLE}, application/json", "application/json", None),
    (f"*/*;{TABLE}", "application/json", Transform("Table", "meta.k8s.io", "v1")),
    # transforms kube-apiserver does not know are skipped too
    ("application/json;as=Foo;g=meta.k8s.io;v=v1, application/json", "application/json", None),
    ("application/json;as=Table;g=example.com;v=v1, application/yaml", "application/yaml", None),
    ("application/json;as=Table;g=meta.k8s.io;v=v2, application/yaml", "application/yaml", None),
    ("application/json;as=Table, application/yaml", "application/yaml", None),
    ("application/json;g=meta.k8s.io", None, None),
    # quality first, then concrete types before wildcards
    (f"application/json;q=0.5, application/json;{POM}", "application/json",
     Transform("PartialObjectMetadata", "meta.k8s.io", "v1")),
    ("*/*, application/yaml", "application/yaml", None),
    ("application/yaml;q=0.1, application/json;q=0.9", "application/json", None),
    ("application/yaml;q=bad, application/json;q=0.1", "application/json", None),
    # stream=watch needs a stream serializer
    ("application/yaml;stream=watch, application/json;stream=watch", "application/json", None),
    ("application/json;stream=other, application/yaml", "application/yaml", None),
    # unknown parameters are ignored; a foreign server version is not acceptable
    ("application/json;pretty=1;charset=utf-8", "application/json", None),
    ("application/json;sv=v2, application/yaml", "application/yaml", None),
    ("text/html, application/json", "application/json", None),
    ("text/html", None, None),
    ("application/cbor", None, None),
    ("garbage", None, None),
])
def test_negotiate_like_kube_apiserver(accept, media_type, t):
    n = negotiate(accept)
    if media_type is None:
        assert n is None
    else:
        assert n is not None
        assert (n.media_type, n.transform) == (media_type, t)
    assert transform(accept) == t


@pytest.mark.parametrize("accept,media_type", [
    ("application/yaml", None),     # kube-apiserver has no YAML stream serializer: 406
    ("application/yaml, application/json", "application/json"),
    (f"application/yaml;{TABLE}, application/json", "application/json"),
    ("*/*", "application/json"),
    (f"{PB}, application/json", PB),
])
def test_a_watch_negotiates_among_stream_serializers(accept, media_type):
    n = negotiate(accept, stream=True)
    assert (n.media_type if n else None) == media_type
    assert negotiate(accept) is not None  # a list of the same Accept is served


def test_transform_properties():
    table = transform(f"application/json;{TABLE}")
    assert table is not None and table.is_table and not table.is_partial_metadata
    pom = transform(f"application/json;{POML}")
    assert pom is not None and pom.is_partial_metadata and not pom.is_table
    assert pom.api_version == "meta.k8s.io/v1"
    assert Transform("Table", "", "v1").api_version == "v1"


def test_parse_accept_entries():
    ranges = parse_accept(" application/json ;  as=Table ; q=0.8 , */*;q=0.1,foo, bar/baz/x, *")
    # "foo" and "bar/baz/x" are not media ranges; "*" alone means "*/*"
    assert [(r.media_type, r.params, r.q) for r in ranges] == [
        ("*/*", (), 1.0),
        ("application/json", (("as", "Table"),), 0.8),
        ("*/*", (), 0.1),
    ]


@pytest.mark.parametrize("content_type,expected", [
    ("application/json", True),
    ("application/json;stream=watch", True),
    ("application/json; charset=utf-8", True),
    ("Application/JSON", True),
    ("application/yaml", False),
    ("application/vnd.kubernetes.protobuf", False),
    ("application/json-patch+json", False),
    ("text/plain", False),
    ("", False),
    (None, False),
])
def test_is_json_content_type(content_type, expected):
    assert is_json_content_type(content_type) is expected
