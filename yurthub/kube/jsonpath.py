"""The JSONPath of kubectl and of CRD printer columns (client-go ``util/jsonpath``), in part.

A template is text with actions in braces (``{.status.phase}``).  An action is a chain of
steps: fields (``.a``, ``['a']``, ``\\.`` escapes a dot), recursive descent (``..a``), the
wildcard (``.*``, ``[*]``), array indexes and slices (``[0]``, ``[-1]``, ``[1:3:2]``),
unions (``[0,2]``), filters (``[?(@.type=="Ready")]``, ``[?(@.z)]``), and literals.  This is
what an ``additionalPrinterColumns`` path may use.  ``range``/``end`` (text templates that
loop) are not supported: no printer column can use them.

Values are decoded JSON (dict, list, str, int, float, bool, None).  Results, comparisons and
printing follow client-go: a missing field is an error unless ``allow_missing_keys``, a
comparison of an integer with a float is an error, maps and lists print as Go's JSON.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from yurthub.errors import JSONPathError
from yurthub.kube import gofmt

_TERMINATORS = frozenset(" \t\r\n.,[]$@{}")
_DICT_KEY = re.compile(r"^'([^']*)'$")
_SLICE = re.compile(r"^(-?\d*)(:-?\d*)?(:-?\d*)?$")
_FILTER = re.compile(r"^([^!<>=]+)([!<>=]+)(.+?)$", re.S)


@dataclass
class Node:
    """One step of an action: ``kind`` is text, field, recursive, wildcard, array, union,
    filter, int, float, bool or identifier."""

    kind: str
    value: Any = None
    params: tuple[tuple[int, bool, bool], ...] = ()   # array: (value, known, derived) x3
    lists: list[list[Node]] = field(default_factory=list)  # union; filter: [left, right]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos:self.pos + n]

    def template(self) -> list[list[Node] | str]:
        """Text pieces (str) and actions (lists of nodes), in order."""
        out: list[list[Node] | str] = []
        while self.pos < len(self.text):
            brace = self.text.find("{", self.pos)
            if brace < 0:
                out.append(self.text[self.pos:])
                break
            if brace > self.pos:
                out.append(self.text[self.pos:brace])
            self.pos = brace + 1
            out.append(self.action())
        return out

    def action(self) -> list[Node]:
        nodes: list[Node] = []
        while True:
            if self.peek() == "}":
                self.pos += 1
                return nodes
            if self.peek(3) == "[?(":
                nodes.append(self.filter())
                continue
            if self.peek(2) == "..":
                if nodes and nodes[-1].kind == "recursive":
                    raise JSONPathError("invalid multiple recursive descent")
                self.pos += 2
                nodes.append(Node("recursive"))
                if _alnum(self.peek()):
                    nodes.append(self.field())
                continue
            ch = self.peek()
            if ch == "" or ch in "\r\n":
                raise JSONPathError("unclosed action")
            self.pos += 1
            if ch in " @$":
                continue
            if ch == "[":
                nodes.extend(self.array())
            elif ch in "\"'":
                nodes.append(Node("text", self.quoted(ch)))
            elif ch == ".":
                nodes.append(self.field())
            elif ch in "+-" or ch.isdigit():
                self.pos -= 1
                nodes.append(self.number())
            elif _alnum(ch):
                self.pos -= 1
                nodes.append(self.identifier())
            else:
                raise JSONPathError(f"unrecognized character in action: {ch!r}")

    def field(self) -> Node:
        start = self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if ch in _TERMINATORS:
                break
            self.pos += 1
        name = self.text[start:self.pos]
        return Node("wildcard") if name == "*" else Node("field", name.replace("\\", ""))

    def identifier(self) -> Node:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _TERMINATORS:
            self.pos += 1
        word = self.text[start:self.pos]
        if word in ("true", "false"):
            return Node("bool", word == "true")
        return Node("identifier", word)

    def number(self) -> Node:
        start = self.pos
        if self.peek() in "+-":
            self.pos += 1
        while self.pos < len(self.text) and (self.text[self.pos].isdigit()
                                             or self.text[self.pos] == "."):
            self.pos += 1
        word = self.text[start:self.pos]
        if re.fullmatch(r"[+-]?\d+", word):
            return Node("int", int(word))
        try:
            return Node("float", float(word))
        except ValueError:
            raise JSONPathError(f"cannot parse number {word}") from None

    def quoted(self, quote: str) -> str:
        start = self.pos - 1
        while True:
            ch = self.peek()
            if ch == "" or ch == "\n":
                raise JSONPathError("unterminated quoted string")
            self.pos += 1
            if ch == quote and self.text[self.pos - 2] != "\\":
                break
        raw = self.text[start:self.pos]
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise JSONPathError(f"unquote string {raw} error invalid syntax") from None
        return str(value)

    def array(self) -> list[Node]:
        end = self.pos
        while end < len(self.text) and self.text[end] not in "]\n":
            end += 1
        if end >= len(self.text) or self.text[end] != "]":
            raise JSONPathError("unterminated array")
        inner = self.text[self.pos:end]
        self.pos = end + 1
        if inner == "*":
            inner = ":"
        if "," in inner:
            return [Node("union", lists=[_action(f"[{p.strip(' ')}]")
                                         for p in inner.split(",")])]
        key = _DICT_KEY.match(inner)
        if key is not None:
            return _action("." + key.group(1))
        m = _SLICE.match(inner)
        if m is None:
            raise JSONPathError(f"invalid array index {inner}")
        params: list[tuple[int, bool, bool]] = []
        for i, group in enumerate(m.groups()):
            if group:
                digits = group[1:] if i > 0 else group
                if i > 0 and digits == "":
                    params.append((0, False, False))
                    continue
                try:
                    params.append((int(digits), True, False))
                except ValueError:
                    raise JSONPathError(f"array index {digits} is not a number") from None
            elif i == 1:
                params.append((params[0][0] + 1, True, True))
            else:
                params.append((0, False, False))
        return [Node("array", params=tuple(params))]

    def filter(self) -> Node:
        self.pos += 3
        start = self.pos
        begin = end = False
        pair = ""
        while True:
            ch = self.peek()
            if ch == "" or ch == "\n":
                raise JSONPathError("unterminated filter")
            self.pos += 1
            if ch in "\"'":
                if not begin:
                    begin, pair = True, ch
                elif self.text[self.pos - 2] != "\\" and ch == pair:
                    end = True
            elif ch == ")" and begin == end:
                break
        if self.peek() != "]":
            raise JSONPathError("unclosed array expect ]")
        self.pos += 1
        text = self.text[start:self.pos - 2]
        m = _FILTER.match(text)
        if m is None:
            return Node("filter", "exists", lists=[_action(text), []])
        return Node("filter", m.group(2), lists=[_action(m.group(1)), _action(m.group(3))])


def _alnum(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def _action(text: str) -> list[Node]:
    p = _Parser("{" + text + "}")
    p.pos = 1
    return p.action()


class JSONPath:
    """A parsed template; ``find`` evaluates it, ``execute`` prints it as kubectl does."""

    def __init__(self, template: str, *, allow_missing_keys: bool = False) -> None:
        self.template = template
        self.allow_missing_keys = allow_missing_keys
        self.parts = _Parser(template).template()

    def find(self, data: Any) -> list[list[Any]]:
        """client-go's ``FindResults``: the values of each text piece and action."""
        out: list[list[Any]] = []
        for part in self.parts:
            out.append([part] if isinstance(part, str) else self._list([data], part))
        return out

    def execute(self, data: Any) -> str:
        """client-go's ``Execute``: each part's values printed, separated by spaces."""
        return "".join(" ".join(gofmt.sprint(v) for v in values) for values in self.find(data))

    # -- evaluation ---------------------------------------------------------------------

    def _list(self, values: list[Any], nodes: list[Node]) -> list[Any]:
        for node in nodes:
            values = self._walk(values, node)
        return values

    def _walk(self, values: list[Any], node: Node) -> list[Any]:
        kind = node.kind
        if kind == "text":
            return [node.value]
        if kind in ("int", "float", "bool"):
            return [node.value for _ in values]
        if kind == "field":
            return self._field(values, node.value)
        if kind == "wildcard":
            return [child for v in values for child in _children(v)]
        if kind == "recursive":
            return list(_descend(values))
        if kind == "array":
            return _array(values, node.params)
        if kind == "union":
            return [r for lst in node.lists for r in self._list(values, lst)]
        if kind == "filter":
            return self._filter(values, node)
        if node.value in ("range", "end"):
            raise JSONPathError(f"{node.value} is not supported")
        raise JSONPathError(f"unrecognized identifier {node.value}")

    def _field(self, values: list[Any], name: str) -> list[Any]:
        found = [v[name] for v in values if isinstance(v, dict) and name in v]
        if not found and values and not self.allow_missing_keys:
            raise JSONPathError(f"{name} is not found")
        return found

    def _filter(self, values: list[Any], node: Node) -> list[Any]:
        left, right = node.lists
        out = []
        for value in values:
            if not isinstance(value, list):
                raise JSONPathError(f"{gofmt.sprint(value)} is not array or slice and cannot "
                                    "be filtered")
            for item in value:
                if node.value == "exists":
                    try:
                        if self._list([item], left):
                            out.append(item)
                    except JSONPathError:
                        pass
                    continue
                lefts = self._list([item], left)
                if len(lefts) != 1:
                    if lefts:
                        raise JSONPathError("can only compare one element at a time")
                    continue
                rights = self._list([item], right)
                if len(rights) != 1:
                    if rights:
                        raise JSONPathError("can only compare one element at a time")
                    continue
                if compare(lefts[0], node.value, rights[0]):
                    out.append(item)
        return out


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return list(value.encode())  # Go indexes a string by its bytes
    return []


