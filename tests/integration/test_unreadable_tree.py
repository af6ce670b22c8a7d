"""A cache tree the service's user cannot wholly read: the store opens as that user (``nobody``,
as the package's ``yurthub`` user would), never as root, whom no mode stops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from yurthub.storage import CollectionKey, DiskStore

PODS = CollectionKey("kubelet", "", "v1", "pods", True)
LEASES = CollectionKey("kubelet", "coordination.k8s.io", "v1", "leases", True)

NODES_OF = CollectionKey("kube-proxy", "", "v1", "nodes", False)
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

# Opens the store as the service would and says what it sees (stdlib and yurthub only).
_OPEN = r"""
import json, sys
from yurthub.errors import StorageError
from yurthub.storage import CollectionKey, DiskStore
store = DiskStore(sys.argv[1])
try:
    report = store.open()
except StorageError as e:
    print(json.dumps({"error": str(e)}))
    raise SystemExit(0)
keys = {"pods": CollectionKey("kubelet", "", "v1", "pods", True),
        "leases": CollectionKey("kubelet", "coordination.k8s.io", "v1", "leases", True),
        "nodes": CollectionKey("kube-proxy", "", "v1", "nodes", False)}
print(json.dumps({"set_aside": {k: store.set_aside(ck) for k, ck in keys.items()},
                  "entries": {k: len(store.entries(ck)) for k, ck in keys.items()},
                  "quarantined": report.quarantined_paths}))
store.close()
"""


def body(name: str, ns: str) -> bytes:
    md = {"name": name, **({"namespace": ns} if ns else {})}
    return json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": md}).encode()


def fill(store, ck, names=("a", "b")):
    ns = "default" if ck.namespaced else ""
    with store.transaction(ck) as txn:
        for n in names:
            txn.put(ns, n, body(n, ns), {"labels": {}})
        txn.commit()


def chown_tree(root, uid, gid):
    for dirpath, dirs, names in os.walk(root):
        for n in [dirpath, *(os.path.join(dirpath, x) for x in dirs + names)]:
            os.chown(n, uid, gid, follow_symlinks=False)


@pytest.fixture
def open_dir():
    """A directory nobody may reach (pytest's tmp_path has 0700 parents)."""
    d = tempfile.mkdtemp(prefix="yurthub-owner-")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d)


WHERE = {"collection": "kubelet/pods.v1.core", "component": "kubelet",
         "quarantine": "_quarantine", "nonresource": "_nonresource"}


@pytest.mark.parametrize("what", list(WHERE))
def test_a_directory_the_service_cannot_read_costs_it_alone_not_the_start(open_dir, what):
    """A component's or collection's directory owned by root (0700: restored from a backup
    as root) could be neither recovered nor moved to _quarantine (moving a directory to
    another parent needs write permission on it): the start failed, and the hub exited at
    every restart, online proxying included.  So did a root-owned _nonresource, and a
    root-owned _quarantine at the first damaged file recovery set aside."""
    c = open_dir / "c"
    store = DiskStore(str(c))
    store.open()
    for ck in (PODS, LEASES, NODES_OF):
        fill(store, ck)
    store.close()
    (c / "_quarantine").mkdir(mode=0o700, exist_ok=True)
    torn = c / "kubelet" / "leases.v1.coordination.k8s.io" / "default" / "b"
    torn.write_bytes(torn.read_bytes()[:20])  # one file recovery must set aside
    chown_tree(c, 65534, 65534)
    locked = c / WHERE[what]
    os.chown(locked, 0, 0)
    os.chmod(locked, 0o700)
    r = subprocess.run([*NOBODY, sys.executable, "-c", _OPEN, str(c)], capture_output=True,
                       text=True, timeout=120, cwd=os.getcwd())
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert "error" not in seen, seen
    # What could not be read is set aside (gets 503, lists refused); the rest is served.
    assert seen["entries"]["nodes"] == 2 and not seen["set_aside"]["nodes"]
    assert (seen["entries"]["leases"] == 1) is (what != "component")
    assert bool(seen["set_aside"]["pods"]) is (what in ("collection", "component"))
    moved = {"collection": "kubelet/_unreadable.pods.v1.core",
             "component": "_unreadable.kubelet", "quarantine": "_unreadable._quarantine",
             "nonresource": "_unreadable._nonresource"}[what]
    assert (c / moved).stat().st_uid == 0  # and a new one, the service's, where it was
    assert not locked.exists() or locked.stat().st_uid == 65534
    assert f"set aside as {moved.rsplit('/', 1)[-1]} beside it" in r.stderr
    if what != "component":
        assert (c / "_quarantine" / "kubelet" / "leases.v1.coordination.k8s.io" / "default"
                / "b").exists()
    # The next start is quiet: what was set aside beside it is left alone.
    r = subprocess.run([*NOBODY, sys.executable, "-c", _OPEN, str(c)], capture_output=True,
                       text=True, timeout=120, cwd=os.getcwd())
    assert json.loads(r.stdout)["quarantined"] == [] and "ERROR" not in r.stderr.upper()
    # ``yurthub cache verify`` names it, with what the operator does about it.
    v = subprocess.run([sys.executable, "-m", "yurthub", "cache", "--disk-cache-path", str(c),
                        "verify"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "YURTHUB_CONFIG": os.devnull})
    assert v.returncode == 1 and f"{moved}: set aside by the hub" in v.stdout, v.stdout
