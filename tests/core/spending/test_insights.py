"""The details window's budgets and forecast figures equal the history and the core functions."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.pricing.audit import audit_session
from mity_cost.core.settings import Settings
from mity_cost.core.spending import alerts, forecast
from mity_cost.core.spending.budgets import evaluate, live_sessions, tightest
from mity_cost.core.spending.history import History
from mity_cost.core.spending.insights import (
    ALERT_LIMIT,
    TREND_DAYS,
    InsightsEngine,
    book_pricer,
    compute_insights,
    day_start,
    duration_text,
    trend_series,
)
from tests.core.breakdown_helpers import BIGGEST, WITH_INFRA, snapshot_of
from tests.core.insights_helpers import APP, BUDGETS, EARLIER_DAYS, NOW, World, book, compute, make_world


@pytest.fixture
def world(example_root: Path, tmp_path: Path) -> Iterator[World]:
    made = make_world(example_root, tmp_path)
    yield made
    made.history.close()


def test_budget_figures_trace_to_the_records_and_equal_evaluate(
    world: World,
) -> None:
    snapshot, history, _ = world
    insights = compute(world)
    settings = Settings()
    direct = evaluate(
        BUDGETS,
        history,
        NOW,
        live_sessions(snapshot, settings),
        session_id=BIGGEST,
        settings=settings,
        is_priced=book_pricer(book()),
    )
    by_key = {s.key: s for s in direct}
    shown = {line.status.key: line for line in insights.budgets}
    assert set(shown) == {"app:shop-api:month", "overall:*:day", f"session:*:session@{BIGGEST}"}
    for key, line in shown.items():
        assert line.status.spent == by_key[key].spent
        assert line.binding.key == tightest(by_key[key], direct).key
    # The app's month and the overall day are sums of records in the history.
    month_sum = history.query(
        "SELECT SUM(cost_expected) FROM records WHERE app = ? AND day BETWEEN '2026-11-01' AND '2026-11-30'",
        (APP,),
    )[0][0]
    day_sum = history.query("SELECT SUM(cost_expected) FROM records WHERE day = '2026-11-22'")[0][0]
    assert math.isclose(shown["app:shop-api:month"].status.spent.expected, month_sum, rel_tol=1e-9)
    assert math.isclose(shown["overall:*:day"].status.spent.expected, day_sum, rel_tol=1e-9)
    # A per-session budget measures the session's own ledger.
    view = snapshot.find(BIGGEST)
    assert view is not None and view.loaded is not None
    ledger = view.loaded.doc["sessionCost"]["total"]["expected"]
    assert shown[f"session:*:session@{BIGGEST}"].status.spent.expected == pytest.approx(ledger)
    assert insights.budget_count == len(BUDGETS) and not insights.budget_problems


def test_the_tighter_of_nested_budgets_is_named(world: World) -> None:
    insights = compute(world)
    lines = {line.status.key: line for line in insights.budgets}
    app, day = lines["app:shop-api:month"], lines["overall:*:day"]
    # Whichever has less left binds the app's budget, and is the one to highlight.
    expected_binding = day if day.status.remaining < app.status.remaining else app
    assert app.binding.key == expected_binding.status.key
    assert app.constrained == (expected_binding is day)
    assert (day.status.key in insights.binding_keys) == app.constrained
    assert not day.constrained
    # In this world the day is the tighter one (the app's month has more left).
    assert app.constrained and app.binding.key == "overall:*:day"


def test_per_session_budgets_follow_the_selected_session(world: World) -> None:
    for session_id in (BIGGEST, WITH_INFRA):
        insights = compute(world, session_id)
        per_session = [line for line in insights.budgets if line.status.budget.scope == "session"]
        assert [line.status.session_id for line in per_session] == [session_id]
        assert insights.session_id == session_id


def test_burn_month_daily_alerts_and_audit_equal_direct_calls(world: World) -> None:
    snapshot, history, _ = world
    insights = compute(world)
    settings = Settings()
    view = snapshot.find(BIGGEST)
    assert view is not None and view.loaded is not None
    burn = forecast.session_burn(view.loaded.doc, NOW, settings, execution_seen_at=view.execution_seen_at)
    assert insights.burn == burn
    assert insights.month == forecast.month_forecast(history, settings, NOW)
    assert insights.month is not None and insights.month.method != "none"  # ten days of history
    daily = forecast.daily_series(history, TREND_DAYS, NOW, currency="USD", eur_per_usd=settings.eur_per_usd)
    assert list(insights.daily) == daily
    assert list(insights.alerts) == alerts.list_alerts(history, unresolved=True, limit=ALERT_LIMIT)
    # The overall day budget is exceeded: its alert was raised by this pass and is listed.
    kinds = {(a.kind, a.subject) for a in insights.new_alerts}
    over = next(line for line in insights.budgets if line.status.key == "overall:*:day").status.over
    assert (("budget_exceeded", "overall:*:day") in kinds) == over
    assert {a.id for a in insights.new_alerts} <= {a.id for a in alerts.list_alerts(history, unresolved=True)}
    audit = audit_session(view.loaded, book(), 0.10)
    assert insights.audit is not None
    assert insights.audit.money_at_stake == pytest.approx(audit.money_at_stake)
    assert [line.price.key for line in insights.audit.flagged] == [line.price.key for line in audit.flagged]


def test_month_to_date_and_the_trend_chart_match_the_projection(
    world: World,
) -> None:
    insights = compute(world)
    month = insights.month
    assert month is not None
    days = [day for day, _ in insights.month_to_date]
    assert days[0] == month.start and days[-1] == month.today
    assert insights.month_to_date[-1][1] == pytest.approx(month.spent)
    trend = trend_series(insights)
    assert trend.expected == tuple(p.cost.expected for p in insights.daily)
    assert trend.x[0] == day_start(insights.daily[0].day, UTC) + 43200.0
    assert trend.month_y[-1] == pytest.approx(month.spent)
    assert trend.projection_y[-1] == month.projected
    assert (trend.projection_low[-1], trend.projection_high[-1]) == (month.low, month.high)
    assert trend.projection_x[-1] == day_start(month.end + timedelta(days=1), UTC)


def test_taking_in_is_idempotent(world: World) -> None:
    snapshot, history, _ = world
    first = compute(world)
    records = sum(
        len(v.loaded.doc["llmUsage"]) + len(v.loaded.doc["executionCosts"])
        for v in snapshot.sessions
        if v.loaded is not None
    )
    assert first.ingested == records
    assert compute(world).ingested == 0
    assert history.record_count() == records + EARLIER_DAYS


def test_no_alerts_are_written_when_asked_not_to(world: World) -> None:
    _, history, _ = world
    insights = compute(world, raise_alerts=False)
    assert insights.new_alerts == () and alerts.list_alerts(history) == []


def test_no_budgets_and_a_broken_budgets_file(world: World, tmp_path: Path) -> None:
    empty = compute(world, budget_path=tmp_path / "none.json")
    assert empty.budgets == () and empty.budget_count == 0 and not empty.budget_problems
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    insights = compute(world, budget_path=broken)
    assert insights.budgets == () and insights.budget_problems
    assert insights.month is not None  # the rest is still shown


def test_without_a_history_the_session_figures_remain(world: World) -> None:
    snapshot, _, budget_path = world
    insights = compute_insights(
        snapshot, Settings(), BIGGEST, None, book=book(), now=NOW, budget_path=budget_path, problems=("gone",)
    )
    assert insights.problems == ("gone",)
    assert insights.budgets == () and insights.month is None and insights.daily == ()
    assert insights.burn is not None and insights.audit is not None


def test_an_empty_snapshot(tmp_path: Path) -> None:
    with History(tmp_path / "h.sqlite3", tz=UTC) as history:
        insights = compute_insights(Snapshot(), Settings(), None, history, now=NOW)
    assert insights.session_id is None and insights.burn is None and insights.audit is None
    assert insights.month is not None and insights.month.spent == 0.0
    assert len(insights.daily) == TREND_DAYS and not insights.problems


def test_display_currency_is_honoured(world: World) -> None:
    snapshot, history, budget_path = world
    settings = Settings(currency="EUR", eur_per_usd=0.9)
    insights = compute_insights(
        snapshot, settings, BIGGEST, history, book=book(), now=NOW, budget_path=budget_path
    )
    assert insights.symbol == "€"
    assert insights.month == forecast.month_forecast(history, settings, NOW)
    usd = forecast.month_forecast(history, Settings(), NOW)
    assert insights.month is not None and insights.month.spent == pytest.approx(usd.spent * 0.9)


def test_the_engine_keeps_the_history_and_the_audit(example_root: Path, tmp_path: Path) -> None:
    snapshot = snapshot_of(example_root)
    path = tmp_path / "engine" / "history.sqlite3"
    engine = InsightsEngine(history_path=path, budget_path=tmp_path / "b.json", clock=lambda: NOW)
    prices = book()
    first = engine.run(snapshot, Settings(), BIGGEST, prices)
    assert path.exists() and first.ingested > 0 and not first.problems
    second = engine.run(snapshot, Settings(), BIGGEST, prices)
    assert second.audit is first.audit and second.ingested == 0
    other = engine.run(snapshot, Settings(), WITH_INFRA, prices)
    assert other.audit is not None and other.audit.session_id == WITH_INFRA
    engine.close()


def test_an_unusable_history_is_reported(example_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    engine = InsightsEngine(history_path=blocker / "history.sqlite3", clock=lambda: NOW)
    insights = engine.run(snapshot_of(example_root), Settings(), BIGGEST, book())
    assert insights.problems and "history" in insights.problems[0]
    assert insights.burn is not None
    engine.close()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "under a minute"),
        (25 * 60, "~25 min"),
        (3.5 * 3600, "~3.5 h"),
        (30 * 3600, "~30 h"),
        (5 * 86400, "~5 days"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert duration_text(timedelta(seconds=seconds)) == text


def test_day_start_is_midnight_in_the_zone() -> None:
    assert day_start(date(2026, 11, 22), UTC) == datetime(2026, 11, 22, tzinfo=UTC).timestamp()
