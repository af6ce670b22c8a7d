"""How deeply a JSON text nests, found without decoding it (and without recursion).

Python's decoders, and everything the hub then does with a decoded object (patches, copies,
encoding), recurse once or twice per level: past about 450 levels a request thread meets
``RecursionError``, which reached clients as a 500.  kube-apiserver's decoder stops at 10,000
levels ("exceeded max depth"); the hub stops the bodies it decodes itself at ``MAX_DEPTH``,
far beyond any Kubernetes object (a CRD's schema nests a few dozen levels), with a 400 Status
saying so, before any decoding.

The text is measured on its bytes: strings are cut out (a bracket inside one does not nest),
the brackets left are counted.  A text with no more than ``limit`` opening brackets in all
cannot nest deeper, which is the common case and costs two ``count`` calls.
"""

from __future__ import annotations

import re

from yurthub.errors import NestingTooDeep

MAX_DEPTH = 200
# A string, or what is left of an unterminated one: always matches from a quote, so a text
# of many unterminated quotes is scanned once (no quadratic retries).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*\\?(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _opening(text: bytes) -> int:
    return text.count(b"{") + text.count(b"[")


def too_deep(text: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """True when ``text`` nests arrays and objects more than ``limit`` levels deep."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if _opening(data) <= limit:
        return False
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if _opening(brackets) <= limit:
        return False
    depth = 0
    for c in brackets:
        depth += _STEP[c]
        if depth > limit:
            return True
    return False


def check_depth(text: bytes | str, what: str = "the request body",
                limit: int = MAX_DEPTH) -> None:
    """``NestingTooDeep`` (a ValueError) when ``text`` nests more than ``limit`` levels."""
    if too_deep(text, limit):
        raise NestingTooDeep(f"{what} nests JSON objects and arrays more than {limit} levels "
                             "deep (exceeded max depth)")
