"""Suite-wide settings: every test talks to servers on loopback, never through a proxy."""

from __future__ import annotations

import os

_LOOPBACK = "127.0.0.1,localhost,::1"
for _var in ("no_proxy", "NO_PROXY"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var, ""), _LOOPBACK]))

# The shared fixtures (sandbox, hub_factory, hub) and helpers live in tests/fixtures/.
pytest_plugins = ["tests.fixtures.plugin"]
