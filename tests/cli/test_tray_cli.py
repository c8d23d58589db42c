"""``mity-cost tray``: runs ``python -m mity_cost.app`` in place of the command line (never imports it)."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from mity_cost import cli
from mity_cost.cli import tray as tray_cli

SOURCE = Path(tray_cli.__file__)


class Replaced(Exception):
    """What the fake ``os.execv`` raises instead of replacing the test process."""


@pytest.fixture
def execv(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake(path: str, argv: list[str]) -> None:
        calls.append([path, *argv])
        raise Replaced

    monkeypatch.setattr(os, "execv", fake)
    return calls


def test_tray_replaces_the_process_with_the_app(execv: list[list[str]], tmp_path: Path) -> None:
    with pytest.raises(Replaced):
        cli.main(["tray", "--demo", "--root", str(tmp_path), "--root", "rel"])
    path, *argv = execv[0]
    assert path == sys.executable
    assert argv == [
        sys.executable,
        "-m",
        "mity_cost.app",
        "--demo",
        "--root",
        str(tmp_path),
        "--root",
        str(Path("rel").resolve()),
    ]


def test_test_options_pass_through(execv: list[list[str]]) -> None:
    with pytest.raises(Replaced):
        cli.main(["tray", "--no-dialogs", "--quit-after", "2", "--verbose"])
    assert execv[0][-4:] == ["--no-dialogs", "--quit-after", "2.0", "--verbose"]


def test_plain_tray(execv: list[list[str]]) -> None:
    with pytest.raises(Replaced):
        cli.main(["tray"])
    assert execv[0][1:] == [sys.executable, "-m", "mity_cost.app"]


def test_the_command_line_never_imports_the_gui() -> None:
    tree = ast.parse(SOURCE.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {n for n in names if n.startswith(("PySide6", "mity_cost.ui", "mity_cost.app"))}
    assert names <= {"__future__", "argparse", "os", "subprocess", "sys", "typing"}
