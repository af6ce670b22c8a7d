"""kube-apiserver's printer tests (tests/golden/tables/printers.json) through yurthub.kube."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.golden.tables import resolve, table_golden
from yurthub.kube.printers import printer_for

GOLDEN, NOW = table_golden("printers")
WHEN = datetime.fromtimestamp(NOW, tz=UTC)
SINGLE = [c for c in GOLDEN["cases"] if "object" in c]
LISTS = [c for c in GOLDEN["cases"] if "objects" in c]


def case_id(case: dict) -> str:
    name = (case.get("object") or {}).get("metadata", {}).get("name", "")
    return f"{case['source']}-{case['resource']}-{name}{'-wide' if case['wide'] else ''}"


def same(expected: list, got: list) -> bool:
    return len(expected) == len(got) and all(e == "$any" or e == g
                                              for e, g in zip(expected, got, strict=True))


@pytest.mark.parametrize("case", SINGLE, ids=case_id)
def test_printer_rows(case):
    printer = printer_for(case["group"], case["resource"])
    assert printer is not None
    row = printer.row(resolve(case["object"], WHEN), case["wide"], NOW)
    if case["cells"] is None:  # the Go test asks for a row and no error
        visible = [c for c in printer.columns if c.priority == 0]
        # Persistent volumes and claims add their wide cell always, priority classes their
        # last cell only to wide rows.
        assert len(row.cells) in (len(visible), len(printer.columns)) or \
            (case["resource"] == "priorityclasses" and len(row.cells) == len(visible) - 1)
        return
    assert row.cells == case["cells"]
    assert row.conditions == case.get("conditions")


@pytest.mark.parametrize("case", LISTS, ids=lambda c: c["source"])
def test_printer_lists(case):
    printer = printer_for(case["group"], case["resource"])
    assert printer is not None
    rows = [printer.row(resolve(o, WHEN), case["wide"], NOW) for o in case["objects"]]
    assert len(rows) == len(case["rows"])
    for expected, row in zip(case["rows"], rows, strict=True):
        assert same(expected, row.cells), row.cells
