"""An in-process sandbox API (no sockets) with a small seed, and a client that calls it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kubesandbox import seed
from kubesandbox.api import Api
from kubesandbox.discovery import Registry
from kubesandbox.store import Store
from kubesandbox.wire import Request, Response, status_response
from yurthub.errors import ApiError


@dataclass
class Reply:
    status: int
    body: Any
    response: Response


class Client:
    def __init__(self, api: Api) -> None:
        self.api = api

    def __call__(self, method: str, path: str, body: Any = None, *,
                 content_type: str = "application/json", headers: dict | None = None,
                 **query: Any) -> Reply:
        if isinstance(body, (dict, list)):
            raw = json.dumps(body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body or b""
        hdrs = {"Content-Type": content_type, **(headers or {})}
        qs = {k: [str(v)] for k, v in query.items()}
        req = Request(method, path, qs, hdrs, raw)
        try:
            resp = self.api.handle(req)
        except ApiError as e:
            resp = status_response(e)
        if resp.stream is not None:
            return Reply(resp.status, None, resp)
        data = b"".join(resp.body)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode()
        return Reply(resp.status, parsed, resp)

    def url(self, path: str, **query: Any) -> str:
        return path + ("?" + urlencode(query) if query else "")


def make_api(nodes: int = 2, pods_per_node: int = 3, history_size: int = 1000) -> Api:
    store = Store(history_size=history_size)
    registry = Registry()
    api = Api(store, registry, bookmark_interval=0.05, watch_timeout=5)
    seed.install(store, registry, "127.0.0.1", 6443, nodes, pods_per_node)
    return api
