"""Desktop warnings at 50, 75, 90 and 100 % of the threshold (levels configurable).

:class:`NotificationController` feeds every snapshot's sessions to a ``core.thresholds.WarningLatch``
and shows what it returns through a :class:`Notifier` (the tray's balloon, or the fallback window's
notice when there is no tray).  Each level fires once per session, ever: what fired is kept in
``<data dir>/warnings.json`` so a restart does not repeat it.  Sessions already present in the first
snapshot (old runs) are latched silently, except the active one.  While notifications are paused or
turned off in the settings the latch still advances, so resuming does not replay old warnings.

Budget alerts (``core.alerts``) come from the history worker already taken, once each, from the
history; :meth:`NotificationController.on_alerts` shows each batch as one notification, under the same
pause and settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal, Slot

from mity_cost.core import paths
from mity_cost.core.atomic import write_json_atomic
from mity_cost.core.factory.loading import LoadedSession
from mity_cost.core.figures.summary import summarize
from mity_cost.core.gate.thresholds import Severity, ThresholdWarning, WarningLatch
from mity_cost.core.live.snapshot import SessionView, Snapshot
from mity_cost.core.money import format_money
from mity_cost.core.settings import Settings
from mity_cost.core.spending.alerts import Alert, merge_twins

log = logging.getLogger(__name__)

STATE_FILE = "warnings.json"


class Notifier(Protocol):
    """Where notifications go (``TrayController`` is one)."""

    def show_message(self, title: str, text: str, severity: Severity, session_id: str | None = None) -> None:
        """Show one notification."""


def warning_text(warning: ThresholdWarning, settings: Settings) -> tuple[str, str]:
    """The title and body of a warning's notification."""
    sym = settings.symbol
    sid = warning.session_id
    name = sid if len(sid) <= 9 else sid[:8] + "…"
    total = format_money(warning.total, sym)
    limit = format_money(warning.threshold, sym)
    if warning.over:
        title = "Cost threshold exceeded"
        body = f"Session {name} is at {total}, over the {limit} threshold."
    elif warning.percent >= 100:
        title = "Cost threshold reached"
        body = f"Session {name} has reached the {limit} threshold ({total})."
    else:
        title = f"{warning.percent} % of the cost threshold"
        body = f"Session {name} is at {total} of {limit}."
    return f"mity-cost: {title}", body


ALERT_TITLES: dict[str, str] = {
    "budget_warning": "budget at {level} %",
    "budget_exceeded": "budget exceeded",
    "forecast_exceeded": "budget projected to run over",
    "task_estimate_high": "estimate over budget",
}
MAX_ALERT_LINES = 3
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def loudest(alerts: Sequence[Alert]) -> Severity:
    """The highest severity among the alerts (info for none)."""
    return max((a.severity for a in alerts), key=_RANK.__getitem__, default=Severity.INFO)


def alert_session(alerts: Sequence[Alert]) -> str | None:
    """The session a click on the notification should open: the loudest alert's, if it names one."""
    for alert in sorted(alerts, key=lambda a: -_RANK[a.severity]):
        sid = alert.data.get("sessionId")
        if isinstance(sid, str) and sid:
            return sid
    return None


def alert_text(alerts: Sequence[Alert]) -> tuple[str, str]:
    """The title and body of one notification for a batch of budget alerts (the loudest first)."""
    shown = [a for a, _ids in merge_twins(alerts)]
    ordered = sorted(shown, key=lambda a: (-_RANK[a.severity], -a.id))
    if len(ordered) == 1:
        alert = ordered[0]
        title = ALERT_TITLES.get(alert.kind, alert.kind.replace("_", " ")).format(level=alert.level)
        return f"mity-cost: {title}", alert.message
    lines = [a.message for a in ordered[:MAX_ALERT_LINES]]
    if len(ordered) > MAX_ALERT_LINES:
        lines.append(f"…and {len(ordered) - MAX_ALERT_LINES} more (see the tray menu).")
    return f"mity-cost: {len(ordered)} budget alerts", "\n".join(lines)


def _state_path() -> Path:
    return paths.data_dir() / STATE_FILE


