"""Runs transactions in a loop until killed: the subject of the storage crash tests.

Usage: crash_worker.py ROOT DURABILITY [CRASH_AFTER_REPLACES]

Every transaction N rewrites a whole collection: objects ``o<i>`` with ``(i + N) % 5 != 0``
get a body carrying ``"tx": N``, the others are deleted; the state becomes ``{"tx": N}`` and
a history record ``{"rv": N}`` is appended.  So after any crash, each collection must show
one N everywhere.  With CRASH_AFTER_REPLACES, the process dies (os._exit) at that os.replace
call of its first commit instead: a crash after the commit point, between renames.
"""

from __future__ import annotations

import json
import os
import sys

from yurthub.storage import CollectionKey, DiskStore

COLLECTIONS = [
    (CollectionKey("kubelet", "", "v1", "pods", True), 150),
    (CollectionKey("kubelet", "", "v1", "nodes", False), 12),
    (CollectionKey("kube-proxy", "discovery.k8s.io", "v1", "endpointslices", True), 1),
]


def namespace(ck: CollectionKey, i: int) -> str:
    return f"ns-{i % 4}" if ck.namespaced else ""


def expected(n: int, tx: int) -> set[int]:
    return {i for i in range(n) if n == 1 or (i + tx) % 5 != 0}


def obj(ck: CollectionKey, i: int, tx: int) -> bytes:
    md = {"name": f"o{i}", "labels": {"tx": str(tx)}}
    if ck.namespaced:
        md["namespace"] = namespace(ck, i)
    return json.dumps({"kind": "X", "apiVersion": "v1", "metadata": md, "tx": tx,
                       "pad": "p" * (i % 7) * 300}).encode()


def main() -> None:
    root, durability = sys.argv[1], sys.argv[2]
    crash_after = int(sys.argv[3]) if len(sys.argv) > 3 else None
    store = DiskStore(root, durability=durability, lock_timeout=30)
    store.open()
    tx = 1 + max([store.state(ck).get("tx", 0) for ck, _ in COLLECTIONS])
    if crash_after is not None:
        real, calls = os.replace, [0]

        def replace(*a: object, **kw: object) -> None:
            calls[0] += 1
            if calls[0] > crash_after:
                os._exit(3)
            real(*a, **kw)  # type: ignore[arg-type]
        os.replace = replace  # type: ignore[assignment]
    print("ready", flush=True)
    while True:
        for ck, n in COLLECTIONS:
            with store.transaction(ck) as txn:
                keep = expected(n, tx)
                for i in range(n):
                    if i in keep:
                        txn.put(namespace(ck, i), f"o{i}", obj(ck, i, tx), {"tx": tx})
                    else:
                        txn.delete(namespace(ck, i), f"o{i}")
                txn.set_state({"tx": tx})
                txn.append_history([{"rv": tx}])
                txn.commit()
            tx += 1


if __name__ == "__main__":
    main()
