"""The import rooms of docs/ARCHITECTURE.md, held by a test: imports point one way, and no
module imports itself back through others (``TYPE_CHECKING`` imports count).

The table is read from docs/ARCHITECTURE.md, the one copy of it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "yurthub"
SANDBOX = ROOT / "kubesandbox"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|[^|]*\|\s*([^|]*?)\s*\|\s*$")


def rooms_table(text: str) -> dict[str, set[str]]:
    """room -> the rooms it may import, from the markdown table headed ``| module | room |``.

    ``—`` (or ``-``) is nothing, ``everything`` is ``*``; a module ``x.py`` is room ``x``,
    a package ``x/`` is room ``x``.
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines)
                     if line.replace(" ", "").startswith("|module|room|mayimport|"))
    except StopIteration:
        raise AssertionError("no '| module | room | may import |' table") from None
    table: dict[str, set[str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        m = _ROW.match(line)
        assert m, f"unreadable rooms row: {line!r}"
        name = m.group(1).rstrip("/")
        room = name[:-3] if name.endswith(".py") else name
        allowed = m.group(2).strip()
        if allowed in ("—", "-", ""):
            table[room] = set()
        elif allowed == "everything":
            table[room] = {"*"}
        else:
            table[room] = {a.strip() for a in allowed.split(",") if a.strip()}
    return table


ALLOWED = rooms_table(ARCHITECTURE.read_text())
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def room_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> Iterable[tuple[str, list[str]]]:
    """(module, names) of every import in ``path``, TYPE_CHECKING blocks included; a relative
    import (``from . import x``) is named absolutely, so it cannot slip past the rooms."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module:
                    yield node.module, [a.name for a in node.names]
                continue
            package = module_name(path, root).split(".")
            if path.name != "__init__.py":
                package.pop()  # a module's relative imports start from its package
            base = package[:len(package) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
            yield module, [a.name for a in node.names]


def imported_rooms(path: Path, root: Path = ROOT) -> set[str]:
    out = set()
    for module, names in _imports(path, root):
        for name in [module] + [f"{module}.{n}" for n in names]:
            parts = name.split(".")
            if parts[0] == "yurthub" and len(parts) > 1:
                out.add(parts[1])
    return out


def module_graph(files: Iterable[Path], root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the project modules it imports (``from pkg import sub`` names ``pkg.sub``)."""
    files = list(files)
    known = {module_name(p, root) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        edges = set()
        for module, names in _imports(path, root):
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
            if subs:
                edges.update(subs)
            if module in known and (not names or len(subs) < len(names)):
                edges.add(module)  # a name defined in the module (or its package __init__)
        me = module_name(path, root)
        graph[me] = edges - {me}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_room_has_a_row():
    rooms = {room_of(p) for p in MODULES}
    assert rooms <= set(ALLOWED), f"no row in docs/ARCHITECTURE.md for {rooms - set(ALLOWED)}"


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


@pytest.mark.parametrize("tree", [PACKAGE, SANDBOX], ids=["yurthub", "kubesandbox"])
def test_no_module_imports_itself_back(tree: Path):
    cycle = find_cycle(module_graph(tree.rglob("*.py")))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_planted_cycle_through_type_checking(tmp_path):
    """The check itself: a cycle hidden behind TYPE_CHECKING is still a cycle."""
    pkg = tmp_path / "yurthub"
    (pkg / "cache").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cache" / "__init__.py").write_text("")
    (pkg / "cache" / "a.py").write_text("from yurthub.cache.b import B\n")
    (pkg / "cache" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from yurthub.cache import a\n")
    cycle = find_cycle(module_graph(pkg.rglob("*.py"), tmp_path))
    assert cycle == ["yurthub.cache.a", "yurthub.cache.b", "yurthub.cache.a"]


def test_the_cycle_check_sees_a_cycle_through_relative_imports(tmp_path):
    """``from . import a`` and ``from ..cache.a import A`` are edges like absolute imports."""
    pkg = tmp_path / "yurthub"
    (pkg / "cache").mkdir(parents=True)
    (pkg / "proxy").mkdir()
    for init in (pkg / "__init__.py", pkg / "cache" / "__init__.py",
                 pkg / "proxy" / "__init__.py"):
        init.write_text("")
    (pkg / "cache" / "a.py").write_text("from ..proxy.b import B\n")
    (pkg / "proxy" / "b.py").write_text("from . import c\n")
    (pkg / "proxy" / "c.py").write_text("from ..cache import a\n")
    graph = module_graph(pkg.rglob("*.py"), tmp_path)
    assert graph["yurthub.proxy.b"] == {"yurthub.proxy.c"}
    assert find_cycle(graph) == ["yurthub.cache.a", "yurthub.proxy.b", "yurthub.proxy.c",
                                 "yurthub.cache.a"]


def test_a_relative_import_is_held_to_its_room(tmp_path):
    """A room that may not import another cannot do it with a relative import either."""
    (tmp_path / "yurthub" / "storage").mkdir(parents=True)
    path = tmp_path / "yurthub" / "storage" / "x.py"
    path.write_text("from ..cache import views\nfrom . import keys\n")
    assert imported_rooms(path, tmp_path) == {"cache", "storage"}


def _imported_modules(path: Path) -> set[str]:
    return {module for module, _ in _imports(path)}


def test_the_product_never_imports_the_sandbox():
    """The .deb ships yurthub without kubesandbox; `yurthub sandbox` finds it at run time."""
    for path in MODULES:
        assert not any(m.split(".")[0] == "kubesandbox" for m in _imported_modules(path)), path


@pytest.mark.parametrize("path", sorted(SANDBOX.rglob("*.py")), ids=lambda p: p.name)
def test_the_sandbox_imports_only_what_is_pure_and_shared(path: Path):
    stray = {m for m in _imported_modules(path) if m.split(".")[0] == "yurthub"
             and m.split(".")[:2] not in (["yurthub", "kube"], ["yurthub", "errors"])}
    assert not stray, f"{path.name} imports {sorted(stray)}"
