"""Settings: each declared once (name, type, default, validation, help) on the Config dataclass.

The same declarations build the command-line flags, read the INI file (section ``[yurthub]``,
keys named like the flags with ``_`` for ``-``), generate ``etc/yurthub/yurthub.conf`` and
drive ``yurthub check-config``.  Values come from defaults, then the INI file, then flags;
an unknown key or a bad value is a ConfigError naming the source, the key and the value.
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from yurthub import configvalues as v
from yurthub.configvalues import FILTER_NAMES as FILTER_NAMES  # the filters' names, re-exported
from yurthub.errors import ConfigError
from yurthub.redact import redact_userinfo

SECTION = "yurthub"
DEFAULT_CONFIG_FILE = "/etc/yurthub/yurthub.conf"
CONFIG_ENV = "YURTHUB_CONFIG"

# YurtHub's built-in cache agents; the cache-agents setting extends them.
DEFAULT_CACHE_AGENTS = (
    "kubelet", "kube-proxy", "flanneld", "coredns", "raven-agent-ds", "yurttunnel-agent", "yurthub",
    "yurthub-multiplexer")
# The component (User-Agent name) of the multiplexer's own list+watch through the proxy: its
# objects are cached once, under this name, and never filtered (it starts with "yurthub").
MULTIPLEXER_AGENT = "yurthub-multiplexer"


# -- declarations ---------------------------------------------------------------------------

def setting(default: Any, parse: Callable[[str], Any], help: str, *, metavar: str = "VALUE",
            render: Callable[[Any], str] | None = None, secret: bool = False,
            repeatable: bool = False) -> Any:
    """Declare one setting: its default, how a string becomes a value, and one line of help.

    A ``secret`` is never printed (check-config shows whether it is set); a ``repeatable``
    flag may be given several times (the values join as a comma-separated list).
    """
    return field(default=default, metadata={
        "parse": parse, "help": help, "metavar": metavar, "render": render or v.render,
        "secret": secret, "repeatable": repeatable,
    })


@dataclass(frozen=True)
class Config:
    """The gateway's effective settings.  Built by ``load``; passed in, never global."""

    server_addr: tuple[str, ...] = setting(
        (), v.server_addrs, "kube-apiserver URL(s), comma-separated (https:// is assumed)",
        metavar="URL[,URL...]")
    kubeconfig: str = setting(
        "", v.path, "kubeconfig giving the server, CA and the hub's credentials", metavar="FILE")
    node_name: str = setting(
        "", v.dns_name("node"), "this node's name (default: the host name)", metavar="NAME")
    working_mode: str = setting(
        "edge", v.choice("edge", "cloud"),
        "edge serves from the cache when the cloud is unreachable; cloud only proxies",
        metavar="edge|cloud")
    bind_address: str = setting(
        "127.0.0.1", v.listen_ip, "address the ports listen on; a loopback address unless "
        "allow_non_loopback_bind", metavar="IP")
    allow_non_loopback_bind: bool = setting(
        False, v.boolean, "accept a bind_address beyond loopback, for the TLS proxy port only: "
        "the plain-HTTP ports (proxy, hub server) always stay on loopback",
        metavar="true|false")
    proxy_port: int = setting(10261, v.port, "port of the API proxy", metavar="PORT")
    serve_port: int = setting(
        10267, v.port, "port of the hub server (/v1/healthz, /v1/readyz, /metrics; /status and "
        "/v1/status on loopback)", metavar="PORT")
    disk_cache_path: str = setting(
        "/var/lib/yurthub/cache", v.abs_path, "root of the cache tree", metavar="DIR")
    cache_agents: tuple[str, ...] = setting(
        (), v.agents, "User-Agents cached besides YurtHub's defaults; * caches every component",
        metavar="A[,B...]")
    lb_mode: str = setting(
        "rr", v.choice("rr", "priority"), "how requests spread over healthy servers",
        metavar="rr|priority")
    heartbeat_interval_seconds: int = setting(
        10, v.int_range(1, 3600), "seconds between health probes (node Lease renewals)",
        metavar="SECONDS")
    heartbeat_timeout_seconds: int = setting(
        2, v.int_range(1, 300), "timeout of one health probe", metavar="SECONDS")
    heartbeat_failed_retry: int = setting(
        3, v.int_range(1, 100), "attempts of one probe before the server counts as failed",
        metavar="N")
    heartbeat_healthy_threshold: int = setting(
        2, v.int_range(1, 100), "successful probes before an unhealthy server is used again",
        metavar="N")
    kubelet_health_grace_period: int = setting(
        40, v.int_range(1, 86400),
        "stop renewing the node Lease when kubelet sent no lease request for this many seconds",
        metavar="SECONDS")
    ca_file: str = setting(
        "", v.path, "CA bundle that signs the apiserver's certificate", metavar="FILE")
    client_cert_file: str = setting(
        "", v.path, "the hub's client certificate for the apiserver", metavar="FILE")
    client_key_file: str = setting(
        "", v.path, "private key of the hub's client certificate", metavar="FILE")
    token_file: str = setting(
        "", v.path, "file holding the hub's bearer token for the apiserver", metavar="FILE")
    insecure_skip_tls_verify: bool = setting(
        False, v.boolean, "do not verify the apiserver's certificate (testing only)",
        metavar="true|false")
    threads: int = setting(
        256, v.int_range(4, 4096), "request threads; every open watch holds one (kubelet "
        "keeps one per ConfigMap and Secret its pods use: about 4 per pod)", metavar="N")
    max_watches: int = setting(
        0, v.int_range(0, 4096),
        "open watches allowed before new ones get 429 (0: threads minus 16)", metavar="N")
    graceful_timeout: int = setting(
        20, v.int_range(1, 600), "seconds open requests get to finish on shutdown",
        metavar="SECONDS")
    client_send_timeout: int = setting(
        30, v.int_range(1, 3600), "seconds a client may stop reading before it is cut off",
        metavar="SECONDS")
    client_header_timeout: int = setting(
        10, v.int_range(1, 600), "seconds a client has to send a whole request head, from "
        "connecting (or from the first byte of the next request on a kept-alive connection)",
        metavar="SECONDS")
    client_body_timeout: int = setting(
        30, v.int_range(1, 3600), "seconds a client has to send a whole request body, from "
        "the end of its head; until then it holds no thread", metavar="SECONDS")
    request_timeout: int = setting(
        60, v.int_range(1, 3600), "seconds the answer to a request that is not long-running (a "
        "watch, a log, exec, attach, port-forward) may take to send, first byte to last, as "
        "kube-apiserver's --request-timeout; past it the connection is closed",
        metavar="SECONDS")
    max_connections: int = setting(
        4096, v.int_range(16, 1_000_000), "open connections to the proxy port; more are refused "
        "with 429 (kubelet's user has a reserve beyond it)", metavar="N")
    max_connections_per_uid: int = setting(
        1024, v.int_range(1, 1_000_000), "open connections to the proxy port from one user "
        "(the owner of the client's socket)", metavar="N")
    peer_lookup: str = setting(
        "auto", v.choice("auto", "netlink", "proc", "off"),
        "how the user owning each connection is learnt: auto (netlink sock_diag, else "
        "/proc/net/tcp), netlink, proc, or off (every local process is trusted; not for "
        "production)", metavar="auto|netlink|proc|off")
    allowed_users: tuple[str, ...] = setting(
        ("root", "kube-proxy"), v.users, "users (names or UIDs) whose processes may use the "
        "hub's own credentials, i.e. send requests without Authorization; names that are not "
        "users on this host are ignored", metavar="USER[,USER...]")
    kubelet_user: str = setting(
        "root", v.user, "the user kubelet runs as: only its requests count as kubelet's "
        "(the node Lease heartbeat, kubelet's cache)", metavar="USER")
    token_memory_ttl: int = setting(
        86400, v.int_range(60, 31_536_000), "seconds after the cloud last accepted a bearer "
        "token that it is still honoured offline (a JWT with an expiry: until that expiry)",
        metavar="SECONDS")
    token_recheck_interval: int = setting(
        60, v.int_range(0, 86400), "online, a bearer token's grant older than this is "
        "confirmed with the cloud (a limit=1 list with the token) before the shared state of "
        "a pool-scoped resource answers it; 401/403 reach the client and drop the grant (0: "
        "every request)", metavar="SECONDS")
    token_memory_size: int = setting(
        1024, v.int_range(1, 1_000_000), "bearer tokens remembered for offline checks (the "
        "least recently accepted are forgotten first)", metavar="N")
    min_request_timeout: int = setting(
        1800, v.int_range(1, 86400),
        "offline watches without timeoutSeconds last this long times (1 + rand)",
        metavar="SECONDS")
    watch_bookmark_interval: int = setting(
        60, v.int_range(1, 3600), "seconds between BOOKMARK events of watches served from the "
        "cache (to clients that allow bookmarks)", metavar="SECONDS")
    cache_tee_budget: int = setting(
        64 * 2**20, v.size, "bytes a response may run ahead of the cache writer before its "
        "cache entry is dropped", metavar="BYTES", render=lambda v: f"{v // 2**20}Mi")
    cache_quota: int = setting(
        2**30, v.size, "bytes the cache may hold (objects, watch history); idle collections "
        "are evicted, least recently used first", metavar="BYTES", render=v.render_size)
    cache_component_quota: int = setting(
        512 * 2**20, v.size, "bytes the cache may hold for one component (User-Agent)",
        metavar="BYTES", render=v.render_size)
    cache_max_collections: int = setting(
        1000, v.int_range(1, 100_000), "collections (component, resource) the cache may hold",
        metavar="N")
    cache_memory_limit: int = setting(
        48 * 2**20, v.size, "bytes all responses together may hold in memory waiting for the "
        "cache writer; past it the largest backlog's cache entry is dropped (its view "
        "marked stale until the next list)", metavar="BYTES", render=v.render_size)
    watch_history_size: int = setting(
        1024, v.int_range(16, 1_000_000),
        "watch events kept per cached collection for offline watch resume", metavar="N")
    enable_resource_filter: bool = setting(
        True, v.boolean, "run the response filters", metavar="true|false")
    disabled_resource_filters: tuple[str, ...] = setting(
        (), v.filter_names, "filters not to run (* disables all)", metavar="F[,G...]")
    nodepool_name: str = setting(
        "", v.dns_name("node pool"),
        "this node's pool (default: its Node's apps.openyurt.io/nodepool label)", metavar="NAME")
    root_dir: str = setting(
        "/var/lib/yurthub", v.abs_path, "the hub's working directory: pki/ (CA, certificates, "
        "keys) and the bootstrap and hub kubeconfigs", metavar="DIR")
    bootstrap_mode: str = setting(
        "auto", v.choice("auto", "token", "kubeletcertificate", "credentials"),
        "how the hub gets its identity: token (bootstrap token and CSRs), kubeletcertificate "
        "(kubelet's client certificate), credentials (kubeconfig, client_cert_file, "
        "token_file, ca_file, or none); auto: credentials when any is set, token when a join "
        "token is set or a server is https, else none (plain HTTP)",
        metavar="auto|token|kubeletcertificate|credentials")
    join_token: str = setting(
        "", v.join_token, "bootstrap token (ID.SECRET) to join with; prefer join_token_file or "
        "bootstrap_file, which keep it out of this file and of ps", metavar="TOKEN",
        secret=True)
    join_token_file: str = setting(
        "", v.path, "file holding the bootstrap token to join with", metavar="FILE")
    bootstrap_file: str = setting(
        "", v.path, "bootstrap kubeconfig holding a bootstrap token (and the cluster's CA)",
        metavar="FILE")
    discovery_token_ca_cert_hash: tuple[str, ...] = setting(
        (), v.ca_hashes, "pin(s) of the cluster CA (sha256:<hex of its SubjectPublicKeyInfo>) "
        "that cluster-info must match", metavar="sha256:HEX[,...]", repeatable=True)
    discovery_token_unsafe_skip_ca_verification: bool = setting(
        False, v.boolean, "trust cluster-info's CA without a pin (unsafe)", metavar="true|false")
    discovery_timeout: int = setting(300, v.int_range(0, 86400), "seconds the start asks "
        "for a cluster-info signed for the join token, as kubeadm join; 0: refuse at once",
        metavar="SECONDS")
    hub_cert_organizations: tuple[str, ...] = setting(
        (), v.organizations, "extra organizations (O) of the hub's client certificate",
        metavar="O[,O...]")
    kubelet_conf: str = setting(
        "/etc/kubernetes/kubelet.conf", v.abs_path,
        "kubelet's kubeconfig (bootstrap_mode kubeletcertificate)", metavar="FILE")
    kubelet_client_certificate: str = setting(
        "/var/lib/kubelet/pki/kubelet-client-current.pem", v.abs_path,
        "kubelet's client certificate and key (bootstrap_mode kubeletcertificate)",
        metavar="FILE")
    kubelet_ca_file: str = setting(
        "/etc/kubernetes/pki/ca.crt", v.abs_path, "the cluster CA when kubelet's kubeconfig "
        "names none (bootstrap_mode kubeletcertificate)", metavar="FILE")
    node_ip: str = setting(
        "", v.ip_or_empty, "this node's IP, in the serving certificate (default: the local "
        "address that routes to the apiserver)", metavar="IP")
    hub_serving_address: str = setting(
        "169.254.2.1", v.pod_reachable_ip, "address pods reach the hub at; the filters point "
        "the kubernetes Service, its EndpointSlice and pods' KUBERNETES_SERVICE_HOST there",
        metavar="IP")
    secure_proxy_port: int = setting(
        10268, v.int_range(0, 65535), "the hub's HTTPS proxy port (on hub_serving_address; 0 "
        "turns it off); the filters point the kubernetes Service's https port and "
        "KUBERNETES_SERVICE_PORT there", metavar="PORT")
    pool_scope_resources: tuple[str, ...] = setting(
        ("/v1/services", "discovery.k8s.io/v1/endpointslices"), v.pool_resources,
        "resources whose lists and watches every local client gets from one shared upstream "
        "list+watch (group/version/resource; empty: none)", metavar="G/V/R[,...]")
    log_level: str = setting("INFO", v.log_level, "DEBUG, INFO, WARNING or ERROR", metavar="LEVEL")

    @property
    def effective_cache_agents(self) -> frozenset[str]:
        return frozenset(DEFAULT_CACHE_AGENTS) | frozenset(self.cache_agents)

    @property
    def plain_bind_address(self) -> str:
        """Where the plain-HTTP ports (the proxy, the hub server) listen: ``bind_address``
        when it is a loopback address, else the loopback address of its family.  The plain
        proxy answers any client with the hub's own credentials: it never listens beyond
        the node itself, whatever the settings say."""
        if ipaddress.ip_address(self.bind_address).is_loopback:
            return self.bind_address
        return "::1" if ":" in self.bind_address else "127.0.0.1"

    @property
    def secure_bind_address(self) -> str:
        """``bind_address`` (checked by ``load``): beyond loopback, for the TLS port only."""
        return self.bind_address

    @property
    def secure_addresses(self) -> tuple[str, ...]:
        """Where the TLS proxy port listens: ``hub_serving_address`` (where pods reach the
        hub, as YurtHub's dummy interface address), and ``bind_address`` too when it is
        beyond loopback (``allow_non_loopback_bind``; a wildcard covers both)."""
        extra = self.secure_bind_address
        if extra == self.plain_bind_address or extra == self.hub_serving_address:
            return (self.hub_serving_address,)
        if ipaddress.ip_address(extra).is_unspecified:
            return (extra,)  # every address, the serving address included
        return (self.hub_serving_address, extra)

    @property
    def effective_max_watches(self) -> int:
        return self.max_watches or max(1, self.threads - 16)

    @property
    def effective_bootstrap_mode(self) -> str:
        """``auto`` resolved: explicit credentials when any is set; token when a join token
        or bootstrap file is set, or some server is https (a bootstrap token needs TLS to
        pin the CA); else (plain-HTTP servers only) credentials, i.e. none at all."""
        if self.bootstrap_mode != "auto":
            return self.bootstrap_mode
        if self.kubeconfig or self.client_cert_file or self.token_file or self.ca_file:
            return "credentials"
        if self.join_token or self.join_token_file or self.bootstrap_file:
            return "token"
        if self.server_addr and all(s.startswith("http://") for s in self.server_addr):
            return "credentials"
        return "token"


