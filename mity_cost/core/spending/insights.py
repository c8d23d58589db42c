"""What the details window's "Budgets & forecast" part shows, computed in one pass (Qt-free).

:func:`compute_insights` takes a watcher snapshot into the history (idempotent), evaluates every
budget (the tighter of nested ones, ``budgets.tightest``), raises and resolves alerts as the tray
does (``alerts.refresh``'s steps), and gathers the selected session's burn rate, the month-to-date
spending with its projected month end, the daily series for the trend chart, the unresolved alerts
and the session's price audit.  Every figure is what the history and ``core`` functions return, so
it traces to records.  It reads SQLite and may price every record: run it off the GUI thread.

:class:`InsightsEngine` keeps the history open and the last audit between runs (one thread at a
time).  Nothing here raises: a step that fails leaves its part empty and says why in ``problems``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path

from mity_cost.core.factory.loading import LoadedSession
from mity_cost.core.live.snapshot import SessionView, Snapshot
from mity_cost.core.money import CURRENCY_SYMBOLS
from mity_cost.core.pricing.audit import DEFAULT_TOLERANCE, SessionAudit, audit_session
from mity_cost.core.pricing.prices import PriceBook
from mity_cost.core.settings import Settings
from mity_cost.core.spending import alerts as alerts_module
from mity_cost.core.spending.alerts import Alert
from mity_cost.core.spending.budgets import (
    BudgetStatus,
    cached_pricer,
    evaluate,
    live_sessions,
    load_budgets,
    tightest,
)
from mity_cost.core.spending.forecast import (
    BurnRate,
    DayPoint,
    Projection,
    budget_forecasts,
    daily_series,
    month_forecast,
    project_budget,
    session_burn,
)
from mity_cost.core.spending.history import History, HistoryError, model_value

TREND_DAYS = 30
"""Days of the daily trend chart."""
ALERT_LIMIT = 10
"""Unresolved alerts shown (newest first)."""


@dataclass(frozen=True)
class BudgetLine:
    """One budget as the panel shows it: where it stands, and the budget that binds it.

    ``binding`` is ``budgets.tightest(status, statuses)``: the status itself, or an enclosing budget
    (overall, or the session's app) with less left in the display currency.  ``projection`` is the
    calendar period's projected end (budget currency; ``None`` for per-session budgets).
    """

    status: BudgetStatus
    binding: BudgetStatus
    projection: Projection | None = None

    @property
    def constrained(self) -> bool:
        """An enclosing budget has less left than this one: that one is the real limit."""
        return self.binding.key != self.status.key


@dataclass(frozen=True)
class Insights:
    """Everything the "Budgets & forecast" part and the trend chart show, at ``now``.

    Amounts of budgets are in each budget's currency; the burn rate, the month and the daily series
    in the display ``currency``; the audit in USD (list prices are USD).
    """

    now: datetime
    currency: str
    session_id: str | None
    budgets: tuple[BudgetLine, ...] = ()
    budget_count: int = 0
    """Budgets defined (the lines may be more: per-session budgets, one per session shown)."""
    budget_problems: tuple[str, ...] = ()
    new_alerts: tuple[Alert, ...] = ()
    burn: BurnRate | None = None
    month: Projection | None = None
    daily: tuple[DayPoint, ...] = ()
    """The last ``TREND_DAYS`` days up to today, oldest first (days without records are zeros)."""
    month_to_date: tuple[tuple[date, float], ...] = ()
    """This month's cumulative expected spending at the end of each day, from the 1st to today."""
    alerts: tuple[Alert, ...] = ()
    """Unresolved alerts, newest first (at most ``ALERT_LIMIT``)."""
    audit: SessionAudit | None = None
    ingested: int = 0
    """Records the history took in on this pass."""
    problems: tuple[str, ...] = field(default=())
    tz: tzinfo | None = None
    """The zone of the history's calendar days (``None``: the machine's)."""

    @property
    def symbol(self) -> str:
        """The display currency's symbol."""
        return CURRENCY_SYMBOLS.get(self.currency, "")

    @property
    def binding_keys(self) -> frozenset[str]:
        """The keys of budgets that are the tighter limit of another line (to highlight them)."""
        return frozenset(line.binding.key for line in self.budgets if line.constrained)


def selected_view(snapshot: Snapshot, session_id: str | None) -> SessionView | None:
    """The session asked for, else the active one (as the details window picks it)."""
    if session_id:
        found = snapshot.find(session_id)
        if found is not None:
            return found
    return snapshot.active


def book_pricer(book: PriceBook) -> Callable[[str], bool]:
    """``is_priced(model_text)`` from a price book: the factory's own variants are priced, another
    name (``unknown:<name>``) when the book quotes it (the same rule as ``budgets.default_pricer``)."""

    @functools.lru_cache(maxsize=512)
    def is_priced(model: str) -> bool:
        if ":" not in model:
            return True
        try:
            return book.quote(model_value(model), 1000, 1000).price is not None
        except Exception:  # noqa: BLE001 - a price book failure must not look like a price
            return False

    return is_priced


def _shown(status: BudgetStatus, session_id: str | None) -> bool:
    """Calendar budgets always; per-session ones for the session on screen only."""
    per_session = status.budget.scope == "session" or status.budget.period == "session"
    return not per_session or status.session_id == session_id


def _failed(what: str, exc: BaseException) -> str:
    return f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}"


