"""The settings dialog: threshold, currency, roots, warning levels, notifications, autostart
("General"), the budgets ("Budgets") and the spending history's retention ("History").

Non-modal: open it with ``show()`` (or ``open()``), never a blocking ``exec()``.  It saves only what
the user chose (``core.settings.save_settings``); a field an environment variable overrides is shown
with the environment's value, disabled, with a note saying which variable wins, and its saved value is
kept as it was.  The autostart check box writes or removes the XDG autostart entry
(``core.autostart``).  After a save, ``settings_saved`` carries the new effective settings.

Budgets are saved as soon as they are added or removed (``ui.budgets_editor``; ``budgets_changed``
says so).  The history is read and its retention applied on a worker thread (``History`` may wait
for another process's lock, and deleting old records takes a while): the dialog closes once the new
retention is applied.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from mity_cost.core import paths
from mity_cost.core.desktop import autostart
from mity_cost.core.gate.thresholds import parse_levels
from mity_cost.core.money import CURRENCY_SYMBOLS
from mity_cost.core.settings import (
    ENV_CURRENCY,
    ENV_LLM,
    ENV_THRESHOLD,
    Settings,
    apply_environment,
    load_saved,
    save_settings,
)
from mity_cost.ui.budgets_editor import BudgetsEditor

__all__ = ["ENV_VARIABLES", "HistoryInfo", "SettingsDialog"]

log = logging.getLogger(__name__)

ENV_VARIABLES: dict[str, str] = {"threshold": ENV_THRESHOLD, "currency": ENV_CURRENCY, "llm_enabled": ENV_LLM}
"""Which environment variable overrides which setting."""


DEFAULT_RETENTION_DAYS = 365
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class HistoryInfo:
    """What the History tab shows: where the history is, how much it holds, what it keeps."""

    path: Path
    retention_days: int | None
    records: int
    first_day: date | None


def read_history_info(path: Path | None = None) -> HistoryInfo:
    """Open the history and describe it (worker thread; raises ``HistoryError``)."""
    from mity_cost.core.spending.history import History

    with History(path) as history:
        return HistoryInfo(history.path, history.retention_days, history.record_count(), history.first_day())


def apply_retention(days: int | None, path: Path | None = None) -> int:
    """Set the history's retention and apply it now; returns the records deleted (worker thread)."""
    from mity_cost.core.spending.history import History

    with History(path) as history:
        return history.set_retention(days)


