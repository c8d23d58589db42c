"""The history at scale: taking in a million records, then reporting, budgeting and forecasting on them.

Builds a history of ``--records`` records spread over ``--days`` days (13 models, 8 agents, 7
stations, 10 features, 4 apps, 5 % executions; a few hundred records per session), taking them in
with ``History.ingest_rows`` in batches of ``--batch`` (one transaction each: ``executemany`` with
``INSERT OR IGNORE``, the daily roll-up, ``synchronous=FULL``), and times:

- the ingest rate (records/s), and the same with ``synchronous=NORMAL`` on a sample;
- a monthly report by model for the last month (goal: under 200 ms), from the daily roll-up, and the
  same ``GROUP BY`` straight on the records table for comparison;
- a 12-month report by model, ``budgets.evaluate`` with five budgets, the month-end forecast and a
  30-day series;
- taking in one large session document again (nothing new) and a fresh one.

    /work/venv/bin/python bench/bench_history.py [--records 1000000] [--days 365] [--batch 5000]
        [--repeat 5] [--keep PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mity_cost.core.factory.rules import FACTORY_PRICES
from mity_cost.core.settings import Settings
from mity_cost.core.spending import budgets, forecast, reports
from mity_cost.core.spending.history import AppResolver, History, RecordRow, provider_of

MODELS = [
    *(variant for variant in FACTORY_PRICES if variant != "unknown"),
    "unknown:gpt-4o",
    "unknown:llama-3-70b",
]
AGENTS = [
    "Analyst",
    "Architect",
    "Implementer",
    "Tester",
    "Reviewer",
    "Security Engineer",
    "DevOps",
    "Writer",
]
STATIONS = ["intake", "analyze", "architect", "scaffold", "implement", "test", "review"]
FEATURES = [f"feature-{n}" for n in range(10)]
APPS = ["shop-api", "landing", "wine", "my-app"]


def _rows(count: int, days: int, now: datetime, seed: int = 11) -> Iterator[RecordRow]:
    rng = random.Random(seed)
    start = now - timedelta(days=days)
    span = days * 86400.0
    for n in range(count):
        ts = start.timestamp() + span * n / count + rng.random() * 30
        session = f"s{n // 400}"
        app = APPS[(n // 400) % len(APPS)]
        if rng.random() < 0.05:
            cost = rng.choice((0.002, 0.005, 0.01, 0.05))
            yield RecordRow(
                f"exec:{n}", "execution", session, "/root", app, "compute", None, None, None, None,
                "test-run", 0, 0, 0.0, cost, cost * 2, "USD", ts, "first-seen",
            )  # fmt: skip
            continue
        model = rng.choice(MODELS)
        tokens_in, tokens_out = rng.randint(200, 40_000), rng.randint(10, 4000)
        cost = tokens_in * 3e-6 + tokens_out * 15e-6
        yield RecordRow(
            f"llm:{n}", "llm", session, "/root", app, provider_of(model), model, rng.choice(AGENTS),
            rng.choice(STATIONS), rng.choice(FEATURES), None, tokens_in, tokens_out, cost, cost, cost,
            "USD", ts, "record",
        )  # fmt: skip


def _batches(rows: Iterator[RecordRow], size: int) -> Iterator[list[RecordRow]]:
    batch: list[RecordRow] = []
    for item in rows:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _time(func: Callable[[], Any], repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        runs.append((time.perf_counter() - start) * 1000)
    return {"best_ms": min(runs), "median_ms": statistics.median(runs)}


def _ingest(
    path: Path, count: int, days: int, batch: int, now: datetime, synchronous: str
) -> dict[str, float]:
    with History(path, tz=UTC) as store:
        store.query(f"PRAGMA synchronous = {synchronous}")
        elapsed = 0.0
        added = 0
        for chunk in _batches(_rows(count, days, now), batch):  # generating is not timed
            start = time.perf_counter()
            added += store.ingest_rows(chunk, now=now)
            elapsed += time.perf_counter() - start
    return {"records": added, "seconds": elapsed, "per_second": added / elapsed if elapsed else 0.0}


def _document(n_records: int, now: datetime) -> dict[str, Any]:
    rng = random.Random(3)
    stamp = now - timedelta(hours=5)
    return {
        "sessionId": "bench-session",
        "currency": "USD",
        "sessionCost": {"total": {"min": 1.0, "expected": 1.0, "max": 1.0}},
        "llmUsage": [
            {
                "id": f"doc-{n}",
                "model": rng.choice(MODELS[:11]),
                "inputTokens": rng.randint(100, 9000),
                "outputTokens": rng.randint(10, 900),
                "cost": 0.01,
                "agent": rng.choice(AGENTS),
                "timestamp": (stamp + timedelta(seconds=n * 0.1)).isoformat().replace("+00:00", "Z"),
            }
            for n in range(n_records)
        ],
        "executionCosts": [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--keep", type=Path, help="build the history here (kept) instead of a temporary folder"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    result: dict[str, Any] = {"records": args.records, "days": args.days, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "history.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        result["ingest_full"] = _ingest(path, args.records, args.days, args.batch, now, "FULL")
        sample = min(args.records, 200_000)
        normal = folder / "normal.sqlite3"
        result["ingest_normal_sample"] = _ingest(normal, sample, args.days, args.batch, now, "NORMAL")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{normal}{suffix}").unlink(missing_ok=True)
        result["db_mb"] = sum(p.stat().st_size for p in folder.glob("history.sqlite3*")) / 1e6

        settings = Settings()
        with History(path, tz=UTC) as store:
            today = store.today(now)
            start, _end, _ = budgets.period_window("month", today)
            last_start = (start - timedelta(days=1)).replace(day=1)
            last_end = start - timedelta(days=1)
            result["rollup_rows"] = store.query("SELECT COUNT(*) FROM daily")[0][0]
            month_rows = store.query(
                "SELECT COUNT(*) FROM records WHERE day BETWEEN ? AND ?",
                (last_start.isoformat(), last_end.isoformat()),
            )[0][0]
            result["records_in_last_month"] = month_rows
            monthly = reports.report(store, "month", "model", last_start, last_end, settings=settings)
            result["monthly_report_groups"] = len(monthly.rows)
            result["monthly_report_by_model"] = _time(
                lambda: reports.report(store, "month", "model", last_start, last_end, settings=settings),
                args.repeat,
            )
            result["monthly_by_model_on_records_table"] = _time(
                lambda: store.query(
                    "SELECT model, SUM(cost_expected), COUNT(*) FROM records "
                    "WHERE day BETWEEN ? AND ? GROUP BY model",
                    (last_start.isoformat(), last_end.isoformat()),
                ),
                args.repeat,
            )
            result["year_report_by_model"] = _time(
                lambda: reports.report(store, "month", "model", settings=settings, now=now), args.repeat
            )
            plan = [
                budgets.Budget("overall", None, "month", 500),
                budgets.Budget("app", "shop-api", "month", 100, enforcement="hard_stop"),
                budgets.Budget("model", "claudeopus45", "week", 50),
                budgets.Budget("provider", "openai", "day", 20),
                budgets.Budget("agent", "Reviewer", "month", 30, enforcement="require_confirmation"),
            ]
            unpriced = budgets.default_pricer()
            unpriced("unknown:llama-3-70b")  # load the price book outside the timing
            result["evaluate_5_budgets"] = _time(lambda: budgets.evaluate(plan, store, now), args.repeat)
            result["month_forecast"] = _time(
                lambda: forecast.month_forecast(store, settings, now), args.repeat
            )
            result["daily_series_30"] = _time(lambda: forecast.daily_series(store, 30, now), args.repeat)

            doc = _document(100_000, now)
            apps = AppResolver({}, "shop-api")
            started = time.perf_counter()
            fresh = store.ingest_document(doc, folder, apps=apps, now=now)
            first = time.perf_counter() - started
            started = time.perf_counter()
            store.ingest_document(doc, folder, apps=apps, now=now)
            again = time.perf_counter() - started
            result["document_100k"] = {
                "new_records": fresh,
                "first_seconds": first,
                "first_per_second": fresh / first,
                "again_seconds": again,
            }
            result["integrity_ok"] = store.integrity_ok()

    if args.json:
        print(json.dumps(result, indent=2))
        return
    full, normal_ = result["ingest_full"], result["ingest_normal_sample"]
    print(f"history of {full['records']:,} records over {args.days} days, batches of {args.batch}")
    print(f"  ingest (synchronous=FULL):      {full['per_second']:,.0f} records/s ({full['seconds']:.1f} s)")
    print(f"  ingest (NORMAL, {normal_['records']:,} sample): {normal_['per_second']:,.0f} records/s")
    print(f"  database: {result['db_mb']:.0f} MB, {result['rollup_rows']:,} roll-up rows")
    print(f"  records in the reported month: {result['records_in_last_month']:,}")
    for key in (
        "monthly_report_by_model",
        "monthly_by_model_on_records_table",
        "year_report_by_model",
        "evaluate_5_budgets",
        "month_forecast",
        "daily_series_30",
    ):
        figures = result[key]
        print(f"  {key}: best {figures['best_ms']:.1f} ms, median {figures['median_ms']:.1f} ms")
    doc = result["document_100k"]
    print(
        f"  a 100,000-record session document: first {doc['first_seconds']:.2f} s "
        f"({doc['first_per_second']:,.0f} records/s), again {doc['again_seconds']:.3f} s"
    )
    print(f"  integrity_check: {'ok' if result['integrity_ok'] else 'FAILED'}")


if __name__ == "__main__":
    main()
