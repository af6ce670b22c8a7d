"""debian/postrm purge, run by sh on files of a temporary directory: what it removes, and
what it says it leaves."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def purge(tmp: Path, settings: str) -> subprocess.CompletedProcess[str]:
    etc, state = tmp / "etc", tmp / "state"
    etc.mkdir()
    (state / "cache" / "kubelet").mkdir(parents=True)
    (etc / "yurthub.conf").write_text(f"[yurthub]\nserver_addr = https://10.0.0.1:6443\n"
                                      f"{settings}\n")
    script = (ROOT / "debian" / "postrm").read_text() \
        .replace("/etc/yurthub", str(etc)).replace("/var/lib/yurthub", str(state))
    return subprocess.run(["sh", "-c", script, "postrm", "purge"], capture_output=True,
                          text=True, timeout=30)


def test_purge_says_where_a_cache_outside_the_state_directory_is_left(tmp_path):
    # It holds Secrets: an operator decommissioning the node must learn it is still there.
    outside = tmp_path / "srv" / "yurthub-cache"
    (outside / "kubelet" / "secrets.v1.core").mkdir(parents=True)
    r = purge(tmp_path, f"disk_cache_path = {outside}  ")
    assert r.returncode == 0, r.stderr
    assert r.stderr == (f"yurthub: left the cache {outside} (disk_cache_path) in place; it "
                        "holds the cached objects, Secrets among them: remove it yourself\n")
    assert outside.is_dir()  # not the package's to remove
    assert not (tmp_path / "etc").exists() and not (tmp_path / "state").exists()


def test_purge_of_the_default_cache_removes_it_silently(tmp_path):
    for settings in ("# disk_cache_path = /srv/x", f"disk-cache-path = {tmp_path}/state/cache"):
        r = purge(tmp_path, settings)
        assert (r.returncode, r.stderr) == (0, "")
        assert not (tmp_path / "etc").exists() and not (tmp_path / "state").exists()
