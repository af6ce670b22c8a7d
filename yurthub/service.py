"""gunicorn glue: the settings, the worker hooks, preflight checks and the in-process server.

Production runs ``gunicorn --config /etc/yurthub/gunicorn.conf.py yurthub.wsgi:application``;
that config file takes its settings from ``gunicorn_settings`` here, and ``yurthub serve``
runs the same settings in-process, so both paths behave alike.  Background threads start
in the worker (``post_worker_init``), never at import; SIGTERM first ends open watches
cleanly, then lets gunicorn drain the rest within ``graceful_timeout``.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import re
import resource
import signal
import socket
import sys
import threading
from typing import Any, NoReturn

from yurthub import cloudproxy, config, configfiles, linux
from yurthub.access.guard import kubelet_uid
from yurthub.app import Hub
from yurthub.config import Config
from yurthub.connection import WORKER_SETS_CONNECTION
from yurthub.errors import Busy, ConfigError, YurthubError
from yurthub.identity import hub as identity
from yurthub.peercred import open_lookup
from yurthub.redact import redact_url_secrets
from yurthub.storage import not_a_cache, root_in_use

log = logging.getLogger(__name__)

CONFIG_ENV = config.CONFIG_ENV
WORKER_BOOT_ERROR = 3  # gunicorn's arbiter stops when a worker exits with this
# The worker's descriptor table is sized once, before its threads start, for as many
# descriptors as it may open (RLIMIT_NOFILE; the unit sets 65536), at most this many: 512
# KiB of kernel memory.  Grown later, under load, each doubling stalled every thread that
# opened a connection or a tee's pipe for an RCU grace period (small GETs during a big
# list's commit: +8 to +15 ms p99, as the tees waiting for the writer took 256, 512, 1,024
# descriptors).
FD_TABLE_MAX = 65536
_hub: Hub | None = None
_cfg: Config | None = None
_starting: threading.Thread | None = None


# Control characters (line breaks above all) and Unicode line separators in a message.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\x{ord(c):02x}" if ord(c) < 256
                                                         else f"\\u{ord(c):04x}")


def stderr_is_journal() -> bool:
    """systemd connected stderr to the journal: ``$JOURNAL_STREAM`` names its device:inode
    (a child whose stderr is something else inherits the variable, hence the check)."""
    try:
        dev, ino = (int(x) for x in os.environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def journal_priority(levelno: int) -> str:
    """sd-daemon(3)'s prefix: the journal files the line under syslog priority N, so
    ``journalctl -p warning`` shows it (unprefixed, every line of stderr is info)."""
    for level, n in ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                     (logging.INFO, 6)):
        if levelno >= level:
            return f"<{n}>"
    return "<7>"


PRIVATE_UMASK = 0o077  # as the unit's UMask=: nothing the hub makes is for other users
EX_TEMPFAIL = 75  # held by another process now (Busy): systemd starts the hub again
EX_CONFIG = 78    # a bad setting: the unit's RestartPreventExitStatus waits for the operator


def exit_status(e: YurthubError) -> int:
    """The exit status of a start that ``e`` stopped (the unit restarts 75, not 78)."""
    return EX_TEMPFAIL if isinstance(e, Busy) else EX_CONFIG


def error_line(e: YurthubError) -> str:
    """The one line on stderr that stops the start (exit 75 or 78)."""
    return (journal_priority(logging.ERROR) if stderr_is_journal() else "") + f"yurthub: {e}"


def journal_logger_class() -> type:
    """gunicorn's logger, its own lines (the master's "Worker (pid:N) was sent SIGKILL!
    Perhaps out of memory?" at ERROR, "WORKER TIMEOUT" at CRITICAL) carrying their syslog
    priority in the journal as the hub's lines do.

    why: journald filed them as info, so an OOM kill of the worker under MemoryMax= was
    invisible to ``journalctl -p warning`` and to alerts on priority.  (A function, so
    gunicorn is imported only where it runs.)
    """
    from gunicorn import glogging

    class JournalLogger(glogging.Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            if stderr_is_journal():
                for h in self.error_log.handlers:
                    h.setFormatter(_PriorityPrefix(h.formatter))

    return JournalLogger


class _PriorityPrefix(logging.Formatter):
    """Another formatter's line, prefixed with the record's journal priority."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return journal_priority(record.levelno) + self.inner.format(record)


