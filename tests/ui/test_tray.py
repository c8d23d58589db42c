"""The tray controller: badge state, tooltip, menu, activation, and the no-tray stand-in window.

Offscreen there is no system tray, so the fallback window is the real path here; availability is
injected to test the move to a tray that appears later.  (``QSystemTrayIcon.show()`` offscreen logs
"No such signal QPlatformNativeInterface::systemTrayWindowChanged": harmless, see style.md §7.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon
from pytestqt.qtbot import QtBot

from mity_cost.core.factory.loading import LoadError
from mity_cost.core.figures.summary import summarize
from mity_cost.core.gate.thresholds import Level, Severity, level_for
from mity_cost.core.live.snapshot import WatchStatus
from mity_cost.core.money import format_short
from mity_cost.core.settings import Settings, load_settings
from mity_cost.core.spending.alerts import Alert
from mity_cost.ui import tray as tray_module
from mity_cost.ui.badge import Variant
from mity_cost.ui.tray import (
    MAX_MENU_ALERTS,
    MAX_MENU_SESSIONS,
    TrayController,
    age_text,
    alert_label,
    budget_description,
    money_range,
    session_label,
    tray_state,
)
from tests.ui.tray_helpers import snapshot, view

SID = "5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91"
OTHER = "c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81"


class Availability:
    """A switchable stand-in for ``QSystemTrayIcon.isSystemTrayAvailable``."""

    def __init__(self, value: bool = False) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.value


@pytest.fixture
def no_tray() -> Availability:
    return Availability(False)


@pytest.fixture
def controller(qtbot: QtBot, no_tray: Availability) -> Iterator[TrayController]:
    ctl = TrayController(retry_ms=20, tray_available=no_tray)
    yield ctl
    ctl.shutdown()
    ctl.deleteLater()


# -- the state, without widgets ---------------------------------------------------------------------


def test_state_before_the_first_snapshot() -> None:
    state = tray_state(None, Settings())
    assert (state.text, state.level, state.variant) == ("$", None, Variant.IDLE)
    assert "Starting" in state.headline


def test_state_without_sessions_is_neutral() -> None:
    state = tray_state(snapshot(), Settings(currency="EUR"))
    assert (state.text, state.level, state.variant) == ("€", None, Variant.IDLE)
    assert state.headline == "No session yet"
    assert state.session_id is None


def test_state_of_the_active_session_matches_the_core() -> None:
    snap = snapshot(view(SID, 0.8, spread=0.05), view(OTHER, 0.1))
    settings = Settings()
    state = tray_state(snap, settings)
    assert snap.sessions[0].loaded is not None
    summary = summarize(snap.sessions[0].loaded.figures, settings)
    assert state.text == format_short(summary.total_expected, "$")
    assert state.level is level_for(summary.fraction_of_threshold) is Level.WARNING
    assert state.variant is Variant.NORMAL
    assert state.session_id == SID
    assert summary.summary in state.tooltip
    assert "$0.75–$0.85" in state.headline and "80 %" in state.headline


def test_state_follows_the_threshold_and_currency() -> None:
    snap = snapshot(view(SID, 0.8))
    assert tray_state(snap, Settings(threshold=0.5)).level is Level.OVER
    eur = tray_state(snap, Settings(currency="EUR", eur_per_usd=0.5))
    assert eur.text == "€0.40"
    assert any("converted from USD" in n for n in eur.notes)


def test_updating_keeps_the_last_good_total() -> None:
    snap = snapshot(view(SID, 0.42, updating=True))
    state = tray_state(snap, Settings())
    assert (state.text, state.variant) == ("$0.42", Variant.UPDATING)
    assert "updating…" in state.tooltip


def test_a_failed_read_keeps_the_last_good_total_and_says_so() -> None:
    error = LoadError(Path("/factory/x/cost.json"), "invalid", "bad number", "sessionCost.total")
    state = tray_state(snapshot(view(SID, 0.42, error=error)), Settings())
    assert (state.text, state.variant) == ("$0.42", Variant.ERROR)
    assert "bad number" in state.tooltip


def test_only_unreadable_sessions() -> None:
    error = LoadError(Path("/factory/x/cost.json"), "invalid", "not JSON")
    state = tray_state(snapshot(view(SID, None, error=error)), Settings())
    assert (state.level, state.variant) == (None, Variant.ERROR)
    assert "No readable session" in state.headline and "not JSON" in state.tooltip


def test_tooltip_mentions_degraded_watching_and_settings_problems() -> None:
    status = WatchStatus(mode="polling", messages=("inotify watch limit reached",))
    settings = load_settings(env={"MITY_COST_THRESHOLD": "lots"})
    state = tray_state(snapshot(view(SID, 0.2), status=status), settings)
    assert "Watching degraded: polling" in state.tooltip
    assert "inotify watch limit reached" in state.tooltip
    assert "MITY_COST_THRESHOLD" in state.tooltip


def test_llm_off_is_noted() -> None:
    state = tray_state(snapshot(view(SID, 0.2)), Settings(llm_enabled=False))
    assert "LLM costs are not counted" in state.tooltip


def test_money_range_and_session_label() -> None:
    assert money_range(0.42, 0.42, 0.421, "$") == "$0.42"
    assert money_range(0.38, 0.42, 0.47, "$") == "$0.42 ($0.38–$0.47)"
    one = view(SID, 1.5, spread=0.1)
    assert one.loaded is not None
    updated = one.loaded.doc["updatedAt"]
    text, level = session_label(one, Settings(), now=updated + timedelta(minutes=5))
    assert text == "5b7e1c3a… · 5 min ago\t$1.50 ($1.40–$1.60)"
    assert level is Level.OVER
    text, level = session_label(view(SID, None, updating=True), Settings())
    assert text == "5b7e1c3a…\tupdating…" and level is None
    text, _ = session_label(view(SID, 0.1, updating=True), Settings(), now=updated)
    assert text == "5b7e1c3a… · just now · updating…\t$0.10"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "just now"),
        (59, "just now"),
        (60, "1 min ago"),
        (3599, "59 min ago"),
        (7200, "2 h ago"),
        (86400 * 3 + 5, "3 d ago"),
    ],
)
def test_age_text(seconds: int, text: str) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert age_text(now - timedelta(seconds=seconds), now) == text


# -- the controller -------------------------------------------------------------------------------


def test_no_tray_shows_the_fallback_and_keeps_trying(
    qtbot: QtBot, controller: TrayController, no_tray: Availability
) -> None:
    controller.start()
    assert not controller.in_tray
    window = controller.fallback
    assert window is not None and window.isVisible()
    assert controller.retry.isActive()
    calls = no_tray.calls
    qtbot.waitUntil(lambda: no_tray.calls > calls + 1)
    assert controller.fallback is window and not controller.in_tray


def test_moves_to_the_tray_when_one_appears(
    qtbot: QtBot, controller: TrayController, no_tray: Availability
) -> None:
    controller.start()
    no_tray.value = True
    qtbot.waitUntil(lambda: controller.in_tray)
    assert controller.fallback is None
    assert controller.tray.isVisible()
    assert not controller.retry.isActive()


def test_with_a_tray_at_start(qtbot: QtBot) -> None:
    ctl = TrayController(tray_available=lambda: True)
    ctl.start()
    assert ctl.in_tray and ctl.fallback is None and ctl.tray.isVisible()
    assert not ctl.retry.isActive()
    ctl.shutdown()


def test_apply_updates_icon_tooltip_and_fallback(qtbot: QtBot, controller: TrayController) -> None:
    controller.start()
    controller.apply(snapshot(view(SID, 0.95)), Settings())
    assert controller.state.level is Level.CRITICAL
    assert controller.tray.toolTip() == controller.state.tooltip
    assert not controller.tray.icon().isNull()
    window = controller.fallback
    assert window is not None
    assert window.headline.text() == controller.state.headline
    assert window.summary.text().startswith("Session: $0.95")
    pixmap = window.badge.pixmap()
    assert not pixmap.isNull()


def test_closing_the_fallback_never_quits(qtbot: QtBot, controller: TrayController) -> None:
    controller.start()
    window = controller.fallback
    assert window is not None
    with qtbot.assertNotEmitted(QApplication.instance().aboutToQuit, wait=50):  # type: ignore[union-attr]
        assert window.close() is False
    assert controller.fallback is window


def test_menu_lists_sessions_active_first_then_the_actions(qtbot: QtBot, controller: TrayController) -> None:
    controller.apply(snapshot(view(SID, 0.6), view(OTHER, 0.1, updating=True)), Settings())
    controller.menu.aboutToShow.emit()
    section = controller.menu.actions()[0]
    assert section.isSeparator() and section.text() == "Sessions"
    texts = [a.text() for a in controller.menu.actions() if not a.isSeparator()]
    assert texts[0].startswith("5b7e1c3a…") and texts[0].endswith("\t$0.60")
    assert texts[1].startswith("c2d4f6a8…") and "updating…" in texts[1]
    assert texts[2:] == ["Open details…", "Pause notifications", "Settings…", "Quit"]
    session_actions = [a for a in controller.menu.actions() if a.data()]
    assert session_actions[0].font().bold() and not session_actions[1].font().bold()
    with qtbot.waitSignal(controller.open_details) as blocker:
        session_actions[1].trigger()
    assert blocker.args == [OTHER]


def test_menu_caps_the_session_list(qtbot: QtBot, controller: TrayController) -> None:
    views = [view(f"{n:08d}-0000-4000-8000-000000000000", 0.01 * n) for n in range(MAX_MENU_SESSIONS + 3)]
    controller.apply(snapshot(*views), Settings())
    controller.rebuild_menu()
    texts = [a.text() for a in controller.menu.actions()]
    assert len([a for a in controller.menu.actions() if a.data()]) == MAX_MENU_SESSIONS
    assert "3 more in the details window…" in texts


def test_menu_rebuild_replaces_old_entries(qtbot: QtBot, controller: TrayController) -> None:
    controller.apply(snapshot(view(SID, 0.6)), Settings())
    controller.rebuild_menu()
    controller.rebuild_menu()
    assert len([a for a in controller.menu.actions() if a.data()]) == 1
    controller.apply(snapshot(), Settings())
    controller.rebuild_menu()
    assert "No session yet" in [a.text() for a in controller.menu.actions()]


def test_fixed_actions_emit(qtbot: QtBot, controller: TrayController) -> None:
    with qtbot.waitSignal(controller.open_details) as details:
        controller.details_action.trigger()
    assert details.args == [""]
    with qtbot.waitSignal(controller.open_settings):
        controller.settings_action.trigger()
    with qtbot.waitSignal(controller.quit_requested):
        controller.quit_action.trigger()


def test_pause_is_shared_with_the_fallback(qtbot: QtBot, controller: TrayController) -> None:
    controller.start()
    window = controller.fallback
    assert window is not None
    with qtbot.waitSignal(controller.pause_changed) as blocker:
        controller.pause_action.trigger()
    assert blocker.args == [True] and controller.paused
    assert window.pause_box.isChecked()
    window.pause_box.setChecked(False)
    assert not controller.pause_action.isChecked()
    controller.set_paused(True)
    assert window.pause_box.isChecked()


def test_clicking_the_icon_opens_the_active_session(qtbot: QtBot, controller: TrayController) -> None:
    controller.apply(snapshot(view(SID, 0.3)), Settings())
    for reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
        with qtbot.waitSignal(controller.open_details) as blocker:
            controller.tray.activated.emit(reason)
        assert blocker.args == [SID]
    with qtbot.assertNotEmitted(controller.open_details):
        controller.tray.activated.emit(QSystemTrayIcon.ActivationReason.Context)


def test_fallback_buttons(qtbot: QtBot, controller: TrayController) -> None:
    controller.apply(snapshot(view(SID, 0.3)), Settings())
    controller.start()
    window = controller.fallback
    assert window is not None
    with qtbot.waitSignal(controller.open_details) as blocker:
        QTest.mouseClick(window.badge, Qt.MouseButton.LeftButton)
    assert blocker.args == [SID]
    with qtbot.waitSignal(controller.open_settings):
        window.settings_button.click()
    with qtbot.waitSignal(controller.quit_requested):
        window.quit_button.click()
    assert window.menu_button.menu() is controller.menu


def test_messages_go_to_the_fallback_window_without_a_tray(qtbot: QtBot, controller: TrayController) -> None:
    controller.start()
    window = controller.fallback
    assert window is not None
    controller.show_message("mity-cost: 75 %", "Session x is at $0.75", Severity.WARNING, SID)
    assert window.notice.isVisible()
    assert "Session x is at $0.75" in window.notice.text()
    assert window.notice.property("severity") == "warning"
    assert window.isModal() is False
    with qtbot.waitSignal(controller.open_details) as blocker:
        QTest.mouseClick(window.notice, Qt.MouseButton.LeftButton)
    assert blocker.args == [SID]
    window.dismiss.click()
    assert not window.notice.isVisible()


def test_messages_use_the_tray_balloon_in_a_tray(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[tuple[str, str, object, int]] = []
    monkeypatch.setattr(QSystemTrayIcon, "supportsMessages", staticmethod(lambda: True))
    ctl = TrayController(tray_available=lambda: True)
    monkeypatch.setattr(ctl.tray, "showMessage", lambda *args: shown.append(args))
    ctl.start()
    ctl.show_message("title", "body", Severity.CRITICAL, SID)
    assert shown == [("title", "body", QSystemTrayIcon.MessageIcon.Critical, tray_module.MESSAGE_MS)]
    with qtbot.waitSignal(ctl.open_details) as blocker:
        ctl.tray.messageClicked.emit()
    assert blocker.args == [SID]
    ctl.shutdown()


def test_a_message_before_start_is_only_logged(qtbot: QtBot, controller: TrayController) -> None:
    controller.show_message("t", "b", Severity.INFO)
    assert controller.fallback is None


# -- budget alerts and history problems ------------------------------------------------------------


def alert(
    alert_id: int,
    level: int = 75,
    kind: str = "budget_warning",
    subject: str = "app:shop-api:month",
    session: str | None = None,
    age: timedelta = timedelta(minutes=5),
) -> Alert:
    return Alert(
        id=alert_id,
        kind=kind,
        subject=subject,
        level=level,
        period_key="2026-11",
        message=f"Budget {subject} at {level} %: $7.50 of $10.00",
        data={"budgetId": subject.split("@")[0], "sessionId": session},
        created_at=datetime.now(UTC) - age,
    )


def _alert_menus(controller: TrayController) -> list[QMenu]:
    menus = [a.menu() for a in controller.menu.actions() if str(a.data()).startswith("alert:")]
    return [m for m in menus if isinstance(m, QMenu)]


def test_budget_description_and_alert_label() -> None:
    assert budget_description("app:shop-api:month") == "app shop-api, per month"
    assert budget_description("model:unknown:gpt-4o:day") == "model unknown:gpt-4o, per day"
    assert budget_description("overall:*:week") == "everything, per week"
    assert budget_description(f"session:*:session@{SID}") == "each session, per session (session 5b7e1c3a…)"
    assert budget_description("nonsense") == "nonsense"
    first = alert(1)
    now = first.created_at + timedelta(minutes=5)
    assert alert_label(first, now) == "75 % of budget · app shop-api, per month\t5 min ago"
    assert alert_label(alert(2, 100, "budget_exceeded"), now).startswith("Over budget · ")
    assert alert_label(alert(3, 130, "forecast_exceeded"), now).startswith("Projected over budget · ")


def test_no_alerts_no_alerts_section(qtbot: QtBot, controller: TrayController) -> None:
    controller.set_history([], 0, [])
    controller.rebuild_menu()
    assert "Alerts" not in [a.text() for a in controller.menu.actions() if a.isSeparator()]
    assert "alert" not in controller.state.tooltip


def test_alerts_menu_lists_the_newest_with_a_dismiss_each(qtbot: QtBot, controller: TrayController) -> None:
    listed = [alert(9, 90, session=SID), alert(8, 75), alert(7, 100, "budget_exceeded")]
    controller.apply(snapshot(view(SID, 0.2)), Settings())
    controller.set_history(listed, 12, [])
    controller.menu.aboutToShow.emit()
    sections = [a.text() for a in controller.menu.actions() if a.isSeparator() and a.text()]
    assert sections == ["Sessions", "Alerts"]
    menus = _alert_menus(controller)
    assert [m.menuAction().data() for m in menus] == ["alert:9", "alert:8", "alert:7"]
    assert menus[0].title().startswith("90 % of budget")
    first = [a.text() for a in menus[0].actions() if not a.isSeparator()]
    assert first[0] == listed[0].message and first[-3:] == ["Open details…", "Edit budgets…", "Dismiss"]
    texts = [a.text() for a in controller.menu.actions()]
    assert "9 more in the details window…" in texts
    assert "Dismiss these 3 alerts" in texts
    assert "12 budget alerts (see the menu)" in controller.state.tooltip
    with qtbot.waitSignal(controller.open_details) as opened:
        next(a for a in menus[0].actions() if a.text() == "Open details…").trigger()
    assert opened.args == [SID]


def test_dismissing_an_alert_hides_it_and_asks_to_resolve_it(
    qtbot: QtBot, controller: TrayController
) -> None:
    controller.set_history([alert(2), alert(1)], 2, [])
    controller.rebuild_menu()
    dismiss = next(a for a in _alert_menus(controller)[1].actions() if a.text() == "Dismiss")
    with qtbot.waitSignal(controller.dismiss_alerts) as blocker:
        dismiss.trigger()
    assert blocker.args == [(1,)]
    assert [a.id for a in controller.alerts] == [2]
    assert "1 budget alert (see the menu)" in controller.state.tooltip
    controller.rebuild_menu()
    assert [m.menuAction().data() for m in _alert_menus(controller)] == ["alert:2"]
    assert not any(a.text().startswith("Dismiss these") for a in controller.menu.actions())


def test_dismiss_all_shown(qtbot: QtBot, controller: TrayController) -> None:
    controller.set_history([alert(n) for n in (5, 4, 3)], 3, [])
    controller.rebuild_menu()
    every = next(a for a in controller.menu.actions() if a.text() == "Dismiss these 3 alerts")
    with qtbot.waitSignal(controller.dismiss_alerts) as blocker:
        every.trigger()
    assert blocker.args == [(5, 4, 3)]
    assert controller.alerts == ()
    controller.rebuild_menu()
    assert _alert_menus(controller) == []


def test_the_menu_caps_the_alerts(qtbot: QtBot, controller: TrayController) -> None:
    controller.set_history([alert(n) for n in range(20, 10, -1)], 10, [])
    controller.rebuild_menu()
    assert len(_alert_menus(controller)) == MAX_MENU_ALERTS
    assert "5 more in the details window…" in [a.text() for a in controller.menu.actions()]


def test_a_history_problem_shows_in_the_menu_and_tooltip(qtbot: QtBot, controller: TrayController) -> None:
    problem = "the spending history cannot be used: file is not a database"
    controller.start()
    controller.apply(snapshot(view(SID, 0.2)), Settings())
    controller.set_history([], 0, [problem])
    assert "The spending history cannot be used: file is not a database" in controller.state.tooltip
    assert controller.state.text == "$0.20"  # the badge still shows the session
    controller.rebuild_menu()
    notes = [a for a in controller.menu.actions() if a.toolTip() == problem]
    assert len(notes) == 1 and not notes[0].isEnabled()
    window = controller.fallback
    assert window is not None and "not a database" in window.notes.text()
    controller.set_history([], 0, [])
    assert "database" not in controller.state.tooltip


def test_an_exceeded_alert_absorbs_its_100_percent_warning(qtbot: QtBot, controller: TrayController) -> None:
    exceeded, warning, other = (
        alert(3, 100, "budget_exceeded"),
        alert(2, 100),
        alert(1, 50, subject="overall:*:day"),
    )
    controller.set_history([exceeded, warning, other], 3, [])
    assert "2 budget alerts (see the menu)" in controller.state.tooltip
    controller.rebuild_menu()
    menus = _alert_menus(controller)
    assert [m.menuAction().data() for m in menus] == ["alert:3", "alert:1"]
    assert "Dismiss these 2 alerts" in [a.text() for a in controller.menu.actions()]
    with qtbot.waitSignal(controller.open_budgets):
        next(a for a in menus[0].actions() if a.text() == "Edit budgets…").trigger()
    with qtbot.waitSignal(controller.dismiss_alerts) as blocker:
        next(a for a in menus[0].actions() if a.text() == "Dismiss").trigger()
    assert blocker.args == [(3, 2)]
    assert [a.id for a in controller.alerts] == [1]
    assert "1 budget alert (see the menu)" in controller.state.tooltip
