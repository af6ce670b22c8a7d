"""Benchmark of yurthub.kube.framing: a 10,000-pod list (~50 MB) and a 10,000-event watch stream.

Usage: ``python bench/framing_bench.py [--pods 10000] [--chunk 65536]``

Each measurement runs in a fresh process that first loads the body into memory. It then
resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) and feeds the body in chunks.
Time is wall-clock for the feeding and ``close()``. The peak-RSS figure is the increase over
the RSS with the body loaded. Each path is timed twice: boundaries only (``raw`` bytes), and
with every item's dict used as well (``obj``), which the msgspec path builds lazily. Timings
are printed, never asserted: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def make_pod(i: int) -> dict[str, Any]:
    """A realistic ~5 KB pod: labels, owner, managedFields, two containers, probes, status."""
    ns, name = f"ns-{i % 50}", f"app-{i // 3}-7d9f8b6c5d-{i:05x}"
    node = f"edge-node-{i % 100:03d}"
    container = {
        "name": "app", "image": f"registry.example.com/team/app:v1.{i % 17}.3",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": f"ENV_{k}", "value": f"value-{k}-{i}"} for k in range(8)]
        + [{"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                         "fieldPath": "status.podIP"}}}],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                      "requests": {"cpu": "100m", "memory": "128Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"},
                         {"name": "kube-api-access-x7k2p", "readOnly": True,
                          "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                          "initialDelaySeconds": 10, "timeoutSeconds": 1, "periodSeconds": 10,
                          "successThreshold": 1, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                           "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1,
                           "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
    }
    sidecar = {"name": "proxy", "image": "registry.example.com/mesh/proxy:1.21.0",
               "args": ["--log-level=info", f"--service-node={name}"],
               "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}},
               "terminationMessagePath": "/dev/termination-log",
               "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}
    ts = f"2026-11-20T10:{i % 60:02d}:{i * 7 % 60:02d}Z"
    return {
        "metadata": {
            "name": name, "generateName": name[:-5], "namespace": ns,
            "uid": f"{i:08x}-5d2c-4b7e-9a1f-{i:012x}", "resourceVersion": str(100000 + i),
            "creationTimestamp": ts,
            "labels": {"app": f"app-{i // 3}", "pod-template-hash": "7d9f8b6c5d",
                       "team": "edge", "tier": "backend"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": ts,
                            "prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                            "checksum/config": f"{i * 2654435761:064x}"[-64:]},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": name[:-6], "uid": f"rs-{i // 3:08x}",
                                 "controller": True, "blockOwnerDeletion": True}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                               "apiVersion": "v1", "time": ts, "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:generateName": {},
                                                           "f:labels": {".": {}, "f:app": {}}}}},
                              {"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                               "time": ts, "fieldsType": "FieldsV1", "subresource": "status",
                               "fieldsV1": {"f:status": {"f:phase": {}, "f:podIP": {}}}}],
        },
        "spec": {
            "volumes": [{"name": "config", "configMap": {"name": "app-config",
                                                         "defaultMode": 420}},
                        {"name": "kube-api-access-x7k2p", "projected": {"sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607,
                                                     "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt",
                                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}}],
                            "defaultMode": 420}}],
            "containers": [container, sidecar],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
            "serviceAccount": "default", "nodeName": node, "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300},
                            {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": t, "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": ts}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "hostIP": f"10.0.{i % 100}.1", "podIP": f"10.244.{i % 250}.{i % 200 + 2}",
            "podIPs": [{"ip": f"10.244.{i % 250}.{i % 200 + 2}"}], "startTime": ts,
            "containerStatuses": [{"name": c, "state": {"running": {"startedAt": ts}},
                                   "lastState": {}, "ready": True, "restartCount": 0,
                                   "image": f"registry.example.com/{c}:1",
                                   "imageID": f"registry.example.com/{c}@sha256:{i:064x}",
                                   "containerID": f"containerd://{i:064x}", "started": True}
                                  for c in ("app", "proxy")],
            "qosClass": "Burstable",
        },
    }


def write_inputs(pods: int) -> tuple[Path, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    lst, watch = OUT / f"podlist-{pods}.json", OUT / f"watch-{pods}.ndjson"
    if not lst.exists() or not watch.exists():
        objs = [make_pod(i) for i in range(pods)]
        body = {"kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(100000 + pods)}, "items": objs}
        lst.write_text(json.dumps(body, separators=(",", ":")) + "\n")
        with watch.open("w") as f:
            for o in objs:
                o = {"kind": "Pod", "apiVersion": "v1", **o}
                f.write(json.dumps({"type": "MODIFIED", "object": o}, separators=(",", ":")))
                f.write("\n")
    return lst, watch


def write_big_items(count: int = 20, size: int = 1 << 20) -> Path:
    """A ConfigMapList of ``count`` items of ``size`` bytes each (one large data value)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"configmaps-{count}x{size}.json"
    if not path.exists():
        items = [{"metadata": {"name": f"big-{i}", "namespace": "default",
                               "resourceVersion": str(i + 1)},
                  "data": {"blob": "x" * size}} for i in range(count)]
        path.write_text(json.dumps({"kind": "ConfigMapList", "apiVersion": "v1",
                                    "metadata": {"resourceVersion": "99"}, "items": items}))
    return path


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(kind: str, path: str, accelerate: bool, touch: bool, chunk: int) -> None:
    """Run one measurement in this (fresh) process and print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from yurthub.kube import framing

    data = Path(path).read_bytes()
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        print("cannot reset the peak-RSS mark: the figure includes loading", file=sys.stderr)
    base = _rss_kib("VmRSS")
    n, names = 0, 0
    t0 = time.perf_counter()
    if kind == "list":
        p = framing.ListParser(accelerate=accelerate)
        for c in chunks:
            for item in p.feed(c):
                n += 1
                if touch:
                    names += len(item.obj["metadata"]["name"])
        p.close()
    else:
        w = framing.WatchFramer(accelerate=accelerate)
        for c in chunks:
            for ev in w.feed(c):
                n += 1
                if touch:
                    names += len(ev.obj["metadata"]["name"])
        w.close()
    elapsed = time.perf_counter() - t0
    peak = _rss_kib("VmHWM")
    print(json.dumps({"n": n, "seconds": elapsed, "mb": len(data) / 1e6,
                      "extra_rss_mib": (peak - base) / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=64 * 1024)
    ap.add_argument("--child", nargs=4, metavar=("KIND", "PATH", "ACCEL", "TOUCH"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, path, accel, touch = args.child
        child(kind, path, accel == "1", touch == "1", args.chunk)
        return
    lst, watch = write_inputs(args.pods)
    sys.path.insert(0, str(ROOT))
    from yurthub.kube.framing import HAVE_MSGSPEC

    print(f"list body {lst.stat().st_size / 1e6:.1f} MB, watch stream "
          f"{watch.stat().st_size / 1e6:.1f} MB, {args.pods} pods, "
          f"{args.chunk // 1024} KiB chunks, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus")
    paths = [("stdlib", False)] + ([("msgspec", True)] if HAVE_MSGSPEC else [])
    big = write_big_items()
    for kind, path in (("list", lst), ("watch", watch), ("list", big)):
        for label, accel in paths:
            for touch in (False, True):
                out = subprocess.run(
                    [sys.executable, __file__, "--chunk", str(args.chunk), "--child", kind,
                     str(path), "1" if accel else "0", "1" if touch else "0"],
                    check=True, capture_output=True, text=True).stdout
                r = json.loads(out)
                name = kind if path != big else "1MB-items"
                print(f"{name:9} {label:7} {'raw+obj' if touch else 'raw':7} "
                      f"{r['n']:6d} items {r['seconds'] * 1000:7.0f} ms "
                      f"{r['mb'] / r['seconds']:6.0f} MB/s  peak +{r['extra_rss_mib']:5.1f} MiB")
    if not HAVE_MSGSPEC:
        print("msgspec is not importable here: only the stdlib path was measured")


if __name__ == "__main__":
    main()
