"""The settings' checks that need the file system: credentials readable, the cache root and
the identity's directory writable.  Run by the service before it binds its ports, so a bad
setting stops it with one line."""

from __future__ import annotations

import os

from yurthub.config import Config
from yurthub.errors import ConfigError


def check_files(cfg: Config) -> None:
    """Checks that need the file system: credentials readable, cache root writable.

    Run by the service before it binds its ports, so a bad setting stops it with one line.
    """
    files = ["kubeconfig", "ca_file", "client_cert_file", "client_key_file", "token_file",
             "join_token_file", "bootstrap_file"]
    for name in files:
        p = getattr(cfg, name)
        if p and not os.access(p, os.R_OK):
            why = "does not exist" if not os.path.exists(p) else "is not readable"
            raise ConfigError(f"{name} = {p!r}: file {why}")
        if p and os.path.isdir(p):
            # readable as a directory, unreadable as the file it names: serve would run
            # without the credentials and warn at every request
            raise ConfigError(f"{name} = {p!r}: is a directory, not a file")
    for name in ("disk_cache_path", "root_dir"):
        root = getattr(cfg, name)
        probe = root
        while not os.path.exists(probe):
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        if not os.path.isdir(probe):
            raise ConfigError(f"{name} = {root!r}: {probe!r} is not a directory")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ConfigError(f"{name} = {root!r}: {probe!r} {_unwritable(probe, root)}")


def _unwritable(probe: str, root: str) -> str:
    try:
        read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if not read_only:
        return "is not writable"
    # Its owner and mode are right, and yet: the unit's ProtectSystem=strict.
    return ("is on a read-only file system (yurthub.service may write only below "
            f"/var/lib/yurthub: add ReadWritePaths={root} in a drop-in, see README.Debian)")
