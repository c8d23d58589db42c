"""The settings dialog: threshold, currency, roots, warning levels, notifications, autostart.

Non-modal: open it with ``show()`` (or ``open()``), never a blocking ``exec()``.  It saves only what
the user chose (``core.settings.save_settings``); a field an environment variable overrides is shown
with the environment's value, disabled, with a note saying which variable wins, and its saved value is
kept as it was.  The autostart check box writes or removes the XDG autostart entry
(``core.autostart``).  After a save, ``settings_saved`` carries the new effective settings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
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
    QVBoxLayout,
    QWidget,
)

from mity_cost.core import autostart, paths
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

log = logging.getLogger(__name__)

ENV_VARIABLES: dict[str, str] = {"threshold": ENV_THRESHOLD, "currency": ENV_CURRENCY, "llm_enabled": ENV_LLM}
"""Which environment variable overrides which setting."""


def parse_levels(text: str) -> tuple[int, ...] | str:
    """``"50, 75, 90, 100"`` as sorted whole percentages, or a message saying what is wrong."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        return "give at least one level, e.g. 50, 75, 90, 100"
    levels: set[int] = set()
    for part in parts:
        try:
            value = int(part.strip().rstrip("%"))
        except ValueError:
            return f"{part!r} is not a whole percentage"
        if not 0 < value <= 1000:
            return f"{value} is outside 1–1000 %"
        levels.add(value)
    return tuple(sorted(levels))


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: palette(placeholder-text); font-size: small;")
    return label


class SettingsDialog(QDialog):
    """Edit and save the settings.

    Signals:
        settings_saved: the new effective ``Settings`` (saved values with the environment applied).
    """

    settings_saved = Signal(object)

    def __init__(
        self,
        current: Settings,
        saved: Settings | None = None,
        parent: QWidget | None = None,
        env: Mapping[str, str] | None = None,
        settings_path: Path | None = None,
        roots_from_command_line: bool = False,
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
        self.notifications = QCheckBox("Show desktop notifications at the warning levels")
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

        self._fill()
        self._lay_out(roots_from_command_line)
        self.currency.currentIndexChanged.connect(self._currency_changed)
        self.levels.textChanged.connect(self._validate)
        self.add_root_button.clicked.connect(self.choose_root)
        self.remove_root_button.clicked.connect(self.remove_selected_roots)
        self.roots.itemSelectionChanged.connect(self._selection_changed)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self._currency_changed()
        self._selection_changed()
        self._validate()

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
        layout = QVBoxLayout(self)
        layout.addWidget(self.problems)
        layout.addLayout(form)
        layout.addWidget(_note(f"Saved in {self._path or paths.settings_file()}"))
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(480)

    def showEvent(self, event: QShowEvent) -> None:
        """Make room for the word-wrapped notes (Qt does not enforce height-for-width on windows)."""
        super().showEvent(event)
        layout = self.layout()
        if layout is not None and layout.hasHeightForWidth():
            needed = layout.totalHeightForWidth(self.width())
            if self.height() < needed:
                self.resize(self.width(), needed)

    # -- behaviour --------------------------------------------------------------------------------

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
        self.accept()
        return True

    def _fail(self, message: str) -> None:
        log.warning("%s", message)
        self.error.setText(message)
        self.error.show()
