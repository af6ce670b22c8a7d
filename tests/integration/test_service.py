"""`yurthub serve` as a service: one owner per cache and port, one clear line on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fixtures import free_port
from tests.fixtures.hub import Hub
from tests.fixtures.peers import NOBODY, request_as_nobody
from tests.fixtures.procfs import fd_table_size
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import http


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    # hermetic: never the default /var/lib/yurthub (an installed package's, yurthub's own)
    with tempfile.TemporaryDirectory(prefix="yurthub-root-") as root:
        own = () if "--root-dir" in args else ("--root-dir", root)
        return subprocess.run([sys.executable, "-m", "yurthub", "serve", "--bootstrap-mode",
                               "credentials", "--secure-proxy-port", "0", *own, *args],
                              capture_output=True, text=True, timeout=60)


def test_a_second_instance_on_the_same_port_stops_with_one_line(sandbox, hub, tmp_path):
    r = serve("--server-addr", sandbox.url, "--proxy-port", str(hub.proxy_port),
              "--serve-port", str(free_port()), "--disk-cache-path", str(tmp_path / "other"))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert f"cannot listen on 127.0.0.1:{hub.proxy_port}" in r.stderr
    assert "another yurthub" in r.stderr
    assert hub.get("/version")[0] == 200  # the first one keeps serving


def test_a_second_instance_on_the_same_cache_stops_with_one_line(sandbox, hub: Hub):
    r = serve("--server-addr", sandbox.url, "--proxy-port", str(free_port()),
              "--serve-port", str(free_port()), "--disk-cache-path", str(hub.cache_dir))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "the cache is in use by another yurthub process" in r.stderr


def test_serve_without_an_apiserver_says_what_is_missing(tmp_path):
    r = serve("--disk-cache-path", str(tmp_path / "c"), "--proxy-port", str(free_port()),
              "--serve-port", str(free_port()))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "no apiserver" in r.stderr


def test_root_does_not_serve_from_the_service_users_cache(sandbox, tmp_path):
    # `sudo yurthub serve` on the package's tree (yurthub's, 0700): the admin token, indexes
    # and collections root would write there are 0600 root's, and the service, started as
    # yurthub again, could read none of them.  It stops before it writes anything.
    nobody = 65534
    for d in ("cache", "state"):
        (tmp_path / d).mkdir(mode=0o700)
        os.chown(tmp_path / d, nobody, nobody)
    (tmp_path / "cache" / "kubelet").mkdir(mode=0o700)
    os.chown(tmp_path / "cache" / "kubelet", nobody, nobody)
    for flag, path in (("--root-dir", str(tmp_path / "fresh")),
                       ("--disk-cache-path", str(tmp_path / "fresh-cache"))):
        args = {"--disk-cache-path": str(tmp_path / "cache"),
                "--root-dir": str(tmp_path / "state")}
        args[flag] = path
        r = serve("--server-addr", sandbox.url, "--proxy-port", str(free_port()),
                  "--serve-port", str(free_port()), *(x for kv in args.items() for x in kv))
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
        wrong = "root_dir" if flag == "--disk-cache-path" else "disk_cache_path"
        assert f"{wrong} = " in r.stderr and "belongs to nobody" in r.stderr, r.stderr
        assert "run yurthub as nobody" in r.stderr
    assert [p for p in tmp_path.rglob("*") if p.lstat().st_uid != nobody] == []


def test_a_directory_that_is_no_cache_is_refused_and_left_alone(sandbox, tmp_path):
    # disk_cache_path = /home by a slip: the hub's start would sweep every user's dotfiles.
    home = tmp_path / "home"
    (home / "alice" / ".ssh").mkdir(parents=True)
    (home / "alice" / ".ssh" / "id_rsa").write_text("key")
    (home / "alice" / ".bashrc").write_text("rc")
    before = sorted(str(p) for p in home.rglob("*"))
    r = serve("--server-addr", sandbox.url, "--proxy-port", str(free_port()),
              "--serve-port", str(free_port()), "--disk-cache-path", str(home),
              "--root-dir", str(tmp_path / "state"))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"yurthub: disk_cache_path = '{home}': {home} is not a yurthub cache (it has no _lock) "
        "and is not empty (alice): opening it would remove or set aside what it holds; give "
        "the cache an empty or new directory")
    assert sorted(str(p) for p in home.rglob("*")) == before


def test_the_worker_sizes_its_descriptor_table_before_it_serves(sandbox, hub: Hub):
    """The gunicorn worker's descriptor table holds as many descriptors as it may open (its
    RLIMIT_NOFILE, at most 65536) from the start: grown later, each doubling would stall
    every thread that accepts a connection or opens a tee's pipe for an RCU grace period."""
    assert hub.get("/api/v1/namespaces/default/configmaps")[0] == 200
    out = subprocess.run(["pgrep", "-P", str(hub.proc.pid)], capture_output=True, text=True)
    worker = int(out.stdout.split()[0])
    with open(f"/proc/{worker}/limits") as f:
        soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
    want = 65536 if soft == "unlimited" else min(int(soft), 65536)
    assert fd_table_size(worker) >= want


