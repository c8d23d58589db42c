"""The details window's "Budgets & forecast" part: one progress bar per budget, then the selected
session's burn rate, the month-to-date spending and its projected month end, the unresolved alerts
and the price audit.

It only shows a ``core.insights.Insights`` (computed off the GUI thread by the window); rows are
reused across updates.  Bars are coloured by ``core.thresholds.level_for`` as the badge is; a budget
held by a tighter enclosing one says so, and the tighter one is highlighted.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from mity_cost.core.gate.thresholds import Level, Severity, level_for
from mity_cost.core.money import money_in
from mity_cost.core.pricing.audit import SessionAudit
from mity_cost.core.spending.alerts import Alert, merge_twins
from mity_cost.core.spending.budgets import BudgetStatus
from mity_cost.core.spending.forecast import BurnRate, Projection
from mity_cost.core.spending.insights import BudgetLine, Insights, duration_text
from mity_cost.ui.badge import LEVEL_COLORS

TITLE = "Budgets & forecast"
ADD_COMMAND = "mity-cost budget add --scope app --target <app> --period month --amount 50"
EMPTY_TEXT = "No budgets yet."
ENFORCEMENT_WORDS: dict[str, str] = {
    "warn": "warns",
    "require_confirmation": "asks to confirm",
    "hard_stop": "hard stop",
}
SEVERITY_COLORS: dict[Severity, str] = {
    Severity.INFO: "#1565c0",
    Severity.WARNING: "#e65100",
    Severity.CRITICAL: "#c62828",
}
HIGHLIGHT_STYLE = "QFrame#budgetRow { border: 2px solid %s; border-radius: 6px; background: palette(base); }"
ROW_STYLE = (
    "QFrame#budgetRow { border: 1px solid palette(mid); border-radius: 6px; background: palette(base); }"
)
_MUTED = "color: palette(dark);"
_WARN = "color: #8a5300;"


money = money_in
"""``$1.23`` in the currency's symbol, never a false zero (``$0.0042``), negative with a minus."""


def range_text(low: float, expected: float, high: float, currency: str) -> str:
    """``$1.20 ($1.10–$1.40)``, or ``$1.20`` when the range rounds to one figure."""
    shown = money(expected, currency)
    if money(low, currency) == money(high, currency):
        return shown
    return f"{shown} ({money(low, currency)}–{money(high, currency)})"


def budget_title(status: BudgetStatus) -> str:
    """``App shop-api, per month``; a per-session budget names its session."""
    text = status.label
    return text[:1].upper() + text[1:]


def period_text(status: BudgetStatus) -> str:
    """``2026-11`` / ``2026-W47`` / ``2026-11-23`` for calendar budgets, else ``""``."""
    key = status.period_key
    return "" if not key or key.startswith("session:") else key


def spent_text(status: BudgetStatus) -> str:
    """``spent $x ($min–$max) of $y, $z left`` (or ``$z over``)."""
    cur = status.budget.currency
    spent = status.spent
    text = f"spent {range_text(spent.min, spent.expected, spent.max, cur)} of {money(status.amount, cur)}"
    remaining = status.remaining
    if status.over:
        return f"{text}, {money(-remaining, cur)} over"
    return f"{text}, {money(remaining, cur)} left"


def percent_text(status: BudgetStatus) -> str:
    """``63 %`` (``over`` for a zero budget with spending)."""
    fraction = status.fraction
    if fraction == float("inf"):
        return "over"
    percent = fraction * 100
    return "over 9999 %" if percent > 9999 else f"{percent:.0f} %"


def projection_text(projection: Projection | None, period: str) -> str:
    """``projected $40.00 ($30.00–$50.00) by the end of the month, confidence medium``."""
    if projection is None or projection.method == "none":
        return ""
    cur = projection.currency
    return (
        f"projected {range_text(projection.low, projection.projected, projection.high, cur)} "
        f"by the end of the {period}, confidence {projection.confidence_label}"
    )


def burn_text(burn: BurnRate | None, currency: str) -> str:
    """``$1.20/h, threshold ($1.00) in ~25 min``, ``idle``, ``over the threshold``..."""
    if burn is None:
        return "no session to measure"
    if burn.per_hour is None:
        return f"unknown ({burn.note})"
    if burn.per_hour == 0:
        over = burn.threshold is not None and burn.total > burn.threshold
        return "idle, over the threshold" if over else "idle (no records in the last hour)"
    text = f"{money(burn.per_hour, currency)}/h"
    if burn.threshold is not None and burn.time_to_threshold is not None:
        limit = money(burn.threshold, currency)
        if burn.time_to_threshold.total_seconds() == 0:
            return f"{text}, already over the {limit} threshold"
        return f"{text}, threshold ({limit}) in {duration_text(burn.time_to_threshold)}"
    return text


