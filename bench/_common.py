"""Shared pieces of the gateway benchmarks: the stack banner, nginx, a hub child process,
/proc memory figures, /metrics scraping and the statistics the scripts print.

Nothing here asserts a timing; the scripts print figures and ratios measured side by side.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # yurthub itself, and the helpers the test suites share
from tests.fixtures import free_port  # noqa: E402  (re-exported to the benches)
from tests.fixtures.waiting import wait_for  # noqa: E402  (re-exported to the benches)

OUT = ROOT / "bench" / "out"
NGINX = "/usr/sbin/nginx"
KUBELET_UA = "kubelet/v1.32.4 (linux/amd64) kubernetes/1234567"
KUBE_PROXY_UA = "kube-proxy/v1.32.4 (linux/amd64) kubernetes/1234567"


# -- the stack ----------------------------------------------------------------------------

def _version(module: str) -> str:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return "-"


def stack_banner() -> str:
    """Which interpreter and which libraries run the hub (the child runs the same python)."""
    try:
        import msgspec  # noqa: F401
        accel = "msgspec " + _version("msgspec")
    except ImportError:
        accel = "no msgspec (stdlib json path)"
    debian = sys.executable.startswith(str(ROOT / ".venv-debian")) or \
        _version("werkzeug").startswith("2.2")
    name = "Debian 12 stack" if debian else "PyPI stack"
    return (f"{name}: {sys.executable} (Python {sys.version.split()[0]}), "
            f"gunicorn {_version('gunicorn')}, werkzeug {_version('werkzeug')}, "
            f"urllib3 {_version('urllib3')}, cachetools {_version('cachetools')}, "
            f"prometheus-client {_version('prometheus-client')}, {accel}; "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")


# -- small helpers ------------------------------------------------------------------------

def http_get(port: int, path: str, headers: dict[str, str] | None = None,
             timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def pct(values: Sequence[float], p: float) -> float:
    """The p-quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]


def spread(values: Iterable[float], scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    """'median (min-max, n=N)' of a series, each value multiplied by ``scale``."""
    v = [x * scale for x in values]
    if not v:
        return "n/a"
    med = statistics.median(v)
    if len(v) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(v))}-{fmt.format(max(v))}, n={len(v)})"


def med(values: Iterable[float]) -> float:
    v = list(values)
    return statistics.median(v) if v else float("nan")


# -- /proc --------------------------------------------------------------------------------

def mem_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB (MiB, as the kernel counts)."""
    rss = hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return rss, hwm


def reset_hwm(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of ``pid`` to its current RSS."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def threads_of(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class MemSampler:
    """Samples a process's VmRSS every ``interval`` seconds on a thread; keeps the maximum."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        import threading
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="mem-sampler")

    def __enter__(self) -> MemSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, mem_mb(self.pid)[0])
            except OSError:
                return
            self._stop.wait(self.interval)


# -- nginx --------------------------------------------------------------------------------

def ensure_nginx() -> str:
    """Debian's nginx; installed with apt-get when it is missing (needs root)."""
    if not os.path.exists(NGINX):
        print("nginx is missing: apt-get install nginx-light", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for pkg in ("nginx-light", "nginx"):
            r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", pkg],
                               env=env, capture_output=True, text=True)
            if r.returncode != 0 and "Unable to locate" in r.stderr:
                subprocess.run(["apt-get", "update"], env=env, capture_output=True)
                r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends",
                                    pkg], env=env, capture_output=True, text=True)
            if os.path.exists(NGINX):
                break
        if not os.path.exists(NGINX):
            raise SystemExit("cannot install nginx; run: apt-get install nginx-light")
    # nginx -v prints to stderr
    return subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()


