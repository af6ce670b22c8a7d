"""Runs of whole list items found without parsing them one by one, for readers that only
care about a few items (the response filters).

design: once a list's first item has been read, its opening (``{"metadata":`` for
kube-apiserver's built-in lists) tells what the separator between two items looks like
(``},{"metadata":``).  From an item boundary, the last such separator in the buffer ends a
candidate run; what the reader cares about (``Interest``: byte patterns, and any ``\\u``
escape that could hide one) is looked for in it, and the run is cut before the first hit.
The run is then checked to be whole items: with msgspec, by decoding it as an array of raw
values (exact); without it, by balanced braces and brackets (a separator inside an item
leaves that item's braces open).  A run that passes is handed out as one ``Bulk`` piece:
no Python object per item, ~1 ms per MiB.  Anything else falls back to item by item.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from yurthub.kube.jsonscan import HAVE_MSGSPEC, msgspec

# A \u escape of a character that a pattern may contain ("-./0-9:A-Z_a-z and the rest of
# 0x40-0x7f), or JSON's \/: it could hide a pattern.  kube-apiserver's own escapes (&, <, >:
# \u0026, \u003c, \u003e) and of non-ASCII characters cannot, and do not count.
_HIDDEN_U = r"00(?:2[2dDeEfF]|3[0-9aA]|[4-7][0-9a-fA-F])"  # after \u
_HIDING = r"\\(?:/|u" + _HIDDEN_U + ")"
_HIDING_RE = (re.compile(_HIDING), re.compile(_HIDING.encode()))
# Escapes that cannot hide a pattern (above all \", which managedFields' keys are full of:
# ``"k:{\"name\":\"app\"}"``), each with up to SAFE_GAP characters without a backslash
# after it: one match takes a cluster of them.  Not \\ (its second backslash may begin
# \/ for the search above, which does not pair backslashes).
SAFE_GAP = 128
_SAFE = r"(?:\\(?:[^/\\u]|u(?!" + _HIDDEN_U + r"))[^\\]{0," + str(SAFE_GAP) + "})+"
_SAFE_RE = (re.compile(_SAFE), re.compile(_SAFE.encode()))
# Fewer bytes than this per cluster and the regex engine's own scan is the cheaper one.
DENSE = 1024

# The characters of Kubernetes JSON, most frequent first (in a pod list and an
# EndpointSlice list); those not here are rarer still.  A literal is looked for through
# the rarest of its characters (see Literal).
_COMMON = '"e:atn0s,irodcul-1fm{}p2b5.6P3hTyvg49k78/[]zNRSIwVZAMC\\DEx FOLjG_qUH@B\n'
RARE_MIN = 64 << 10  # shorter regions: the substring search at once
RARE_TRIES = 8       # candidates that were not the literal before the substring search


def hides(raw: bytes | str) -> bool:
    """True when ``raw`` holds an escape that could hide an ASCII pattern."""
    return find_hiding(raw, 0, len(raw)) >= 0


def find_hiding(buf: bytes | str, start: int, end: int) -> int:
    """Where the first escape that could hide a pattern begins in ``buf[start:end]`` (-1:
    none): always ``_HIDING``'s first match there.

    The regex engine looks for a backslash one byte at a time (~3.5 GB/s), and a pod list
    has one every ~600 bytes (managedFields' ``\\"``), so its own scan cost as much as
    the rest of kubelet's filtering.  Here the backslashes are found with ``find``
    (memchr) and each cluster of escapes that cannot hide anything is passed in one match
    (``_SAFE``); where clusters come denser than DENSE bytes apart, the rest is left to
    the regex's scan."""
    b = isinstance(buf, bytes)
    backslash: Any = b"\\" if b else "\\"
    i = buf.find(backslash, start, end)
    if i < 0:
        return -1
    safe, hiding = _SAFE_RE[b].match, _HIDING_RE[b]
    steps = 0
    while i >= 0:
        m = safe(buf, i, end)  # type: ignore[arg-type]
        if m is not None:
            nxt = m.end()
        elif hiding.match(buf, i, end) is not None:  # type: ignore[arg-type]
            return i
        else:
            nxt = i + 1  # \\: the second backslash is looked at on its own
        steps += 1
        if steps >= 16 and nxt - start < steps * DENSE:
            found = hiding.search(buf, nxt, end)  # type: ignore[arg-type]
            return found.start() if found is not None else -1
        i = buf.find(backslash, nxt, end)
    return -1


# JSON's whitespace, as a Keyed regex allows it around a colon.
WS = r"[ \t\n\r]*"
# Where a Keyed pattern is looked for, any raw tab, newline or carriage return (never
# inside a JSON string: always whitespace) and any run of 16 spaces is of interest by
# itself (an item holding one is read through, as kube-apiserver's compact lists never
# hold one), so a Keyed match is never longer than its searcher's width and none is missed
# across two chunks.
_SPACING = ("\t", "\n", "\r", " " * 16)


class Keyed:
    """A JSON member with the string key ``key`` (as written, quotes included:
    ``"kubernetes.io/service-name"``) and a string value, that counts only when the value is
    in ``values`` (the Services that have a topology).  JSON's whitespace may stand around
    its colon: the lists it reads are mostly compact, not always."""

    def __init__(self, key: str, values: Iterable[str]) -> None:
        self.key = key
        self.values = frozenset(values)
        self.regex = keyed_regex(key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyed) and (self.key, self.values) == (other.key,
                                                                         other.values)

    def __hash__(self) -> int:
        return hash((self.key, self.values))


def keyed_regex(key: str) -> str:
    """The member ``key``: <string value>, its value as the one group (no escapes in it)."""
    return re.escape(key) + WS + ":" + WS + r'"([^"\\]*)"'


def _rank(ch: str) -> int:
    """How common ``ch`` is in Kubernetes JSON: lower is rarer."""
    return len(_COMMON) - _COMMON.index(ch) if ch in _COMMON else 0


class Literal:
    """A literal looked for in a big region through its rarest character.

    ``bytes.find`` of a substring runs at a few GB/s; ``find`` of one character is
    ``memchr``, many times faster.  In a large region, the literal is found by looking for
    its rarest character (``_COMMON``) and checking each place it occurs: the first one
    where the literal stands is its first occurrence (every occurrence has that character
    at the same offset, and they are tried in order).  When that character turns out not
    to be rare here (RARE_TRIES places without the literal), the rest is left to the
    substring search, and so is every later search of this instance (an ``Interest`` is
    built for one list).  The answer is always ``buf.find(literal, start, end)``'s.
    """

    def __init__(self, text: str) -> None:
        self.text = (text, text.encode())
        self.k = min(range(len(text)), key=lambda i: _rank(text[i])) if text else 0
        ch = text[self.k:self.k + 1]
        self.ch = (ch, ch.encode())
        self.rare = bool(text)  # False once its rarest character proved common

    def find(self, buf: bytes | str, start: int, end: int) -> int:
        b = isinstance(buf, bytes)
        lit: Any = self.text[b]
        if end - start < RARE_MIN or not self.rare:
            return buf.find(lit, start, end)
        k, ch = self.k, self.ch[b]
        i = buf.find(ch, start + k, end)  # type: ignore[arg-type]
        tries = RARE_TRIES
        while i >= 0:
            if buf.startswith(lit, i - k, end):
                return i - k
            tries -= 1
            if not tries:
                self.rare = False
                return buf.find(lit, i - k + 1, end)
            i = buf.find(ch, i + 1, end)  # type: ignore[arg-type]
        return -1


class _Searcher:
    """One thing to look for, in str and bytes buffers alike."""

    def __init__(self, what: str | Keyed | None) -> None:
        self.what = what
        if isinstance(what, str):
            self.width = len(what.encode())
        elif isinstance(what, Keyed):
            # a key, a value (a Kubernetes name: at most 253 bytes; a longer one is in no
            # ``values``) and short whitespace (_SPACING): a match may span that much
            self.width = 512
            self._key = Literal(what.key)
            self._re = (re.compile(what.regex), re.compile(what.regex.encode()))
            self._values = (what.values, frozenset(v.encode() for v in what.values))
        else:
            self.width = 6    # \u00XX
        self._lit = (what, what.encode()) if isinstance(what, str) else None
        self._find = Literal(what) if isinstance(what, str) else None
        self.keyed = isinstance(what, Keyed)

    @property
    def needle(self) -> str | None:
        """What ``find`` looks for first: the literal, or a Keyed pattern's key."""
        if isinstance(self.what, Keyed):
            return self.what.key
        return self.what

    def at(self, buf: bytes | str, i: int, end: int) -> bool:
        """Whether the pattern matches at ``i`` (where its needle was found), before
        ``end``."""
        b = isinstance(buf, bytes)
        if self._lit is not None:
            return buf.startswith(self._lit[b], i, end)  # type: ignore[arg-type]
        m = self._re[b].match(buf, i, end)  # type: ignore[arg-type]
        return m is not None and m.group(1) in self._values[b]

    def search(self, buf: bytes | str, start: int, end: int) -> int:
        if self._find is not None:
            return self._find.find(buf, start, end)
        if self.what is None:
            return find_hiding(buf, start, end)
        # the key found by ``find`` (far faster than the regex engine's own scan), then
        # matched where it is
        find = self._key.find
        i = find(buf, start, end)
        while i >= 0:
            if self.at(buf, i, end):
                return i
            i = find(buf, i + 1, end)
        return -1


class _Shared:
    """Patterns whose needles begin alike (``"kubernetes"`` and the Keyed
    ``"kubernetes.io/service-name"``), looked for in one pass: their common prefix is
    found, then each pattern is matched where it is.  A pass over a big list costs as much
    as the pattern's own, so two patterns sharing a prefix cost one pass, not two."""

    def __init__(self, members: list[_Searcher], prefix: str) -> None:
        self.members = members
        self.what = tuple(m.what for m in members)
        self.keyed = any(isinstance(m.what, Keyed) for m in members)
        self.width = max(m.width for m in members)
        self._prefix = Literal(prefix)

    def search(self, buf: bytes | str, start: int, end: int) -> int:
        find = self._prefix.find
        i = find(buf, start, end)
        while i >= 0:
            if any(m.at(buf, i, end) for m in self.members):
                return i
            i = find(buf, i + 1, end)
        return -1


# Needles that begin with this many of the same characters are looked for together; a
# shorter common prefix would be found too often to save anything.
SHARED_PREFIX_MIN = 8


def _merged(searchers: list[_Searcher]) -> list[_Searcher | _Shared]:
    """``searchers`` with those whose needles share a prefix of SHARED_PREFIX_MIN or more
    characters as one ``_Shared`` each (the rest as they were, in the same order)."""
    groups: dict[str, list[_Searcher]] = {}
    for s in searchers:
        if s.needle is not None and len(s.needle) >= SHARED_PREFIX_MIN:
            groups.setdefault(s.needle[:SHARED_PREFIX_MIN], []).append(s)
    out: list[_Searcher | _Shared] = []
    for s in searchers:
        group = groups.get(s.needle[:SHARED_PREFIX_MIN]) if s.needle is not None else None
        if group is None or len(group) < 2:
            out.append(s)
        elif group[0] is s:  # the group goes where its first member was
            out.append(_Shared(group, _common_prefix([m.needle or "" for m in group])))
    return out


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)  # the prefix all share is the one these two share
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


