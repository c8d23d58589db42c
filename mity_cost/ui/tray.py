"""The tray icon (or, with no system tray, a small window standing in for it).

:class:`TrayController` shows the active session's badge, a tooltip with the summary line, and a menu
rebuilt each time it opens: sessions (active first) with their totals, the newest unresolved budget
alerts (each a submenu with "Dismiss") and what keeps the history from working, then "Open details…",
"Pause notifications", "Settings…", "Quit".  It only asks for things through signals; the composition root
(``mity_cost.app``) decides what they do.

With no system tray (GNOME without the AppIndicator extension, or a panel that starts after us) a
:class:`FallbackWindow` shows the same badge, text and buttons, and a timer keeps checking until a tray
appears, then moves the icon there.  Closing a window never quits the app.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QFont, QMouseEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QStyle,
    QSystemTrayIcon,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mity_cost.core.figures.summary import summarize
from mity_cost.core.gate.thresholds import Level, Severity, level_for
from mity_cost.core.live.snapshot import SessionView, Snapshot
from mity_cost.core.money import format_money, format_short
from mity_cost.core.settings import Settings
from mity_cost.core.spending.alerts import Alert, merge_twins
from mity_cost.core.spending.budgets import Budget, BudgetError
from mity_cost.ui.badge import Variant, badge_icon, render_badge

log = logging.getLogger(__name__)

APP_TITLE = "mity-cost"
RETRY_MS = 3000
"""How often to look for a system tray while there is none."""
MAX_MENU_SESSIONS = 8
MAX_MENU_ALERTS = 5
MESSAGE_MS = 10_000
SHORT_ID = 8

_MESSAGE_ICONS = {
    Severity.INFO: QSystemTrayIcon.MessageIcon.Information,
    Severity.WARNING: QSystemTrayIcon.MessageIcon.Warning,
    Severity.CRITICAL: QSystemTrayIcon.MessageIcon.Critical,
}
_ALERT_ICONS = {
    Severity.INFO: QStyle.StandardPixmap.SP_MessageBoxInformation,
    Severity.WARNING: QStyle.StandardPixmap.SP_MessageBoxWarning,
    Severity.CRITICAL: QStyle.StandardPixmap.SP_MessageBoxCritical,
}
_ALERT_HEADS = {
    "budget_exceeded": "Over budget",
    "forecast_exceeded": "Projected over budget",
    "task_estimate_high": "Estimate over budget",
}
_NOTICE_COLORS = {Severity.INFO: "#e3f2fd", Severity.WARNING: "#fff3e0", Severity.CRITICAL: "#ffebee"}
_NOTICE_BORDERS = {Severity.INFO: "#1e88e5", Severity.WARNING: "#f57c00", Severity.CRITICAL: "#c62828"}


def short_id(session_id: str) -> str:
    """The first characters of a session id (uuids are unique long before their end)."""
    return session_id if len(session_id) <= SHORT_ID + 1 else session_id[:SHORT_ID] + "…"


def money_range(lo: float, expected: float, hi: float, symbol: str) -> str:
    """``$0.42`` when the range is flat to the cent, else ``$0.42 ($0.38–$0.47)``."""
    text = format_money(expected, symbol)
    if round(lo, 2) == round(hi, 2):
        return text
    return f"{text} ({format_money(lo, symbol)}–{format_money(hi, symbol)})"


def percent_text(fraction: float) -> str:
    """``38 %``; ``over`` for an infinite fraction (a zero threshold)."""
    if math.isinf(fraction):
        return "over"
    return f"{fraction * 100:.0f} %"


@dataclass(frozen=True)
class TrayState:
    """What the badge, tooltip and fallback window show (computed without Qt widgets)."""

    text: str | None
    level: Level | None
    variant: Variant
    headline: str
    summary: str = ""
    notes: tuple[str, ...] = ()
    session_id: str | None = None

    @property
    def tooltip(self) -> str:
        """The tooltip: title, headline, summary line, then what is wrong."""
        lines = [APP_TITLE, self.headline]
        if self.summary:
            lines.append(self.summary)
        lines.extend(self.notes)
        return "\n".join(lines)


def _status_notes(snapshot: Snapshot | None, settings: Settings) -> list[str]:
    notes: list[str] = []
    if snapshot is not None:
        status = snapshot.status
        if status.mode == "polling":
            notes.append(
                "Watching degraded: polling for changes"
                + (f" ({status.messages[0]})" if status.messages else "")
            )
        elif status.mode == "stopped":
            notes.append("Watching stopped" + (f" ({status.messages[0]})" if status.messages else ""))
        else:
            notes.extend(status.messages[:2])
        if snapshot.feature_errors:
            notes.append(f"{len(snapshot.feature_errors)} feature file(s) could not be read")
    notes.extend(f"Settings: {p}" for p in settings.problems[:3])
    return notes


def tray_state(snapshot: Snapshot | None, settings: Settings) -> TrayState:
    """The badge and texts for the latest snapshot under the current settings."""
    notes = _status_notes(snapshot, settings)
    active = snapshot.active if snapshot is not None else None
    if active is None or active.loaded is None:
        broken = snapshot is not None and any(
            s.error is not None and not s.updating for s in snapshot.sessions
        )
        if snapshot is None:
            headline = "Starting…"
        elif broken:
            headline = "No readable session"
            notes = [e.describe() for s in snapshot.sessions if (e := s.error) is not None][:2] + notes
        else:
            headline = "No session yet"
        variant = Variant.ERROR if broken else Variant.IDLE
        return TrayState(settings.symbol, None, variant, headline, "", tuple(notes), None)
    try:
        summary = summarize(active.loaded.figures, settings)
    except Exception:  # a validated document should never fail; never let the badge die of it
        log.exception("could not summarise session %s", active.session_id)
        return TrayState(
            settings.symbol, None, Variant.ERROR, "Could not compute the session total", "", tuple(notes)
        )
    fraction = summary.fraction_of_threshold
    total = summary.total
    headline = (
        f"Session {short_id(active.session_id)}: "
        f"{money_range(total.min, total.expected, total.max, settings.symbol)}, "
        f"{percent_text(fraction)} of the {format_money(settings.threshold, settings.symbol)} threshold"
    )
    variant = Variant.NORMAL
    if active.updating:
        variant = Variant.UPDATING
        notes.insert(0, "updating… (the cost file is being rewritten; showing the last good total)")
    elif active.error is not None:
        variant = Variant.ERROR
        notes.insert(0, f"Last read failed, showing the last good total: {active.error.describe()}")
    if not summary.llm_included:
        notes.append("LLM costs are not counted (settings)")
    note = settings.conversion_note(active.loaded.doc["currency"])
    if note:
        notes.append(f"Amounts {note}")
    return TrayState(
        format_short(summary.total_expected, settings.symbol),
        level_for(fraction),
        variant,
        headline,
        summary.summary,
        tuple(notes),
        active.session_id,
    )


def age_text(then: datetime, now: datetime) -> str:
    """``just now``, ``5 min ago``, ``3 h ago``, ``2 d ago``."""
    seconds = (now - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"


def session_label(
    view: SessionView, settings: Settings, now: datetime | None = None
) -> tuple[str, Level | None]:
    """A menu line for one session and its level.

    The text is ``<id> · <age>\t<total with its range>``: the part after the tab is drawn
    right-aligned in a menu (the shortcut column), so the amounts line up.
    """
    name = short_id(view.session_id)
    if view.loaded is None:
        problem: str = "updating…" if view.updating else (view.error.kind if view.error else "no data")
        return f"{name}\t{problem}", None
    try:
        summary = summarize(view.loaded.figures, settings)
        updated = view.loaded.doc["updatedAt"]
        age = age_text(updated, now or datetime.now(UTC))
    except Exception:
        log.exception("could not summarise session %s", view.session_id)
        return f"{name}\t(error)", None
    total = summary.total
    state = ""
    if view.updating:
        state = " · updating…"
    elif view.error is not None:
        state = f" · {view.error.kind}"
    amount = money_range(total.min, total.expected, total.max, settings.symbol)
    return f"{name} · {age}{state}\t{amount}", level_for(summary.fraction_of_threshold)


def budget_description(subject: str) -> str:
    """``app shop-api, per month`` from an alert's subject (a budget status key, maybe ``@<session>``)."""
    key, _, session = subject.partition("@")
    scope, _, rest = key.partition(":")
    target, _, period = rest.rpartition(":")
    try:
        budget = Budget(scope, None if target in ("", "*") else target, period, 0.0)  # type: ignore[arg-type]
    except BudgetError:
        return subject
    text = budget.describe()
    if session and session != "-" and budget.target is None:
        text += f" (session {short_id(session)})"
    return text


