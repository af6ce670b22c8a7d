"""The hub's identity on disk, under ``root_dir``: atomic, private, kept across restarts.

Layout (YurtHub's names)::

    <root_dir>/bootstrap-hub.conf          kubeconfig with the bootstrap token (0600)
    <root_dir>/bootstrap-hub.given         SHA-256 of the configured join token it came from
    <root_dir>/yurthub.conf                kubeconfig of the hub's own identity (0600)
    <root_dir>/pki/                        0700
    <root_dir>/pki/ca.crt                  the cluster CA, pinned at discovery
    <root_dir>/pki/yurthub-current.pem     client certificate + key (0600)
    <root_dir>/pki/yurthub-server-current.pem  serving certificate + key (0600)

Every write goes to a temporary file in the same directory, is fsynced, renamed over the old
one and the directory fsynced: a crash leaves the old file or the new one, never half of one.
Leftover temporary files are swept when the directory is opened.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat

from yurthub.errors import ConfigError, IdentityFileError

log = logging.getLogger(__name__)

PKI = "pki"
CA = "ca.crt"
CLIENT_PAIR = "yurthub-current.pem"
SERVING_PAIR = "yurthub-server-current.pem"
BOOTSTRAP_CONF = "bootstrap-hub.conf"
BOOTSTRAP_GIVEN = "bootstrap-hub.given"
HUB_CONF = "yurthub.conf"
_TMP = ".tmp-"
# What the hub, and the package around it, keep in root_dir and in pki/ (the cache is
# root_dir/cache by default, the join token debconf asked for root_dir/join-token).
_ROOT_NAMES = frozenset({PKI, BOOTSTRAP_CONF, BOOTSTRAP_GIVEN, HUB_CONF, "join-token",
                         "cache", "lost+found"})
_PKI_NAMES = frozenset({CA, CLIENT_PAIR, SERVING_PAIR})
_TMP_NAMES = "|".join(re.escape(n) for n in sorted(
    _PKI_NAMES | {BOOTSTRAP_CONF, BOOTSTRAP_GIVEN, HUB_CONF}))
_TMP_RE = re.compile(rf"\.tmp-(?:{_TMP_NAMES})\.\d+")


def _our_tmp(name: str) -> bool:
    """A temporary file ``write`` leaves when the hub stops mid-write."""
    return _TMP_RE.fullmatch(name) is not None


class IdentityFiles:
    """Paths under ``root_dir`` and their atomic, private writes."""

    def __init__(self, root_dir: str) -> None:
        self.root = root_dir
        self.pki = os.path.join(root_dir, PKI)

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def pki_path(self, name: str) -> str:
        return os.path.join(self.pki, name)

    @property
    def ca(self) -> str:
        return self.pki_path(CA)

    @property
    def client_pair(self) -> str:
        return self.pki_path(CLIENT_PAIR)

    @property
    def serving_pair(self) -> str:
        return self.pki_path(SERVING_PAIR)

    @property
    def bootstrap_conf(self) -> str:
        return self.path(BOOTSTRAP_CONF)

    @property
    def bootstrap_given(self) -> str:
        return self.path(BOOTSTRAP_GIVEN)

    @property
    def hub_conf(self) -> str:
        return self.path(HUB_CONF)

    def prepare(self) -> None:
        """Create ``root_dir`` and ``pki/`` (0700), tighten them, sweep temporary files.

        A directory that holds names other than the hub's (``root_dir = /var/lib`` or
        ``/tmp`` by a slip of the setting, ``/etc/kubernetes`` whose ``pki/`` is kubeadm's)
        is not the hub's to change: its mode and its files are left alone (a WARNING says
        so), as the cache leaves a directory that is no cache.  The hub's files in it are
        0600 all the same.  Raises ConfigError naming the directory when it cannot be made.
        """
        for d, own in ((self.root, _ROOT_NAMES), (self.pki, _PKI_NAMES)):
            try:
                os.makedirs(d, mode=0o700, exist_ok=True)
                if os.path.islink(d) or not os.path.isdir(d):
                    raise ConfigError(f"root_dir: {d!r} is not a directory")
                names = os.listdir(d)
                others = sorted(n for n in names if n not in own and not _our_tmp(n))
                if others:
                    if stat.S_IMODE(os.stat(d).st_mode) != 0o700:
                        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                        log.warning("root_dir: %s holds files not the hub's (%s): its mode "
                                    "is left as it is; give the hub a directory of its own",
                                    d, shown)
                    continue
                os.chmod(d, 0o700)
                for name in names:
                    if _our_tmp(name):
                        os.unlink(os.path.join(d, name))
            except OSError as e:
                raise ConfigError(f"root_dir: cannot prepare {d!r}: {e.strerror}") from None

    def read(self, path: str) -> bytes | None:
        """A file's bytes, or None when it does not exist.

        Raises IdentityFileError when it exists and cannot be read: typically a file left
        owned by root by a hub run by hand, which the service's user may not open."""
        try:
            # O_NONBLOCK: a FIFO in a file's place must not hang the start; O_NOFOLLOW: the
            # hub writes these files itself, a symlink in their place is none of its own
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise IdentityFileError(f"root_dir: cannot read {path!r}: {_why(path, e)}") \
                from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IdentityFileError(f"root_dir: cannot read {path!r}: not a regular file")
            with os.fdopen(fd, "rb") as f:
                fd = -1
                return f.read()
        except OSError as e:
            raise IdentityFileError(f"root_dir: cannot read {path!r}: {_why(path, e)}") \
                from None
        finally:
            if fd >= 0:
                os.close(fd)

    def write(self, path: str, data: bytes) -> None:
        """Replace ``path`` with ``data`` atomically, mode 0600 from the first byte."""
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, f"{_TMP}{os.path.basename(path)}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _why(path: str, e: OSError) -> str:
    if e.errno == errno.ELOOP or (e.errno == errno.EMLINK and os.path.islink(path)):
        return "a symlink; the hub keeps its own files there and follows no link"
    hint = " (owned by another user? root_dir must belong to the user the hub runs as)" \
        if e.errno == errno.EACCES else ""
    return f"{e.strerror or e}{hint}"
