"""Kubernetes' name rules, declared once: DNS-1123 labels and subdomains, DNS-1035 labels,
qualified names and label values, with apimachinery's wording for why a value is not one;
and the one name rule of our own, a cache component (the User-Agent's first word).

Used by the settings (node names, cache agents), the cache's keys (components, namespaces,
names, groups, resources) and the selectors (label keys and values).  Pure: strings in,
booleans and messages out.
"""

from __future__ import annotations

import re

# Patterns are matched with fullmatch: "$" would also accept a trailing newline, which Go's
# regexp (and a file name in the cache tree) does not.
QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE = re.compile(QNAME_FMT)
LABEL_VALUE_FMT = f"({QNAME_FMT})?"
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_FMT)
DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = f"{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL_FMT)
# A resource version name: a DNS-1035 label (v1, v1beta1, v2alpha1).
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(DNS1035_LABEL_FMT)
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
# A cache component: what a client's User-Agent says before its first "/", lower-cased
# ("kubelet", "kube-proxy", "coredns"), as the first segment of the cache tree names it.
COMPONENT_FMT = "[a-z0-9][a-z0-9._-]*"
_COMPONENT_RE = re.compile(COMPONENT_FMT)


def is_dns1123_label(value: str) -> bool:
    """A lowercase RFC 1123 label of at most 63 characters (a namespace, a resource)."""
    return len(value) <= DNS1123_LABEL_MAX and bool(_DNS1123_LABEL_RE.fullmatch(value))


def is_dns1123_subdomain(value: str) -> bool:
    """A lowercase RFC 1123 subdomain of at most 253 characters (an object or node name)."""
    return len(value) <= DNS1123_SUBDOMAIN_MAX and bool(_DNS1123_SUBDOMAIN_RE.fullmatch(value))


def is_dns1035_label(value: str) -> bool:
    """An RFC 1035 label of at most 63 characters (an API version)."""
    return len(value) <= DNS1123_LABEL_MAX and bool(_DNS1035_LABEL_RE.fullmatch(value))


def is_component(value: str) -> bool:
    """A cache component name (``kubelet``, ``kube-proxy``): ``[a-z0-9][a-z0-9._-]*``."""
    return bool(_COMPONENT_RE.fullmatch(value))


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's ``RegexError``: the message, examples and the regex it failed."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def go_quote(value: str) -> str:
    """A string quoted as Go's ``%q`` prints it (close enough for ASCII and UTF-8 text)."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _name_errors(value: str, max_len: int, pattern: re.Pattern[str], msg: str, fmt: str,
                 *examples: str) -> list[str]:
    """apimachinery's shape for a name rule: a length error, then the pattern's error."""
    errs = []
    if len(value) > max_len:
        errs.append(f"must be no more than {max_len} characters")
    if not pattern.fullmatch(value):
        errs.append(regex_error(msg, fmt, *examples))
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Why ``value`` is not a lowercase RFC 1123 subdomain (empty when it is one)."""
    return _name_errors(
        value, 253, _DNS1123_SUBDOMAIN_RE,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
        "'-' or '.', and must start and end with an alphanumeric character",
        DNS1123_SUBDOMAIN_FMT, "example.com")


def dns1123_label_errors(value: str) -> list[str]:
    """Why ``value`` is not a lowercase RFC 1123 label (empty when it is one)."""
    return _name_errors(
        value, DNS1123_LABEL_MAX, _DNS1123_LABEL_RE,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
        "'-', and must start and end with an alphanumeric character",
        DNS1123_LABEL_FMT, "my-name", "123-abc")


def dns1035_label_errors(value: str) -> list[str]:
    """Why ``value`` is not an RFC 1035 label (empty when it is one)."""
    return _name_errors(
        value, DNS1123_LABEL_MAX, _DNS1035_LABEL_RE,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
        "start with an alphabetic character, and end with an alphanumeric character",
        DNS1035_LABEL_FMT, "my-name", "abc-123")


def qualified_name_errors(value: str) -> list[str]:
    """Why ``value`` is not a qualified name (a label or annotation key)."""
    msg = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
           "with an alphanumeric character")
    parts = value.split("/")
    errs: list[str] = []
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + e for e in dns1123_subdomain_errors(prefix))
    else:
        return ["a qualified name " + regex_error(msg, QNAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not _QNAME_RE.fullmatch(name):
        errs.append("name part " + regex_error(msg, QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value (empty when it is one)."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def invalid(path: str, value: str, errs: list[str]) -> str:
    """A ``field.Invalid`` error as Go prints it."""
    return f"{path}: Invalid value: {go_quote(value)}: {'; '.join(errs)}"
