"""``yurthub cache ls|show|verify|purge``: the cache tree from the command line.

Read-only commands read the tree with storage.treereader (no lock, no recovery; ``verify``
audits it with storage.treeaudit), so they work on a stopped hub's tree and beside a
running one.  ``purge`` changes it: with the tree's lock when no hub holds it (opening the
store, so a crash's leftovers are recovered first), or through the running hub
(``POST /v1/cache/purge`` on its hub server, with the admin token only a reader of the tree
can present), never behind its back.  Output follows kubectl: aligned columns,
``-o json|yaml``, ages as ``5m`` and ``2d``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO

import yaml

from yurthub import config
from yurthub.cache.inventory import CollectionRow, age, body_checker, purge, summarize
from yurthub.cache.mutation import load_meta
from yurthub.cache.views import check_state
from yurthub.errors import ConfigError, InvalidKeyError, StorageError, YurthubError
from yurthub.storage import CollectionKey, DiskStore
from yurthub.storage.admintoken import read_admin_token
from yurthub.storage.rootlock import LOCK_FILE, not_a_cache
from yurthub.storage.treeaudit import TreeAudit
from yurthub.storage.treereader import TreeReader

CONFIG_ENV = config.CONFIG_ENV
PURGE_PATH = "/v1/cache/purge"


class CacheCommandError(YurthubError):
    """A ``yurthub cache`` command cannot do what was asked (one line, exit 1)."""


def _tree_options(p: argparse.ArgumentParser, default: Any = None) -> None:
    p.add_argument("--config", metavar="FILE", default=default,
                   help=f"the hub's INI file (default: ${CONFIG_ENV}, else "
                   f"{config.DEFAULT_CONFIG_FILE} when it exists)")
    p.add_argument("--disk-cache-path", metavar="DIR", default=default,
                   help="root of the cache tree")
    p.add_argument("--serve-port", metavar="PORT", default=default,
                   help="the running hub's hub server port")


def add_arguments(p: argparse.ArgumentParser, parser_class: Any) -> None:
    _tree_options(p)
    # The same options after the subcommand too (`yurthub cache ls --disk-cache-path DIR`,
    # as kubectl takes its flags anywhere); SUPPRESS keeps a value given before it.
    tree = argparse.ArgumentParser(add_help=False)
    _tree_options(tree, default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND",
                           parser_class=parser_class)
    sub.required = True
    ls = sub.add_parser("ls", parents=[tree],
                        help="a table of components and resources in the cache",
                        description="Components, resources, objects, bytes, views, the age "
                        "of the last complete list and whether the resource is stale.")
    ls.add_argument("component", nargs="?", metavar="COMPONENT")
    ls.add_argument("-o", "--output", choices=("wide", "json", "yaml"))
    show = sub.add_parser("show", parents=[tree], help="one cached object",
                          description="Print one cached object as JSON (default) or YAML.")
    show.add_argument("component", metavar="COMPONENT")
    show.add_argument("resource", metavar="RESOURCE",
                      help="pods, leases.coordination.k8s.io or pods.v1.core")
    show.add_argument("name", metavar="[NAMESPACE/]NAME")
    show.add_argument("-o", "--output", choices=("json", "yaml"), default="json")
    sub.add_parser("verify", parents=[tree],
                   help="check every file of the tree; exit 1 listing problems",
                   description="Every object file parses and holds the object its path "
                   "names, modes are 0700/0600, nothing is left over from a crash.")
    pg = sub.add_parser("purge", parents=[tree],
                        help="empty the cache, a component or one resource",
                        description="Remove cached objects and their views (asks first). "
                        "While a hub runs, the purge is done by the hub.")
    pg.add_argument("component", nargs="?", metavar="COMPONENT")
    pg.add_argument("resource", nargs="?", metavar="RESOURCE")
    pg.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    cfg = _config(args)
    commands: dict[str, Callable[[argparse.Namespace, config.Config, TextIO, TextIO], int]] = {
        "ls": _ls, "show": _show, "verify": _verify, "purge": _purge}
    try:
        return commands[args.cache_command](args, cfg, out, err)
    except PermissionError as e:
        # A part of the tree only its owner may read (0700/0600): saying "no resources" or
        # "not in the cache" would be a wrong answer, and a traceback no answer.
        where = f" ({e.filename})" if e.filename else ""
        raise CacheCommandError(f"cannot read the cache at {cfg.disk_cache_path}: "
                                f"{e.strerror}{where}; run this as the hub's user or root"
                                ) from e


def _config(args: argparse.Namespace) -> config.Config:
    path = args.config or config.service_file()
    overrides = {k: v for k, v in (("disk_cache_path", args.disk_cache_path),
                                   ("serve_port", args.serve_port)) if v is not None}
    return config.load(path, overrides)


def _tree(cfg: config.Config) -> TreeReader:
    root = cfg.disk_cache_path
    if not os.path.isdir(root):
        raise CacheCommandError(f"no cache at {root}")
    if not_a_cache(root):
        # why: read as a tree, /etc or a home directory listed as "components" and
        # "resources" (or as "No resources found", exit 0): an operator with a slip in the
        # path believed what the cache held.  A hub's tree has its _lock from the first
        # start; an empty directory (the package's, before the first start) is an empty cache.
        raise CacheCommandError(f"{root} is not a yurthub cache (no {LOCK_FILE}, which a hub "
                                "writes when it first opens its cache, and it holds other "
                                "files): check --disk-cache-path or disk_cache_path in "
                                "the config")
    return TreeReader(root)


def _components(tree: TreeReader) -> str:
    """What an operator may name instead: the components present, or that there are none."""
    have = tree.components()
    return f"it has: {', '.join(have)}" if have else "the cache is empty"


def _rows(tree: TreeReader, component: str | None) -> list[CollectionRow]:
    sizes = {}
    for ck in tree.collections(component):
        objs = tree.objects(ck)
        sizes[ck] = (len(objs), sum(o.size for o in objs))
    return summarize(tree, sizes, component)


# -- ls -----------------------------------------------------------------------------------------

def _ls(args: argparse.Namespace, cfg: config.Config, out: TextIO, err: TextIO) -> int:
    with _tree(cfg) as tree:
        if args.component is not None and args.component not in tree.components():
            raise CacheCommandError(f"component {args.component!r} is not in the cache at "
                                    f"{tree.root} ({_components(tree)})")
        rows = _rows(tree, args.component)
    now = time.time()
    if args.output in ("json", "yaml"):
        _dump({"cacheRoot": cfg.disk_cache_path,
               "items": [r.to_json(now) for r in rows]}, args.output, out)
        return 0
    if not rows:
        err.write(f"No resources found in the cache at {cfg.disk_cache_path}.\n")
        return 0
    head = ["COMPONENT", "RESOURCE", "OBJECTS", "BYTES", "VIEWS", "AGE", "STALE"]
    if args.output == "wide":
        head += ["VERSION", "SELECTORS", "REASON"]
    table = []
    for r in rows:
        line = [r.component, r.resource_ref, str(r.objects), str(r.bytes), str(len(r.views)),
                age(now - r.last_sync) if r.views else "<none>",
                "yes" if r.stale else "no"]
        if args.output == "wide":
            line += [r.version, ",".join(v.selector for v in r.views) or "<none>",
                     r.stale or "<none>"]
        table.append(line)
    write_table(out, head, table)
    return 0


def write_table(out: TextIO, head: list[str], rows: list[list[str]]) -> None:
    """kubectl's layout: left-aligned columns three spaces apart, no trailing spaces."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        out.write("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _dump(doc: Any, fmt: str, out: TextIO) -> None:
    if fmt == "yaml":
        out.write(yaml.safe_dump(doc, default_flow_style=False, sort_keys=False))
    else:
        out.write(json.dumps(doc, indent=4) + "\n")


