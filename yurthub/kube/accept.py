"""Accept headers: ask upstream for JSON instead of protobuf, and work out ``as=`` transforms.

The cache and the response filters decode JSON only, so for requests the hub caches or
filters (and watches, which it ends on JSON event boundaries) protobuf media ranges are
rewritten to JSON before the request goes upstream (``upstream_accept``); every other request
keeps its Accept (the remote proxy decides). Their ``as=;g=;v=`` parameters are kept.
client-go decodes by the response's Content-Type, so it accepts the JSON. ``negotiate``
picks the entry kube-apiserver would serve, and reports any transform it asks for: a
PartialObjectMetadata(List), a Table, or none.
"""

from __future__ import annotations

from dataclasses import dataclass

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
META_GROUP = "meta.k8s.io"
META_VERSIONS = ("v1", "v1beta1")
PARTIAL_KINDS = frozenset({"PartialObjectMetadata", "PartialObjectMetadataList"})
# What kube-apiserver serves for built-in resources, in its order: "*/*" means the first one.
_SERVED = (JSON, YAML, PROTOBUF)
_STREAMING = frozenset({JSON, PROTOBUF})  # the media types that have a watch stream serializer


@dataclass(frozen=True)
class Transform:
    """The representation that an ``as=<kind>;g=<group>;v=<version>`` media type asks for."""

    kind: str
    group: str
    version: str

    @property
    def is_table(self) -> bool:
        return self.kind == "Table"

    @property
    def is_partial_metadata(self) -> bool:
        return self.kind in PARTIAL_KINDS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header, parsed the way goautoneg (used by kube-apiserver) does."""

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...]
    q: float

    @property
    def media_type(self) -> str:
        return f"{self.type}/{self.subtype}"


@dataclass(frozen=True)
class Negotiation:
    """What kube-apiserver answers: the media type it serves and any transform of the object."""

    media_type: str
    transform: Transform | None


def parse_accept(header: str) -> list[MediaRange]:
    """Accept entries sorted the way kube-apiserver tries them.

    The order is by quality, and within one quality concrete types come before wildcards.
    Otherwise the header's order is kept. Entries that aren't ``type/subtype`` or ``*`` are
    dropped. A bad ``q`` counts as 0.
    """
    ranges = []
    for entry in header.split(","):
        media, *raw_params = entry.strip(" ").split(";")
        type_, slash, subtype = media.partition("/")
        type_, subtype = type_.strip(" "), subtype.strip(" ")
        if not slash:
            if type_ != "*":
                continue
            subtype = "*"
        elif "/" in subtype:
            continue
        params, q = [], 1.0
        for raw in raw_params:
            key, eq, value = raw.partition("=")
            if not eq:
                continue
            key = key.strip(" ")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                params.append((key, value.strip(" ")))
        ranges.append(MediaRange(type_, subtype, tuple(params), q))
    ranges.sort(key=lambda r: (-r.q, r.type == "*", r.subtype == "*"))
    return ranges


def _acceptable(params: tuple[tuple[str, str], ...], served: str) -> tuple[bool, Transform | None]:
    """acceptMediaTypeOptions + RequestScope.AllowsMediaTypeTransform of kube-apiserver."""
    convert: dict[str, str] = {}
    for key, value in params:
        if key in ("as", "g", "v"):
            convert[key] = value
        elif key == "stream" and value and (served not in _STREAMING or value != "watch"):
            return False, None
        elif key == "sv" and value and value != "v1":
            return False, None
    if not convert:
        return True, None
    t = Transform(convert.get("as", ""), convert.get("g", ""), convert.get("v", ""))
    if t.group != META_GROUP or t.version not in META_VERSIONS:
        return False, None
    if t.is_table:
        return served in (JSON, YAML), t
    return t.is_partial_metadata, t


def negotiate(accept: str | None, *, stream: bool = False) -> Negotiation | None:
    """What kube-apiserver serves for this Accept header, or None when it would answer 406.

    No header (or an empty one) gets JSON without a transform. Otherwise it is the first
    entry, in ``parse_accept`` order, that matches a served media type with parameters the
    endpoint accepts.  A watch (``stream``) is served only in the media types that have a
    stream serializer (``NegotiateOutputMediaTypeStream``): YAML-only is 406 there.
    """
    if not accept:
        return Negotiation(JSON, None)
    for clause in parse_accept(accept):
        for served in _SERVED:
            if stream and served not in _STREAMING:
                continue
            type_, subtype = served.split("/")
            if clause.type == "*" or (clause.type == type_ and clause.subtype in (subtype, "*")):
                ok, t = _acceptable(clause.params, served)
                if ok:
                    return Negotiation(served, t)
    return None


def transform(accept: str | None) -> Transform | None:
    """The transform of the Accept entry that kube-apiserver would serve, if it asks for one."""
    n = negotiate(accept)
    return n.transform if n else None


def accepts_plain_json(accept: str | None) -> bool:
    """True when a plain JSON object (no ``as=`` transform) is acceptable to the client.

    kubectl asks for a Table but ends its Accept with ``application/json``, so a plain list is
    an answer it takes; a client that lists only transforms does not.
    """
    if not accept:
        return True
    for mr in parse_accept(accept):
        if mr.q <= 0 or any(k == "as" for k, _ in mr.params):
            continue
        if mr.media_type in (JSON, "application/*", "*/*"):
            return True
    return False


def is_json_content_type(content_type: str | None) -> bool:
    """True for ``application/json`` with any parameters (``;stream=watch``, ``;charset=``)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == JSON


def upstream_accept(accept: str | None) -> str:
    """The Accept header to send upstream: every protobuf range is rewritten to JSON.

    The parameters (``as``, ``g``, ``v``, ``stream``, ``q``) are kept. The resulting list is
    deduplicated, and JSON, YAML and wildcard entries are left alone. One exception: a
    protobuf range asking ``as=Table`` is dropped, not rewritten. kube-apiserver never serves
    a Table as protobuf and would have skipped that entry, so a JSON Table would change the
    answer. A header with no protobuf entry, or none left after that, is returned unchanged.
    """
    if not accept or "protobuf" not in accept.lower():
        return accept or ""
    out: list[str] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for entry in accept.split(","):
        media, *params = (p.strip() for p in entry.split(";"))
        if not media:
            continue
        if media.lower() == PROTOBUF:
            if any(k.strip().lower() == "as" and v.strip() == "Table"
                   for k, _, v in (p.partition("=") for p in params)):
                continue
            media = JSON
        key = (media.lower(), tuple(sorted(p.partition("=")[::2] for p in params if p)))
        if key in seen:
            continue
        seen.add(key)
        out.append(";".join([media, *params]))
    return ",".join(out) if out else accept
