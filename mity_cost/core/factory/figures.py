"""The figures of one checked ``cost.json``, computed once when it is loaded, whatever the settings.

Every consumer (badge, menu, notifications, details, dialog, ``summary``, ``show``, ``check-threshold``,
``gate``, budgets, history) reads these instead of walking the records again; the total they show is
``core.figures.totals.session_total(figures.ledger, settings)``.  Stdlib only: the fast path builds a
:class:`Ledger` from its own quick read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mity_cost.core.money import Range

if TYPE_CHECKING:
    from mity_cost.core.factory.documents import SessionCostState

CATEGORIES: tuple[str, ...] = ("llm", "compute", "storage", "network", "misc")
"""The ledger's five categories, in the factory's order."""
OTHER_CATEGORIES: tuple[str, ...] = CATEGORIES[1:]
"""What is left of the ledger when LLM costs are not counted."""


@dataclass(frozen=True, slots=True)
class Ledger:
    """A session's running ledger (``sessionCost``) in the document's own currency."""

    currency: str
    total: Range
    llm: Range
    compute: Range
    storage: Range
    network: Range
    misc: Range

    @classmethod
    def of(cls, currency: str, estimate: Mapping[str, Any]) -> Ledger:
        """From a checked ``CostEstimate`` (or the fast path's equally checked dict)."""
        parts = estimate["breakdown"]
        return cls(
            currency,
            Range.of(estimate["total"]),
            *(Range.of(parts[name]) for name in CATEGORIES),
        )

    def category(self, name: str) -> Range:
        """One category's range by its name (``llm``, ``compute``...)."""
        value: Range = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Consistency:
    """Whether the ledger agrees with the records it was built from."""

    ledger_llm: float
    records_llm: float
    duplicate_ids: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        """Ledger equals the sum of record costs (to float noise) and no ``id`` repeats."""
        return self.sums_agree and not self.duplicate_ids

    @property
    def sums_agree(self) -> bool:
        """The ledger's LLM figure equals the sum of the records' costs (to float noise)."""
        return math.isclose(self.ledger_llm, self.records_llm, rel_tol=1e-9, abs_tol=1e-9)

    def describe(self) -> str:
        """What disagrees, with both numbers."""
        parts = []
        if not self.sums_agree:
            parts.append(
                f"ledger LLM cost {self.ledger_llm:.6f} but its records sum to {self.records_llm:.6f}"
            )
        if self.duplicate_ids:
            shown = ", ".join(self.duplicate_ids[:3])
            more = f" (+{len(self.duplicate_ids) - 3} more)" if len(self.duplicate_ids) > 3 else ""
            parts.append(f"{len(self.duplicate_ids)} repeated record id(s): {shown}{more}")
        return "; ".join(parts) or "consistent"

    def to_json(self) -> dict[str, Any]:
        """``{"consistent", "ledgerLlm", "recordsLlm", "duplicateIds"}`` (amounts as written)."""
        return {
            "consistent": self.consistent,
            "ledgerLlm": self.ledger_llm,
            "recordsLlm": self.records_llm,
            "duplicateIds": list(self.duplicate_ids),
        }


@dataclass(frozen=True, slots=True)
class SessionFigures:
    """Everything the consumers need of one session, settings-independent (document currency)."""

    session_id: str
    ledger: Ledger
    monthly: Range
    """The monthly infrastructure estimate (``infraCost.total``): a recurring bill, not in the total."""
    calls: int
    input_tokens: int
    output_tokens: int
    models: tuple[str, ...]
    """The records' model keys (``model_key``), sorted."""
    agents: tuple[str, ...]
    """The records' agents, sorted (records without one are not listed)."""
    consistency: Consistency
    confirmation_threshold: float
    """The factory's stored ``confirmationThreshold`` (shown, never used)."""

    @property
    def currency(self) -> str:
        """The document's currency."""
        return self.ledger.currency

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def session_figures(doc: SessionCostState) -> SessionFigures:
    """The figures of a checked document: one pass over its records.

    Python-level loops on purpose: ``fsum(map(itemgetter(...)))`` would be faster but hold the GIL
    for longer at a stretch while a GUI thread may be waiting for it.
    """
    records = doc["llmUsage"]
    ids: set[str] = set()
    repeated: set[str] = set()
    models: set[str] = set()
    agents: set[str] = set()
    tokens_in = tokens_out = 0
    for record in records:
        rid = record["id"]
        if rid in ids:
            repeated.add(rid)
        else:
            ids.add(rid)
        tokens_in += record["inputTokens"]
        tokens_out += record["outputTokens"]
        model = record["model"]
        models.add(model if isinstance(model, str) else model_key(model))
        agent = record.get("agent")
        if agent:
            agents.add(agent)
    ledger = Ledger.of(doc["currency"], doc["sessionCost"])
    consistency = Consistency(
        ledger.llm.expected, math.fsum(record["cost"] for record in records), tuple(sorted(repeated))
    )
    return SessionFigures(
        session_id=doc["sessionId"],
        ledger=ledger,
        monthly=Range.of(doc["infraCost"]["total"]),
        calls=len(records),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        models=tuple(sorted(models)),
        agents=tuple(sorted(agents)),
        consistency=consistency,
        confirmation_threshold=doc["confirmationThreshold"],
    )


def model_key(model: str | Mapping[str, str]) -> str:
    """A stable text key for a record's model: ``"gpt5mini"``, ``"unknown:gpt-4o"``."""
    if isinstance(model, str):
        return model
    (tag, name), *_ = model.items() if model else (("unknown", ""),)
    return f"{tag}:{name}"