def month_text(month: Projection | None) -> str:
    """``$12.34 so far; projected month end $40.00 ($30.00–$50.00), confidence medium``."""
    if month is None:
        return "no spending history"
    cur = month.currency
    text = f"{money(month.spent, cur)} so far"
    if month.method == "none":
        return f"{text}; no projection yet (no complete day of history)"
    return (
        f"{text}; projected month end "
        f"{range_text(month.low, month.projected, month.high, cur)}, confidence {month.confidence_label}"
    )


def audit_text(audit: SessionAudit | None) -> tuple[str, bool]:
    """The audit's line and whether it is a warning (money at stake, or unpriced models)."""
    if audit is None:
        return "no list prices available", False
    percent = f"{audit.tolerance * 100:.0f} %"
    parts: list[str] = []
    flagged = audit.flagged
    if flagged:
        models = "model" if len(flagged) == 1 else "models"
        parts.append(
            f"the factory's table differs from list prices by >{percent} on {len(flagged)} {models}: "
            f"{money(audit.money_at_stake, 'USD')} at stake"
        )
    unpriced = audit.unpriced
    if unpriced:
        names = ", ".join(line.price.label for line in unpriced)
        parts.append(f"no list price for {names} (not counted as $0)")
    if not parts:
        if not audit.lines:
            return "no LLM calls in this session", False
        return f"recorded costs match list prices (within {percent})", False
    text = "; ".join(parts)
    return text[:1].upper() + text[1:], True


def audit_tooltip(audit: SessionAudit | None) -> str:
    """Each flagged or unpriced model with its difference and reasons."""
    if audit is None:
        return ""
    out: list[str] = []
    for line in (*audit.flagged, *audit.unpriced):
        price = line.price
        if price.current_cost is None:
            head = f"{price.label}: recorded {money(price.factory_cost, 'USD')}, no list price"
        else:
            head = (
                f"{price.label}: recorded {money(price.factory_cost, 'USD')}, "
                f"list price {money(price.current_cost, 'USD')}"
            )
        out.append(head + "".join(f"\n  · {reason}" for reason in line.reasons))
    return "\n".join(out + list(audit.notes))


def on_color(color: str) -> str:
    """Black or white, whichever reads on a background of ``color``."""
    return "#000000" if QColor(color).lightnessF() > 0.6 else "#ffffff"


def readable(color: str) -> str:
    """``color`` darkened enough to read as text on a light background (the yellow level)."""
    value = QColor(color)
    return value.darker(150).name() if value.lightnessF() > 0.6 else value.name()


def _label(text: str = "", style: str = "", *, wrap: bool = True) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(wrap)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if style:
        label.setStyleSheet(style)
    return label


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("font-weight: 600; margin-top: 6px;")
    return label


