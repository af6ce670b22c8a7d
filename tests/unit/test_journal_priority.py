"""Under systemd the service's stderr is the journal: its WARNING and ERROR lines carry their
syslog priority (sd-daemon(3)'s "<N>" prefix), so `journalctl -u yurthub -p warning` and
alerts on priority see them; elsewhere the lines are unchanged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.unit.test_shipped_config import GUNICORN_CONF

LOG = """
import logging
from yurthub import config, service
service.configure_logging(config.Config(log_level="DEBUG"))
log = logging.getLogger("yurthub.test")
log.debug("d")
log.info("i")
log.warning("w")
log.error("e")
log.critical("c")
"""


def run_to_file(tmp_path: Path, argv: list[str], journal: bool,
                env: dict[str, str] | None = None) -> list[str]:
    """Run argv with stderr to a file; with journal, JOURNAL_STREAM names that file as
    systemd names the journal's stream socket (device:inode)."""
    err = tmp_path / "stderr"
    with open(err, "wb") as fh:
        st = os.fstat(fh.fileno())
        env = {**os.environ, **(env or {})}
        env.pop("JOURNAL_STREAM", None)
        if journal:
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=fh, env=env, timeout=60)
    return err.read_text().splitlines()


def test_log_lines_carry_their_priority_in_the_journal(tmp_path):
    lines = run_to_file(tmp_path, [sys.executable, "-c", LOG], journal=True)
    assert lines == ["<7>DEBUG yurthub.test: d", "<6>INFO yurthub.test: i",
                     "<4>WARNING yurthub.test: w", "<3>ERROR yurthub.test: e",
                     "<2>CRITICAL yurthub.test: c"]


def test_log_lines_are_plain_elsewhere(tmp_path):
    assert run_to_file(tmp_path, [sys.executable, "-c", LOG], journal=False)[2:4] == [
        "WARNING yurthub.test: w", "ERROR yurthub.test: e"]
    # JOURNAL_STREAM inherited by a process whose stderr is something else: plain too.
    lines = run_to_file(tmp_path, [sys.executable, "-c", LOG], journal=False,
                        env={"JOURNAL_STREAM": "1:2"})
    assert lines[2] == "WARNING yurthub.test: w"


def test_the_line_that_stops_the_start_is_an_error_in_the_journal(tmp_path):
    # The one line with exit 78 is why the unit failed: `journalctl -p err` must show it.
    conf = tmp_path / "yurthub.conf"
    conf.write_text("[yurthub]\ncolour = blue\n")
    argv = [sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1])",
            str(GUNICORN_CONF)]
    lines = run_to_file(tmp_path, argv, journal=True, env={"YURTHUB_CONFIG": str(conf)})
    assert len(lines) == 1 and lines[0].startswith("<3>yurthub: "), lines
    assert "unknown key 'colour'" in lines[0]


KILLED = re.compile(r"was sent SIGKILL|was terminated due to signal 9")


def test_gunicorns_own_error_lines_carry_their_priority_in_the_journal(tmp_path):
    # The master's line for a worker the kernel killed (MemoryMax=) was filed as info:
    # invisible to `journalctl -u yurthub -p warning` and to alerts on priority.
    import signal

    from tests.fixtures import free_port
    from tests.fixtures.waiting import wait_for
    err = tmp_path / "stderr"
    with open(err, "wb") as fh:
        st = os.fstat(fh.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
               "YURTHUB_CONFIG": os.devnull}
        hub = subprocess.Popen(
            [sys.executable, "-m", "yurthub", "serve", "--server-addr",
             f"http://127.0.0.1:{free_port()}", "--node-name", "node-0000",
             "--bootstrap-mode", "credentials", "--disk-cache-path", str(tmp_path / "cache"),
             "--root-dir", str(tmp_path / "root"), "--proxy-port", str(free_port()),
             "--serve-port", str(free_port()), "--secure-proxy-port", "0",
             "--graceful-timeout", "2"], stdout=subprocess.DEVNULL, stderr=fh, env=env)
        try:
            def worker() -> int:
                m = re.search(r"Booting worker with pid: (\d+)", err.read_text())
                return int(m.group(1)) if m else 0
            pid = wait_for(worker, 30, what="gunicorn's worker")
            wait_for(lambda: "yurthub serving" in err.read_text(), 30, what="the hub serving")
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: KILLED.search(err.read_text()), 30,
                     what="the master's line for the killed worker")
        finally:
            hub.terminate()
            hub.wait(30)
    lines = err.read_text().splitlines()
    killed = next(line for line in lines if KILLED.search(line))
    # gunicorn >= 21 says it at ERROR, Debian's 20.1 at WARNING
    assert killed.startswith(("<3>[", "<4>[")), killed
    assert ("[ERROR]" in killed) == killed.startswith("<3>"), killed
    booting = next(line for line in lines if "Booting worker" in line)
    assert booting.startswith("<6>["), booting
