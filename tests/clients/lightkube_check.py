"""lightkube (PyPI) through a running hub, online and with the cloud cut.  Run by hand; the
suite does not (lightkube is not a test dependency).

    python -m kubesandbox --port 31001 --control-port 31002 --nodes 3 --pods-per-node 3 &
    yurthub serve --server-addr http://127.0.0.1:31001 --node-name node-0000 \\
        --proxy-port 31010 --serve-port 31011 --cache-agents '*' \\
        --bootstrap-mode credentials --secure-proxy-port 0 \\
        --disk-cache-path /tmp/c --root-dir /tmp/r &
    pip install --target /tmp/lk lightkube
    PYTHONPATH=/tmp/lk python tests/clients/lightkube_check.py http://127.0.0.1:31010 \\
        http://127.0.0.1:31002

The second argument is the sandbox's control port: the script cuts the cloud and brings it
back.  lightkube decodes every answer into typed models (msgspec), so a field of the wrong
type, a list without ``items`` or a Status of the wrong shape fails here where the
``kubernetes`` client lets it pass.  Exit 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

from lightkube import Client, KubeConfig  # type: ignore[import-not-found]
from lightkube.core.exceptions import ApiError  # type: ignore[import-not-found]
from lightkube.models.meta_v1 import ObjectMeta  # type: ignore[import-not-found]
from lightkube.resources.core_v1 import ConfigMap, Pod  # type: ignore[import-not-found]

NS = "default"
failed = 0


def check(ok: bool, what: str, detail: Any = "") -> None:
    global failed
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f": {detail}"))
    failed += not ok


def code_of(f: Any) -> int:
    try:
        f()
    except ApiError as e:
        return int(e.status.code or 0)
    return 200


def names(objs: Any) -> list[str]:
    return sorted(o.metadata.name for o in objs)


def sandbox(control: str, action: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{control}/_sandbox/{action}",
                                                  method="POST"), timeout=10).read()


def main(hub: str, control: str) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as kc:
        kc.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: hub, cluster: {{server: "{hub}"}}}}]
users: [{{name: none, user: {{}}}}]
contexts: [{{name: hub, context: {{cluster: hub, user: none, namespace: {NS}}}}}]
current-context: hub
""")
    c = Client(KubeConfig.from_file(kc.name))
    pods = list(c.list(Pod, namespace=NS))
    check(bool(pods), "list pods")
    node = pods[0].spec.nodeName
    by_field = names(c.list(Pod, namespace="*", fields={"spec.nodeName": node}))
    paged = names(c.list(Pod, namespace=NS, chunk_size=2))
    check(paged == names(pods), "chunked list adds up to the list")

    listing = c.list(ConfigMap, namespace=NS)
    before = names(listing)
    events: list[tuple[str, str]] = []

    def follow() -> None:
        for etype, obj in c.watch(ConfigMap, namespace=NS,
                                  resource_version=listing.resourceVersion):
            events.append((etype, obj.metadata.name))

    threading.Thread(target=follow, daemon=True).start()
    for i in range(3):
        name = f"lk-check-{i}"
        c.create(ConfigMap(metadata=ObjectMeta(name=name, namespace=NS), data={"a": "1"}))
        c.patch(ConfigMap, name, {"data": {"b": "2"}}, namespace=NS)
        c.delete(ConfigMap, name, namespace=NS)
    for _ in range(100):
        if sum(t == "DELETED" for t, _ in events) == 3:
            break
        time.sleep(0.1)
    check(sum(t == "DELETED" for t, _ in events) == 3, "the watch saw the three deletes",
          events)
    time.sleep(1)  # the hub's cache writer commits what it was sent

    sandbox(control, "offline")
    time.sleep(3)  # the hub's health checker notices
    try:
        check(names(c.list(Pod, namespace=NS)) == names(pods), "list pods offline")
        check(names(c.list(Pod, namespace="*", fields={"spec.nodeName": node})) == by_field,
              "field selector offline = online")
        offline = names(c.list(ConfigMap, namespace=NS))
        check(offline == before, "configmaps offline = online (nothing deleted comes back)",
              f"{offline} vs {before}")
        check(code_of(lambda: c.get(ConfigMap, "lk-check-0", namespace=NS)) == 404,
              "a deleted object is 404 offline")
        check(code_of(lambda: c.create(ConfigMap(metadata=ObjectMeta(name="lk-x",
                                                                     namespace=NS)))) == 503,
              "a write offline is a 503 Status")
        check(code_of(lambda: c.watch(ConfigMap, namespace=NS, resource_version="1")
                      .__next__()) == 410, "a too old watch offline is 410")
    finally:
        sandbox(control, "online")
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: lightkube_check.py HUB_URL SANDBOX_CONTROL_URL")
    sys.exit(main(sys.argv[1], sys.argv[2]))