class Interest:
    """What a reader must see item by item: any of ``patterns`` (ASCII literals, or Keyed),
    or an escape that could hide one.  ``None`` means everything (no run is ever skipped);
    no patterns, nothing.
    """

    def __init__(self, patterns: Iterable[str | Keyed] | None) -> None:
        self.everything = patterns is None
        wanted = set(patterns or ())
        if any(isinstance(p, Keyed) for p in wanted):
            wanted.update(_SPACING)
        unique = sorted(wanted, key=lambda p: (isinstance(p, Keyed), str(p)))
        self.searchers = _merged([_Searcher(p) for p in unique])
        if self.searchers:
            self.searchers.append(_Searcher(None))
        # the longest thing searched for (a pattern across two chunks)
        self.longest = max([6, *(s.width for s in self.searchers)])
        # for whole items (``in_item``): all but _SPACING, Keyed first (an item read one by
        # one has its Keyed hit near its start: no need to scan it for the rest)
        self._in_item = sorted((s for s in self.searchers if s.what not in _SPACING),
                               key=lambda s: not s.keyed)

    @property
    def nothing(self) -> bool:
        return not self.everything and not self.searchers

    def find(self, region: bytes | str, start: int = 0, end: int | None = None) -> int:
        """Offset of the first byte of interest in ``region[start:end]`` (-1: none)."""
        if self.everything:
            return start
        if end is None:
            end = len(region)
        best = -1
        for s in self.searchers:
            i = s.search(region, start, end)
            if i >= 0:
                best = end = i  # only an earlier hit matters now
        return best

    def in_item(self, buf: bytes, start: int, end: int) -> bool:
        """Whether the whole item ``buf[start:end]`` holds something of interest (the
        patterns apart from _SPACING, which only bounds a match's length across two
        chunks)."""
        return self.everything or any(s.search(buf, start, end) >= 0 for s in self._in_item)