def alert_label(alert: Alert, now: datetime | None = None) -> str:
    """A menu line for one alert: ``75 % of budget · app shop-api, per month\t5 min ago``."""
    head = _ALERT_HEADS.get(alert.kind, f"{alert.level} % of budget")
    age = age_text(alert.created_at, now or datetime.now(UTC))
    return f"{head} · {budget_description(alert.subject)}\t{age}"


class _ClickableLabel(QLabel):
    """A label that reports clicks (the fallback window's badge and notice)."""

    clicked = Signal()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class FallbackWindow(QWidget):
    """A compact window that stands in for the tray icon when there is no system tray."""

    def __init__(self, menu: QMenu, pause_action: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mityCostFallback")
        self.setWindowTitle(f"{APP_TITLE}: AI session cost")
        self.badge = _ClickableLabel()
        self.badge.setFixedSize(56, 56)
        self.badge.setCursor(Qt.CursorShape.PointingHandCursor)
        self.badge.setToolTip("Open the details window")
        self.headline = QLabel()
        self.headline.setWordWrap(True)
        bold = QFont(self.headline.font())
        bold.setBold(True)
        self.headline.setFont(bold)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #8a5300;")
        self.notice = _ClickableLabel()
        self.notice.setWordWrap(True)
        self.notice.setCursor(Qt.CursorShape.PointingHandCursor)
        self.notice.hide()
        self.notice_session: str | None = None
        self.dismiss = QToolButton()
        self.dismiss.setText("×")
        self.dismiss.setToolTip("Dismiss")
        self.dismiss.setAutoRaise(True)
        self.dismiss.hide()
        self.dismiss.clicked.connect(self.clear_notice)
        self.details_button = QPushButton("Details…")
        self.settings_button = QPushButton("Settings…")
        self.menu_button = QPushButton("Menu")
        self.menu_button.setMenu(menu)
        self.pause_box = QCheckBox("Pause notifications")
        self.pause_box.setChecked(pause_action.isChecked())
        self.pause_box.toggled.connect(pause_action.setChecked)
        pause_action.toggled.connect(self.pause_box.setChecked)
        self.quit_button = QPushButton("Quit")
        hint = QLabel(
            "No system tray was found, so this window stands in for the tray icon. "
            "mity-cost moves to the tray as soon as one appears."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(placeholder-text); font-size: small;")

        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.headline)
        text.addWidget(self.summary)
        text.addWidget(self.notes)
        top = QHBoxLayout()
        top.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        top.addLayout(text, 1)
        notice_row = QHBoxLayout()
        notice_row.addWidget(self.notice, 1)
        notice_row.addWidget(self.dismiss, 0, Qt.AlignmentFlag.AlignTop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.details_button)
        buttons.addWidget(self.settings_button)
        buttons.addWidget(self.menu_button)
        buttons.addStretch(1)
        buttons.addWidget(self.pause_box)
        buttons.addWidget(self.quit_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(notice_row)
        layout.addLayout(buttons)
        layout.addWidget(hint)
        self.setMinimumWidth(480)

    def apply(self, state: TrayState) -> None:
        """Show a new state."""
        self.badge.setPixmap(
            render_badge(state.text, state.level, 56, state.variant, self.devicePixelRatioF())
        )
        self.headline.setText(state.headline)
        self.summary.setText(state.summary)
        self.summary.setVisible(bool(state.summary))
        self.notes.setText("\n".join(state.notes))
        self.notes.setVisible(bool(state.notes))
        self.setToolTip(state.tooltip)
        self._fit_height()

    def _fit_height(self) -> None:
        """Grow to fit the word-wrapped texts (Qt does not enforce height-for-width on windows)."""
        layout = self.layout()
        if self.isVisible() and layout is not None and layout.hasHeightForWidth():
            needed = layout.totalHeightForWidth(self.width())
            if self.height() < needed:
                self.resize(self.width(), needed)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._fit_height()

    def show_notice(self, title: str, text: str, severity: Severity, session_id: str | None = None) -> None:
        """Show a notification inside the window (non-modal; the latest replaces the previous one)."""
        self.notice_session = session_id
        self.notice.setText(f"<b>{_escape(title)}</b><br>{_escape(text)}")
        self.notice.setStyleSheet(
            f"QLabel {{ background: {_NOTICE_COLORS[severity]}; color: #111111; "
            f"border-left: 4px solid {_NOTICE_BORDERS[severity]}; padding: 6px; }}"
        )
        self.notice.setProperty("severity", severity.value)
        self.notice.show()
        self.dismiss.show()
        self._fit_height()

    @Slot()
    def clear_notice(self) -> None:
        """Hide the notification."""
        self.notice.hide()
        self.dismiss.hide()
        self.notice_session = None

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing stands the window down to the taskbar: it is the only way back to the app."""
        event.ignore()
        self.showMinimized()


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class TrayController(QObject):
    """The tray icon with its badge, tooltip and menu, or the fallback window when there is no tray.

    Signals:
        open_details: a session id to show ("" for the active session).
        open_settings: the user asked for the settings dialog.
        open_budgets: the user asked for the settings dialog's Budgets tab.
        quit_requested: the user chose Quit.
        pause_changed: "Pause notifications" was toggled.
        dismiss_alerts: a tuple of alert ids the user dismissed.
    """

    open_details = Signal(str)
    open_settings = Signal()
    open_budgets = Signal()
    quit_requested = Signal()
    pause_changed = Signal(bool)
    dismiss_alerts = Signal(object)

    def __init__(
        self,
        parent: QObject | None = None,
        retry_ms: int = RETRY_MS,
        tray_available: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(parent)
        self._available = tray_available or QSystemTrayIcon.isSystemTrayAvailable
        self._snapshot: Snapshot | None = None
        self._settings = Settings()
        self._state = tray_state(None, self._settings)
        self._icon_key: tuple[object, ...] | None = None
        self._message_session: str | None = None
        self._started = False

        self.tray = QSystemTrayIcon(self)
        self.menu = QMenu()
        self.menu.setObjectName("mityCostTrayMenu")
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.details_action = QAction("Open details…", self)
        self.details_action.triggered.connect(lambda: self.open_details.emit(""))
        self.pause_action = QAction("Pause notifications", self)
        self.pause_action.setCheckable(True)
        self.pause_action.toggled.connect(self.pause_changed)
        self.settings_action = QAction("Settings…", self)
        self.settings_action.triggered.connect(self.open_settings)
        self.quit_action = QAction("Quit", self)
        self.quit_action.triggered.connect(self.quit_requested)
        self._session_actions: list[QAction] = []
        self._alerts: tuple[Alert, ...] = ()
        self._alert_count = 0
        self._problems: tuple[str, ...] = ()
        self._alert_menus: list[QMenu] = []
        self.menu.setToolTipsVisible(True)
        self.tray.setContextMenu(self.menu)
        self.tray.activated.connect(self._on_activated)
        self.tray.messageClicked.connect(self._on_message_clicked)

        self.fallback: FallbackWindow | None = None
        self.retry = QTimer(self)
        self.retry.setInterval(retry_ms)
        self.retry.timeout.connect(self.check_tray)
        self.rebuild_menu()
        self._refresh()

    # -- state ------------------------------------------------------------------------------------

    @property
    def in_tray(self) -> bool:
        """True when the icon is in a system tray (False while the fallback window stands in)."""
        return self._started and self.fallback is None

    @property
    def paused(self) -> bool:
        """True while notifications are paused."""
        return self.pause_action.isChecked()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume notifications (as the menu item does)."""
        self.pause_action.setChecked(paused)

    @property
    def state(self) -> TrayState:
        """What is shown now."""
        return self._state

    def start(self) -> None:
        """Show the icon in the tray, or the fallback window and keep looking for a tray."""
        self._started = True
        if self._available():
            self.tray.show()
            log.info("tray icon shown")
        else:
            log.warning(
                "no system tray available; showing the fallback window and retrying every %d ms",
                self.retry.interval(),
            )
            self._show_fallback()
            self.retry.start()

    @Slot()
    def check_tray(self) -> bool:
        """Move to the tray if one has appeared; True when the icon is in a tray."""
        if self.in_tray:
            self.retry.stop()
            return True
        if not self._available():
            return False
        self.retry.stop()
        self.tray.show()
        if self.fallback is not None:
            self.fallback.hide()
            self.fallback.deleteLater()
            self.fallback = None
        log.info("a system tray appeared; moved the icon there")
        return True

    def _show_fallback(self) -> None:
        if self.fallback is None:
            window = FallbackWindow(self.menu, self.pause_action)
            window.badge.clicked.connect(lambda: self.open_details.emit(self._state.session_id or ""))
            window.notice.clicked.connect(lambda: self.open_details.emit(window.notice_session or ""))
            window.details_button.clicked.connect(lambda: self.open_details.emit(""))
            window.settings_button.clicked.connect(self.open_settings)
            window.quit_button.clicked.connect(self.quit_requested)
            window.apply(self._state)
            self.fallback = window
        self.fallback.showNormal()
        self.fallback.raise_()

    def shutdown(self) -> None:
        """Take the icon and windows down, in order (before the app object goes away)."""
        self.retry.stop()
        self.tray.hide()
        self.tray.setContextMenu(None)  # type: ignore[arg-type]
        if self.fallback is not None:
            self.fallback.menu_button.setMenu(None)  # type: ignore[arg-type]
            self.fallback.hide()
            self.fallback.deleteLater()
            self.fallback = None
        self.menu.deleteLater()

    def bring_forward(self) -> None:
        """Show the fallback window again (when it stands in for the tray)."""
        if self.fallback is not None:
            self._show_fallback()

    @Slot(object, object)
    def apply(self, snapshot: Snapshot, settings: Settings) -> None:
        """Show a new snapshot under the given settings."""
        self._snapshot = snapshot
        self._settings = settings
        self._refresh()

    def set_history(self, alerts: Sequence[Alert], count: int, problems: Sequence[str] = ()) -> None:
        """Show the newest unresolved budget alerts (``count`` in all) and the history's problems."""
        self._alerts = tuple(alerts)[:MAX_MENU_ALERTS]
        self._alert_count = max(count, len(self._alerts))
        self._problems = tuple(problems)
        self._refresh()

    @property
    def alerts(self) -> tuple[Alert, ...]:
        """The alerts the menu lists."""
        return self._alerts

    def dismiss(self, alert_ids: Sequence[int]) -> None:
        """Dismiss alerts: gone from the menu at once, ``dismiss_alerts`` asks for them to be resolved."""
        ids = tuple(alert_ids)
        if not ids:
            return
        kept = tuple(a for a in self._alerts if a.id not in ids)
        self._alert_count = max(0, self._alert_count - (len(self._alerts) - len(kept)))
        self._alerts = kept
        self._refresh()
        self.dismiss_alerts.emit(ids)

    def _history_notes(self) -> tuple[str, ...]:
        notes = [_sentence(p) for p in self._problems[:2]]
        count = self._alert_count - (len(self._alerts) - len(merge_twins(self._alerts)))
        if count > 0:
            plural = "s" if count != 1 else ""
            notes.append(f"{count} budget alert{plural} (see the menu)")
        return tuple(notes)

    def _refresh(self) -> None:
        state = tray_state(self._snapshot, self._settings)
        extra = self._history_notes()
        if extra:
            state = replace(state, notes=state.notes + extra)
        self._state = state
        key = (state.text, state.level, state.variant)
        if key != self._icon_key:
            self._icon_key = key
            self.tray.setIcon(badge_icon(state.text, state.level, state.variant))
        self.tray.setToolTip(state.tooltip)
        if self.fallback is not None:
            self.fallback.apply(state)

    # -- menu -------------------------------------------------------------------------------------

    @Slot()
    def rebuild_menu(self) -> None:
        """Fill the menu with the current sessions and the fixed actions."""
        menu = self.menu
        menu.clear()  # deletes the session entries (the menu owns them), keeps the fixed actions
        self._session_actions = []
        menu.addSection("Sessions")
        sessions = self._snapshot.sessions if self._snapshot is not None else ()
        if not sessions:
            empty = QAction("No session yet", menu)
            empty.setEnabled(False)
            menu.addAction(empty)
            self._session_actions.append(empty)
        active = self._snapshot.active if self._snapshot is not None else None
        for view in sessions[:MAX_MENU_SESSIONS]:
            text, level = session_label(view, self._settings)
            action = QAction(text, menu)
            action.setIcon(badge_icon(None, level))
            action.setData(view.session_id)
            if active is not None and view.key == active.key:
                font = QFont(action.font())
                font.setBold(True)
                action.setFont(font)
                action.setToolTip("The active session (most recently updated)")
            action.triggered.connect(lambda _checked=False, sid=view.session_id: self.open_details.emit(sid))
            menu.addAction(action)
            self._session_actions.append(action)
        if len(sessions) > MAX_MENU_SESSIONS:
            more = QAction(f"{len(sessions) - MAX_MENU_SESSIONS} more in the details window…", menu)
            more.triggered.connect(lambda: self.open_details.emit(""))
            menu.addAction(more)
            self._session_actions.append(more)
        self._add_alerts(menu)
        menu.addSeparator()
        menu.addAction(self.details_action)
        menu.addAction(self.pause_action)
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)

    def _add_alerts(self, menu: QMenu) -> None:
        """The "Alerts" section: one submenu per alert (message, open, dismiss), then the problems."""
        for old in self._alert_menus:
            old.deleteLater()
        self._alert_menus = []
        if not self._alerts and not self._problems:
            return
        menu.addSection("Alerts")
        style = menu.style()
        now = datetime.now(UTC)
        merged = merge_twins(self._alerts)
        for alert, ids in merged:
            sub = QMenu(alert_label(alert, now), menu)
            sub.setIcon(style.standardIcon(_ALERT_ICONS[alert.severity]))
            sub.setToolTipsVisible(True)
            message = sub.addAction(alert.message)
            message.setEnabled(False)
            raised = alert.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
            when = sub.addAction(f"Raised {raised} · {alert.kind.replace('_', ' ')}")
            when.setEnabled(False)
            sub.addSeparator()
            sid = alert.data.get("sessionId")
            session = sid if isinstance(sid, str) else ""
            details = sub.addAction("Open details…")
            details.triggered.connect(lambda _checked=False, s=session: self.open_details.emit(s))
            budgets = sub.addAction("Edit budgets…")
            budgets.triggered.connect(self.open_budgets)
            dismiss = sub.addAction("Dismiss")
            dismiss.setData(alert.id)
            dismiss.setToolTip("Mark this alert resolved (it stays in the history)")
            dismiss.triggered.connect(lambda _checked=False, i=ids: self.dismiss(i))
            sub.menuAction().setData(f"alert:{alert.id}")
            sub.menuAction().setToolTip(alert.message)
            menu.addMenu(sub)
            self._alert_menus.append(sub)
        hidden = self._alert_count - len(self._alerts)
        if hidden > 0:
            more = QAction(f"{hidden} more in the details window…", menu)
            more.triggered.connect(lambda: self.open_details.emit(""))
            menu.addAction(more)
        if len(merged) > 1:
            every = QAction(f"Dismiss these {len(merged)} alerts", menu)
            ids = tuple(a.id for a in self._alerts)
            every.triggered.connect(lambda _checked=False, i=ids: self.dismiss(i))
            menu.addAction(every)
        for problem in self._problems[:2]:
            text = _sentence(problem)
            note = QAction(text if len(text) <= 72 else text[:71] + "…", menu)
            note.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
            note.setToolTip(problem)
            note.setEnabled(False)
            menu.addAction(note)

    # -- messages ---------------------------------------------------------------------------------

    def show_message(self, title: str, text: str, severity: Severity, session_id: str | None = None) -> None:
        """A desktop notification: a tray balloon, or a notice in the fallback window."""
        self._message_session = session_id
        if self.in_tray and QSystemTrayIcon.supportsMessages():
            self.tray.showMessage(title, text, _MESSAGE_ICONS[severity], MESSAGE_MS)
        elif self.fallback is not None:
            self.fallback.show_notice(title, text, severity, session_id)
        else:
            log.info("notification not shown (no tray yet): %s: %s", title, text)

    # -- slots ------------------------------------------------------------------------------------

    @Slot(QSystemTrayIcon.ActivationReason)
    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.open_details.emit(self._state.session_id or "")

    @Slot()
    def _on_message_clicked(self) -> None:
        self.open_details.emit(self._message_session or "")
