"""The `yurthub` command line: help, version, and one clear line for every bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from yurthub import __version__


def run(*args: str, config: str = os.devnull) -> subprocess.CompletedProcess[str]:
    # check-config reads $YURTHUB_CONFIG (else /etc/yurthub/yurthub.conf) without --config:
    # an empty file, so that a package installed on this machine changes nothing here.
    return subprocess.run([sys.executable, "-m", "yurthub", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "YURTHUB_CONFIG": config})


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"yurthub {__version__}"


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("serve", "sandbox", "demo", "check-config"):
        assert cmd in r.stdout


def test_each_flag_states_its_default_once():
    text = " ".join(run("serve", "--help").stdout.split())
    assert "--node-name NAME this node's name (default: the host name) --" in text
    assert not re.search(r"\(default: [^)]*\) \(default: ", text), text
    assert "(default: 10261)" in text


@pytest.mark.parametrize("args, fragment", [
    (("--bogus",), "error"),
    (("serve", "--no-such-flag"), "unrecognized arguments: --no-such-flag"),
    (("serve", "--proxy-port", "99999"), "--proxy-port: proxy_port = '99999'"),
    (("serve", "--lb-mode", "random"), "must be one of rr, priority"),
    (("check-config", "--config", "/nonexistent/yurthub.conf"), "cannot read config file"),
])
def test_bad_input_exits_2_with_one_clear_line(args, fragment):
    r = run(*args)
    assert r.returncode == 2
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr


def test_check_config_prints_effective_values(tmp_path):
    conf = tmp_path / "y.conf"
    conf.write_text("[yurthub]\nproxy_port = 20261\n")
    r = run("check-config", "--config", str(conf), "--node-name", "edge-7",
            "--server-addr", "http://127.0.0.1:1", "--disk-cache-path", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    values = {k.strip(): v.strip() for k, v in
              (line.split(" = ", 1) for line in r.stdout.splitlines())}
    assert values["proxy_port"] == "20261"
    assert values["node_name"] == "edge-7"
    assert values["serve_port"] == "10267"


def test_check_config_without_config_checks_the_services_file(tmp_path):
    # On a node, `yurthub check-config` checks what yurthub.service reads
    # ($YURTHUB_CONFIG, else /etc/yurthub/yurthub.conf), as `yurthub cache` does.
    conf = tmp_path / "y.conf"
    conf.write_text(f"[yurthub]\nserver_addr = https://10.0.0.1:6443\nproxy_port = 20261\n"
                    f"disk_cache_path = {tmp_path}/cache\nroot_dir = {tmp_path}\n"
                    "join_token = abcdef.0123456789abcdef\n")
    r = run("check-config", "--node-name", "edge-7", config=str(conf))
    assert r.returncode == 0, r.stderr
    values = {k.strip(): v.strip() for k, v in
              (line.split(" = ", 1) for line in r.stdout.splitlines())}
    assert (values["server_addr"], values["proxy_port"]) == ("https://10.0.0.1:6443", "20261")
    assert values["node_name"] == "edge-7"   # flags still override it
    r = run("check-config", "--config", os.devnull, "--server-addr", "http://127.0.0.1:1",
            "--disk-cache-path", str(tmp_path / "cache"), config=str(conf))
    assert r.returncode == 0, r.stderr
    assert "proxy_port                                  = 10261" in r.stdout.splitlines()


def test_check_config_names_bad_key(tmp_path):
    conf = tmp_path / "y.conf"
    conf.write_text("[yurthub]\nproxy_port = 20261\ncolour = blue\n")
    r = run("check-config", "--config", str(conf))
    assert r.returncode == 2
    assert str(conf) in r.stderr and "colour" in r.stderr and "blue" in r.stderr


def test_check_config_names_every_bad_value_at_once(tmp_path):
    # A node installed with bad preseeded answers: the operator fixes the file in one pass,
    # not one value per run (the service itself still stops with the first, on one line).
    conf = tmp_path / "y.conf"
    conf.write_text("[yurthub]\nserver_addr = ftp://cloud\nnode_name = Edge_7\n"
                    "proxy_port = 10261\ncache_agents = calico node\n")
    r = run("check-config", "--config", str(conf), "--serve-port", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert [line.split(" = ")[0] for line in lines] == [
        f"yurthub: {conf}: server_addr", f"yurthub: {conf}: node_name",
        f"yurthub: {conf}: cache_agents", "yurthub: --serve-port: serve_port"]
    assert "'ftp://cloud'" in lines[0] and "'Edge_7'" in lines[1]
    serve = run("serve", "--config", str(conf))
    assert serve.returncode == 2 and serve.stderr.count("\n") == 1


@pytest.mark.parametrize("settings, fragment", [
    # A fresh install that nobody preseeded: the service would exit 78 at every start.
    ("", "no apiserver: set server_addr"),
    ("bootstrap_mode = credentials", "no apiserver: set server_addr"),
    ("token_file = {tmp}/token", "no apiserver: set server_addr"),
    ("join_token = abcdef.0123456789abcdef", "no apiserver: set server_addr"),
    ("server_addr = https://127.0.0.1:1\nbootstrap_mode = token",
     "the hub has no certificate and no join token"),
    ("kubelet_conf = {tmp}/missing.conf\nbootstrap_mode = kubeletcertificate",
     "missing.conf': cannot read"),
])
def test_check_config_refuses_what_the_service_would_refuse_to_start_with(
        tmp_path, settings, fragment):
    (tmp_path / "token").write_text("a-token\n")
    conf = tmp_path / "y.conf"
    conf.write_text(f"[yurthub]\nroot_dir = {tmp_path}\ndisk_cache_path = {tmp_path}/cache\n"
                    + settings.format(tmp=tmp_path) + "\n")
    r = run("check-config", "--config", str(conf))
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr
    assert not (tmp_path / "pki").exists()  # nothing written, no discovery tried


def test_check_config_refuses_a_cache_directory_that_holds_other_things(tmp_path):
    # The start refuses it (it would sweep what it does not recognise): check-config, run
    # to know whether the service will start, said the settings were fine.
    other = tmp_path / "home"
    other.mkdir()
    (other / ".profile").write_text("umask 022\n")
    conf = tmp_path / "y.conf"
    conf.write_text(f"[yurthub]\nserver_addr = http://127.0.0.1:1\n"
                    f"bootstrap_mode = credentials\nroot_dir = {tmp_path}\n"
                    f"disk_cache_path = {other}\n")
    r = run("check-config", "--config", str(conf))
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1, r.stderr
    assert f"disk_cache_path = '{other}': {other} is not a yurthub cache" in r.stderr
    assert (other / ".profile").read_text() == "umask 022\n"


def test_check_config_says_a_cache_on_a_read_only_mount_is_read_only(tmp_path):
    # As under yurthub.service (ProtectSystem=strict) with disk_cache_path outside
    # /var/lib/yurthub: the directory is the service user's, mode 0700, and still refused.
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    script = (f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache} && "
              f"exec {sys.executable} -m yurthub check-config --server-addr http://127.0.0.1:1 "
              f"--disk-cache-path {cache}")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1, r.stderr
    assert f"'{cache}' is on a read-only file system" in r.stderr
    assert f"ReadWritePaths={cache}" in r.stderr


def test_check_config_refuses_a_token_file_that_is_a_directory(tmp_path):
    r = run("check-config", "--server-addr", "http://127.0.0.1:1", "--token-file",
            str(tmp_path))
    assert r.returncode == 2 and "is a directory, not a file" in r.stderr, r
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content", [b"\x00\x01\xff\xfe", b"apiVersion: v1\nkind: \xff\n"],
                         ids=["binary", "latin-1-inside-yaml"])
def test_check_config_refuses_a_kubeconfig_that_is_not_text_in_one_line(tmp_path, content):
    # was: a UnicodeDecodeError traceback from the YAML reader and exit 1
    kubeconfig = tmp_path / "hub.kubeconfig"
    kubeconfig.write_bytes(content)
    r = run("check-config", "--kubeconfig", str(kubeconfig),
            "--disk-cache-path", str(tmp_path / "cache"))
    assert r.returncode == 2, r
    assert r.stderr == f"yurthub: kubeconfig = '{kubeconfig}': not a kubeconfig " \
                       "(not UTF-8 text)\n"


def _capped_memory() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.parametrize("args, line", [
    (("--config", "/dev/zero"), "yurthub: /dev/zero: not a config file: larger than 1048576 bytes"),
    (("--server-addr", "http://127.0.0.1:1", "--token-file", "/dev/zero"),
     "yurthub: token_file = '/dev/zero': larger than 65536 bytes, not one bearer token"),
])
def test_check_config_reads_a_bounded_amount_of_a_file_that_never_ends(tmp_path, args, line):
    # was: read to the end, which /dev/zero (or a FIFO, a log given by mistake) never
    # reaches: all the memory there is, then a MemoryError traceback
    r = subprocess.run([sys.executable, "-m", "yurthub", "check-config", *args,
                        "--disk-cache-path", str(tmp_path / "cache")],
                       capture_output=True, text=True, timeout=60, preexec_fn=_capped_memory,
                       env={**os.environ, "YURTHUB_CONFIG": os.devnull})
    assert (r.returncode, r.stderr) == (2, line + "\n"), r


@pytest.mark.parametrize("args", [
    ("cache", "ls", "--disk-cache-path", "{dir}"),
    ("cache", "verify", "--disk-cache-path", "{dir}"),
    ("cache", "--disk-cache-path", "{dir}", "ls", "--serve-port", "10267"),
])
def test_cache_takes_its_tree_options_after_the_subcommand_too(tmp_path, args):
    # was: "unrecognized arguments: --disk-cache-path" (exit 2), kubectl's habit of flags
    # after the verb; and an option after the verb must not undo one given before it
    (tmp_path / "empty").mkdir(mode=0o700)
    r = run(*(a.format(dir=tmp_path / "empty") for a in args))
    assert r.returncode == 0, r
    assert f"the cache at {tmp_path / 'empty'}" in r.stdout + r.stderr, r


@pytest.mark.parametrize("command", ["sandbox", "demo"])
def test_sandbox_commands_without_the_sandbox_package_say_how_to_get_it(command, tmp_path):
    """An edge node's package ships no kubesandbox: one line says where it comes from, exit 2.

    A module named ``kubesandbox`` that refuses to import stands in for its absence."""
    blocker = tmp_path / "kubesandbox"
    blocker.mkdir()
    (blocker / "__init__.py").write_text(
        "raise ModuleNotFoundError('No module named kubesandbox', name='kubesandbox')\n")
    r = subprocess.run([sys.executable, "-m", "yurthub", command, "--port", "1"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(
                           filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))},
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install '.[sandbox]'" in lines[0], r.stderr
    assert f"yurthub {command}:" in lines[0]


def test_python_m_kubesandbox_rejects_a_bad_flag_with_exit_2():
    r = subprocess.run([sys.executable, "-m", "kubesandbox", "--nodes", "x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--nodes" in r.stderr and "Traceback" not in r.stderr


def into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """`yurthub ... | head -3` once head has exited: the pipe has no reader."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "yurthub", *args], stdout=w,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(w)


