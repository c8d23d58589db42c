"""cost.decision.json: reading fails closed, writing is atomic, continue approves the next step."""

from __future__ import annotations

import json
import math
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mity_cost.core.gate import decisions
from mity_cost.core.gate.decisions import Decision

SID = "5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91"
WHEN = datetime(2026, 1, 5, 10, 11, 12, 123000, tzinfo=UTC)


def _doc(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "sessionId": SID,
        "decision": "continue",
        "approvedUpTo": 2.0,
        "decidedAt": "2026-01-05T10:11:12.123Z",
        "currency": "USD",
    }
    doc.update(changes)
    return doc


def _write(folder: Path, data: bytes | str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "cost.decision.json"
    target.write_bytes(data.encode() if isinstance(data, str) else data)


def test_write_then_read_round_trips_with_the_spec_keys(tmp_path: Path) -> None:
    decision = Decision(SID, "continue", 2.0, WHEN, "USD")
    path = decisions.write_decision(tmp_path, decision)
    assert path == tmp_path / "cost.decision.json"
    assert json.loads(path.read_text()) == {
        "sessionId": SID,
        "decision": "continue",
        "approvedUpTo": 2.0,
        "decidedAt": "2026-01-05T10:11:12.123Z",
        "currency": "USD",
    }
    assert decisions.read_decision(tmp_path) == decision
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_write_leaves_no_temporary_file_and_replaces_the_old_answer(tmp_path: Path) -> None:
    decisions.write_decision(tmp_path, Decision(SID, "continue", 2.0, WHEN))
    decisions.write_decision(tmp_path, Decision(SID, "pause", 1.5, WHEN))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cost.decision.json"]
    read = decisions.read_decision(tmp_path)
    assert read is not None and read.decision == "pause" and read.approved_up_to == 1.5


def test_no_file_is_no_decision(tmp_path: Path) -> None:
    assert decisions.read_decision(tmp_path) is None
    assert decisions.read_decision(tmp_path / "missing") is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b'{"sessionId": "' + SID.encode(),  # half-written
        b"[]",
        b"null",
        b"\xff\xfe",
        json.dumps(_doc(decision="yes")).encode(),
        json.dumps(_doc(decision="CONTINUE")).encode(),
        json.dumps(_doc(approvedUpTo=-1)).encode(),
        json.dumps(_doc(approvedUpTo="2.0")).encode(),
        json.dumps(_doc(approvedUpTo=True)).encode(),
        json.dumps(_doc(approvedUpTo=None)).encode(),
        json.dumps(_doc(currency="GBP")).encode(),
        json.dumps(_doc(decidedAt="yesterday")).encode(),
        json.dumps(_doc(decidedAt="2026-01-05T10:11:12")).encode(),  # no time zone
        json.dumps(_doc(sessionId="")).encode(),
        json.dumps(_doc(sessionId=7)).encode(),
        b'{"sessionId": "x", "decision": "continue", "approvedUpTo": NaN,'
        b' "decidedAt": "2026-01-05T10:11:12Z", "currency": "USD"}',
        b'{"sessionId": "x", "decision": "continue", "approvedUpTo": Infinity, "decidedAt":'
        b' "2026-01-05T10:11:12Z", "currency": "USD"}',
        b'{"sessionId": "x", "decision": "pause", "decision": "continue", "approvedUpTo": 9,'
        b' "decidedAt": "2026-01-05T10:11:12Z", "currency": "USD"}',  # repeated key
        b"[" * 100_000,
    ],
)
def test_a_broken_or_hostile_file_approves_nothing(tmp_path: Path, data: bytes) -> None:
    _write(tmp_path, data)
    assert decisions.read_decision(tmp_path) is None


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    doc = _doc(padding="x" * (decisions.MAX_DECISION_BYTES + 10))
    _write(tmp_path, json.dumps(doc))
    assert decisions.read_decision(tmp_path) is None


def test_a_folder_or_fifo_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a" / "cost.decision.json").mkdir(parents=True)
    assert decisions.read_decision(tmp_path / "a") is None
    (tmp_path / "b").mkdir()
    os.mkfifo(tmp_path / "b" / "cost.decision.json")
    assert decisions.read_decision(tmp_path / "b") is None  # never blocks on a FIFO


def test_a_decision_for_another_session_is_ignored_when_asked_for_one(tmp_path: Path) -> None:
    _write(tmp_path, json.dumps(_doc()))
    assert decisions.read_decision(tmp_path, SID) is not None
    assert decisions.read_decision(tmp_path, "another-session") is None


def test_timestamps_with_nine_fraction_digits_are_accepted(tmp_path: Path) -> None:
    _write(tmp_path, json.dumps(_doc(decidedAt="2026-01-05T10:11:12.123456789Z")))
    read = decisions.read_decision(tmp_path)
    assert read is not None and read.decided_at.tzinfo is not None


