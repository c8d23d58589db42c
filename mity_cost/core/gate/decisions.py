"""The user's answer to a threshold crossing: ``cost.decision.json`` next to the session's ``cost.json``.

``continue`` approves spending up to the next step (twice the threshold, then three times...);
``pause`` approves nothing more and keeps the session paused until the user continues.  A missing,
half-written or hostile file approves nothing (fail closed).

Stdlib only: ``mity-cost gate`` imports it on its fast path.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mity_cost.core.atomic import write_json_atomic
from mity_cost.core.factory.layout import DECISION_FILE

DecisionKind = Literal["continue", "pause"]
DECISIONS: tuple[DecisionKind, ...] = ("continue", "pause")
CURRENCIES = ("USD", "EUR")
MAX_DECISION_BYTES = 64 * 1024
"""A decision file is a few hundred bytes; anything bigger is refused unread."""


@dataclass(frozen=True)
class Decision:
    """One answer for one session; ``approved_up_to`` is in ``currency``."""

    session_id: str
    decision: DecisionKind
    approved_up_to: float
    decided_at: datetime
    currency: str = "USD"

    @property
    def approves(self) -> bool:
        """True for ``continue``."""
        return self.decision == "continue"

    def to_json(self) -> dict[str, Any]:
        """The file's camelCase document."""
        return {
            "sessionId": self.session_id,
            "decision": self.decision,
            "approvedUpTo": self.approved_up_to,
            "decidedAt": format_timestamp(self.decided_at),
            "currency": self.currency,
        }


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``: ``2026-01-05T10:11:12.123Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def decision_path(session_dir: Path) -> Path:
    """``<session_dir>/cost.decision.json``."""
    return session_dir / DECISION_FILE


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"repeated key {key!r}")
        result[key] = value
    return result


def _read_small(path: Path) -> bytes | None:
    """A regular file of at most ``MAX_DECISION_BYTES``, else ``None``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_DECISION_BYTES:
            return None
        data = os.read(fd, MAX_DECISION_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= MAX_DECISION_BYTES else None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def parse_decision(data: bytes) -> Decision | None:
    """A decision document, or ``None`` for anything that is not exactly one (never raises)."""
    try:
        doc = json.loads(
            data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys
        )
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    session_id = doc.get("sessionId")
    kind = doc.get("decision")
    amount = doc.get("approvedUpTo")
    currency = doc.get("currency")
    decided_at = _parse_time(doc.get("decidedAt"))
    if not isinstance(session_id, str) or not session_id or kind not in DECISIONS:
        return None
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return None
    if not math.isfinite(amount) or amount < 0 or currency not in CURRENCIES or decided_at is None:
        return None
    return Decision(session_id, kind, float(amount), decided_at, currency)


def read_decision(session_dir: Path, session_id: str | None = None) -> Decision | None:
    """The session's decision, or ``None`` (no file, a broken one, or one for another session)."""
    data = _read_small(decision_path(session_dir))
    if data is None:
        return None
    decision = parse_decision(data)
    if decision is None or (session_id is not None and decision.session_id != session_id):
        return None
    return decision


def write_decision(session_dir: Path, decision: Decision) -> Path:
    """Write the decision atomically next to the session's ``cost.json``; returns the file's path."""
    target = decision_path(session_dir)
    write_json_atomic(target, decision.to_json(), mode=0o644)
    return target


def in_currency(decision: Decision, currency: str, convert: Callable[[float, str], float]) -> Decision:
    """The decision with its amount converted to ``currency`` (``convert(amount, from_currency)``)."""
    if decision.currency == currency:
        return decision
    return replace(
        decision, approved_up_to=convert(decision.approved_up_to, decision.currency), currency=currency
    )


def allowed_limit(threshold: float, decision: Decision | None) -> float:
    """How far the session may go without asking: the threshold, or what a ``continue`` approved.

    A ``continue`` never lowers the limit below the threshold; a ``pause`` approves nothing more.
    """
    if decision is not None and decision.approves:
        return max(threshold, decision.approved_up_to)
    return threshold


def next_step(threshold: float, total: float, estimate: float = 0.0) -> float:
    """What ``continue`` approves: the smallest ``k * threshold`` (``k >= 2``) strictly above
    ``total + estimate``.

    With a zero threshold (every spend needs a confirmation) it approves exactly ``total + estimate``.
    A non-finite amount gets the first step only (never an unbounded approval).
    """
    amount = total + max(estimate, 0.0)
    if not math.isfinite(threshold) or threshold < 0:
        threshold = 0.0
    if threshold == 0:
        return amount if math.isfinite(amount) and amount > 0 else 0.0
    if not math.isfinite(amount):
        return 2 * threshold
    ratio = amount / threshold
    if ratio > 1e12:  # absurd amounts: no loop over trillions of steps, still strictly above
        return math.nextafter(amount, math.inf)
    k = max(2, math.floor(ratio) + 1)
    while _step(k, threshold) <= amount:
        k += 1
    while k > 2 and _step(k - 1, threshold) > amount:
        k -= 1
    return _step(k, threshold)


def _step(k: int, threshold: float) -> float:
    """``k * threshold`` without binary noise (0.1 * 3 is 0.3, not 0.30000000000000004)."""
    return float(round(k * threshold, 9))


def step_floor(threshold: float, total: float) -> float:
    """The highest step ``k * threshold`` (``k >= 1``) the total has gone strictly over; 0 when none.

    Two totals with the same floor are the same crossing: the app asks once per floor.  With a zero
    threshold every amount is its own floor.
    """
    if not math.isfinite(total):
        return math.inf
    if not math.isfinite(threshold) or threshold <= 0:
        return max(total, 0.0)
    if total <= threshold:
        return 0.0
    ratio = total / threshold
    if ratio > 1e12:
        return total
    k = max(1, math.ceil(ratio) - 1)
    while k > 1 and _step(k, threshold) >= total:
        k -= 1
    while _step(k + 1, threshold) < total:
        k += 1
    return _step(k, threshold)


def needs_confirmation(total_expected: float, threshold: float, decision: Decision | None) -> bool:
    """True when ``total_expected`` (the total plus what is about to be spent) needs the user's yes.

    Strictly over the allowed limit (as the factory compares), or the session is paused (until the
    user continues), or the amount is not a number we can compare (fail closed).
    """
    if not math.isfinite(total_expected) or math.isnan(threshold):
        return True
    if decision is not None and decision.decision == "pause":
        return True
    return total_expected > allowed_limit(threshold, decision)
