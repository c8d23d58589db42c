"""Shared builders for the history, budget, alert, forecast and report tests."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mity_cost.core.spending.history import History, Kind, RecordRow, Totals, provider_of

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def row(
    uid: str,
    ts: datetime,
    cost: float,
    *,
    model: str | None = "gpt5mini",
    session: str = "s1",
    app: str | None = None,
    agent: str | None = None,
    station: str | None = None,
    feature: str | None = None,
    currency: str = "USD",
    spread: float = 0.0,
    tokens: tuple[int, int] = (100, 50),
) -> RecordRow:
    """One record; ``model=None`` makes it an execution with ``cost +- spread``."""
    kind: Kind = "llm" if model is not None else "execution"
    low, high = (cost, cost) if kind == "llm" else (max(0.0, cost - spread), cost + spread)
    return RecordRow(
        uid=uid,
        kind=kind,
        session_id=session,
        root="/root",
        app=app,
        provider=provider_of(model),
        model=model,
        agent=agent,
        station=station,
        feature=feature,
        execution_type=None if model else "test-run",
        input_tokens=tokens[0] if model else 0,
        output_tokens=tokens[1] if model else 0,
        cost_min=low,
        cost_expected=cost,
        cost_max=high,
        currency=currency,
        ts=ts.timestamp(),
        dated_by="record",
    )


def summed(rows: Iterable[RecordRow]) -> Totals:
    """What the history should report for these rows (computed, not hard-coded)."""
    items = list(rows)
    return Totals(
        math.fsum(r.cost_min for r in items),
        math.fsum(r.cost_expected for r in items),
        math.fsum(r.cost_max for r in items),
        len(items),
        sum(r.input_tokens for r in items),
        sum(r.output_tokens for r in items),
    )


def close(a: Totals, b: Totals) -> bool:
    """Equal to float noise, counts exactly."""
    return (
        math.isclose(a.min, b.min, rel_tol=1e-9, abs_tol=1e-9)
        and math.isclose(a.expected, b.expected, rel_tol=1e-9, abs_tol=1e-9)
        and math.isclose(a.max, b.max, rel_tol=1e-9, abs_tol=1e-9)
        and (a.calls, a.input_tokens, a.output_tokens) == (b.calls, b.input_tokens, b.output_tokens)
    )


def open_history(tmp_path: Path) -> History:
    """A history in UTC days, in the test's folder."""
    return History(tmp_path / "history.sqlite3", tz=UTC)


def session_docs(root: Path) -> dict[str, dict[str, Any]]:
    """The raw cost.json documents under a root, by session id."""
    return {p.parent.name: json.loads(p.read_bytes()) for p in sorted(root.glob(".mity/chat/*/cost.json"))}