def test_in_currency_converts_the_approved_amount() -> None:
    decision = Decision(SID, "continue", 2.0, WHEN, "USD")
    euros = decisions.in_currency(
        decision, "EUR", lambda amount, cur: amount * 0.5 if cur == "USD" else amount
    )
    assert euros.currency == "EUR" and euros.approved_up_to == 1.0
    assert decisions.in_currency(decision, "USD", lambda a, c: a * 99) is decision


def test_allowed_limit() -> None:
    assert decisions.allowed_limit(1.0, None) == 1.0
    assert decisions.allowed_limit(1.0, Decision(SID, "continue", 2.0, WHEN)) == 2.0
    assert decisions.allowed_limit(1.0, Decision(SID, "pause", 3.0, WHEN)) == 1.0
    # a continue never lowers the limit below the threshold (the threshold was raised since)
    assert decisions.allowed_limit(5.0, Decision(SID, "continue", 2.0, WHEN)) == 5.0


@pytest.mark.parametrize(
    ("threshold", "total", "estimate", "step"),
    [
        (1.0, 0.5, 0.0, 2.0),
        (1.0, 1.0, 0.0, 2.0),
        (1.0, 1.01, 0.0, 2.0),
        (1.0, 1.99, 0.0, 2.0),
        (1.0, 2.0, 0.0, 3.0),  # strictly above
        (1.0, 2.5, 0.0, 3.0),
        (1.0, 1.5, 0.7, 3.0),  # the asking operation's estimate counts
        (1.0, 15.46, 0.0, 16.0),
        (0.1, 0.3, 0.0, 0.4),  # no binary noise: 0.1 * 3 is not above 0.3
        (0.1, 0.25, 0.0, 0.3),
        (2.5, 3.0, 0.0, 5.0),
    ],
)
def test_next_step(threshold: float, total: float, estimate: float, step: float) -> None:
    assert decisions.next_step(threshold, total, estimate) == pytest.approx(step)


def test_next_step_with_a_zero_threshold_approves_exactly_what_is_asked() -> None:
    assert decisions.next_step(0.0, 0.4, 0.1) == pytest.approx(0.5)


def test_next_step_never_approves_without_bound() -> None:
    assert decisions.next_step(1.0, math.inf) == 2.0
    assert decisions.next_step(1.0, math.nan) == 2.0
    assert decisions.next_step(1e-300, 1e300) > 1e300  # no endless loop, still strictly above


@given(
    threshold=st.floats(min_value=0.01, max_value=1000, allow_nan=False),
    total=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    estimate=st.floats(min_value=0, max_value=1e4, allow_nan=False),
)
def test_next_step_is_the_smallest_multiple_above(threshold: float, total: float, estimate: float) -> None:
    step = decisions.next_step(threshold, total, estimate)
    k = round(step / threshold)
    assert k >= 2
    assert step == pytest.approx(k * threshold, rel=1e-9, abs=1e-9)
    assert step > total + estimate
    assert k == 2 or (k - 1) * threshold <= (total + estimate) * (1 + 1e-9) + 1e-9


@pytest.mark.parametrize(
    ("total", "floor"),
    [(0.5, 0.0), (1.0, 0.0), (1.5, 1.0), (2.0, 1.0), (2.0001, 2.0), (15.46, 15.0)],
)
def test_step_floor(total: float, floor: float) -> None:
    assert decisions.step_floor(1.0, total) == pytest.approx(floor)


def test_needs_confirmation_is_strict_on_the_expected_total() -> None:
    assert not decisions.needs_confirmation(1.0, 1.0, None)
    assert decisions.needs_confirmation(1.0001, 1.0, None)
    assert not decisions.needs_confirmation(0.0, 0.0, None)


def test_needs_confirmation_after_continue_uses_the_approved_step() -> None:
    approved = Decision(SID, "continue", 2.0, WHEN)
    assert not decisions.needs_confirmation(1.5, 1.0, approved)
    assert not decisions.needs_confirmation(2.0, 1.0, approved)
    assert decisions.needs_confirmation(2.01, 1.0, approved)


def test_a_paused_session_stays_paused_until_the_user_continues() -> None:
    paused = Decision(SID, "pause", 1.2, WHEN)
    assert decisions.needs_confirmation(0.1, 1.0, paused)
    assert decisions.needs_confirmation(0.0, 1.0, paused)


def test_an_amount_that_is_not_a_number_always_needs_confirmation() -> None:
    assert decisions.needs_confirmation(math.nan, 1.0, None)
    assert decisions.needs_confirmation(math.inf, 1.0, Decision(SID, "continue", 1e9, WHEN))
    assert decisions.needs_confirmation(0.5, math.nan, None)


def test_format_timestamp_is_rfc3339_utc() -> None:
    assert decisions.format_timestamp(WHEN) == "2026-01-05T10:11:12.123Z"
    assert decisions.format_timestamp(decisions.now()).endswith("Z")
