"""Inside a booted container (systemd as PID 1): yurthub.service as systemd really runs it.

.ci/package-test installs the package in a Debian 12 tree, boots it with systemd-nspawn and
has a oneshot unit run this script, which writes "ok: ..." lines and then "passed" or
"FAIL: ..." to the file given as its argument and powers the container off.  It proves
what running ExecStart by hand cannot: Type=notify, the StateDirectory, and that the
service still works inside its sandbox (ProtectSystem=strict, the system call filter,
syncfs on the cache).  Standard library only; not a pytest module.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import subprocess
import sys
import time
from typing import TextIO

from checkkit import CheckFailed, check, get, poll

CONF = "/etc/yurthub/yurthub.conf"
PODS = "/var/lib/yurthub/cache/kubelet/pods.v1.core"
SANDBOX_PORT = 16443
LOCAL = "127.0.0.1"
NODE = "node-0000"
POD_COUNT = 40  # ~150 KB: past the tee's LEND_MIN, so the list is vmspliced


NOBODY_GET = """
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=10)
    print("200")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def show(prop: str) -> str:
    return run("systemctl", "show", "yurthub", "-p", prop, "--value").stdout.strip()


def checks(out: TextIO) -> None:
    def ok(what: str) -> None:
        out.write(f"ok: {what}\n")
        out.flush()

    state = poll("yurthub.service settles", lambda: show("ActiveState") in (
        "active", "failed") and show("ActiveState"), 60)
    check(state == "active", f"yurthub.service is {state}:\n"
          + run("journalctl", "-u", "yurthub", "-o", "cat").stdout)
    check(show("Type") == "notify" and "booted" in show("StatusText"),
          f"Type={show('Type')}, STATUS={show('StatusText')!r}")
    ok(f"yurthub.service active after boot, READY=1 via NOTIFY_SOCKET "
       f"(STATUS={show('StatusText')!r})")

    pid = int(show("MainPID"))
    with open(f"/proc/{pid}/status") as fh:
        proc = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
    uid = int(proc["Uid"].split()[0])
    sandboxed = (pwd.getpwuid(uid).pw_name, proc["NoNewPrivs"], proc["Seccomp"], proc["CapBnd"])
    check(sandboxed == ("yurthub", "1", "2", "0000000000000000"),
          f"user, NoNewPrivs, Seccomp, CapBnd of the main process: {sandboxed}")
    ok("runs as yurthub with NoNewPrivs, a seccomp filter and no capabilities")
    limits = (show("MemoryMax"), show("TasksMax"))
    check(limits == (str(300 * 2**20), "512"), f"MemoryMax, TasksMax: {limits}")
    ok(f"MemoryMax={limits[0]} (300 MiB), TasksMax={limits[1]}")
    with open(f"/proc/{pid}/limits") as fh:
        core = next(line.split()[4:6] for line in fh if line.startswith("Max core file size"))
    check(core == ["0", "0"], f"the main process's core file size limit: {core}")
    ok("no core dumps (LimitCORE=0): its memory holds keys and tokens")
    path_unit = run("systemctl", "is-active", "yurthub-config.path").stdout.strip()
    check(path_unit == "active", f"yurthub-config.path is {path_unit}")

    # The package does not ship the sandbox: .ci/package-test copied the checkout's
    # kubesandbox to /root, and it runs on the installed yurthub's pure modules.
    sandbox = subprocess.Popen(
        ["/usr/bin/python3", "-m", "kubesandbox", "--port", str(SANDBOX_PORT), "--nodes", "1",
         "--pods-per-node", str(POD_COUNT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd="/root", env={**os.environ, "PYTHONPATH": "/root"})
    try:
        path = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE}"
        kubelet = {"User-Agent": "kubelet/v1.32", "Accept": "application/json"}
        poll("the sandbox apiserver answers",
             lambda: get((LOCAL, SANDBOX_PORT), "/version")[0] == 200, 20)
        readyz: list[bytes] = [b""]

        def ready() -> bool:
            status_code, readyz[0] = get((LOCAL, 10267), "/v1/readyz")
            return status_code == 200

        try:
            poll("GET /v1/readyz -> 200", ready, 30)
        except CheckFailed as e:
            raise CheckFailed(f"{e}: {readyz[0][:400]!r}\n"
                              + run("journalctl", "-u", "yurthub", "-o", "cat").stdout[-3000:]
                              ) from None

        def pod_list() -> bytes | None:
            status_code, body = get((LOCAL, 10261), path, kubelet)
            return body if status_code == 200 else None

        def cached() -> list[str] | None:
            files = glob.glob(f"{PODS}/*/*")
            return files if len(files) == POD_COUNT else None

        # Who connects is asked of the kernel inside the unit's sandbox (AF_NETLINK allowed,
        # ProcSubset=pid): another user may not use the hub's credentials.
        r = run("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "/usr/bin/python3", "-c", NOBODY_GET, "http://127.0.0.1:10261" + path)
        check(r.stdout.startswith("403 ") and "user 65534 may not use" in r.stdout,
              f"a request of nobody: {r.stdout!r} {r.stderr!r}")
        log = run("journalctl", "-u", "yurthub", "-o", "cat").stdout
        check("asked of the kernel (netlink)" in log, f"the peer lookup in the journal:\n{log}")
        ok("a request of nobody without a token: 403 (its owner learnt with netlink sock_diag "
           "inside the unit's sandbox)")
        body = poll("a pod list through the proxy", pod_list, 30)
        check(len(json.loads(body)["items"]) == POD_COUNT, f"{POD_COUNT} pods through the proxy")
        files = poll(f"{POD_COUNT} pods cached", cached, 15)
        # A list this big is lent to the tee's pipe (vmsplice): the seccomp filter allows it.
        log = run("journalctl", "-u", "yurthub", "-o", "cat").stdout
        check("vmsplice refused" not in log, f"the tee lends under the unit's filter:\n{log}")
        ok(f"a kubelet list of {len(body):,} bytes proxied and cached inside the sandbox "
           f"({len(files)} pods, e.g. {sorted(files)[0]}); vmsplice not refused")
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    t0 = time.monotonic()
    check(run("systemctl", "stop", "yurthub").returncode == 0, "systemctl stop")
    took = time.monotonic() - t0
    result = (show("Result"), show("ExecMainStatus"))
    check(result == ("success", "0"), f"Result, ExecMainStatus after stop: {result}")
    ok(f"systemctl stop: clean exit 0 after {took:.1f} s")

    with open(CONF, "rb") as fh:
        original = fh.read()
    try:
        with open(CONF, "a") as fh:
            fh.write("colour = blue\n")
        check(run("systemctl", "start", "yurthub").returncode != 0,
              "systemctl start fails with a bad setting")
        code, main_pid = show("ExecMainStatus"), show("ExecMainPID")
        log = run("journalctl", f"_PID={main_pid}", "-o", "cat").stdout
        lines = log.splitlines()
        check(code == "78" and len(lines) == 1 and lines[0].startswith("yurthub: ")
              and "colour" in lines[0], f"exit {code}, journal of pid {main_pid}:\n{log}")
        ok(f"a bad setting: exit 78 and one line in the journal: {lines[0]}")
        check(show("ActiveState") == "failed", f"after exit 78: {show('ActiveState')}")
    finally:
        with open(CONF, "wb") as fh:  # in place: its owner, group and mode stay
            fh.write(original)
    # The fix alone brings it back: yurthub-config.path saw the file change.
    try:
        poll("yurthub.service started again by the fixed file",
             lambda: show("ActiveState") == "active", 60)
    except CheckFailed as e:
        raise CheckFailed(f"{e}: {show('ActiveState')}\n" + run(
            "journalctl", "-u", "yurthub", "-u", "yurthub-config.path", "-u",
            "yurthub-config.service", "-o", "short-monotonic").stdout[-4000:]) from None
    ok("the fixed yurthub.conf started it again (yurthub-config.path), no systemctl needed")


def main() -> int:
    with open(sys.argv[1], "w") as out:
        try:
            checks(out)
        except (CheckFailed, OSError, subprocess.SubprocessError) as e:
            out.write(f"FAIL: {e}\n")
            return 1
        out.write("passed\n")
    return 0


if __name__ == "__main__":
    code = main()
    subprocess.run(["systemctl", "--no-block", "poweroff"], check=False)
    sys.exit(code)
