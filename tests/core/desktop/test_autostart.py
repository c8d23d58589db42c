"""The XDG autostart entry: where it goes, what it says, switching it on and off."""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from mity_cost.core.desktop import autostart


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text("utf-8"))
    return parser["Desktop Entry"]


def test_under_mity_cost_home(isolated_home: Path) -> None:
    assert autostart.entry_path() == isolated_home / "autostart" / "mity-cost.desktop"
    assert autostart.supported()


def test_xdg_config_home_without_mity_cost_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MITY_COST_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert autostart.autostart_dir() == tmp_path / "cfg" / "autostart"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert autostart.autostart_dir() == tmp_path / "home" / ".config" / "autostart"


def test_enable_writes_a_valid_entry_and_disable_removes_it() -> None:
    assert not autostart.is_enabled()
    path = autostart.enable(["/opt/mity cost/bin/mity-cost-tray", "--root", "/data/100%"])
    assert autostart.is_enabled() and path == autostart.entry_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    entry = _entry(path)
    assert entry["Type"] == "Application"
    assert entry["Exec"] == '"/opt/mity cost/bin/mity-cost-tray" --root /data/100%%'
    assert entry["Terminal"] == "false"
    assert entry["X-GNOME-Autostart-enabled"] == "true"
    assert entry["Name"] == "mity-cost"
    assert autostart.disable() is True
    assert not autostart.is_enabled()
    assert autostart.disable() is False


def test_enable_replaces_an_existing_entry() -> None:
    autostart.enable(["first"])
    autostart.enable(["second"])
    assert _entry(autostart.entry_path())["Exec"] == "second"
    leftovers = [p.name for p in autostart.autostart_dir().iterdir() if p.name != autostart.ENTRY_NAME]
    assert leftovers == []


def test_set_enabled() -> None:
    autostart.set_enabled(True, ["mity-cost-tray"])
    assert autostart.is_enabled()
    autostart.set_enabled(False)
    assert not autostart.is_enabled()


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("mity-cost-tray", "mity-cost-tray"),
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("with space", '"with space"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("$HOME", '"\\$HOME"'),
        ("back\\slash", '"back\\\\slash"'),
        ("50%", "50%%"),
        ("", '""'),
    ],
)
def test_exec_quoting(arg: str, quoted: str) -> None:
    assert autostart.quote_arg(arg) == quoted


def test_default_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/local/bin/{name}")
    assert autostart.default_command() == ["/usr/local/bin/mity-cost-tray"]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert autostart.default_command() == [sys.executable, "-m", "mity_cost.app"]
    autostart.enable()
    assert _entry(autostart.entry_path())["Exec"].endswith(" -m mity_cost.app")


def test_unwritable_folder_raises_oserror(isolated_home: Path) -> None:
    (isolated_home / "autostart").write_text("a file where the folder should be")
    with pytest.raises(OSError):
        autostart.enable(["x"])