class EscapingFormatter(logging.Formatter):
    """One record, one line: a message never carries a raw line break or control character,
    whatever a client put in a path, a User-Agent or a name that ends up in it (a forged log
    line would otherwise be one ``%0A`` away).  Tracebacks keep their lines.  In the journal,
    the line starts with its priority.  No URL's credentials are printed, tracebacks
    included."""

    journal = False

    def format(self, record: logging.LogRecord) -> str:
        return redact_url_secrets(super().format(record))

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _UNSAFE.sub(_escape, record.message)
        line = super().formatMessage(record)
        return journal_priority(record.levelno) + line if self.journal else line


def configure_logging(cfg: Config) -> None:
    """Module loggers to stderr (journald adds the time); idempotent."""
    root = logging.getLogger()
    if not any(getattr(h, "_yurthub", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        formatter = EscapingFormatter("%(levelname)s %(name)s: %(message)s")
        formatter.journal = stderr_is_journal()
        handler.setFormatter(formatter)
        handler._yurthub = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(cfg.log_level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    pool_log = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _NoRetryWarnings) for f in pool_log.filters):
        pool_log.addFilter(_NoRetryWarnings())


class _NoRetryWarnings(logging.Filter):
    """Drops urllib3's "Retrying (Retry(total=0, ...)) after connection broken by ..." lines.

    why: while the cloud was away every request tried the next server with one, naming
    urllib3's internal connection class; the hub says what failed itself (the health line,
    the Status answer, the watch's retry line), once per change.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Retrying ("))


def _host(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


def gunicorn_settings(cfg: Config) -> dict[str, Any]:
    """Every gunicorn setting yurthub relies on (only those this gunicorn knows)."""
    from gunicorn.config import KNOWN_SETTINGS

    known = {s.name for s in KNOWN_SETTINGS}
    return {k: v for k, v in _settings(cfg).items() if k in known}


def _settings(cfg: Config) -> dict[str, Any]:
    # Plain HTTP never beyond loopback (config.Config.plain_bind_address).
    bind = [f"{_host(cfg.plain_bind_address)}:{cfg.proxy_port}",
            f"{_host(cfg.plain_bind_address)}:{cfg.serve_port}"]
    if cfg.secure_proxy_port:
        # gunicorn adopts either descriptors or addresses, not both: yurthub binds them all
        # (10268 with IP_FREEBIND).  No certfile: the worker wraps 10268's connections.
        bind = [f"fd://{fd}" for fd in listener_fds(cfg)]
    return {
        "bind": bind,
        # gthread's pool and request handling behind a loop idle clients cannot freeze; it
        # wraps the secure proxy port's connections in TLS (app.worker_settings).
        "worker_class": "yurthub.worker.YurthubWorker",
        "workers": 1,               # one process owns the cache tree
        "threads": cfg.threads,     # every open watch holds one
        "worker_connections": max(1000, 2 * cfg.threads + 64),
        "timeout": 60,
        "graceful_timeout": cfg.graceful_timeout,
        "keepalive": 30,
        "max_requests": 0,          # a worker restart would cut every watch
        "preload_app": False,       # threads started before the fork would not survive it
        "accesslog": None,
        "errorlog": "-",
        "loglevel": cfg.log_level.lower(),
        "logger_class": journal_logger_class,  # gunicorn calls it for the class
        "proc_name": "yurthub",
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
        # gunicorn >= 24 opens a control socket under $HOME; the service has no use for it.
        "control_socket_disable": True,
    }


_listener_fds: dict[tuple[object, ...], list[int]] = {}


def _listen(addr: str, port: int, *, freebind: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if freebind:
            # hub_serving_address (169.254.2.1) may appear later, on a dummy interface the
            # operator sets up: bind before it exists, as systemd's FreeBind= does.  The
            # IPv4 level's option serves IPv6 sockets too (IPV6_FREEBIND is 78, not 15).
            s.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
        s.bind(_sockaddr(addr, port, family))
    except OSError as e:
        s.close()
        where = f"cannot listen on {_host(addr)}:{port}: {e.strerror}"
        if e.errno == errno.EADDRINUSE:
            raise Busy(f"{where} (is another yurthub running?)") from None
        raise ConfigError(where) from None
    return s


_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


def _sockaddr(addr: str, port: int, family: int) -> Any:
    """The address ``bind`` takes, an IPv6 zone (``fe80::1%eth0``) kept as the scope id.

    why: ``bind((host, port))`` drops the zone (a 2-tuple's scope id is 0), and the kernel
    refuses a link-local address without its interface: the hub stopped with "Invalid
    argument" on the address the settings had accepted."""
    if family != socket.AF_INET6:
        return (addr, port)
    return socket.getaddrinfo(addr, port, family, socket.SOCK_STREAM, 0,
                              socket.AI_NUMERICHOST)[0][4]


def listener_fds(cfg: Config) -> list[int]:
    """The listening sockets of the proxy and the hub server (on ``plain_bind_address``) and
    of the secure proxy (on each of ``secure_addresses``, with IP_FREEBIND) as descriptors
    gunicorn adopts (``fd://N``); made once per process."""
    key = (cfg.plain_bind_address, cfg.proxy_port, cfg.serve_port, cfg.secure_proxy_port,
           cfg.secure_addresses)
    fds = _listener_fds.get(key)
    if fds is None:
        fds = []
        wanted = [(cfg.plain_bind_address, cfg.proxy_port, False),
                  (cfg.plain_bind_address, cfg.serve_port, False)]
        wanted += [(addr, cfg.secure_proxy_port, True) for addr in cfg.secure_addresses]
        for addr, port, freebind in wanted:
            s = _listen(addr, port, freebind=freebind)
            s.listen(2048)
            fd = s.detach()
            os.set_inheritable(fd, True)
            fds.append(fd)
        _listener_fds[key] = fds
    return fds


def load_config(path: str | None = None) -> Config:
    """The settings of a production start: the INI file (``$YURTHUB_CONFIG`` or the default)."""
    global _cfg
    if _cfg is None:
        path = path or os.environ.get(CONFIG_ENV) or config.DEFAULT_CONFIG_FILE
        _cfg = config.load(path)
    return _cfg


def check_settings(cfg: Config) -> None:
    """What ``check-config`` checks beyond the values, as the user running it: credentials
    readable, a server and an identity to reach it with, the cache directory writable and
    no other directory (``not_a_cache``), kubelet_user a user here, and the peer lookup
    usable (PeerLookupError: fail closed)."""
    configfiles.check_files(cfg)
    cloudproxy.check()  # an HTTPS_PROXY the hub cannot use is no reason to go around it
    # why: only the start said so; check-config passed a cache set to /etc or /home
    foreign = not_a_cache(cfg.disk_cache_path)
    if foreign:
        raise ConfigError(f"disk_cache_path = {cfg.disk_cache_path!r}: {foreign}")
    identity.check(cfg)
    kubelet_uid(cfg)
    lookup = open_lookup(cfg.peer_lookup)
    if lookup is not None:
        lookup.close()


def preflight(cfg: Config) -> None:
    """Checks that turn a bad setting into one clear line before gunicorn starts.

    Raises ConfigError naming the problem: unreadable credentials, an unusable cache
    directory, a port another process holds, a kubelet_user that is no user here; and
    PeerLookupError when the owner of a connection cannot be learnt (fail closed).
    """
    # why: the unit's UMask=0077 whatever started the hub.  Under a shell's umask 000, the
    # missing parents of disk_cache_path and root_dir were made 0777: any local user could
    # then swap the cache (or the identity directory) for one of their own.  Every file and
    # directory of the hub has its own mode already; the umask only reaches what they don't.
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)
    _check_owners(cfg)  # first: before anything is written under either directory
    check_settings(cfg)
    for port in (cfg.proxy_port, cfg.serve_port):
        _check_port(cfg.plain_bind_address, port)
    if cfg.secure_proxy_port:
        for addr in cfg.secure_addresses:
            _listen(addr, cfg.secure_proxy_port, freebind=True).close()
    if root_in_use(cfg.disk_cache_path):
        raise Busy(f"disk_cache_path = {cfg.disk_cache_path!r}: the cache is in use by "
                   "another yurthub process")
    # Last: it may talk to the cloud (token discovery) and write the pinned CA.
    identity.preflight(cfg)


def _check_owners(cfg: Config) -> None:
    """The cache root and the identity directory are the service user's (or root's).

    Root does not serve from another user's directories (the service's ``yurthub``): every
    file the hub writes is 0600 and every directory 0700, so a ``sudo yurthub serve`` would
    leave the admin token, indexes, new collections and certificates that the service, run
    as its own user again, cannot read (it sets those collections aside).

    why (a hub run as a user): a directory another user owns, or any local user may write,
    lets that user swap the collections or the certificates for their own, and the hub
    would serve them to kubelet offline.  The permissions the hub sets on what it writes
    cannot close a directory it does not own.
    """
    import pwd

    me = os.geteuid()

    def user_of(uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"uid {uid}"

    for name in ("disk_cache_path", "root_dir"):
        path = getattr(cfg, name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"{name} = {path!r}: {e.strerror}") from None
        uid = st.st_uid
        if uid == me:
            continue
        if me == 0:
            if uid == 0:
                continue
            user = user_of(uid)
            raise ConfigError(f"{name} = {path!r}: it belongs to {user}, but yurthub runs as "
                              f"root here; files root wrote there would be unreadable to "
                              f"{user}: run yurthub as {user} (runuser -u {user} -- yurthub "
                              "serve ...)")
        if uid != 0:
            raise ConfigError(f"{name} = {path!r}: it belongs to {user_of(uid)}, not to "
                              f"{user_of(me)} that runs yurthub; its owner could replace "
                              f"what the hub serves: chown it to {user_of(me)}")
        if st.st_mode & 0o002:
            raise ConfigError(f"{name} = {path!r}: every local user may write there, and it "
                              f"belongs to root, not to {user_of(me)} that runs yurthub: "
                              f"chown it to {user_of(me)} and make it 0700")


def _check_port(addr: str, port: int) -> None:
    _listen(addr, port, freebind=False).close()


def build_hub(cfg: Config) -> Hub:
    """Construct the hub in the worker (no threads yet)."""
    global _hub
    configure_logging(cfg)
    try:
        _hub = Hub(cfg)
    except YurthubError as e:
        _boot_failed(e)
    return _hub


def _boot_failed(e: YurthubError) -> NoReturn:
    """One line, then the exit code that makes gunicorn's master give up (not a traceback)."""
    log.critical("cannot start: %s", e)
    logging.shutdown()
    os._exit(WORKER_BOOT_ERROR)


def post_worker_init(worker: Any) -> None:
    """gunicorn hook, in the worker: start the hub in the background, chain SIGTERM.

    design: the hub starts (opens the cache, starts its threads) on a thread of its own
    while the worker's loop already serves: recovering a big cache on a slow disk can take
    longer than gunicorn's ``timeout``, and a worker that does not reach its loop in time is
    killed and booted again, forever (gunicorn 20.1).  Meanwhile healthz answers, readyz is
    503 with the reason and the proxy answers a 503 Status with Retry-After (app.Hub).
    """
    global _starting
    hub = _hub
    if hub is None:
        return
    if hub.cfg.peer_lookup != "off" and not getattr(worker, WORKER_SETS_CONNECTION, False):
        # Another worker class (``-k gthread`` on gunicorn's command line, GUNICORN_CMD_ARGS)
        # tells the app no connection's owner: every local process would be trusted.
        _boot_failed(ConfigError(
            f"gunicorn runs the worker class {type(worker).__module__}."
            f"{type(worker).__name__}, which cannot tell which user owns a connection; run "
            "yurthub.worker.YurthubWorker (the shipped gunicorn.conf.py's), or set "
            "peer_lookup = off to trust every local process"))
    _size_fd_table()
    _starting = threading.Thread(target=_start, args=(hub,), name="yurthub-start", daemon=True)
    _starting.start()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        hub.begin_shutdown()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _start(hub: Hub) -> None:
    try:
        hub.start()
    except YurthubError as e:
        _boot_failed(e)
    except BaseException:
        log.critical("cannot start", exc_info=True)
        logging.shutdown()
        os._exit(1)  # gunicorn boots another worker, as for a crash in the hook itself
    # Everything allocated so far lives as long as the worker: keep the cyclic collector
    # from walking it again and again (full collections paused watches for ~30 ms).
    gc.freeze()


def _size_fd_table() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = FD_TABLE_MAX if soft == resource.RLIM_INFINITY else min(soft, FD_TABLE_MAX)
    try:
        linux.reserve_fd_table(n)
    except OSError as e:  # never a reason not to serve
        log.warning("cannot size the descriptor table for %d descriptors: %s", n, e)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the worker, after it stopped serving."""
    if _starting is not None:
        _starting.join()  # stop() must not race start(); a stuck start is gunicorn's to kill
    if _hub is not None:
        _hub.stop()


def serve(cfg: Config) -> int:
    """``yurthub serve``: gunicorn in this process with the production settings."""
    from gunicorn.app.base import BaseApplication

    configure_logging(cfg)
    preflight(cfg)

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_settings(cfg).items():
                self.cfg.set(key, value)

        def load(self) -> Hub:
            return build_hub(cfg)

    try:
        Application().run()
    except SystemExit as e:
        return int(e.code or 0)
    except YurthubError as e:
        print(error_line(e), file=sys.stderr)
        return 1
    return 0
