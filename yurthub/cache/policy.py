"""What is cached: YurtHub's ``CanCacheFor``, tightened where caching would serve a lie.

Pure functions of the request. The cache manager asks ``cacheable`` before it tees a
response, and the offline reader asks ``cache_resource`` where a request's objects live.
Each refusal carries a short reason from a fixed set (``REASONS``), fit for log lines and
metric labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from yurthub.kube.accept import META_GROUP, transform
from yurthub.kube.requestinfo import RequestInfo, agent_name

CACHED_VERBS = frozenset({"get", "list", "watch", "create", "update", "patch"})
CACHED_SUBRESOURCES = frozenset({"", "status"})
# Reviews, tokens, bindings and evictions are one-shot answers about a request, not objects
# with a state that a client could read back offline.
NEVER_CACHED = frozenset({
    "certificatesigningrequests", "subjectaccessreviews", "tokenreviews",
    "selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews",
    "localsubjectaccessreviews", "tokenrequests", "bindings", "evictions",
})
PARTIAL_RESOURCE = "partialobjectmetadatas"

OK = "cacheable"
REASONS = (
    OK, "no-component", "not-a-cache-agent", "non-resource", "verb", "subresource",
    "resource", "dry-run", "table", "historical-list",
)


@dataclass(frozen=True)
class Decision:
    """Whether a response may be cached. ``reason`` is one of ``REASONS``."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def _no(reason: str) -> Decision:
    return Decision(False, reason)


def is_historical_list(info: RequestInfo) -> bool:
    """True for a list that asks for a past snapshot rather than the current state.

    ``resourceVersionMatch=Exact`` does, and so does the legacy form: a resourceVersion
    other than "0" together with ``limit``, which kube-apiserver serves as Exact (KEP-2523).
    Unset, "0" or ``NotOlderThan`` are current state, and so are ``continue`` pages, which
    carry on a list that was itself current. An unknown match is treated as historical.
    """
    if info.verb != "list" or info.continue_token:
        return False
    match, rv = info.resource_version_match, info.resource_version
    if match:
        return match != "NotOlderThan"
    return rv not in ("", "0") and bool(info.limit and info.limit > 0)


def cacheable(info: RequestInfo, component: str, agents: frozenset[str],
              accept: str | None) -> Decision:
    """May the response to this request be cached (and later served offline)?

    YurtHub's rules: a cache agent (``*`` in ``agents`` admits every component), a resource
    request, no delete/deletecollection/proxy, no subresource other than ``status``, no
    CSRs or SubjectAccessReviews. Added here: HEAD (no body); other reviews, tokens, bindings
    and evictions;
    dry runs (nothing was stored); ``as=Table`` asked for (what the server sent decides:
    the cache stores a Table's rows' whole objects, see cache/list_handler.py); and lists of a
    historical snapshot (see ``is_historical_list``).
    """
    if not component:
        return _no("no-component")
    # "kubelet@1000" is kubelet's name said by user 1000: the agent list names the agent.
    if agent_name(component) not in agents and "*" not in agents:
        return _no("not-a-cache-agent")
    if not info.is_resource_request:
        return _no("non-resource")
    if info.verb not in CACHED_VERBS or info.method == "HEAD":
        return _no("verb")
    if info.subresource not in CACHED_SUBRESOURCES:
        return _no("subresource")
    if info.resource in NEVER_CACHED:
        return _no("resource")
    if info.dry_run:
        return _no("dry-run")
    t = transform(accept)
    if t is not None and t.is_table:
        return _no("table")
    if is_historical_list(info):
        return _no("historical-list")
    return Decision(True, OK)


def cache_resource(info: RequestInfo, accept: str | None) -> tuple[str, str, str]:
    """(group, version, resource) of the collection that a request's objects are filed under.

    Normally it is the request's own. A PartialObjectMetadata(List) response (``as=`` in
    Accept) is filed apart from the full objects, as in YurtHub. YurtHub nests it under an
    extra component directory ``<comp>/partialobjectmetadatas.<v>.meta.k8s.io/``. We keep the
    tree one level deep. The conversion goes into the group instead:
    ``<group|core>.partialobjectmetadatas.<v>.meta.k8s.io``. So the metadata of pods lives in
    ``pods.v1.core.partialobjectmetadatas.v1.meta.k8s.io``. Every segment stays a valid DNS
    name, and the metadata of different resources (or of the same resource in two meta
    versions) never share a directory. Groups under ``k8s.io`` are reserved to Kubernetes itself.
    """
    t = transform(accept)
    if t is None or not t.is_partial_metadata:
        return info.api_group, info.api_version, info.resource
    group = f"{info.api_group or 'core'}.{PARTIAL_RESOURCE}.{t.version}.{META_GROUP}"
    return group, info.api_version, info.resource
