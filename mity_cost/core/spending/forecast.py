"""Burn rate and forecasts: how fast the active session spends, and where a period will end.

Burn rate (:func:`burn_rate`): the cost of the records of the last hour, except the first one, over
the time from that first record to now (so an idle session's rate decays instead of freezing, and one
record alone gives no rate at all); at least 60 s of span is assumed.  With the current total and the
threshold it gives the time left before the threshold at that pace.

Period forecast (:func:`project`): the spending so far in a calendar window plus a prediction for
its remaining time, from the daily totals of up to the last 28 complete days of history (days before
the history's first record are not counted as zeros).  With 7 days or more a least-squares line
through the daily totals (negative predictions clamped to 0); with fewer, their mean.  The interval
is a 90 % one assuming the days are independent with normally distributed residuals around the
line (half-width 1.645 x s x sqrt(days left)); it ignores the uncertainty of the line itself and
anything the past does not show (a new project starting, a holiday).  The confidence (0-1) grows
with the days of data (full at 14) and shrinks with the width of the interval.

Stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from mity_cost.core.settings import Settings
from mity_cost.core.spending.budgets import BudgetStatus, period_window
from mity_cost.core.spending.history import Dimension, History, Totals, parse_timestamp, rates_for

BURN_WINDOW = 3600.0
MIN_SPAN = 60.0
BASIS_DAYS = 28
FULL_CONFIDENCE_DAYS = 14
MIN_TREND_DAYS = 7
Z90 = 1.645
MIN_ALERT_DAYS = 3
"""A budget forecast needs this many complete days of history before it may raise an alert."""


@dataclass(frozen=True)
class BurnRate:
    """How fast a session spends."""

    per_hour: float | None
    """Currency per hour (``None``: not enough records in the window to tell)."""
    records: int
    """Records in the window."""
    window_seconds: float
    total: float
    threshold: float | None
    time_to_threshold: timedelta | None
    """At this pace, how long until the total passes the threshold (zero when already past;
    ``None`` without a rate, or at a zero rate)."""
    projected_at: datetime | None
    note: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {
            "perHour": self.per_hour,
            "records": self.records,
            "windowSeconds": self.window_seconds,
            "total": self.total,
            "threshold": self.threshold,
            "secondsToThreshold": (
                self.time_to_threshold.total_seconds() if self.time_to_threshold is not None else None
            ),
            "projectedAt": self.projected_at.isoformat() if self.projected_at else None,
            "note": self.note,
        }


def burn_rate(
    points: Iterable[tuple[float, float]],
    now: datetime,
    *,
    total: float = 0.0,
    threshold: float | None = None,
    window: float = BURN_WINDOW,
) -> BurnRate:
    """The rate from ``(unix time, cost)`` points of a session (see the module docstring)."""
    stamp = now.timestamp()
    recent = sorted((t, c) for t, c in points if stamp - window <= t <= stamp + 1.0 and c >= 0)
    rate: float | None = None
    note = "not enough recent records to measure a rate"
    if len(recent) >= 2:
        span = max(stamp - recent[0][0], MIN_SPAN)
        rate = math.fsum(c for _, c in recent[1:]) / span * 3600.0
        note = f"{len(recent)} records in the last {window / 60:.0f} min"
    elif not recent:
        note = "no records in the last hour (idle)"
        rate = 0.0 if total > 0 else None
    eta: timedelta | None = None
    when: datetime | None = None
    if threshold is not None and rate is not None:
        if total > threshold:
            eta, when = timedelta(0), now
        elif rate > 0:
            eta = timedelta(hours=(threshold - total) / rate)
            when = now + eta
    return BurnRate(rate, len(recent), window, total, threshold, eta, when, note)


def session_points(
    doc: Mapping[str, Any],
    *,
    scale: float = 1.0,
    execution_seen_at: Sequence[float] = (),
    llm_enabled: bool = True,
) -> list[tuple[float, float]]:
    """``(unix time, cost)`` of a session document's records (executions at their first-seen time)."""
    points: list[tuple[float, float]] = []
    records = doc.get("llmUsage")
    if llm_enabled and isinstance(records, list):
        for record in records:
            if not isinstance(record, Mapping):
                continue
            ts = parse_timestamp(record.get("timestamp"))
            cost = record.get("cost")
            if ts is not None and isinstance(cost, int | float) and not isinstance(cost, bool):
                points.append((ts, float(cost) * scale))
    executions = doc.get("executionCosts")
    if isinstance(executions, list):
        for index, execution in enumerate(executions):
            cost = execution.get("cost") if isinstance(execution, Mapping) else None
            expected = cost.get("expected") if isinstance(cost, Mapping) else None
            if index < len(execution_seen_at) and isinstance(expected, int | float):
                points.append((execution_seen_at[index], float(expected) * scale))
    return points