# -- show ---------------------------------------------------------------------------------------

def resolve(tree: TreeReader, component: str, resource: str) -> list[CollectionKey]:
    """The collections of ``component`` that ``resource`` names: ``pods``, ``pods.v1.core``,
    ``leases.coordination.k8s.io``, ``deployments.v1.apps``."""
    keys = tree.collections(component)
    if not keys:
        raise CacheCommandError(f"component {component!r} is not in the cache at {tree.root} "
                                f"({_components(tree)})")
    found = [k for k in keys if resource in (k.dirname, k.resource if not k.group else "",
                                             f"{k.resource}.{k.group}",
                                             f"{k.resource}.{k.version}.{k.group}")]
    if not found:
        have = ", ".join(sorted({f"{k.resource}.{k.group}" if k.group else k.resource
                                 for k in keys}))
        raise CacheCommandError(f"{component} has no resource {resource!r} in the cache "
                                f"(it has: {have})")
    return found


def _show(args: argparse.Namespace, cfg: config.Config, out: TextIO, err: TextIO) -> int:
    with _tree(cfg) as tree:
        keys = resolve(tree, args.component, args.resource)
        if len(keys) > 1:
            raise CacheCommandError(f"{args.resource!r} is ambiguous: say one of "
                                    f"{', '.join(k.dirname for k in keys)}")
        ck = keys[0]
        ns, _, name = args.name.rpartition("/")
        if ck.namespaced and not ns:
            raise CacheCommandError(f"{ck.resource} are namespaced: give NAMESPACE/NAME")
        if not ck.namespaced and ns:
            raise CacheCommandError(f"{ck.resource} are cluster-scoped: give NAME alone")
        try:
            body = tree.read(ck, ns, name)
        except InvalidKeyError as e:
            raise CacheCommandError(f"{args.name!r}: {e}") from e
        try:
            lost = tree.state(ck).get("lost") or []
        except ValueError:  # set aside at the hub's start: nothing is known to be lost
            lost = []
    where = f"{ns}/{name}" if ns else name
    if body is None:
        if any(entry[:2] == [ns, name] for entry in lost):
            raise CacheCommandError(f"{ck}: {where} was set aside as damaged (see "
                                    "_quarantine/); the next list from the cloud heals it")
        raise CacheCommandError(f"{ck}: {where} is not in the cache")
    try:
        obj = json.loads(body)
    except ValueError as e:
        raise CacheCommandError(f"{ck}: {where} does not parse ({e}); run yurthub cache "
                                "verify") from e
    _dump(obj, args.output, out)
    return 0