class BudgetRow(QFrame):
    """One budget: its name and enforcement, a bar coloured by level, what is spent and left."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("budgetRow")
        self.setStyleSheet(ROW_STYLE)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(3)
        top = QHBoxLayout()
        top.setSpacing(6)
        self.title = _label("", "font-weight: 600;")
        self.enforcement = QLabel()
        self.tag = QLabel("tightest")
        self.tag.setToolTip("This budget has the least left of the budgets it encloses: it is the real limit")
        top.addWidget(self.title, 1)
        top.addWidget(self.enforcement)
        top.addWidget(self.tag)
        layout.addLayout(top)
        bar_row = QHBoxLayout()
        bar_row.setSpacing(8)
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(10)
        self.percent = _label("", "font-weight: 600;", wrap=False)
        self.percent.setMinimumWidth(48)
        self.percent.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bar_row.addWidget(self.bar, 1)
        bar_row.addWidget(self.percent)
        layout.addLayout(bar_row)
        self.detail = _label()
        self.projection = _label("", _MUTED)
        self.unpriced = _label("", _WARN)
        self.nested = _label("", _MUTED)
        for label in (self.detail, self.projection, self.unpriced, self.nested):
            layout.addWidget(label)
        self.line: BudgetLine | None = None
        self.level = Level.OK
        self.color = LEVEL_COLORS[Level.OK]
        self.highlighted = False

    def show_line(self, line: BudgetLine, highlighted: bool) -> None:
        """Show one budget's standing."""
        self.line = line
        status = line.status
        budget = status.budget
        self.level = level_for(status.fraction)
        self.color = LEVEL_COLORS[self.level]
        self.highlighted = highlighted
        self.title.setText(budget_title(status))
        period = period_text(status)
        self.title.setToolTip(f"budget {budget.id}" + (f", period {period}" if period else ""))
        word = ENFORCEMENT_WORDS.get(budget.enforcement, budget.enforcement)
        enforcing = budget.enforcement != "warn"
        self.enforcement.setText(word)
        self.enforcement.setToolTip(
            {
                "warn": "Alerts only",
                "require_confirmation": "The gate asks, the tray shows its confirmation dialog",
                "hard_stop": "The gate and check-threshold refuse once it is exceeded",
            }.get(budget.enforcement, "")
        )
        self.enforcement.setStyleSheet(
            "QLabel { border-radius: 7px; padding: 0 6px; "
            + (
                "color: white; background: #6a1b9a;"
                if enforcing
                else "color: palette(text); background: palette(alternate-base);"
            )
            + " }"
        )
        self.tag.setVisible(highlighted)
        self.tag.setStyleSheet(
            f"QLabel {{ border-radius: 7px; padding: 0 6px; color: {on_color(self.color)}; "
            f"background: {self.color}; }}"
        )
        fraction = status.fraction
        self.bar.setValue(int(min(100.0, max(0.0, fraction * 100))) if fraction != float("inf") else 100)
        self.bar.setStyleSheet(
            "QProgressBar { border: 1px solid palette(mid); border-radius: 4px; "
            "background: palette(window); }"
            f"QProgressBar::chunk {{ background-color: {self.color}; border-radius: 3px; }}"
        )
        self.percent.setText(percent_text(status))
        self.percent.setStyleSheet(f"color: {readable(self.color)}; font-weight: 600;")
        self.detail.setText(spent_text(status))
        self.detail.setToolTip(
            f"{status.spent.calls:,} record(s) counted"
            + (f"\n{'; '.join(status.notes)}" if status.notes else "")
        )
        self.projection.setText(projection_text(line.projection, budget.period))
        self.projection.setToolTip("\n".join(line.projection.assumptions) if line.projection else "")
        self.projection.setVisible(bool(self.projection.text()))
        unpriced = ""
        if status.unpriced:
            unpriced = (
                f"⚠ counts records with no known price ({', '.join(status.unpriced_models)}): "
                "the figure may be low" + (", so the gate asks" if enforcing else "")
            )
        self.unpriced.setText(unpriced)
        self.unpriced.setVisible(bool(unpriced))
        nested = ""
        if line.constrained:
            binding = line.binding
            left = binding.remaining
            amount = money(abs(left), binding.budget.currency)
            state = f"has {amount} left" if left >= 0 else f"is {amount} over"
            nested = f"Held by a tighter budget: {budget_title(binding)} {state}"
        self.nested.setText(nested)
        self.nested.setVisible(bool(nested))
        self.setStyleSheet(HIGHLIGHT_STYLE % self.color if highlighted else ROW_STYLE)


