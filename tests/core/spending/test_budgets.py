"""Budgets: validation, storage, periods, evaluation, nesting, unpriced records and the gate."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mity_cost.core import paths
from mity_cost.core.settings import Settings
from mity_cost.core.spending import budgets
from mity_cost.core.spending.budgets import (
    Budget,
    BudgetError,
    LiveSession,
    add_budget,
    check_session,
    evaluate,
    for_session,
    gate_verdict,
    load_budgets,
    period_window,
    remove_budget,
    tightest,
)
from mity_cost.core.spending.history import History, Totals
from tests.core.history_helpers import NOW, close, open_history, row, session_docs, summed


def priced(model: str) -> bool:
    return not model.startswith("unknown:")


def everything_priced(model: str) -> bool:
    return True


# --------------------------------------------------------------------------- the budget itself


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scope": "team", "target": None, "period": "month", "amount": 1.0},
        {"scope": "overall", "target": None, "period": "year", "amount": 1.0},
        {"scope": "overall", "target": None, "period": "month", "amount": -1.0},
        {"scope": "overall", "target": None, "period": "month", "amount": math.inf},
        {"scope": "overall", "target": None, "period": "month", "amount": True},
        {"scope": "overall", "target": "x", "period": "month", "amount": 1.0},
        {"scope": "app", "target": None, "period": "month", "amount": 1.0},
        {"scope": "overall", "target": None, "period": "month", "amount": 1.0, "currency": "GBP"},
        {"scope": "overall", "target": None, "period": "month", "amount": 1.0, "enforcement": "kill"},
    ],
)
def test_nonsense_budgets_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(BudgetError):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_a_budget_round_trips_through_json_with_a_readable_id() -> None:
    budget = Budget("app", "shop-api", "month", 50, "EUR", "hard_stop", (90, 50, 50, 2000))
    assert budget.id == "app:shop-api:month"
    assert budget.warning_levels == (50, 90)
    assert Budget.from_json(json.loads(json.dumps(budget.to_json()))) == budget
    assert Budget("session", None, "session", 2).id == "session:*:session"
    assert "shop-api" in budget.describe() and "month" in budget.describe()


def test_budgets_are_stored_atomically_and_replaced_by_id(isolated_home: Path) -> None:
    path = budgets.budgets_path()
    assert path == isolated_home / "config" / "budgets.json"
    assert load_budgets().budgets == ()
    first = Budget("overall", None, "month", 10)
    assert add_budget(first) is False
    assert add_budget(replace(first, amount=20)) is True
    add_budget(Budget("model", "gpt52", "day", 1, enforcement="require_confirmation"))
    stored = load_budgets()
    assert stored.problems == ()
    assert [(b.id, b.amount) for b in stored.budgets] == [("overall:*:month", 20.0), ("model:gpt52:day", 1.0)]
    assert json.loads(path.read_text())["version"] == 1
    assert remove_budget("overall:*:month") is True
    assert remove_budget("overall:*:month") is False
    assert [b.id for b in load_budgets().budgets] == ["model:gpt52:day"]


def test_a_broken_budgets_file_is_reported_and_never_overwritten(isolated_home: Path) -> None:
    path = budgets.budgets_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"budgets": [')
    found = load_budgets()
    assert found.budgets == () and "could not be read" in found.problems[0]
    with pytest.raises(BudgetError):
        add_budget(Budget("overall", None, "month", 10))
    assert path.read_text() == '{"budgets": ['
    path.write_text(
        json.dumps({"budgets": [{"scope": "overall", "period": "month", "amount": 5}, {"scope": "x"}]})
    )
    found = load_budgets()
    assert [b.id for b in found.budgets] == ["overall:*:month"]
    assert len(found.problems) == 1 and "#2" in found.problems[0]


@pytest.mark.parametrize(
    ("period", "today", "start", "end", "key"),
    [
        ("day", date(2026, 11, 23), date(2026, 11, 23), date(2026, 11, 23), "2026-11-23"),
        ("week", date(2026, 11, 22), date(2026, 11, 16), date(2026, 11, 22), "2026-W47"),
        ("week", date(2026, 11, 23), date(2026, 11, 23), date(2026, 11, 29), "2026-W48"),
        ("week", date(2027, 1, 1), date(2026, 12, 28), date(2027, 1, 3), "2026-W53"),
        ("month", date(2028, 2, 10), date(2028, 2, 1), date(2028, 2, 29), "2028-02"),
        ("month", date(2026, 12, 31), date(2026, 12, 1), date(2026, 12, 31), "2026-12"),
    ],
)
def test_period_windows(period: str, today: date, start: date, end: date, key: str) -> None:
    assert period_window(period, today) == (start, end, key)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- evaluation


def _month_rows() -> list:  # type: ignore[type-arg]
    last_month = NOW.replace(day=1) - timedelta(days=2)
    return [
        row("llm:1", NOW, 3.0, model="gpt52", app="shop-api", agent="Architect"),
        row("llm:2", NOW - timedelta(days=1), 4.0, model="claudeopus45", app="shop-api"),
        row("llm:3", NOW - timedelta(days=2), 2.0, model="gpt5mini", app="landing"),
        row("exec:4", NOW, 0.5, model=None, app="landing", spread=0.25),
        row("llm:5", last_month, 100.0, model="gpt52", app="shop-api"),
    ]


def test_calendar_budgets_sum_their_window_and_filter(tmp_path: Path) -> None:
    rows = _month_rows()
    this_month = [r for r in rows if r.uid != "llm:5"]
    with open_history(tmp_path) as store:
        store.ingest_rows(rows, now=NOW)
        plan = [
            Budget("overall", None, "month", 20),
            Budget("app", "shop-api", "month", 10),
            Budget("model", "gpt52", "day", 5),
            Budget("provider", "anthropic", "week", 5),
        ]
        overall, app, model, provider = evaluate(plan, store, NOW, settings=Settings(), is_priced=priced)
    assert close(overall.spent, summed(this_month))
    assert overall.period_key == "2026-11" and (overall.start, overall.end) == (
        date(2026, 11, 1),
        date(2026, 11, 30),
    )
    assert math.isclose(overall.fraction, summed(this_month).expected / 20)
    assert math.isclose(overall.remaining, 20 - summed(this_month).expected)
    assert close(app.spent, summed(r for r in this_month if r.app == "shop-api"))
    assert model.spent == summed(rows[:1])
    assert provider.spent == summed([])  # its only record was on Sunday: last week (weeks start on Monday)
    share = app.spent.expected / 10 * 100
    assert app.reached == tuple(p for p in (50, 75, 90, 100) if share >= p) and not app.over
    assert not overall.unpriced


def test_a_nested_budget_shows_the_tighter_of_the_two(tmp_path: Path) -> None:
    rows = _month_rows()
    with open_history(tmp_path) as store:
        store.ingest_rows(rows, now=NOW)
        generous_app = [Budget("overall", None, "month", 10), Budget("app", "shop-api", "month", 100)]
        overall, app = evaluate(generous_app, store, NOW, is_priced=priced)
        assert app.binding_id == overall.key and tightest(app, [overall, app]) is overall
        tight_app = [Budget("overall", None, "month", 100), Budget("app", "shop-api", "month", 8)]
        overall, app = evaluate(tight_app, store, NOW, is_priced=priced)
        assert app.binding_id == app.key and overall.binding_id == overall.key


def test_currency_of_the_budget_is_respected(tmp_path: Path) -> None:
    rows = [row("llm:u", NOW, 1.0), row("llm:e", NOW, 1.0, currency="EUR")]
    settings = Settings(eur_per_usd=0.5)
    with open_history(tmp_path) as store:
        store.ingest_rows(rows, now=NOW)
        (usd,) = evaluate(
            [Budget("overall", None, "day", 10)], store, NOW, settings=settings, is_priced=priced
        )
        (eur,) = evaluate(
            [Budget("overall", None, "day", 10, "EUR")], store, NOW, settings=settings, is_priced=priced
        )
    assert math.isclose(usd.spent.expected, 1.0 + 1.0 / 0.5)
    assert math.isclose(eur.spent.expected, 1.0 * 0.5 + 1.0)


def test_llm_costs_are_left_out_when_disabled(tmp_path: Path) -> None:
    rows = _month_rows()
    with open_history(tmp_path) as store:
        store.ingest_rows(rows, now=NOW)
        (status,) = evaluate(
            [Budget("overall", None, "month", 5)],
            store,
            NOW,
            settings=Settings(llm_enabled=False),
            is_priced=priced,
        )
    assert status.spent == summed(r for r in rows if r.kind == "execution")


def test_session_budgets_use_the_live_ledger_and_each_session(tmp_path: Path) -> None:
    rows = [row("llm:a", NOW, 1.0, session="A"), row("llm:b", NOW, 3.0, session="B", model="unknown:llama")]
    live = {"A": LiveSession("A", Totals(1.2, 1.5, 1.9, 1), "USD", "shop-api", frozenset({"gpt5mini"}))}
    with open_history(tmp_path) as store:
        store.ingest_rows(rows, now=NOW)
        plan = [Budget("session", None, "session", 2), Budget("session", "B", "session", 2)]
        statuses = evaluate(plan, store, NOW, live, session_id="B", is_priced=priced)
    by_key = {s.key: s for s in statuses}
    each_a, each_b, named_b = (
        by_key["session:*:session@A"],
        by_key["session:*:session@B"],
        by_key["session:B:session@B"],
    )
    assert each_a.spent.expected == 1.5 and each_a.session_app == "shop-api"  # the ledger, not the records
    assert each_b.spent == summed(rows[1:]) == named_b.spent
    assert each_b.unpriced_models == ("unknown:llama",) and not each_a.unpriced
    assert each_b.over and each_b.period_key == "session:B"
    assert [s.key for s in for_session(statuses, "A", "shop-api")] == ["session:*:session@A"]


def test_a_budget_counting_unpriced_records_knows_it(tmp_path: Path) -> None:
    rows = [row("llm:a", NOW, 1.0, app="x"), row("llm:b", NOW, 1.0, model="unknown:llama-3-70b", app="y")]
    with open_history(tmp_path) as store:
        store.ingest_rows(rows, now=NOW)
        plan = [
            Budget("overall", None, "month", 50),
            Budget("app", "x", "month", 50),
            Budget("app", "y", "month", 50),
        ]
        overall, app_x, app_y = evaluate(plan, store, NOW, is_priced=priced)
        assert overall.unpriced_models == ("unknown:llama-3-70b",)
        assert not app_x.unpriced
        assert app_y.unpriced_models == ("unknown:llama-3-70b",)
        (trusted,) = evaluate(plan[:1], store, NOW, is_priced=everything_priced)
        assert not trusted.unpriced


def test_the_default_pricer_trusts_factory_variants_and_asks_the_price_book_otherwise() -> None:
    budgets.default_pricer.cache_clear()
    is_priced = budgets.default_pricer()
    assert is_priced("gpt5mini") and is_priced("claudeopus45")
    assert is_priced("unknown:gpt-4o")  # genai-prices knows it
    assert not is_priced("unknown:surely-no-such-model-xyz")


# --------------------------------------------------------------------------- the gate


def _status(
    amount: float, spent: float, enforcement: str, unpriced: tuple[str, ...] = ()
) -> budgets.BudgetStatus:
    budget = Budget("overall", None, "month", amount, enforcement=enforcement)  # type: ignore[arg-type]
    return budgets.BudgetStatus(budget, None, "2026-11", None, None, Totals(spent, spent, spent), unpriced)


@pytest.mark.parametrize(
    ("enforcement", "spent", "extra", "action"),
    [
        ("hard_stop", 9.0, 0.5, "pass"),
        ("hard_stop", 9.0, 1.0, "pass"),  # exactly at the amount is not over
        ("hard_stop", 9.0, 1.5, "refuse"),
        ("require_confirmation", 9.0, 1.5, "ask"),
        ("warn", 9.0, 1.5, "pass"),
        ("warn", 12.0, 0.0, "pass"),
    ],
)
def test_gate_verdict_by_enforcement(enforcement: str, spent: float, extra: float, action: str) -> None:
    verdict = gate_verdict([_status(10, spent, enforcement)], extra)
    assert verdict.action == action
    if enforcement == "warn" and spent + extra > 10:
        assert "exceeded" in verdict.reason and verdict.warnings


def test_refuse_wins_over_ask_and_unpriced_asks_instead_of_passing() -> None:
    statuses = [_status(10, 1, "require_confirmation", ("unknown:x",)), _status(5, 6, "hard_stop")]
    assert gate_verdict(statuses).action == "refuse"
    unpriced = gate_verdict(statuses[:1])
    assert unpriced.action == "ask" and "no known price" in unpriced.reason and "unknown:x" in unpriced.reason
    assert gate_verdict([_status(10, 1, "warn", ("unknown:x",))]).action == "pass"
    assert gate_verdict([], problems=["budgets file broken"]).action == "ask"
    assert gate_verdict([_status(10, 1, "hard_stop", ("unknown:x",))]).action == "ask"


def test_gate_converts_the_extra_amount_into_the_budget_currency() -> None:
    status = _status(10, 9, "hard_stop")
    assert gate_verdict([status], 1.5, extra_currency="EUR", eur_per_usd=2.0).action == "pass"  # 0.75 USD
    assert gate_verdict([status], 1.5, extra_currency="USD").action == "refuse"


def test_an_approval_lets_the_gate_pass_until_the_next_step(tmp_path: Path) -> None:
    rows = [row("llm:a", NOW, 9.5)]
    plan = [Budget("overall", None, "month", 10, enforcement="require_confirmation")]
    with open_history(tmp_path) as store:
        store.ingest_rows(rows, now=NOW)
        statuses = evaluate(plan, store, NOW, is_priced=priced)
        verdict = gate_verdict(statuses, 1.0, approvals=budgets.approvals(store))
        assert verdict.action == "ask" and verdict.asking
        budgets.approve(store, verdict.asking, 1.0, now=NOW)
        assert gate_verdict(statuses, 1.0, approvals=budgets.approvals(store)).action == "pass"
        step = budgets.APPROVAL_STEP * 10
        assert gate_verdict(statuses, 1.0 + step * 0.9, approvals=budgets.approvals(store)).action == "pass"
        assert gate_verdict(statuses, 1.0 + step * 1.1, approvals=budgets.approvals(store)).action == "ask"
        hard = evaluate([replace(plan[0], enforcement="hard_stop")], store, NOW, is_priced=priced)
        budgets.approve(store, hard, 1.0, now=NOW)  # a hard stop cannot be approved
        assert gate_verdict(hard, 1.0, approvals=budgets.approvals(store)).action == "refuse"


def _ledger_total(root: Path, session_id: str) -> float:
    return float(session_docs(root)[session_id]["sessionCost"]["total"]["expected"])


def test_check_session_end_to_end_on_the_example_root(example_root: Path, isolated_home: Path) -> None:
    session_id = max(session_docs(example_root), key=lambda s: _ledger_total(example_root, s))
    total = _ledger_total(example_root, session_id)
    assert check_session(session_id, [example_root], 1.0).action == "pass"  # no budgets at all
    add_budget(Budget("session", None, "session", total + 1.0, enforcement="hard_stop"))
    settings = Settings()
    assert (
        check_session(session_id, [example_root], 0.5, settings=settings, is_priced=everything_priced).action
        == "pass"
    )
    refused = check_session(session_id, [example_root], 2.0, settings=settings, is_priced=everything_priced)
    assert refused.action == "refuse" and "hard stop" in refused.reason
    with History() as store:  # the check took the session in and noted the high estimate
        assert store.session(session_id) is not None
        kinds = [r[0] for r in store.query("SELECT kind FROM alerts")]
        assert kinds == ["task_estimate_high"]
    add_budget(Budget("session", None, "session", total + 1.0, enforcement="require_confirmation"))
    assert (
        check_session(session_id, [example_root], 2.0, settings=settings, is_priced=everything_priced).action
        == "ask"
    )
    assert (
        budgets.approve_session(
            session_id, [example_root], 2.0, settings=settings, is_priced=everything_priced
        )
        == 1
    )
    assert (
        check_session(session_id, [example_root], 2.0, settings=settings, is_priced=everything_priced).action
        == "pass"
    )


def test_check_session_fails_safe(example_root: Path, isolated_home: Path) -> None:
    session_id = next(iter(session_docs(example_root)))
    path = budgets.budgets_path()
    path.parent.mkdir(parents=True)
    path.write_text("nonsense")
    assert check_session(session_id, [example_root]).action == "ask"
    path.unlink()
    add_budget(Budget("overall", None, "month", 100, enforcement="hard_stop"))
    (isolated_home / "data").mkdir(parents=True, exist_ok=True)
    (isolated_home / "data" / "history.sqlite3").write_bytes(b"garbage" * 1000)
    verdict = check_session(session_id, [example_root])
    assert verdict.action == "ask" and "cannot be checked" in verdict.reason


def test_check_session_counts_today_across_sessions(example_root: Path, isolated_home: Path) -> None:
    docs = session_docs(example_root)
    now = datetime.now(UTC)
    with History() as store:
        store.ingest_root(example_root, now=now)
        month = store.totals(since=now.astimezone().date().replace(day=1))
    add_budget(Budget("overall", None, "month", month.expected + 0.5, enforcement="hard_stop"))
    first = next(iter(docs))
    assert check_session(first, [example_root], 0.4, is_priced=everything_priced).action == "pass"
    assert check_session(first, [example_root], 0.6, is_priced=everything_priced).action == "refuse"


def test_price_answers_are_kept_in_the_history_until_the_prices_change(
    tmp_path: Path, isolated_home: Path
) -> None:
    asked: list[str] = []

    def book(model: str) -> bool:
        asked.append(model)
        return model != "unknown:private"

    with open_history(tmp_path) as store:
        first = budgets.cached_pricer(store, book)
        assert first("gpt5mini") and first("unknown:gpt-4o") and not first("unknown:private")
    with open_history(tmp_path) as store:
        again = budgets.cached_pricer(store, book)
        assert again("unknown:gpt-4o") and not again("unknown:private")
        assert asked == ["gpt5mini", "unknown:gpt-4o", "unknown:private"]  # the two unknowns: asked once
        overrides = paths.price_override_file()
        overrides.parent.mkdir(parents=True, exist_ok=True)
        overrides.write_text("{}")
        changed = budgets.cached_pricer(store, book)
        assert changed("unknown:gpt-4o")
        assert asked[-1] == "unknown:gpt-4o"  # the override file changed: asked again
