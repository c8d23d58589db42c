"""Threshold warnings: once per level per session, severities, pause, settings, persistence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from mity_cost.core import paths
from mity_cost.core.gate.thresholds import Severity, ThresholdWarning
from mity_cost.core.settings import Settings
from mity_cost.core.spending.alerts import Alert, merge_twins
from mity_cost.ui.notifications import (
    MAX_ALERT_LINES,
    NotificationController,
    alert_text,
    loudest,
    warning_text,
)
from mity_cost.ui.tray import TrayController
from tests.ui.tray_helpers import snapshot, view

A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
C = "cccccccc-0000-4000-8000-000000000003"


@dataclass
class Recorder:
    """A notifier that remembers what it was asked to show."""

    shown: list[tuple[str, str, Severity, str | None]] = field(default_factory=list)

    def show_message(self, title: str, text: str, severity: Severity, session_id: str | None = None) -> None:
        self.shown.append((title, text, severity, session_id))

    @property
    def severities(self) -> list[Severity]:
        return [s[2] for s in self.shown]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def controller(qtbot: QtBot, recorder: Recorder) -> NotificationController:
    return NotificationController(recorder)


def test_levels_fire_once_each_with_their_severities(
    controller: NotificationController, recorder: Recorder
) -> None:
    settings = Settings()
    for total in (0.1, 0.55, 0.55, 0.4, 0.8, 0.91, 0.91, 1.2, 0.3, 2.0):
        controller.on_snapshot(snapshot(view(A, total)), settings)
    assert recorder.severities == [Severity.INFO, Severity.WARNING, Severity.CRITICAL, Severity.CRITICAL]
    assert [s[3] for s in recorder.shown] == [A] * 4
    assert "50 %" in recorder.shown[0][0]
    assert "exceeded" in recorder.shown[-1][0] and "$1.20" in recorder.shown[-1][1]


def test_the_first_snapshot_latches_old_sessions_silently(
    controller: NotificationController, recorder: Recorder
) -> None:
    settings = Settings()
    controller.on_snapshot(snapshot(view(A, 0.95), view(B, 3.0), view(C, 0.6)), settings)
    assert [(s[2], s[3]) for s in recorder.shown] == [(Severity.CRITICAL, A)]  # the active one only
    controller.on_snapshot(snapshot(view(B, 3.5), view(A, 0.95), view(C, 0.8)), settings)
    # B had every level latched; C moves from 50 % (latched) to 75 %: a real crossing
    assert [(s[2], s[3]) for s in recorder.shown][1:] == [(Severity.WARNING, C)]


def test_an_empty_first_snapshot_is_not_the_baseline(
    controller: NotificationController, recorder: Recorder
) -> None:
    controller.on_snapshot(snapshot(), Settings())
    controller.on_snapshot(snapshot(view(A, 0.1), view(B, 5.0)), Settings())
    assert recorder.shown == []


def test_a_session_appearing_later_is_watched(controller: NotificationController, recorder: Recorder) -> None:
    controller.on_snapshot(snapshot(view(A, 0.1)), Settings())
    controller.on_snapshot(snapshot(view(A, 0.1), view(B, 0.6)), Settings())
    assert [s[3] for s in recorder.shown] == [B]


def test_paused_advances_the_latch_without_showing(
    qtbot: QtBot, controller: NotificationController, recorder: Recorder
) -> None:
    controller.on_snapshot(snapshot(view(A, 0.1)), Settings())
    controller.set_paused(True)
    with qtbot.waitSignal(controller.suppressed) as blocker:
        controller.on_snapshot(snapshot(view(A, 0.8)), Settings())
    assert isinstance(blocker.args[0], ThresholdWarning) and blocker.args[0].percent == 75
    assert recorder.shown == []
    controller.set_paused(False)
    controller.on_snapshot(snapshot(view(A, 0.8)), Settings())
    assert recorder.shown == []  # resuming does not replay
    controller.on_snapshot(snapshot(view(A, 0.95)), Settings())
    assert recorder.severities == [Severity.CRITICAL]


def test_notifications_off_in_the_settings(controller: NotificationController, recorder: Recorder) -> None:
    controller.on_snapshot(snapshot(view(A, 0.9)), Settings(notifications=False))
    assert recorder.shown == []
    assert controller.latch.fired(A) == {50, 75, 90}


def test_levels_and_threshold_come_from_the_settings(
    controller: NotificationController, recorder: Recorder
) -> None:
    settings = Settings(threshold=10.0, warning_levels=(20, 80))
    controller.on_snapshot(snapshot(view(A, 1.0)), settings)
    controller.on_snapshot(snapshot(view(A, 2.5)), settings)
    controller.on_snapshot(snapshot(view(A, 8.0)), settings)
    assert recorder.severities == [Severity.INFO, Severity.WARNING]
    assert "$8.00 of $10.00" in recorder.shown[-1][1]


def test_a_threshold_change_rechecks_unchanged_sessions(
    controller: NotificationController, recorder: Recorder
) -> None:
    snap = snapshot(view(A, 0.4))
    controller.on_snapshot(snap, Settings(threshold=1.0))
    controller.on_snapshot(snap, Settings(threshold=0.5))
    assert recorder.severities == [Severity.WARNING]  # 0.4 of 0.5 is 80 %: 75 % shown, 50 % latched
    assert controller.latch.fired(A) == {50, 75}


def test_what_fired_survives_a_restart(qtbot: QtBot, recorder: Recorder) -> None:
    first = NotificationController(recorder)
    first.on_snapshot(snapshot(view(A, 0.8)), Settings())
    assert len(recorder.shown) == 1
    saved = json.loads((paths.data_dir() / "warnings.json").read_text())
    assert saved == {A: [50, 75]}
    again = Recorder()
    second = NotificationController(again)
    second.on_snapshot(snapshot(view(A, 0.8)), Settings())
    assert again.shown == []
    second.on_snapshot(snapshot(view(A, 0.92)), Settings())
    assert again.severities == [Severity.CRITICAL]


def test_a_broken_state_file_is_ignored(qtbot: QtBot, recorder: Recorder) -> None:
    state = paths.data_dir() / "warnings.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("{not json")
    controller = NotificationController(recorder)
    controller.on_snapshot(snapshot(view(A, 0.6)), Settings())
    assert len(recorder.shown) == 1
    assert json.loads(state.read_text()) == {A: [50]}


def test_without_persistence_nothing_is_written(qtbot: QtBot, recorder: Recorder, tmp_path: Path) -> None:
    target = tmp_path / "w.json"
    controller = NotificationController(recorder, state_path=target, persist=False)
    controller.on_snapshot(snapshot(view(A, 0.6)), Settings())
    assert len(recorder.shown) == 1 and not target.exists()


def test_a_failing_notifier_does_not_break_the_slot(qtbot: QtBot) -> None:
    class Broken:
        def show_message(self, *args: object) -> None:
            raise RuntimeError("no notification daemon")

    controller = NotificationController(Broken())
    with qtbot.assertNotEmitted(controller.notified):
        controller.on_snapshot(snapshot(view(A, 0.6)), Settings())
    assert controller.latch.fired(A) == {50}


def test_sessions_without_a_good_state_are_skipped(
    controller: NotificationController, recorder: Recorder
) -> None:
    controller.on_snapshot(snapshot(view(A, None, updating=True)), Settings())
    assert recorder.shown == []


def test_into_the_fallback_window_when_there_is_no_tray(qtbot: QtBot) -> None:
    tray = TrayController(tray_available=lambda: False)
    tray.start()
    controller = NotificationController(tray)
    controller.on_snapshot(snapshot(view(A, 1.1)), Settings())
    window = tray.fallback
    assert window is not None and window.notice.isVisible()
    assert "exceeded" in window.notice.text()
    assert window.notice.property("severity") == "critical"
    tray.shutdown()


@pytest.mark.parametrize(
    ("percent", "total", "title", "body"),
    [
        (50, 0.5, "50 % of the cost threshold", "is at $0.50 of $1.00"),
        (100, 1.0, "Cost threshold reached", "has reached the $1.00 threshold"),
        (100, 1.5, "Cost threshold exceeded", "is at $1.50, over the $1.00 threshold"),
    ],
)
def test_warning_text(percent: int, total: float, title: str, body: str) -> None:
    warning = ThresholdWarning(A, percent, Severity.INFO, total, 1.0)
    got_title, got_body = warning_text(warning, Settings())
    assert got_title == f"mity-cost: {title}"
    assert body in got_body and "aaaaaaaa…" in got_body


# -- budget alerts ----------------------------------------------------------------------------------


def budget_alert(
    alert_id: int, kind: str = "budget_warning", level: int = 75, session: str | None = None
) -> Alert:
    return Alert(
        id=alert_id,
        kind=kind,
        subject="app:shop-api:month",
        level=level,
        period_key="2026-11",
        message=f"Budget app:shop-api:month ({kind} {level})",
        data={"sessionId": session},
        created_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
    )


def test_one_alert_is_one_notification_with_its_severity(
    controller: NotificationController, recorder: Recorder, qtbot: QtBot
) -> None:
    one = budget_alert(1, level=75, session=A)
    with qtbot.waitSignal(controller.alerts_notified) as blocker:
        controller.on_alerts([one], Settings())
    assert recorder.shown == [("mity-cost: budget at 75 %", one.message, one.severity, A)]
    assert one.severity is Severity.WARNING
    assert blocker.args == [(one,)]


def test_a_batch_is_one_notification_loudest_first(
    controller: NotificationController, recorder: Recorder
) -> None:
    batch = [budget_alert(n, level=50) for n in range(1, 4)] + [budget_alert(9, "budget_exceeded", 100, B)]
    controller.on_alerts(batch, Settings())
    ((title, body, severity, session),) = recorder.shown
    assert title == "mity-cost: 4 budget alerts"
    lines = body.split("\n")
    assert lines[0] == batch[-1].message and lines[-1] == "…and 1 more (see the tray menu)."
    assert len(lines) == MAX_ALERT_LINES + 1
    assert severity is Severity.CRITICAL and session == B


def test_alerts_respect_pause_and_settings(
    controller: NotificationController, recorder: Recorder, qtbot: QtBot
) -> None:
    controller.set_paused(True)
    with qtbot.waitSignal(controller.alerts_suppressed) as blocker:
        controller.on_alerts([budget_alert(1)], Settings())
    assert blocker.args == [(budget_alert(1),)]
    controller.set_paused(False)
    controller.on_alerts([budget_alert(2)], Settings(notifications=False))
    controller.on_alerts([], Settings())
    assert recorder.shown == []
    controller.on_alerts([budget_alert(3)], Settings())
    assert len(recorder.shown) == 1


@pytest.mark.parametrize(
    ("kind", "level", "title", "severity"),
    [
        ("budget_warning", 50, "mity-cost: budget at 50 %", Severity.INFO),
        ("budget_warning", 90, "mity-cost: budget at 90 %", Severity.CRITICAL),
        ("budget_exceeded", 100, "mity-cost: budget exceeded", Severity.CRITICAL),
        ("forecast_exceeded", 100, "mity-cost: budget projected to run over", Severity.WARNING),
        ("task_estimate_high", 140, "mity-cost: estimate over budget", Severity.WARNING),
    ],
)
def test_alert_text(kind: str, level: int, title: str, severity: Severity) -> None:
    one = budget_alert(1, kind, level)
    assert alert_text([one]) == (title, one.message)
    assert loudest([one]) is severity


def test_a_failing_notifier_does_not_break_alerts(qtbot: QtBot) -> None:
    class Broken:
        def show_message(self, *args: object) -> None:
            raise RuntimeError("no notification daemon")

    controller = NotificationController(Broken(), persist=False)
    with qtbot.assertNotEmitted(controller.alerts_notified):
        controller.on_alerts([budget_alert(1)], Settings())


def test_exceeded_and_its_100_percent_warning_are_one_notification(
    controller: NotificationController, recorder: Recorder
) -> None:
    exceeded, at_100 = budget_alert(5, "budget_exceeded", 100), budget_alert(4, "budget_warning", 100)
    elsewhere = Alert(**{**budget_alert(3, "budget_warning", 100).__dict__, "subject": "overall:*:month"})
    assert [(a.id, ids) for a, ids in merge_twins([exceeded, at_100, elsewhere])] == [(5, (5, 4)), (3, (3,))]
    controller.on_alerts([at_100, exceeded], Settings())
    assert recorder.shown == [("mity-cost: budget exceeded", exceeded.message, Severity.CRITICAL, None)]