def _descend(values: list[Any]) -> Iterator[Any]:
    for value in values:
        children = _children(value)
        if children:
            yield value
            yield from _descend(children)


def _array(values: list[Any], params: tuple[tuple[int, bool, bool], ...]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value is None:
            continue
        if not isinstance(value, list):
            raise JSONPathError(f"{_go_type(value)} is not array or slice")
        n = len(value)
        (start, s_known, _), (stop, e_known, derived), (step, st_known, _) = params
        start = start if s_known else 0
        if start < 0:
            start += n
        stop = stop if e_known else n
        if stop < 0 or (stop == 0 and derived):
            stop += n
        if stop == start:
            return out
        if start >= n or start < 0:
            raise JSONPathError(f"array index out of bounds: index {start}, length {n}")
        if stop > n or stop < 0:
            raise JSONPathError(f"array index out of bounds: index {stop - 1}, length {n}")
        if start > stop:
            raise JSONPathError(f"starting index {start} is greater than ending index {stop}")
        if st_known and step <= 0:
            raise JSONPathError("step must be > 0")
        out.extend(value[start:stop:step if st_known else 1])
    return out


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "map[string]interface {}"
    return {bool: "bool", int: "int64", float: "float64", str: "string"}.get(
        type(value), "interface {}")


def _basic(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    raise JSONPathError("invalid type for comparison")


def compare(a: Any, op: str, b: Any) -> bool:
    """Go text/template's eq, ne, lt, le, gt, ge: only values of one basic kind compare."""
    if op not in ("==", "!=", "<", "<=", ">", ">="):
        raise JSONPathError(f"unrecognized filter operator {op}")
    ka, kb = _basic(a), _basic(b)
    if ka != kb:
        raise JSONPathError("incompatible types for comparison")
    if op in ("==", "!="):
        return (a == b) == (op == "==")
    if ka == "bool":
        raise JSONPathError("invalid type for comparison")
    less = a < b
    if op == "<":
        return bool(less)
    if op == ">=":
        return not less
    less_or_equal = less or a == b
    return bool(less_or_equal) if op == "<=" else not less_or_equal
