"""Golden tables from Kubernetes' own test suites (see README.md here): an oracle for
``yurthub.kube`` that is not ``yurthub.kube``.

``load(name)`` reads ``<name>.json``; the strategic merge cases name the schema of the Go test
type they were written for, and :data:`SCHEMAS` holds those schemas as
:class:`yurthub.kube.patchschema.PatchField` tables (from the ``patchStrategy`` and
``patchMergeKey`` tags of apimachinery's test types ``MergeItem``, ``RetainKeysMergeItem`` and
``PrecisionItem``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from yurthub.kube.patchschema import PatchField

HERE = Path(__file__).resolve().parent


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))


def case_id(case: dict[str, Any]) -> str:
    """A short, stable pytest id for a case."""
    if "id" in case:
        return str(case["id"])
    text = case.get("selector", case.get("term", ""))
    return repr(text)[1:-1][:60] or "empty"


def _merge_item() -> dict[str, PatchField]:
    # MergeItem holds lists of itself: fill the dict after the fields that refer to it exist.
    item: dict[str, PatchField] = {}
    retain: dict[str, PatchField] = {}
    item.update({
        "mergingList": PatchField("merge", "name", item),
        "nonMergingList": PatchField("", "", item),
        "mergingIntList": PatchField("merge"),
        "nonMergingIntList": PatchField(),
        "mergeItemPtr": PatchField("merge", "name", item),
        "simpleMap": PatchField(),
        "replacingItem": PatchField("replace"),
        "jsonItem": PatchField(),
        # patchStrategy "retainKeys" (no merge): the directive is honoured wherever it is
        "retainKeysMap": PatchField("", "", retain),
        # patchStrategy "merge,retainKeys"
        "retainKeysMergingList": PatchField("merge", "name", item),
    })
    retain.update({
        "simpleMap": PatchField(),
        "mergingIntList": PatchField("merge"),
        "mergingList": PatchField("merge", "name", item),
        "nonMergingList": PatchField("", "", item),
    })
    return item


SCHEMAS: dict[str, dict[str, PatchField]] = {
    "mergeItem": _merge_item(),
    "precisionItem": {},  # PrecisionItem: scalars only
}
