"""The checks kube-apiserver makes of a list's options before it reads anything.

kube-apiserver validates ``ListOptions`` (apimachinery's ``ValidateListOptions``) and answers
422 Invalid, kind ``ListOptions`` of group ``meta.k8s.io``, when ``resourceVersionMatch`` is
used without a ``resourceVersion``, with a ``continue`` token, with an unknown value, or as
``Exact`` with ``resourceVersion=0``; a ``resourceVersion`` that is not a number is 400 (its
storage cannot parse it).  Whatever answers a list in the hub's stead (the multiplexer, the
cache while the cloud is away) asks these first, so a client gets the answer the cloud gives.
``limit`` of zero or less means no limit, as there.  Pure.
"""

from __future__ import annotations

from yurthub.errors import BadRequest, DecodeError, Invalid
from yurthub.kube.meta import rv_int
from yurthub.kube.requestinfo import RequestInfo

EXACT = "Exact"
NOT_OLDER_THAN = "NotOlderThan"


def _invalid(detail: str, reason: str = "FieldValueForbidden") -> Invalid:
    field = "resourceVersionMatch"
    return Invalid(f'ListOptions.meta.k8s.io "" is invalid: {field}: {detail}',
                   details={"group": "meta.k8s.io", "kind": "ListOptions",
                            "causes": [{"reason": reason, "message": detail, "field": field}]})


def check_list_options(info: RequestInfo) -> None:
    """Raise what kube-apiserver answers for a list whose options do not go together."""
    match, rv = info.resource_version_match, info.resource_version
    if match:
        if match not in (EXACT, NOT_OLDER_THAN):
            raise _invalid(f'Unsupported value: "{match}": supported values: "{EXACT}", '
                           f'"{NOT_OLDER_THAN}"', "FieldValueNotSupported")
        if not rv:
            raise _invalid("Forbidden: resourceVersionMatch is forbidden unless "
                           "resourceVersion is provided")
        if info.continue_token:
            raise _invalid("Forbidden: resourceVersionMatch is forbidden when continue is "
                           "provided")
        if match == EXACT and rv == "0":
            raise _invalid('Forbidden: resourceVersionMatch "exact" is forbidden for '
                           'resourceVersion "0"')
    if rv:
        parse_resource_version(rv)


def parse_resource_version(text: str) -> int:
    """A resourceVersion as a number, or 400 as kube-apiserver's storage answers."""
    try:
        return rv_int(text)
    except DecodeError:
        pass
    raise BadRequest(f'invalid resource version: strconv.ParseUint: parsing "{text}": '
                     "invalid syntax")


def effective_limit(limit: int | None) -> int | None:
    """``limit`` as kube-apiserver applies it: zero or less is no limit (None)."""
    return limit if limit is not None and limit > 0 else None


__all__ = ["EXACT", "NOT_OLDER_THAN", "check_list_options", "effective_limit",
           "parse_resource_version"]
