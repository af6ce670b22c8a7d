"""The import rooms of docs/ARCHITECTURE.md, held by a test: imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "yurthub"
SANDBOX = PACKAGE.parent / "kubesandbox"

# room -> the rooms it may import (besides itself, the stdlib and third-party libraries)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "threads": set(),
    "linux": set(),
    "metrics": set(),
    "config": {"errors", "kube"},
    "kube": {"errors"},
    "storage": {"errors", "kube", "linux", "threads"},
    "credentials": {"config", "errors"},
    "upstream": {"config", "credentials", "errors", "metrics"},
    "health": {"upstream", "config", "errors", "kube", "metrics", "threads"},
    "cache": {"storage", "kube", "errors", "config", "metrics", "threads", "linux"},
    "filters": {"kube", "errors", "config"},
    "hubserver": {"metrics"},
    "proxy": {"cache", "filters", "upstream", "health", "kube", "errors", "config", "metrics",
              "threads"},
    "app": {"*"},
    "service": {"app", "config", "credentials", "errors", "storage"},
    "wsgi": {"service"},
    "cli": {"config", "errors", "service"},
    "__init__": set(),
    "__main__": {"cli"},
}


def room_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_rooms(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "yurthub" and len(parts) > 1:
                out.add(parts[1])
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_what_its_room_allows(path: Path):
    room = room_of(path)
    assert room in ALLOWED, f"{room} is not in the rooms table"
    allowed = ALLOWED[room]
    if "*" in allowed:
        return
    stray = {r for r in imported_rooms(path) - {room} if r not in allowed
             and r != "__init__"}
    # `from yurthub import __version__` names the package itself, which every room may.
    stray.discard("__version__")
    assert not stray, f"{path.name} ({room}) imports {sorted(stray)}"


def test_nothing_imports_the_composition_root():
    for path in MODULES:
        if room_of(path) in ("app", "service"):
            continue
        assert "app" not in imported_rooms(path), path


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_the_product_never_imports_the_sandbox():
    """The .deb ships yurthub without kubesandbox; `yurthub sandbox` finds it at run time."""
    for path in MODULES:
        assert not any(m.split(".")[0] == "kubesandbox" for m in _imported_modules(path)), path


@pytest.mark.parametrize("path", sorted(SANDBOX.rglob("*.py")), ids=lambda p: p.name)
def test_the_sandbox_imports_only_what_is_pure_and_shared(path: Path):
    stray = {m for m in _imported_modules(path) if m.split(".")[0] == "yurthub"
             and m.split(".")[:2] not in (["yurthub", "kube"], ["yurthub", "errors"])}
    assert not stray, f"{path.name} imports {sorted(stray)}"
