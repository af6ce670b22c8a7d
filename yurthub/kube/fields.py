"""Field selectors as kube-apiserver parses, validates and evaluates them.

``parse("spec.nodeName=n1,status.phase!=Failed", rt)`` gives a :class:`Selector` of normalized
requirements (``==`` is ``=``), checked against the resource's selectable fields (an unknown
key is ``400 field label not supported: <key>``).  :func:`selectable_values` extracts the
values kube-apiserver's ``ToSelectableFields`` would compute for an object, so that
``selector.matches(selectable_values(obj, rt))`` answers exactly as kube-apiserver does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from yurthub.errors import BadRequest
from yurthub.kube.resources import ResourceType

EQUALS = "="
NOT_EQUALS = "!="

# Old field names kube-apiserver still converts (its Pod field label conversion).
_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("", "pods"): {"spec.host": "spec.nodeName"},
}


def escape_value(value: str) -> str:
    """``fields.EscapeValue``: backslash-escape ``\\``, ``,`` and ``=``."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(value: str) -> str:
    """``fields.UnescapeValue``; an unknown escape or a bare ``,``/``=`` is a BadRequest."""
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise BadRequest(
                    f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            # Go prints the rune with %v: its code point.
            raise BadRequest(
                f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


@dataclass(frozen=True, order=True)
class Requirement:
    """``field = value`` or ``field != value``; a missing field has the value ``""``."""

    field: str
    operator: str
    value: str

    def matches(self, values: Mapping[str, str]) -> bool:
        equal = values.get(self.field, "") == self.value
        return equal if self.operator == EQUALS else not equal

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_value(self.value)}"


@dataclass(frozen=True)
class Selector:
    """A conjunction of field requirements; the empty selector matches everything."""

    requirements: frozenset[Requirement] = field(default_factory=frozenset)

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(r.field for r in self.requirements)

    def matches(self, values: Mapping[str, str]) -> bool:
        return all(r.matches(values) for r in self.requirements)

    def covers(self, other: Selector) -> bool:
        """True when every object ``other`` selects is selected by this selector too."""
        return self.requirements <= other.requirements

    def exact(self, name: str) -> str | None:
        """The one value field ``name`` must have, when the selector pins it.

        Requirements are looked at in sorted order, as ``RequiresExactMatch`` sees the terms
        of a parsed selector.
        """
        for r in sorted(self.requirements):
            if r.field == name and r.operator == EQUALS:
                return r.value
        return None

    def validate(self, rt: ResourceType) -> Selector:
        """This selector, its aliases resolved, if ``rt`` supports every field it names."""
        aliases = _ALIASES.get((rt.group, rt.resource), {})
        allowed = rt.selectable_fields
        out = set()
        for r in sorted(self.requirements):
            name = aliases.get(r.field, r.field)
            if name not in allowed:
                raise BadRequest(f"field label not supported: {r.field}")
            out.add(Requirement(name, r.operator, r.value))
        return Selector(frozenset(out))

    @property
    def canonical(self) -> str:
        return ",".join(str(r) for r in sorted(self.requirements))

    def __str__(self) -> str:
        return self.canonical


EVERYTHING = Selector()


def split_terms(text: str) -> list[str]:
    """``splitTerms``: the comma-separated terms (a backslash-escaped comma is data)."""
    if not text:
        return []
    terms: list[str] = []
    start = 0
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def split_term(term: str) -> tuple[str, str, str] | None:
    """``splitTerm``: (field, operator, raw value) of a term, or None without an operator."""
    # The first operator wins, scanning left to right; "!=" and "==" before "=".
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse(text: str | None, rt: ResourceType | None = None) -> Selector:
    """Parse a ``fieldSelector`` query value (and validate it against ``rt`` when given)."""
    if not text:
        return EVERYTHING
    reqs = set()
    for term in sorted(split_terms(text)):
        if not term:
            continue
        parts = split_term(term)
        if parts is None:
            raise BadRequest(f"invalid selector: '{text}'; can't understand '{term}'")
        lhs, op, rhs = parts
        reqs.add(Requirement(lhs, NOT_EQUALS if op == "!=" else EQUALS, unescape_value(rhs)))
    selector = Selector(frozenset(reqs))
    return selector.validate(rt) if rt is not None else selector


def _lookup(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = obj
    for part in path:
        if type(cur) is not dict and not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _text(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        return ""
    return str(value)


def _int_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "0"
    return str(int(value))


def _pod_ip(obj: Mapping[str, Any]) -> str:
    status = obj.get("status")
    if not isinstance(status, Mapping):
        return ""
    ips = status.get("podIPs")
    if isinstance(ips, list) and ips and isinstance(ips[0], Mapping):
        return _text(ips[0].get("ip"))
    return _text(status.get("podIP"))


def _event_source(obj: Mapping[str, Any]) -> str:
    source = _text(_lookup(obj, ("source", "component")))
    return source or _text(obj.get("reportingComponent"))


# Fields whose value is not simply the text at their path (per kube-apiserver's
# ToSelectableFields: booleans print as "true"/"false", absent ones as "false"), and the
# object paths each one reads.
_COMPUTED: dict[str, tuple[Any, tuple[str, ...]]] = {
    "spec.hostNetwork": (lambda o: _text(bool(_lookup(o, ("spec", "hostNetwork")))),
                         ("spec.hostNetwork",)),
    "spec.unschedulable": (lambda o: _text(bool(_lookup(o, ("spec", "unschedulable")))),
                           ("spec.unschedulable",)),
    "status.podIP": (_pod_ip, ("status.podIP", "status.podIPs")),
    "source": (_event_source, ("source.component", "reportingComponent")),
    # strconv.Itoa of an int32 status field: absent is "0", never "".
    "status.successful": (lambda o: _int_text(_lookup(o, ("status", "succeeded"))),
                          ("status.succeeded",)),
    "status.replicas": (lambda o: _int_text(_lookup(o, ("status", "replicas"))),
                        ("status.replicas",)),
}
# The kinds whose ToSelectableFields compute those values.
_COMPUTING_KINDS = ("Pod", "Node", "Event", "Job", "ReplicaSet", "ReplicationController")

# One step of a plan: (field, constant value or None, compute function or None, path).
_Step = tuple[str, "str | None", Any, tuple[str, ...]]


@lru_cache(maxsize=512)
def _plan(rt: ResourceType) -> tuple[_Step, ...]:
    """How to compute each selectable field of ``rt``, decided once per resource type."""
    steps: list[_Step] = []
    for name in rt.selectable_fields:
        computed = _COMPUTED.get(name)
        if name == "metadata.namespace" and not rt.namespaced:
            steps.append((name, "", None, ()))
        elif computed is not None and rt.kind in _COMPUTING_KINDS:
            steps.append((name, None, computed[0], ()))
        else:
            steps.append((name, None, None, tuple(name.split("."))))
    return tuple(steps)


def selectable_values(obj: Mapping[str, Any], rt: ResourceType) -> dict[str, str]:
    """Every selectable field of ``obj`` as kube-apiserver computes it (missing is ``""``)."""
    out = {}
    for name, constant, compute, path in _plan(rt):
        if constant is not None:
            out[name] = constant
        elif compute is not None:
            out[name] = compute(obj)
        else:
            out[name] = _text(_lookup(obj, path))
    return out


@lru_cache(maxsize=512)
def read_paths(rt: ResourceType) -> tuple[str, ...]:
    """The dotted object paths that :func:`selectable_values` reads for ``rt``.

    A decoder that builds only these (and ``metadata``) gives the same values as a full
    decode; ``yurthub.kube.skeleton`` uses it to skip the rest of big objects.
    """
    paths: list[str] = []
    for name, constant, compute, _path in _plan(rt):
        if constant is not None:
            continue
        paths.extend(_COMPUTED[name][1] if compute is not None else [name])
    return tuple(dict.fromkeys(paths))
