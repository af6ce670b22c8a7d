"""The files under etc/ agree with the settings declared in yurthub/config.py.

etc/yurthub/yurthub.conf is generated; after adding or changing a setting, regenerate it
from the top of the repository with

    yurthub check-config --print-defaults > etc/yurthub/yurthub.conf
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import free_port
from yurthub import config
from yurthub.cache.mutation import load_meta
from yurthub.storage import DiskStore

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_INI = ROOT / "etc" / "yurthub" / "yurthub.conf"
UNIT = ROOT / "etc" / "systemd" / "yurthub.service"
REGENERATE = "yurthub check-config --print-defaults > etc/yurthub/yurthub.conf"


# Keys systemd takes repeated (one rule per line); every other key must appear once.
REPEATED = ("SocketBindAllow",)


def unit_service_section() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    text = "\n".join(line for line in UNIT.read_text().splitlines()
                     if not line.startswith(REPEATED))
    parser.read_string(text)
    return parser["Service"]


def unit_values(key: str) -> list[str]:
    """Every value of a key of the unit, in order."""
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
            if line.split("=", 1)[0] == key]


def test_unit_binds_exactly_the_default_ports_and_limits_memory_and_tasks():
    cfg = config.Config()
    # 10268 too: where systemd enforces these, a port left out is EPERM and no start
    assert unit_values("SocketBindAllow") == [f"tcp:{cfg.proxy_port}", f"tcp:{cfg.serve_port}",
                                              f"tcp:{cfg.secure_proxy_port}"]
    assert unit_values("SocketBindDeny") == ["any"]
    service = unit_service_section()
    assert service["MemoryMax"] == "300M" and int(service["TasksMax"]) > cfg.threads + 16
    assert "AF_NETLINK" in service["RestrictAddressFamilies"].split()
    assert service["ProcSubset"] == "pid"


def test_shipped_ini_is_the_generated_default_ini():
    assert SHIPPED_INI.read_text() == config.default_ini(), (
        f"{SHIPPED_INI.relative_to(ROOT)} is out of date; regenerate it: {REGENERATE}")


@pytest.mark.parametrize("name", [f.name for f in config.settings()])
def test_every_setting_is_shipped_commented_with_its_default_and_help(name):
    lines = SHIPPED_INI.read_text().splitlines()
    f = next(f for f in config.settings() if f.name == name)
    line = f"#{name} = {config.render_value(f, f.default)}".rstrip()
    assert lines.count(line) == 1, f"missing {line!r}; regenerate: {REGENERATE}"
    assert lines[lines.index(line) - 1] == f"# {f.metadata['help']}"


def test_shipped_ini_sets_nothing_and_loads_to_the_defaults():
    assert config.read_ini(str(SHIPPED_INI)) == {}
    pinned = {"node_name": "edge-1"}
    assert config.load(str(SHIPPED_INI), pinned) == config.load(None, pinned)


def test_unit_points_the_service_at_the_default_config_file():
    env = unit_service_section()["Environment"].split()
    assert f"YURTHUB_CONFIG={config.DEFAULT_CONFIG_FILE}" in env


def test_unit_waits_longer_than_the_default_graceful_timeout():
    default = next(f.default for f in config.settings() if f.name == "graceful_timeout")
    stop = unit_service_section()["TimeoutStopSec"]
    assert re.fullmatch(r"\d+", stop), "TimeoutStopSec in plain seconds, please"
    assert int(stop) >= default + 5


def test_unit_state_directory_holds_the_default_cache():
    default = next(f.default for f in config.settings() if f.name == "disk_cache_path")
    state = "/var/lib/" + unit_service_section()["StateDirectory"]
    assert default.startswith(state + "/")


GUNICORN_CONF = ROOT / "etc" / "yurthub" / "gunicorn.conf.py"

# Executes gunicorn.conf.py as gunicorn does (as a module, in a fresh interpreter), then
# hands every gunicorn setting it defines to gunicorn's own Config, which validates them.
_LOAD_GUNICORN_CONF = """
import json, runpy, sys
import gunicorn.config
names = {s.name for s in gunicorn.config.KNOWN_SETTINGS}
module = runpy.run_path(sys.argv[1])
settings = {k: v for k, v in module.items() if k in names}
c = gunicorn.config.Config()
for k, v in settings.items():
    c.set(k, v)
