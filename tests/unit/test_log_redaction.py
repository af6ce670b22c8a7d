"""No URL's credentials in the hub's log lines, whoever logs the URL."""

from __future__ import annotations

import logging

import pytest

from yurthub.service import EscapingFormatter, redact_url_secrets


@pytest.mark.parametrize("text,expected", [
    ("GET /api/v1/pods?access_token=abc.def&limit=5",
     "GET /api/v1/pods?access_token=<redacted>&limit=5"),
    ("/api/v1/pods?limit=5&TOKEN=x y", "/api/v1/pods?limit=5&TOKEN=<redacted> y"),
    ("/apis/x?password=hunter2", "/apis/x?password=<redacted>"),
    ("'https://admin:hunter2@10.0.0.1:6443/api'", "'https://admin:<redacted>@10.0.0.1:6443/api'"),
    # What is no credential stays as it is: selectors, continue tokens, prose.
    ("/api/v1/pods?labelSelector=token%3Dx&continue=eyJ2",
     "/api/v1/pods?labelSelector=token%3Dx&continue=eyJ2"),
    ("join token file /etc/x: token=... is not valid",
     "join token file /etc/x: token=... is not valid"),
    ("https://10.0.0.1:6443/api", "https://10.0.0.1:6443/api"),
])
def test_url_credentials_are_redacted(text, expected):
    assert redact_url_secrets(text) == expected


def test_the_formatter_redacts_messages_and_tracebacks():
    fmt = EscapingFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("cannot reach https://u:hunter2@cloud:6443/?token=abc")
    except ValueError:
        import sys
        record = logging.LogRecord("yurthub.x", logging.WARNING, __file__, 1,
                                   "GET %s", ("/api?access_token=abc",), sys.exc_info())
    line = fmt.format(record)
    assert "hunter2" not in line and "abc" not in line.replace("access_token=<redacted>", "")
    assert "access_token=<redacted>" in line and "u:<redacted>@cloud" in line
