"""``yurthub cache ls|show|verify|purge`` on a real tree (written by the store), run as the
real command: what an operator types on a node whose hub is stopped."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from yurthub.cache.inventory import age
from yurthub.cache.mutation import load_meta
from yurthub.cache.views import CollectionState, ViewKey
from yurthub.storage import CollectionKey, DiskStore
from yurthub.storage.collection import decode_state

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "k8s-api-testdata"
PODS = CollectionKey("kubelet", "", "v1", "pods", True)
CMS = CollectionKey("kubelet", "", "v1", "configmaps", True)
LEASES = CollectionKey("kube-proxy", "coordination.k8s.io", "v1", "leases", True)
NODES = CollectionKey("kubelet", "", "v1", "nodes", False)


def obj(kind_file: str, name: str, ns: str = "") -> dict[str, Any]:
    doc = json.loads((DATA / kind_file).read_text())
    doc["metadata"]["name"] = name
    if ns:
        doc["metadata"]["namespace"] = ns
    else:
        doc["metadata"].pop("namespace", None)
    return doc


def fill(store: DiskStore, ck: CollectionKey, objs: list[dict[str, Any]], *,
         synced_ago: float = 300, stale: str = "", views: tuple[ViewKey, ...] = (
             ViewKey("", "", ""),)) -> None:
    state = CollectionState(objs[0]["kind"], objs[0]["apiVersion"], objs[0]["kind"] + "List")
    for v in views:
        state.synced(v, 100, now=time.time() - synced_ago)
        if stale:
            state.mark_stale(v, stale)
    with store.transaction(ck) as txn:
        for o in objs:
            body = json.dumps(o).encode()
            md = o["metadata"]
            txn.put(md.get("namespace", ""), md["name"], body,
                    load_meta(ck, md.get("namespace", ""), md["name"], body))
        txn.set_state(state.to_json())
        txn.commit()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


def make_tree(where: Path) -> Path:
    root = where / "cache"
    with DiskStore(str(root), meta_loader=load_meta) as store:
        fill(store, PODS, [obj("core.v1.Pod.json", f"web-{i}", "default") for i in range(3)]
             + [obj("core.v1.Pod.json", "dns", "kube-system")], synced_ago=330,
             views=(ViewKey("", "", ""), ViewKey("default", "app=web", "")))
        fill(store, CMS, [obj("core.v1.ConfigMap.json", "settings", "default")],
             synced_ago=3 * 86400, stale="watch ended with a gap")
        fill(store, LEASES, [obj("coordination.k8s.io.v1.Lease.json", "node-a",
                                 "kube-node-lease")], synced_ago=20)
        fill(store, NODES, [obj("core.v1.Node.json", "node-a")], synced_ago=7200)
    return root


def cache(root: Path, *args: str, stdin: Any = subprocess.DEVNULL,
          stderr: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YURTHUB_CONFIG": os.devnull}  # not a package's /etc file
    return subprocess.run([sys.executable, "-m", "yurthub", "cache", "--disk-cache-path",
                           str(root), *args], stdout=subprocess.PIPE, stderr=stderr,
                          stdin=stdin, text=True, timeout=60, env=env)


def one_line_error(r: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def files_of(root: Path, ck: CollectionKey) -> list[Path]:
    d = root / ck.component / ck.dirname
    return [p for p in d.rglob("*") if p.is_file() and not p.name.startswith(("_", "."))
            and (not ck.namespaced or p.parent != d)]


# -- ls ---------------------------------------------------------------------------------------

def test_ls_is_an_aligned_table_with_kubectl_ages(tree):
    r = cache(tree, "ls")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["COMPONENT", "RESOURCE", "OBJECTS", "BYTES", "VIEWS", "AGE",
                                "STALE"]
    rows = {(c[0], c[1]): c for c in (line.split() for line in lines[1:])}
    assert set(rows) == {("kubelet", "pods"), ("kubelet", "configmaps"),
                         ("kubelet", "nodes"), ("kube-proxy", "leases.coordination.k8s.io")}
    pods = rows[("kubelet", "pods")]
    assert pods[2] == "4"
    assert int(pods[3]) == sum(p.stat().st_size for p in files_of(tree, PODS))
    assert pods[4] == "2" and pods[6] == "no"
    # kubectl's form of 330 s, give or take the seconds a loaded machine takes to start it.
    assert re.fullmatch(r"5m3[0-5]s", pods[5]), pods[5]
    assert rows[("kubelet", "configmaps")][5:] == ["3d", "yes"]
    assert rows[("kubelet", "nodes")][5] == "120m"
    # Aligned: every column starts at the same offset on every line.
    starts = [lines[0].index(h) for h in ("RESOURCE", "OBJECTS", "AGE")]
    for line in lines[1:]:
        for s in starts:
            assert line[s - 1] == " " and line[s] != " "


def test_ls_of_one_component_wide_and_json(tree):
    r = cache(tree, "ls", "kube-proxy", "-o", "wide")
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["kube-proxy"]
    r = cache(tree, "ls", "kubelet", "-o", "wide")
    cms = next(line for line in r.stdout.splitlines() if " configmaps " in line)
    assert "watch ended with a gap" in cms
    doc = json.loads(cache(tree, "ls", "-o", "json").stdout)
    pods = next(i for i in doc["items"] if i["resource"] == "pods")
    assert pods["objects"] == 4 and pods["stale"] is False
    assert sorted(v["selector"] for v in pods["views"]) == ["*", "default/l:app=web"]
    cms = next(i for i in doc["items"] if i["resource"] == "configmaps")
    assert cms["staleReason"] == "view * stale: watch ended with a gap"
    assert yaml.safe_load(cache(tree, "ls", "-o", "yaml").stdout) == {
        **doc, "items": [{**i, "ageSeconds": pytest.approx(i["ageSeconds"], abs=5),
                          "views": [{**v, "ageSeconds": pytest.approx(v["ageSeconds"], abs=5)}
                                    for v in i["views"]]} for i in doc["items"]]}


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (119, "119s"), (120, "2m"),
                                           (330, "5m30s"), (600, "10m"), (3 * 3600, "3h"),
                                           (3 * 3600 + 60, "3h1m"), (47 * 3600, "47h"),
                                           (50 * 3600, "2d2h"), (10 * 86400, "10d"),
                                           (800 * 86400, "2y70d"), (3000 * 86400, "8y")])
def test_ages_read_as_kubectl_prints_them(seconds, text):
    assert age(seconds) == text


def test_ls_bad_input_is_one_line(tree, tmp_path):
    one_line_error(cache(tree, "ls", "nope"), "component 'nope' is not in the cache")
    one_line_error(cache(tmp_path / "missing", "ls"), "no cache at")
    r = cache(tree, "ls", "-o", "xml")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_ls_of_an_empty_tree_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    r = cache(tmp_path / "empty", "ls")
    assert r.returncode == 0 and r.stdout == ""
    assert "No resources found" in r.stderr


@pytest.mark.parametrize("args", [("ls",), ("ls", "kubelet"), ("show", "kubelet", "pods", "a/b"),
                                  ("verify",), ("purge", "--yes")])
def test_a_directory_that_is_not_a_cache_is_refused_not_read_as_one(tmp_path, args):
    # A slip in --disk-cache-path (/etc, a home): its directories are no components, and
    # "No resources found" with exit 0 would tell the operator the cache is empty.
    other = tmp_path / "etc"
    (other / "apt" / "sources.d").mkdir(parents=True)
    (other / "apt" / "sources.d" / "debian.list").write_text("deb http://deb.debian.org\n")
    (other / "hosts").write_text("127.0.0.1 localhost\n")
    one_line_error(cache(other, *args), f"{other} is not a yurthub cache")
    assert (other / "hosts").read_text() == "127.0.0.1 localhost\n"
    assert sorted(p.name for p in other.iterdir()) == ["apt", "hosts"]


def test_an_empty_cache_a_hub_opened_is_an_empty_cache(tmp_path):
    root = tmp_path / "cache"
    with DiskStore(str(root), meta_loader=load_meta):
        pass
    r = cache(root, "ls")
    assert r.returncode == 0 and r.stdout == "" and "No resources found" in r.stderr
    assert json.loads(cache(root, "ls", "-o", "json").stdout)["items"] == []
    one_line_error(cache(root, "ls", "kubelet"),
                   f"component 'kubelet' is not in the cache at {root} (the cache is empty)")
    one_line_error(cache(root, "show", "kubelet", "pods", "default/web"),
                   "(the cache is empty)")


# -- show -------------------------------------------------------------------------------------

def test_show_prints_the_cached_object_as_json_or_yaml(tree):
    want = json.loads((tree / "kubelet/pods.v1.core/default/web-1").read_bytes())
    r = cache(tree, "show", "kubelet", "pods", "default/web-1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == want
    r = cache(tree, "show", "kubelet", "pods.v1.core", "default/web-1", "-o", "yaml")
    assert yaml.safe_load(r.stdout) == want
    r = cache(tree, "show", "kube-proxy", "leases.coordination.k8s.io", "kube-node-lease/node-a")
    assert json.loads(r.stdout)["kind"] == "Lease"
    r = cache(tree, "show", "kubelet", "nodes", "node-a")
    assert json.loads(r.stdout)["metadata"]["name"] == "node-a"


@pytest.mark.parametrize("args, fragment", [
    (("kubelet", "pods", "default/nope"), "default/nope is not in the cache"),
    (("kubelet", "pods", "web-1"), "namespaced: give NAMESPACE/NAME"),
    (("kubelet", "nodes", "default/node-a"), "cluster-scoped: give NAME alone"),
    (("kubelet", "pods", "default/../../etc"), "not a valid name"),
    (("kubelet", "secrets", "default/x"), "has no resource 'secrets'"),
    (("nobody", "pods", "default/x"), "component 'nobody' is not in the cache"),
])
def test_show_bad_input_is_one_line(tree, args, fragment):
    one_line_error(cache(tree, "show", *args), fragment)


# -- verify -----------------------------------------------------------------------------------

def test_verify_a_clean_tree(tree):
    r = cache(tree, "verify")
    assert r.returncode == 0, r.stdout
    assert r.stdout.strip() == f"ok: 7 object file(s) in the cache at {tree}"
    assert r.stderr == ""  # no progress bar when stderr is not a terminal


def test_verify_lists_every_problem_and_exits_1(tree):
    pods = tree / "kubelet/pods.v1.core"
    (pods / "default/web-2").write_bytes((pods / "default/web-0").read_bytes())  # wrong name
    (pods / "kube-system/dns").write_bytes(b'{"kind": "Pod", "metad')              # torn
    os.chmod(pods / "default/web-1", 0o644)
    os.mkdir(pods / ".stage.7")
    os.symlink("/etc/passwd", pods / "default/evil")
    os.mkfifo(pods / "default/fifo")
    (tree / "kubelet/configmaps.v1.core/_state").write_text("{not json")
    os.chmod(tree / "kube-proxy", 0o755)
    r = cache(tree, "verify")
    assert r.returncode == 1
    out = r.stdout
    assert "kubelet/pods.v1.core/default/web-2: it holds an object named 'web-0'" in out
    assert "kubelet/pods.v1.core/kube-system/dns: torn or not JSON" in out
    assert "kubelet/pods.v1.core/default/web-1: file mode 0644, not 0600" in out
    assert "kubelet/pods.v1.core/.stage.7: debris" in out
    assert "kubelet/pods.v1.core/default/evil: not a regular file (a symlink)" in out
    assert "kubelet/pods.v1.core/default/fifo: not a regular file (a FIFO)" in out
    assert "kubelet/configmaps.v1.core/_state: does not parse" in out
    assert "kube-proxy: directory mode 0755, not 0700" in out
    assert out.splitlines()[-1] == f"8 problem(s) in the cache at {tree}"
    # Read-only: nothing was repaired, moved or removed.
    assert (pods / ".stage.7").is_dir() and (pods / "default/evil").is_symlink()


def test_verify_does_not_name_a_file_a_committed_watch_event_deleted(tree):
    """As after a crash: the saved index predates a watch event's delete.  The hub's start
    finds the delete in the history (the object is gone, not lost); verify agrees."""
    idx = tree / "kubelet/pods.v1.core/_index"
    stale = idx.read_bytes()
    with DiskStore(str(tree), meta_loader=load_meta, index_interval=3600) as store:
        with store.transaction(PODS) as txn:
            txn.delete("default", "web-1")
            txn.append_history([{"rv": 900, "type": "DELETED", "ns": "default",
                                 "name": "web-1"}])
            txn.commit()
    idx.write_bytes(stale)
    r = cache(tree, "verify")
    assert "web-1" not in r.stdout, r.stdout
    with DiskStore(str(tree), meta_loader=load_meta) as store:
        assert ("default", "web-1") not in store.entries(PODS)
        assert ("default", "web-0") in store.entries(PODS)


def test_verify_names_indexed_objects_whose_files_are_gone(tree):
    """What the hub's start reports lost (a deleted file, a namespace directory replaced by
    a file) verify names too; it never says ok about them."""
    pods = tree / "kubelet/pods.v1.core"
    (pods / "default/web-1").unlink()
    (tree / "kubelet/nodes.v1.core/node-a").unlink()
    for f in (pods / "kube-system").iterdir():
        f.unlink()
    (pods / "kube-system").rmdir()
    (pods / "kube-system").write_text("x")
    r = cache(tree, "verify")
    assert r.returncode == 1, r.stdout
    out = r.stdout
    assert ("kubelet/pods.v1.core/default/web-1: listed in the index but its file is missing"
            in out)
    assert "kubelet/nodes.v1.core/node-a: listed in the index but its file is missing" in out
    assert ("kubelet/pods.v1.core/kube-system: 1 object(s) listed in the index have no "
            "namespace directory") in out


def test_a_state_the_hub_would_set_aside_is_named_by_verify_and_ls(tree):
    """An empty state, and one whose view has a field this version does not know (as a
    newer version would write): the hub's start sets both aside; verify says so, ls shows
    the collection with the reason instead of a traceback."""
    pods = tree / "kubelet/pods.v1.core/_state"
    doc = json.loads(decode_state(pods.read_bytes()))
    doc["views"][0]["checksum"] = "x"
    pods.write_text(json.dumps(doc))
    (tree / "kubelet/configmaps.v1.core/_state").write_bytes(b"")
    r = cache(tree, "verify")
    assert r.returncode == 1, r.stdout
    assert ("kubelet/pods.v1.core/_state: does not parse (a view has field(s) this yurthub "
            "does not know: ['checksum']") in r.stdout
    assert "the hub sets it aside at its start" in r.stdout
    assert "kubelet/configmaps.v1.core/_state: does not parse" in r.stdout
    r = cache(tree, "ls", "-o", "wide")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    row = next(line for line in r.stdout.splitlines() if " pods " in line)
    assert "state unreadable: a view has field(s)" in row and " yes " in row


def test_ls_shows_a_damaged_or_torn_state_as_unreadable_not_as_fresh(tree):
    """One flipped bit in a framed _state (a view's version 100 -> 101), a torn one and an
    empty one: the hub's start sets each aside and refuses those lists offline, so ls must
    not show them as collections with nothing stale; show and verify go on working."""
    pods = tree / "kubelet/pods.v1.core/_state"
    assert b'"rv":100' in pods.read_bytes()
    pods.write_bytes(pods.read_bytes().replace(b'"rv":100', b'"rv":101', 1))
    leases = tree / "kube-proxy/leases.v1.coordination.k8s.io/_state"
    leases.write_bytes(leases.read_bytes()[:40])
    (tree / "kubelet/nodes.v1.core/_state").write_bytes(b"")
    r = cache(tree, "ls", "-o", "wide")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    rows = {line.split()[1]: line for line in r.stdout.splitlines()[1:]}
    for resource, why in (("pods", "torn or damaged"),
                          ("leases.coordination.k8s.io", "torn or damaged"),
                          ("nodes", "the file is empty")):
        assert " yes " in rows[resource] and "state unreadable: " in rows[resource], r.stdout
        assert why in rows[resource], r.stdout
    assert "unreadable" not in rows["configmaps"], r.stdout
    doc = json.loads(cache(tree, "ls", "-o", "json").stdout)
    pods_row = next(i for i in doc["items"] if i["resource"] == "pods")
    assert pods_row["stale"] and "state unreadable" in pods_row["staleReason"]
    r = cache(tree, "show", "kubelet", "pods", "default/web-1")
    assert r.returncode == 0 and json.loads(r.stdout)["metadata"]["name"] == "web-1", r.stderr
    r = cache(tree, "verify")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "kubelet/pods.v1.core/_state: does not parse" in r.stdout


def test_ls_reads_a_state_written_before_states_were_framed(tree):
    """A tree an earlier version wrote (plain JSON _state) is read as it is: not stale."""
    pods = tree / "kubelet/pods.v1.core/_state"
    pods.write_bytes(decode_state(pods.read_bytes()))
    assert not pods.read_bytes().startswith(b"yurthub-state ")
    r = cache(tree, "ls", "-o", "wide")
    row = next(line for line in r.stdout.splitlines() if " pods " in line)
    assert " no " in row and "unreadable" not in row and "*" in row, r.stdout
    assert cache(tree, "verify").returncode == 0


def test_verify_names_a_document_of_the_hub_it_cannot_use(tree):
    """The filters' persisted inputs are garbage: the hub refuses filtered requests offline
    and is not ready; verify must not say ok.  The cloud's own bodies are kept as they came
    (not judged)."""
    with DiskStore(str(tree)) as store:
        store.write_nonresource("/_yurthub/filter-inputs", b'{"yurtHubCfg": {}}')
        store.write_nonresource("/version", b"not json, as the cloud may answer")
    assert cache(tree, "verify").returncode == 0
    (tree / "_nonresource" / "%2F_yurthub%2Ffilter-inputs").write_bytes(b"\x00garbage{")
    r = cache(tree, "verify")
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith("_nonresource/%2F_yurthub%2Ffilter-inputs: does not parse")
    assert "refused offline" in r.stdout and "version" not in r.stdout


def test_verify_names_a_token_memory_the_hub_cannot_load(tree):
    with DiskStore(str(tree)) as store:
        store.write_bookkeeping("access", {"v": 1, "tokens": []})
    assert cache(tree, "verify").returncode == 0
    (tree / "_access").write_bytes(b"\x00garbage")
    r = cache(tree, "verify")
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith("_access: does not parse (not a access document); the hub "
                               "starts without it: bearer tokens seen before are refused")


def test_verify_names_bit_rot_that_keeps_the_files_stat_and_its_key(tree):
    """The hub's start compares each file with the checksum its index recorded; verify too,
    so a flip that leaves valid JSON naming the right object is not called ok."""
    p = tree / "kubelet/pods.v1.core/default/web-1"
    st = p.stat()
    data = p.read_bytes()
    assert b'"spec"' in data
    p.write_bytes(data.replace(b'"spec"', b'"spex"', 1))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = cache(tree, "verify")
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith("kubelet/pods.v1.core/default/web-1: its content changed under "
                               "an unchanged inode, size and mtime (bit rot?)")


def test_verify_shows_a_progress_bar_on_a_terminal_only(tree):
    master, slave = pty.openpty()
    try:
        r = cache(tree, "verify", stderr=slave)
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert r.returncode == 0
    assert b"verifying [" in seen and b"7/7" in seen
    assert "verifying" not in r.stdout


# -- purge ------------------------------------------------------------------------------------

def test_purge_asks_and_refuses_without_a_terminal_or_yes(tree):
    one_line_error(cache(tree, "purge", "kubelet"), "pass --yes")
    assert len(files_of(tree, PODS)) == 4


def test_purge_asks_on_a_terminal_and_no_means_no(tree):
    master, slave = pty.openpty()
    try:
        os.write(master, b"n\n")
        r = cache(tree, "purge", "kubelet", "pods", stdin=slave)
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 1
    assert "Purge 4 object(s) in 1 collection(s) of kubelet/pods" in r.stderr
    assert "nothing purged" in r.stderr
    assert len(files_of(tree, PODS)) == 4


def test_purge_one_resource_then_a_component(tree):
    r = cache(tree, "purge", "kubelet", "pods", "--yes")
    assert r.returncode == 0, r.stderr
    assert "purged 4 object(s) in 1 collection(s) of kubelet/pods (with the tree's lock)" \
        in r.stdout
    assert files_of(tree, PODS) == []
    assert len(files_of(tree, CMS)) == 1
    doc = json.loads(cache(tree, "ls", "-o", "json").stdout)
    pods = next(i for i in doc["items"] if i["resource"] == "pods")
    assert (pods["objects"], pods["views"]) == (0, [])  # no view: nothing answered offline
    assert cache(tree, "verify").returncode == 0
    r = cache(tree, "purge", "kubelet", "--yes")
    assert r.returncode == 0
    assert files_of(tree, CMS) == [] and files_of(tree, NODES) == []
    assert len(files_of(tree, LEASES)) == 1
    # A purged tree is one the hub opens: the store sees the same.
    with DiskStore(str(tree), meta_loader=load_meta) as store:
        assert not store.entries(CMS) and len(store.entries(LEASES)) == 1
        assert CollectionState.from_json(store.state(CMS)).views == {}


def test_purge_refuses_while_another_process_holds_the_tree(tree):
    fd = os.open(tree / "_lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = cache(tree, "--serve-port", "1", "purge", "--yes")
        one_line_error(r, "admin token")
        (tree / "_admin_token").write_text("x" * 48)
        os.chmod(tree / "_admin_token", 0o600)
        r = cache(tree, "--serve-port", "1", "purge", "--yes")
        one_line_error(r, "did not answer")
        assert "give its --config or --serve-port" in r.stderr
        assert "nothing purged" in r.stderr
    finally:
        os.close(fd)
    assert len(files_of(tree, PODS)) == 4


def test_root_purging_the_service_users_tree_leaves_it_to_that_user():
    # `sudo yurthub cache purge` on a stopped hub's tree, owned by the service's user:
    # opening the store rewrites every collection's bookkeeping, and files of root's would
    # be unreadable to the hub at its next start (it set every collection aside).
    nobody = 65534
    top = Path(tempfile.mkdtemp(prefix="yurthub-purge-"))  # in /tmp: nobody may reach it
    try:
        root = make_tree(top)
        for p in [top, *top.rglob("*")]:
            os.chown(p, nobody, nobody, follow_symlinks=False)
        r = cache(root, "purge", "kubelet", "pods", "--yes")
        assert r.returncode == 0, r.stderr
        assert "purged 4 object(s)" in r.stdout
        assert [str(p) for p in top.rglob("*") if p.lstat().st_uid != nobody] == []
        r = cache(root, "verify")
        assert r.returncode == 0, r.stdout
        assert len(files_of(root, CMS)) == 1 and files_of(root, PODS) == []
    finally:
        shutil.rmtree(top)


def test_ls_into_a_pipe_whose_reader_went_away(tree):
    # `yurthub cache ls | head -1`: no BrokenPipeError traceback.
    from tests.unit.test_cli import into_closed_pipe
    p = into_closed_pipe("cache", "--disk-cache-path", str(tree), "ls", "-o", "wide")
    assert (p.returncode, p.stderr) == (141, "")