print(json.dumps({k: (v if not callable(v) else v.__name__) for k, v in settings.items()}))
"""


def load_gunicorn_conf(tmp_path: Path, ini: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "yurthub.conf"
    conf.write_text(ini)
    env = {**os.environ, "YURTHUB_CONFIG": str(conf)}
    return subprocess.run([sys.executable, "-c", _LOAD_GUNICORN_CONF, str(GUNICORN_CONF)],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("secure", [False, True])
def test_gunicorn_conf_takes_every_setting_from_yurthub_conf(tmp_path, secure):
    proxy, serve, tls = free_port(), free_port(), free_port() if secure else 0
    r = load_gunicorn_conf(tmp_path, (
        f"[yurthub]\nserver_addr = http://127.0.0.1:9\nnode_name = edge-1\n"
        f"proxy_port = {proxy}\nserve_port = {serve}\nthreads = 64\ngraceful_timeout = 7\n"
        f"disk_cache_path = {tmp_path / 'cache'}\nroot_dir = {tmp_path / 'root'}\n"
        f"secure_proxy_port = {tls}\nhub_serving_address = 127.0.0.1\n"))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    if secure:
        # yurthub binds the three listeners itself; its worker wraps 10268's in TLS
        assert len(got["bind"]) == 3 and all(b.startswith("fd://") for b in got["bind"])
    else:
        assert got["bind"] == [f"127.0.0.1:{proxy}", f"127.0.0.1:{serve}"]
    assert (got["worker_class"], got["workers"], got["threads"]) == (
        "yurthub.worker.YurthubWorker", 1, 64)
    assert (got["graceful_timeout"], got["max_requests"], got["errorlog"]) == (7, 0, "-")
    assert (got["post_worker_init"], got["worker_exit"]) == ("post_worker_init", "worker_exit")


@pytest.mark.parametrize("ini, fragment", [
    ("[yurthub]\nserver_addr = http://127.0.0.1:9\ncolour = blue\n", "unknown key 'colour'"),
    ("[yurthub]\nserver_addr = http://127.0.0.1:9\nproxy_port = 0\n", "proxy_port = '0'"),
    ("[yurthub]\nserver_addr = http://127.0.0.1:9\nca_file = /nonexistent/ca.crt\n",
     "ca_file = '/nonexistent/ca.crt': file does not exist"),
])
def test_gunicorn_conf_stops_with_one_line_and_ex_config(tmp_path, ini, fragment):
    # the cache and root under tmp_path: the defaults' directories may exist on this machine
    # (the package test installs the package), owned by another user, an error of their own
    ini += f"disk_cache_path = {tmp_path / 'cache'}\nroot_dir = {tmp_path / 'root'}\n"
    r = load_gunicorn_conf(tmp_path, ini)
    assert r.returncode == 78
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("yurthub: "), r.stderr
    assert fragment in r.stderr


@pytest.mark.parametrize("held", ["port", "cache"])
def test_gunicorn_conf_exits_tempfail_when_another_process_holds_a_port_or_the_cache(
        tmp_path, held):
    # Not a bad setting: it may pass (a port briefly taken, an old instance still stopping),
    # so systemd must start the hub again, which the unit does for 75 and not for 78.
    port = free_port()
    ini = (f"[yurthub]\nserver_addr = http://127.0.0.1:9\nproxy_port = {port}\n"
           f"serve_port = {free_port()}\nsecure_proxy_port = 0\n"
           f"disk_cache_path = {tmp_path / 'cache'}\nroot_dir = {tmp_path / 'root'}\n")
    with contextlib.ExitStack() as stack:
        if held == "port":
            stack.enter_context(socket.create_server(("127.0.0.1", port)))
            fragment = f"cannot listen on 127.0.0.1:{port}"
        else:
            stack.enter_context(DiskStore(str(tmp_path / "cache"), meta_loader=load_meta))
            fragment = "the cache is in use by another yurthub process"
        r = load_gunicorn_conf(tmp_path, ini)
    assert r.returncode == 75, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("yurthub: "), r.stderr
    assert fragment in r.stderr


def unit_file(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNIT.parent / name).read_text())
    return parser


def test_unit_restarts_what_may_pass_but_not_a_bad_setting():
    service = unit_service_section()
    assert service["Restart"] == "always"
    # A bad setting (78) is one line in the journal, not the same line every RestartSec.
    assert service["RestartPreventExitStatus"].split() == ["78"]
    units = [str(UNIT.parent / n) for n in ("yurthub.service", "yurthub-config.path",
                                            "yurthub-config.service")]
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_fixing_the_config_file_starts_a_hub_a_bad_setting_stopped():
    """Exit 78 is not retried, but the operator's fix is enough: a path unit watches the
    file the service reads and starts yurthub again if (and only if) it failed."""
    env = dict(e.split("=", 1) for e in unit_service_section()["Environment"].split())
    path = unit_file("yurthub-config.path")
    assert path["Path"]["PathChanged"] == env["YURTHUB_CONFIG"]
    assert path["Path"]["Unit"] == "yurthub-config.service"
    assert path["Install"]["WantedBy"] == "paths.target"
    starter = unit_file("yurthub-config.service")["Service"]
    assert starter["Type"] == "oneshot"
    # Not a hub that runs (it applies a change at its restart), nor one the operator
    # stopped: one that failed, or is starting (it may have read the file before the fix).
    condition = shlex.split(starter["ExecCondition"])
    assert condition[:2] == ["/bin/sh", "-c"]
    for state, code in (("failed", 0), ("activating", 0), ("active", 1), ("inactive", 1),
                        ("deactivating", 1)):
        script = condition[2].replace("$$(systemctl show -P ActiveState yurthub.service)",
                                      state)
        assert subprocess.run(["/bin/sh", "-c", script], timeout=10).returncode == code, state
    assert starter["ExecStart"] == "/bin/systemctl --no-block restart yurthub.service"
    installed = (ROOT / "debian" / "yurthub.install").read_text().splitlines()
    for name in ("yurthub-config.path", "yurthub-config.service"):
        assert f"etc/systemd/{name} lib/systemd/system/" in installed


def test_unit_dumps_no_core():
    # A core of the hub would hold its client key, the tokens it saw and cached Secrets.
    assert unit_service_section()["LimitCORE"] == "0"


def test_debian_maintainer_scripts_use_declared_settings_and_defaults():
    postinst = (ROOT / "debian" / "postinst").read_text()
    names = {f.name for f in config.settings()}
    used = set(re.findall(r"\bconf_[gs]et ([a-z_]+)", postinst))
    used |= set(re.findall(r"\bconf_get ([a-z_]+)", (ROOT / "debian" / "config").read_text()))
    assert {"server_addr", "node_name", "cache_agents", "disk_cache_path"} <= used <= names
    default_cache = next(f.default for f in config.settings() if f.name == "disk_cache_path")
    assert f"DEFAULT_CACHE={default_cache}\n" in postinst
    assert f"CONF={config.DEFAULT_CONFIG_FILE}\n" in postinst
