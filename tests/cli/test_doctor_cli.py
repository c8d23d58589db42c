from __future__ import annotations

import json
from pathlib import Path

from tests.cli.cli_helpers import run_cli as run


def test_doctor_json_lists_every_check(example_root: Path) -> None:
    done = run("doctor", "--no-probe", "--json", "--root", str(example_root))
    checks = json.loads(done.stdout)
    assert {c["name"] for c in checks} >= {
        "inotify watches",
        f"root {example_root}",
        "socket folder",
        "versions",
    }
    assert all(set(c) == {"name", "status", "detail", "advice"} for c in checks)
    assert done.returncode == (0 if all(c["status"] == "ok" for c in checks) else 1)


def test_doctor_flags_a_missing_root_and_bad_settings(tmp_path: Path) -> None:
    done = run("doctor", "--no-probe", "--root", str(tmp_path / "gone"), env={"MITY_COST_THRESHOLD": "lots"})
    assert done.returncode == 1
    assert "does not exist" in done.stdout
    assert "MITY_COST_THRESHOLD='lots'" in done.stdout


def test_doctor_without_a_display_explains_it(example_root: Path) -> None:
    env = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    done = run("doctor", "--root", str(example_root), env=env)
    assert done.returncode == 1
    assert "[FAIL] system tray: Qt could not start" in done.stdout