class Finder:
    """``Interest.find`` over one parser's buffer as it grows and is consumed: each byte is
    searched once per pattern, whatever the number of runs tried (a list whose every item
    holds a pattern would otherwise search the rest of the buffer once per item).  The
    ``start`` of successive calls never moves back, as a parser's position does not."""

    def __init__(self, interest: Interest) -> None:
        self.interest = interest
        self.base = 0                          # stream offset of the buffer's start
        n = len(interest.searchers)
        self._next: list[int] = [-1] * n       # stream offset of the next hit (-1: none)
        self._upto: list[int] = [0] * n        # resolved up to here (stream offset)

    def consumed(self, n: int) -> None:
        """The buffer's first ``n`` bytes (or characters) were dropped."""
        self.base += n

    def find(self, buf: bytes | str, start: int, end: int) -> int:
        """The first offset of interest in ``buf[start:end]`` (-1: none)."""
        it = self.interest
        if it.everything:
            return start
        base, best = self.base, -1
        for i, s in enumerate(it.searchers):
            nxt = self._next[i]
            if nxt < base + start:  # not known past start: search on from where we were
                frm = max(base + start, self._upto[i] - s.width + 1) - base
                r = s.search(buf, frm, len(buf))
                # resolved up to the hit (nothing before it), or to the end of the buffer
                self._upto[i] = base + (r + 1 if r >= 0 else len(buf))
                self._next[i] = nxt = base + r if r >= 0 else -1
            if nxt >= 0 and nxt - base < end and (best < 0 or nxt - base < best):
                best = nxt - base
        return best


