"""The settings dialog: non-modal, saves only what the user chose, the environment wins and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QFileDialog
from pytestqt.qtbot import QtBot

from mity_cost.core import autostart, paths
from mity_cost.core.settings import Settings, load_saved, load_settings, save_settings
from mity_cost.ui import settings_dialog as module
from mity_cost.ui.settings_dialog import SettingsDialog, parse_levels


def _dialog(qtbot: QtBot, env: dict[str, str] | None = None, **kwargs: object) -> SettingsDialog:
    current = load_settings(env=env or {})
    dialog = SettingsDialog(current, env=env or {}, **kwargs)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _save_button(dialog: SettingsDialog) -> object:
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Save)


def test_opens_non_modal_with_the_saved_values(qtbot: QtBot, tmp_path: Path) -> None:
    save_settings(
        Settings(
            threshold=2.5, currency="EUR", eur_per_usd=0.9, roots=(str(tmp_path),), warning_levels=(60, 90)
        )
    )
    dialog = _dialog(qtbot)
    assert dialog.isVisible() and not dialog.isModal()
    assert dialog.threshold.value() == 2.5
    assert dialog.threshold.prefix() == "€"
    assert dialog.currency.currentData() == "EUR"
    assert dialog.eur_rate.value() == 0.9
    assert dialog.root_list() == [str(tmp_path)]
    assert dialog.levels.text() == "60, 90"
    assert dialog.notifications.isChecked() and not dialog.autostart.isChecked()
    assert not dialog.env_notes
    assert str(paths.settings_file()) in " ".join(w.text() for w in dialog.findChildren(type(dialog.error)))


def test_save_writes_the_file_and_announces_the_settings(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = _dialog(qtbot)
    dialog.threshold.setValue(3.25)
    dialog.currency.setCurrentIndex(dialog.currency.findData("EUR"))
    dialog.eur_rate.setValue(0.8)
    dialog.llm.setChecked(False)
    dialog.levels.setText("90, 50 75%")
    dialog.notifications.setChecked(False)
    dialog.add_root(str(tmp_path))
    with qtbot.waitSignal(dialog.settings_saved) as blocker:
        _save_button(dialog).click()  # type: ignore[attr-defined]
    saved, problems = load_saved()
    assert problems == []
    assert (saved.threshold, saved.currency, saved.eur_per_usd, saved.llm_enabled) == (
        3.25,
        "EUR",
        0.8,
        False,
    )
    assert saved.warning_levels == (50, 75, 90)
    assert saved.notifications is False
    assert saved.roots == (str(tmp_path),)
    effective = blocker.args[0]
    assert isinstance(effective, Settings) and effective == saved
    assert not dialog.isVisible()


def test_environment_wins_and_the_dialog_says_so(qtbot: QtBot) -> None:
    save_settings(Settings(threshold=2.0, currency="USD", llm_enabled=True))
    env = {"MITY_COST_THRESHOLD": "5", "MITY_COST_CURRENCY": "eur", "MITY_COST_LLM_ENABLED": "no"}
    dialog = _dialog(qtbot, env)
    for name, widget in (
        ("threshold", dialog.threshold),
        ("currency", dialog.currency),
        ("llm_enabled", dialog.llm),
    ):
        assert not widget.isEnabled()
        assert name in dialog.env_notes
    assert "MITY_COST_THRESHOLD=5" in dialog.env_notes["threshold"].text()
    assert "environment wins" in dialog.env_notes["threshold"].text()
    assert dialog.threshold.value() == 5.0
    assert dialog.currency.currentData() == "EUR"
    assert not dialog.llm.isChecked()
    dialog.notifications.setChecked(False)
    with qtbot.waitSignal(dialog.settings_saved) as blocker:
        assert dialog.save()
    saved, _ = load_saved()
    # the saved values stay what they were; only the user's edit is saved
    assert (saved.threshold, saved.currency, saved.llm_enabled, saved.notifications) == (
        2.0,
        "USD",
        True,
        False,
    )
    effective = blocker.args[0]
    assert (effective.threshold, effective.currency, effective.llm_enabled) == (5.0, "EUR", False)
    assert effective.env_overrides == {"threshold", "currency", "llm_enabled"}


def test_settings_problems_are_shown(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot, {"MITY_COST_CURRENCY": "GBP"})
    assert dialog.problems.isVisible()
    assert "GBP" in dialog.problems.text()


def test_bad_warning_levels_block_saving(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot)
    dialog.levels.setText("50, lots")
    assert not _save_button(dialog).isEnabled()  # type: ignore[attr-defined]
    assert dialog.levels_error.isVisible() and "lots" in dialog.levels_error.text()
    assert dialog.save() is False
    assert not paths.settings_file().exists()
    dialog.levels.setText("75")
    assert _save_button(dialog).isEnabled()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("50, 75, 90, 100", (50, 75, 90, 100)),
        ("100;50 50", (50, 100)),
        ("80%", (80,)),
        ("", "give at least one level, e.g. 50, 75, 90, 100"),
        ("0", "0 is outside 1–1000 %"),
        ("5000", "5000 is outside 1–1000 %"),
        ("1.5", "'1.5' is not a whole percentage"),
    ],
)
def test_parse_levels(text: str, result: object) -> None:
    assert parse_levels(text) == result


def test_roots_add_and_remove(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = _dialog(qtbot)
    assert not dialog.remove_root_button.isEnabled()
    dialog.add_root(str(tmp_path / "a"))
    dialog.add_root(str(tmp_path / "a"))
    dialog.add_root("")
    dialog.add_root(str(tmp_path / "b"))
    assert dialog.root_list() == [str(tmp_path / "a"), str(tmp_path / "b")]
    dialog.roots.setCurrentRow(0)
    assert dialog.remove_root_button.isEnabled()
    dialog.remove_root_button.click()
    assert dialog.root_list() == [str(tmp_path / "b")]


def test_choosing_a_root_uses_a_non_blocking_file_dialog(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = _dialog(qtbot)
    dialog.add_root_button.click()
    chooser = dialog.file_dialog
    assert isinstance(chooser, QFileDialog)
    assert chooser.isVisible()
    assert chooser.fileMode() == QFileDialog.FileMode.Directory
    chooser.fileSelected.emit(str(tmp_path))
    assert dialog.root_list() == [str(tmp_path)]
    chooser.reject()


def test_autostart_toggle_writes_and_removes_the_entry(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot)
    dialog.autostart.setChecked(True)
    assert dialog.save()
    assert autostart.is_enabled()
    assert load_saved()[0].autostart is True
    again = _dialog(qtbot)
    assert again.autostart.isChecked()
    again.autostart.setChecked(False)
    assert again.save()
    assert not autostart.is_enabled()


def test_autostart_follows_the_file_not_the_setting(qtbot: QtBot) -> None:
    save_settings(Settings(autostart=True))  # the user deleted the entry by hand since
    assert not _dialog(qtbot).autostart.isChecked()


def test_a_failed_save_keeps_the_dialog_open(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(settings: Settings, path: Path | None = None) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(module, "save_settings", fail)
    dialog = _dialog(qtbot)
    with qtbot.assertNotEmitted(dialog.settings_saved):
        assert dialog.save() is False
    assert dialog.isVisible()
    assert dialog.error.isVisible() and "Permission denied" in dialog.error.text()


def test_a_failed_autostart_change_is_reported(qtbot: QtBot, isolated_home: Path) -> None:
    (isolated_home / "autostart").write_text("not a folder")
    dialog = _dialog(qtbot)
    dialog.autostart.setChecked(True)
    assert dialog.save() is False
    assert "autostart" in dialog.error.text()
    assert load_saved()[0].autostart is True  # the rest was saved


def test_cancel_saves_nothing(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot)
    dialog.threshold.setValue(9.0)
    with qtbot.assertNotEmitted(dialog.settings_saved):
        dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()
    assert not paths.settings_file().exists()
    assert not dialog.isVisible()


def test_command_line_roots_note(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot, roots_from_command_line=True)
    labels = " ".join(w.text() for w in dialog.findChildren(type(dialog.error)))
    assert "--root" in labels