def settings() -> tuple[dataclasses.Field[Any], ...]:
    """Every declared setting, in declaration order."""
    return dataclasses.fields(Config)


def flag_name(f: dataclasses.Field[Any]) -> str:
    return f.name.replace("_", "-")


def parse_value(f: dataclasses.Field[Any], raw: str, source: str) -> Any:
    try:
        return f.metadata["parse"](raw)
    except ValueError as e:
        shown = "(not shown)" if f.metadata["secret"] else repr(redact_userinfo(raw))
        raise ConfigError(f"{source}: {f.name} = {shown}: {e}") from None


def render_value(f: dataclasses.Field[Any], value: Any) -> str:
    return str(f.metadata["render"](value))


MAX_INI_BYTES = 1 << 20


def read_ini(path: str) -> dict[str, str]:
    """The raw ``[yurthub]`` key/values of an INI file; unknown sections or keys are errors."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INI_BYTES + 1)  # bounded: /dev/zero or a FIFO is no file
        if len(data) > MAX_INI_BYTES:
            raise ConfigError(f"{path}: not a config file: larger than {MAX_INI_BYTES} bytes")
        parser.read_string(data.decode("utf-8"), source=path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
    except (configparser.Error, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0]
        raise ConfigError(f"{path}: not a valid INI file: {first}") from None
    known = {f.name for f in settings()}
    for section in parser.sections():
        if section != SECTION:
            raise ConfigError(f"{path}: unknown section [{section}] (expected [{SECTION}])")
    values: dict[str, str] = {}
    spelled: dict[str, str] = {}
    if parser.has_section(SECTION):
        for key, raw in parser.items(SECTION):
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"{path}: unknown key {key!r} (value {raw!r}) in [{SECTION}]")
            if name in values:  # configparser refuses a key twice, not two spellings of it
                raise ConfigError(f"{path}: {name} is set twice in [{SECTION}] (as "
                                  f"{spelled[name]!r} and {key!r})")
            values[name], spelled[name] = raw, key
    return values


def value_problems(path: str | None, overrides: Mapping[str, str] | None = None) -> list[str]:
    """Every value of the file at ``path`` and of ``overrides`` that does not parse, one
    message each, as ``load`` words the first (``check-config`` lists them all; the service
    stops at the first).  A file that cannot be read or holds an unknown key is one problem.
    """
    by_name = {f.name: f for f in settings()}
    raw: list[tuple[str, str, str]] = []
    try:
        if path:
            raw += [(name, value, path) for name, value in read_ini(path).items()]
    except ConfigError as e:
        return [str(e)]
    raw += [(name, value, "--" + flag_name(by_name[name]))
            for name, value in (overrides or {}).items() if name in by_name]
    problems = []
    for name, value, source in raw:
        try:
            parse_value(by_name[name], value, source)
        except ConfigError as e:
            problems.append(str(e))
    return problems


def service_file() -> str | None:
    """The file the service reads: ``$YURTHUB_CONFIG``, else the default one if it exists
    (what ``check-config`` and ``cache`` read without ``--config``)."""
    path = os.environ.get(CONFIG_ENV)
    if path is None and os.path.exists(DEFAULT_CONFIG_FILE):
        path = DEFAULT_CONFIG_FILE
    return path


def load(path: str | None = None, overrides: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the INI file at ``path`` (if given), then ``overrides`` (flag values)."""
    by_name = {f.name: f for f in settings()}
    values: dict[str, Any] = {}
    if path:
        for name, raw in read_ini(path).items():
            values[name] = parse_value(by_name[name], raw, path)
    for name, raw in (overrides or {}).items():
        f = by_name.get(name)
        if f is None:
            raise ConfigError(f"command line: unknown setting {name!r}")
        values[name] = parse_value(f, raw, "--" + flag_name(f))
    cfg = Config(**values)
    if not cfg.node_name:
        cfg = dataclasses.replace(cfg, node_name=_default_node_name())
    _check(cfg, path or "command line")
    return cfg


