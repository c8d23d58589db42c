"""Burn rate, period projections and the daily series."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mity_cost.core.settings import Settings
from mity_cost.core.spending import forecast
from mity_cost.core.spending.budgets import Budget, evaluate
from tests.core.history_helpers import NOW, open_history, row, session_docs


def test_no_rate_from_one_record_or_none() -> None:
    assert forecast.burn_rate([], NOW).per_hour is None
    one = forecast.burn_rate([(NOW.timestamp() - 60, 0.5)], NOW, total=0.5, threshold=1.0)
    assert one.per_hour is None and one.time_to_threshold is None and one.records == 1


def test_rate_and_time_to_threshold() -> None:
    start = NOW - timedelta(minutes=30)
    points = [(start.timestamp() + 300 * i, 0.1) for i in range(6)]  # one call every 5 minutes
    burn = forecast.burn_rate(points, NOW, total=0.6, threshold=1.0)
    expected_rate = 0.5 / 0.5  # five calls after the first, over the half hour since it
    assert burn.per_hour == pytest.approx(expected_rate)
    assert burn.time_to_threshold == timedelta(hours=(1.0 - 0.6) / expected_rate)
    assert burn.projected_at == NOW + burn.time_to_threshold
    assert forecast.burn_rate(points, NOW, total=1.2, threshold=1.0).time_to_threshold == timedelta(0)


def test_an_idle_session_decays_then_reads_zero() -> None:
    points = [(NOW.timestamp() - 600, 0.1), (NOW.timestamp() - 540, 0.1)]
    soon = forecast.burn_rate(points, NOW, total=0.2)
    later = forecast.burn_rate(points, NOW + timedelta(minutes=40), total=0.2)
    idle = forecast.burn_rate(points, NOW + timedelta(hours=2), total=0.2, threshold=1.0)
    assert soon.per_hour is not None and later.per_hour is not None and later.per_hour < soon.per_hour
    assert idle.per_hour == 0.0 and idle.time_to_threshold is None and "idle" in idle.note


def test_a_burst_within_a_minute_is_not_an_absurd_rate() -> None:
    points = [(NOW.timestamp() - 1, 0.1), (NOW.timestamp(), 0.1)]
    burn = forecast.burn_rate(points, NOW)
    assert burn.per_hour == pytest.approx(0.1 / forecast.MIN_SPAN * 3600)


def test_session_burn_reads_a_document_in_the_display_currency(example_root: Path) -> None:
    doc = max(session_docs(example_root).values(), key=lambda d: len(d["llmUsage"]))
    stamps = sorted(datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for r in doc["llmUsage"])
    now = stamps[-1] + timedelta(minutes=1)
    usd = forecast.session_burn(doc, now, Settings(threshold=100.0))
    eur = forecast.session_burn(doc, now, Settings(threshold=100.0, currency="EUR", eur_per_usd=0.5))
    assert usd.per_hour is not None and usd.per_hour > 0
    assert eur.per_hour == pytest.approx(usd.per_hour * 0.5)
    assert usd.total == pytest.approx(doc["sessionCost"]["total"]["expected"])
    no_llm = forecast.session_burn(doc, now, Settings(llm_enabled=False))
    assert no_llm.total == pytest.approx(
        doc["sessionCost"]["total"]["expected"] - doc["sessionCost"]["breakdown"]["llm"]["expected"]
    )


def _daily(tmp_path: Path, amounts: list[float], now: datetime = NOW):  # type: ignore[no-untyped-def]
    store = open_history(tmp_path)
    rows = [
        row(f"llm:{i}", now - timedelta(days=len(amounts) - i), amount)
        for i, amount in enumerate(amounts)
        if amount
    ]
    store.ingest_rows(rows, now=now)
    return store


def test_a_steady_spend_projects_its_mean_with_high_confidence(tmp_path: Path) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    with _daily(tmp_path, [2.0] * 20, now) as store:
        projection = forecast.month_forecast(store, Settings(), now)
        days_left = (projection.end - projection.today).days + 0.5  # half of today is left
        spent = 2.0 * (now.day - 1)
        assert projection.spent == pytest.approx(spent)
        assert projection.projected == pytest.approx(spent + 2.0 * days_left)
        assert projection.low == pytest.approx(projection.projected)
        assert projection.high == pytest.approx(projection.projected)
        assert projection.method == "linear" and projection.confidence_label == "high"
        assert projection.basis_days == forecast.BASIS_DAYS or projection.basis_days == 20


def test_a_rising_spend_projects_above_its_mean(tmp_path: Path) -> None:
    now = datetime(2026, 11, 15, 0, 0, tzinfo=UTC)
    with _daily(tmp_path, [float(i) for i in range(1, 15)], now) as store:
        projection = forecast.month_forecast(store, Settings(), now)
        flat = projection.spent + projection.daily_mean * ((projection.end - projection.today).days + 1)
        assert projection.slope_per_day == pytest.approx(1.0)
        assert projection.projected > flat
        assert projection.low <= projection.projected <= projection.high


def test_a_noisy_short_history_uses_the_mean_and_says_so(tmp_path: Path) -> None:
    now = datetime(2026, 11, 4, 0, 0, tzinfo=UTC)
    with _daily(tmp_path, [1.0, 5.0, 0.0], now) as store:
        projection = forecast.month_forecast(store, Settings(), now)
        assert projection.method == "mean" and projection.basis_days == 3
        assert projection.daily_mean == pytest.approx(2.0)
        assert projection.high - projection.low > 0
        assert projection.confidence_label == "low"
        assert any("no trend" in a for a in projection.assumptions)


def test_an_empty_history_projects_what_is_spent(tmp_path: Path) -> None:
    with open_history(tmp_path) as store:
        projection = forecast.month_forecast(store, Settings(), NOW)
        assert projection.method == "none" and projection.projected == projection.spent == 0.0
        assert projection.to_json()["confidenceLabel"] == "low"


def test_budget_forecasts_need_a_few_days_of_history(tmp_path: Path) -> None:
    budget = Budget("overall", None, "month", 10)
    with _daily(tmp_path, [3.0], NOW) as store:
        statuses = evaluate([budget], store, NOW, is_priced=lambda m: True)
        assert forecast.budget_forecasts(store, statuses, Settings(), NOW) == {}
    with _daily(tmp_path / "more", [3.0] * 5, NOW) as store:
        statuses = evaluate([budget], store, NOW, is_priced=lambda m: True)
        projected = forecast.budget_forecasts(store, statuses, Settings(), NOW)
        assert projected[statuses[0].key] > 10
        session = evaluate([Budget("session", None, "session", 1)], store, NOW, is_priced=lambda m: True)
        assert forecast.project_budget(store, session[0], Settings(), NOW) is None


def test_daily_series_fills_missing_days_with_zeros(tmp_path: Path) -> None:
    with _daily(tmp_path, [1.0, 0.0, 3.0], NOW) as store:
        series = forecast.daily_series(store, 7, NOW)
        assert len(series) == 7 and series[-1].day == NOW.date()
        assert [p.day for p in series] == sorted(p.day for p in series)
        costs = {p.day: p.cost.expected for p in series}
        assert costs[NOW.date() - timedelta(days=3)] == 1.0
        assert costs[NOW.date() - timedelta(days=2)] == 0.0
        assert costs[NOW.date() - timedelta(days=1)] == 3.0
        assert math.fsum(costs.values()) == pytest.approx(4.0)
        assert series[0].to_json()["day"] == series[0].day.isoformat()
