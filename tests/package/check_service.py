"""Runs the installed yurthub package the way systemd would, without systemd as PID 1.

Called by .ci/package-test as root, after the package was installed with preseeded debconf
answers; uses Debian's python3 and the standard library only, and treats the package as
a black box.  It checks what postinst made, then starts the unit's ExecStart as the unit's
user with its Environment= and a NOTIFY_SOCKET, and checks READY=1, the hub server, a
request proxied to a sandbox apiserver and cached on disk, a second instance on the same
ports, a clean stop on SIGTERM, and that bad settings stop the service with one line.
Not a pytest module (pytest collects only test_*.py); run it with --help.
"""

from __future__ import annotations

import argparse
import configparser
import grp
import http.client
import itertools
import json
import os
import pwd
import resource
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from checkkit import CheckFailed, check, get, poll

UNIT = "/lib/systemd/system/yurthub.service"
CONF = "/etc/yurthub/yurthub.conf"
STATE = "/var/lib/yurthub"
CACHE = "/var/lib/yurthub/cache"
PROXY = ("127.0.0.1", 10261)
HUB = ("127.0.0.1", 10267)
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_runs = itertools.count()


def ok(what: str) -> None:
    print(f"ok: {what}", flush=True)


# -- the unit, run by hand -------------------------------------------------------------------

@dataclass
class Unit:
    argv: list[str]
    user: str
    group: str
    env: dict[str, str]
    umask: int
    nofile: int
    core: int
    stop_timeout: float
    notify_access: str


# Keys systemd takes repeated (one rule per line); none decides how ExecStart runs here.
REPEATED = ("SocketBindAllow",)


def read_unit(path: str = UNIT) -> Unit:
    """The [Service] settings that decide how ExecStart runs (strict: no other repeated
    keys)."""
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    with open(path, encoding="utf-8") as fh:
        parser.read_string("\n".join(line for line in fh.read().splitlines()
                                     if not line.startswith(REPEATED)))
    s = parser["Service"]
    argv = shlex.split(s["ExecStart"])
    check(argv[0].startswith("/"), f"ExecStart without prefixes and an absolute path: {argv}")
    env = dict(item.split("=", 1) for item in shlex.split(s.get("Environment", "")))
    return Unit(argv=argv, user=s["User"], group=s["Group"], env=env,
                umask=int(s.get("UMask", "0022"), 8), nofile=int(s.get("LimitNOFILE", "1024")),
                core=int(s.get("LimitCORE", "-1")),
                stop_timeout=float(s.get("TimeoutStopSec", "90")),
                notify_access=s.get("NotifyAccess", "none"))


