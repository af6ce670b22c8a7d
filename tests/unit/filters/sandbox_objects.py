"""The sandbox's seeded objects (4 nodes: node-0000/0001 in pool-a/zone-a, node-0002/0003 in
pool-b/zone-b), decoded, as the inputs of the filter tables.

Endpoint addresses follow the sandbox's layout (``kubesandbox.openyurt.endpoint_ip``): the
service's index among ``SERVICES`` and the node's index, e.g. web-pool (6) on node-0002 is
10.128.8.206.  The expected outputs in the tables are written out by hand.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from kubesandbox import seed
from yurthub.filters.chain import Scope
from yurthub.filters.context import FilterContext

NODES = 4


@lru_cache(maxsize=1)
def _objects() -> dict[tuple[str, str, str], bytes]:
    groups, _ = seed.seed_entries("127.0.0.1", 6443, NODES, 1, 0, "2025-01-01T00:00:00Z")
    return {(rt.resource, e.namespace, e.name): e.data for rt, entries in groups
            for e in entries}


def obj(resource: str, namespace: str, name: str) -> dict[str, Any]:
    """A fresh decoded copy of a seeded object (kind and apiVersion included)."""
    return json.loads(_objects()[(resource, namespace, name)])


def raw(resource: str, namespace: str, name: str) -> bytes:
    return _objects()[(resource, namespace, name)]


def names(resource: str, namespace: str) -> list[str]:
    return sorted(n for (r, ns, n) in _objects() if r == resource and ns == namespace)


def ctx(**kw: Any) -> FilterContext:
    base: dict[str, Any] = {"node_name": "node-0001", "hub_host": "169.254.2.1",
                            "hub_port": 10268}
    base.update(kw)
    return FilterContext(**base)


def scope(group: str, version: str, resource: str, context: FilterContext | None = None
          ) -> Scope:
    return Scope(group, version, resource, context or ctx())


def frozen(o: Any) -> Any:
    """A deep copy to compare against afterwards (filters must not change their input)."""
    return copy.deepcopy(o)


@lru_cache(maxsize=8)
def list_body(path: str) -> bytes:
    """The body kube-apiserver (the sandbox's API, in process) gives for a list ``path``."""
    from kubesandbox import seed as _seed
    from kubesandbox.api import Api
    from kubesandbox.discovery import Registry
    from kubesandbox.store import Store
    from kubesandbox.wire import Request

    store, registry = Store(history_size=100), Registry()
    api = Api(store, registry)
    _seed.install(store, registry, "127.0.0.1", 6443, NODES, 1, "2025-01-01T00:00:00Z")
    resp = api.handle(Request("GET", path, {}, {"Accept": "application/json"}))
    assert resp.status == 200 and resp.stream is None
    return b"".join(resp.body)
