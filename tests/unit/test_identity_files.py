"""``root_dir`` as the hub prepares it: its own directory private, anyone else's untouched."""

from __future__ import annotations

import os
import stat

from yurthub.identity.files import IdentityFiles


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_root_dir_and_its_pki_are_private(tmp_path):
    root = tmp_path / "var" / "lib" / "yurthub"
    IdentityFiles(str(root)).prepare()
    assert _mode(root) == 0o700 and _mode(root / "pki") == 0o700


def test_the_hubs_own_root_dir_is_tightened_and_its_leftovers_swept(tmp_path):
    # made by hand (mkdir, umask 022), a crash left a temporary file of the hub's
    root = tmp_path / "yurthub"
    (root / "pki").mkdir(parents=True)
    for d in (root, root / "pki"):
        d.chmod(0o755)
    (root / "bootstrap-hub.conf").write_text("x")
    (root / "join-token").write_text("x")
    (root / "cache").mkdir()
    (root / ".tmp-yurthub.conf.4242").write_text("half")
    (root / "pki" / ".tmp-yurthub-current.pem.4242").write_text("half")
    IdentityFiles(str(root)).prepare()
    assert _mode(root) == 0o700 and _mode(root / "pki") == 0o700
    assert not (root / ".tmp-yurthub.conf.4242").exists()
    assert not (root / "pki" / ".tmp-yurthub-current.pem.4242").exists()
    assert (root / "bootstrap-hub.conf").exists() and (root / "join-token").exists()


def test_a_root_dir_holding_other_things_keeps_its_mode_and_their_files(tmp_path):
    # root_dir = /tmp or /var/lib by a slip of the setting: the hub made it 0700 (every
    # other user and service locked out, the sticky bit gone) and deleted every ".tmp-*"
    # name in it, at every start
    shared = tmp_path / "shared"
    (shared / "app").mkdir(parents=True)
    shared.chmod(0o1777)
    (shared / ".tmp-editor-swap").write_text("someone's")
    IdentityFiles(str(shared)).prepare()
    assert _mode(shared) == 0o1777
    assert (shared / ".tmp-editor-swap").read_text() == "someone's"
    assert _mode(shared / "pki") == 0o700   # the hub's own directory in it


def test_a_pki_directory_of_someone_elses_keeps_its_mode_and_their_files(tmp_path):
    # root_dir = /etc/kubernetes by a slip: pki/ there is kubeadm's
    root = tmp_path / "kubernetes"
    (root / "pki").mkdir(parents=True)
    (root / "pki").chmod(0o755)
    (root / "pki" / "apiserver.crt").write_text("kubeadm's")
    (root / "pki" / ".tmp-other").write_text("kubeadm's")
    IdentityFiles(str(root)).prepare()
    assert _mode(root / "pki") == 0o755
    assert (root / "pki" / ".tmp-other").exists()
