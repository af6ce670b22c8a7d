"""``yurthub sandbox``: flags and the foreground runner of the sandbox apiserver.

Runs until SIGINT or SIGTERM, logging one line per request.  A bad flag exits 2 (argparse or
ConfigError, handled by ``yurthub.cli``); a port that cannot be bound exits 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from kubesandbox import seed
from kubesandbox.server import Sandbox, SandboxOptions
from yurthub.errors import ConfigError, YurthubError
from yurthub.kube import bootstraptoken as bt

log = logging.getLogger(__name__)


def bounded_int(low: int, high: int) -> type[int]:
    """An argparse type: an integer from ``low`` to ``high`` (a usage error otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value
    return parse  # type: ignore[return-value]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return value == "true"


def _bootstrap_token(text: str) -> str:
    try:
        bt.parse_token(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text.strip()


def add_arguments(p: argparse.ArgumentParser) -> None:
    port = bounded_int(0, 65535)
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="address to listen on")
    p.add_argument("--port", type=port, default=16443, help="API port (0 picks a free one)")
    p.add_argument("--control-port", type=port, default=None, metavar="PORT",
                   help="separate port for /_sandbox/ controls that stays up while offline")
    p.add_argument("--nodes", type=bounded_int(0, seed.MAX_NODES), default=0,
                   help="nodes to seed (with their leases; in two node pools, pool-a and "
                        "pool-b, with Services of every type and their EndpointSlices)")
    p.add_argument("--pods-per-node", type=bounded_int(0, seed.MAX_PODS_PER_NODE), default=0,
                   metavar="M", help="pods to seed per node (about 5 KB each)")
    p.add_argument("--history-size", type=bounded_int(1, 10_000_000), default=10000,
                   metavar="N", help="events kept for watch resumption and continue tokens")
    p.add_argument("--bookmark-interval", type=_positive_float, default=60.0, metavar="SECONDS",
                   help="seconds between watch bookmarks (when clients ask for them)")
    p.add_argument("--watch-timeout", type=_positive_float, default=1800.0, metavar="SECONDS",
                   help="server-side watch timeout when a client sets none")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--token", default=None, help="require this bearer token")
    auth.add_argument("--token-file", default=None, metavar="FILE",
                      help="require the bearer token in FILE (keeps it out of ps)")
    p.add_argument("--tls-cert-file", default=None, metavar="FILE", help="serving certificate")
    p.add_argument("--tls-private-key-file", default=None, metavar="FILE",
                   help="serving certificate's private key")
    p.add_argument("--client-ca-file", default=None, metavar="FILE",
                   help="accept client certificates signed by this CA")
    p.add_argument("--self-signed-dir", default=None, metavar="DIR",
                   help="make (or reuse) a CA, serving and client certificates in DIR and "
                        "serve TLS with them")
    p.add_argument("--kubeconfig-out", default=None, metavar="FILE",
                   help="write a kubeconfig for this sandbox to FILE")
    p.add_argument("--bootstrap-token", action="append", default=[], metavar="ID.SECRET",
                   type=_bootstrap_token,
                   help="a join token nodes may bootstrap with (repeatable; turns "
                        "authentication on)")
    p.add_argument("--csr-auto-approve", type=_bool, default=True, metavar="true|false",
                   help="approve yurthub's CertificateSigningRequests as yurt-manager does")
    p.add_argument("--cert-lifetime", type=_positive_float, default=365 * 86400.0,
                   metavar="SECONDS", help="lifetime of the certificates the CSR signer issues")


def options_from(args: argparse.Namespace) -> SandboxOptions:
    token = args.token
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"--token-file: cannot read {args.token_file}: {e}") from None
        if not token:
            raise ConfigError(f"--token-file: {args.token_file} is empty")
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        raise ConfigError("--tls-cert-file and --tls-private-key-file go together")
    if args.self_signed_dir and args.tls_cert_file:
        raise ConfigError("--self-signed-dir and --tls-cert-file exclude each other")
    if args.client_ca_file and not (args.tls_cert_file or args.self_signed_dir):
        raise ConfigError("--client-ca-file needs TLS (--tls-cert-file or --self-signed-dir)")
    return SandboxOptions(
        host=args.bind, port=args.port, control_port=args.control_port, nodes=args.nodes,
        pods_per_node=args.pods_per_node, history_size=args.history_size,
        bookmark_interval=args.bookmark_interval, watch_timeout=args.watch_timeout,
        token=token, tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_private_key_file, client_ca_file=args.client_ca_file,
        self_signed_dir=args.self_signed_dir, bootstrap_tokens=tuple(args.bootstrap_token),
        csr_auto_approve=args.csr_auto_approve, cert_lifetime=args.cert_lifetime)


def main(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = options_from(args)
    sandbox = Sandbox(options)
    try:
        sandbox.start()
    except OSError as e:
        if e.filename:  # the TLS material of --self-signed-dir, not the socket
            raise YurthubError(f"cannot start the sandbox: {e.filename}: {e.strerror}") from e
        raise YurthubError(f"cannot listen on {options.host}:{options.port}: {e}") from e
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("got %s, stopping", signal.Signals(signum).name)
        done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.kubeconfig_out:
            try:
                sandbox.write_kubeconfig(args.kubeconfig_out)
            except OSError as e:
                raise YurthubError(f"--kubeconfig-out: cannot write {args.kubeconfig_out}: "
                                   f"{e.strerror}") from e
        print(f"sandbox apiserver: {sandbox.url}", flush=True)
        if sandbox.control_port is not None:
            print(f"control plane: {sandbox.control_url}/_sandbox/state", flush=True)
        if sandbox.tls is not None:
            print(f"ca hash: {sandbox.ca_hash}", flush=True)
        if options.token:
            log.info("bearer-token authentication is on")
        while not done.wait(3600):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sandbox.stop()
    return 0
