"""Today's list prices of the breakdown's LLM rows, fast: one call, or a group of calls of one model.

Prices are linear in tokens for most models, so a group is priced from its token sums; a model whose
price is not (tiers above some call size, per-request fees) has each call above the tier, or each
group, priced exactly by the price book.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mity_cost.core.breakdown.nodes import ListPrice
from mity_cost.core.breakdown.series import CallColumns, IntArray
from mity_cost.core.factory.documents import LlmUsageRecord, ModelName
from mity_cost.core.money import Range
from mity_cost.core.pricing.prices import PriceBook
from mity_cost.core.settings import Settings


@dataclass(frozen=True)
class Usage:
    """Sums over some LLM records."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def range(self, scale: float) -> Range:
        total = self.cost * scale
        return Range(total, total, total)


@dataclass(frozen=True)
class CallGroup:
    """Some calls of one model: their record indices (file order) and sums."""

    model: str
    name: ModelName
    indices: IntArray
    usage: Usage


def usage_of(columns: CallColumns, indices: IntArray) -> Usage:
    return Usage(
        int(indices.size),
        int(columns.input_tokens[indices].sum()),
        int(columns.output_tokens[indices].sum()),
        float(columns.cost[indices].sum()),
    )


_TIER_START = re.compile(r"above ([\d,]+) input tokens")
_PROBE = (1000, 1000)


@dataclass(frozen=True)
class ModelRates:
    """How to price one model's calls fast: linear token rates up to ``linear_up_to`` input tokens
    a call (None: any size); beyond that, or when ``linear`` is false, ask the price book exactly."""

    priced: bool
    linear: bool
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    linear_up_to: int | None = None
    source: str = ""
    as_of: str | None = None
    matched_model: str | None = None
    note: str = ""


class RowPricer:
    """Current list prices of calls and groups of calls, in the display currency.

    Prices are linear in tokens for most models, so a group is priced from its token sums with the
    price book's ``rates``; a model whose price is not (tiers above some call size, per-request
    fees) has each call above the tier, or each group, priced exactly (``quote`` /
    ``price_groups``).  Linearity is checked against ``quote`` once per model.
    """

    def __init__(self, book: PriceBook | None, settings: Settings) -> None:
        self._book = book
        self._usd = settings.convert(1.0, "USD")
        self._models: dict[str, ModelRates] = {}
        self.token = (id(book), self._usd)
        """Identifies the prices a cached call row was built with."""

    def rates(self, key: str, model: ModelName) -> ModelRates:
        """The pricing plan of one model (cached)."""
        found = self._models.get(key)
        if found is None:
            found = self._models[key] = self._plan(model)
        return found

    def _plan(self, model: ModelName) -> ModelRates:
        book = self._book
        if book is None:
            return ModelRates(False, False, source="no price data", note="the price book could not be loaded")
        try:
            rates = book.rates(model)
            if rates is None:
                quote = book.quote(model, *_PROBE)
                return ModelRates(False, False, source=quote.source, as_of=quote.as_of, note=quote.note)
            plan = ModelRates(
                True,
                True,
                rates.input_per_mtok,
                rates.output_per_mtok,
                source=rates.source,
                as_of=rates.as_of,
                matched_model=rates.matched_model,
            )
            if rates.tier_note:
                match = _TIER_START.search(rates.tier_note)
                start = int(match.group(1).replace(",", "")) if match else None
                plan = replace(plan, linear=start is not None, linear_up_to=start, note=rates.tier_note)
            probe = book.quote(model, *_PROBE).price
            if probe is None or not math.isclose(
                probe, self._linear(plan, *_PROBE), rel_tol=1e-9, abs_tol=1e-15
            ):
                plan = replace(plan, linear=False)
            return plan
        except Exception as exc:  # noqa: BLE001 - a price problem must never break the breakdown
            return ModelRates(False, False, source="price book error", note=str(exc))

    @staticmethod
    def _linear(plan: ModelRates, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * plan.input_per_mtok + output_tokens * plan.output_per_mtok) / 1_000_000

    def _exact(self, model: ModelName, input_tokens: int, output_tokens: int) -> float | None:
        assert self._book is not None
        try:
            return self._book.quote(model, input_tokens, output_tokens).price
        except Exception:  # noqa: BLE001 - unpriced rather than broken
            return None

    def _price(self, plan: ModelRates, amount: float | None, factory: float) -> ListPrice:
        return ListPrice(
            None if amount is None else amount * self._usd,
            factory,
            plan.source,
            plan.as_of,
            plan.matched_model,
            plan.note,
        )

    def call(self, key: str, record: LlmUsageRecord, factory: float) -> ListPrice:
        """The list price of one call."""
        model = record["model"]
        plan = self.rates(key, model)
        tokens_in, tokens_out = record["inputTokens"], record["outputTokens"]
        if not plan.priced:
            return self._price(plan, None, factory)
        if plan.linear and (plan.linear_up_to is None or tokens_in <= plan.linear_up_to):
            return self._price(plan, self._linear(plan, tokens_in, tokens_out), factory)
        return self._price(plan, self._exact(model, tokens_in, tokens_out), factory)

    def group(
        self, group: CallGroup, records: Sequence[LlmUsageRecord], columns: CallColumns, scale: float
    ) -> ListPrice:
        """The list price of some calls of one model."""
        usage = group.usage
        factory = usage.cost * scale
        model = group.name
        plan = self.rates(group.model, model)
        if not plan.priced:
            return self._price(plan, None, factory)
        if plan.linear and plan.linear_up_to is None:
            return self._price(plan, self._linear(plan, usage.input_tokens, usage.output_tokens), factory)
        if plan.linear and plan.linear_up_to is not None:
            big = group.indices[columns.input_tokens[group.indices] > plan.linear_up_to]
            small_in = usage.input_tokens - int(columns.input_tokens[big].sum())
            small_out = usage.output_tokens - int(columns.output_tokens[big].sum())
            total: float | None = self._linear(plan, small_in, small_out)
            for index in big:
                record = records[int(index)]
                price = self._exact(model, record["inputTokens"], record["outputTokens"])
                total = None if price is None or total is None else total + price
            return self._price(plan, total, factory)
        assert self._book is not None
        try:
            groups = self._book.price_groups([records[int(i)] for i in group.indices])
        except Exception as exc:  # noqa: BLE001 - unpriced rather than broken
            return ListPrice(None, factory, "price book error", note=str(exc))
        amount = groups[0].current_cost if groups else None
        return self._price(plan, amount, factory)