def _overlap(cache: str, root: str) -> str:
    """Why the cache tree and the identity's directory would mix ("" when they do not).

    The cache refuses a directory with files not its own, and its sweep and ``yurthub cache
    purge`` would take the hub's certificates for cached objects; the cache below root_dir
    (root_dir/cache, the default) is the layout that keeps them apart."""
    cache, root = os.path.normpath(cache), os.path.normpath(root)
    if cache == root:
        return "the cache and the hub's identity cannot share a directory"
    if os.path.commonpath([cache, root]) == cache:
        return "root_dir is inside the cache"
    if os.path.commonpath([cache, os.path.join(root, "pki")]) == os.path.join(root, "pki"):
        return "the cache is inside root_dir's pki"
    return ""


def _default_node_name() -> str:
    return socket.gethostname().split(".")[0].lower()


def _check(cfg: Config, source: str) -> None:
    """Cross-setting rules that no single parser can see."""
    if cfg.proxy_port == cfg.serve_port:
        raise ConfigError(f"{source}: proxy_port and serve_port are both {cfg.proxy_port}")
    if cfg.secure_proxy_port in (cfg.proxy_port, cfg.serve_port):
        raise ConfigError(f"{source}: secure_proxy_port {cfg.secure_proxy_port} is also "
                          "proxy_port or serve_port")
    if bool(cfg.client_cert_file) != bool(cfg.client_key_file):
        raise ConfigError(f"{source}: client_cert_file and client_key_file must be set together")
    if not ipaddress.ip_address(cfg.bind_address).is_loopback and \
            not cfg.allow_non_loopback_bind:
        raise ConfigError(
            f"{source}: bind_address = {cfg.bind_address!r} is not a loopback address: the "
            f"plain-HTTP proxy (port {cfg.proxy_port}) serves every client with the hub's own "
            "credentials and never listens beyond loopback; set allow_non_loopback_bind = "
            "true to offer other addresses the TLS proxy port only")
    mode = cfg.effective_bootstrap_mode
    if mode != "credentials":
        for name in ("kubeconfig", "client_cert_file", "token_file", "ca_file"):
            if getattr(cfg, name):
                raise ConfigError(f"{source}: {name} is set, but bootstrap_mode is {mode}: "
                                  "set bootstrap_mode = credentials or unset it")
    if sum(bool(v) for v in (cfg.join_token, cfg.join_token_file, cfg.bootstrap_file)) > 1:
        raise ConfigError(f"{source}: set only one of join_token, join_token_file and "
                          "bootstrap_file")
    if cfg.discovery_token_ca_cert_hash and cfg.discovery_token_unsafe_skip_ca_verification:
        raise ConfigError(f"{source}: discovery_token_ca_cert_hash and "
                          "discovery_token_unsafe_skip_ca_verification exclude each other")
    overlap = _overlap(cfg.disk_cache_path, cfg.root_dir)
    if overlap:
        raise ConfigError(f"{source}: disk_cache_path = {cfg.disk_cache_path!r} and root_dir = "
                          f"{cfg.root_dir!r}: {overlap}")


def describe(cfg: Config) -> Iterable[tuple[str, str, str]]:
    """(key, effective value, help) of every setting, for ``check-config``."""
    for f in settings():
        value = render_value(f, getattr(cfg, f.name))
        if f.metadata["secret"] and value:
            value = "(set, not shown)"
        yield f.name, value, str(f.metadata["help"])


def default_ini() -> str:
    """The text of ``etc/yurthub/yurthub.conf``: every setting, commented, with its default."""
    lines = [
        "# yurthub settings.  Every key is shown with its default value, commented out.",
        "# Keys are the command-line flags of `yurthub serve` with '_' for '-'.",
        "# Check a file with: yurthub check-config --config /etc/yurthub/yurthub.conf",
        "",
        f"[{SECTION}]",
    ]
    for f in settings():
        default = f.default
        lines.append(f"# {f.metadata['help']}")
        lines.append(f"#{f.name} = {render_value(f, default)}".rstrip())
        lines.append("")
    return "\n".join(lines)
