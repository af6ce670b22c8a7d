"""Cache keys: validated path segments of the cache tree, and the collection they name.

Every segment that becomes part of a path under the cache root is checked here, before
anything touches the disk: a component (User-Agent name), a group/version/resource, a
namespace and an object name.  Nothing that could be ``..``, contain a ``/`` or a NUL, or
begin with our bookkeeping prefixes ``.`` and ``_`` gets through.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from yurthub.errors import InvalidKeyError
from yurthub.kube.validation import (
    is_component,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
)

# Names beginning with these are ours: "." transient (swept at startup), "_" bookkeeping.
TRANSIENT_PREFIX = "."
BOOKKEEPING_PREFIX = "_"
CORE_GROUP_DIR = "core"
NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs)

# A peer that is not a trusted user has "@<uid>" after its User-Agent's name, a pod on
# 10268 "@pod" (access/keys.py): "@" is never part of a name, so they cannot collide.
_UID_SUFFIX = re.compile(r"@([0-9]{1,10}|pod)")
_NONRESOURCE_MAX = 1024


def _check(kind: str, value: object, valid: Callable[[str], bool], max_len: int) -> str:
    if not isinstance(value, str):
        raise InvalidKeyError(f"{kind} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidKeyError(f"{kind} is empty")
    if len(value) > max_len:
        raise InvalidKeyError(f"{kind} {value[:40]!r}... is longer than {max_len} characters")
    if not valid(value):
        raise InvalidKeyError(f"{kind} {value!r} is not a valid name")
    return value


def check_component(value: str) -> str:
    """A component: the User-Agent up to the first ``/`` (``[a-z0-9][a-z0-9._-]*``), with
    ``@<uid>`` after it for a peer that is not a trusted user (``kubelet@1000``), ``@pod``
    for a pod on 10268 (``kube-proxy@pod``)."""
    return _check("component", value, _component_key, 253)


def _component_key(value: str) -> bool:
    name, at, uid = value.partition("@")
    return is_component(name) and (not at or bool(_UID_SUFFIX.fullmatch(at + uid)))


def check_namespace(value: str) -> str:
    """A namespace: a DNS-1123 label of at most 63 characters."""
    return _check("namespace", value, is_dns1123_label, 63)


def check_name(value: str) -> str:
    """An object name: a DNS-1123 subdomain of at most 253 characters."""
    return _check("name", value, is_dns1123_subdomain, 253)


def validate_name(namespace: str, name: str) -> None:
    """Check an object's namespace (``""`` for cluster-scoped) and name; InvalidKeyError."""
    if namespace != "":
        check_namespace(namespace)
    check_name(name)


def is_bookkeeping(name: str) -> bool:
    """True for names that are ours, never a Kubernetes object or namespace."""
    return name.startswith((TRANSIENT_PREFIX, BOOKKEEPING_PREFIX))


@dataclass(frozen=True)
class CollectionKey:
    """One cached collection: the objects of one resource as one component sees them.

    ``group`` is ``""`` for the legacy core group (``"core"`` is accepted and normalized to
    ``""``).  Raises InvalidKeyError on construction when a segment is not valid.
    """

    component: str
    group: str
    version: str
    resource: str
    namespaced: bool

    def __post_init__(self) -> None:
        check_component(self.component)
        _check("resource", self.resource, is_dns1123_label, 63)
        # An API version is a DNS-1035 label (v1, v1beta1, v2alpha1).
        _check("version", self.version, is_dns1035_label, 63)
        if self.group == CORE_GROUP_DIR:
            object.__setattr__(self, "group", "")
        if self.group != "":
            _check("group", self.group, is_dns1123_subdomain, 253)
        if not isinstance(self.namespaced, bool):
            raise InvalidKeyError("namespaced must be a bool")
        if len(self.dirname.encode()) > NAME_MAX:
            raise InvalidKeyError(f"collection directory name {self.dirname!r} is too long")

    @property
    def dirname(self) -> str:
        """The collection's directory name: ``<resource>.<version>.<group|core>``."""
        return f"{self.resource}.{self.version}.{self.group or CORE_GROUP_DIR}"

    @property
    def path(self) -> tuple[str, str]:
        """(component, dirname): where the collection lives, and its identity on disk."""
        return (self.component, self.dirname)

    @classmethod
    def from_dirname(cls, component: str, dirname: str, namespaced: bool) -> CollectionKey:
        """The key whose directory is ``<component>/<dirname>``; InvalidKeyError if none."""
        parts = dirname.split(".", 2)
        if len(parts) != 3:
            raise InvalidKeyError(f"{dirname!r} is not <resource>.<version>.<group>")
        resource, version, group = parts
        return cls(component, group, version, resource, namespaced)

    def check_object(self, namespace: str, name: str) -> None:
        """Validate an object's namespace and name for this collection's scope."""
        if self.namespaced:
            check_namespace(namespace)
        elif namespace != "":
            raise InvalidKeyError(
                f"{self.dirname} is cluster-scoped: namespace must be empty, not {namespace!r}")
        check_name(name)

    def object_relpath(self, namespace: str, name: str) -> str:
        """The object's path relative to the cache root, checked not to leave it."""
        self.check_object(namespace, name)
        parts = [self.component, self.dirname] + ([namespace] if self.namespaced else []) + [name]
        rel = "/".join(parts)
        # Defence in depth: the segments are validated, and the joined path must agree.
        if posixpath.normpath(rel) != rel or rel.startswith("/") or ".." in rel.split("/"):
            raise InvalidKeyError(f"{rel!r} would leave the cache root")
        return rel

    def __str__(self) -> str:
        return f"{self.component}/{self.dirname}"


def nonresource_filename(path: str) -> str:
    """The file name under ``_nonresource/`` of a non-resource URL path such as ``/version``.

    The path is percent-encoded with no safe characters, so the name never contains a ``/``
    and always begins with ``%2F``; InvalidKeyError for paths that are not absolute, contain
    a NUL, a query or too many bytes.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidKeyError(f"non-resource path {path!r} must begin with /")
    if "\0" in path or "?" in path or "#" in path or len(path) > _NONRESOURCE_MAX:
        raise InvalidKeyError(f"non-resource path {path[:80]!r} is not a plain URL path")
    name = quote(path, safe="")
    if len(name) > NAME_MAX:
        raise InvalidKeyError(f"non-resource path {path[:80]!r} is too long")
    return name


def nonresource_path(filename: str) -> str:
    """Inverse of nonresource_filename."""
    return unquote(filename)
