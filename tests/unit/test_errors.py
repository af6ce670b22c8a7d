"""One exception tree: every exception class yurthub declares derives from ``YurthubError``.

A class such as ``class Gone(Exception)`` in some module would be an error that neither the
Status mapping nor a caller catching a branch of the tree (``UpstreamError``,
``StorageError``) knows about; that is how ``ProbeFailed`` and ``LocalWriteError`` once lived
outside it.  The tree's roots and branches are declared in errors.py; a module may specialize
one of them (patch.py's ``JSONPatchFailed`` is an ``Invalid``), and may keep a private
exception (``_ParseError``) for control flow that never leaves the module.
The classes are read from the source, not imported (importing ``yurthub.wsgi`` builds a hub).
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from yurthub import errors
from yurthub.errors import ApiError, YurthubError

PACKAGE = Path(__file__).resolve().parents[2] / "yurthub"
BUILTIN_EXCEPTIONS = {name for name, obj in vars(builtins).items()
                      if isinstance(obj, type) and issubclass(obj, BaseException)}
TREE = {name for name in dir(errors) if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), YurthubError)}


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr  # errors.ApiError, json.JSONDecodeError
    return node.id if isinstance(node, ast.Name) else ""


def exception_classes(files: list[Path]) -> tuple[set[tuple[Path, str]], set[tuple[Path, str]]]:
    """(every exception class, those in the tree) declared in ``files``, as (file, name).

    A base names a class of the same file first (a local ``class Gone(Exception)`` is not
    errors.py's ``Gone``), then the tree, then a builtin exception, then a class of another
    file; any other name ending in Error or Exception is taken for a library's exception.
    """
    classes: dict[tuple[Path, str], list[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                classes[(path, node.name)] = [_base_name(b) for b in node.bases]
    by_name: dict[str, tuple[Path, str]] = {}
    for key in classes:
        by_name.setdefault(key[1], key)
    memo: dict[tuple[Path, str], str | None] = {}

    def kind(key: tuple[Path, str]) -> str | None:
        """"tree", "other" (an exception outside the tree) or None (not an exception)."""
        if key in memo:
            return memo[key]
        memo[key] = None  # a cycle of names is not an exception
        path, name = key
        if path.name == "errors.py" and path.parent.name == "yurthub" and name in TREE:
            memo[key] = "tree"
            return "tree"
        kinds = set()
        for base in classes[key]:
            if (path, base) in classes:
                kinds.add(kind((path, base)))
            elif base in TREE:
                kinds.add("tree")
            elif base in BUILTIN_EXCEPTIONS:
                kinds.add("other")
            elif base in by_name:
                kinds.add(kind(by_name[base]))
            elif base.endswith(("Error", "Exception")):
                kinds.add("other")
        memo[key] = "tree" if "tree" in kinds else "other" if "other" in kinds else None
        return memo[key]

    every = {k for k in classes if kind(k) is not None}
    return every, {k for k in every if kind(k) == "tree"}


def test_every_exception_yurthub_declares_is_in_the_tree():
    every, in_tree = exception_classes(sorted(PACKAGE.rglob("*.py")))
    assert len(in_tree) > 20, "the scan did not find the tree itself"
    stray = sorted(f"{path.relative_to(PACKAGE)}: {name}" for path, name in every - in_tree
                   if not name.startswith("_"))
    assert not stray, f"exceptions outside the YurthubError tree (see errors.py): {stray}"


@pytest.mark.parametrize("name", sorted(n for n in dir(errors)
                                        if isinstance(getattr(errors, n), type)
                                        and issubclass(getattr(errors, n), BaseException)))
def test_every_error_in_errors_py_is_a_yurthub_error(name: str):
    assert issubclass(getattr(errors, name), YurthubError)


def test_the_scan_tells_the_tree_from_other_exceptions(tmp_path):
    """The check itself: exceptions are found directly and through each other, and only those
    that reach a class of errors.py are in the tree (a local ``Gone`` is not errors.Gone)."""
    path = tmp_path / "health.py"
    path.write_text("from yurthub import errors\n"
                    "from yurthub.errors import UpstreamError\n"
                    "class ProbeFailed(Exception): ...\n"
                    "class LeaseConflict(ProbeFailed): ...\n"
                    "class Refused(errors.ApiError): ...\n"
                    "class Slow(Refused): ...\n"
                    "class Both(UpstreamError, ValueError): ...\n"
                    "class Gone(Exception): ...\n"
                    "class Expired(Gone): ...\n"
                    "class Lib(yaml.YAMLError): ...\n"
                    "class _Private(ValueError): ...\n"
                    "class Server: ...\n")
    every, in_tree = exception_classes([path])
    assert {name for _, name in every} == {"ProbeFailed", "LeaseConflict", "Refused", "Slow",
                                           "Both", "Gone", "Expired", "Lib", "_Private"}
    assert {name for _, name in in_tree} == {"Refused", "Slow", "Both"}


def test_probe_and_local_write_failures_are_in_the_tree():
    """The two that lived in health.py and cache/manager.py: callers catching the tree's
    branches (an upstream failure, a storage failure) catch them too."""
    assert issubclass(errors.ProbeFailed, errors.UpstreamError)
    assert issubclass(errors.LocalWriteError, errors.StorageError)
    assert not issubclass(errors.LocalWriteError, ApiError)  # the local proxy words the Status
