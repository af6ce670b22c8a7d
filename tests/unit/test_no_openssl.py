"""Nothing runs the ``openssl`` command: keys, CSRs and certificates come from
``cryptography`` (issue 14 and issue 11 §5), so neither the product nor the tests need it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# "openssl" as a whole string literal: the first word of a command line
COMMAND = re.compile(r"""(['"])openssl(\s[^'"]*)?\1""")


def test_no_source_runs_the_openssl_command():
    found = []
    for top in ("yurthub", "kubesandbox", "tests", "bench", "scripts", ".ci", "debian"):
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or path.suffix in (".pot", ".po", ".json", ".pem") or \
                    path == Path(__file__).resolve():
                continue
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            found += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
                      for m in COMMAND.finditer(text)]
            found += [f"{path.relative_to(ROOT)}: runs openssl" for line in text.splitlines()
                      if re.match(r"\s*openssl\s", line)]
    assert not found, found
