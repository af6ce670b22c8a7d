"""Transcribe apimachinery's strategic merge patch tables into tests/golden/strategicpatch.json.

A developer tool, run by hand (it needs PyYAML and a checkout of kubernetes/apimachinery):

    python3 tests/golden/tools/extract_strategicpatch.py /path/to/apimachinery > \
        tests/golden/strategicpatch.json

It reads the YAML documents and JSON strings embedded in
``pkg/util/strategicpatch/patch_test.go`` (data only: no Go code is carried over) and writes one
*apply case* per patch application that the Go test performs: a document, a patch and either
the expected result or the text the expected error contains.

The Go test sorts the documents of its structured (non-raw) cases by merge key before it
applies anything (``sortMergeListsByName``, a test helper that lives in ``patch.go``); the
same preprocessing is done here so the case holds the exact documents Go applies.  The
helper's own table (``sortMergeListTestCaseData``) is used to check that preprocessing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import yaml

TEST_FILE = "pkg/util/strategicpatch/patch_test.go"

# The merge metadata of the test's MergeItem / RetainKeysMergeItem struct tags: field ->
# (strategy, merge key, item type).  Strategy "merge" lists are sorted by the helper.
MERGE_ITEM: dict[str, tuple[str, str, str]] = {
    "mergingList": ("merge", "name", "MergeItem"),
    "nonMergingList": ("", "", "MergeItem"),
    "mergingIntList": ("merge", "", ""),
    "nonMergingIntList": ("", "", ""),
    "mergeItemPtr": ("merge", "name", "MergeItem"),
    "simpleMap": ("", "", ""),
    "replacingItem": ("replace", "", ""),
    "jsonItem": ("", "", ""),
    "retainKeysMap": ("retainKeys", "", "RetainKeysMergeItem"),
    "retainKeysMergingList": ("merge", "name", "MergeItem"),
}
RETAIN_KEYS_ITEM: dict[str, tuple[str, str, str]] = {
    "simpleMap": ("", "", ""),
    "mergingIntList": ("merge", "", ""),
    "mergingList": ("merge", "name", "MergeItem"),
    "nonMergingList": ("", "", "MergeItem"),
}
TYPES = {"MergeItem": MERGE_ITEM, "RetainKeysMergeItem": RETAIN_KEYS_ITEM}


def go_v(value: Any) -> str:
    """``fmt.Sprintf("%v", v)`` of a JSON-decoded Go value (numbers are float64)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        f = float(value)
        if f.is_integer() and abs(f) < 1e21:
            text = repr(int(f))
            # %v of a float64 uses %g: exponent form from 1e21 up (and for small values).
            return text
        return repr(f)
    if value is None:
        return "<nil>"
    return str(value)


def sort_map(doc: dict[str, Any], type_name: str) -> dict[str, Any]:
    fields = TYPES.get(type_name, {})
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "$retainKeys" or k.startswith("$deleteFromPrimitiveList/"):
            v = sorted(v, key=go_v)
        elif k.startswith("$setElementOrder/") or k == "$patch":
            pass
        elif isinstance(v, dict):
            v = sort_map(v, fields.get(k, ("", "", ""))[2] if k in fields else "")
        elif isinstance(v, list):
            strategy, key, item = fields.get(k, ("", "", ""))
            if strategy == "merge":
                v = sort_list(v, key, item)
        out[k] = v
    return out


def sort_list(items: list[Any], key: str, item_type: str) -> list[Any]:
    if not items:
        return items
    if not isinstance(items[0], dict):
        seen: list[Any] = []
        for x in items:
            if not any(x == y and type(x) is type(y) for y in seen):
                seen.append(x)
        return sorted(seen, key=go_v)
    return sorted((sort_map(x, item_type) for x in items), key=lambda m: go_v(m.get(key)))


def sort_doc(doc: Any) -> Any:
    return sort_map(doc, "MergeItem") if isinstance(doc, dict) else doc


def block(source: str, var: str) -> str:
    start = source.index(f"var {var} = ")
    end = source.index("\n}\n", start)
    return source[start:end]


def yaml_block(source: str, var: str) -> Any:
    start = source.index(f"var {var} = []byte(`") + len(f"var {var} = []byte(`")
    end = source.index("`)", start)
    return yaml.safe_load(source[start:end])


def load_yaml(text: str | None) -> Any:
    if text is None:
        return None
    return json.loads(json.dumps(yaml.safe_load(text)))


def raw_cases(source: str, var: str) -> list[dict[str, Any]]:
    text = block(source, var)
    out = []
    for chunk in text.split("\t{\n\t\tDescription: ")[1:]:
        desc = json.loads(chunk.split("\n", 1)[0].rstrip(","))
        fields = {m.group(1): m.group(2)
                  for m in re.finditer(r"(\w+): \[\]byte\(`(.*?)`\)", chunk, re.S)}
        err = re.search(r'ExpectedError: "(.*?)"', chunk)
        out.append({"description": desc,
                    **{k: load_yaml(v) for k, v in fields.items()},
                    "expectedError": err.group(1) if err else ""})
    return out


