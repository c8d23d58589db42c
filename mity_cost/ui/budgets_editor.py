"""The settings dialog's "Budgets" tab: the saved budgets, adding one, removing some.

It edits the same ``budgets.json`` as ``mity-cost budget add|list|remove`` (``core.budgets``), and
saves each change at once (a budget is not a preference the dialog's Cancel could take back).  What a
budget may be is ``core.budgets.Budget``'s to say: its own validation messages are shown as they are.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mity_cost.core.factory.layout import WORKSPACES_DIR, safe_name
from mity_cost.core.gate.thresholds import parse_levels
from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.money import CURRENCY_SYMBOLS, money_in
from mity_cost.core.settings import DEFAULT_WARNING_LEVELS
from mity_cost.core.spending.budgets import (
    ENFORCEMENTS,
    PERIODS,
    SCOPES,
    Budget,
    BudgetError,
    add_budget,
    budgets_path,
    load_budgets,
    remove_budget,
)
from mity_cost.core.spending.history import CURRENCIES, app_from_runtime, model_text

log = logging.getLogger(__name__)

ENFORCEMENT_LABELS: dict[str, str] = {
    "warn": "Warn only",
    "require_confirmation": "Ask to confirm",
    "hard_stop": "Hard stop",
}
ENFORCEMENT_HELP: dict[str, str] = {
    "warn": "Alerts and notifications only.",
    "require_confirmation": "mity-cost gate asks, and the tray shows its confirmation dialog.",
    "hard_stop": "mity-cost gate and check-threshold refuse to go on.",
}
SCOPE_LABELS: dict[str, str] = {
    "overall": "Everything",
    "app": "One app",
    "session": "A session",
    "agent": "One agent",
    "model": "One model",
    "provider": "One provider",
}
TARGET_HINTS: dict[str, str] = {
    "overall": "(everything: no target)",
    "app": "app folder under workspaces/, e.g. shop-api",
    "session": "a session id; empty: each session",
    "agent": "agent name, e.g. Implementer",
    "model": "model, e.g. gpt5mini or unknown:gpt-4o",
    "provider": "openai, anthropic, other or compute",
}
PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "other", "compute")
MAX_SUGGESTIONS = 50
_ERROR_STYLE = "color: #c62828;"
_DONE_STYLE = "color: #2e7d32;"


def budget_suggestions(snapshot: Snapshot | None) -> dict[str, tuple[str, ...]]:
    """Known targets per scope, from what the app watches: apps, sessions, agents, models, providers."""
    apps: set[str] = set()
    sessions: list[str] = []
    agents: set[str] = set()
    models: set[str] = set()
    if snapshot is not None:
        apps.update(f.app for f in snapshot.features)
        for root in snapshot.roots:
            with contextlib.suppress(OSError), os.scandir(root / WORKSPACES_DIR) as entries:
                apps.update(e.name for e in entries if safe_name(e.name) and e.is_dir())
        for view in snapshot.sessions:
            sessions.append(view.session_id)
            app = app_from_runtime(view.runtime)
            if app:
                apps.add(app)
            if view.loaded is None:
                continue
            for record in view.loaded.doc["llmUsage"]:
                agent = record.get("agent")
                if isinstance(agent, str) and agent:
                    agents.add(agent)
                model = model_text(record.get("model"))
                if model:
                    models.add(model)
    return {
        "app": tuple(sorted(apps))[:MAX_SUGGESTIONS],
        "session": tuple(dict.fromkeys(sessions))[:MAX_SUGGESTIONS],
        "agent": tuple(sorted(agents))[:MAX_SUGGESTIONS],
        "model": tuple(sorted(models))[:MAX_SUGGESTIONS],
        "provider": PROVIDERS,
    }


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: palette(placeholder-text); font-size: small;")
    return label


def _item(text: str, tooltip: str = "", right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if tooltip:
        item.setToolTip(tooltip)
    if right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class BudgetsEditor(QWidget):
    """List, add and remove budgets; each change is saved at once.

    Signals:
        budgets_changed: a budget was added, replaced or removed.
    """

    budgets_changed = Signal()

    def __init__(
        self,
        currency: str = "USD",
        suggestions: Mapping[str, Sequence[str]] | None = None,
        budget_path: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._path = budget_path
        self._suggestions = {k: tuple(v) for k, v in (suggestions or {}).items()}
        self._budgets: tuple[Budget, ...] = ()

        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #8a5300;")
        self.problems.hide()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Budget", "Amount", "When over", "Warns at"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(120)
        self.empty = _note("No budgets yet: add one below, or with mity-cost budget add.")
        self.remove_button = QPushButton("Remove selected")
        self.remove_button.setToolTip("Remove the selected budgets (saved at once)")

        self.scope = QComboBox()
        for scope in SCOPES:
            self.scope.addItem(SCOPE_LABELS.get(scope, scope), scope)
        self.target = QComboBox()
        self.target.setEditable(True)
        self.target.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.target.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.target.setMinimumContentsLength(24)
        self.period = QComboBox()
        for period in PERIODS:
            self.period.addItem("Per session" if period == "session" else f"Per {period}", period)
        self.period.setCurrentIndex(max(0, self.period.findData("month")))
        self.amount = QDoubleSpinBox()
        self.amount.setRange(0.0, 1_000_000_000.0)
        self.amount.setDecimals(2)
        self.amount.setSingleStep(1.0)
        self.amount.setValue(50.0)
        self.currency = QComboBox()
        for code in CURRENCIES:
            self.currency.addItem(code, code)
        self.currency.setCurrentIndex(max(0, self.currency.findData(currency)))
        self.enforcement = QComboBox()
        for enforcement in ENFORCEMENTS:
            self.enforcement.addItem(ENFORCEMENT_LABELS.get(enforcement, enforcement), enforcement)
            self.enforcement.setItemData(
                self.enforcement.count() - 1,
                ENFORCEMENT_HELP.get(enforcement, ""),
                Qt.ItemDataRole.ToolTipRole,
            )
        self.enforcement_help = _note("")
        self.levels = QLineEdit(", ".join(str(v) for v in DEFAULT_WARNING_LEVELS))
        self.levels.setPlaceholderText("50, 75, 90, 100")
        self.add_button = QPushButton("Add budget")
        self.add_button.setDefault(False)
        self.add_button.setAutoDefault(False)
        self.remove_button.setAutoDefault(False)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.hide()

        self._lay_out()
        self.scope.currentIndexChanged.connect(self._scope_changed)
        self.currency.currentIndexChanged.connect(self._currency_changed)
        self.enforcement.currentIndexChanged.connect(self._enforcement_changed)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.add_button.clicked.connect(self.add)
        self.remove_button.clicked.connect(self.remove_selected)
        for combo in (self.scope, self.period, self.currency, self.enforcement):
            combo.currentIndexChanged.connect(self._edited)
        self.target.editTextChanged.connect(self._edited)
        self.amount.valueChanged.connect(self._edited)
        self.levels.textChanged.connect(self._edited)
        self.scope.setCurrentIndex(max(0, self.scope.findData("app")))
        self._scope_changed()
        self._currency_changed()
        self._enforcement_changed()
        self.reload()

    def _lay_out(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self.problems)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        row = QHBoxLayout()
        row.addWidget(self.remove_button)
        row.addStretch(1)
        layout.addLayout(row)

        group = QGroupBox("Add a budget")
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Applies to:", self.scope)
        form.addRow("Which:", self.target)
        form.addRow("Period:", self.period)
        money = QHBoxLayout()
        money.addWidget(self.amount, 1)
        money.addWidget(self.currency)
        form.addRow("Amount:", money)
        form.addRow("When over:", self.enforcement)
        form.addRow("", self.enforcement_help)
        form.addRow("Warn at (%):", self.levels)
        add_row = QHBoxLayout()
        add_row.addStretch(1)
        add_row.addWidget(self.add_button)
        form.addRow(add_row)
        form.addRow(self.message)
        layout.addWidget(group)
        layout.addWidget(
            _note(
                f"Budgets are saved as soon as they are added or removed, in {self._path or budgets_path()}. "
                "The command line edits the same list: mity-cost budget add | list | remove."
            )
        )

    # -- the list ---------------------------------------------------------------------------------

    @property
    def budgets(self) -> tuple[Budget, ...]:
        """The budgets as listed."""
        return self._budgets

    @Slot()
    def reload(self) -> None:
        """Read the budgets file again and list what it holds (and what is wrong with it)."""
        found = load_budgets(self._path)
        self._budgets = found.budgets
        self.problems.setText("\n".join(f"⚠ {p}" for p in found.problems))
        self.problems.setVisible(bool(found.problems))
        self.table.setRowCount(len(found.budgets))
        for row, budget in enumerate(found.budgets):
            title = budget.describe()
            first = _item(title[:1].upper() + title[1:], budget.id)
            first.setData(Qt.ItemDataRole.UserRole, budget.id)
            self.table.setItem(row, 0, first)
            amount = money_in(budget.amount, budget.currency)
            self.table.setItem(row, 1, _item(amount, budget.currency, right=True))
            self.table.setItem(
                row,
                2,
                _item(
                    ENFORCEMENT_LABELS.get(budget.enforcement, budget.enforcement),
                    ENFORCEMENT_HELP.get(budget.enforcement, ""),
                ),
            )
            self.table.setItem(row, 3, _item(", ".join(f"{v} %" for v in budget.warning_levels)))
        self.table.setVisible(bool(found.budgets))
        self.empty.setVisible(not found.budgets)
        self._selection_changed()

    def selected_ids(self) -> list[str]:
        """The ids of the selected budgets."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self._row_id(r) for r in rows]

    def _row_id(self, row: int) -> str:
        item = self.table.item(row, 0)
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ""

    def select(self, budget_id: str) -> None:
        """Select one budget's row."""
        for row in range(self.table.rowCount()):
            if self._row_id(row) == budget_id:
                self.table.selectRow(row)
                return

    @Slot()
    def remove_selected(self) -> None:
        """Remove the selected budgets."""
        ids = self.selected_ids()
        if not ids:
            return
        removed: list[str] = []
        try:
            for budget_id in ids:
                if remove_budget(budget_id, self._path):
                    removed.append(budget_id)
        except OSError as exc:
            self._say(f"Could not remove the budget: {exc}", error=True)
            self.reload()
            return
        self.reload()
        if removed:
            log.info("budgets removed: %s", ", ".join(removed))
            self._say(f"Removed {', '.join(removed)}.")
            self.budgets_changed.emit()
        else:
            self._say("Those budgets were already gone.", error=True)

    # -- adding -----------------------------------------------------------------------------------

    def chosen(self) -> Budget | str:
        """The budget the form describes, or what is wrong with it (``Budget``'s own message)."""
        levels = parse_levels(self.levels.text())
        if isinstance(levels, str):
            return f"Warning levels: {levels}."
        target = self.target.currentText().strip() or None
        scope = str(self.scope.currentData())
        try:
            return Budget(
                scope=scope,  # type: ignore[arg-type]
                target=None if scope == "overall" else target,
                period=str(self.period.currentData()),  # type: ignore[arg-type]
                amount=round(self.amount.value(), 2),
                currency=str(self.currency.currentData()),
                enforcement=str(self.enforcement.currentData()),  # type: ignore[arg-type]
                warning_levels=levels,
            )
        except BudgetError as exc:
            text = str(exc)
            return text[:1].upper() + text[1:] + "."

    @Slot()
    def add(self) -> bool:
        """Add (or replace) the budget the form describes; False, with a message, when it cannot."""
        budget = self.chosen()
        if isinstance(budget, str):
            self._say(budget, error=True)
            return False
        try:
            replaced = add_budget(budget, self._path)
        except (BudgetError, OSError) as exc:
            self._say(f"Could not save the budget: {exc}", error=True)
            return False
        log.info("budget %s: %s", "replaced" if replaced else "added", budget.to_json())
        self.reload()
        self.select(budget.id)
        verb = "Replaced" if replaced else "Added"
        amount = money_in(budget.amount, budget.currency)
        when_over = ENFORCEMENT_LABELS.get(budget.enforcement, budget.enforcement).lower()
        self._say(f"{verb} {budget.id}: {amount} for {budget.describe()} ({when_over}).")
        self.budgets_changed.emit()
        return True

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(_ERROR_STYLE if error else _DONE_STYLE)
        self.message.setProperty("error", error)
        self.message.show()

    @Slot()
    def _edited(self) -> None:
        """The form changed: a message about the previous attempt no longer applies."""
        self.message.hide()

    @Slot()
    def _scope_changed(self) -> None:
        scope = str(self.scope.currentData())
        self.target.clear()
        self.target.addItems(list(self._suggestions.get(scope, ())))
        self.target.setCurrentIndex(-1)
        self.target.setEditText("")
        edit = self.target.lineEdit()
        if edit is not None:
            edit.setPlaceholderText(TARGET_HINTS.get(scope, ""))
        self.target.setEnabled(scope != "overall")

    @Slot()
    def _currency_changed(self) -> None:
        self.amount.setPrefix(CURRENCY_SYMBOLS.get(str(self.currency.currentData()), ""))

    @Slot()
    def _enforcement_changed(self) -> None:
        self.enforcement_help.setText(ENFORCEMENT_HELP.get(str(self.enforcement.currentData()), ""))

    @Slot()
    def _selection_changed(self) -> None:
        self.remove_button.setEnabled(bool(self.table.selectionModel().selectedRows()))
