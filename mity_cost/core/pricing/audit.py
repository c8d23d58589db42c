"""Price audit: what each session's LLM calls cost at today's list prices, beside what the factory recorded.

Records are priced per model in aggregate (``PriceBook.price_groups``); a model whose recorded cost
differs from its list price by more than the tolerance (10 % by default) is flagged, with the money
at stake and why (the factory's fallback price for names it does not know, a stale table, records
that do not match the factory's own table).  Unpriced models are listed, never counted as $0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mity_cost.core.factory.documents import is_unknown_model, model_key
from mity_cost.core.factory.layout import session_files
from mity_cost.core.factory.loading import LoadedSession, LoadError, load_session
from mity_cost.core.factory.rules import FACTORY_PRICES, factory_llm_cost
from mity_cost.core.pricing.prices import FACTORY_MODEL_NAMES, ModelPrice, PriceBook, factory_variant

DEFAULT_TOLERANCE = 0.10
"""Flag a model when its recorded cost and its list price differ by more than this fraction."""

Direction = Literal["over", "under", "match"]


def _per_mtok(per_1k: float) -> str:
    return f"${per_1k * 1000:g}"


@dataclass(frozen=True)
class AuditLine:
    """One model of one session: recorded cost, list price, and the verdict."""

    price: ModelPrice
    flagged: bool
    reasons: tuple[str, ...] = ()
    off_table_records: int = 0

    @property
    def money_at_stake(self) -> float | None:
        """How far the recorded cost is from the list price, in USD (None when unpriced)."""
        diff = self.price.difference
        return None if diff is None else abs(diff)

    @property
    def direction(self) -> Direction | None:
        """``over``: the factory records more than the list price; ``under``: less; None if unpriced."""
        diff = self.price.difference
        if diff is None:
            return None
        if math.isclose(diff, 0.0, abs_tol=1e-12):
            return "match"
        return "under" if diff > 0 else "over"

    def to_json(self) -> dict[str, Any]:
        """The model's prices plus ``flagged``, ``moneyAtStake``, ``direction`` and ``reasons``."""
        return {
            **self.price.to_json(),
            "flagged": self.flagged,
            "moneyAtStake": self.money_at_stake,
            "direction": self.direction,
            "offTableRecords": self.off_table_records,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class SessionAudit:
    """The audit of one session's LLM records."""

    session_id: str
    path: Path | None
    currency: str
    lines: tuple[AuditLine, ...]
    tolerance: float = DEFAULT_TOLERANCE
    notes: tuple[str, ...] = ()

    @property
    def priced(self) -> tuple[AuditLine, ...]:
        """Models with a list price."""
        return tuple(line for line in self.lines if line.price.priced)

    @property
    def unpriced(self) -> tuple[AuditLine, ...]:
        """Models without a list price (left out of every list-price total)."""
        return tuple(line for line in self.lines if not line.price.priced)

    @property
    def flagged(self) -> tuple[AuditLine, ...]:
        """Models off by more than the tolerance, most money at stake first."""
        lines = [line for line in self.lines if line.flagged]
        return tuple(sorted(lines, key=lambda line: -(line.money_at_stake or 0.0)))

    @property
    def factory_total(self) -> float:
        """What the factory recorded for every LLM call."""
        return sum(line.price.factory_cost for line in self.lines)

    @property
    def factory_priced_total(self) -> float:
        """What the factory recorded for the calls that have a list price."""
        return sum(line.price.factory_cost for line in self.priced)

    @property
    def current_priced_total(self) -> float | None:
        """The list price of the calls that have one (None when none has)."""
        priced = self.priced
        return sum(line.price.current_cost or 0.0 for line in priced) if priced else None

    @property
    def unpriced_calls(self) -> int:
        """Calls of unpriced models."""
        return sum(line.price.calls for line in self.unpriced)

    @property
    def money_at_stake(self) -> float:
        """The sum of the flagged models' differences (absolute), in USD."""
        return sum(line.money_at_stake or 0.0 for line in self.flagged)

    def to_json(self) -> dict[str, Any]:
        """camelCase keys; list-price totals cover priced models only (``unpricedCalls``: the rest)."""
        return {
            "sessionId": self.session_id,
            "path": str(self.path) if self.path else None,
            "currency": self.currency,
            "tolerancePercent": self.tolerance * 100.0,
            "factoryTotal": self.factory_total,
            "factoryPricedTotal": self.factory_priced_total,
            "currentPricedTotal": self.current_priced_total,
            "unpricedCalls": self.unpriced_calls,
            "moneyAtStake": self.money_at_stake,
            "flagged": [line.price.key for line in self.flagged],
            "unpriced": [line.price.key for line in self.unpriced],
            "models": [line.to_json() for line in self.lines],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class AuditReport:
    """Audits of several sessions, with where the list prices come from and what went wrong."""

    sessions: tuple[SessionAudit, ...]
    tolerance: float
    price_source: str
    as_of: str | None
    override_path: Path | None
    problems: tuple[str, ...] = field(default=())

    @property
    def money_at_stake(self) -> float:
        """Flagged money over every session."""
        return sum(s.money_at_stake for s in self.sessions)

    def to_json(self) -> dict[str, Any]:
        """camelCase keys."""
        return {
            "tolerancePercent": self.tolerance * 100.0,
            "priceSource": self.price_source,
            "asOf": self.as_of,
            "overrideFile": str(self.override_path) if self.override_path else None,
            "moneyAtStake": self.money_at_stake,
            "sessions": [s.to_json() for s in self.sessions],
            "problems": list(self.problems),
        }


def _off_table(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Per model key: records whose cost is not what the factory's own table gives for their tokens."""
    counts: dict[str, int] = {}
    for record in records:
        expected = factory_llm_cost(record["model"], record["inputTokens"], record["outputTokens"])
        if not math.isclose(record["cost"], expected, rel_tol=1e-6, abs_tol=1e-12):
            key = model_key(record["model"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def _off_table_reason(price: ModelPrice, off_table: int) -> str:
    return (
        f"{off_table} of {price.calls} record(s) do not match the factory's own table "
        "(edited, or priced by another version of the table)"
    )


def _reasons(price: ModelPrice, model: Any, book: PriceBook, off_table: int) -> list[str]:
    """Why a flagged or unpriced model's recorded cost is not its list price."""
    reasons: list[str] = []
    variant = factory_variant(model)
    table_in, table_out = FACTORY_PRICES[variant]
    if not price.priced:
        where = book.override_path or "the price override file"
        reasons.append(f"no list price ({price.note or price.source}); add one to {where}")
    if is_unknown_model(model):
        reasons.append(
            f"the factory did not recognise '{price.label}' and charged its fallback price "
            f"({_per_mtok(table_in)} in / {_per_mtok(table_out)} out per 1M tokens)"
        )
    else:
        rates = book.rates(model)
        if rates is not None and not (
            math.isclose(rates.input_per_mtok, table_in * 1000, rel_tol=1e-9)
            and math.isclose(rates.output_per_mtok, table_out * 1000, rel_tol=1e-9)
        ):
            real = FACTORY_MODEL_NAMES.get(variant, price.name)
            as_of = f", as of {rates.as_of}" if rates.as_of else ""
            reasons.append(
                f"the factory's table prices {real} at {_per_mtok(table_in)} in / {_per_mtok(table_out)} "
                f"out per 1M tokens; the list price is ${rates.input_per_mtok:g} / "
                f"${rates.output_per_mtok:g} ({rates.source}{as_of}): its table is stale"
            )
        if rates is not None and rates.tier_note:
            reasons.append(f"tiered price: {rates.tier_note}")
    if off_table:
        reasons.append(_off_table_reason(price, off_table))
    if price.note and price.priced:
        reasons.append(price.note)
    return reasons


def _flagged(price: ModelPrice, tolerance: float) -> bool:
    diff = price.difference
    if diff is None:
        return False
    if price.factory_cost > 0:
        return abs(diff) > tolerance * price.factory_cost
    return diff > 0


def audit_records(
    records: Sequence[Mapping[str, Any]], book: PriceBook, tolerance: float = DEFAULT_TOLERANCE
) -> list[AuditLine]:
    """Audit LLM records: one line per model, most recorded cost first."""
    off_table = _off_table(records)
    models: dict[str, Any] = {}
    for record in records:
        models.setdefault(model_key(record["model"]), record["model"])
    lines: list[AuditLine] = []
    for price in book.price_groups(records):
        flagged = _flagged(price, tolerance)
        off = off_table.get(price.key, 0)
        if flagged or not price.priced:
            reasons = _reasons(price, models[price.key], book, off)
        else:
            reasons = [_off_table_reason(price, off)] if off else []
        lines.append(AuditLine(price, flagged, tuple(reasons), off))
    return lines


def audit_session(
    session: LoadedSession, book: PriceBook, tolerance: float = DEFAULT_TOLERANCE
) -> SessionAudit:
    """Audit one loaded session."""
    doc = session.doc
    lines = audit_records(doc["llmUsage"], book, tolerance)
    notes: list[str] = []
    if doc["currency"] != "USD":
        notes.append(
            f"the session is in {doc['currency']}: the factory's figures come from its USD table and are "
            "compared with USD list prices as they are"
        )
    if not session.consistency.consistent:
        notes.append(f"the ledger disagrees with its records: {session.consistency.describe()}")
    return SessionAudit(
        doc["sessionId"], session.path, doc["currency"], tuple(lines), tolerance, tuple(notes)
    )


def audit_roots(
    roots: Iterable[Path],
    session_id: str | None = None,
    book: PriceBook | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> AuditReport:
    """Audit every session under the roots (or only ``session_id``); bad files become problems."""
    book = book or PriceBook.load()
    problems: list[str] = list(book.problems)
    sessions: list[SessionAudit] = []
    for root in roots:
        found = session_files(root)
        by_content = False
        if session_id is not None:
            # The folder is named after the session; a renamed folder is found by its content.
            by_folder = [f for f in found if f.folder == session_id]
            found, by_content = (by_folder, False) if by_folder else (found, True)
        for session_file in found:
            loaded = load_session(session_file.path)
            if isinstance(loaded, LoadError):
                problems.append(loaded.describe())
                continue
            if by_content and loaded.session_id != session_id:
                continue
            sessions.append(audit_session(loaded, book, tolerance))
    return AuditReport(
        sessions=tuple(sessions),
        tolerance=tolerance,
        price_source=book.catalog_label(),
        as_of=book.catalog_as_of(),
        override_path=book.override_path,
        problems=tuple(problems),
    )
