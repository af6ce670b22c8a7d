"""``metav1.Status`` bodies: the one place where an ApiError becomes what kube-apiserver sends."""

from __future__ import annotations

import json
from typing import Any

from yurthub.errors import ApiError

STATUS_CONTENT_TYPE = "application/json"


def status_object(err: ApiError) -> dict[str, Any]:
    """The ``metav1.Status`` for ``err``, shaped exactly as kube-apiserver serializes it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": dict(err.list_meta),
        "status": "Failure",
        "message": err.message,
    }
    if err.reason:  # metav1.Status omits an empty (unknown) reason
        body["reason"] = err.reason
    if err.details:
        body["details"] = err.details
    body["code"] = err.code
    return body


def status_bytes(err: ApiError) -> bytes:
    return json.dumps(status_object(err), separators=(",", ":")).encode() + b"\n"


def success_status(details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Status kube-apiserver answers to a successful delete of a collection or subresource."""
    body: dict[str, Any] = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
    }
    if details:
        body["details"] = details
    return body


def resource_details(name: str, group: str, resource: str) -> dict[str, Any]:
    """``StatusDetails`` naming an object the way kube-apiserver's NewNotFound does."""
    return {"name": name, "group": group, "kind": resource}


def not_found_message(group: str, resource: str, name: str) -> str:
    qualified = f"{resource}.{group}" if group else resource
    return f'{qualified} "{name}" not found'


def is_status(obj: Any) -> bool:
    """True when ``obj`` is a decoded ``metav1.Status`` (never cached, never an object)."""
    return isinstance(obj, dict) and obj.get("kind") == "Status" and obj.get("apiVersion") == "v1"
