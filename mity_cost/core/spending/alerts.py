"""Budget alerts, kept in the history database so a restart never repeats one.

Four kinds: ``budget_warning`` (a warning level of a budget reached: 50/75/90/100 % by default),
``budget_exceeded`` (spending past the amount), ``forecast_exceeded`` (the period is projected to end
over the amount) and ``task_estimate_high`` (an operation's estimate would take a budget over).

One alert per budget, kind and period: reaching 95 % at once raises the 90 % warning only (the lower
levels are implied).  A cooldown per level (one hour by default) keeps a level that flaps - a daily
budget crossing again just after midnight, a warning resolved and reached again - from raising a new
alert more often than that.  Alerts are resolved when their period ends, when spending falls back
under their level, or when their budget is removed; the user can resolve them too.

Stdlib only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from mity_cost.core.gate.thresholds import Severity, severity_for
from mity_cost.core.money import money_in
from mity_cost.core.settings import Settings
from mity_cost.core.spending.budgets import Budget, BudgetStatus, LiveSession, evaluate
from mity_cost.core.spending.history import History

AlertKind = Literal["budget_warning", "budget_exceeded", "forecast_exceeded", "task_estimate_high"]
ALERT_KINDS: tuple[str, ...] = (
    "budget_warning",
    "budget_exceeded",
    "forecast_exceeded",
    "task_estimate_high",
)
DEFAULT_COOLDOWN = 3600.0
"""Seconds before the same kind and level of alert may fire again for the same budget."""


@dataclass(frozen=True)
class Alert:
    """One alert as stored."""

    id: int
    kind: str
    subject: str
    """The budget status key (``app:shop-api:month``, ``session:*:session@<id>``)."""
    level: int
    """Percent of the budget: the warning level, 100 for exceeded, the projected/estimated percent."""
    period_key: str
    message: str
    data: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None

    @property
    def resolved(self) -> bool:
        """The alert is no longer current."""
        return self.resolved_at is not None

    @property
    def severity(self) -> Severity:
        """Info, warning or critical (exceeded is critical; warnings by level)."""
        if self.kind == "budget_exceeded":
            return Severity.CRITICAL
        if self.kind == "budget_warning":
            return severity_for(self.level)
        return Severity.WARNING

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity.value,
            "subject": self.subject,
            "level": self.level,
            "periodKey": self.period_key,
            "message": self.message,
            "data": self.data,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "resolvedAt": self.resolved_at.isoformat().replace("+00:00", "Z") if self.resolved_at else None,
            "resolution": self.resolution,
        }


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _alert(row: Sequence[Any]) -> Alert:
    try:
        data = json.loads(row[6])
    except ValueError:
        data = {}
    return Alert(
        id=int(row[0]),
        kind=str(row[1]),
        subject=str(row[2]),
        level=int(row[3]),
        period_key=str(row[4]),
        message=str(row[5]),
        data=data if isinstance(data, dict) else {},
        created_at=_time(row[7]) or datetime.fromtimestamp(0, UTC),
        resolved_at=_time(row[8]),
        resolution=row[9],
    )


_SELECT = (
    "SELECT id, kind, subject, level, period_key, message, data, created_at, resolved_at, resolution "
    "FROM alerts"
)


def list_alerts(history: History, *, unresolved: bool = False, limit: int | None = None) -> list[Alert]:
    """Alerts, newest first."""
    sql = (
        _SELECT + (" WHERE resolved_at IS NULL" if unresolved else "") + " ORDER BY created_at DESC, id DESC"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_alert(r) for r in history.query(sql)]


def take_unnotified(history: History, now: datetime | None = None) -> list[Alert]:
    """The unresolved alerts nobody has shown yet, marked shown (for the tray's notifications).

    Any process may raise alerts (the command line does too); only the one that takes them shows
    them, so each alert is notified once.
    """
    moment = (now or datetime.now(UTC)).timestamp()
    with history.transaction() as db:
        ids = [
            int(r[0])
            for r in db.execute(
                "SELECT id FROM alerts WHERE notified_at IS NULL AND resolved_at IS NULL ORDER BY id"
            ).fetchall()
        ]
        db.executemany("UPDATE alerts SET notified_at = ? WHERE id = ?", [(moment, i) for i in ids])
    return [a for a in (get_alert(history, i) for i in ids) if a is not None]


def get_alert(history: History, alert_id: int) -> Alert | None:
    """One alert by id."""
    rows = history.query(_SELECT + " WHERE id = ?", (alert_id,))
    return _alert(rows[0]) if rows else None


def resolve(
    history: History, alert_id: int, now: datetime | None = None, resolution: str = "dismissed"
) -> bool:
    """Mark one alert resolved; False when there is no such unresolved alert."""
    moment = (now or datetime.now(UTC)).timestamp()
    with history.transaction() as db:
        done = db.execute(
            "UPDATE alerts SET resolved_at = ?, resolution = ? WHERE id = ? AND resolved_at IS NULL",
            (moment, resolution, alert_id),
        ).rowcount
    return bool(done)


def raise_alert(
    history: History,
    kind: AlertKind,
    subject: str,
    level: int,
    period_key: str,
    message: str,
    data: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
    cooldown: float = DEFAULT_COOLDOWN,
) -> Alert | None:
    """Store a new alert unless it is already known for this period (at this level or higher) or
    the same kind and level fired for the subject within the cooldown; returns it, or ``None``."""
    moment = (now or datetime.now(UTC)).timestamp()
    repeatable = kind == "task_estimate_high"
    with history.transaction() as db:
        known = (
            not repeatable
            and db.execute(
                """SELECT 1 FROM alerts WHERE kind = ? AND subject = ? AND period_key = ? AND level >= ?
                 AND (resolved_at IS NULL OR resolution != 'below level') LIMIT 1""",
                (kind, subject, period_key, level),
            ).fetchone()
        )
        recent = db.execute(
            """SELECT 1 FROM alerts WHERE kind = ? AND subject = ? AND (level = ? OR ?)
                 AND created_at > ? LIMIT 1""",
            (kind, subject, level, repeatable, moment - cooldown),
        ).fetchone()
        if known or recent:
            return None
        cursor = db.execute(
            """INSERT INTO alerts (kind, subject, level, period_key, message, data, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (kind, subject, level, period_key, message, json.dumps(dict(data or {}), default=str), moment),
        )
        # Lower levels of the same kind and period are superseded by this one.
        db.execute(
            """UPDATE alerts SET resolved_at = ?, resolution = 'superseded'
               WHERE kind = ? AND subject = ? AND period_key = ? AND level < ? AND resolved_at IS NULL""",
            (moment, kind, subject, period_key, level),
        )
        new_id = cursor.lastrowid
    return get_alert(history, int(new_id or 0))


def _data(status: BudgetStatus) -> dict[str, Any]:
    return {
        "budgetId": status.budget.id,
        "sessionId": status.session_id,
        "spent": status.spent.expected,
        "spentMin": status.spent.min,
        "spentMax": status.spent.max,
        "amount": status.budget.amount,
        "currency": status.budget.currency,
        "enforcement": status.budget.enforcement,
        "unpricedModels": list(status.unpriced_models),
    }


def _percent(fraction: float) -> int:
    return 1000 if not math.isfinite(fraction) else int(min(fraction * 100, 1000))


def check(
    history: History,
    statuses: Sequence[BudgetStatus],
    now: datetime | None = None,
    *,
    forecasts: Mapping[str, float] | None = None,
    cooldown: float = DEFAULT_COOLDOWN,
) -> list[Alert]:
    """Raise the alerts the statuses call for and resolve the ones that no longer hold.

    ``forecasts`` maps a status key to the projected spending at the end of its period (in the
    budget's currency; see ``forecast.project_budget``).  Returns the new alerts (what to notify).
    """
    moment = now or datetime.now(UTC)
    new: list[Alert] = []
    live_keys = {s.key for s in statuses}
    for status in statuses:
        if status.subject is None and status.budget.scope == "session":
            continue
        budget, currency = status.budget, status.budget.currency
        spent = money_in(status.spent.expected, currency)
        amount = money_in(budget.amount, currency)
        base = f"for {status.label}"
        _resolve_stale(history, status, moment)
        if status.reached:
            level = status.reached[-1]
            alert = raise_alert(
                history,
                "budget_warning",
                status.key,
                level,
                status.period_key,
                f"Budget {base} at {level} %: {spent} of {amount}",
                _data(status),
                now=moment,
                cooldown=cooldown,
            )
            if alert:
                new.append(alert)
        if status.over:
            alert = raise_alert(
                history,
                "budget_exceeded",
                status.key,
                100,
                status.period_key,
                f"Budget {base} exceeded: {spent} of {amount} ({budget.enforcement.replace('_', ' ')})",
                _data(status),
                now=moment,
                cooldown=cooldown,
            )
            if alert:
                new.append(alert)
        projected = (forecasts or {}).get(status.key)
        if projected is not None and not status.over and projected > budget.amount:
            alert = raise_alert(
                history,
                "forecast_exceeded",
                status.key,
                100,
                status.period_key,
                f"Budget {base} is projected to reach {money_in(projected, currency)} of {amount} "
                f"by the end of the {budget.period}",
                {**_data(status), "projected": projected},
                now=moment,
                cooldown=cooldown,
            )
            if alert:
                new.append(alert)
    _resolve_orphans(history, live_keys, statuses, moment)
    return new


def _resolve_stale(history: History, status: BudgetStatus, moment: datetime) -> None:
    """Resolve this budget's alerts from another period, and levels spending has fallen under."""
    stamp = moment.timestamp()
    reached = status.reached[-1] if status.reached else 0
    with history.transaction() as db:
        db.execute(
            """UPDATE alerts SET resolved_at = ?, resolution = 'period ended'
               WHERE subject = ? AND period_key != ? AND resolved_at IS NULL""",
            (stamp, status.key, status.period_key),
        )
        db.execute(
            """UPDATE alerts SET resolved_at = ?, resolution = 'below level'
               WHERE subject = ? AND period_key = ? AND resolved_at IS NULL AND kind = 'budget_warning'
                 AND level > ?""",
            (stamp, status.key, status.period_key, reached),
        )
        if not status.over:
            db.execute(
                """UPDATE alerts SET resolved_at = ?, resolution = 'below level'
                   WHERE subject = ? AND period_key = ? AND resolved_at IS NULL
                     AND kind = 'budget_exceeded'""",
                (stamp, status.key, status.period_key),
            )


def _resolve_orphans(
    history: History, live_keys: set[str], statuses: Sequence[BudgetStatus], moment: datetime
) -> None:
    """Resolve alerts of budgets that no longer exist (per-session keys of other sessions are kept)."""
    budget_ids = {s.budget.id for s in statuses}
    rows = history.query("SELECT DISTINCT subject FROM alerts WHERE resolved_at IS NULL")
    gone = [
        str(r[0]) for r in rows if str(r[0]) not in live_keys and str(r[0]).split("@", 1)[0] not in budget_ids
    ]
    if gone:
        with history.transaction() as db:
            db.executemany(
                "UPDATE alerts SET resolved_at = ?, resolution = 'budget removed' "
                "WHERE subject = ? AND resolved_at IS NULL",
                [(moment.timestamp(), subject) for subject in gone],
            )


def task_estimate_alert(
    history: History,
    status: BudgetStatus,
    estimate: float,
    *,
    operation: str | None = None,
    now: datetime | None = None,
    cooldown: float = DEFAULT_COOLDOWN,
) -> Alert | None:
    """Raise ``task_estimate_high`` when spending ``estimate`` more (budget currency) would take the
    budget over; ``None`` when it would not, or the alert is in its cooldown."""
    budget = status.budget
    projected = status.spent.expected + estimate
    if projected <= budget.amount:
        return None
    what = f" for {operation}" if operation else ""
    return raise_alert(
        history,
        "task_estimate_high",
        status.key,
        100,
        status.period_key,
        f"An estimate of {money_in(estimate, budget.currency)}{what} would take budget {budget.id} to "
        f"{money_in(projected, budget.currency)} of {money_in(budget.amount, budget.currency)}",
        {
            **_data(status),
            "estimate": estimate,
            "operation": operation,
            "percent": _percent(projected / budget.amount if budget.amount > 0 else math.inf),
        },
        now=now,
        cooldown=cooldown,
    )


@dataclass(frozen=True)
class Refresh:
    """One pass of budget watching: where every budget stands and the alerts it raised."""

    statuses: tuple[BudgetStatus, ...]
    new_alerts: tuple[Alert, ...]
    forecasts: dict[str, float]


def refresh(
    history: History,
    budgets: Sequence[Budget],
    settings: Settings,
    live: Mapping[str, LiveSession] | None = None,
    *,
    session_id: str | None = None,
    now: datetime | None = None,
    cooldown: float = DEFAULT_COOLDOWN,
) -> Refresh:
    """Evaluate the budgets, project the calendar ones, raise and resolve alerts: what the tray runs
    after taking a snapshot in (off the GUI thread).  Notify with :func:`take_unnotified`."""
    from mity_cost.core.spending.forecast import budget_forecasts

    moment = now or datetime.now(UTC)
    statuses = evaluate(budgets, history, moment, live, session_id=session_id, settings=settings)
    forecasts = budget_forecasts(history, statuses, settings, moment)
    raised = check(history, statuses, moment, forecasts=forecasts, cooldown=cooldown)
    return Refresh(tuple(statuses), tuple(raised), forecasts)


def merge_twins(alerts: Sequence[Alert]) -> list[tuple[Alert, tuple[int, ...]]]:
    """Each alert worth showing with the ids it stands for: a budget's "exceeded" alert absorbs its
    own 100 %-and-up warnings of the same period (they say the same thing, less well)."""
    exceeded = {(a.subject, a.period_key): a.id for a in alerts if a.kind == "budget_exceeded"}
    twins: dict[int, list[int]] = {}
    kept: list[Alert] = []
    for alert in alerts:
        owner = exceeded.get((alert.subject, alert.period_key))
        if alert.kind == "budget_warning" and alert.level >= 100 and owner is not None:
            twins.setdefault(owner, []).append(alert.id)
        else:
            kept.append(alert)
    return [(a, (a.id, *twins.get(a.id, ()))) for a in kept]
