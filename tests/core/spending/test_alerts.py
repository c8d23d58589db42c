"""Alerts: one per level per period, cooldown, resolution, persistence, notification hand-off."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from mity_cost.core.gate.thresholds import Severity
from mity_cost.core.spending import alerts
from mity_cost.core.spending.budgets import Budget, BudgetStatus, evaluate
from mity_cost.core.spending.history import History
from tests.core.history_helpers import NOW, open_history, row


def priced(model: str) -> bool:
    return True


def _statuses(store: History, budget: Budget, at=NOW) -> list[BudgetStatus]:  # type: ignore[no-untyped-def]
    return evaluate([budget], store, at, is_priced=priced)


def _spend(store: History, uid: str, amount: float, at=NOW) -> None:  # type: ignore[no-untyped-def]
    store.ingest_rows([row(uid, at, amount)], now=at)


def test_levels_fire_once_each_and_a_jump_fires_only_the_highest(tmp_path: Path) -> None:
    budget = Budget("overall", None, "month", 10)
    with open_history(tmp_path) as store:
        _spend(store, "llm:1", 4.0)
        assert alerts.check(store, _statuses(store, budget), NOW) == []
        _spend(store, "llm:2", 1.5)  # 55 %
        (first,) = alerts.check(store, _statuses(store, budget), NOW)
        assert (first.kind, first.level, first.severity) == ("budget_warning", 50, Severity.INFO)
        assert alerts.check(store, _statuses(store, budget), NOW) == []  # nothing new
        _spend(store, "llm:3", 4.0)  # 95 %: 75 is skipped, 90 fires
        (second,) = alerts.check(store, _statuses(store, budget), NOW)
        assert (second.level, second.severity) == (90, Severity.CRITICAL)
        assert "$9.50 of $10.00" in second.message
        open_ = alerts.list_alerts(store, unresolved=True)
        assert [a.level for a in open_] == [90]  # the 50 % one is superseded
        assert alerts.get_alert(store, first.id).resolution == "superseded"  # type: ignore[union-attr]


def test_exceeding_raises_both_the_100_warning_and_exceeded_once(tmp_path: Path) -> None:
    budget = Budget("app", "x", "day", 1, enforcement="hard_stop")
    with open_history(tmp_path) as store:
        store.ingest_rows([row("llm:1", NOW, 1.5, app="x")], now=NOW)
        raised = alerts.check(store, _statuses(store, budget), NOW)
        assert sorted((a.kind, a.level) for a in raised) == [
            ("budget_exceeded", 100),
            ("budget_warning", 100),
        ]
        exceeded = next(a for a in raised if a.kind == "budget_exceeded")
        assert exceeded.severity is Severity.CRITICAL and exceeded.data["enforcement"] == "hard_stop"
        assert alerts.check(store, _statuses(store, budget), NOW) == []


def test_alerts_survive_a_restart_without_repeating(tmp_path: Path) -> None:
    budget = Budget("overall", None, "month", 10)
    with open_history(tmp_path) as store:
        _spend(store, "llm:1", 8.0)
        assert len(alerts.check(store, _statuses(store, budget), NOW)) == 1
    with open_history(tmp_path) as store:
        assert alerts.check(store, _statuses(store, budget), NOW + timedelta(hours=5)) == []
        assert len(alerts.list_alerts(store)) == 1


def test_a_new_period_resolves_the_old_alerts_and_may_alert_again(tmp_path: Path) -> None:
    budget = Budget("overall", None, "day", 1)
    with open_history(tmp_path) as store:
        _spend(store, "llm:1", 0.8)
        (today,) = alerts.check(store, _statuses(store, budget), NOW)
        tomorrow = NOW + timedelta(days=1)
        assert alerts.check(store, _statuses(store, budget, tomorrow), tomorrow) == []
        assert alerts.get_alert(store, today.id).resolution == "period ended"  # type: ignore[union-attr]
        _spend(store, "llm:2", 0.8, tomorrow)
        (again,) = alerts.check(store, _statuses(store, budget, tomorrow), tomorrow)
        assert again.period_key != today.period_key and again.level == today.level


def test_the_cooldown_holds_back_a_level_that_flaps(tmp_path: Path) -> None:
    """A daily budget crossed just before and just after midnight alerts once within the cooldown."""
    budget = Budget("overall", None, "day", 1)
    before = NOW.replace(hour=23, minute=50)
    after = before + timedelta(minutes=20)
    with open_history(tmp_path) as store:
        _spend(store, "llm:1", 0.8, before)
        assert len(alerts.check(store, _statuses(store, budget, before), before)) == 1
        _spend(store, "llm:2", 0.8, after)
        assert alerts.check(store, _statuses(store, budget, after), after) == []
        later = after + timedelta(hours=2)
        _spend(store, "llm:3", 0.01, later)
        assert len(alerts.check(store, _statuses(store, budget, later), later)) == 1


def test_falling_back_under_a_level_resolves_it(tmp_path: Path) -> None:
    budget = Budget("overall", None, "month", 10)
    with open_history(tmp_path) as store:
        _spend(store, "llm:1", 6.0)
        (alert,) = alerts.check(store, _statuses(store, budget), NOW)
        raised = Budget("overall", None, "month", 100)  # the user raised the amount
        alerts.check(store, _statuses(store, raised), NOW)
        assert alerts.get_alert(store, alert.id).resolution == "below level"  # type: ignore[union-attr]


def test_forecast_and_removed_budgets(tmp_path: Path) -> None:
    budget = Budget("overall", None, "month", 10)
    with open_history(tmp_path) as store:
        _spend(store, "llm:1", 1.0)
        statuses = _statuses(store, budget)
        (forecast,) = alerts.check(store, statuses, NOW, forecasts={statuses[0].key: 12.0})
        assert forecast.kind == "forecast_exceeded" and forecast.data["projected"] == 12.0
        assert alerts.check(store, statuses, NOW, forecasts={statuses[0].key: 12.0}) == []
        other = Budget("overall", None, "week", 50)
        alerts.check(store, _statuses(store, other), NOW)  # the month budget is gone
        assert alerts.get_alert(store, forecast.id).resolution == "budget removed"  # type: ignore[union-attr]


def test_task_estimate_high_and_manual_resolution(tmp_path: Path) -> None:
    budget = Budget("overall", None, "month", 10)
    with open_history(tmp_path) as store:
        _spend(store, "llm:1", 8.0)
        (status,) = _statuses(store, budget)
        assert alerts.task_estimate_alert(store, status, 1.0, now=NOW) is None
        high = alerts.task_estimate_alert(store, status, 3.0, operation="deploy", now=NOW)
        assert high is not None and "deploy" in high.message and high.data["percent"] == 110
        assert (
            alerts.task_estimate_alert(store, status, 5.0, now=NOW + timedelta(minutes=5)) is None
        )  # cooldown
        assert alerts.task_estimate_alert(store, status, 5.0, now=NOW + timedelta(hours=2)) is not None
        assert alerts.resolve(store, high.id, NOW) is True
        assert alerts.resolve(store, high.id, NOW) is False
        assert high.id not in {a.id for a in alerts.list_alerts(store, unresolved=True)}


def test_each_alert_is_handed_to_the_notifier_once(tmp_path: Path) -> None:
    budget = Budget("overall", None, "month", 10)
    with open_history(tmp_path) as store:
        _spend(store, "llm:1", 8.0)
        alerts.check(store, _statuses(store, budget), NOW)  # raised by, say, the command line
    with open_history(tmp_path) as tray:
        shown = alerts.take_unnotified(tray, NOW)
        assert [a.level for a in shown] == [75]
        assert alerts.take_unnotified(tray, NOW) == []
        assert shown[0].to_json()["severity"] == "warning"


def test_per_session_budgets_alert_per_session(tmp_path: Path) -> None:
    budget = Budget("session", None, "session", 1)
    with open_history(tmp_path) as store:
        store.ingest_rows([row("llm:a", NOW, 0.9, session="A"), row("llm:b", NOW, 0.6, session="B")], now=NOW)
        statuses = evaluate([budget], store, NOW, {}, session_id="A", is_priced=priced)
        statuses += evaluate([budget], store, NOW, {}, session_id="B", is_priced=priced)
        raised = alerts.check(store, statuses, NOW)
        assert sorted((a.subject, a.level) for a in raised) == [
            ("session:*:session@A", 90),
            ("session:*:session@B", 50),
        ]
        # Checking only session B later does not resolve session A's alert.
        alerts.check(store, statuses[1:], NOW)
        assert len(alerts.list_alerts(store, unresolved=True)) == 2


def test_refresh_runs_a_whole_pass_for_the_tray(tmp_path: Path, example_root: Path) -> None:
    from mity_cost.core.factory.loading import LoadedSession, load_session
    from mity_cost.core.live.snapshot import SessionView, Snapshot
    from mity_cost.core.settings import Settings
    from mity_cost.core.spending.budgets import live_sessions

    views = []
    for path in sorted(example_root.glob(".mity/chat/*/cost.json")):
        loaded = load_session(path)
        assert isinstance(loaded, LoadedSession)
        views.append(SessionView(path.parent.name, example_root, path.parent, loaded))
    snapshot = Snapshot(tuple(views))
    settings = Settings()
    live = live_sessions(snapshot, settings)
    assert set(live) == {v.session_id for v in views}
    busiest = max(live.values(), key=lambda s: s.total.expected)
    plan = [Budget("session", None, "session", busiest.total.expected / 0.8)]
    with open_history(tmp_path) as store:
        store.ingest_snapshot(snapshot, now=NOW)
        first = alerts.refresh(store, plan, settings, live, session_id=busiest.session_id, now=NOW)
        assert len(first.statuses) == len(live)
        mine = next(s for s in first.statuses if s.session_id == busiest.session_id)
        assert mine.spent.expected == busiest.total.expected  # the ledger, as the badge shows it
        assert any(a.subject == mine.key and a.level == 75 for a in first.new_alerts)
        again = alerts.refresh(store, plan, settings, live, session_id=busiest.session_id, now=NOW)
        assert again.new_alerts == ()
        assert {a.id for a in alerts.take_unnotified(store, NOW)} == {a.id for a in first.new_alerts}