class Bulk:
    """Consecutive whole items of a list, with the commas between them, as in the body."""

    __slots__ = ("count", "raw")

    def __init__(self, raw: bytes, count: int) -> None:
        self.raw = raw
        self.count = count

    def __repr__(self) -> str:
        return f"Bulk({self.count} items, {len(self.raw)} bytes)"


# kube-apiserver's built-in lists: items begin with their metadata, and in the types the
# filters read (Pod, Service, Endpoints, EndpointSlice, ConfigMap) no array element begins
# with a "metadata" member, so this separator is only ever found between two items.
TRUSTED_SEPARATOR = b'},{"metadata":'


def separator_of(first_item: bytes | str) -> bytes | str | None:
    """``},`` + the opening of the first item up to its first key's colon, or None."""
    colon_char: Any = ":" if isinstance(first_item, str) else b":"
    colon = first_item.find(colon_char)
    if colon < 2 or colon > 64:
        return None
    head = first_item[:colon + 1]
    return ("}," + head) if isinstance(head, str) else (b"}," + head)


if HAVE_MSGSPEC:
    _decode_raw_array = msgspec.json.Decoder(list[msgspec.Raw]).decode


def find_run(buf: bytes | str, pos: int, sep: bytes | str, finder: Finder, *,
             exact: bool) -> tuple[int, int] | int | None:
    """A run of whole items of no interest that starts at ``pos`` (an item's first byte)
    and ends before a separator: ``(end, items)`` (without msgspec, ``items`` counts the
    separators, which a separator nested in an item would add to).  None when there is
    none yet; an ``int`` when the candidate was not whole items: the reader goes item by
    item up to there.
    """
    cand = buf.rfind(sep, pos)  # type: ignore[arg-type]
    if cand <= pos:
        return None
    hit = finder.find(buf, pos, cand + 1)
    if hit >= 0:
        cand = buf.rfind(sep, pos, hit)  # type: ignore[arg-type]
        if cand <= pos:
            return None
    region = buf[pos:cand + 1]
    if exact and HAVE_MSGSPEC and isinstance(region, bytes):
        try:
            return cand + 1, len(_decode_raw_array(b"[" + region + b"]"))
        except (msgspec.DecodeError, RecursionError):
            return cand + 1  # item by item, which says what is wrong
    if isinstance(region, bytes):
        balanced = (region.count(b"{") == region.count(b"}")
                    and region.count(b"[") == region.count(b"]"))
    else:
        balanced = (region.count("{") == region.count("}")
                    and region.count("[") == region.count("]"))
    if not balanced:
        return cand + 1
    return cand + 1, region.count(sep) + 1  # type: ignore[arg-type]