def test_a_reader_that_goes_away_gets_no_traceback():
    p = into_closed_pipe("check-config", "--print-defaults")
    assert p.stderr == ""
    assert p.returncode == 141  # as a process that SIGPIPE ended, for the shell's pipefail


def test_the_hubs_own_commands_do_not_load_the_sandbox():
    # every hub start parsed the sandbox's and the demo's arguments, importing the whole
    # sandbox apiserver where it is installed (30-40 ms of each start)
    code = ("import sys; from yurthub import cli; cli.build_parser('serve'); "
            "cli.build_parser('check-config'); "
            "print(sorted(m for m in sys.modules if m.startswith('kubesandbox')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "yurthub", "sandbox", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--nodes" in r.stdout, r.stderr


def _options(parser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


def test_the_man_page_names_every_command_and_the_cache_and_check_config_options():
    # What an operator reads on a node (man yurthub) against what the command takes.
    import argparse
    from pathlib import Path

    from yurthub.cli import build_parser
    man = (Path(__file__).resolve().parents[2] / "debian" / "yurthub.1").read_text()
    man = man.replace("\\-", "-")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"serve", "check-config", "prepare-dir", "cache", "sandbox",
                                "demo"}
    for command in sub.choices:
        assert f".B yurthub {command}" in man, command
    synopsis = man.split(".SH DESCRIPTION")[0]
    cache = sub.choices["cache"]
    assert _options(cache) - {"--help"} <= set(re.findall(r"--[a-z-]+", synopsis)), \
        _options(cache)
    assert "--print-defaults" in synopsis
    cache_sub = next(a for a in cache._actions if isinstance(a, argparse._SubParsersAction))
    for name in cache_sub.choices:
        assert f".B cache {name}" in man, name
    # Not on an edge node: the package does not ship the sandbox.
    assert "not in the Debian package" in man


def test_the_package_the_command_and_the_man_page_name_one_version():
    # apt offers an upgrade by the changelog's version; `yurthub --version` and `man yurthub`
    # must name the same one.
    import re
    from pathlib import Path

    debian = Path(__file__).resolve().parents[2] / "debian"
    top = (debian / "changelog").read_text().splitlines()[0]
    assert re.match(rf"yurthub \({re.escape(__version__)}\) ", top), top
    assert f'"yurthub {__version__}"' in (debian / "yurthub.1").read_text()
