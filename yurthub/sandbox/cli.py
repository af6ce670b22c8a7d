"""``yurthub sandbox``: flags and the foreground runner of the sandbox apiserver."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=16443, help="port to listen on")
    p.add_argument("--nodes", type=int, default=0, help="nodes to seed")
    p.add_argument("--pods-per-node", type=int, default=0, help="pods to seed per node")


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError("the sandbox apiserver is being built (issue 2)")
