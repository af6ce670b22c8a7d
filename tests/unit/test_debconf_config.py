"""debian/config, run by sh with a recording stand-in for debconf's confmodule: which
questions it asks on a first install, an upgrade and a dpkg-reconfigure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# db_* as confmodule defines them, answering from and recording in files of $DB
FAKE_CONFMODULE = r'''
db_input() { echo "$2" >> "$DB/asked"; return 0; }
db_go() { return 0; }
db_get() { RET=$(cat "$DB/$1" 2>/dev/null || true); }
db_set() { mkdir -p "$(dirname "$DB/$1")"; printf '%s' "$2" > "$DB/$1"; }
db_subst() { :; }
db_fset() { :; }
'''


def _asked(tmp: Path, *args: str, token: bool = False, certificate: bool = False) -> list[str]:
    state = tmp / "state"
    (state / "pki").mkdir(parents=True)
    if token:
        (state / "join-token").write_text("abcdef.0123456789abcdef\n")
    if certificate:
        (state / "pki" / "yurthub-current.pem").write_text("a certificate\n")
    conf = tmp / "yurthub.conf"
    conf.write_text("[yurthub]\nserver_addr = https://10.0.0.1:6443\nbootstrap_mode = token\n"
                    "join_token_file = /var/lib/yurthub/join-token\n")
    (tmp / "confmodule").write_text(FAKE_CONFMODULE)
    db = tmp / "db"
    db.mkdir()
    script = (ROOT / "debian" / "config").read_text() \
        .replace("/usr/share/debconf/confmodule", str(tmp / "confmodule")) \
        .replace("/etc/yurthub/yurthub.conf", str(conf)) \
        .replace("/var/lib/yurthub", str(state))
    (tmp / "config").write_text(script)
    r = subprocess.run(["sh", str(tmp / "config"), *args], env={"DB": str(db), "PATH":
                       "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return (db / "asked").read_text().split()


def test_a_first_install_asks_for_the_join_token(tmp_path):
    assert "yurthub/join-token" in _asked(tmp_path, "configure")


@pytest.mark.parametrize("token,certificate", [(True, False), (False, True), (True, True)])
def test_an_upgrade_keeps_the_identity_and_asks_no_token(tmp_path, token, certificate):
    assert "yurthub/join-token" not in _asked(tmp_path, "configure", "0.1",
                                              token=token, certificate=certificate)


def test_dpkg_reconfigure_asks_for_a_fresh_join_token(tmp_path):
    # The first token expired; the operator re-runs the join with dpkg-reconfigure, as the
    # question's own text says ("Leave this empty to keep ..."): it was never asked again
    # once a token file or a certificate existed.
    assert "yurthub/join-token" in _asked(tmp_path, "reconfigure", "0.1", token=True,
                                          certificate=True)
