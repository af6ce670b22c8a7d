"""What of a URL is a credential, and the text with it replaced by ``<redacted>``.

One rule for every place that shows a request's target to someone other than its sender: the
log formatter, and the status page's record of recent fallbacks and refusals, which any local
user may read on the hub server's loopback port.
"""

from __future__ import annotations

import re

# Credentials a URL may carry: a query parameter that names one (``?access_token=``, as some
# clients send a bearer token) and a password in the authority (``https://u:pw@host``).
# Whatever logs a URL (a request's path at debug level, urllib3's retry warnings, an
# exception's text), the line shows neither.
_URL_SECRETS = re.compile(
    r"(?i)(?P<key>[?&;](?:access_token|id_token|refresh_token|token|password|passwd|secret|"
    r"client_secret|api_key|apikey)=)[^&;\s'\"#]+"
    r"|(?P<auth>://[^/\s:@'\"]*:)[^@/\s'\"]+@")


def _redact(m: re.Match[str]) -> str:
    return f"{m.group('key')}<redacted>" if m.group("key") else f"{m.group('auth')}<redacted>@"


def redact_url_secrets(text: str) -> str:
    """``text`` with the credentials of any URL in it replaced by ``<redacted>``."""
    return _URL_SECRETS.sub(_redact, text)


_USERINFO = re.compile(r"(^|//|,)[^/?#,\s]*@")
_QUERY = re.compile(r"\?[^#,\s]*")


def redact_userinfo(text: str) -> str:
    """``text`` with the user info and the query of every URL in it hidden
    (``user:password@``, ``?token=...``): an error message about a setting, or the proxy the
    cloud is reached through, goes to the journal; a password must not, nor a user name
    alone (a proxy's API key, sent as Basic)."""
    return _QUERY.sub("?(query not shown)", _USERINFO.sub(r"\1(user info not shown)@", text))
