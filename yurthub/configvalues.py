"""The settings' value types: each turns a string (a flag or an INI value) into a value.

A parser raises ValueError with a short reason; ``yurthub.config`` adds the source, the key
and the value to it.  ``render`` is the inverse used by ``check-config`` and the generated
``yurthub.conf``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from yurthub.kube import bootstraptoken
from yurthub.kube.resources import builtin
from yurthub.kube.validation import is_component, is_dns1123_subdomain
from yurthub.redact import redact_userinfo

# YurtHub's response filters, in its order (yurthub.filters.settings registers them).
FILTER_NAMES = ("servicetopology", "masterservice", "discardcloudservice", "inclusterconfig",
                "nodeportisolation", "forwardkubesvctraffic", "serviceenvupdater")

_SIZE = re.compile(r"^(\d+)\s*(Ki|Mi|Gi|K|M|G)?$")
_SIZE_UNITS = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
_BOOL = {"1": True, "true": True, "yes": True, "on": True,
         "0": False, "false": False, "no": False, "off": False}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


# -- parsers: str -> value, raising ValueError with a reason ---------------------------------

def text(value: str) -> str:
    return value.strip()


def path(value: str) -> str:
    value = value.strip()
    if "\0" in value:
        raise ValueError("contains a NUL byte")
    return value


def abs_path(value: str) -> str:
    value = path(value)
    if not os.path.isabs(value):
        raise ValueError("must be an absolute path")
    return os.path.normpath(value)


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            n = int(value.strip(), 10)
        except ValueError:
            raise ValueError("not an integer") from None
        if not lo <= n <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return n
    return parse


def port(value: str) -> int:
    return int_range(1, 65535)(value)


def size(value: str) -> int:
    m = _SIZE.match(value.strip())
    if not m:
        raise ValueError("not a size (e.g. 67108864, 64Mi, 1Gi)")
    n = int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    if n < 1024 * 1024:
        raise ValueError("must be at least 1Mi")
    return n


def render_size(value: int) -> str:
    for unit, n in (("Gi", 2**30), ("Mi", 2**20)):
        if value % n == 0:
            return f"{value // n}{unit}"
    return str(value)


def boolean(value: str) -> bool:
    try:
        return _BOOL[value.strip().lower()]
    except KeyError:
        raise ValueError("not a boolean (true/false)") from None


def choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        v = value.strip()
        if v not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return v
    return parse


def ip(value: str) -> str:
    v = value.strip()
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise ValueError("not an IP address") from None
    return v


def listen_ip(value: str) -> str:
    """An address to listen on: an IPv6 link-local one with its zone (``fe80::1%eth0``),
    which the kernel refuses to bind without (the same address is on every link)."""
    v = ip(value)
    addr = ipaddress.ip_address(v)
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_link_local and not addr.scope_id:
        raise ValueError("a link-local address needs its interface, as in fe80::1%eth0")
    return v


def pod_reachable_ip(value: str) -> str:
    """An address the filters hand to pods (the kubernetes Service's clusterIP, their
    KUBERNETES_SERVICE_HOST): an IP without a zone (no URL or clusterIP takes one), not
    the unspecified address (in a pod that is the pod itself)."""
    v = ip(value)
    addr = ipaddress.ip_address(v)
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        raise ValueError("an IP address with a zone pods cannot use")
    if addr.is_unspecified:
        raise ValueError("not an address pods can reach")
    return v


def split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def server_addrs(value: str) -> tuple[str, ...]:
    out = []
    for item in split(value):
        url = item if "://" in item else "https://" + item
        shown = repr(redact_userinfo(item))
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{shown} is not an http(s) URL with a host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{shown} must not carry a query, fragment or user info")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"{shown} has a bad port") from None
        out.append(url.rstrip("/"))
    return tuple(out)


def agents(value: str) -> tuple[str, ...]:
    out = []
    for item in split(value):
        a = item.lower()
        if a != "*" and not is_component(a):
            raise ValueError(f"{item!r} is not a User-Agent name")
        out.append(a)
    return tuple(out)


def filter_names(value: str) -> tuple[str, ...]:
    out = []
    for item in split(value):
        if item != "*" and item not in FILTER_NAMES:
            raise ValueError(f"{item!r} is not a filter (one of {', '.join(FILTER_NAMES)}, "
                             "or * for all)")
        out.append(item)
    return tuple(out)


def pool_resources(value: str) -> tuple[str, ...]:
    """``group/version/resource`` items (an empty group is the core group: ``/v1/services``);
    each must be a built-in resource whose list and watch the multiplexer can answer."""
    out = []
    for item in split(value):
        parts = item.split("/")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ValueError(f"{item!r} is not group/version/resource (core: /v1/services)")
        if builtin(*parts) is None:
            raise ValueError(f"{item!r} is not a built-in resource")
        if item not in out:
            out.append(item)
    return tuple(out)




_USER = re.compile(r"^([a-z_][a-z0-9_.-]*[$]?|[0-9]+)$")


def user(value: str) -> str:
    v = value.strip()
    if not _USER.match(v):
        raise ValueError(f"{v!r} is not a user name or a numeric UID")
    return v


def users(value: str) -> tuple[str, ...]:
    return tuple(user(item) for item in split(value))


def ip_or_empty(value: str) -> str:
    return ip(value) if value.strip() else ""


def join_token(value: str) -> str:
    v = value.strip()
    if v:
        bootstraptoken.parse_token(v)
    return v


def organizations(value: str) -> tuple[str, ...]:
    return tuple(split(value))


def ca_hashes(value: str) -> tuple[str, ...]:
    return tuple(bootstraptoken.normalize_pin(p) for p in split(value))


def log_level(value: str) -> str:
    v = value.strip().upper()
    if v not in _LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(_LOG_LEVELS))
    return v


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def dns_name(what: str) -> Callable[[str], str]:
    """An optional lower-case DNS subdomain (a node or a node pool name); empty is allowed."""
    def parse(value: str) -> str:
        v = value.strip()
        if v and not is_dns1123_subdomain(v):
            raise ValueError(f"not a valid {what} name (lower-case DNS subdomain)")
        return v
    return parse