# -- verify -------------------------------------------------------------------------------------

def _verify(args: argparse.Namespace, cfg: config.Config, out: TextIO, err: TextIO) -> int:
    with _tree(cfg) as tree:
        bar = _Progress(err, tree.count_files()) if err.isatty() else None
        if tree.in_use():
            err.write("a hub is running on this tree: its commits in progress are not "
                      "counted as debris\n")
        problems = []
        for line in TreeAudit(tree).problems(body_checker(tree),
                                             bar.step if bar else lambda: None, check_state):
            if bar is not None:
                bar.clear()
            problems.append(line)
            out.write(line + "\n")
        if bar is not None:
            bar.clear()
        checked = tree.count_files() if bar is None else bar.total
        quarantined = tree.quarantined()
    if quarantined:
        out.write(f"note: {len(quarantined)} file(s) in _quarantine/, set aside by the hub "
                  "and never served; remove them once inspected\n")
    if problems:
        out.write(f"{len(problems)} problem(s) in the cache at {cfg.disk_cache_path}\n")
        return 1
    out.write(f"ok: {checked} object file(s) in the cache at {cfg.disk_cache_path}\n")
    return 0


class _Progress:
    """A one-line progress bar on a terminal (stderr), redrawn every 1% at most."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out, self.total, self.done, self._shown = out, total, 0, -1

    def step(self) -> None:
        self.done += 1
        pct = self.done * 100 // max(self.total, 1)
        if pct != self._shown:
            self._shown = pct
            filled = pct * 30 // 100
            self.out.write(f"\rverifying [{'#' * filled}{' ' * (30 - filled)}] "
                           f"{self.done}/{self.total}")
            self.out.flush()

    def clear(self) -> None:
        self.out.write("\r\033[K")
        self.out.flush()
        self._shown = -1


# -- purge --------------------------------------------------------------------------------------

def _purge(args: argparse.Namespace, cfg: config.Config, out: TextIO, err: TextIO) -> int:
    with _tree(cfg) as tree:
        if args.component is None:
            keys = tree.collections()
        elif args.resource is None:
            keys = tree.collections(args.component)
            if not keys:
                raise CacheCommandError(f"component {args.component!r} is not in the cache at "
                                        f"{tree.root}")
        else:
            keys = resolve(tree, args.component, args.resource)
        objects = sum(len(tree.objects(ck)) for ck in keys)
        in_use = tree.in_use()
    what = (f"{args.component}/{args.resource}" if args.resource
            else args.component or "every component")
    if not keys:
        out.write(f"nothing to purge in the cache at {cfg.disk_cache_path}\n")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise CacheCommandError("purge asks for confirmation on a terminal; pass --yes "
                                    "to purge without asking")
        err.write(f"Purge {objects} object(s) in {len(keys)} collection(s) of {what} from "
                  f"the cache at {cfg.disk_cache_path}? [y/N] ")
        err.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            err.write("nothing purged\n")
            return 1
    if in_use:
        removed = _purge_through_hub(cfg, keys)
        how = "by the running hub"
    else:
        removed = _purge_offline(cfg, keys)
        how = "with the tree's lock"
    out.write(f"purged {removed} object(s) in {len(keys)} collection(s) of {what} ({how})\n")
    return 0


def _purge_offline(cfg: config.Config, keys: list[CollectionKey]) -> int:
    _become_tree_owner(cfg.disk_cache_path)
    store = DiskStore(cfg.disk_cache_path, meta_loader=load_meta, state_check=check_state,
                      lock_timeout=0.0)
    try:
        store.open()  # takes the lock; a hub that starts now waits for it
    except StorageError as e:
        raise CacheCommandError(f"{e}: nothing purged") from e
    try:
        return purge(store, [k for k in keys if k in set(store.collections())])
    finally:
        store.close()


def _become_tree_owner(root: str) -> None:
    """Root purging a tree another user owns (the service's ``yurthub``) does it as that user.

    Opening the store rewrites bookkeeping in every collection (indexes, histories, states),
    not only in the purged ones: written by root, mode 0600, the hub could read none of them
    at its next start and would set every collection aside.  ``sudo yurthub cache purge`` is
    what an operator types, so this process becomes the tree's owner for the writes.
    """
    if os.geteuid() != 0:
        return
    try:
        st = os.stat(root)
    except OSError as e:
        raise CacheCommandError(f"cannot read the cache at {root}: {e.strerror}") from e
    if st.st_uid == 0:
        return
    os.setgroups([])
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)


def _purge_through_hub(cfg: config.Config, keys: list[CollectionKey]) -> int:
    token = read_admin_token(cfg.disk_cache_path)
    host = "127.0.0.1" if cfg.plain_bind_address in ("0.0.0.0", "::") else cfg.plain_bind_address
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{cfg.serve_port}{PURGE_PATH}"
    body = json.dumps({"cacheRoot": os.path.realpath(cfg.disk_cache_path),
                       "collections": [[k.component, k.dirname] for k in keys]}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        # why: urllib takes http_proxy from the operator's shell, and a site proxy got the
        # purge with the admin token (then a 502); the hub is on this node's loopback.
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(req, timeout=120) as r:
            return int(json.loads(r.read())["objects"])
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace").strip().splitlines()
        raise CacheCommandError(f"the hub at {url} refused the purge: "
                                f"{detail[0] if detail else e.code}") from e
    except (OSError, ValueError, KeyError) as e:
        raise CacheCommandError(
            f"a hub holds the cache at {cfg.disk_cache_path}, but its hub server at {url} "
            f"did not answer ({e}); nothing purged (if that hub serves on another port, "
            "give its --config or --serve-port)") from e


__all__ = ["CacheCommandError", "ConfigError", "add_arguments", "main", "write_table"]