def session_burn(
    doc: Mapping[str, Any],
    now: datetime,
    settings: Settings,
    *,
    total: float | None = None,
    execution_seen_at: Sequence[float] = (),
) -> BurnRate:
    """The burn rate of one session in the display currency, against ``settings.threshold``.

    ``total`` defaults to the ledger's expected total (converted; LLM left out when disabled).
    """
    currency = str(doc.get("currency", "USD"))
    scale = settings.convert(1.0, currency)
    if total is None:
        ledger = doc.get("sessionCost")
        ledger_total = ledger.get("total") if isinstance(ledger, Mapping) else None
        expected = ledger_total.get("expected") if isinstance(ledger_total, Mapping) else 0.0
        total = float(expected) * scale if isinstance(expected, int | float) else 0.0
        if not settings.llm_enabled and isinstance(ledger, Mapping):
            llm = ledger.get("breakdown", {}).get("llm", {}).get("expected", 0.0)
            total -= float(llm) * scale if isinstance(llm, int | float) else 0.0
    points = session_points(
        doc, scale=scale, execution_seen_at=execution_seen_at, llm_enabled=settings.llm_enabled
    )
    return burn_rate(points, now, total=total, threshold=settings.threshold)


# --------------------------------------------------------------------------- period projections


Confidence = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class Projection:
    """Spending in a calendar window so far, and where it is projected to end."""

    start: date
    end: date
    today: date
    spent: float
    projected: float
    low: float
    high: float
    confidence: float
    basis_days: int
    daily_mean: float
    slope_per_day: float
    method: Literal["linear", "mean", "none"]
    currency: str
    assumptions: tuple[str, ...]

    @property
    def confidence_label(self) -> Confidence:
        """``high`` from 0.7, ``medium`` from 0.4, else ``low``."""
        if self.confidence >= 0.7:
            return "high"
        return "medium" if self.confidence >= 0.4 else "low"

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "today": self.today.isoformat(),
            "spent": self.spent,
            "projected": self.projected,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "confidenceLabel": self.confidence_label,
            "basisDays": self.basis_days,
            "dailyMean": self.daily_mean,
            "slopePerDay": self.slope_per_day,
            "method": self.method,
            "currency": self.currency,
            "assumptions": list(self.assumptions),
        }


