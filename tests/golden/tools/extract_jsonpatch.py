"""Transcribe the JSON patch and JSON merge patch tables kube-apiserver's library is tested with.

A developer tool, run by hand with a checkout of evanphx/json-patch (the library that
kube-apiserver applies ``application/json-patch+json`` and ``application/merge-patch+json``
with, imported as ``gopkg.in/evanphx/json-patch.v4``, i.e. the repository's root package):

    python3 tests/golden/tools/extract_jsonpatch.py /path/to/json-patch

It writes ``tests/golden/jsonpatch.json`` and ``tests/golden/mergepatch.json`` beside this
directory.  Only the data of the Go tables is carried over (documents, patches, results);
the examples of RFC 6902 appendix A that the library's tables lack are added by hand below,
each answered as the library answers it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent


def show(repo: str, path: str) -> str:
    return subprocess.run(["git", "-C", repo, "show", f"HEAD:{path}"], capture_output=True,
                          text=True, check=True).stdout


def block(source: str, start: str) -> str:
    i = source.index(start)
    return source[i:source.index("\n}\n", i)]


def entries(text: str) -> list[list[str]]:
    """The backquoted strings of each ``{ ... }`` entry of a Go slice literal, in order."""
    out: list[list[str]] = []
    depth = 0
    current: list[str] = []
    i = text.index("{") + 1
    while i < len(text):
        ch = text[i]
        if ch == "`":
            j = text.index("`", i + 1)
            current.append(text[i + 1:j])
            i = j + 1
            continue
        if ch == "/" and text.startswith("//", i):
            i = text.index("\n", i)
            continue
        if ch == "{":
            depth += 1
            if depth == 1:
                current = []
        elif ch == "}":
            if depth == 1:
                out.append(current)
            depth -= 1
        elif ch == "f" and text.startswith("fmt.Sprintf", i) and depth == 1:
            current.append("<sprintf>")
            i = text.index(")", i) + 1
            continue
        i += 1
    return out


def doc(text: str) -> Any:
    return json.loads(text)


def jsonpatch_cases(source: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for e in entries(block(source, "var Cases = []Case{")):
        if "<sprintf>" in e or not e[0].strip():
            continue  # an empty document, or the copy-size-limit case (below, by hand)
        c = {"source": "Cases", "doc": doc(e[0]), "patch": doc(e[1]), "result": doc(e[2])}
        if isinstance(c["doc"], list):
            # The Go test compares results as JSON objects: for an array document both sides
            # decode to nil and any result passes, so the table's result is no oracle (two of
            # the four are wrong).  Kept as "applies without error", which the test does see.
            del c["result"]
            c["applies"] = True
        cases.append(c)
    # The copy-size case of Cases: two copies of a 48-character string stay within the
    # accumulated copy limit the test sets (and far within kube-apiserver's).
    a48 = "A" * 48
    cases.append({"source": "Cases", "doc": {"foo": ["A", a48]},
                  "patch": [{"op": "copy", "path": "/foo/-", "from": "/foo/1"},
                            {"op": "copy", "path": "/foo/-", "from": "/foo/1"}],
                  "result": {"foo": ["A", a48, a48, a48]}})
    for e in entries(block(source, "var MutationTestCases = []BadCase{")):
        cases.append({"source": "MutationTestCases", "doc": doc(e[0]), "patch": doc(e[1]),
                      "changes": True})
    for e in entries(block(source, "var BadCases = []BadCase{")):
        if "<sprintf>" in e:
            continue  # fails only under the test's own 100-byte copy limit
        cases.append({"source": "BadCases", "doc": doc(e[0]), "patch": doc(e[1]),
                      "error": True})
    text = block(source, "var TestCases = []TestCase{")
    for m in re.finditer(r"\{\s*`(.*?)`,\s*`(.*?)`,\s*(true|false),\s*\"(.*?)\",\s*\}", text,
                         re.S):
        c: dict[str, Any] = {"source": "TestCases", "doc": doc(m.group(1)),
                             "patch": doc(m.group(2))}
        if m.group(3) == "true":
            c["result"] = c["doc"]
        else:
            c["error"] = True
            c["message"] = f"testing value {m.group(4)} failed: test failed"
        cases.append(c)
    rfc = {"/": 9, "~1": 10}
    cases += [
        {"source": "RFC 6902 A.11", "doc": {"foo": "bar"},
         "patch": [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
         "result": {"foo": "bar", "baz": "qux"}},
        {"source": "RFC 6902 A.13", "doc": {"foo": "bar"},
         "patch_text": '[{ "op": "add", "path": "/baz", "value": "qux", "op": "remove" }]',
         "error": True},
        {"source": "RFC 6902 A.14", "doc": rfc,
         "patch": [{"op": "test", "path": "/~01", "value": 10}], "result": rfc},
        {"source": "RFC 6902 A.15", "doc": rfc,
         "patch": [{"op": "test", "path": "/~01", "value": "10"}], "error": True},
    ]
    return cases


def mergepatch_cases(source: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    simple = {
        "TestMergePatchReplaceKey": ('{ "title": "hello" }', '{ "title": "goodbye" }',
                                     '{ "title": "goodbye" }'),
    }
    for name in ("TestMergePatchIgnoresOtherValues", "TestMergePatchNilDoc",
                 "TestMergePatchRecursesIntoObjects", "TestMergePatchReturnsEmptyArrayOnEmptyArray",
                 "TestMergePatchReplaceKeyNotEscaping"):
        body = source[source.index(f"func {name}("):]
        body = body[:body.index("\n}\n")]
        d = re.search(r"doc := `(.*?)`", body, re.S)
        p = re.search(r"pat := `(.*?)`", body, re.S)
        x = re.search(r"exp := `(.*?)`", body, re.S)
        assert d and p and x, name
        simple[name] = (d.group(1), p.group(1), x.group(1))
    for name, (d, p, x) in simple.items():
        cases.append({"source": name, "doc": doc(d), "patch": doc(p), "result": doc(x)})
    body = source[source.index("func TestMergePatchNilArray("):]
    for m in re.finditer(r"\{`(.*?)`, `(.*?)`, `(.*?)`\}", body[:body.index("\n}\n")]):
        cases.append({"source": "TestMergePatchNilArray", "doc": doc(m.group(1)),
                      "patch": doc(m.group(2)), "result": doc(m.group(3))})
    wholesale = {"a1": "[1]", "a2": "[2]", "o1": '{ "a": 1 }', "o2": '{ "a": 2 }',
                 "o3": '{ "a": 1, "b": 1 }', "o4": '{ "a": 2, "b": 1 }'}
    for d, p, x in (("a1", "a2", "a2"), ("o1", "a2", "a2"), ("a1", "o1", "o1"),
                    ("o3", "o2", "o4")):
        cases.append({"source": "TestMergePatchReplacesNonObjectsWholesale",
                      "doc": doc(wholesale[d]), "patch": doc(wholesale[p]),
                      "result": doc(wholesale[x])})
    rfc = block(source, "var rfcTests = []struct {")
    for m in re.finditer(r"\n\t\{target: `(.*?)`, patch: `(.*?)`, expected: `(.*?)`\}", rfc):
        cases.append({"source": "rfcTests (RFC 7386 appendix A)", "doc": doc(m.group(1)),
                      "patch": doc(m.group(2)), "result": doc(m.group(3))})
    for line in source[source.index("var rfcFailTests = `"):].split("`")[1].splitlines():
        if line.strip():
            d, p = (s.strip() for s in line.split("|", 1))
            cases.append({"source": "rfcFailTests (RFC 7386 appendix A)", "doc": doc(d),
                          "patch_text": p, "error": "Invalid JSON Patch"})
    return cases


def main(repo: str) -> None:
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    origin = {"repository": "evanphx/json-patch", "commit": commit, "licence": "BSD-3-Clause",
              "note": "the root package, which kube-apiserver imports as "
                      "gopkg.in/evanphx/json-patch.v4"}
    for name, path, fn in (("jsonpatch", "patch_test.go", jsonpatch_cases),
                           ("mergepatch", "merge_test.go", mergepatch_cases)):
        cases = fn(show(repo, path))
        for i, c in enumerate(cases):
            c["id"] = f"{name}-{i:03d}"
        out = {"origin": {**origin, "path": path}, "cases": cases}
        (OUT / f"{name}.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
