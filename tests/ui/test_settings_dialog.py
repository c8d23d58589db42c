"""The settings dialog: non-modal, saves only what the user chose, the environment wins and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QFileDialog
from pytestqt.qtbot import QtBot

from mity_cost.core import paths
from mity_cost.core.desktop import autostart
from mity_cost.core.settings import Settings, load_saved, load_settings, save_settings
from mity_cost.core.spending.budgets import Budget, BudgetError, add_budget, budgets_path, load_budgets
from mity_cost.core.spending.history import History, HistoryError, default_path
from mity_cost.ui import settings_dialog as module
from mity_cost.ui.budgets_editor import BudgetsEditor, budget_suggestions
from mity_cost.ui.settings_dialog import SettingsDialog


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


# -- budgets tab ------------------------------------------------------------------------------------


def _ready(qtbot: QtBot, dialog: SettingsDialog) -> SettingsDialog:
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    return dialog


def _fill(editor: BudgetsEditor, scope: str, target: str, **fields: object) -> None:
    editor.scope.setCurrentIndex(editor.scope.findData(scope))
    editor.target.setEditText(target)
    if "period" in fields:
        editor.period.setCurrentIndex(editor.period.findData(fields["period"]))
    if "amount" in fields:
        editor.amount.setValue(float(fields["amount"]))  # type: ignore[arg-type]
    if "currency" in fields:
        editor.currency.setCurrentIndex(editor.currency.findData(fields["currency"]))
    if "enforcement" in fields:
        editor.enforcement.setCurrentIndex(editor.enforcement.findData(fields["enforcement"]))
    if "levels" in fields:
        editor.levels.setText(str(fields["levels"]))


def test_budgets_tab_lists_the_saved_budgets(qtbot: QtBot) -> None:
    add_budget(Budget("app", "shop-api", "month", 50.0, enforcement="hard_stop"))
    add_budget(Budget("overall", None, "day", 5.0, currency="EUR", warning_levels=(80,)))
    dialog = _dialog(qtbot)
    dialog.show_tab("budgets")
    assert dialog.tabs.currentWidget() is dialog.budgets
    table = dialog.budgets.table
    rows = [
        [item.text() if (item := table.item(r, c)) else "" for c in range(table.columnCount())]
        for r in range(table.rowCount())
    ]
    assert rows == [
        ["App shop-api, per month", "$50.00", "Hard stop", "50 %, 75 %, 90 %, 100 %"],
        ["Everything, per day", "€5.00", "Warn only", "80 %"],
    ]
    assert dialog.budgets.empty.isHidden() and not dialog.budgets.table.isHidden()


def test_adding_a_budget_saves_it_at_once(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot)
    editor = dialog.budgets
    assert not editor.empty.isHidden() and editor.table.rowCount() == 0
    _fill(
        editor,
        "app",
        "shop-api",
        period="month",
        amount=20,
        enforcement="require_confirmation",
        levels="60 90",
    )
    with qtbot.waitSignal(dialog.budgets_changed):
        assert editor.add()
    (saved,) = load_budgets().budgets
    assert saved == Budget("app", "shop-api", "month", 20.0, "USD", "require_confirmation", (60, 90))
    assert editor.table.rowCount() == 1 and editor.selected_ids() == [saved.id]
    assert editor.message.property("error") is False
    assert (
        editor.message.text()
        == "Added app:shop-api:month: $20.00 for app shop-api, per month (ask to confirm)."
    )
    editor.amount.setValue(30)
    assert editor.message.isHidden()  # an edit clears the last message
    _fill(editor, "app", "shop-api", period="month", amount=30)
    assert editor.add()
    assert [b.amount for b in load_budgets().budgets] == [30.0]
    assert "Replaced" in editor.message.text()


def test_budget_validation_messages_come_from_the_budget(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot)  # held: qtbot keeps only a weak reference
    editor = dialog.budgets
    _fill(editor, "app", "")
    with pytest.raises(BudgetError) as expected:
        Budget("app", None, "month", 50.0)
    with qtbot.assertNotEmitted(editor.budgets_changed):
        assert editor.add() is False
    assert editor.message.property("error") is True
    assert editor.message.text().lower().rstrip(".") == str(expected.value).lower()
    _fill(editor, "agent", "Implementer", levels="50, lots")
    assert editor.add() is False and "lots" in editor.message.text()
    assert load_budgets().budgets == ()


def test_overall_budgets_take_no_target(qtbot: QtBot) -> None:
    dialog = _dialog(qtbot)  # held: qtbot keeps only a weak reference
    editor = dialog.budgets
    _fill(editor, "overall", "", period="week", amount=100, currency="EUR")
    assert not editor.target.isEnabled()
    assert editor.amount.prefix() == "€"
    assert editor.add()
    assert load_budgets().budgets == (Budget("overall", None, "week", 100.0, "EUR"),)


def test_removing_budgets(qtbot: QtBot) -> None:
    for app in ("a", "b", "c"):
        add_budget(Budget("app", app, "month", 10.0))
    dialog = _dialog(qtbot)  # held: qtbot keeps only a weak reference
    editor = dialog.budgets
    assert not editor.remove_button.isEnabled()
    editor.select("app:b:month")
    assert editor.remove_button.isEnabled()
    with qtbot.waitSignal(editor.budgets_changed):
        editor.remove_button.click()
    assert [b.target for b in load_budgets().budgets] == ["a", "c"]
    assert [b.target for b in editor.budgets] == ["a", "c"]
    assert "Removed app:b:month" in editor.message.text()


def test_a_broken_budgets_file_is_shown_and_kept(qtbot: QtBot) -> None:
    budgets_path().parent.mkdir(parents=True, exist_ok=True)
    budgets_path().write_text("{ broken")
    dialog = _dialog(qtbot)  # held: qtbot keeps only a weak reference
    editor = dialog.budgets
    assert not editor.problems.isHidden() and "could not be read" in editor.problems.text()
    _fill(editor, "app", "shop-api")
    assert editor.add() is False
    assert "not rewriting" in editor.message.text()
    assert budgets_path().read_text() == "{ broken"


def test_target_suggestions_follow_the_scope(qtbot: QtBot, example_root: Path) -> None:
    from tests.ui.tray_helpers import root_snapshot

    suggestions = budget_suggestions(root_snapshot(example_root))
    assert suggestions["app"] == ("landing", "shop-api")
    assert "unknown:gpt-4o" in suggestions["model"] and "gpt5mini" in suggestions["model"]
    assert len(suggestions["session"]) == 6
    dialog = _dialog(qtbot, suggestions=suggestions)  # held: qtbot keeps only a weak reference
    editor = dialog.budgets
    _fill(editor, "app", "")
    assert [editor.target.itemText(i) for i in range(editor.target.count())] == ["landing", "shop-api"]
    assert editor.target.currentText() == ""
    _fill(editor, "provider", "")
    assert editor.target.count() == 4
    assert budget_suggestions(None)["app"] == ()


# -- history tab ------------------------------------------------------------------------------------


def test_retention_is_read_and_applied_on_save(qtbot: QtBot) -> None:
    from datetime import datetime, timedelta

    from tests.core.history_helpers import row

    now = datetime.now().astimezone()
    with History() as history:
        history.ingest_rows([row("old", now - timedelta(days=90), 1.0), row("new", now, 2.0)], now)
    dialog = _ready(qtbot, _dialog(qtbot))
    assert dialog.history_ready and not dialog.retention.isChecked()
    assert not dialog.retention_days.isEnabled()
    assert "2 records since" in dialog.history_status.text()
    dialog.retention.setChecked(True)
    dialog.retention_days.setValue(30)
    assert dialog.save()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10_000)
    with History() as history:
        assert history.retention_days == 30
        assert [r.uid for r in history.records()] == ["new"]
    again = _ready(qtbot, _dialog(qtbot))
    assert again.retention.isChecked() and again.retention_days.value() == 30
    again.retention.setChecked(False)
    assert again.save()
    qtbot.waitUntil(lambda: not again.isVisible(), timeout=10_000)
    with History() as history:
        assert history.retention_days is None


def test_unchanged_retention_closes_at_once(qtbot: QtBot) -> None:
    dialog = _ready(qtbot, _dialog(qtbot))
    assert dialog.save()
    assert not dialog.isVisible()


def test_a_broken_history_is_shown_and_saving_still_works(qtbot: QtBot) -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"garbage, not sqlite " * 100)
    dialog = _ready(qtbot, _dialog(qtbot))
    assert not dialog.history_ready and not dialog.retention.isEnabled()
    assert "cannot be used" in dialog.history_status.text()
    dialog.threshold.setValue(4.0)
    assert dialog.save() and not dialog.isVisible()
    assert load_saved()[0].threshold == 4.0


def test_a_failed_retention_change_keeps_the_dialog_open(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(days: int | None, path: Path | None = None) -> int:
        raise HistoryError("the history is busy or unusable: database is locked")

    monkeypatch.setattr(module, "apply_retention", fail)
    dialog = _ready(qtbot, _dialog(qtbot))
    dialog.retention.setChecked(True)
    assert dialog.save()
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=10_000)
    assert dialog.isVisible() and "database is locked" in dialog.error.text()
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "History"
    assert dialog.buttons.isEnabled() and dialog.retention.isEnabled()