class Nginx:
    """One private nginx (one worker unless told): its own prefix, config, pid and temp dirs.

    ``servers`` is the text of the ``server {}`` / ``upstream {}`` blocks of the http
    context.  It never reads or writes /etc/nginx.
    """

    def __init__(self, prefix: Path, name: str, servers: str, workers: int = 1) -> None:
        self.prefix = prefix / f"nginx-{name}"
        self.name = name
        self.servers = servers
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def conf(self) -> str:
        p = self.prefix
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temps = "\n".join(f"    {k}_temp_path {p}/tmp/{k};"
                          for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return f"""{user}worker_processes {self.workers};
pid {p}/nginx.pid;
lock_file {p}/nginx.lock;
error_log {p}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
{temps}
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
{self.servers}
}}
"""

    def start(self) -> Nginx:
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.conf())
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=open(self.prefix / "stderr.log", "wb"))
        try:
            wait_for(lambda: (self.prefix / "nginx.pid").exists() or self._died(), 10,
                     f"nginx {self.name}")
            time.sleep(0.05)
            self._died()
        except BaseException:
            self.stop()
            raise
        return self

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            err = (self.prefix / "stderr.log").read_text(errors="replace")
            raise SystemExit(f"nginx {self.name} exited: {err[-2000:]}")
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def proxy_server_block(port: int, upstream_port: int, name: str, scheme: str = "http",
                       buffer_kib: int = 64) -> str:
    """nginx as a streaming reverse proxy, the peer of the hub: HTTP/1.1 keep-alive to the
    upstream, no response buffering (the hub streams too), ``buffer_kib`` KiB buffers."""
    b = buffer_kib
    return f"""
    upstream {name} {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass {scheme}://{name};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_buffer_size {b}k;
            proxy_buffers 4 {b}k;
            proxy_busy_buffers_size {2 * b}k;
            proxy_read_timeout 600s;
        }}
    }}
"""


# -- the hub ------------------------------------------------------------------------------

class HubProcess:
    """``python -m yurthub serve`` as a child (gunicorn master + one gthread worker)."""

    def __init__(self, workdir: Path, server: str, cache_dir: Path, *,
                 node: str = "node-0000", extra: Sequence[str] = (), root: Path = ROOT) -> None:
        """``root``: the source tree whose yurthub runs (another checkout: a baseline)."""
        self.workdir = workdir
        self.root = root
        self.server = server
        self.cache_dir = cache_dir
        self.node = node
        self.extra = list(extra)
        self.proxy_port = free_port()
        self.serve_port = free_port()
        self.log_path = workdir / f"hub-{self.proxy_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "yurthub", "serve", "--server-addr", self.server,
                "--node-name", self.node, "--disk-cache-path", str(self.cache_dir),
                "--proxy-port", str(self.proxy_port), "--serve-port", str(self.serve_port),
                "--working-mode", "edge", "--bootstrap-mode", "credentials",
                "--secure-proxy-port", "0", "--root-dir", str(self.cache_dir) + "-root",
                *self.extra]

    def start(self, wait: bool = True) -> HubProcess:
        log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(self.root), os.environ.get("PYTHONPATH", "")])}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.root, env=env)
        log.close()
        if wait:
            try:
                wait_for(self.ready, 30, f"hub ready (log {self.log_path})")
            except BaseException:
                self.stop(5)
                raise
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise SystemExit(f"hub exited with {self.proc.returncode}: {self.log()[-3000:]}")
        try:
            status, _ = http_get(self.serve_port, "/v1/readyz", timeout=2)
        except OSError:
            return False
        return status == 200

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def worker(self) -> int:
        """The gunicorn worker's pid (the child of the master)."""
        assert self.proc is not None
        return int(wait_for(lambda: (children(self.proc.pid) or [0])[0], 10, "gunicorn worker"))

    def metrics_text(self) -> str:
        _, body = http_get(self.serve_port, "/metrics", timeout=10)
        return body.decode()

    def metric(self, name: str, text: str | None = None, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in (text if text is not None else self.metrics_text()).splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, labeltext = head.partition("{")
            if metric == name and all(f'{k}="{v}"' in labeltext for k, v in labels.items()):
                total += float(value)
        return total

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in [*children(self.proc.pid), self.proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()


class PySpy:
    """Optional: ``py-spy record`` of the hub's worker during one section (--py-spy DIR)."""

    def __init__(self, outdir: Path | None, pid: int, name: str, seconds: float) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        candidates = [shutil.which("py-spy"), str(Path(sys.executable).parent / "py-spy"),
                      str(ROOT / ".venv" / "bin" / "py-spy")]
        exe = next((c for c in candidates if c and os.path.exists(c)), None)
        if outdir is None:
            return
        if exe is None:
            print("  (py-spy not found: .venv/bin/pip install py-spy)")
            return
        outdir.mkdir(parents=True, exist_ok=True)
        out = outdir / f"{name}.txt"
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
             "--format", "raw", "--threads", "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"  (py-spy recording {name} -> {out})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
