"""Reports from the history: spending per day, week or month by one dimension, two sessions side by
side, and the whole history exported as CSV or JSON.

Amounts are converted to one currency (the display currency by default) with the settings' rate;
a report says so when it converted anything.  Stdlib only.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from mity_cost.core.settings import Settings
from mity_cost.core.spending.budgets import period_window
from mity_cost.core.spending.history import DIMENSIONS, History, StoredRecord, Totals, rates_for

ReportPeriod = Literal["day", "week", "month"]
By = Literal["model", "provider", "agent", "station", "feature", "app"]
PERIODS: tuple[str, ...] = ("day", "week", "month")
DEFAULT_SPAN: dict[str, int] = {"day": 7, "week": 8, "month": 12}
"""How many periods a report covers when ``since`` is not given."""
EXPORT_FIELDS: tuple[str, ...] = (
    "uid",
    "kind",
    "sessionId",
    "root",
    "app",
    "provider",
    "model",
    "agent",
    "station",
    "feature",
    "executionType",
    "inputTokens",
    "outputTokens",
    "costMin",
    "costExpected",
    "costMax",
    "currency",
    "timestamp",
    "day",
    "datedBy",
)


def label_for(by: str, key: str) -> str:
    """What to show for a group key: ``(none)`` for records without one, ``(executions)`` for the
    model-less compute records, the name for models the factory did not know (``gpt-4o (unknown)``)."""
    if key == "":
        return "(executions)" if by == "model" else "(none)"
    if by == "model" and ":" in key:
        return f"{key.partition(':')[2] or key} (unknown to the factory)"
    return key


def period_of(day: date, period: ReportPeriod) -> tuple[str, date, date]:
    """The key and first/last day of the period containing ``day``."""
    start, end, key = period_window(period, day)
    return key, start, end


def default_since(period: ReportPeriod, until: date) -> date:
    """The first day of the period ``DEFAULT_SPAN[period] - 1`` periods before ``until``'s."""
    start = period_window(period, until)[0]
    for _ in range(DEFAULT_SPAN[period] - 1):
        start = period_window(period, start - timedelta(days=1))[0]
    return start


@dataclass(frozen=True)
class ReportRow:
    """One group in one period."""

    period: str
    start: date
    end: date
    key: str
    label: str
    cost: Totals

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {
            "period": self.period,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "key": self.key,
            "label": self.label,
            **self.cost.to_json(),
        }


@dataclass(frozen=True)
class Report:
    """Spending per period and group, in one currency."""

    period: ReportPeriod
    by: By
    since: date
    until: date
    currency: str
    rows: tuple[ReportRow, ...]
    period_totals: dict[str, Totals]
    total: Totals
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view (``rows`` newest period first, largest group first)."""
        return {
            "period": self.period,
            "by": self.by,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "currency": self.currency,
            "rows": [r.to_json() for r in self.rows],
            "periodTotals": {k: v.to_json() for k, v in self.period_totals.items()},
            "total": self.total.to_json(),
            "notes": list(self.notes),
        }


def _conversion_notes(
    history: History, since: date, until: date, currency: str, rate: float
) -> tuple[str, ...]:
    rows = history.query(
        "SELECT DISTINCT currency FROM daily WHERE dim = 'overall' AND day BETWEEN ? AND ?",
        (since.isoformat(), until.isoformat()),
    )
    others = sorted({str(r[0]) for r in rows} - {currency})
    if not others:
        return ()
    return (f"amounts in {', '.join(others)} converted to {currency} at 1 USD = {rate:g} EUR (settings)",)


def report(
    history: History,
    period: ReportPeriod = "month",
    by: By = "model",
    since: date | None = None,
    until: date | None = None,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> Report:
    """Spending per ``period`` and ``by`` between ``since`` and ``until`` (inclusive days).

    ``until`` defaults to today, ``since`` to ``DEFAULT_SPAN`` periods back.  Leaves LLM costs out when
    the settings do.  Read from the daily roll-up (fast on millions of records).
    """
    if period not in PERIODS:
        raise ValueError(f"period must be day, week or month, not {period!r}")
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}, not {by!r}")
    settings = settings or Settings()
    until = until or history.today(now)
    since = since or default_since(period, until)
    kinds = ("llm", "execution") if settings.llm_enabled else ("execution",)
    rates = rates_for(settings.currency, settings.eur_per_usd)
    groups: dict[tuple[str, str], Totals] = {}
    bounds: dict[str, tuple[date, date]] = {}
    for day_text, key, totals in history.by_day_and_value(by, since, until, rates=rates, kinds=kinds):
        period_key, start, end = period_of(date.fromisoformat(day_text), period)
        bounds[period_key] = (start, end)
        groups[(period_key, key)] = groups.get((period_key, key), Totals()) + totals
    rows = [
        ReportRow(pk, bounds[pk][0], bounds[pk][1], key, label_for(by, key), totals)
        for (pk, key), totals in groups.items()
    ]
    rows.sort(key=lambda r: (-r.start.toordinal(), -r.cost.expected, r.key))
    period_totals: dict[str, Totals] = {}
    for row in rows:
        period_totals[row.period] = period_totals.get(row.period, Totals()) + row.cost
    total = sum(period_totals.values(), Totals())
    notes = list(_conversion_notes(history, since, until, settings.currency, settings.eur_per_usd))
    if not settings.llm_enabled:
        notes.append("LLM costs left out (MITY_COST_LLM_ENABLED is false)")
    return Report(
        period, by, since, until, settings.currency, tuple(rows), period_totals, total, tuple(notes)
    )


# --------------------------------------------------------------------------- comparing sessions


@dataclass(frozen=True)
class CompareRow:
    """One group of two sessions side by side."""

    key: str
    label: str
    a: Totals
    b: Totals

    @property
    def difference(self) -> float:
        """B minus A, expected cost."""
        return self.b.expected - self.a.expected

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {
            "key": self.key,
            "label": self.label,
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "difference": self.difference,
        }


@dataclass(frozen=True)
class Comparison:
    """Two sessions from the history, by one dimension, in one currency."""

    session_a: str
    session_b: str
    by: By
    currency: str
    total_a: Totals
    total_b: Totals
    rows: tuple[CompareRow, ...]
    ledger_a: Totals | None
    ledger_b: Totals | None
    notes: tuple[str, ...] = ()

    @property
    def difference(self) -> float:
        """B minus A, expected total."""
        return self.total_b.expected - self.total_a.expected

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view."""
        return {
            "sessionA": self.session_a,
            "sessionB": self.session_b,
            "by": self.by,
            "currency": self.currency,
            "totalA": self.total_a.to_json(),
            "totalB": self.total_b.to_json(),
            "difference": self.difference,
            "rows": [r.to_json() for r in self.rows],
            "ledgerA": self.ledger_a.to_json() if self.ledger_a else None,
            "ledgerB": self.ledger_b.to_json() if self.ledger_b else None,
            "notes": list(self.notes),
        }


