"""``yurthub demo``: a sandbox apiserver and a gateway in front of it, and what to try."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pods", type=int, default=20, help="pods to seed on the demo node")


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError("the demo arrives with the caching proxy (issue 3)")
