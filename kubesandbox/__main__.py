"""``python -m kubesandbox``: the sandbox apiserver in the foreground (as ``yurthub sandbox``)."""

from __future__ import annotations

import argparse
import sys

from kubesandbox import cli
from yurthub.errors import ConfigError, YurthubError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubesandbox",
                                     description="Run the sandbox kube-apiserver.")
    cli.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cli.main(args)
    except ConfigError as e:
        print(f"kubesandbox: {e}", file=sys.stderr)
        return 2
    except YurthubError as e:
        print(f"kubesandbox: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