def resolve_session(history: History, text: str) -> str | None:
    """A session id from the history by exact id or unique prefix; ``None`` if none or ambiguous."""
    if history.session(text) is not None:
        return text
    rows = history.query(
        "SELECT session_id FROM sessions WHERE substr(session_id, 1, ?) = ? LIMIT 2", (len(text), text)
    )
    return str(rows[0][0]) if len(rows) == 1 else None


def compare(
    history: History, session_a: str, session_b: str, *, by: By = "model", settings: Settings | None = None
) -> Comparison:
    """Two sessions' recorded spending side by side, per ``by`` (records from the history)."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}, not {by!r}")
    settings = settings or Settings()
    rates = rates_for(settings.currency, settings.eur_per_usd)
    kinds = ("llm", "execution") if settings.llm_enabled else ("execution",)
    groups_a = history.session_totals(session_a, rates=rates, kinds=kinds, by=by)
    groups_b = history.session_totals(session_b, rates=rates, kinds=kinds, by=by)
    rows = [
        CompareRow(key, label_for(by, key), groups_a.get(key, Totals()), groups_b.get(key, Totals()))
        for key in sorted(set(groups_a) | set(groups_b))
    ]
    rows.sort(key=lambda r: (-max(r.a.expected, r.b.expected), r.key))
    notes: list[str] = []
    ledgers: list[Totals | None] = []
    for sid in (session_a, session_b):
        info = history.session(sid)
        if info is None:
            notes.append(f"session {sid} is not in the history")
            ledgers.append(None)
            continue
        scale = rates.get(info.currency, 1.0)
        ledger = info.ledger
        ledgers.append(Totals(ledger.min * scale, ledger.expected * scale, ledger.max * scale, ledger.calls))
    return Comparison(
        session_a,
        session_b,
        by,
        settings.currency,
        sum(groups_a.values(), Totals()),
        sum(groups_b.values(), Totals()),
        tuple(rows),
        ledgers[0],
        ledgers[1],
        tuple(notes),
    )


# --------------------------------------------------------------------------- export


ExportFormat = Literal["csv", "json"]


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def _chunks(records: Iterator[StoredRecord], fmt: ExportFormat) -> Iterator[str]:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for n, record in enumerate(records, 1):
            writer.writerow({k: _csv_value(v) for k, v in record.to_json().items()})
            if n % 2000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
        return
    yield "["
    for n, record in enumerate(records):
        yield ("," if n else "") + "\n  " + json.dumps(record.to_json(), ensure_ascii=False)
    yield "\n]\n"


def export_history(
    history: History,
    fmt: ExportFormat,
    output: Path,
    since: date | None = None,
    until: date | None = None,
    *,
    session_id: str | None = None,
) -> int:
    """Write every record between two days to ``output`` (CSV or a JSON list), atomically
    (streamed to a temporary file beside it, fsynced, renamed); returns how many were written."""
    if fmt not in ("csv", "json"):
        raise ValueError(f"format must be csv or json, not {fmt!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    count = 0

    def counted() -> Iterator[StoredRecord]:
        nonlocal count
        for record in history.records(since, until, session_id):
            count += 1
            yield record

    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            for chunk in _chunks(counted(), fmt):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return count


def export_fields() -> Sequence[str]:
    """The columns of a CSV export (the keys of a JSON one)."""
    return EXPORT_FIELDS
