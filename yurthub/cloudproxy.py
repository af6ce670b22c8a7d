"""The HTTP(S) proxy the environment names for a cloud server, as client-go takes it.

client-go (Go's ``http.ProxyFromEnvironment``) and YurtHub reach an ``https://`` apiserver
through ``HTTPS_PROXY`` (or ``https_proxy``) unless ``NO_PROXY`` (``no_proxy``) excludes it:
a host name (``example.com`` covers its subdomains too, ``.example.com`` only them), an IP
address, a CIDR, each maybe with a ``:port``, or ``*``; ``localhost`` and loopback
addresses are never proxied.  An edge node behind a proxy sets these in the service's
environment (a systemd drop-in); the hub used to ignore them and connect directly, and
where only the proxy leads out the cloud simply never answered.

design: the pools to such a server are urllib3's tunnelling pools (``CONNECT host:port``,
then TLS with the cloud end to end, verified as without a proxy); the proxy's user info
becomes ``Proxy-Authorization: Basic``.  A plain ``http://`` server (the sandbox, a test)
is connected to directly whatever ``HTTP_PROXY`` says, and the start says so.  A proxy
URL of another scheme (``socks5://``) is refused at start: it cannot be honoured, and
connecting around it is what the operator set it to prevent.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3.util import make_headers

from yurthub.errors import ConfigError
from yurthub.redact import redact_userinfo

_HTTPS_VARS = ("HTTPS_PROXY", "https_proxy")
_NO_VARS = ("NO_PROXY", "no_proxy")
_HTTP_VARS = ("HTTP_PROXY", "http_proxy")


class ProxySettingError(ConfigError):
    """A proxy variable the hub cannot honour (its text names the variable)."""


@dataclass(frozen=True)
class Route:
    """How the hub reaches one server: ``proxy`` is "" for directly."""

    server: str
    proxy: str = ""
    variable: str = ""  # the variable that named the proxy, or that was not followed
    note: str = ""      # why not through a proxy, when one is set

    def describe(self) -> str:
        if self.proxy:
            return f"{self.server} through {redact_userinfo(self.proxy)} ({self.variable})"
        return f"{self.server} ({self.note})" if self.note else self.server


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str]:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return "", ""


def _proxy_url(name: str, value: str) -> str:
    url = value if "://" in value else "http://" + value  # as Go: a bare host:port is http
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProxySettingError(
            f"{name}={redact_userinfo(value)!r}: yurthub tunnels through http:// or "
            "https:// proxies only")
    try:
        _ = parts.port
    except ValueError:
        raise ProxySettingError(f"{name}={redact_userinfo(value)!r}: bad port") from None
    return url


def _excluded(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (or the host itself) keeps ``host``:``port`` off the proxy."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = \
            ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        ip = None
    if ip is not None and ip.is_loopback:
        return True
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        try:  # an address or a CIDR, bare (an IPv6 one has colons of its own)
            net = ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            net = None
        if net is not None:
            if ip is not None and ip in net:
                return True
            continue
        name, want_port = entry, 0
        if entry.startswith("[") and "]:" in entry:  # [2001:db8::1]:6443
            name, _, p = entry[1:].partition("]:")
            want_port = int(p) if p.isdigit() else -1
        elif entry.count(":") == 1:
            name, _, p = entry.partition(":")
            want_port = int(p) if p.isdigit() else -1
        name = name.strip("[]").rstrip(".")
        if want_port and want_port != port:
            continue
        if ip is not None:  # an address is matched by addresses (here with a port) only
            try:
                if ip == ipaddress.ip_address(name):
                    return True
            except ValueError:
                pass
            continue
        if name.startswith("*."):
            name = name[1:]
        if name.startswith("."):
            if host.endswith(name):
                return True
        elif host == name or host.endswith("." + name):
            return True
    return False


def check(env: Mapping[str, str] | None = None) -> None:
    """Raises ProxySettingError when ``HTTPS_PROXY`` names a proxy the hub cannot use."""
    env = os.environ if env is None else env
    name, value = _first(env, _HTTPS_VARS)
    if value:
        _proxy_url(name, value)


def route(server: str, env: Mapping[str, str] | None = None) -> Route:
    """How ``server`` (``https://host:port``) is reached under ``env`` (the process's
    environment by default).  Raises ProxySettingError for a proxy it cannot use."""
    env = os.environ if env is None else env
    parts = urlsplit(server)
    if parts.scheme != "https":
        name, _ = _first(env, _HTTP_VARS)
        return Route(server, variable=name,
                     note=f"directly: {name} is not used for plain-HTTP servers" if name else "")
    name, value = _first(env, _HTTPS_VARS)
    if not value:
        return Route(server)
    url = _proxy_url(name, value)
    _, no_proxy = _first(env, _NO_VARS)
    if _excluded(parts.hostname or "", parts.port or 443, no_proxy):
        return Route(server, variable=name, note=f"directly: NO_PROXY or a loopback "
                     f"address excludes it from {name}")
    return Route(server, proxy=url, variable=name)


def connection_from_url(server: str, **kw: Any) -> Any:
    """urllib3's pool for ``server`` (as ``urllib3.connection_from_url``), tunnelling
    through the proxy the environment names for it."""
    proxy = route(server).proxy
    if not proxy:
        return urllib3.connection_from_url(server, **kw)
    parts = urlsplit(proxy)
    headers = {}
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers = make_headers(proxy_basic_auth=userinfo)
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    # One manager per pool: a manager closes the pools it evicts, and these live on.
    manager = urllib3.ProxyManager(bare, num_pools=1, proxy_headers=headers)
    return manager.connection_from_url(server, pool_kwargs=kw)


def open_tunnel(pool: Any, conn: Any) -> None:
    """Connect ``conn`` (a new connection of ``pool``), through the pool's proxy when it
    has one (the CONNECT, then TLS with the server)."""
    if getattr(pool, "proxy", None) is not None:
        pool._prepare_proxy(conn)  # sets the tunnel up and connects, in 1.26 and 2.x
    else:
        conn.connect()
