"""The files under etc/ agree with the settings declared in yurthub/config.py.

etc/yurthub/yurthub.conf is generated; after adding or changing a setting, regenerate it
from the top of the repository with

    yurthub check-config --print-defaults > etc/yurthub/yurthub.conf
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from yurthub import config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_INI = ROOT / "etc" / "yurthub" / "yurthub.conf"
UNIT = ROOT / "etc" / "systemd" / "yurthub.service"
REGENERATE = "yurthub check-config --print-defaults > etc/yurthub/yurthub.conf"


def unit_service_section() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


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