def _fit(values: Sequence[float]) -> tuple[float, float, float, Literal["linear", "mean", "none"]]:
    """(intercept, slope, residual s.d., method) of daily totals indexed 0..n-1."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0, "none"
    mean = math.fsum(values) / n
    if n < MIN_TREND_DAYS:
        spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else mean
        return mean, 0.0, spread, "mean"
    xs = range(n)
    x_mean = (n - 1) / 2
    sxx = math.fsum((x - x_mean) ** 2 for x in xs)
    slope = math.fsum((x - x_mean) * (v - mean) for x, v in zip(xs, values, strict=True)) / sxx
    intercept = mean - slope * x_mean
    residuals = [v - (intercept + slope * x) for x, v in zip(xs, values, strict=True)]
    spread = math.sqrt(math.fsum(r * r for r in residuals) / (n - 2))
    return intercept, slope, spread, "linear"


def project(
    history: History,
    start: date,
    end: date,
    now: datetime | None = None,
    *,
    dim: Dimension = "overall",
    value: str | None = None,
    currency: str = "USD",
    eur_per_usd: float = 0.86,
    kinds: Sequence[str] = ("llm", "execution"),
    basis_days: int = BASIS_DAYS,
) -> Projection:
    """Project the spending of ``[start, end]`` (inclusive days) to its end (see the module docstring)."""
    moment = now or datetime.now().astimezone()
    today = history.today(moment)
    rates = rates_for(currency, eur_per_usd)
    spent = history.totals(dim, value, start, min(end, today), rates=rates, kinds=kinds).expected
    first = history.first_day()
    basis_start = today - timedelta(days=basis_days)
    if first is not None:
        basis_start = max(basis_start, first)
    yesterday = today - timedelta(days=1)
    daily = history.by_day(dim, value, basis_start, yesterday, rates=rates, kinds=kinds)
    n_days = (yesterday - basis_start).days + 1 if first is not None and basis_start <= yesterday else 0
    values = [
        daily.get((basis_start + timedelta(days=i)).isoformat(), Totals()).expected for i in range(n_days)
    ]
    intercept, slope, spread, method = _fit(values)
    assumptions = [
        f"from the daily totals of the last {n_days} complete day(s) of history",
        "days are independent; 90 % interval from the scatter of past days around the "
        + ("trend line" if method == "linear" else "mean"),
    ]
    if end < today or method == "none":
        if method == "none":
            assumptions = ["no complete day of history yet: the projection is the spending so far"]
        return Projection(
            start,
            end,
            today,
            spent,
            spent,
            spent,
            spent,
            0.0 if method == "none" else 1.0,
            n_days,
            0.0,
            0.0,
            method,
            currency,
            tuple(assumptions),
        )
    day_start = _day_start(today, history)
    elapsed = min(max((moment.timestamp() - day_start) / 86400.0, 0.0), 1.0)
    rest_today = 1.0 - elapsed if start <= today else 0.0
    future = [
        today + timedelta(days=i)
        for i in range(1, (end - today).days + 1)
        if today + timedelta(days=i) >= start
    ]

    def predict(day: date) -> float:
        return max(0.0, intercept + slope * (day - basis_start).days)

    predicted = rest_today * predict(today) + math.fsum(predict(d) for d in future)
    half = Z90 * spread * math.sqrt(len(future) + rest_today)
    projected = spent + predicted
    relative = half / projected if projected > 0 else (0.0 if half == 0 else 1.0)
    confidence = min(1.0, n_days / FULL_CONFIDENCE_DAYS) * max(0.0, 1.0 - relative)
    if method == "mean":
        assumptions.append(f"fewer than {MIN_TREND_DAYS} days: no trend, the mean day repeats")
    mean = math.fsum(values) / len(values) if values else 0.0
    return Projection(
        start,
        end,
        today,
        spent,
        projected,
        spent + max(0.0, predicted - half),
        projected + half,
        confidence,
        n_days,
        mean,
        slope if method == "linear" else 0.0,
        method,
        currency,
        tuple(assumptions),
    )


def _day_start(day: date, history: History) -> float:
    start = datetime(day.year, day.month, day.day, tzinfo=history.tz)
    if history.tz is None:
        return start.astimezone().timestamp()
    return start.timestamp()


def month_forecast(history: History, settings: Settings, now: datetime | None = None) -> Projection:
    """Month-to-date spending (display currency) and its projected month end."""
    today = history.today(now)
    start, end, _ = period_window("month", today)
    kinds = ("llm", "execution") if settings.llm_enabled else ("execution",)
    return project(
        history, start, end, now, currency=settings.currency, eur_per_usd=settings.eur_per_usd, kinds=kinds
    )


def project_budget(
    history: History, status: BudgetStatus, settings: Settings, now: datetime | None = None
) -> Projection | None:
    """The projection of a calendar budget's period (budget currency); ``None`` for per-session ones."""
    budget = status.budget
    if budget.period == "session" or budget.scope == "session" or status.start is None or status.end is None:
        return None
    kinds = ("llm", "execution") if settings.llm_enabled else ("execution",)
    value = budget.target if budget.dimension != "overall" else None
    return project(
        history,
        status.start,
        status.end,
        now,
        dim=budget.dimension,
        value=value,
        currency=budget.currency,
        eur_per_usd=settings.eur_per_usd,
        kinds=kinds,
    )


def budget_forecasts(
    history: History, statuses: Sequence[BudgetStatus], settings: Settings, now: datetime | None = None
) -> dict[str, float]:
    """``{status key: projected spending at period end}`` for :func:`alerts.check` (budgets with at
    least ``MIN_ALERT_DAYS`` days of history: one day's spending says too little about a month)."""
    out: dict[str, float] = {}
    for status in statuses:
        projection = project_budget(history, status, settings, now)
        if projection is not None and projection.method != "none" and projection.basis_days >= MIN_ALERT_DAYS:
            out[status.key] = projection.projected
    return out


# --------------------------------------------------------------------------- the trend chart


@dataclass(frozen=True)
class DayPoint:
    """One day of the trend chart."""

    day: date
    cost: Totals

    def to_json(self) -> dict[str, Any]:
        """``{"day", ...totals}``."""
        return {"day": self.day.isoformat(), **self.cost.to_json()}


def daily_series(
    history: History,
    days: int = 30,
    now: datetime | None = None,
    *,
    dim: Dimension = "overall",
    value: str | None = None,
    currency: str = "USD",
    eur_per_usd: float = 0.86,
    kinds: Sequence[str] = ("llm", "execution"),
) -> list[DayPoint]:
    """The last ``days`` days up to today, oldest first, days without records as zeros."""
    today = history.today(now)
    first = today - timedelta(days=max(days, 1) - 1)
    found = history.by_day(dim, value, first, today, rates=rates_for(currency, eur_per_usd), kinds=kinds)
    return [
        DayPoint(day, found.get(day.isoformat(), Totals()))
        for day in (first + timedelta(days=i) for i in range((today - first).days + 1))
    ]
