"""Label selectors as kube-apiserver parses, validates and evaluates them.

``parse("app=web,tier in (a,b),!canary")`` gives a :class:`Selector` whose requirements are
normalized (``==`` is ``=``, a one-value ``in`` is ``=``, a one-value ``notin`` is ``!=``) so
that two spellings of the same condition compare equal: a cached view selected by A covers a
request selected by B when ``A.requirements <= B.requirements``.  Syntax errors and invalid keys
or values raise :class:`yurthub.errors.BadRequest` with kube-apiserver's wording.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from yurthub.errors import BadRequest
from yurthub.kube.validation import go_quote, invalid, label_value_errors, qualified_name_errors

EQUALS = "="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

# The operators as the parser reports them when it expected one (apimachinery's order).
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"

_INT_RE = re.compile(r"^[-+]?[0-9]+$")


@dataclass(frozen=True, order=True)
class Requirement:
    """One normalized condition on one label key; ``values`` are sorted and distinct."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        value = labels.get(self.key)
        if op in (EQUALS, IN):
            return value is not None and value in self.values
        if op in (NOT_EQUALS, NOT_IN):
            return value is None or value not in self.values
        have, bound = parse_int64(value), parse_int64(self.values[0])
        if have is None or bound is None:
            return False
        return have > bound if op == GREATER_THAN else have < bound

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({','.join(self.values)})"
        sym = {EQUALS: "=", NOT_EQUALS: "!=", GREATER_THAN: ">", LESS_THAN: "<"}[op]
        return f"{self.key}{sym}{self.values[0]}"


def parse_int64(text: str | None) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``, or None where Go fails (syntax or range)."""
    if text is None or not _INT_RE.match(text):
        return None
    value = int(text)
    return value if -2 ** 63 <= value < 2 ** 63 else None


_OPERATORS = ("in", "notin", "=", "==", "!=", "exists", "!", "gt", "lt")


def _go_strings(values: list[str]) -> str:
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


def requirement_errors(key: str, operator: str, values: list[str], *,
                       check_key: bool = True) -> list[str]:
    """What ``NewRequirement`` finds wrong with a requirement, in its order and words."""
    errs = []
    if check_key:
        bad = qualified_name_errors(key)
        if bad:
            errs.append(invalid("key", key, bad))
    if operator in (IN, NOT_IN):
        if not values:
            errs.append(f"values: Invalid value: {_go_strings(values)}: for 'in', 'notin' "
                        "operators, values set can't be empty")
    elif operator in (EQUALS, "==", NOT_EQUALS):
        if len(values) != 1:
            errs.append(f"values: Invalid value: {_go_strings(values)}: exact-match "
                        "compatibility requires one single value")
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if values:
            errs.append(f"values: Invalid value: {_go_strings(values)}: values set must be "
                        "empty for exists and does not exist")
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            errs.append(f"values: Invalid value: {_go_strings(values)}: for 'Gt', 'Lt' "
                        "operators, exactly one value is required")
        errs.extend(f"values[{i}]: Invalid value: {go_quote(v)}: for 'Gt', 'Lt' operators, "
                    "the value must be an integer"
                    for i, v in enumerate(values) if parse_int64(v) is None)
    else:
        supported = ", ".join(go_quote(o) for o in _OPERATORS)
        errs.append(f"operator: Unsupported value: {go_quote(operator)}: supported values: "
                    f"{supported}")
    for i, v in enumerate(values):
        bad = label_value_errors(v)
        if bad:
            errs.append(invalid(f"values[{i}][{key}]", v, bad))
    return errs


def aggregate(errs: list[str]) -> str:
    """An ``utilerrors.Aggregate`` message: one error as it is, several in brackets."""
    unique = list(dict.fromkeys(errs))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def new_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """A validated requirement (``matchExpressions``), or BadRequest in apimachinery's words."""
    listed = list(values)
    errs = requirement_errors(key, operator, listed)
    if errs:
        raise BadRequest(aggregate(errs))
    return requirement(key, operator, listed)


def requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """A normalized requirement (no validation: the parser validates)."""
    vals = tuple(sorted(set(values)))
    if operator == "==":
        operator = EQUALS
    if operator == IN and len(vals) == 1:
        operator = EQUALS
    elif operator == NOT_IN and len(vals) == 1:
        operator = NOT_EQUALS
    return Requirement(key, operator, vals)


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: frozenset[Requirement] = field(default_factory=frozenset)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def covers(self, other: Selector) -> bool:
        """True when every object ``other`` selects is selected by this selector too."""
        return self.requirements <= other.requirements

    def exact(self, key: str) -> str | None:
        """The one value ``key`` must have, when the selector pins it."""
        for r in sorted(self.requirements):
            if r.key == key and r.operator == EQUALS:
                return r.values[0]
        return None

    @property
    def canonical(self) -> str:
        return ",".join(str(r) for r in sorted(self.requirements))

    def __str__(self) -> str:
        return self.canonical


EVERYTHING = Selector()


