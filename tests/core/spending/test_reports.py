"""Reports by period and dimension, comparing sessions, exporting the history."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mity_cost.core.settings import Settings
from mity_cost.core.spending import reports
from mity_cost.core.spending.history import RecordRow
from tests.core.history_helpers import NOW, close, open_history, row, summed


def _month(record: RecordRow) -> tuple[int, int]:
    when = datetime.fromtimestamp(record.ts, UTC)
    return when.year, when.month


ROWS = [
    row("llm:1", NOW, 1.0, model="gpt52", agent="Architect", app="shop-api", session="A"),
    row(
        "llm:2",
        NOW - timedelta(days=1),
        2.0,
        model="claudeopus45",
        agent="Reviewer",
        app="shop-api",
        session="A",
    ),
    row("llm:3", NOW - timedelta(days=8), 4.0, model="gpt52", app="landing", session="B"),
    row("llm:4", NOW - timedelta(days=40), 8.0, model="unknown:gpt-4o", session="B"),
    row("exec:5", NOW, 0.5, model=None, spread=0.2, session="A"),
    row("llm:6", NOW, 3.0, model="gpt52", currency="EUR", session="C"),
]


def test_monthly_report_by_model_adds_up_per_month_and_group(tmp_path: Path) -> None:
    settings = Settings(eur_per_usd=0.5)
    with open_history(tmp_path) as store:
        store.ingest_rows(ROWS, now=NOW)
        result = reports.report(store, "month", "model", settings=settings, now=NOW)
    assert result.since == date(2025, 12, 1) and result.until == NOW.date()
    nov = {r.key: r for r in result.rows if r.period == "2026-11"}
    usd_gpt52 = summed(
        r for r in ROWS if r.model == "gpt52" and r.currency == "USD" and _month(r) == (2026, 11)
    )
    assert nov["gpt52"].cost.expected == pytest.approx(usd_gpt52.expected + 3.0 / 0.5)
    assert close(nov[""].cost, summed(ROWS[4:5])) and nov[""].label == "(executions)"
    assert nov["claudeopus45"].label == "claudeopus45"
    october = [r for r in result.rows if r.period == "2026-10"]
    assert [(r.key, r.label) for r in october] == [("unknown:gpt-4o", "gpt-4o (unknown to the factory)")]
    assert result.total.calls == len(ROWS)
    assert math.isclose(
        result.total.expected, math.fsum(r.cost_expected / (0.5 if r.currency == "EUR" else 1) for r in ROWS)
    )
    assert any("converted" in note for note in result.notes)
    assert result.rows[0].period == "2026-11"  # newest first
    json.dumps(result.to_json())


def test_weekly_and_daily_reports_with_since_and_until(tmp_path: Path) -> None:
    with open_history(tmp_path) as store:
        store.ingest_rows(ROWS, now=NOW)
        weekly = reports.report(store, "week", "agent", since=NOW.date() - timedelta(days=9), now=NOW)
        daily = reports.report(
            store, "day", "app", since=NOW.date() - timedelta(days=1), until=NOW.date() - timedelta(days=1)
        )
    keys = {r.period for r in weekly.rows}
    assert keys == {"2026-W48", "2026-W47", "2026-W46"}
    assert {r.label for r in weekly.rows if r.period == "2026-W48"} == {"Architect", "(none)"}
    assert [(r.period, r.key, r.cost.expected) for r in daily.rows] == [
        ((NOW - timedelta(days=1)).date().isoformat(), "shop-api", ROWS[1].cost_expected)
    ]


def test_reports_leave_out_llm_costs_when_disabled(tmp_path: Path) -> None:
    with open_history(tmp_path) as store:
        store.ingest_rows(ROWS, now=NOW)
        result = reports.report(store, "month", "provider", settings=Settings(llm_enabled=False), now=NOW)
    assert [r.key for r in result.rows] == ["compute"]
    assert any("left out" in n for n in result.notes)


def test_bad_report_arguments_are_refused(tmp_path: Path) -> None:
    with open_history(tmp_path) as store:
        with pytest.raises(ValueError):
            reports.report(store, "year", "model")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            reports.report(store, "month", "colour")  # type: ignore[arg-type]


def test_compare_two_sessions(tmp_path: Path) -> None:
    with open_history(tmp_path) as store:
        store.ingest_rows(ROWS, now=NOW)
        result = reports.compare(store, "A", "B", by="model")
        assert reports.resolve_session(store, "A") is None  # sessions table is empty for raw rows
    by_key = {r.key: r for r in result.rows}
    assert set(by_key) == {"gpt52", "claudeopus45", "", "unknown:gpt-4o"}
    assert by_key["gpt52"].a.expected == 1.0 and by_key["gpt52"].b.expected == 4.0
    assert by_key["gpt52"].difference == 3.0
    assert close(result.total_a, summed(r for r in ROWS if r.session_id == "A"))
    assert result.difference == pytest.approx(result.total_b.expected - result.total_a.expected)
    assert result.ledger_a is None and len(result.notes) == 2


def test_compare_sessions_taken_in_from_files(tmp_path: Path, example_root: Path) -> None:
    with open_history(tmp_path) as store:
        store.ingest_root(example_root, now=NOW)
        ids = [s.session_id for s in store.sessions()]
        a, b = ids[0], ids[1]
        assert reports.resolve_session(store, a[:6]) == a
        result = reports.compare(store, a, b, by="agent")
        info_a = store.session(a)
    assert result.ledger_a is not None and info_a is not None
    assert result.ledger_a.expected == pytest.approx(info_a.ledger.expected)
    assert result.notes == ()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_writes_every_record_atomically(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out" / f"history.{fmt}"
    with open_history(tmp_path) as store:
        store.ingest_rows(ROWS, now=NOW)
        assert reports.export_history(store, fmt, out) == len(ROWS)  # type: ignore[arg-type]
        recent = reports.export_history(store, fmt, out, since=NOW.date() - timedelta(days=1))  # type: ignore[arg-type]
    if fmt == "csv":
        with out.open(newline="") as handle:
            items = list(csv.DictReader(handle))
        assert list(items[0]) == list(reports.EXPORT_FIELDS)
    else:
        items = json.loads(out.read_text())
    assert (
        len(items)
        == recent
        == sum(1 for r in ROWS if r.ts >= (NOW - timedelta(days=1)).replace(hour=0, minute=0).timestamp())
    )
    assert {str(i["uid"]) for i in items} <= {r.uid for r in ROWS}
    assert math.isclose(
        math.fsum(float(i["costExpected"]) for i in items),
        math.fsum(r.cost_expected for r in ROWS if str(r.uid) in {str(i["uid"]) for i in items}),
    )
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left
    with pytest.raises(ValueError), open_history(tmp_path) as store:
        reports.export_history(store, "xml", out)  # type: ignore[arg-type]


def test_labels() -> None:
    assert reports.label_for("agent", "") == "(none)"
    assert reports.label_for("model", "") == "(executions)"
    assert reports.label_for("model", "unknown:") == "unknown: (unknown to the factory)"
    assert reports.default_since("day", date(2026, 11, 23)) == date(2026, 11, 17)
    assert reports.default_since("month", date(2026, 11, 23)) == date(2025, 12, 1)
    assert reports.default_since("week", date(2026, 11, 23)) == date(2026, 10, 5)
