"""servicetopology on an EndpointSlice's bytes: the endpoints of other nodes spliced out.

design: kube-proxy's EndpointSlices are an edge node's largest list, and with a topology
every slice is rewritten.  Decoding, filtering and re-encoding each slice costs ~80 us
(65 MB of slices in ~0.4 s on PyPI, more with the stdlib json), about as much as every
other step of a proxied list together.  This module reads only what the decision needs
(the slice's namespace and ``kubernetes.io/service-name`` label, and where each endpoint
on a kept node begins and ends) and joins the kept endpoints' bytes, in a handful of C
calls per slice and a few per kept endpoint; a dropped endpoint is never looked at.

It is exact for a ``discovery.k8s.io/v1`` EndpointSlice written as kube-apiserver writes one
(Go's encoding/json: compact, fields in declaration order, only the type's fields). Every
assumption but one (below) is checked, and whatever does not hold answers None, so the
caller decodes the object instead (never the unfiltered bytes): any backslash (no escape can
hide a key, and every ``"`` delimits a string); a newline (``?pretty``) or any whitespace
among the endpoints (a kept ``"nodeName": "x"`` would go unseen); another field order; a
last endpoint that is not one whole JSON object (a field between the endpoints and the
ports, which would go with it); ``deprecatedTopology`` in a kept endpoint (its keys are
free); two ``nodeName`` in one endpoint; ``},{`` or ``}]`` inside a kept endpoint
(``hints``' arrays, a string holding them); an item that is not valid UTF-8. Not checked:
that an endpoint holds only the type's fields.  kube-apiserver writes the typed object, and
the type has no array of objects with an ``addresses`` key, in which a separator could
hide; a field outside the type holding one could cut an endpoint in two unseen.  Checking
it would take a parse of every endpoint, which is what this module avoids.
``tests/unit/filters/test_slicebytes.py`` checks on random slices that the result decodes
to exactly what the object path returns.

Why the readings hold, given no backslash: a pattern that starts and ends with ``"`` and
has ``":`` inside can only be a key (a string cannot hold a ``"``, and a value is never
followed by ``:``); every endpoint begins with ``{"addresses":[`` (the first field, always
written), and no other object of the type has an ``addresses`` key, so ``},{"addresses":[``
separates two endpoints and nothing else; the endpoints array is followed by ``,"ports":``
or ends the object.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from yurthub.errors import DecodeError
from yurthub.kube.jsonscan import decode_object

_HEAD = b'{"metadata":{'
_TYPED_HEAD = b'{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{'
_META_END = b'},"addressType":"'
_ENDPOINTS_AT = re.compile(rb'\},"addressType":"[A-Za-z0-9]*","endpoints":\[')
_SERVICE_KEY = b'"kubernetes.io/service-name"'
_SERVICE = b'"kubernetes.io/service-name":"'
_LABELS = b'"labels":{'
_NAMESPACE_KEY = b'"namespace"'
_NAMESPACE = b'"namespace":"'
_ENDPOINT = b'{"addresses":['
_SEPARATOR = b'},{"addresses":['
_PORTS_AFTER = b'}],"ports":'
_LAST = b'}]}'
_NODE_KEY = b'"nodeName"'
_DEPRECATED = b'"deprecatedTopology"'


class Undecided:
    """What a lookup answers when the bytes cannot decide (the object path must)."""


UNDECIDED = Undecided()

# (namespace, service name) -> the node names whose endpoints stay; None: the slice stays
# as it is; UNDECIDED: only the decoded object can tell.
Lookup = Callable[[str, str], "frozenset[str] | Undecided | None"]


# Up to this many kept nodes, each one's ``"nodeName":"<node>"`` is found with bytes.find
# (a skip search: about 4 GB/s for 23 bytes) instead of one regex for all (the regex engine
# stops at every ``"``: 1.2-1.6 GB/s whatever the number of nodes).  65 MB of slices:
# 1 node 15 ms against 40 ms, 2 nodes 30 against 45 (PyPI; Debian 12: 8 and 17 against 40
# and 44); at 4 nodes the regex is ahead on PyPI (50 against 63).
_LITERALS_MAX = 2


@lru_cache(maxsize=16)
def _kept_finder(nodes: frozenset[str]) -> re.Pattern[bytes] | tuple[bytes, ...]:
    """What finds ``"nodeName":"<one of nodes>"`` (the whole string value): the literals
    (none for no nodes) or one regex."""
    if len(nodes) <= _LITERALS_MAX:
        return tuple(b'"nodeName":"%s"' % n.encode() for n in sorted(nodes))
    # (253 nested groups, the longest a node's name can nest, compile fine)
    return re.compile(rb'"nodeName":"' + _alternation([n.encode() for n in nodes]) + rb'"')


def _alternation(names: list[bytes]) -> bytes:
    """A regex matching exactly ``names``, written as their trie (``node-(?:1|2)``, not
    ``node-1|node-2``): the regex engine tries the alternatives of a group one by one, so a
    flat alternation costs each ``"nodeName"`` one try per name (a pool of 1,000 nodes:
    1.2 s for 65 MB of slices instead of 0.05 s); the trie one per character."""
    trie: dict[int, dict] = {}
    for name in names:
        node = trie
        for ch in name:
            node = node.setdefault(ch, {})
        node[-1] = {}  # a name ends here

    def emit(node: dict[int, dict]) -> bytes:
        branches = [re.escape(bytes((ch,))) + emit(child)
                    for ch, child in sorted(node.items()) if ch >= 0]
        if not branches:
            return b""
        if len(branches) == 1 and -1 not in node:
            return branches[0]
        return b"(?:" + b"|".join(branches) + (b")?" if -1 in node else b")")

    return emit(trie)


def _kept_hits(raw: bytes, start: int, end: int, nodes: frozenset[str]) -> list[int]:
    """Where each kept ``"nodeName"`` member in ``raw[start:end]`` begins, in order (no two
    can overlap: a node name holds no ``"`` where there is no backslash)."""
    finder = _kept_finder(nodes)
    if not isinstance(finder, tuple):
        return [m.start() for m in finder.finditer(raw, start, end)]
    find = raw.find
    hits: list[int] = []
    for lit in finder:
        at = find(lit, start, end)
        while at >= 0:
            hits.append(at)
            at = find(lit, at + 1, end)
    if len(finder) > 1:
        hits.sort()
    return hits


def _string_at(raw: bytes, at: int) -> str:
    """The string whose first character is at ``at`` (no backslash in ``raw``)."""
    return raw[at:raw.index(b'"', at)].decode()


def owner(raw: bytes, start: int, meta_end: int) -> tuple[str, str] | None:
    """(namespace, service) of a slice's ``kubernetes.io/service-name`` label, ("", "")
    when it has none, None when the bytes do not say for sure.  The metadata object's
    members are ``raw[start:meta_end]``."""
    n = raw.count(_SERVICE_KEY, 0, meta_end)
    if n == 0:
        return "", ""  # no escapes: a key of that name would be these very bytes
    at = raw.find(_SERVICE, 0, meta_end)
    labels = raw.find(_LABELS, 0, meta_end)
    if n != 1 or at < 0 or labels < 0 or labels > at:
        return None
    inside = labels + len(_LABELS)
    # labels is a member of metadata (nothing nested before it), the label one of its keys
    if raw.find(b"{", start, labels) >= 0 or raw.find(b"}", start, labels) >= 0 \
            or raw.find(b"{", inside, at) >= 0 or raw.find(b"}", inside, at) >= 0:
        return None
    ns_at = raw.find(_NAMESPACE, start, labels)
    if ns_at < 0 or raw.count(_NAMESPACE_KEY, start, labels) != 1:
        return None
    return _string_at(raw, ns_at + len(_NAMESPACE)), _string_at(raw, at + len(_SERVICE))


def _endpoints_span(raw: bytes, meta_end: int) -> tuple[int, int] | None:
    """Where the endpoints array's elements are: ``raw[start:end]`` (start == end for
    ``[]``), or None when it is not written as expected."""
    m = _ENDPOINTS_AT.match(raw, meta_end)
    if m is None:
        return None  # not right after addressType, or "endpoints":null
    start = m.end()
    if raw.startswith(b"]", start):
        return start, start
    if not raw.startswith(_ENDPOINT, start):
        return None
    close = raw.rfind(_PORTS_AFTER, start)
    if close < 0:
        if not raw.endswith(_LAST):
            return None
        close = len(raw) - len(_LAST)
    end = close + 1
    # The last element must be whole: a field between the endpoints and the ports (not in
    # the type) would otherwise pass for part of it, and go with it if it is dropped.
    last = raw.rfind(_SEPARATOR, start, end)
    last = start if last < 0 else last + 2
    try:  # one endpoint is a few hundred bytes: a microsecond or two
        decode_object(raw[last:end])
    except DecodeError:
        return None
    return start, end


def keep_endpoints(raw: bytes, start: int, end: int, nodes: frozenset[str]) -> bytes | None:
    """The slice with only the endpoints in ``raw[start:end]`` whose ``nodeName`` is one of
    ``nodes`` (``raw`` itself when all stay), or None when the bytes are not as expected."""
    find = raw.find
    if find(b" ", start, end) >= 0 or find(b"\t", start, end) >= 0 \
            or find(b"\r", start, end) >= 0:
        return None  # a kept "nodeName": "x" would not be seen (memchr scans: cheap)
    runs: list[list[int]] = []  # [begin, end] of consecutive kept endpoints
    hits = _kept_hits(raw, start, end, nodes) if nodes else []
    last = start  # the end of the last kept endpoint
    rfind = raw.rfind
    for at in hits:
        if at < last:
            return None  # a second kept nodeName in one endpoint
        e = find(_SEPARATOR, at, end)
        e = end if e < 0 else e + 1
        if runs and find(_SEPARATOR, last, at) < 0:
            runs[-1][1] = e  # the endpoint right after the last kept one
        else:
            b = rfind(_SEPARATOR, start, at)
            runs.append([start if b < 0 else b + 2, e])
        last = e
    if len(runs) == 1 and runs[0][0] == start and runs[0][1] == end:
        return raw if _whole(raw, start, end, len(hits)) else None
    kept = b",".join([raw[b:e] for b, e in runs])
    if not _whole(kept, 0, len(kept), len(hits)):
        return None
    return b"".join((raw[:start], kept, raw[end:]))


def _whole(buf: bytes, start: int, end: int, n: int) -> bool:
    """Whether the ``n`` kept endpoints in ``buf[start:end]`` (joined by ``,``) are whole
    endpoints with one ``nodeName`` each, as their hits say.

    Checked once on the joined endpoints rather than run by run (four C calls a slice, not
    five a run: kept endpoints are often scattered one by one): each join puts one ``},{``
    between two runs and cannot make any of the other patterns, which hold no comma, and
    each run holds at least its own hits' ``"nodeName"`` and its own separators' ``},{``,
    so the sums are right exactly when every run's counts are.  That the separators
    ``},{"addresses":[`` are the hits' own needs no count: each run was cut at them."""
    return n == 0 or (buf.count(_NODE_KEY, start, end) == n
                      and buf.count(b"},{", start, end) == n - 1
                      and buf.find(b"}]", start, end) < 0
                      and buf.find(_DEPRECATED, start, end) < 0)


def filter_slice(raw: bytes, lookup: Lookup) -> bytes | None:
    """servicetopology on one v1 EndpointSlice's bytes: the new bytes (``raw`` when nothing
    changes), or None when only decoding the object can tell."""
    if b"\\" in raw or b"\n" in raw:
        return None
    if raw.startswith(_HEAD):  # a list's item
        start = len(_HEAD)
    elif raw.startswith(_TYPED_HEAD):  # a watch event's or a GET's object
        start = len(_TYPED_HEAD)
    else:
        return None
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None
    meta_end = raw.find(_META_END, start)
    if meta_end < 0:
        return None
    who = owner(raw, start, meta_end)
    if who is None:
        return None
    if not who[1]:
        return raw
    nodes = lookup(*who)
    if isinstance(nodes, Undecided):
        return None
    if nodes is None:
        return raw
    span = _endpoints_span(raw, meta_end)
    if span is None:
        return None
    start, end = span
    if start == end:
        return raw
    return keep_endpoints(raw, start, end, nodes)


__all__ = ["UNDECIDED", "Lookup", "Undecided", "filter_slice", "keep_endpoints", "owner"]
