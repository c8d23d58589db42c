"""``check-threshold`` as a real subprocess: 0 within, 1 over or paused, 2 bad input (fail closed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mity_cost.core.gate.decisions import Decision, write_decision

SMALL = "c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81"  # expected total $0.5732883000000001, LLM $0.5232883
SMALL_TOTAL = 0.5732883000000001
WHEN = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)


def check(root: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mity_cost",
            "check-threshold",
            "--root",
            str(root),
            "--session",
            SMALL,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _decide(root: Path, kind: str, amount: float, currency: str = "USD") -> None:
    write_decision(root / ".mity/chat" / SMALL, Decision(SMALL, kind, amount, WHEN, currency))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("threshold", "code"),
    [("1.00", 0), (repr(SMALL_TOTAL), 0), ("0.57", 1), ("0", 1)],
    ids=["under", "exactly-at", "over", "zero"],
)
def test_exit_code_follows_the_threshold(example_root: Path, threshold: str, code: int) -> None:
    done = check(example_root, env={"MITY_COST_THRESHOLD": threshold})
    assert done.returncode == code, done.stderr
    assert ("within" if code == 0 else "over") in done.stdout


def test_json_output(example_root: Path) -> None:
    done = check(example_root, "--json", env={"MITY_COST_THRESHOLD": "0.5"})
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["sessionId"] == SMALL and data["status"] == "over" and data["within"] is False
    assert data["totalExpected"] == SMALL_TOTAL
    assert data["totalMin"] < data["totalExpected"] < data["totalMax"]
    assert (data["threshold"], data["limit"], data["decision"], data["currency"]) == (0.5, 0.5, None, "USD")


def test_a_continue_decision_approves_up_to_its_amount(example_root: Path) -> None:
    _decide(example_root, "continue", 1.0)
    done = check(example_root, "--json", env={"MITY_COST_THRESHOLD": "0.5"})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["status"], data["limit"], data["decision"], data["approvedUpTo"]) == (
        "ok",
        1.0,
        "continue",
        1.0,
    )
    assert check(example_root, env={"MITY_COST_THRESHOLD": "0.25"}).returncode == 0
    _decide(example_root, "continue", 0.55)
    assert check(example_root, env={"MITY_COST_THRESHOLD": "0.5"}).returncode == 1


def test_a_pause_decision_denies(example_root: Path) -> None:
    _decide(example_root, "pause", 0.5)
    done = check(example_root, env={"MITY_COST_THRESHOLD": "10"})
    assert done.returncode == 1
    assert "paused by the user" in done.stdout


def test_a_broken_decision_approves_nothing_and_is_reported(example_root: Path) -> None:
    path = example_root / ".mity/chat" / SMALL / "cost.decision.json"
    path.write_text('{"sessionId": "c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81", "decision": "continue"')
    done = check(example_root, env={"MITY_COST_THRESHOLD": "0.5"})
    assert done.returncode == 1
    assert str(path) in done.stderr and "approves nothing" in done.stderr
    assert check(example_root, env={"MITY_COST_THRESHOLD": "5"}).returncode == 0


def test_the_threshold_is_in_the_display_currency(example_root: Path) -> None:
    # 0.573 USD is 0.493 EUR at the default rate: over a 0.55 USD threshold, within 0.55 EUR.
    assert check(example_root, env={"MITY_COST_THRESHOLD": "0.55"}).returncode == 1
    done = check(example_root, "--json", env={"MITY_COST_THRESHOLD": "0.55", "MITY_COST_CURRENCY": "eur"})
    assert done.returncode == 0
    assert json.loads(done.stdout)["currency"] == "EUR"
    assert (
        "€0.49 is within the threshold €0.55"
        in check(example_root, env={"MITY_COST_THRESHOLD": "0.55", "MITY_COST_CURRENCY": "EUR"}).stdout
    )


def test_llm_costs_left_out_when_disabled(example_root: Path) -> None:
    env = {"MITY_COST_THRESHOLD": "0.1", "MITY_COST_LLM_ENABLED": "no"}
    assert check(example_root, env=env).returncode == 0  # only the $0.05 scan remains
    assert check(example_root, env={"MITY_COST_THRESHOLD": "0.1"}).returncode == 1


def test_an_invalid_threshold_is_reported_and_the_default_used(example_root: Path) -> None:
    done = check(example_root, env={"MITY_COST_THRESHOLD": "cheap"})
    assert done.returncode == 0  # against the default 1.00
    assert "MITY_COST_THRESHOLD='cheap'" in done.stderr


@pytest.mark.parametrize(
    ("content", "word"),
    [(b"", "incomplete"), (b'{"sessionId": "x", "sessionCost"', "incomplete"), (b"[]", "invalid"),
     (b'{"sessionId": "x", "currency": "USD", "sessionCost": {"currency": "USD", "total": '
      b'{"min": 1, "expected": NaN, "max": 2}, "breakdown": {"llm": {"min": 0, "expected": 0, "max": 0}}}}',
      "finite")],
    ids=["empty", "cut-short", "array", "nan"],
)  # fmt: skip
def test_a_file_that_cannot_be_trusted_is_exit_2(example_root: Path, content: bytes, word: str) -> None:
    path = example_root / ".mity/chat" / SMALL / "cost.json"
    path.write_bytes(content)
    done = check(example_root, "--json")
    assert done.returncode == 2
    assert str(path) in done.stderr and word in done.stderr
    assert json.loads(done.stdout)["status"] == "error"


def test_a_missing_session_is_exit_2(empty_root: Path) -> None:
    done = check(empty_root)
    assert done.returncode == 2
    assert f"no session '{SMALL}'" in done.stderr


def test_the_session_is_found_in_any_root(example_root: Path, empty_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mity_cost", "check-threshold", "--session", SMALL,
         "--root", str(empty_root), "--root", str(example_root)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_bad_usage_is_exit_2(example_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mity_cost", "check-threshold", "--root", str(example_root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--session" in done.stderr


@pytest.mark.parametrize(
    ("enforcement", "code", "status"),
    [("hard_stop", 1, "budget"), ("require_confirmation", 1, "budget"), ("warn", 0, "ok")],
)
def test_an_exceeded_budget_stops_it_unless_it_only_warns(
    example_root: Path, enforcement: str, code: int, status: str
) -> None:
    from mity_cost.core.spending.budgets import Budget, save_budgets

    save_budgets((Budget("session", None, "session", 0.25, enforcement=enforcement),))  # type: ignore[arg-type]
    done = check(example_root, "--json")
    assert done.returncode == code, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == status and data["within"] is (code == 0)
    assert data["totalExpected"] == SMALL_TOTAL  # under the $1.00 threshold: the budget decides
    assert data["budget"]["action"] == {"hard_stop": "refuse", "require_confirmation": "ask"}.get(
        enforcement, "pass"
    )
    assert data["budget"]["reason"]


def test_a_budget_within_its_amount_lets_it_go_on(example_root: Path) -> None:
    from mity_cost.core.spending.budgets import Budget, save_budgets

    save_budgets((Budget("session", None, "session", 5.0, enforcement="hard_stop"),))
    done = check(example_root)
    assert done.returncode == 0, done.stderr
    assert "within" in done.stdout and "budget" not in done.stdout
