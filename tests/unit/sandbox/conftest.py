"""Fixtures of the sandbox unit tests: an in-process API (no sockets) and a client for it."""

from __future__ import annotations

import pytest
from sandbox_api_helpers import Client, make_api

from kubesandbox.api import Api


@pytest.fixture
def api() -> Api:
    return make_api()


@pytest.fixture
def call(api: Api) -> Client:
    return Client(api)
