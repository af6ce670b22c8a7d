"""``meta.k8s.io`` Tables, as kube-apiserver answers ``Accept: application/json;as=Table``.

A Table is written as a stream: the head (kind, metadata, column definitions), then one row
per object as the objects are read, then the tail.  Which printer makes the rows:

- a built-in printer (``yurthub.kube.printers``) for the resources it knows, including
  ``DEFAULT`` for the built-in resources kube-apiserver prints with its default convertor;
- for a custom resource, its CRD's ``additionalPrinterColumns`` (Name first, then each
  column's JSONPath evaluated on the object; a CRD without columns gets Name and Age), as
  kube-apiserver's apiextensions table convertor does;
- otherwise ``rest.NewDefaultTableConvertor``'s Name and Created At (``DEFAULT``) or, where
  the caller cannot know the resource's real printer, Name and Age (``NAME_AGE``, what
  kubectl prints when it gets no Table).

Each row embeds the object as ``includeObject`` asks (default: its PartialObjectMetadata).
A watch asking for Tables gets one Table per event, the column definitions only in the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from yurthub.errors import BadRequest, JSONPathError
from yurthub.kube import columns as C
from yurthub.kube import gofmt
from yurthub.kube.humantime import (
    INVALID,
    UNKNOWN,
    human_duration,
    now_ns,
    parse_rfc3339,
    since,
)
from yurthub.kube.jsonpath import JSONPath
from yurthub.kube.labels import go_quote
from yurthub.kube.printers import DEFAULT as DEFAULT  # re-exported: the sandbox's fallback
from yurthub.kube.printers import Printer, printer_for
from yurthub.kube.tablerow import Row, as_dict, as_list, as_str

INCLUDE_OBJECT = ("Metadata", "Object", "None")
TABLE_API_VERSIONS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
        "description": C.DESCRIPTIONS["ObjectMeta.creationTimestamp"]}


def is_table(obj: Any) -> bool:
    """True for a decoded ``meta.k8s.io`` Table (kube-apiserver labels it plain JSON)."""
    return isinstance(obj, Mapping) and obj.get("kind") == "Table" \
        and obj.get("apiVersion") in TABLE_API_VERSIONS


def include_object(query: Mapping[str, list[str]]) -> str:
    """The ``includeObject`` of a Table request (``Metadata`` when absent); BadRequest else."""
    values = query.get("includeObject") or [""]
    value = values[0]
    if value == "":
        return "Metadata"
    if value in INCLUDE_OBJECT:
        return value
    raise BadRequest("Unable to convert to Table as requested: includeObject: Invalid value: "
                     f"{go_quote(value)}: must be 'Metadata', 'Object', 'None', or empty")


def _name(obj: dict[str, Any]) -> str:
    return as_str(as_dict(obj.get("metadata")).get("name"))


def _name_age(obj: dict[str, Any], wide: bool, now: float) -> Row:
    return Row([_name(obj), since(as_dict(obj.get("metadata")).get("creationTimestamp"), now)])


NAME_AGE = Printer((C.NAME, C.Column("Age", "date", _AGE["description"])), _name_age)


# -- custom resources ---------------------------------------------------------------------

def cell_for_json_value(column_type: str, value: Any, now: float) -> Any:
    """The cell of a non-string CRD column (apiextensions' ``cellForJSONValue``)."""
    if value is None:
        return None
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
    elif column_type == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif column_type == "boolean":
        return value if isinstance(value, bool) else None
    elif column_type == "string":
        return value if isinstance(value, str) else None
    elif column_type == "date" and isinstance(value, str):
        if value in ("", "null"):
            return UNKNOWN
        try:
            ts = parse_rfc3339(value)
        except ValueError:
            return INVALID
        return UNKNOWN if ts is None else human_duration(now_ns(now) - ts)
    return None


def crd_printer(crd: Mapping[str, Any], version: str) -> Printer:
    """The printer kube-apiserver builds from a CRD's columns for one of its versions.

    A column whose JSONPath does not parse ends the list there, as in kube-apiserver (which
    logs it and serves the columns before it).
    """
    spec = as_dict(crd.get("spec"))
    cols: list[Any] = []
    for v in map(as_dict, as_list(spec.get("versions"))):
        if v.get("name") == version:
            cols = [c for c in as_list(v.get("additionalPrinterColumns")) if isinstance(c, dict)]
    headers = [C.NAME]
    paths: list[JSONPath] = []
    for col in cols or [_AGE]:
        path = as_str(col.get("jsonPath"))
        try:
            paths.append(JSONPath("{" + path + "}", allow_missing_keys=True))
        except JSONPathError:
            break
        desc = as_str(col.get("description")) or \
            f"Custom resource definition column (in JSONPath format): {path}"
        priority = col.get("priority")
        headers.append(C.Column(as_str(col.get("name")), as_str(col.get("type")), desc,
                                as_str(col.get("format")),
                                priority if isinstance(priority, int) else 0))
    types = [h.type for h in headers[1:]]

    def row(obj: dict[str, Any], wide: bool, now: float) -> Row:
        cells: list[Any] = [_name(obj)]
        for path, ctype in zip(paths, types, strict=True):
            try:
                found = path.find(obj)
            except JSONPathError:
                cells.append(None)
                continue
            if not found or not found[0]:
                cells.append(None)
                continue
            value = found[0][0]
            if ctype == "string":
                cells.append("<no value>" if value is None else gofmt.sprint(value))
            else:
                cells.append(cell_for_json_value(ctype, value, now))
        return Row(cells)
    return Printer(tuple(headers), row)


def printer(group: str, resource: str, version: str, crd: Mapping[str, Any] | None,
            fallback: Printer = NAME_AGE) -> Printer:
    """The printer for a resource: built-in (kube-apiserver's default convertor's for the
    built-in resources it prints that way: ``printers.DEFAULT_CONVERTOR``), from its CRD,
    or ``fallback``."""
    built_in = printer_for(group, resource)
    if built_in is not None:
        return built_in
    if crd is not None:
        return crd_printer(crd, version)
    return fallback


# -- encoding -----------------------------------------------------------------------------

def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class TableWriter:
    """Writes the Tables of one response with one printer, include policy and clock."""

    def __init__(self, printer: Printer, *, include: str = "Metadata",
                 api_version: str = "meta.k8s.io/v1", now: float) -> None:
        self.printer = printer
        self.include = include
        self.api_version = api_version
        self.now = now

    def head(self, meta: Mapping[str, Any], *, headers: bool = True) -> bytes:
        """Everything up to the first row: ``...,"rows":[``."""
        defs = [c.to_json() for c in self.printer.columns] if headers else None
        head = {"kind": "Table", "apiVersion": self.api_version, "metadata": dict(meta),
                "columnDefinitions": defs}
        return _dumps(head)[:-1] + b',"rows":['

    def row(self, obj: dict[str, Any]) -> bytes:
        r = self.printer.row(obj, True, self.now)
        r.object = obj
        return _dumps(r.to_json(self.include, self.api_version))

    def table(self, objects: Iterable[dict[str, Any]], meta: Mapping[str, Any], *,
              headers: bool = True) -> Iterator[bytes]:
        """The whole Table, in pieces: its head, each row as its object comes (in the
        printer's order when it has one, as kube-apiserver's list printer sorts), its tail."""
        yield self.head(meta, headers=headers)
        if self.printer.order is not None:
            objects = sorted(objects, key=self.printer.order)
        for i, obj in enumerate(objects):
            yield self.row(obj) if i == 0 else b"," + self.row(obj)
        yield b"]}"

    def watch_event(self, event_type: str, obj: dict[str, Any], *, headers: bool) -> bytes:
        """A watch event whose object is a one-row Table (a Status passes through as is)."""
        if obj.get("kind") == "Status" and obj.get("apiVersion") == "v1":
            body = _dumps(obj)
        else:
            rv = as_str(as_dict(obj.get("metadata")).get("resourceVersion"))
            body = b"".join(self.table([obj], {"resourceVersion": rv} if rv else {},
                                       headers=headers))
        return b'{"type":' + _dumps(event_type) + b',"object":' + body + b"}\n"


def list_meta(resource_version: str, continue_token: str = "",
              remaining: int | None = None) -> dict[str, Any]:
    """A Table's ``metadata`` for a list (ListMeta: every field omitted when empty)."""
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    return meta


def row_object(row: object) -> tuple[dict[str, Any], bytes] | None:
    """A Table row's whole object and its JSON (``includeObject=Object``); None when the row
    holds less (its metadata only, or nothing)."""
    obj = row.get("object") if isinstance(row, dict) else None
    if not isinstance(obj, dict) or obj.get("kind") in ("", None, "PartialObjectMetadata"):
        return None
    return obj, json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def one_row_object(table: Mapping[str, Any]) -> tuple[dict[str, Any], bytes] | None:
    """The whole object of a one-row Table (a ``get``), or None."""
    rows = table.get("rows")
    return row_object(rows[0]) if isinstance(rows, list) and len(rows) == 1 else None