def compute_insights(
    snapshot: Snapshot,
    settings: Settings,
    session_id: str | None,
    history: History | None,
    *,
    book: PriceBook | None = None,
    now: datetime | None = None,
    budget_path: Path | None = None,
    is_priced: Callable[[str], bool] | None = None,
    raise_alerts: bool = True,
    days: int = TREND_DAYS,
    tolerance: float = DEFAULT_TOLERANCE,
    audit: SessionAudit | None = None,
    problems: tuple[str, ...] = (),
) -> Insights:
    """Take the snapshot into the history and compute what the panel shows (see the module docstring).

    ``session_id`` picks the session for the burn rate, per-session budgets and the audit (``None``:
    the active one).  ``history=None`` means it could not be opened (say why in ``problems``): the
    burn rate and the audit are still computed.  ``is_priced`` defaults to ``book``'s answers, else
    the history's cached ones.  ``audit`` is a precomputed audit of the same session state.
    """
    moment = now or datetime.now().astimezone()
    view = selected_view(snapshot, session_id)
    sid = view.session_id if view is not None else None
    notes = list(problems)
    found = load_budgets(budget_path)
    kinds = ("llm", "execution") if settings.llm_enabled else ("execution",)
    ingested = 0
    lines: list[BudgetLine] = []
    new_alerts: tuple[Alert, ...] = ()
    month: Projection | None = None
    points: list[DayPoint] = []
    unresolved: tuple[Alert, ...] = ()
    if history is not None:
        try:
            ingested = history.ingest_snapshot(snapshot, now=moment)
        except Exception as exc:  # noqa: BLE001 - the history stays as it was; the rest is still shown
            notes.append(_failed("could not take the sessions into the history", exc))
        try:
            pricer = is_priced or (book_pricer(book) if book is not None else cached_pricer(history))
            live = live_sessions(snapshot, settings)
            statuses = evaluate(
                found.budgets, history, moment, live, session_id=sid, settings=settings, is_priced=pricer
            )
            if raise_alerts:
                forecasts = budget_forecasts(history, statuses, settings, moment)
                new_alerts = tuple(alerts_module.check(history, statuses, moment, forecasts=forecasts))
            lines = [
                BudgetLine(
                    status, tightest(status, statuses), project_budget(history, status, settings, moment)
                )
                for status in statuses
                if _shown(status, sid)
            ]
        except Exception as exc:  # noqa: BLE001
            notes.append(_failed("budgets could not be evaluated", exc))
        try:
            month = month_forecast(history, settings, moment)
            today = history.today(moment)
            points = daily_series(
                history,
                max(days, today.day),
                moment,
                currency=settings.currency,
                eur_per_usd=settings.eur_per_usd,
                kinds=kinds,
            )
        except Exception as exc:  # noqa: BLE001
            notes.append(_failed("the month forecast could not be computed", exc))
        try:
            unresolved = tuple(alerts_module.list_alerts(history, unresolved=True, limit=ALERT_LIMIT))
        except Exception as exc:  # noqa: BLE001
            notes.append(_failed("alerts could not be read", exc))
    burn: BurnRate | None = None
    if view is not None and view.loaded is not None:
        try:
            burn = session_burn(view.loaded.doc, moment, settings, execution_seen_at=view.execution_seen_at)
        except Exception as exc:  # noqa: BLE001
            notes.append(_failed("the burn rate could not be computed", exc))
        if audit is None and book is not None:
            try:
                audit = audit_session(view.loaded, book, tolerance)
            except Exception as exc:  # noqa: BLE001
                notes.append(_failed("the price audit failed", exc))
    else:
        audit = None
    month_start = month.start if month is not None else None
    running = 0.0
    to_date: list[tuple[date, float]] = []
    for point in points:
        if month_start is not None and point.day >= month_start:
            running += point.cost.expected
            to_date.append((point.day, running))
    return Insights(
        now=moment,
        currency=settings.currency,
        session_id=sid,
        budgets=tuple(lines),
        budget_count=len(found.budgets),
        budget_problems=found.problems,
        new_alerts=new_alerts,
        burn=burn,
        month=month,
        daily=tuple(points[-max(days, 1) :]),
        month_to_date=tuple(to_date),
        alerts=unresolved,
        audit=audit,
        ingested=ingested,
        problems=tuple(notes),
        tz=history.tz if history is not None else None,
    )


