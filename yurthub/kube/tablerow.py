"""A Table row and the printer that makes rows, and reading an object's fields as Go would.

A printer reads an object that came out of JSON: a field may be absent, null, or (in an object
no apiserver wrote) of another type.  Go's decoder would have left the zero value in all
those cases, so these helpers return ``""``, ``0``, ``{}`` or ``[]`` instead of raising:
a Table is printed for whatever the cache holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yurthub.kube.columns import Column


@dataclass
class Row:
    """One ``metav1.TableRow``: its cells, and the row conditions (finished pods have one)."""

    cells: list[Any]
    conditions: list[dict[str, Any]] | None = None
    object: dict[str, Any] | None = field(default=None, repr=False)

    def to_json(self, include: str, api_version: str) -> dict[str, Any]:
        """The row as kube-apiserver encodes it, the object as ``includeObject`` asks.

        ``api_version`` is the Table's own (``meta.k8s.io/v1`` or ``v1beta1``): the
        PartialObjectMetadata of a row is in the same version.
        """
        out: dict[str, Any] = {"cells": self.cells}
        if self.conditions:
            out["conditions"] = self.conditions
        out["object"] = embedded_object(self.object, include, api_version)
        return out


def embedded_object(obj: dict[str, Any] | None, include: str, api_version: str
                    ) -> dict[str, Any] | None:
    """The ``object`` of a row: the whole object, its PartialObjectMetadata, or nothing."""
    if obj is None or include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version,
            "metadata": as_dict(obj.get("metadata"))}


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any) -> int:
    """An integer field; a float that is a whole number counts (JSON does not tell them apart)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


RowFunc = Callable[[dict[str, Any], bool, float], Row]
# A list printer's order: its sort key for the objects of one list (most print them as listed).
OrderFunc = Callable[[dict[str, Any]], Any]
# printers.go's loadBalancerWidth: a row that is not wide clips load-balancer addresses to it.
LOAD_BALANCER_WIDTH = 16


@dataclass(frozen=True)
class Printer:
    """The columns a printer registers and the function that prints a row."""

    columns: tuple[Column, ...]
    row: RowFunc
    order: OrderFunc | None = None


def format_labels(labels: Any) -> str:
    """apimachinery's ``labels.FormatLabels``: ``k=v`` sorted by key, or ``<none>``."""
    items = as_dict(labels)
    text = ",".join(f"{k}={as_str(items[k])}" for k in sorted(items))
    return text or "<none>"
