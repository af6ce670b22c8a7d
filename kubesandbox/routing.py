"""Request paths as kube-apiserver reads them: discovery documents or a resource request.

Pure: ``route(method, path, query)`` returns a :class:`Route` naming the verb, group, version,
resource, namespace, name and subresource, or raises NotFound/MethodNotAllowed with
kube-apiserver's messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from yurthub.errors import MethodNotAllowed, NotFound
from yurthub.kube.requestinfo import bool_option

NOT_FOUND = "the server could not find the requested resource"
NOT_ALLOWED = "the server does not allow this method on the requested resource"

# Paths that are not the Kubernetes API but that kube-apiserver answers.
HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
# Subresources of namespaces, which otherwise read as a resource inside the namespace.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class Route:
    """What a request asks for.  ``doc`` is set for discovery, ``verb`` for resources."""

    doc: str = ""            # version | api | apis | group | resources | health
    verb: str = ""           # get list watch create update patch delete deletecollection
    group: str = ""
    version: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    @property
    def is_discovery(self) -> bool:
        return bool(self.doc)


def _verb(method: str, named: bool, watch: bool, subresource: str = "") -> str:
    """``watch`` is the /watch/ path prefix, or ``?watch`` on a GET of a collection: only
    there does kube-apiserver read the parameter (its RequestInfo looks at it for a list
    only, and a GET of one object decodes GetOptions, which has no watch)."""
    if method == "POST" and subresource and not watch:
        return "create"  # a subresource one posts to: serviceaccounts/x/token, pods/x/eviction
    table = {
        ("GET", True): "get", ("GET", False): "watch" if watch else "list",
        ("HEAD", True): "get", ("HEAD", False): "list",
        ("POST", False): "create",
        ("PUT", True): "update",
        ("PATCH", True): "patch",
        ("DELETE", True): "delete", ("DELETE", False): "deletecollection",
    }
    verb = table.get((method, named))
    if verb is None:
        raise MethodNotAllowed(NOT_ALLOWED)
    if watch and verb != "watch":
        if method == "GET" and named:
            return "watch"  # a watch of one object: GET .../watch/.../pods/x
        raise MethodNotAllowed(NOT_ALLOWED)
    return verb


def route(method: str, path: str, query: Mapping[str, list[str]]) -> Route:
    """Classify a request; ``path`` is the raw (percent-encoded) path without the query."""
    if path in HEALTH_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
        return Route(doc="health")
    if path in ("/version", "/version/"):
        return Route(doc="version")
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if not parts or parts[0] not in ("api", "apis"):
        raise NotFound(NOT_FOUND)
    if parts[0] == "api":
        if len(parts) == 1:
            return Route(doc="api")
        if parts[1] != "v1":
            raise NotFound(NOT_FOUND)
        group, version, rest = "", "v1", parts[2:]
    else:
        if len(parts) == 1:
            return Route(doc="apis")
        if len(parts) == 2:
            return Route(doc="group", group=parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return Route(doc="resources", group=group, version=version)
    watch = False
    if rest[0] == "watch":  # the deprecated /watch/ prefix
        watch, rest = True, rest[1:]
        if not rest:
            raise NotFound(NOT_FOUND)
    namespace = ""
    if rest[0] == "namespaces" and group == "" and len(rest) >= 3 and \
            not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and group != "" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3 or any(p == "" for p in rest):
        raise NotFound(NOT_FOUND)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET" and not name:
        # anything but "0" or "false", even "" (the first value, as Go's url.Values.Get)
        watch = watch or bool_option(query.get("watch"))
    return Route(verb=_verb(method, bool(name), watch, subresource), group=group, version=version,
                 resource=resource, namespace=namespace, name=name, subresource=subresource)