def day_start(day: date, tz: tzinfo | None = None) -> float:
    """Unix time of a calendar day's midnight in ``tz`` (the machine's zone when ``None``)."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start.timestamp() if tz is not None else start.astimezone().timestamp()


@dataclass(frozen=True)
class TrendSeries:
    """The daily trend chart's data (unix times, display currency).

    Bars: one per day, centred at noon, expected with its min-max.  The month line: this month's
    cumulative spending at each day's end (today: at ``now``), then the projection from now to the
    end of the month's last day, with its 90 % range fanning out to the month end.
    """

    x: tuple[float, ...] = ()
    expected: tuple[float, ...] = ()
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    month_x: tuple[float, ...] = ()
    month_y: tuple[float, ...] = ()
    projection_x: tuple[float, ...] = ()
    projection_y: tuple[float, ...] = ()
    projection_low: tuple[float, ...] = ()
    projection_high: tuple[float, ...] = ()


def trend_series(insights: Insights) -> TrendSeries:
    """Lay out an :class:`Insights`' daily series and month projection for the chart."""
    tz = insights.tz
    x = tuple(day_start(p.day, tz) + 43200.0 for p in insights.daily)
    month = insights.month
    month_x: list[float] = []
    month_y: list[float] = []
    now = insights.now.timestamp()
    if month is not None and insights.month_to_date:
        month_x.append(day_start(month.start, tz))
        month_y.append(0.0)
        for day, total in insights.month_to_date:
            end = day_start(day + timedelta(days=1), tz)
            month_x.append(min(end, now) if day == month.today else end)
            month_y.append(total)
    projection: tuple[tuple[float, ...], ...] = ((), (), (), ())
    if month is not None and month.method != "none" and month.end >= month.today:
        end = day_start(month.end + timedelta(days=1), tz)
        start_x = month_x[-1] if month_x else now
        start_y = month_y[-1] if month_y else month.spent
        projection = (
            (start_x, end),
            (start_y, month.projected),
            (start_y, month.low),
            (start_y, month.high),
        )
    return TrendSeries(
        x,
        tuple(p.cost.expected for p in insights.daily),
        tuple(p.cost.min for p in insights.daily),
        tuple(p.cost.max for p in insights.daily),
        tuple(month_x),
        tuple(month_y),
        *projection,
    )


class InsightsEngine:
    """Runs :func:`compute_insights` with a history kept open and the last audit remembered.

    The history (``History(history_path)``, the default store when ``None``) is opened on first use
    and again after a failure.  Use it from one thread at a time; ``close()`` when done.
    """

    def __init__(
        self,
        history: History | None = None,
        *,
        history_path: Path | None = None,
        budget_path: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        raise_alerts: bool = True,
    ) -> None:
        self._history = history
        self._owned = history is None
        self._history_path = history_path
        self._budget_path = budget_path
        self._clock = clock or (lambda: datetime.now().astimezone())
        self._raise_alerts = raise_alerts
        self._audit: tuple[LoadedSession, PriceBook, SessionAudit] | None = None

    def history(self) -> History:
        """The open history (raises ``HistoryError`` when it cannot be opened)."""
        if self._history is None:
            self._history = History(self._history_path)
        return self._history

    def run(
        self, snapshot: Snapshot, settings: Settings, session_id: str | None, book: PriceBook | None
    ) -> Insights:
        """Compute the insights now (see :func:`compute_insights`)."""
        problems: tuple[str, ...] = ()
        try:
            history: History | None = self.history()
        except HistoryError as exc:
            history, problems = None, (f"the spending history cannot be used: {exc}",)
        view = selected_view(snapshot, session_id)
        audit = None
        cached = self._audit
        loaded = view.loaded if view is not None else None
        if cached is not None and loaded is cached[0] and book is cached[1]:
            audit = cached[2]
        insights = compute_insights(
            snapshot,
            settings,
            session_id,
            history,
            book=book,
            now=self._clock(),
            budget_path=self._budget_path,
            raise_alerts=self._raise_alerts,
            audit=audit,
            problems=problems,
        )
        if loaded is not None and book is not None and insights.audit is not None:
            self._audit = (loaded, book, insights.audit)
        return insights

    def close(self) -> None:
        """Close the history if this engine opened it."""
        history, self._history = self._history, None
        if history is not None and self._owned:
            with contextlib.suppress(Exception):
                history.close()


def duration_text(span: timedelta) -> str:
    """``under a minute``, ``~25 min``, ``~3.5 h``, ``~2 days`` (for "threshold in ...")."""
    seconds = span.total_seconds()
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"~{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        hours = seconds / 3600
        return f"~{hours:.1f} h" if hours < 10 else f"~{hours:.0f} h"
    return f"~{seconds / 86400:.0f} days"
