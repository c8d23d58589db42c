"""``budget``, ``alerts``, ``report``, ``compare``, ``history`` and ``forecast`` as real commands."""

from __future__ import annotations

import csv
import json
import math
from datetime import date
from pathlib import Path
from typing import Any

from mity_cost.cli.history import budget_approved, budget_gate
from mity_cost.core.spending.budgets import default_pricer, period_window
from mity_cost.core.spending.history import History, model_text
from tests.cli.cli_helpers import run_cli as run
from tests.core.history_helpers import session_docs


def run_json(*args: str) -> Any:
    done = run(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _records(root: Path) -> int:
    return sum(len(d["llmUsage"]) + len(d["executionCosts"]) for d in session_docs(root).values())


def _ledgers(root: Path) -> float:
    return math.fsum(d["sessionCost"]["total"]["expected"] for d in session_docs(root).values())


def test_ingest_is_counted_once_and_info_reports_it(example_root: Path, isolated_home: Path) -> None:
    first = run_json("history", "ingest", "--root", str(example_root))
    assert first["added"] == first["records"] == _records(example_root)
    again = run_json("history", "ingest", "--root", str(example_root))
    assert again["added"] == 0
    info = run_json("history", "info")
    assert info["records"] == _records(example_root)
    assert info["path"] == str(isolated_home / "data" / "history.sqlite3")
    assert info["sessions"] == len(session_docs(example_root))


def test_report_totals_trace_back_to_the_ledgers(example_root: Path) -> None:
    result = run_json("report", "month", "--since", "2020-01", "--root", str(example_root))
    assert math.isclose(result["total"]["expected"], _ledgers(example_root), abs_tol=1e-9)
    assert result["total"]["calls"] == _records(example_root)
    by_provider = run_json("report", "day", "--by", "provider", "--since", "2020-01-01", "--no-ingest")
    assert {r["key"] for r in by_provider["rows"]} <= {"openai", "anthropic", "other", "compute"}
    assert math.isclose(by_provider["total"]["expected"], result["total"]["expected"])
    table = run("report", "week", "--by", "agent", "--since", "2020-01", "--no-ingest")
    assert table.returncode == 0 and "TOTAL" in table.stdout and "AGENT" in table.stdout


def test_budget_add_list_remove(example_root: Path) -> None:
    added = run_json("budget", "add", "--amount", "50", "--enforcement", "hard_stop")
    assert added["id"] == "overall:*:month" and added["replaced"] is False
    assert run_json("budget", "add", "--scope", "app", "--target", "shop-api", "--amount", "5")["id"] == (
        "app:shop-api:month"
    )
    statuses = run_json("budget", "list", "--root", str(example_root))
    assert [s["budget"]["id"] for s in statuses] == ["overall:*:month", "app:shop-api:month"]
    today = date.today()
    start, end, key = period_window("month", today)
    with History() as store:
        month = store.totals(since=start, until=end)
    overall = statuses[0]
    assert overall["periodKey"] == key
    assert math.isclose(overall["spent"]["expected"], month.expected, abs_tol=1e-9)
    assert math.isclose(overall["remaining"], 50 - month.expected, abs_tol=1e-9)
    table = run("budget", "list", "--no-ingest")
    assert table.returncode == 0 and "hard_stop" in table.stdout
    assert run("budget", "remove", "app:shop-api:month").returncode == 0
    gone = run("budget", "remove", "app:shop-api:month")
    assert gone.returncode == 1 and "overall:*:month" in gone.stderr
    assert [s["budget"]["id"] for s in run_json("budget", "list", "--no-ingest")] == ["overall:*:month"]


def test_bad_budgets_and_dates_are_usage_errors(example_root: Path) -> None:
    assert run("budget", "add", "--scope", "app", "--amount", "5").returncode == 2  # no target
    assert run("budget", "add", "--amount", "-1").returncode == 2
    assert run("budget", "add", "--amount", "5", "--levels", "fifty").returncode == 2
    out_of_range = run("budget", "add", "--amount", "5", "--levels", "0,50")
    assert out_of_range.returncode == 2 and "0 is outside 1–1000 %" in out_of_range.stderr
    assert run("report", "month", "--since", "yesterday-ish", "--no-ingest").returncode == 2
    late = run("report", "month", "--since", "2026-12-01", "--until", "2026-11-01", "--no-ingest")
    assert late.returncode == 2 and "after" in late.stderr
    assert run("compare", "--sessions", "only-one", "--no-ingest").returncode == 2


def test_alerts_fire_for_a_crossed_budget_and_can_be_resolved(example_root: Path) -> None:
    run_json("history", "ingest", "--root", str(example_root))
    with History() as store:
        spent = store.totals(since=period_window("month", date.today())[0]).expected
    assert spent > 0  # executions are dated when first seen: this month at least has those
    run_json("budget", "add", "--amount", f"{spent / 0.8:.9f}")  # 80 %: the 75 % warning
    raised = run_json("alerts", "--root", str(example_root))
    assert [(a["kind"], a["level"]) for a in raised] == [("budget_warning", 75)]
    alert_id = str(raised[0]["id"])
    assert run("alerts", "--resolve", alert_id, "--no-ingest").returncode == 0
    assert run_json("alerts", "--unresolved", "--no-ingest") == []
    assert run("alerts", "--resolve", alert_id, "--no-ingest").returncode == 1


def test_compare_by_prefix(example_root: Path) -> None:
    docs = session_docs(example_root)
    a, b = sorted(docs, key=lambda s: len(docs[s]["llmUsage"]))[-2:]
    result = run_json("compare", "--sessions", f"{a[:8]},{b[:8]}", "--root", str(example_root))
    assert (result["sessionA"], result["sessionB"]) == (a, b)
    assert math.isclose(result["ledgerA"]["expected"], docs[a]["sessionCost"]["total"]["expected"])
    assert result["totalB"]["calls"] == len(docs[b]["llmUsage"]) + len(docs[b]["executionCosts"])
    table = run("compare", "--sessions", f"{a},{b}", "--by", "agent", "--no-ingest")
    assert table.returncode == 0 and "TOTAL" in table.stdout
    assert run("compare", "--sessions", f"{a},nope", "--no-ingest").returncode == 2


def test_export_csv_and_json(example_root: Path, tmp_path: Path) -> None:
    out_csv, out_json = tmp_path / "h.csv", tmp_path / "h.json"
    done = run("history", "export", "--format", "csv", "--output", str(out_csv), "--root", str(example_root))
    assert done.returncode == 0, done.stderr
    with out_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == _records(example_root)
    assert math.isclose(math.fsum(float(r["costExpected"]) for r in rows), _ledgers(example_root))
    assert (
        run("history", "export", "--format", "json", "--output", str(out_json), "--no-ingest").returncode == 0
    )
    assert len(json.loads(out_json.read_text())) == len(rows)


def test_retention_setting(example_root: Path) -> None:
    run_json("history", "ingest", "--root", str(example_root))
    assert run_json("history", "retention") == {"retentionDays": None, "deleted": 0}
    kept = run_json("history", "retention", "--days", "100000")
    assert kept == {"retentionDays": 100000, "deleted": 0}
    assert run_json("history", "retention", "--keep-all")["retentionDays"] is None
    assert run("history", "retention", "--days", "0").returncode == 2


def test_forecast_json(example_root: Path) -> None:
    result = run_json("forecast", "--days", "10", "--root", str(example_root))
    assert len(result["daily"]) == 10
    assert result["month"]["projected"] >= result["month"]["spent"]
    assert result["session"]["sessionId"] in session_docs(example_root)
    text = run("forecast", "--no-ingest", "--root", str(example_root))
    assert text.returncode == 0 and "projected month end" in text.stdout


def test_budget_gate_hook_refuses_asks_and_passes(example_root: Path) -> None:
    docs = session_docs(example_root)
    session_id = max(docs, key=lambda s: docs[s]["sessionCost"]["total"]["expected"])
    total = docs[session_id]["sessionCost"]["total"]["expected"]
    assert budget_gate(session_id, example_root, 1.0) == ("pass", "no budgets")
    limit = f"{total + 1.0:.6f}"
    run_json(
        "budget",
        "add",
        "--scope",
        "session",
        "--period",
        "session",
        "--amount",
        limit,
        "--enforcement",
        "hard_stop",
    )
    action, reason = budget_gate(session_id, example_root, 2.0)
    assert action == "refuse" and "hard stop" in reason
    run_json(
        "budget",
        "add",
        "--scope",
        "session",
        "--period",
        "session",
        "--amount",
        limit,
        "--enforcement",
        "require_confirmation",
    )
    action, reason = budget_gate(session_id, [example_root], 2.0)
    assert action == "ask"
    # The example session has records of a model no price is known for: that alone asks, too.
    small, _ = budget_gate(session_id, example_root, 0.1)
    is_priced = default_pricer()
    unpriced = any(not is_priced(model_text(r["model"]) or "") for r in docs[session_id]["llmUsage"])
    assert small == ("ask" if unpriced else "pass")
    assert budget_approved(session_id, example_root, 2.0) == 1
    assert budget_gate(session_id, example_root, 2.0)[0] == "pass"
    assert budget_gate("no-such-session", None, 0.0)[0] in ("pass", "ask")


def test_a_model_budget_target_is_filed_as_the_factory_files_it() -> None:
    assert run_json("budget", "add", "--scope", "model", "--target", "claude-opus-4.5", "--amount", "3")[
        "id"
    ] == ("model:claudeopus45:month")
    assert run_json("budget", "add", "--scope", "model", "--target", "gpt-4o", "--amount", "3")["target"] == (
        "unknown:gpt-4o"
    )
    assert run_json("budget", "add", "--scope", "model", "--target", "gpt5mini", "--amount", "3")[
        "target"
    ] == ("gpt5mini")
