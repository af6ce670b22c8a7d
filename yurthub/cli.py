"""The ``yurthub`` command: serve, cache, sandbox, demo, check-config and prepare-dir.

Usage errors (unknown flags, bad values, bad config files) print one line and exit 2; a
runtime failure prints one line and exits 1; output into a pipe whose reader has gone
(`| head`) stops quietly with 141; nothing here prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pwd
import sys
from collections.abc import Sequence
from types import ModuleType

from yurthub import __version__, cachecli, config, dirs
from yurthub.errors import ConfigError, YurthubError

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE
# The sandbox apiserver and the demo live in the separate package ``kubesandbox``, which the
# Debian package does not ship to edge nodes.  They are found at run time, never imported by
# the product's modules.
SANDBOX_MISSING = ("the sandbox apiserver is not installed here (it is not shipped to edge "
                   "nodes); from a yurthub checkout: pip install '.[sandbox]'")


_SANDBOX_COMMANDS = {"sandbox": "cli", "demo": "demo"}


def _sandbox_module(name: str) -> ModuleType | None:
    """``kubesandbox.<name>``, or None when the sandbox package is not installed."""
    try:
        return importlib.import_module(f"kubesandbox.{name}")
    except ModuleNotFoundError as e:
        if e.name in ("kubesandbox", f"kubesandbox.{name}"):
            return None
        raise


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n"
                              f"Try '{self.prog} --help' for more information.\n")


def _add_setting_flags(p: argparse.ArgumentParser, config_help: str = "") -> None:
    p.add_argument("--config", metavar="FILE",
                   help="INI file with a [yurthub] section; flags override it" + config_help)
    for f in config.settings():
        text = str(f.metadata["help"])
        if "(default: " not in text:  # a help that says its default says it better
            text += f" (default: {config.render_value(f, f.default) or 'unset'})"
        if f.metadata["repeatable"]:
            text += " (may be repeated)"
        p.add_argument("--" + config.flag_name(f), dest=f.name, metavar=f.metadata["metavar"],
                       default=None, help=text,
                       action="append" if f.metadata["repeatable"] else "store")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command``, the sandbox's own arguments are added only
    when that command is one of its (importing it costs every ``yurthub serve`` 30-40 ms)."""
    parser = _Parser(prog="yurthub", description=(
        "Edge-autonomy gateway for Kubernetes: a caching reverse proxy between a node's "
        "components and the cloud kube-apiserver."))
    parser.add_argument("--version", action="version", version=f"yurthub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    serve = sub.add_parser("serve", help="run the gateway in the foreground (under gunicorn)",
                           description="Run the gateway in the foreground under gunicorn.")
    _add_setting_flags(serve)

    check = sub.add_parser("check-config", help="print the effective settings and check them",
                           description="Print the effective settings of the service's "
                           "file (or --config FILE) and the flags; exit 2 naming the file, "
                           "key and value of anything invalid.")
    _add_setting_flags(check, f" (default: the service's: ${config.CONFIG_ENV}, else "
                       f"{config.DEFAULT_CONFIG_FILE} when it exists)")
    check.add_argument("--print-defaults", action="store_true",
                       help="print the default INI file instead")

    prep = sub.add_parser(
        "prepare-dir", help="create a directory for the service, never following a symlink "
        "(for the package's postinst)",
        description="Create DIR (and missing parents, as root 0755) and give it OWNER and "
        "MODE, refusing a symlink that someone other than root could have made.")
    prep.add_argument("path", metavar="DIR")
    prep.add_argument("--owner", required=True, metavar="USER",
                      help="the directory's owner; its group is the user's group")
    prep.add_argument("--mode", default="0700", metavar="MODE", help="octal (default 0700)")
    cache = sub.add_parser("cache", help="list, show, verify or purge the cache tree",
                           description="Inspect the cache tree of a stopped or running hub "
                           "(read-only), or purge it.")
    cachecli.add_arguments(cache, _Parser)

    sandbox = sub.add_parser("sandbox", help="run the simulated kube-apiserver",
                             description="Run the sandbox kube-apiserver in the foreground.")
    demo_p = sub.add_parser("demo", help="run a sandbox and a gateway together",
                            description="Run a sandbox apiserver and a gateway in front of "
                            "it, seed a node with pods and print what to try.")
    for p, name in ((sandbox, "sandbox"), (demo_p, "demo")):
        if command is not None and command != name:
            continue
        module = _sandbox_module(_SANDBOX_COMMANDS[name])
        if module is not None:
            module.add_arguments(p)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides = {}
    for f in config.settings():
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = ",".join(value) if isinstance(value, list) else value
    return overrides


def load_config(args: argparse.Namespace) -> config.Config:
    return config.load(args.config, _overrides(args))


def _check_config(args: argparse.Namespace) -> int:
    if args.print_defaults:
        sys.stdout.write(config.default_ini())
        return 0
    if args.config is None:
        args.config = config.service_file()
    try:
        cfg = load_config(args)
    except ConfigError as e:
        # Every bad value at once, so a file is fixed in one pass, not one value a run.
        problems = config.value_problems(args.config, _overrides(args)) or [str(e)]
        for problem in problems if str(e) in problems else [str(e)]:
            print(f"yurthub: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from yurthub import service
    service.check_settings(cfg)
    width = max(len(f.name) for f in config.settings())
    for key, value, _help in config.describe(cfg):
        print(f"{key:<{width}} = {value}")
    return 0


def _prepare_dir(args: argparse.Namespace) -> int:
    try:
        pw = pwd.getpwnam(args.owner)
    except KeyError:
        raise ConfigError(f"--owner {args.owner!r}: no such user") from None
    try:
        mode = int(args.mode, 8)
    except ValueError:
        raise ConfigError(f"--mode {args.mode!r}: not an octal mode") from None
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"--mode {args.mode!r}: not a file mode")
    dirs.prepare_dir(args.path, pw.pw_uid, pw.pw_gid, mode)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit: a closed pipe is an error handled below
        return code
    except BrokenPipeError:
        # The reader went away (`yurthub cache ls | head -1`): stop without a traceback, as
        # a process that SIGPIPE ended would, and give Python's final flush of stdout a
        # sink that cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    if command in _SANDBOX_COMMANDS and "-h" not in argv and "--help" not in argv \
            and _sandbox_module(_SANDBOX_COMMANDS[command]) is None:
        print(f"yurthub {command}: {SANDBOX_MISSING}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser(command)
    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "prepare-dir":
            return _prepare_dir(args)
        if args.command == "serve":
            cfg = load_config(args)
            from yurthub import service
            return service.serve(cfg)
        if args.command == "cache":
            return cachecli.main(args)
        if args.command in _SANDBOX_COMMANDS:
            module = _sandbox_module(_SANDBOX_COMMANDS[args.command])
            assert module is not None  # checked before parsing
            return int(module.main(args))
    except ConfigError as e:
        print(f"yurthub: {e}", file=sys.stderr)
        return EXIT_USAGE
    except YurthubError as e:
        print(f"yurthub: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
