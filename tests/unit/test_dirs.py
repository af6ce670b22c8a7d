"""prepare_dir, as the package's postinst runs it (as root): owner and mode given to the
directory itself, never through a symlink someone else could have planted."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from yurthub.dirs import prepare_dir
from yurthub.errors import ConfigError

NOBODY = 65534
NOGROUP = 65534


def owner_mode(path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def root(tmp_path):
    os.chmod(tmp_path, 0o755)     # owned by root, writable by no one else: trusted
    return tmp_path


def test_creates_the_directory_and_its_parents(root):
    target = root / "a" / "b" / "cache"
    assert prepare_dir(str(target), NOBODY, NOGROUP, 0o700) is True
    assert owner_mode(target) == (NOBODY, NOGROUP, 0o700)
    assert owner_mode(root / "a")[::2] == (0, 0o755)
    os.chmod(target, 0o777)
    assert prepare_dir(str(target), NOBODY, NOGROUP, 0o700) is False
    assert owner_mode(target) == (NOBODY, NOGROUP, 0o700)


def test_a_symlink_in_the_last_place_is_never_followed(root):
    victim = root / "etc"
    victim.mkdir(mode=0o755)
    state = root / "state"
    state.mkdir()
    os.chown(state, NOBODY, NOGROUP)
    (state / "cache").symlink_to(victim)
    with pytest.raises(ConfigError, match="'cache' is a symlink"):
        prepare_dir(str(state / "cache"), NOBODY, NOGROUP, 0o700)
    assert owner_mode(victim) == (0, 0, 0o755)
    dangling = state / "new"
    dangling.symlink_to(root / "elsewhere")
    with pytest.raises(ConfigError, match="symlink"):
        prepare_dir(str(dangling), NOBODY, NOGROUP, 0o700)
    assert not (root / "elsewhere").exists()


def test_a_symlink_in_a_directory_of_another_user_is_not_followed(root):
    victim = root / "victim"
    victim.mkdir(mode=0o755)
    state = root / "state"
    state.mkdir()
    os.chown(state, NOBODY, NOGROUP)
    (state / "sub").symlink_to(victim)
    with pytest.raises(ConfigError, match="'sub' is a symlink"):
        prepare_dir(str(state / "sub" / "cache"), NOBODY, NOGROUP, 0o700)
    assert not (victim / "cache").exists()
    # ... nor in a directory others may write to.
    shared = root / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "sub").symlink_to(victim)
    with pytest.raises(ConfigError, match="'sub' is a symlink"):
        prepare_dir(str(shared / "sub" / "cache"), NOBODY, NOGROUP, 0o700)


def test_a_symlink_only_root_could_make_is_followed(root):
    disk = root / "disk"
    disk.mkdir()
    (root / "srv").symlink_to(disk)                  # an operator's choice
    (root / "rel").symlink_to("disk")
    prepare_dir(str(root / "srv" / "cache"), NOBODY, NOGROUP, 0o700)
    prepare_dir(str(root / "rel" / "cache2"), NOBODY, NOGROUP, 0o750)
    assert owner_mode(disk / "cache") == (NOBODY, NOGROUP, 0o700)
    assert owner_mode(disk / "cache2") == (NOBODY, NOGROUP, 0o750)


def test_a_file_in_the_way_is_an_error(root):
    (root / "file").write_text("x")
    with pytest.raises(ConfigError, match="'file' is not a directory"):
        prepare_dir(str(root / "file" / "cache"), NOBODY, NOGROUP, 0o700)
    with pytest.raises(ConfigError, match="not an absolute path"):
        prepare_dir("relative", NOBODY, NOGROUP, 0o700)


def test_the_command_for_postinst(root):
    target = root / "cache"
    r = subprocess.run([sys.executable, "-m", "yurthub", "prepare-dir", str(target),
                        "--owner", "nobody", "--mode", "0750"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert owner_mode(target) == (NOBODY, NOGROUP, 0o750)
    (root / "link").symlink_to(target)
    os.chown(root, NOBODY, NOGROUP)   # now nobody could have made "link"
    r = subprocess.run([sys.executable, "-m", "yurthub", "prepare-dir", str(root / "link"),
                        "--owner", "root"], capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "'link' is a symlink" in lines[0]
    assert owner_mode(target) == (NOBODY, NOGROUP, 0o750)
    r = subprocess.run([sys.executable, "-m", "yurthub", "prepare-dir", str(target),
                        "--owner", "no-such-user"], capture_output=True, text=True)
    assert r.returncode == 2 and "no such user" in r.stderr
