"""RequestInfo: what a request asks of the API, worked out exactly as kube-apiserver does it.

Cache keys, cacheability and the offline reader all start here. So this module follows
``RequestInfoFactory.NewRequestInfo`` (k8s.io/apiserver, endpoints/request) case by case. The
few places where it deliberately differs are listed in ``parse_request_info``'s docstring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from yurthub.errors import BadRequest
from yurthub.kube import fields
from yurthub.kube.gofmt import quote

API_PREFIXES = frozenset({"api", "apis"})
GROUPLESS_API_PREFIXES = frozenset({"api"})
# Deprecated verbs given as a path prefix: /api/v1/watch/..., /api/v1/proxy/...
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
# Subresources of a namespace; anything else after /namespaces/<ns>/ is a namespaced resource.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {
    "POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
    "DELETE": "delete",
}
# Verbs for which kube-apiserver decodes ListOptions and refuses malformed ones.
_LIST_VERBS = frozenset({"list", "watch", "deletecollection"})

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class RequestInfo:
    """One request as kube-apiserver's RequestInfo sees it, plus the query options we use.

    ``path`` is the path exactly as it was given (still percent-encoded). Every other string
    here is decoded. For non-resource requests only ``path`` and ``verb`` (the lower-cased
    HTTP method) are set.
    """

    is_resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    # resource/name/subresource/...: the parts after the namespace, as kube keeps them.
    parts: tuple[str, ...] = ()
    label_selector: str = ""
    field_selector: str = ""
    resource_version: str = ""
    resource_version_match: str = ""
    limit: int | None = None
    continue_token: str = ""
    timeout_seconds: int | None = None
    allow_watch_bookmarks: bool = False
    send_initial_events: bool | None = None
    dry_run: tuple[str, ...] = ()
    # The HTTP method, upper-cased. kube's RequestInfo does not keep it, but a HEAD has no
    # body to cache even though its verb is "get".
    method: str = ""
    # The path scopes the resource to ``namespace`` (``/namespaces/<ns>/<resource>...``).
    # kube's RequestInfo does not keep it: a Namespace's own path, ``/namespaces/<name>``,
    # gets the namespace <name> too, and a cluster-scoped resource under a namespace is a
    # path kube-apiserver does not serve.
    in_namespace: bool = False

    @property
    def gvr(self) -> tuple[str, str, str]:
        """(group, version, resource); the group is ``""`` for the legacy core group."""
        return self.api_group, self.api_version, self.resource

    @property
    def gvr_key(self) -> str:
        """``group/version/resource`` (``/v1/services`` for the core group), as settings
        name resources."""
        return f"{self.api_group}/{self.api_version}/{self.resource}"

    @property
    def group_version(self) -> str:
        return f"{self.api_group}/{self.api_version}" if self.api_group else self.api_version


def component_from_user_agent(user_agent: str | None) -> str:
    """The cache component of a client: its User-Agent, lower-cased, up to the first ``/``.

    ``kubelet/v1.30.1 (linux/amd64) kubernetes/abc`` gives ``kubelet``. A request without a
    User-Agent has no component (``""``) and is never cached, as in YurtHub.
    """
    if not user_agent:
        return ""
    return user_agent.lower().split("/", 1)[0]


def agent_name(component: str) -> str:
    """The User-Agent's name in a component key (``kubelet@1000``, ``kube-proxy@pod`` ->
    ``kubelet``, ``kube-proxy``): what cache agents and the response filters go by."""
    return component.partition("@")[0]


def parse_query(query: str) -> dict[str, list[str]]:
    """Parse a query string the way Go's ``url.ParseQuery`` does for kube-apiserver.

    Pairs are split on ``&``. A pair that contains ``;`` or a bad ``%`` escape is dropped
    (Go skips it and reports an error that kube-apiserver ignores). ``+`` means a space.
    """
    values: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        if _BAD_ESCAPE.search(pair):
            continue
        key = unquote(key.replace("+", " "), errors="replace")
        values.setdefault(key, []).append(unquote(value.replace("+", " "), errors="replace"))
    return values


def _path_segments(path: str) -> list[str]:
    """Split on ``/`` first, then percent-decode each segment exactly once.

    kube-apiserver splits the already-decoded path, so an escaped ``%2F`` would start a new
    segment there. Here it stays inside its segment as ``/``, and key validation refuses it
    later. That way an encoded slash can never move a request onto another cache key.
    """
    trimmed = path.strip("/")
    if not trimmed:
        return []
    segments = []
    for raw in trimmed.split("/"):
        if "%" not in raw:
            segments.append(raw)
            continue
        if _BAD_ESCAPE.search(raw):
            raise BadRequest(f"invalid URL escape in path segment {raw!r}")
        try:
            segments.append(unquote(raw, errors="strict"))
        except UnicodeDecodeError as e:
            raise BadRequest(f"path segment {raw!r} is not UTF-8") from e
    return segments


def bool_option(values: list[str] | None) -> bool:
    """A boolean query parameter's values as kube-apiserver reads them
    (runtime.Convert_Slice_string_To_bool): anything but "0" or "false" is true, even ""."""
    if not values:
        return False
    return values[0] != "0" and values[0].lower() != "false"


def parse_int64(text: str) -> int:
    """Go's ``strconv.ParseInt(text, 10, 64)``, as kube-apiserver reads an integer option
    (``limit``, ``timeoutSeconds``): BadRequest worded as its 400 words it."""
    if _INT64.fullmatch(text):
        value = int(text)
        if -_INT64_MAX - 1 <= value <= _INT64_MAX:
            return value
        why = "value out of range"
    else:
        why = "invalid syntax"
    raise BadRequest(f"strconv.ParseInt: parsing {quote(text)}: {why}")


def _int_option(query: dict[str, list[str]], key: str, strict: bool) -> int | None:
    # kube-apiserver converts the first value whenever the key is there at all, so an
    # empty one ("limit=") is a 400 too, not "no limit".
    values = query.get(key)
    if not values:
        return None
    try:
        return parse_int64(values[0])
    except BadRequest:
        if strict:
            raise
        return None


def exact_name_from_field_selector(selector: str) -> str | None:
    """The name a field selector pins with ``metadata.name=X`` (or ``==``), or None.

    This mirrors ``fields.ParseSelector(s).RequiresExactMatch("metadata.name")``. Terms are
    sorted before the first match wins. A selector that fails to parse pins nothing, because
    kube-apiserver then drops the whole ListOptions.
    """
    try:
        return fields.parse(selector).exact("metadata.name")
    except BadRequest:
        return None


def _is_path_segment_name(name: str) -> bool:
    # validation/path.IsValidPathSegmentName: a name that can be used as a URL path segment.
    return name not in (".", "..") and "/" not in name and "%" not in name


def parse_request_info(method: str, path: str, query: str) -> RequestInfo:
    """Classify a request exactly as kube-apiserver's ``NewRequestInfo`` does.

    ``path`` must be the raw request path, still percent-encoded (werkzeug's ``RAW_URI`` or
    ``REQUEST_URI`` without the query), and ``query`` the raw query string. The differences
    from kube-apiserver, all on purpose:

    - each path segment is decoded after splitting, so ``%2F`` stays inside its segment
      (see ``_path_segments``);
    - a bad ``%`` escape in the path, a path that is not UTF-8, or ``/api/v1/watch`` with
      nothing after it raises ``BadRequest``;
    - a malformed ``limit`` or ``timeoutSeconds`` raises ``BadRequest`` for list, watch and
      deletecollection, where kube-apiserver rejects it too. Elsewhere it is ignored, as
      kube-apiserver ignores it. An empty value is malformed there too;
    - ``labelSelector`` is not validated here. kube-apiserver would then skip the
      ``metadata.name`` field selector below, but it also rejects the whole request with
      400, and nothing is cached from a 400.
    """
    verb, method = method.lower(), method.upper()
    q = parse_query(query)
    segments = _path_segments(path)
    if len(segments) < 3 or segments[0] not in API_PREFIXES:
        return RequestInfo(False, path, verb, method=method)
    prefix, rest = segments[0], segments[1:]
    group = ""
    if prefix not in GROUPLESS_API_PREFIXES:
        if len(rest) < 3:
            return RequestInfo(False, path, verb, method=method)  # /apis/<g>/<v>: discovery
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]

    via_path = rest[0] in _SPECIAL_VERBS
    if via_path:
        if len(rest) < 2:
            raise BadRequest(f"unable to determine kind and namespace from url {path!r}")
        verb, rest = rest[0], rest[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")

    namespace = ""
    in_namespace = False
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
            in_namespace = True
    parts = tuple(rest)
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = ""
    if len(parts) >= 3 and verb not in _SPECIAL_VERBS_NO_SUBRESOURCES:
        subresource = parts[2]

    field_selector = (q.get("fieldSelector") or [""])[0]
    if not name and verb == "get":
        verb = "watch" if bool_option(q.get("watch")) else "list"
        pinned = exact_name_from_field_selector(field_selector)
        if pinned and _is_path_segment_name(pinned):
            name = pinned
    if not name and verb == "delete":
        verb = "deletecollection"

    strict = verb in _LIST_VERBS
    # in ListOptions' order: the first that does not decode is the one the 400 names
    timeout_seconds = _int_option(q, "timeoutSeconds", strict)
    limit = _int_option(q, "limit", strict)
    send_initial = q.get("sendInitialEvents")
    return RequestInfo(
        is_resource_request=True, path=path, verb=verb, api_prefix=prefix, api_group=group,
        api_version=version, namespace=namespace, resource=resource, subresource=subresource,
        name=name, parts=parts,
        label_selector=(q.get("labelSelector") or [""])[0],
        field_selector=field_selector,
        resource_version=(q.get("resourceVersion") or [""])[0],
        resource_version_match=(q.get("resourceVersionMatch") or [""])[0],
        limit=limit,
        continue_token=(q.get("continue") or [""])[0],
        timeout_seconds=timeout_seconds,
        allow_watch_bookmarks=bool_option(q.get("allowWatchBookmarks")),
        send_initial_events=bool_option(send_initial) if send_initial else None,
        dry_run=tuple(q.get("dryRun", ())),  # every value, "" too (kube refuses it: 422)
        method=method, in_namespace=in_namespace,
    )