class _Runner(QObject):
    """Runs functions one at a time on a worker thread; ``finished`` carries each call's ticket and
    its result (or exception) to the GUI thread.

    The worker holds nothing of the dialog (the dialog keeps what each ticket was for), so it never
    holds the last reference to it; the thread ends when the runner goes away with the dialog.
    """

    finished = Signal(int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mity-settings")
        self._tickets = itertools.count(1)
        self.pending: set[int] = set()
        self.finished.connect(self._settled, Qt.ConnectionType.QueuedConnection)

    def run(self, function: Callable[[], Any]) -> int:
        """Call ``function()`` on the worker; returns the ticket ``finished`` will carry."""
        ticket = next(self._tickets)
        self.pending.add(ticket)
        done = self.finished

        def job() -> None:
            try:
                result: Any = function()
            except Exception as exc:  # noqa: BLE001 - handed over, and shown
                result = exc
            with contextlib.suppress(RuntimeError):  # the dialog was deleted meanwhile
                done.emit(ticket, result)

        self._executor.submit(job)
        return ticket

    @Slot(int, object)
    def _settled(self, ticket: int, _result: object) -> None:
        self.pending.discard(ticket)


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: palette(placeholder-text); font-size: small;")
    return label


class SettingsDialog(QDialog):
    """Edit and save the settings.

    Signals:
        settings_saved: the new effective ``Settings`` (saved values with the environment applied).
        budgets_changed: a budget was added, replaced or removed (saved already).
    """

    settings_saved = Signal(object)
    budgets_changed = Signal()

    def __init__(
        self,
        current: Settings,
        saved: Settings | None = None,
        parent: QWidget | None = None,
        env: Mapping[str, str] | None = None,
        settings_path: Path | None = None,
        roots_from_command_line: bool = False,
        suggestions: Mapping[str, Sequence[str]] | None = None,
        budget_path: Path | None = None,
        history_path: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mityCostSettings")
        self.setWindowTitle("mity-cost settings")
        self.setModal(False)
        self._env = dict(os.environ if env is None else env)
        self._path = settings_path
        self._current = current
        self._saved = saved if saved is not None else load_saved(settings_path)[0]
        self._overridden = set(current.env_overrides)

        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1_000_000.0)
        self.threshold.setDecimals(2)
        self.threshold.setSingleStep(0.25)
        self.currency = QComboBox()
        for code, symbol in CURRENCY_SYMBOLS.items():
            self.currency.addItem(f"{code} ({symbol})", code)
        self.eur_rate = QDoubleSpinBox()
        self.eur_rate.setRange(0.0001, 1000.0)
        self.eur_rate.setDecimals(4)
        self.eur_rate.setSingleStep(0.01)
        self.eur_rate.setPrefix("1 USD = ")
        self.eur_rate.setSuffix(" EUR")
        self.llm = QCheckBox("Count LLM costs in the session total")
        self.roots = QListWidget()
        self.roots.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.roots.setFixedHeight(96)
        self.add_root_button = QPushButton("Add folder…")
        self.remove_root_button = QPushButton("Remove")
        self.levels = QLineEdit()
        self.levels.setPlaceholderText("50, 75, 90, 100")
        self.levels_error = QLabel()
        self.levels_error.setStyleSheet("color: #c62828;")
        self.levels_error.hide()
        self.notifications = QCheckBox("Show desktop notifications (warning levels, budget alerts)")
        self.autostart = QCheckBox("Start mity-cost when I log in")
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #8a5300;")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828;")
        self.error.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.file_dialog: QFileDialog | None = None
        self.env_notes: dict[str, QLabel] = {}

        self.budgets = BudgetsEditor(current.currency, suggestions, budget_path)
        self.budgets.budgets_changed.connect(self.budgets_changed)
        self._history_path = history_path
        self.history_info: HistoryInfo | None = None
        self.retention = QCheckBox("Delete spending records older than")
        self.retention_days = QSpinBox()
        self.retention_days.setRange(1, MAX_RETENTION_DAYS)
        self.retention_days.setValue(DEFAULT_RETENTION_DAYS)
        self.retention_days.setSuffix(" days")
        self.history_status = QLabel("Reading the spending history…")
        self.history_status.setWordWrap(True)
        self.history_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._runner = _Runner(self)
        self._runner.finished.connect(self._background_done)
        self._jobs: dict[int, tuple[str, int | None]] = {}
        self._applying = False
        self.tabs = QTabWidget()

        self._fill()
        self._lay_out(roots_from_command_line)
        self.currency.currentIndexChanged.connect(self._currency_changed)
        self.levels.textChanged.connect(self._validate)
        self.add_root_button.clicked.connect(self.choose_root)
        self.remove_root_button.clicked.connect(self.remove_selected_roots)
        self.roots.itemSelectionChanged.connect(self._selection_changed)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.retention.toggled.connect(self.retention_days.setEnabled)
        self._currency_changed()
        self._selection_changed()
        self._validate()
        self._set_history_enabled(False)
        self._jobs[self._runner.run(lambda: read_history_info(history_path))] = ("read", None)

    # -- building ---------------------------------------------------------------------------------

    def _value(self, name: str) -> object:
        """The value a field starts with: the environment's when it wins, else the saved one."""
        source = self._current if name in self._overridden else self._saved
        return getattr(source, name)

    def _fill(self) -> None:
        self.threshold.setValue(float(self._value("threshold")))  # type: ignore[arg-type]
        self.currency.setCurrentIndex(max(0, self.currency.findData(self._value("currency"))))
        self.eur_rate.setValue(self._saved.eur_per_usd)
        self.llm.setChecked(bool(self._value("llm_enabled")))
        for root in self._saved.roots:
            self.roots.addItem(root)
        self.levels.setText(", ".join(str(v) for v in self._saved.warning_levels))
        self.notifications.setChecked(self._saved.notifications)
        self.autostart.setChecked(autostart.is_enabled())
        if not autostart.supported():
            self.autostart.setEnabled(False)
            self.autostart.setToolTip("Autostart entries are written on Linux (XDG) desktops only.")
        problems = self._current.problems
        self.problems.setText("\n".join(f"⚠ {p}" for p in problems))
        self.problems.setVisible(bool(problems))

    def _field(
        self, form: QFormLayout, label: str, widget: QWidget | QLayout, name: str | None = None
    ) -> None:
        """A form row; when the environment overrides ``name``, the field is disabled and a note says so.

        Notes are rows of their own: a word-wrapped label nested in a field's layout gets too little
        height on some platforms (height-for-width), and the rows overlap.
        """
        form.addRow(label, widget)
        if name is None or name not in self._overridden:
            return
        variable = ENV_VARIABLES[name]
        if isinstance(widget, QWidget):
            widget.setEnabled(False)
        note = _note(
            f"Set by {variable}={self._env.get(variable, '')!s}: the environment wins over this setting."
        )
        self.env_notes[name] = note
        form.addRow("", note)

    def _lay_out(self, roots_from_command_line: bool) -> None:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setVerticalSpacing(6)
        self._field(form, "Confirmation threshold:", self.threshold, "threshold")
        self._field(form, "Display currency:", self.currency, "currency")
        self._field(form, "Conversion rate:", self.eur_rate)
        self._field(form, "LLM costs:", self.llm, "llm_enabled")
        form.addRow("Factory roots:", self.roots)
        row = QHBoxLayout()
        row.addWidget(self.add_root_button)
        row.addWidget(self.remove_root_button)
        row.addStretch(1)
        form.addRow("", row)
        hint = "With no folder here, the folder mity-cost starts in is watched."
        if roots_from_command_line:
            hint = "Folders given with --root on the command line win for this run."
        form.addRow("", _note(hint))
        form.addRow("Warning levels (%):", self.levels)
        form.addRow("", self.levels_error)
        form.addRow("", _note("Percentages of the threshold; each warns once per session."))
        form.addRow("", self.notifications)
        form.addRow("", self.autostart)
        general = QWidget()
        general_layout = QVBoxLayout(general)
        general_layout.addLayout(form)
        general_layout.addStretch(1)
        general_layout.addWidget(_note(f"Saved in {self._path or paths.settings_file()}"))
        self.tabs.addTab(general, "General")
        self.tabs.addTab(self.budgets, "Budgets")
        self.tabs.addTab(self._history_tab(), "History")
        layout = QVBoxLayout(self)
        layout.addWidget(self.problems)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)

    def _history_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        row = QHBoxLayout()
        row.addWidget(self.retention)
        row.addWidget(self.retention_days)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(
            _note(
                "Unchecked, every record is kept. Reports, budgets and forecasts only see what the "
                "history keeps; the change is applied when you save, and deleted records cannot be "
                "brought back."
            )
        )
        layout.addSpacing(8)
        layout.addWidget(self.history_status)
        layout.addStretch(1)
        return tab

    def show_tab(self, name: str) -> None:
        """Bring a tab forward: ``general``, ``budgets`` or ``history``."""
        for index in range(self.tabs.count()):
            if self.tabs.tabText(index).lower() == name.lower():
                self.tabs.setCurrentIndex(index)
                return

    def showEvent(self, event: QShowEvent) -> None:
        """Make room for the word-wrapped notes (Qt does not enforce height-for-width on windows)."""
        super().showEvent(event)
        layout = self.layout()
        if layout is not None and layout.hasHeightForWidth():
            needed = layout.totalHeightForWidth(self.width())
            if self.height() < needed:
                self.resize(self.width(), needed)

    # -- behaviour --------------------------------------------------------------------------------

    def _set_history_enabled(self, enabled: bool) -> None:
        self.retention.setEnabled(enabled)
        self.retention_days.setEnabled(enabled and self.retention.isChecked())

    def _history_read(self, result: HistoryInfo | Exception) -> None:
        if isinstance(result, Exception):
            log.warning("settings: the spending history cannot be read: %s", result)
            self.history_status.setText(f"⚠ The spending history cannot be used: {result}")
            self.history_status.setStyleSheet("color: #c62828;")
            return
        self.history_info = result
        days = result.retention_days
        self.retention.setChecked(days is not None)
        if days is not None:
            self.retention_days.setValue(days)
        since = f" since {result.first_day.isoformat()}" if result.first_day else ""
        plural = "" if result.records == 1 else "s"
        self.history_status.setText(f"{result.records:,} record{plural}{since}, in {result.path}")
        self.history_status.setStyleSheet("")
        self._set_history_enabled(True)

    @property
    def history_ready(self) -> bool:
        """True once the history was read (the retention can be changed)."""
        return self.history_info is not None

    def chosen_retention(self) -> int | None:
        """The retention the History tab shows: days, or ``None`` to keep everything."""
        return self.retention_days.value() if self.retention.isChecked() else None

    @property
    def busy(self) -> bool:
        """True while the history is read or the retention applied."""
        return bool(self._runner.pending) or bool(self._jobs)

    @Slot()
    def _currency_changed(self) -> None:
        code = str(self.currency.currentData())
        self.threshold.setPrefix(CURRENCY_SYMBOLS.get(code, ""))

    @Slot()
    def _selection_changed(self) -> None:
        self.remove_root_button.setEnabled(bool(self.roots.selectedItems()))

    @Slot()
    def _validate(self) -> bool:
        result = parse_levels(self.levels.text())
        ok = not isinstance(result, str)
        self.levels_error.setText("" if ok else str(result))
        self.levels_error.setVisible(not ok)
        save = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        save.setEnabled(ok)
        return ok

    @Slot()
    def choose_root(self) -> None:
        """Ask for a folder to add (a non-blocking file dialog)."""
        dialog = QFileDialog(self, "Add a factory root")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.fileSelected.connect(self.add_root)
        self.file_dialog = dialog
        dialog.open()

    @Slot(str)
    def add_root(self, folder: str) -> None:
        """Add a folder to the roots (ignored when already there or empty)."""
        text = str(Path(folder).expanduser()) if folder else ""
        if text and text not in self.root_list():
            self.roots.addItem(text)

    @Slot()
    def remove_selected_roots(self) -> None:
        """Remove the selected folders."""
        for item in self.roots.selectedItems():
            self.roots.takeItem(self.roots.row(item))

    def root_list(self) -> list[str]:
        """The roots as listed."""
        return [self.roots.item(i).text() for i in range(self.roots.count())]

    def chosen(self) -> Settings:
        """The settings to save: the fields' values, saved values kept where the environment wins."""
        levels = parse_levels(self.levels.text())
        values: dict[str, object] = {
            "eur_per_usd": round(self.eur_rate.value(), 6),
            "roots": tuple(self.root_list()),
            "warning_levels": levels if not isinstance(levels, str) else self._saved.warning_levels,
            "notifications": self.notifications.isChecked(),
            "autostart": self.autostart.isChecked(),
        }
        if "threshold" not in self._overridden:
            values["threshold"] = round(self.threshold.value(), 2)
        if "currency" not in self._overridden:
            values["currency"] = str(self.currency.currentData())
        if "llm_enabled" not in self._overridden:
            values["llm_enabled"] = self.llm.isChecked()
        return replace(self._saved, **values, env_overrides=frozenset(), problems=())  # type: ignore[arg-type]

    @Slot()
    def save(self) -> bool:
        """Save, apply autostart, announce the new settings and close; False (dialog stays) on failure."""
        if not self._validate():
            return False
        chosen = self.chosen()
        try:
            save_settings(chosen, self._path)
        except OSError as exc:
            self._fail(f"Could not save the settings: {exc}")
            return False
        if self.autostart.isEnabled() and chosen.autostart != autostart.is_enabled():
            try:
                autostart.set_enabled(chosen.autostart)
            except OSError as exc:
                self._fail(f"Settings saved, but the autostart entry could not be changed: {exc}")
                self._saved = chosen
                return False
        log.info("settings saved: %s", chosen.to_saved())
        self._saved = chosen
        self.settings_saved.emit(apply_environment(chosen, self._env))
        info = self.history_info
        days = self.chosen_retention()
        if info is not None and days != info.retention_days:
            self._apply_retention(days)
            return True
        self.accept()
        return True

    def _apply_retention(self, days: int | None) -> None:
        """Apply a new retention on the worker; the dialog closes when it is done, stays on failure."""
        self._applying = True
        self.buttons.setEnabled(False)
        self._set_history_enabled(False)
        self.history_status.setText("Applying the new retention…")
        path = self._history_path
        self._jobs[self._runner.run(lambda: apply_retention(days, path))] = ("retention", days)

    @Slot(int, object)
    def _background_done(self, ticket: int, result: object) -> None:
        job = self._jobs.pop(ticket, None)
        if job is None:
            return
        what, days = job
        if what == "read":
            self._history_read(result)  # type: ignore[arg-type]
        else:
            self._retention_done(days, result)  # type: ignore[arg-type]

    def _retention_done(self, days: int | None, result: int | Exception) -> None:
        self._applying = False
        self.buttons.setEnabled(True)
        if isinstance(result, Exception):
            self._set_history_enabled(True)
            self.show_tab("history")
            self._fail(f"Settings saved, but the history's retention could not be changed: {result}")
            return
        log.info("history retention set to %s (%d old record(s) deleted)", days or "keep all", result)
        if self.history_info is not None:
            self.history_info = replace(self.history_info, retention_days=days)
        self.accept()

    def _fail(self, message: str) -> None:
        log.warning("%s", message)
        self.error.setText(message)
        self.error.show()
