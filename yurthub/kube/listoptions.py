"""The checks kube-apiserver makes of a list's or a watch's options before it reads anything.

kube-apiserver validates ``ListOptions`` (apimachinery's ``ValidateListOptions``) and answers
422 Invalid, kind ``ListOptions`` of group ``meta.k8s.io``, with every problem found (one
cause each; the message lists them in brackets when there are several):

- a list: ``resourceVersionMatch`` without a ``resourceVersion``, with a ``continue`` token,
  with an unknown value, or as ``Exact`` with ``resourceVersion=0``; ``sendInitialEvents``
  at all;
- a watch: ``sendInitialEvents`` without ``resourceVersionMatch=NotOlderThan``;
  ``resourceVersionMatch`` without ``sendInitialEvents``, other than ``NotOlderThan``, or
  with a ``continue`` token.

A watch of one object by its path (``/watch/.../pods/<name>``) whose field selector pins
anything but that name is 400.  A ``resourceVersion`` that is not a number is 400 (its
storage cannot parse it), and so is a watch asking for initial events without bookmarks
(its watch cache refuses it).  Whatever
answers a list or a watch in the hub's stead (the multiplexer, the cache while the cloud is
away) asks these first, so a client gets the answer the cloud gives.  ``limit`` of zero or
less means no limit, as there.  Pure.
"""

from __future__ import annotations

from yurthub.errors import BadRequest, DecodeError, GatewayTimeout, Gone, Invalid
from yurthub.kube import fields
from yurthub.kube.gofmt import quote
from yurthub.kube.meta import rv_int
from yurthub.kube.requestinfo import RequestInfo

EXACT = "Exact"
NOT_OLDER_THAN = "NotOlderThan"
_MATCH = "resourceVersionMatch"
_INITIAL = "sendInitialEvents"

Problem = tuple[str, str, str]  # (field, reason, what kube-apiserver says of it)


def _forbidden(field: str, detail: str) -> Problem:
    return field, "FieldValueForbidden", f"Forbidden: {detail}"


def _not_supported(value: str, supported: tuple[str, ...]) -> Problem:
    listed = ", ".join(f'"{v}"' for v in supported)
    return _MATCH, "FieldValueNotSupported", \
        f'Unsupported value: "{value}": supported values: {listed}'


def _list_problems(info: RequestInfo) -> list[Problem]:
    found = []
    match = info.resource_version_match
    if match:
        if not info.resource_version:
            found.append(_forbidden(_MATCH, "resourceVersionMatch is forbidden unless "
                                            "resourceVersion is provided"))
        if info.continue_token:
            found.append(_forbidden(_MATCH, "resourceVersionMatch is forbidden when continue "
                                            "is provided"))
        if match not in (EXACT, NOT_OLDER_THAN):
            found.append(_not_supported(match, (EXACT, NOT_OLDER_THAN, "")))
        if match == EXACT and info.resource_version == "0":
            found.append(_forbidden(_MATCH, 'resourceVersionMatch "exact" is forbidden for '
                                            'resourceVersion "0"'))
    if info.send_initial_events is not None:
        found.append(_forbidden(_INITIAL, "sendInitialEvents is forbidden for list"))
    return found


def _watch_problems(info: RequestInfo) -> list[Problem]:
    found = []
    match = info.resource_version_match
    if info.send_initial_events is not None and match != NOT_OLDER_THAN:
        found.append(_forbidden(_MATCH, "sendInitialEvents requires setting "
                                        "resourceVersionMatch to NotOlderThan"))
    if match:
        if info.send_initial_events is None:
            found.append(_forbidden(_MATCH, "resourceVersionMatch is forbidden for watch "
                                            "unless sendInitialEvents is provided"))
        if match != NOT_OLDER_THAN:
            found.append(_not_supported(match, (NOT_OLDER_THAN,)))
        if info.continue_token:
            found.append(_forbidden(_MATCH, "resourceVersionMatch is forbidden when continue "
                                            "is provided"))
    return found