def from_set(labels: Mapping[str, str]) -> Selector:
    """The selector that matches exactly the given labels (``matchLabels``)."""
    return Selector(frozenset(Requirement(k, EQUALS, (v,)) for k, v in labels.items()))


def parse(text: str | None) -> Selector:
    """Parse a ``labelSelector`` query value; raise BadRequest as kube-apiserver does."""
    if not text or not text.strip():
        return EVERYTHING
    return Selector(frozenset(_Parser(text).parse()))


# -- lexer and parser ------------------------------------------------------------------------

_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_SYMBOLS = frozenset({"=", "==", "!=", "!", "(", ")", ",", ">", "<"})
_IDENT, _KEYWORD, _SYMBOL, _END = "ident", "keyword", "symbol", "end"


def _lex(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append((_END, ""))
            return tokens
        if text[i] in _SPECIAL:
            # Longest run of special characters that is still an operator.
            j = i + 1
            while j < n and text[j] in _SPECIAL and text[i:j + 1] in _SYMBOLS:
                j += 1
            tokens.append((_SYMBOL, text[i:j]))
            i = j
            continue
        j = i
        while j < n and text[j] not in _SPECIAL and text[j] not in _WHITESPACE:
            j += 1
        word = text[i:j]
        tokens.append((_KEYWORD if word in (IN, NOT_IN) else _IDENT, word))
        i = j


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        kind, lit = self.tokens[self.pos]
        # In value position the keywords are ordinary identifiers ("x in (in)").
        return (_IDENT if values and kind == _KEYWORD else kind), lit

    def take(self, values: bool = True) -> tuple[str, str]:
        tok = self.peek(values)
        self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            kind, lit = self.peek()
            if kind == _END:
                return reqs
            if kind != _IDENT and lit != "!":
                raise BadRequest(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self.requirement())
            except _ParseError as e:
                raise BadRequest(f"unable to parse requirement: {e}") from None
            kind, lit = self.take()
            if kind == _END:
                return reqs
            if lit != ",":
                raise BadRequest(f"found '{lit}', expected: ',' or 'end of string'")
            kind, lit = self.peek()
            if kind != _IDENT and lit != "!":
                raise BadRequest(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = False
        kind, key = self.take()
        if kind == _SYMBOL and key == "!":
            negated = True
            kind, key = self.take()
        if kind != _IDENT:
            raise _ParseError(f"found '{key}', expected: identifier")
        errs = qualified_name_errors(key)
        if errs:
            raise _ParseError(invalid("<nil>", key, errs))
        if negated:
            # "!key" takes no operator; whatever follows must be "," or the end.
            return requirement(key, DOES_NOT_EXIST)
        nxt_kind, nxt = self.peek()
        if nxt_kind == _END or nxt == ",":
            return requirement(key, EXISTS)
        return self._binary(key)

    def _binary(self, key: str) -> Requirement:
        kind, lit = self.take(values=False)
        ops = {"in": IN, "notin": NOT_IN, "=": EQUALS, "==": EQUALS, "!=": NOT_EQUALS,
               ">": GREATER_THAN, "<": LESS_THAN}
        if kind not in (_KEYWORD, _SYMBOL) or lit not in ops:
            raise _ParseError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        op = ops[lit]
        values = self._set_values() if op in (IN, NOT_IN) else self._exact_value()
        errs = requirement_errors(key, op, sorted(values), check_key=False)
        if errs:
            raise _ParseError(aggregate(errs))
        return requirement(key, op, values)

    def _exact_value(self) -> set[str]:
        kind, lit = self.peek()
        if kind == _END or lit == ",":
            return {""}
        kind, lit = self.take()
        if kind == _IDENT:
            return {lit}
        raise _ParseError(f"found '{lit}', expected: identifier")

    def _set_values(self) -> set[str]:
        kind, lit = self.take()
        if lit != "(" or kind != _SYMBOL:
            raise _ParseError(f"found '{lit}' expected: '('")
        kind, lit = self.peek()
        if kind == _SYMBOL and lit == ")":
            self.take()
            return {""}
        if kind != _IDENT and lit != ",":
            raise _ParseError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            kind, lit = self.take()
            if kind == _IDENT:
                values.add(lit)
                _, lit2 = self.peek()
                if lit2 == ",":
                    continue
                if lit2 == ")":
                    break
                raise _ParseError(f"found '{lit2}', expected: ',' or ')'")
            if lit == ",":
                # An empty item: "(,a)", "(a,,b)" and "(a,)" all include "".
                _, lit2 = self.peek()
                if not values or lit2 in (")", ","):
                    values.add("")
                if lit2 == ")":
                    break
                continue
            raise _ParseError(f"found '{lit}', expected: ',', or identifier")
        kind, lit = self.take()
        if lit != ")":
            raise _ParseError(f"found '{lit}', expected: ')'")
        return values


class _ParseError(Exception):
    """A requirement that does not parse; the parser wraps it in kube-apiserver's prefix."""