class AlertRow(QWidget):
    """One unresolved alert: a severity icon and its message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.icon = QLabel()
        self.icon.setFixedSize(16, 16)
        self.message = _label()
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.message, 1)
        self.alert: Alert | None = None

    def show_alert(self, alert: Alert) -> None:
        """Show one alert."""
        self.alert = alert
        severity = alert.severity
        pixmap = {
            Severity.INFO: QStyle.StandardPixmap.SP_MessageBoxInformation,
            Severity.WARNING: QStyle.StandardPixmap.SP_MessageBoxWarning,
            Severity.CRITICAL: QStyle.StandardPixmap.SP_MessageBoxCritical,
        }[severity]
        self.icon.setPixmap(self.style().standardIcon(pixmap).pixmap(16, 16))
        self.icon.setToolTip(severity.value)
        self.message.setText(alert.message)
        self.message.setStyleSheet(f"color: {SEVERITY_COLORS[severity]};")
        when = alert.created_at.astimezone()
        self.message.setToolTip(f"{alert.kind.replace('_', ' ')} · {when:%Y-%m-%d %H:%M}")


class BudgetPanel(QScrollArea):
    """Budgets with progress bars, burn rate, month forecast, alerts and the price audit.

    Attributes (for the window and tests): ``rows`` (the visible ``BudgetRow``s, in order),
    ``empty_label``, ``burn_label``, ``month_label``, ``alert_rows``, ``no_alerts_label``,
    ``audit_label``, ``problems_label``.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(280)
        body = QWidget()
        self.setWidget(body)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 0, 8, 8)
        layout.setSpacing(6)
        self.title = QLabel(TITLE)
        self.title.setStyleSheet("font-weight: 700; font-size: 11pt;")
        layout.addWidget(self.title)
        self.status_label = _label("computing…", _MUTED)
        layout.addWidget(self.status_label)
        self.problems_label = _label(
            "",
            "QLabel { color: #7f0000; background: #ffebee; border: 1px solid #ef9a9a; "
            "border-radius: 4px; padding: 4px 6px; }",
        )
        self.problems_label.setVisible(False)
        layout.addWidget(self.problems_label)
        self.rows_box = QVBoxLayout()
        self.rows_box.setSpacing(6)
        layout.addLayout(self.rows_box)
        self.empty_label = _label(
            f"{EMPTY_TEXT} Add one in Settings → Budgets, or with<br><code>{escape(ADD_COMMAND)}</code>",
            "QLabel { color: palette(text); background: palette(alternate-base); "
            "border: 1px dashed palette(mid); border-radius: 6px; padding: 8px; }",
        )
        self.empty_label.setTextFormat(Qt.TextFormat.RichText)
        self.empty_label.setVisible(False)
        layout.addWidget(self.empty_label)

        layout.addWidget(_heading("Burn rate"))
        self.burn_label = _label()
        layout.addWidget(self.burn_label)
        layout.addWidget(_heading("This month"))
        self.month_label = _label()
        layout.addWidget(self.month_label)
        layout.addWidget(_heading("Unresolved alerts"))
        self.alerts_box = QVBoxLayout()
        self.alerts_box.setSpacing(4)
        layout.addLayout(self.alerts_box)
        self.no_alerts_label = _label("none", _MUTED)
        layout.addWidget(self.no_alerts_label)
        layout.addWidget(_heading("Price audit"))
        self.audit_label = _label()
        layout.addWidget(self.audit_label)
        layout.addStretch(1)
        self._rows: list[BudgetRow] = []
        self._alert_rows: list[AlertRow] = []
        self.insights: Insights | None = None
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    @property
    def rows(self) -> list[BudgetRow]:
        """The rows showing a budget, in order."""
        return [row for row in self._rows if not row.isHidden()]

    @property
    def alert_rows(self) -> list[AlertRow]:
        """The rows showing an alert, newest first."""
        return [row for row in self._alert_rows if not row.isHidden()]

    def set_insights(self, insights: Insights) -> None:
        """Show a new computation."""
        self.insights = insights
        when = insights.now.astimezone()
        self.status_label.setText(
            f"as of {when:%H:%M:%S}"
            + (f" · session {insights.session_id[:8]}" if insights.session_id else "")
        )
        problems = [*insights.budget_problems, *insights.problems]
        self.problems_label.setText("\n".join(problems))
        self.problems_label.setVisible(bool(problems))
        self._show_budgets(insights)
        self.burn_label.setText(burn_text(insights.burn, insights.currency))
        self.burn_label.setToolTip(insights.burn.note if insights.burn is not None else "")
        self.month_label.setText(month_text(insights.month))
        month = insights.month
        self.month_label.setToolTip(
            "\n".join(
                (f"{month.start} to {month.end}, {month.basis_days} day(s) of history", *month.assumptions)
            )
            if month is not None
            else ""
        )
        self._show_alerts(insights.alerts)
        text, warning = audit_text(insights.audit)
        self.audit_label.setText(("⚠ " if warning else "") + text)
        self.audit_label.setStyleSheet(_WARN if warning else "")
        self.audit_label.setToolTip(audit_tooltip(insights.audit))

    def _show_budgets(self, insights: Insights) -> None:
        lines = insights.budgets
        binding = insights.binding_keys
        while len(self._rows) < len(lines):
            row = BudgetRow()
            self._rows.append(row)
            self.rows_box.addWidget(row)
        for index, row in enumerate(self._rows):
            if index < len(lines):
                line = lines[index]
                row.show_line(line, line.status.key in binding)
                row.setVisible(True)
            else:
                row.setVisible(False)
        self.empty_label.setVisible(insights.budget_count == 0 and not insights.budget_problems)

    def _show_alerts(self, unresolved: tuple[Alert, ...]) -> None:
        alerts = [alert for alert, _ids in merge_twins(unresolved)]
        while len(self._alert_rows) < len(alerts):
            row = AlertRow()
            self._alert_rows.append(row)
            self.alerts_box.addWidget(row)
        for index, row in enumerate(self._alert_rows):
            if index < len(alerts):
                row.show_alert(alerts[index])
                row.setVisible(True)
            else:
                row.setVisible(False)
        self.no_alerts_label.setVisible(not alerts)
