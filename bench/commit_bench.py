"""Cache commit figures of the hub, short enough for every CI run: prints, asserts nothing.

A real ``python -m yurthub serve`` child lists ``/api/v1/pods`` as kubelet from a private
nginx serving pre-rendered files (as ``proxy_bench.py`` does); each case publishes a file
whose resourceVersions all moved up, so the hub really rewrites every object:

- 10,000 pods (47.7 MB): new cache, all changed, gzip all changed;
- 14,000 pods (~67 MB): filled once, then listed again with every object changed.

For each: end of the client's read -> durable commit (``yurthub_cache_commits_total``
polled every 20 ms) and objects/s (request start -> durable commit) [targets <= 3 s,
>= 5,000 objects/s], and the latency of small GETs (kubelet, one ConfigMap, 200 req/s,
open loop, 8 keep-alive connections) from 0.3 s after the list's response until the commit
is seen, against the same GETs for 1.5 s while it is idle [target: p99 <= 5 ms added].
Where the time went, for the same span: the hub worker's CPU seconds, and the share of it
in which some task of the machine was stalled on I/O (``/proc/pressure/io``): a commit
much longer than its CPU, with a high stall, waited for the disk.  Each case starts after
a ``sync``, so that the one before's writeback is not counted in it.  ``--loop`` (root)
adds two loop-mounted ext4 images, with and without a journal; ``--baseline SRC`` runs
the hub of another source tree side by side.  The first line says which stack ran; the
last, the load.

Usage: python bench/commit_bench.py [--dir /var/tmp] [--loop] [--rounds 1] [--baseline SRC]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import (
    KUBELET_UA,
    ROOT,
    HubProcess,
    Nginx,
    cpu_seconds,
    ensure_nginx,
    free_port,
    pct,
    spread,
    stack_banner,
)
from _proxydata import (
    CM_PATH,
    GZIP,
    PLAIN,
    configmap_json,
    fs_banner,
    paced_gets,
    podlist_bytes,
    publish,
    timed_get,
    upstream_server_block,
    wait_commit,
    with_new_rvs,
)

GET_HEADERS = {"User-Agent": KUBELET_UA, "Accept": "application/json"}
WINDOW = 1.5  # seconds of paced GETs on the idle hub
MAX_WINDOW = 30.0  # during a commit: from 0.3 s after the list's response to the commit


def bigger_list(base: bytes, pods: int) -> bytes:
    """``base`` grown to ``pods`` items: copies of its pods under new names and uids."""
    doc = json.loads(base)
    items = doc["items"]
    extra = []
    for i in range(pods - len(items)):
        pod = json.loads(json.dumps(items[i % len(items)]))
        md = pod["metadata"]
        md["name"] = f"{md['name']}-x{i}"
        md["uid"] = f"{md['uid'][:-8]}{i:08d}"
        extra.append(pod)
    doc["items"] = items + extra
    return json.dumps(doc, separators=(",", ":")).encode()


def io_stall_seconds() -> float | None:
    """Seconds in which some task was stalled on I/O since boot (None without PSI)."""
    try:
        with open("/proc/pressure/io") as f:
            some = f.readline().split()
    except OSError:
        return None
    total = [w for w in some if w.startswith("total=")]
    return int(total[0][6:]) / 1e6 if total else None


class Figures:
    def __init__(self) -> None:
        self.after: dict[str, list[float]] = {}
        self.rate: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}    # worker CPU s, request start -> commit
        self.stall: dict[str, list[float]] = {}  # I/O stall share of that span
        self.gets: dict[str, list[list[float]]] = {}
        self.notes: list[str] = []


def one_list(hub: HubProcess, fig: Figures, key: str, headers: dict[str, str], objects: int,
             rate: float) -> None:
    before = hub.metric("yurthub_cache_commits_total", kind="list")
    os.sync()  # the case before's writeback is not this case's
    worker = hub.worker
    cpu0, stall0 = cpu_seconds(worker), io_stall_seconds()
    start, end, _, status = timed_get(hub.proxy_port, "/api/v1/pods", headers)
    got: list[list[float]] = []
    committing = threading.Event()  # set once the commit is seen: the GETs stop there
    gets = threading.Thread(target=lambda: got.append(
        paced_gets(hub.proxy_port, CM_PATH, GET_HEADERS, rate, MAX_WINDOW, stop=committing)[0]))
    gets.start()
    committed, why = wait_commit(hub, before)
    committing.set()
    gets.join()
    if status != 200:
        fig.notes.append(f"{key}: HTTP {status}")
    if committed is None:
        fig.notes.append(f"{key}: not committed: {why}")
    else:
        fig.after.setdefault(key, []).append(committed - end)
        fig.rate.setdefault(key, []).append(objects / (committed - start))
        fig.cpu.setdefault(key, []).append(cpu_seconds(worker) - cpu0)
        stall = io_stall_seconds()
        if stall is not None and stall0 is not None:
            fig.stall.setdefault(key, []).append((stall - stall0) / (committed - start))
    fig.gets.setdefault(key, []).append(got[0])


def run_hub(args: argparse.Namespace, fig: Figures, label: str, root: Path, cache: Path,
            work: Path, up_port: int, data: Path, lists: dict[str, bytes], gen: list[int]
            ) -> None:
    hub = HubProcess(work, f"http://127.0.0.1:{up_port}", cache,
                     extra=["--threads", "256"], root=root).start()
    try:
        time.sleep(0.5)
        fig.gets.setdefault(f"{label}: idle", []).append(
            paced_gets(hub.proxy_port, CM_PATH, GET_HEADERS, args.get_rate, WINDOW)[0])

        def publish_list(pods: str, gz: bool = False) -> None:
            gen[0] += 1
            body = with_new_rvs(lists[pods], gen[0])
            if gz:
                publish(data, "pods.json.gz", gzip.compress(body, compresslevel=1))
            publish(data, "pods.json", body)

        cases = [("10,000 new cache", "10k", False), ("10,000 all changed", "10k", False),
                 ("10,000 gzip, all changed", "10k", True), ("14,000 first fill", "14k", False),
                 ("14,000 all changed", "14k", False)]
        for name, pods, gz in cases:
            publish_list(pods, gz)
            objects = 10_000 if pods == "10k" else 14_000
            one_list(hub, fig, f"{label}: {name}", GZIP if gz else PLAIN, objects,
                     args.get_rate)
            if gz:
                (data / "pods.json.gz").unlink()
    finally:
        hub.stop()


def loop_fs(work: Path, name: str, journal: bool) -> Path | None:
    """A 2 GB sparse ext4 image mounted at ``work/name`` (root only); None if that fails."""
    img, mnt = work / f"{name}.img", work / name
    mnt.mkdir()
    try:
        with open(img, "wb") as f:
            f.truncate(2 << 30)
        opts = [] if journal else ["-O", "^has_journal"]
        subprocess.run(["mkfs.ext4", "-q", "-F", *opts, str(img)], check=True,
                       capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", b"") or b""
        print(f"  (no loop-mounted ext4 {name}: {e} {err.decode(errors='replace').strip()})")
        img.unlink(missing_ok=True)
        return None
    os.chmod(mnt, 0o755)
    return mnt


def print_figures(fig: Figures) -> None:
    print("  case                                          commit after response   "
          "objects/s                 small GETs during the commit: p50 / p99 (ms)")
    print("  (then, request start -> commit: the worker's CPU seconds, and the share of that "
          "time with some task stalled on I/O)")
    idle = {k.split(": ")[0]: v for k, v in fig.gets.items() if k.endswith(": idle")}
    for key, lat in fig.gets.items():
        if key.endswith(": idle"):
            continue
        hub = key.split(": ")[0]
        after = spread(fig.after[key], 1, "{:.2f}") + " s" if key in fig.after else "-"
        rate = spread(fig.rate[key], 1, "{:,.0f}") if key in fig.rate else "-"
        flat = [x for run in lat for x in run]
        base = [x for run in idle.get(hub, []) for x in run]
        added = (f"  (+{(pct(flat, 0.5) - pct(base, 0.5)) * 1e3:.2f} / "
                 f"+{(pct(flat, 0.99) - pct(base, 0.99)) * 1e3:.2f} over idle)") if base else ""
        print(f"  {key:<45} {after:<23} {rate:<25} {pct(flat, 0.5) * 1e3:.2f} / "
              f"{pct(flat, 0.99) * 1e3:.2f}{added}")
        if key in fig.cpu:
            stall = (", I/O stall " + spread([x * 100 for x in fig.stall[key]], 1, "{:.0f}")
                     + " %") if key in fig.stall else ""
            print(f"  {'':<45} CPU {spread(fig.cpu[key], 1, '{:.2f}')} s{stall}")
    for hub, lat in idle.items():
        flat = [x for run in lat for x in run]
        print(f"  {hub + ': idle':<45} {'':<23} {'':<25} {pct(flat, 0.5) * 1e3:.2f} / "
              f"{pct(flat, 0.99) * 1e3:.2f}")
    print("  [targets: <= 3 s after the response, >= 5,000 objects/s, GET p99 <= 5 ms added]")
    for note in fig.notes:
        print(f"  note: {note}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default="/var/tmp", help="where the caches go (default /var/tmp)")
    p.add_argument("--loop", action="store_true",
                   help="also on loop-mounted ext4 images with and without a journal (root)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--get-rate", type=float, default=200.0)
    p.add_argument("--baseline", type=Path, default=None, metavar="SRC",
                   help="also run the hub of this source tree, side by side")
    args = p.parse_args()
    started = time.monotonic()
    print(stack_banner())
    print(ensure_nginx())
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="yurthub-commit-bench-", dir=args.dir))
    os.chmod(work, 0o755)
    data = work / "data"
    data.mkdir()
    base = podlist_bytes()
    lists = {"10k": base, "14k": bigger_list(base, 14_000)}
    publish(data, "cm-0.json", configmap_json())
    up_port = free_port()
    upstream = Nginx(work, "upstream", upstream_server_block(up_port, data))
    mounts: list[Path] = []
    try:
        upstream.start()
        targets = [(f"{args.dir}: {fs_banner(args.dir)}", work)]
        if args.loop:
            for name, journal in (("ext4-journal", True), ("ext4-nojournal", False)):
                mnt = loop_fs(work, name, journal)
                if mnt is not None:
                    mounts.append(mnt)
                    targets.append((f"loop-mounted {fs_banner(str(mnt))}", mnt))
        hubs = {"hub": ROOT, **({"baseline": args.baseline} if args.baseline else {})}
        gen = [0]
        for where, target in targets:
            print(f"\n== caches on {where} ==")
            fig = Figures()
            for rnd in range(args.rounds):
                for label, root in (list(hubs.items()) if rnd % 2 == 0
                                    else list(hubs.items())[::-1]):
                    run_hub(args, fig, label, root, target / f"cache-{label}-{rnd}", work,
                            up_port, data, lists, gen)
            print_figures(fig)
    finally:
        upstream.stop()
        for mnt in mounts:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s; load after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; figures only, nothing asserted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
