"""GUI tests: offscreen, and no unexpected modal dialog may ever block a test."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

pytest.importorskip("PySide6")

from PySide6.QtWidgets import QDialog, QMessageBox


@pytest.fixture(autouse=True)
def no_unexpected_modals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test on any blocking ``exec()`` instead of hanging it; tests that expect one patch it."""

    def boom(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"unexpected modal {type(self).__name__}.exec()")

    monkeypatch.setattr(QDialog, "exec", boom)
    monkeypatch.setattr(QMessageBox, "exec", boom)
    for name in ("information", "warning", "critical", "question"):
        monkeypatch.setattr(QMessageBox, name, boom)
