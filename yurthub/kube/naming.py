"""An object's type, name and namespace against the request's: kube-apiserver's checks and
words.

A write names its object twice, in the URL and in the body; kube-apiserver answers ``400``
when they disagree (``checkName`` and ``EnsureObjectNamespaceMatchesRequestNamespace`` in
k8s.io/apiserver), and ``400`` for a name that cannot be a path segment
(``IsValidPathSegmentName``).  The body's ``apiVersion`` and ``kind`` must be the
resource's too (its decoder: ``400`` for a Pod sent to the leases endpoint).  The local proxy
applies the same rules offline, so an offline write can never land on another object than
the one its URL names, nor store another kind than its collection holds.
"""

from __future__ import annotations

from typing import Any

from yurthub.errors import BadRequest


def path_segment_problems(name: str) -> list[str]:
    """Why ``name`` cannot be a path segment (empty list: it can), in apimachinery's words."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def check_path_name(name: str) -> None:
    """400 ``Name parameter invalid`` for a request name that is not a valid path segment."""
    problems = path_segment_problems(name)
    if problems:
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        raise BadRequest(f"Name parameter invalid: {quoted}: {';'.join(problems)}")


def _metadata(obj: Any) -> dict[str, Any]:
    md = obj.get("metadata") if isinstance(obj, dict) else None
    if md is None:
        return {}
    if not isinstance(md, dict):
        raise BadRequest("the object's metadata is not a JSON object")
    return md


def _string(md: dict[str, Any], key: str) -> str:
    value = md.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"metadata.{key} of the object is not a string")
    return value


def check_type(obj: Any, group_version: str, kind: str | None) -> None:
    """kube-apiserver's decoding of a write's body for a resource of ``group_version`` and
    ``kind`` (None: not known, only the version is checked): an ``apiVersion`` or ``kind``
    the body leaves out is the resource's, one it gives must be the resource's (400)."""
    if not isinstance(obj, dict):
        return
    given_version, given_kind = obj.get("apiVersion"), obj.get("kind")
    for key, value in (("apiVersion", given_version), ("kind", given_kind)):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{key} of the object is not a string")
    version = given_version or group_version
    body_kind = given_kind or kind
    if version != group_version:
        raise BadRequest(f"the API version in the data ({version}) does not match the "
                         f"expected API version ({group_version})")
    if kind is not None and body_kind != kind:
        raise BadRequest(f'{body_kind} in version "{version.rpartition("/")[2]}" cannot be '
                         f'handled as a {kind}: no kind "{body_kind}" is registered for '
                         f'version "{version}"')


def check_name(obj: Any, name: str, namespace: str) -> None:
    """kube-apiserver's ``checkName``: the object's name must be the URL's, and its namespace,
    when both are given, the request's."""
    md = _metadata(obj)
    obj_name, obj_ns = _string(md, "name"), _string(md, "namespace")
    if obj_name != name:
        raise BadRequest(f"the name of the object ({obj_name}) does not match the name on the "
                         f"URL ({name})")
    if namespace and obj_ns and obj_ns != namespace:
        raise BadRequest(f"the namespace of the object ({obj_ns}) does not match the namespace "
                         f"on the request ({namespace})")


def ensure_namespace(obj: dict[str, Any], namespace: str) -> None:
    """``EnsureObjectNamespaceMatchesRequestNamespace``: an unset namespace takes the
    request's, a cluster-scoped request (``""``) clears it, a different one is 400."""
    md = _metadata(obj)
    obj_ns = _string(md, "namespace")
    if obj_ns == namespace:
        return
    if obj_ns == "" or namespace == "":
        if namespace:
            obj.setdefault("metadata", md)["namespace"] = namespace
        else:
            md.pop("namespace", None)
        return
    raise BadRequest("the namespace of the provided object does not match the namespace sent "
                     "on the request")