@dataclass
class Run:
    """One start of ExecStart: the process, its captured stderr and its notifications."""

    proc: subprocess.Popen[bytes]
    notify: socket.socket
    stderr: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def stderr_text(self) -> str:
        if self._reader is not None:
            self._reader.join(timeout=5)
        return "".join(self.stderr)

    def wait_ready(self, timeout: float) -> int:
        """Seconds-bounded wait for READY=1; returns the sender's pid (SCM_CREDENTIALS)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"exited with {self.proc.returncode} before READY=1:\n"
                                  + self.stderr_text())
            self.notify.settimeout(0.2)
            try:
                msg, anc, _flags, _addr = self.notify.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            pid = next(struct.unpack("iII", data[:12])[0] for level, kind, data in anc
                       if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
            if b"READY=1" in msg.split(b"\n"):
                return int(pid)
        raise CheckFailed(f"no READY=1 within {timeout} s")


def set_nofile(n: int) -> None:
    """LimitNOFILE=, set here and inherited: the child drops root before a preexec_fn
    could raise it.  A container without CAP_SYS_RESOURCE caps it at its hard limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    except (ValueError, PermissionError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if not _warned:
            _warned.append(True)
            print(f"note: LimitNOFILE={n} not possible here; running with the hard limit "
                  f"{hard}", flush=True)


_warned: list[bool] = []


def run_unit(unit: Unit, workdir: str, env: dict[str, str] | None = None) -> Run:
    """Start ExecStart as systemd would: user, group, no supplementary groups, UMask,
    LimitNOFILE, LimitCORE, the unit's Environment= on systemd's base environment,
    NOTIFY_SOCKET."""
    pw = pwd.getpwnam(unit.user)
    sock_path = os.path.join(workdir, f"notify-{next(_runs)}")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    os.chmod(sock_path, 0o777)
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    full_env = {"PATH": SYSTEMD_PATH, "HOME": pw.pw_dir, "USER": unit.user,
                "LOGNAME": unit.user, "SHELL": pw.pw_shell, "STATE_DIRECTORY": STATE,
                "NOTIFY_SOCKET": sock_path, **unit.env, **(env or {})}
    set_nofile(unit.nofile)
    if unit.core >= 0:  # lowering needs no privilege; this checker needs no cores
        resource.setrlimit(resource.RLIMIT_CORE, (unit.core, unit.core))
    proc = subprocess.Popen(unit.argv, user=unit.user, group=unit.group, extra_groups=[],
                            umask=unit.umask, env=full_env, cwd="/",
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    run = Run(proc=proc, notify=notify)

    def drain() -> None:
        assert proc.stderr is not None
        for line in iter(proc.stderr.readline, b""):
            run.stderr.append(line.decode("utf-8", "replace"))

    run._reader = threading.Thread(target=drain, daemon=True)
    run._reader.start()
    return run


def core_limit(pid: int) -> str:
    """The soft and hard "Max core file size" of a process, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits", encoding="ascii") as fh:
        line = next(x for x in fh if x.startswith("Max core file size"))
    return " ".join(line.split()[4:6])


def children(pid: int) -> list[int]:
    """The child processes of pid (gunicorn's worker)."""
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
        return [int(x) for x in fh.read().split()]


def stop(run: Run, timeout: float) -> tuple[int, float]:
    """KillMode=mixed: SIGTERM to the main process; SIGKILL to the group after timeout."""
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    try:
        code = run.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait()
        raise CheckFailed(f"still running {timeout} s after SIGTERM:\n{run.stderr_text()}"
                          ) from None
    return code, time.monotonic() - t0


def leftover(run: Run) -> bool:
    try:
        os.killpg(run.proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- HTTP ------------------------------------------------------------------------------------

def port_free(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        return s.connect_ex(addr) != 0


# -- the checks ------------------------------------------------------------------------------

def owner_mode(path: str) -> tuple[str, str, int]:
    st = os.lstat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            stat.S_IMODE(st.st_mode))


def check_install(args: argparse.Namespace) -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(CONF)
    got = {k: ini.get("yurthub", k, fallback="")
           for k in ("server_addr", "node_name", "cache_agents")}
    want = {"server_addr": args.server_addr, "node_name": args.node,
            "cache_agents": args.agents}
    check(got == want, f"{CONF} holds the preseeded answers: {got} != {want}")
    ok(f"{CONF} holds the preseeded answers {want}")
    check(owner_mode(CONF) == ("root", "yurthub", 0o640), f"{CONF}: {owner_mode(CONF)}")
    ok(f"{CONF} is root:yurthub 0640")
    pw = pwd.getpwnam("yurthub")
    check(grp.getgrgid(pw.pw_gid).gr_name == "yurthub" and pw.pw_dir == STATE
          and pw.pw_shell.endswith("nologin") and pw.pw_uid < 1000,
          f"system user yurthub: {pw}")
    ok("system user and group yurthub, home /var/lib/yurthub, no login shell")
    for d in (STATE, CACHE):
        check(owner_mode(d) == ("yurthub", "yurthub", 0o700), f"{d}: {owner_mode(d)}")
    ok(f"{STATE} and {CACHE} are yurthub:yurthub 0700")
    conffiles = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", "yurthub"],
                               capture_output=True, text=True, check=True).stdout
    check("/etc/yurthub/gunicorn.conf.py" in conffiles and CONF not in conffiles,
          f"conffiles: {conffiles!r}")
    ok("gunicorn.conf.py is a conffile, yurthub.conf is not")
    link = "/etc/systemd/system/multi-user.target.wants/yurthub.service"
    check(os.path.realpath(link) == os.path.realpath(UNIT), f"{link} -> {UNIT}")
    ok("yurthub.service is enabled (multi-user.target.wants)")
    shipped = subprocess.run(["dpkg-query", "-L", "yurthub"], capture_output=True, text=True,
                             check=True).stdout.split()
    stray = [f for f in shipped if "kubesandbox" in f or "/sandbox" in f]
    check(not stray, f"the package ships the sandbox: {stray[:5]}")
    ok("the package ships no sandbox module")
    for name, load in (("yurthub-dashboard.json", json.load), ("yurthub-alerts.yml", None)):
        path = f"/usr/share/yurthub/{name}"
        check(os.path.isfile(path) and os.path.getsize(path) > 0, f"{path} is not installed")
        if load is not None:
            with open(path, encoding="utf-8") as fh:
                check(bool(load(fh).get("panels")), f"{path} has no panels")
    ok("the Grafana dashboard and the alert rules are in /usr/share/yurthub")
    r = subprocess.run(["/usr/bin/yurthub", "sandbox", "--port", "1"], capture_output=True,
                       text=True, timeout=30)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(lines) == 1 and "pip install" in lines[0],
          f"`yurthub sandbox` on a node: exit {r.returncode}, {r.stderr!r}")
    ok(f"`yurthub sandbox` on a node says how to get it (exit 2): {lines[0]}")


@contextmanager
def sandbox(args: argparse.Namespace) -> Iterator[str]:
    """The sandbox apiserver from the checkout (the package does not ship it), on Debian's
    python3; yields the name of its first node."""
    proc = subprocess.Popen(
        ["/usr/bin/python3", "-m", "kubesandbox", "--port", str(args.sandbox_port),
         "--nodes", "1", "--pods-per-node", "3"], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        cwd=args.checkout, env={**os.environ, "PYTHONPATH": args.checkout})
    try:
        addr = ("127.0.0.1", args.sandbox_port)

        def nodes() -> list[str]:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise CheckFailed(f"sandbox exited with {proc.returncode}:\n{out}")
            status, body = get(addr, "/api/v1/nodes")
            return [n["metadata"]["name"] for n in json.loads(body)["items"]] \
                if status == 200 else []

        names = poll("sandbox apiserver answers /api/v1/nodes", nodes, 20)
        ok(f"sandbox apiserver on :{args.sandbox_port} with nodes {names}")
        yield names[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_cache_tree(items: list[dict[str, Any]]) -> None:
    def cached() -> bool:
        return all(os.path.isfile(os.path.join(
            CACHE, "kubelet", "pods.v1.core", i["metadata"]["namespace"], i["metadata"]["name"]))
            for i in items)

    poll("every pod of the list cached under kubelet/pods.v1.core/<ns>/<name>", cached, 15)
    for i in items:
        path = os.path.join(CACHE, "kubelet", "pods.v1.core", i["metadata"]["namespace"],
                            i["metadata"]["name"])
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
        check((obj.get("kind"), obj.get("apiVersion"), obj["metadata"]["name"])
              == ("Pod", "v1", i["metadata"]["name"]), f"{path}: {str(obj)[:200]}")
    ok(f"{len(items)} pods cached as JSON with kind and apiVersion under "
       f"{CACHE}/kubelet/pods.v1.core/<ns>/<name>")
    bad = []
    for dirpath, _dirs, files in os.walk(CACHE):
        for p, mode in [(dirpath, 0o700)] + [(os.path.join(dirpath, f), 0o600) for f in files]:
            if owner_mode(p)[0::2] != ("yurthub", mode):
                bad.append((p, owner_mode(p)))
    check(not bad, f"cache tree owner/modes: {bad[:5]}")
    ok("cache tree: owner yurthub, directories 0700, files 0600")


_NOBODY_GET = """
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=10)
    print(200)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


def check_peers(path: str) -> None:
    """The service (user yurthub) learns who connects: nobody may not use its credentials."""
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "/usr/bin/python3", "-c", _NOBODY_GET,
                        f"http://{PROXY[0]}:{PROXY[1]}{path}"],
                       capture_output=True, text=True, timeout=30)
    check(r.stdout.startswith("403 ") and "user 65534 may not use" in r.stdout,
          f"a request of nobody without a token: {r.stdout!r} {r.stderr!r}")
    ok("a request of nobody without a token -> 403 naming user 65534")


def one_line_error(run: Run, fragment: str, timeout: float = 30) -> str:
    try:
        code = run.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait()
        raise CheckFailed(f"still running after {timeout} s (expected {fragment!r})"
                          ) from None
    err = run.stderr_text()
    lines = [line for line in err.splitlines() if line.strip()]
    check(code != 0, f"exit status 0 (expected an error naming {fragment!r})")
    check("Traceback" not in err and len(lines) == 1,
          f"exit {code}, expected one line on stderr, got:\n{err}")
    check(lines[0].startswith("yurthub: ") and fragment in lines[0],
          f"expected 'yurthub: ...{fragment}...', got {lines[0]!r}")
    return f"exit {code}: {lines[0]}"


def check_service(unit: Unit, workdir: str, node: str) -> None:
    for addr in (PROXY, HUB):
        check(port_free(addr), f"port {addr[1]} is free before the start")
    t0 = time.monotonic()
    run = run_unit(unit, workdir)
    try:
        pid = run.wait_ready(timeout=30)
        ok(f"READY=1 after {time.monotonic() - t0:.2f} s")
        check(unit.notify_access != "main" or pid == run.proc.pid,
              f"READY=1 came from pid {pid}, not the main pid {run.proc.pid} "
              f"(NotifyAccess={unit.notify_access})")
        ok(f"READY=1 sent by the main process (NotifyAccess={unit.notify_access})")
        worker = poll("gunicorn's worker", lambda: children(pid), 20)  # it may lag READY=1
        cores = {p: core_limit(p) for p in (pid, *worker)}
        check(len(cores) > 1 and set(cores.values()) == {"0 0"},
              f"no core dumps (LimitCORE=0) in the master and its worker: {cores}")
        ok(f"core file size 0 in the master and its worker ({len(cores)} processes)")
        check(get(HUB, "/v1/healthz") == (200, b"OK"), "GET /v1/healthz is 200 OK")
        ok("GET :10267/v1/healthz -> 200 OK")
        poll("GET /v1/readyz -> 200", lambda: get(HUB, "/v1/readyz")[0] == 200, 20)
        ok("GET :10267/v1/readyz -> 200")
        status, body = get(HUB, "/metrics")
        check(status == 200 and b"node_yurthub_server_healthy_status" in body,
              "GET /metrics has node_yurthub_server_healthy_status")
        ok("GET :10267/metrics has node_yurthub_server_healthy_status")

        path = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
        kubelet = {"User-Agent": "kubelet/v1.32 (linux/amd64) kubernetes/000000",
                   "Accept": "application/json"}
        status, body = get(PROXY, path, kubelet)
        check(status == 200, f"GET :10261{path} -> {status}: {body[:300]!r}")
        items = json.loads(body)["items"]
        check(len(items) == 3 and all(i["spec"]["nodeName"] == node for i in items),
              f"3 pods of {node} through the proxy, got {len(items)}")
        ok(f"GET :10261{path} as kubelet -> 200, the node's 3 pods")
        check_cache_tree(items)
        check_peers(path)
        status, body = get(HUB, "/v1/status")
        check(status == 200 and json.loads(body)["node"] == node, f"GET /v1/status -> {status}")
        status, body = get(HUB, "/status")
        check(status == 200 and b"<h1>yurthub on " in body, f"GET /status -> {status}")
        ok("GET :10267/status and /v1/status -> 200 (loopback)")
        r = subprocess.run(["/usr/bin/yurthub", "cache", "ls", "kubelet"], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0 and any(line.split()[:3] == ["kubelet", "pods", "3"]
                                        for line in r.stdout.splitlines()),
              f"`yurthub cache ls kubelet` beside the service: {r.returncode} {r.stdout!r} "
              f"{r.stderr!r}")
        r = subprocess.run(["/usr/bin/yurthub", "cache", "verify"], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, f"`yurthub cache verify`: {r.returncode} {r.stdout!r}")
        ok("`yurthub cache ls` and `verify` read the service's tree beside it")

        second = run_unit(unit, workdir)
        ok("second instance: " + one_line_error(second, "Address already in use"))
        check(get(HUB, "/v1/healthz")[0] == 200, "the first instance still serves")
        ok("the first instance still serves")

        conn = http.client.HTTPConnection(*PROXY, timeout=60)
        conn.request("GET", path + "&watch=true", headers=kubelet)
        watch = conn.getresponse()
        check(watch.status == 200, f"watch through the proxy -> {watch.status}")
        code, took = stop(run, unit.stop_timeout)
        check(code == 0, f"exit status {code} on SIGTERM:\n{run.stderr_text()}")
        ok(f"SIGTERM with an open watch: exit 0 after {took:.2f} s "
           f"(TimeoutStopSec={unit.stop_timeout:g})")
        try:
            watch.read()
        except http.client.IncompleteRead:
            raise CheckFailed("the open watch was cut, not ended cleanly") from None
        conn.close()
        ok("the open watch ended cleanly (terminal chunk)")
        memory = os.path.join(CACHE, "_access")
        check(owner_mode(memory) == ("yurthub", "yurthub", 0o600),
              f"{memory}: {owner_mode(memory) if os.path.exists(memory) else 'missing'}")
        ok(f"the token memory was saved on stop: {memory}, yurthub 0600")
        check(not leftover(run), "no process of the service left after the main one exited")
        ok("no process left behind")
        err = run.stderr_text()
        check("Traceback" not in err, f"no traceback in the service's log:\n{err}")
        ok("no traceback in the service's log")
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait()


def variant(workdir: str, name: str, values: dict[str, str | None]) -> str:
    """The installed config with ``values`` set instead (None: removed); readable by the
    service user."""
    with open(CONF, encoding="utf-8") as fh:
        lines = [line for line in fh.read().splitlines()
                 if line.split("=", 1)[0].strip() not in values]
    lines += [f"{k} = {v}" for k, v in values.items() if v is not None]
    path = os.path.join(workdir, name + ".conf")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o644)
    return path


def check_bad_input(unit: Unit, workdir: str) -> None:
    unreadable = os.path.join(workdir, "unreadable-ca.crt")
    with open(unreadable, "w") as fh:
        fh.write("-----BEGIN CERTIFICATE-----\n")
    os.chmod(unreadable, 0o600)
    garbage = os.path.join(workdir, "not-pem-ca.crt")
    with open(garbage, "w") as fh:
        fh.write("this is not a certificate\n")
    os.chmod(garbage, 0o644)
    readonly = os.path.join(workdir, "read-only")
    os.mkdir(readonly, 0o755)
    cases: list[tuple[str, dict[str, str | None], str]] = [
        ("unknown key", {"colour": "blue"}, "unknown key 'colour'"),
        ("bad port", {"proxy_port": "70000"}, "proxy_port = '70000'"),
        ("same ports", {"proxy_port": "10267"}, "proxy_port and serve_port are both 10267"),
        ("no apiserver", {"server_addr": None}, "no apiserver"),
        ("unreadable ca_file", {"ca_file": unreadable}, "is not readable"),
        ("non-PEM ca_file", {"ca_file": garbage}, "not a usable CA bundle"),
        ("unwritable cache", {"disk_cache_path": readonly + "/cache"}, "is not writable"),
        ("unknown kubelet_user", {"kubelet_user": "no-such-kubelet"}, "no such user"),
    ]
    if int(open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()) > 80:
        cases.append(("privileged port", {"proxy_port": "80"},
                      "cannot listen on 127.0.0.1:80: Permission denied"))
    for name, values, fragment in cases:
        path = variant(workdir, name.replace(" ", "-"), values)
        run = run_unit(unit, workdir, {"YURTHUB_CONFIG": path})
        ok(f"{name}: " + one_line_error(run, fragment))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server-addr", required=True, help="the preseeded yurthub/server-addr")
    p.add_argument("--node", required=True, help="the preseeded yurthub/node-name")
    p.add_argument("--agents", required=True, help="the preseeded yurthub/cache-agents")
    p.add_argument("--sandbox-port", type=int, required=True)
    p.add_argument("--checkout", required=True,
                   help="the source tree, whose kubesandbox runs the sandbox apiserver")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        p.error("run as root")
    workdir = tempfile.mkdtemp(prefix="yurthub-package-test-")
    os.chmod(workdir, 0o755)
    try:
        check_install(args)
        unit = read_unit()
        with sandbox(args) as node:
            check(node == args.node, f"the sandbox's node {node!r} is the preseeded node name")
            check_service(unit, workdir, node)
        check_bad_input(unit, workdir)
    except CheckFailed as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