class NotificationController(QObject):
    """Turns snapshots into threshold warnings, once per level per session.

    Signals:
        notified: a ``ThresholdWarning`` that was shown.
        suppressed: a ``ThresholdWarning`` that fired while paused or turned off (not shown).
        alerts_notified: a tuple of budget alerts (``core.alerts.Alert``) shown as one notification.
        alerts_suppressed: a tuple of budget alerts that came while paused or turned off (not shown).
    """

    notified = Signal(object)
    suppressed = Signal(object)
    alerts_notified = Signal(object)
    alerts_suppressed = Signal(object)

    def __init__(
        self,
        notifier: Notifier,
        parent: QObject | None = None,
        state_path: Path | None = None,
        persist: bool = True,
    ) -> None:
        super().__init__(parent)
        self._notifier = notifier
        self._persist = persist
        self._path = state_path or _state_path()
        self.latch = WarningLatch()
        self._paused = False
        self._baseline_done = False
        self._seen: dict[str, LoadedSession] = {}
        """The state each session was last checked at (held, so identity comparisons stay valid)."""
        self._settings_key: tuple[object, ...] | None = None
        if persist:
            self._load()

    @property
    def paused(self) -> bool:
        """True while notifications are paused (the tray menu's check box)."""
        return self._paused

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        """Pause or resume showing notifications."""
        self._paused = paused
        log.info("notifications %s", "paused" if paused else "resumed")

    def rebaseline(self) -> None:
        """Treat the next snapshot as the first one (the watched roots changed)."""
        self._baseline_done = False
        self._seen.clear()

    @Slot(object, object)
    def on_snapshot(self, snapshot: Snapshot, settings: Settings) -> None:
        """Check each session against the warning levels; show what is due."""
        self.latch.set_levels(settings.warning_levels)
        settings_key = (settings.threshold, settings.currency, settings.eur_per_usd, settings.llm_enabled)
        if settings_key != self._settings_key:
            self._settings_key = settings_key
            self._seen.clear()
        first = not self._baseline_done
        # The watcher may report an empty snapshot before its first scan: the baseline is the first
        # snapshot that has sessions in it.
        self._baseline_done = self._baseline_done or bool(snapshot.sessions)
        active = snapshot.active
        changed = False
        for view in snapshot.sessions:
            loaded = view.loaded
            if loaded is None or self._seen.get(view.key) is loaded:
                continue
            self._seen[view.key] = loaded
            total = self._total(view, settings)
            if total is None:
                continue
            sid = view.session_id
            if first and (active is None or view.key != active.key):
                before = self.latch.fired(sid)
                self.latch.prime(sid, total, settings.threshold)
                changed |= self.latch.fired(sid) != before
                continue
            warning = self.latch.observe(sid, total, settings.threshold)
            if warning is not None:
                changed = True
                self._deliver(warning, settings)
        if changed:
            self._save()

    @staticmethod
    def _total(view: SessionView, settings: Settings) -> float | None:
        assert view.loaded is not None
        try:
            return summarize(view.loaded.figures, settings).total_expected
        except Exception:  # a validated document should never fail; a slot must not raise
            log.exception("could not summarise session %s", view.session_id)
            return None

    def _deliver(self, warning: ThresholdWarning, settings: Settings) -> None:
        if self._paused or not settings.notifications:
            log.info(
                "warning %s %% for %s not shown (%s)",
                warning.percent,
                warning.session_id,
                "paused" if self._paused else "notifications off",
            )
            self.suppressed.emit(warning)
            return
        title, body = warning_text(warning, settings)
        log.info("notification: %s: %s", title, body)
        try:
            self._notifier.show_message(title, body, warning.severity, warning.session_id)
        except Exception:
            log.exception("could not show a notification")
            return
        self.notified.emit(warning)

    @Slot(object, object)
    def on_alerts(self, alerts: Sequence[Alert], settings: Settings) -> None:
        """Show newly raised budget alerts as one notification (nothing while paused or turned off)."""
        batch = tuple(alerts)
        if not batch:
            return
        if self._paused or not settings.notifications:
            log.info(
                "%d budget alert(s) not shown (%s)",
                len(batch),
                "paused" if self._paused else "notifications off",
            )
            self.alerts_suppressed.emit(batch)
            return
        title, body = alert_text(batch)
        log.info("notification: %s: %s", title, body.replace("\n", " | "))
        try:
            self._notifier.show_message(title, body, loudest(batch), alert_session(batch))
        except Exception:
            log.exception("could not show a notification")
            return
        self.alerts_notified.emit(batch)

    def _load(self) -> None:
        try:
            data = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", self._path, exc)
            return
        if isinstance(data, dict):
            self.latch.load_state(data)

    def _save(self) -> None:
        if not self._persist:
            return
        try:
            write_json_atomic(self._path, self.latch.to_state(), mode=0o600)
        except OSError as exc:
            log.warning("could not save %s: %s", self._path, exc)