def test_heads_kube_apiserver_takes_pass_through_the_hub(sandbox, hub: Hub):
    # gunicorn's defaults answered these with HTML 414 and 431.
    from tests.fixtures.web import http
    selector = "app+in+(" + ",".join(f"v{i}" for i in range(1, 901)) + ")"
    status, headers, _ = http(f"{hub.url}/api/v1/pods?labelSelector={selector}",
                              headers={"User-Agent": "kubelet/v1.32.4"})
    assert status == 200, headers
    status, headers, _ = http(f"{hub.url}/api/v1/namespaces",
                              headers={"Authorization": "Bearer " + "a" * 9000})
    assert status in (200, 401), status         # the sandbox decides, not gunicorn
    status, headers, body = http(f"{hub.url}/api/v1/namespaces",
                                 headers={"X-Big": "a" * (1 << 20)})
    assert status == 431 and headers["Content-Type"] == "application/json", headers
    assert b'"kind":"Status"' in body.replace(b" ", b"")


def test_the_start_log_says_in_plain_lines_what_the_cache_and_the_cloud_are(tmp_path):
    # What an operator reads in the journal of a hub started with the cloud already cut:
    # the recovered cache in words (not an object dump), and that it serves from the cache.
    from tests.fixtures.waiting import wait_for
    h = Hub(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    h.start(wait=False)  # (not ready: the filters' configuration was never seen)
    try:
        wait_for(lambda: f"server {h.server} is unhealthy" in h.log(), 30,
                 what="the first probe in the log")
    finally:
        h.stop()
    log = h.log()
    assert "RecoveryReport(" not in log
    assert f"cache tree {h.cache_dir} ready: 0 collections, 0 objects; nothing to repair (" \
        in log
    assert "WARNING yurthub.health: cloud is UNHEALTHY at start; serving from the cache" in log


def test_another_gunicorn_worker_class_stops_the_start_instead_of_trusting_everyone(
        sandbox, tmp_path):
    """``-k gthread`` on gunicorn's command line (or in GUNICORN_CMD_ARGS) overrides the
    shipped gunicorn.conf.py's worker: that worker tells the app no connection's owner, and
    every local process used the hub's credentials and read kubelet's cache (one WARNING)."""
    proxy, hub_port = free_port(), free_port()
    conf = tmp_path / "yurthub.conf"
    conf.write_text(f"[yurthub]\nserver_addr = {sandbox.url}\nnode_name = node-0000\n"
                    f"disk_cache_path = {tmp_path / 'cache'}\nroot_dir = {tmp_path / 'root'}\n"
                    f"proxy_port = {proxy}\nserve_port = {hub_port}\n"
                    "secure_proxy_port = 0\nbootstrap_mode = credentials\n")
    shipped = os.path.join(os.path.dirname(__file__), "..", "..", "etc", "yurthub",
                           "gunicorn.conf.py")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", shipped,
                             "-k", "gthread", "yurthub.wsgi:application"],
                            env={**os.environ, "YURTHUB_CONFIG": str(conf)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def serving() -> bool:
            try:
                return http(f"http://127.0.0.1:{hub_port}/v1/healthz", timeout=2)[0] == 200
            except OSError:   # nothing listens or answers (yet, or any more)
                return False
        # Either the start stops, or the hub serves: wait for one of them.
        wait_for(lambda: proc.poll() is not None or serving(), 60,
                 "the hub to stop, or to serve")
        if proc.poll() is None:
            status, _ = request_as_nobody(f"http://127.0.0.1:{proxy}/api/v1/pods",
                                          headers={"User-Agent": "kubelet/1"})
            raise AssertionError(f"the hub serves, and answered nobody {status}")
        out = proc.stdout.read() if proc.stdout else ""
        assert proc.returncode != 0 and "Traceback" not in out
        assert "cannot tell which user owns a connection" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_hub_run_as_a_user_refuses_directories_others_control(sandbox):
    # The hub as the service user (nobody here) with its cache root owned by another user, or
    # its identity directory root's and writable by everyone: either other user could swap
    # the collections or the certificates, and kubelet would be served them offline.
    top = Path(tempfile.mkdtemp(prefix="yurthub-owners-"))  # (pytest's tmp is root's only)
    try:
        os.chmod(top, 0o755)
        cases = {"--disk-cache-path": (4321, "belongs to uid 4321, not to nobody"),
                 "--root-dir": (0, "every local user may write there")}
        for flag, (owner, said) in cases.items():
            paths = {"--disk-cache-path": top / f"cache-{owner}",
                     "--root-dir": top / f"state-{owner}"}
            for d in paths.values():
                d.mkdir(mode=0o700, exist_ok=True)
                os.chown(d, NOBODY, NOBODY)
            paths[flag].chmod(0o777)
            os.chown(paths[flag], owner, owner)
            r = subprocess.run(
                ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 sys.executable, "-m", "yurthub", "serve", "--bootstrap-mode", "credentials",
                 "--secure-proxy-port", "0", "--server-addr", sandbox.url,
                 "--proxy-port", str(free_port()), "--serve-port", str(free_port()),
                 *(x for kv in paths.items() for x in (kv[0], str(kv[1])))],
                capture_output=True, text=True, timeout=60, cwd=os.getcwd(),
                env={**os.environ, "YURTHUB_CONFIG": os.devnull})
            assert r.returncode == 2, r.stderr
            assert "Traceback" not in r.stderr
            assert f"{flag[2:].replace('-', '_')} = '{paths[flag]}'" in r.stderr, r.stderr
            assert said in r.stderr, r.stderr
            assert list(paths[flag].iterdir()) == []
    finally:
        shutil.rmtree(top)
