from __future__ import annotations

import os
from pathlib import Path

import pytest

from mity_cost.core.desktop import doctor
from mity_cost.core.live import watch_plan


def test_filesystem_type_picks_the_longest_matching_mount(tmp_path: Path) -> None:
    mounts = f"/dev/sda1 / ext4 rw 0 0\nserver:/x {tmp_path} nfs4 rw 0 0\n"
    assert watch_plan.filesystem_type(tmp_path / "sub", mounts) == "nfs4"
    assert watch_plan.filesystem_type(Path("/usr"), mounts) == "ext4"


def test_root_on_a_network_filesystem_is_flagged(example_root: Path) -> None:
    mounts = f"/dev/sda1 / ext4 rw 0 0\nsrv:/share {example_root} cifs rw 0 0\n"
    (check,) = doctor.check_roots([example_root], mounts)
    assert check.status == "warn"
    assert "cifs" in check.advice and "polls" in check.advice
    assert "6 session(s), 3 feature file(s)" in check.detail


def test_missing_and_empty_roots_are_explained(tmp_path: Path, empty_root: Path) -> None:
    missing, empty = doctor.check_roots([tmp_path / "nope", empty_root], "/dev/sda1 / ext4 rw 0 0\n")
    assert missing.status == "warn" and "does not exist" in missing.detail
    assert empty.status == "warn" and "no factory cost files" in empty.advice


def test_inotify_limit_against_watched_folders(
    example_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.path.exists(doctor.INOTIFY_WATCHES):
        pytest.skip("no inotify on this system")
    needed = doctor.count_watch_dirs(example_root)
    assert needed == 14  # .mity, chat, six sessions; two apps with .mity/cost/features
    limit_file = tmp_path / "max_user_watches"
    limit_file.write_text(str(needed + 1))
    monkeypatch.setattr(doctor, "INOTIFY_WATCHES", limit_file)
    check = doctor.check_inotify([example_root])
    assert check.status == "warn"
    assert "sysctl" in check.advice
    limit_file.write_text("1000000")
    assert doctor.check_inotify([example_root]).status == "ok"


def test_socket_folder_must_be_private(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    assert doctor.check_socket_folder(folder).status == "ok"
    os.chmod(folder, 0o755)
    bad = doctor.check_socket_folder(folder)
    assert bad.status == "fail"
    assert "chmod 700" in bad.advice


def test_desktop_checks_explain_gnome_and_missing_notifications() -> None:
    checks = doctor.desktop_checks(
        {"platform": "xcb", "tray": False, "notifications": False}, {"XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}
    )
    tray, notes = checks
    assert tray.status == "warn" and "AppIndicator" in tray.advice
    assert notes.status == "warn" and "notification daemon" in notes.advice
    failed = doctor.desktop_checks("Qt could not start: no display", {})
    assert failed[0].status == "fail" and "libxcb-cursor0" in failed[0].advice


def test_qt_failure_names_the_missing_display() -> None:
    assert "no display" in doctor._qt_failure("qt.qpa.plugin: ...\nAborted\n", {})
    line = "qt.qpa.xcb: could not connect to display :5"
    assert doctor._qt_failure(f"{line}\nmore\n", {"DISPLAY": ":5"}) == line


def test_run_checks_with_a_given_probe(example_root: Path) -> None:
    checks = doctor.run_checks([example_root], probe={"platform": "xcb", "tray": True, "notifications": True})
    names = [c.name for c in checks]
    assert names[:2] == ["system tray", "notifications"]
    assert "versions" in names
    assert all(c.status == "ok" for c in checks if c.name.startswith("root"))