def apply_cases_from(case: dict[str, Any], source: str, sort: bool) -> list[dict[str, Any]]:
    """The applications the Go test performs for one case (two-way, then three-way)."""
    prep = sort_doc if sort else (lambda d: d)
    get = case.get
    out = []
    desc = get("description") or get("Description")
    original = get("original", get("Original"))
    two_way = get("twoWay", get("TwoWay"))
    modified = get("modified", get("Modified"))
    two_way_result = get("twoWayResult", get("TwoWayResult"))
    current = get("current", get("Current"))
    three_way = get("threeWay", get("ThreeWay"))
    result = get("result", get("Result"))
    error = get("expectedError", "")
    expected2 = two_way_result if two_way_result is not None else modified
    if two_way is not None and (expected2 is not None or error):
        out.append({"source": source, "description": desc, "step": "twoWay",
                    "original": prep(original or {}), "patch": prep(two_way),
                    **({"error": error} if error else {"result": prep(expected2 or {})})})
    if three_way is not None and result:
        out.append({"source": source, "description": desc, "step": "threeWay",
                    "original": prep(current or {}), "patch": prep(three_way),
                    **({"error": error} if error else {"result": prep(result)})})
    return out


def unknown_field_cases(source: str) -> list[dict[str, Any]]:
    start = source.index("func TestUnknownField")
    text = source[start:source.index("mergeItemOpenapiSchema :=", start)]
    out = []
    for m in re.finditer(r'\n\t\t"([^"]+)": \{(.*?)\n\t\t\},', text, re.S):
        name, body = m.group(1), m.group(2)
        f = dict(re.findall(r"(\w+):\s+`(.*?)`,", body))
        if "ExpectedTwoWayErr" in f or "ExpectedTwoWayResult" not in f:
            continue  # patch creation fails for the struct schema: nothing is applied
        out.append({"source": "TestUnknownField", "description": name, "step": "twoWay",
                    "original": json.loads(f["Original"]), "patch": json.loads(f["ExpectedTwoWay"]),
                    "result": json.loads(f["ExpectedTwoWayResult"])})
        out.append({"source": "TestUnknownField", "description": name, "step": "threeWay",
                    "original": json.loads(f["Current"]),
                    "patch": json.loads(f["ExpectedThreeWay"]),
                    "result": json.loads(f["ExpectedThreeWayResult"])})
    return out


def number_cases(source: str) -> list[dict[str, Any]]:
    start = source.index("func TestNumberConversion")
    text = source[start:source.index("precisionItemOpenapiSchema", start)]
    out = []
    for m in re.finditer(r'\n\t\t"([^"]+)": \{(.*?)\n\t\t\},', text, re.S):
        f = dict(re.findall(r"(\w+):\s+`(.*?)`,", m.group(2)))
        out.append({"source": "TestNumberConversion", "description": m.group(1),
                    "step": "twoWay", "schema": "precisionItem",
                    "original": json.loads(f["Old"]), "patch": json.loads(f["ExpectedPatch"]),
                    "result": json.loads(f["ExpectedResult"])})
    return out


def main(repo: str) -> None:
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    source = subprocess.run(["git", "-C", repo, "show", f"HEAD:{TEST_FILE}"],
                            capture_output=True, text=True, check=True).stdout

    # The sorting helper must reproduce its own table before it is trusted.
    for c in yaml_block(source, "sortMergeListTestCaseData")["testCases"]:
        got = sort_doc(json.loads(json.dumps(c["original"])))
        if got != json.loads(json.dumps(c["sorted"])):
            raise SystemExit(f"sort helper disagrees with Go on: {c['description']}")

    cases: list[dict[str, Any]] = []
    for var, name in (("customStrategicMergePatchTestCaseData", "TestCustomStrategicMergePatch"),
                      ("createStrategicMergePatchTestCaseData", "TestStrategicMergePatch")):
        for c in yaml_block(source, var)["testCases"]:
            cases.extend(apply_cases_from(json.loads(json.dumps(c)), name, sort=True))
    for var, name in (("customStrategicMergePatchRawTestCases", "TestCustomStrategicMergePatch"),
                      ("strategicMergePatchRawTestCases", "TestStrategicMergePatch"),
                      ("replaceRawExtensionPatchTestCases", "TestReplaceWithRawExtension")):
        for c in raw_cases(source, var):
            cases.extend(apply_cases_from(c, name, sort=False))
    cases.extend(unknown_field_cases(source))
    cases.extend(number_cases(source))
    for i, c in enumerate(cases):
        c.setdefault("schema", "mergeItem")
        c["id"] = f"smp-{i:03d}"
    doc = {
        "origin": {"repository": "kubernetes/apimachinery", "path": TEST_FILE, "commit": commit,
                   "licence": "Apache-2.0"},
        "cases": cases,
    }
    json.dump(doc, sys.stdout, indent=1, sort_keys=False, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