def check_list_options(info: RequestInfo) -> None:
    """Raise what kube-apiserver answers for a list or watch whose options do not go
    together (422), whose resourceVersion is no number, or a watch-list without bookmarks
    (400)."""
    found = _watch_problems(info) if info.verb == "watch" else _list_problems(info)
    if found:
        said = list(dict.fromkeys(f"{field}: {body}" for field, _, body in found))
        message = said[0] if len(said) == 1 else f"[{', '.join(said)}]"
        raise Invalid(f'ListOptions.meta.k8s.io "" is invalid: {message}',
                      details={"group": "meta.k8s.io", "kind": "ListOptions",
                               "causes": [{"reason": reason, "message": body, "field": field}
                                          for field, reason, body in found]})
    if info.name and _names_another(info):
        # ListResource's check of a watch of one object (/watch/.../pods/<name>): its field
        # selector may pin that name and nothing else.
        raise BadRequest("fieldSelector metadata.name doesn't match requested name")
    rv = info.resource_version
    if rv:
        parse_resource_version(rv)
    if info.verb == "watch" and info.send_initial_events and not info.allow_watch_bookmarks:
        # Not ValidateListOptions' (old clients asked initial events by resourceVersion=0),
        # but the watch cache's, before the stream starts.
        raise BadRequest("sendInitialEvents requires setting allowWatchBookmarks to true")


def _names_another(info: RequestInfo) -> bool:
    try:
        selector = fields.parse(info.field_selector)
    except BadRequest:
        return False  # a selector that does not parse is refused as such, later
    return not selector.empty and selector.exact("metadata.name") != info.name


def parse_resource_version(text: str) -> int:
    """A resourceVersion as a number, or 400 as kube-apiserver's storage answers."""
    try:
        return rv_int(text)
    except DecodeError:
        pass
    # Go's strconv.ParseUint: digits past uint64 are out of range, anything else bad syntax.
    why = "value out of range" if text.isascii() and text.isdigit() else "invalid syntax"
    raise BadRequest(f"invalid resource version: strconv.ParseUint: parsing {quote(text)}: "
                     f"{why}")


def too_large_resource_version(rv: int, current: int) -> GatewayTimeout:
    """What kube-apiserver answers a read "not older than" ``rv`` when what it holds is at
    ``current`` (storage.NewTooLargeResourceVersionError): client-go's reflector then
    lists again from any version, which the cache answers."""
    return GatewayTimeout(f"Timeout: Too large resource version: {rv}, current: {current}",
                          details={"causes": [{"reason": "ResourceVersionTooLarge",
                                               "message": "Too large resource version"}],
                                   "retryAfterSeconds": 1})


def check_list_version(info: RequestInfo, current: int) -> None:
    """Raise unless a list of the state at ``current`` answers ``info``'s resourceVersion.

    ``""`` and ``"0"`` take any state; ``N`` (NotOlderThan) one at ``N`` or later, else
    504 "Too large resource version"; ``N`` with ``Exact`` the state at ``N`` exactly: an
    older one is 410 Expired, as kube-apiserver answers a version compacted away.  A
    continue token carries its own version: another is 400, as its storage refuses it.
    Checked after ``check_list_options``.
    """
    text = info.resource_version
    if not text or text == "0":
        return
    if info.continue_token:
        raise BadRequest("specifying resource version is not allowed when using continue")
    rv = parse_resource_version(text)
    if rv > current:
        raise too_large_resource_version(rv, current)
    if rv < current and info.resource_version_match == EXACT:
        raise Gone("The resourceVersion for the provided list is too old.")


def effective_limit(limit: int | None) -> int | None:
    """``limit`` as kube-apiserver applies it: zero or less is no limit (None)."""
    return limit if limit is not None and limit > 0 else None


__all__ = ["EXACT", "NOT_OLDER_THAN", "check_list_options", "check_list_version",
           "effective_limit", "parse_resource_version", "too_large_resource_version"]
