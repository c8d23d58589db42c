"""Pre-flight estimate: what some LLM calls will cost before they run, as a range with its assumptions.

Two prices are given: the list price now (``PriceBook``: user override, else genai-prices) and the
factory's (what it will record, from its own table, its fallback for names it does not know).
Suggestions carry numbers: a cheaper model of the same provider and of another one, prompt caching
and batching, each with the saving and the assumptions it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mity_cost.core.factory.documents import KNOWN_MODELS, ModelName, model_key
from mity_cost.core.factory.rules import FACTORY_PRICES, detect_model, factory_llm_cost
from mity_cost.core.money import Range
from mity_cost.core.pricing.prices import (
    FACTORY_MODEL_NAMES,
    FACTORY_MODEL_PROVIDERS,
    PriceBook,
    Quote,
    factory_variant,
)

OUTPUT_RATIOS: tuple[float, float, float] = (0.05, 0.25, 1.0)
"""Output tokens as a fraction of input when not given (min, expected, max).

The example and real sessions of the factory have a median of about 0.14 and a 90th percentile of
about 0.65; the expected value is rounded up to stay on the safe side.
"""

CACHED_PREFIX_SHARE = 0.5
"""Share of each call's input assumed to be a prefix repeated in every call (system prompt, tools)."""

MIN_CACHED_PREFIX = 1024
"""The shortest prefix OpenAI and Anthropic cache (Anthropic needs more for some models)."""

TYPICAL_BATCH_DISCOUNT = 0.5
"""The usual batch-API discount, used only when the price data has no batch price for the model."""

SuggestionKind = Literal["cheaper-model", "other-provider", "prompt-caching", "batching"]
Basis = Literal["list price", "factory price"]


def _usd(amount: float) -> str:
    if amount == 0:
        return "$0"
    if abs(amount) < 0.01:
        return f"${amount:.5f}"
    return f"${amount:.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


def _range_json(value: Range | None) -> dict[str, float] | None:
    if value is None:
        return None
    return {"min": value.min, "expected": value.expected, "max": value.max}


@dataclass(frozen=True)
class Suggestion:
    """A way to spend less, with the expected cost and saving (USD, all calls) and its assumptions."""

    kind: SuggestionKind
    text: str
    cost: float | None = None
    saving: float | None = None
    model: str | None = None
    assumptions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """camelCase keys."""
        return {
            "kind": self.kind,
            "text": self.text,
            "cost": self.cost,
            "saving": self.saving,
            "model": self.model,
            "assumptions": list(self.assumptions),
        }


@dataclass(frozen=True)
class Estimate:
    """The estimated cost of ``calls`` calls, in USD.

    ``min``/``expected``/``max`` are at the list price when the model has one (``basis`` says
    ``"list price"``), else at the factory's price (``"factory price"``): never $0 for want of a price.
    ``factory_cost`` is what the factory will add to the session total (its ledger) for these calls.
    """

    model: str
    factory_model: str
    calls: int
    input_tokens: int
    output_tokens: tuple[int, int, int]
    output_given: bool
    min: float
    expected: float
    max: float
    basis: Basis
    list_cost: Range | None
    factory_cost: Range
    quote: Quote
    assumptions: tuple[str, ...]
    suggestions: tuple[Suggestion, ...]
    problems: tuple[str, ...] = ()

    @property
    def priced(self) -> bool:
        """True when the model has a list price."""
        return self.list_cost is not None

    @property
    def range(self) -> Range:
        """``min``/``expected``/``max`` as a ``Range``."""
        return Range(self.min, self.expected, self.max)

    def to_json(self) -> dict[str, Any]:
        """camelCase keys; ``listCost`` is ``null`` when the model is unpriced."""
        return {
            "model": self.model,
            "factoryModel": self.factory_model,
            "calls": self.calls,
            "inputTokens": self.input_tokens,
            "outputTokens": dict(zip(("min", "expected", "max"), self.output_tokens, strict=True)),
            "outputGiven": self.output_given,
            "min": self.min,
            "expected": self.expected,
            "max": self.max,
            "basis": self.basis,
            "priced": self.priced,
            "listCost": _range_json(self.list_cost),
            "factoryCost": _range_json(self.factory_cost),
            "source": self.quote.source,
            "asOf": self.quote.as_of,
            "matchedModel": self.quote.matched_model,
            "provider": self.quote.provider,
            "note": self.quote.note,
            "assumptions": list(self.assumptions),
            "suggestions": [s.to_json() for s in self.suggestions],
            "problems": list(self.problems),
        }


def _name_of(model: ModelName) -> str:
    if isinstance(model, str):
        return FACTORY_MODEL_NAMES.get(model, model)
    return next(iter(model.values()), "unknown")


def _per_call(book: PriceBook, model: ModelName, input_tokens: int, output_tokens: int) -> float | None:
    return book.quote(model, input_tokens, output_tokens).price


def _model_suggestions(
    book: PriceBook,
    model: ModelName,
    name: str,
    provider: str | None,
    matched: str | None,
    input_tokens: int,
    output_tokens: int,
    calls: int,
    current: float,
) -> list[Suggestion]:
    """The nearest cheaper model of the same provider and of another one, among the factory's models."""
    same: tuple[float, str] | None = None
    other: tuple[float, str] | None = None
    for variant in KNOWN_MODELS:
        real = FACTORY_MODEL_NAMES[variant]
        if real in (matched, name) or variant == model:
            continue
        price = _per_call(book, variant, input_tokens, output_tokens)
        if price is None or price * calls >= current:
            continue
        total = price * calls
        if FACTORY_MODEL_PROVIDERS[variant] == provider:
            same = max(same, (total, real)) if same else (total, real)
        else:
            other = max(other, (total, real)) if other else (total, real)
    assumption = "price only: quality, speed and context size are not compared"
    out: list[Suggestion] = []
    pairs: tuple[tuple[SuggestionKind, tuple[float, str] | None], ...] = (
        ("cheaper-model", same),
        ("other-provider", other),
    )
    for kind, found in pairs:
        if found is None:
            continue
        total, real = found
        saving = current - total
        where = "the same provider" if kind == "cheaper-model" else "another provider"
        out.append(
            Suggestion(
                kind,
                f"{real} ({where}) instead of {name}: {_usd(total)} instead of {_usd(current)} expected "
                f"(saves {_usd(saving)}, {saving / current * 100:.0f} %)",
                cost=total,
                saving=saving,
                model=real,
                assumptions=(assumption, "the nearest cheaper of the factory's models, at list price"),
            )
        )
    return out


def _caching_suggestion(
    book: PriceBook,
    model: ModelName,
    name: str,
    input_tokens: int,
    output_tokens: int,
    calls: int,
    current: float,
) -> Suggestion:
    rates = book.rates(model)
    if rates is None or rates.cache_read_per_mtok is None:
        return Suggestion(
            "prompt-caching",
            f"prompt caching: the price data has no cache-read price for {name}, so its saving is unknown",
            assumptions=(f"source: {book.describe(model).source}",),
        )
    prefix = int(input_tokens * CACHED_PREFIX_SHARE)
    writes = rates.cache_write_per_mtok is not None
    first = book.quote(model, input_tokens, output_tokens, cache_write_tokens=prefix if writes else 0).price
    repeat = book.quote(model, input_tokens, output_tokens, cache_read_tokens=prefix).price
    plain = book.quote(model, input_tokens, output_tokens).price
    assumptions = [
        f"{CACHED_PREFIX_SHARE:.0%} of each call's input ({prefix:,} tokens) is a prefix repeated in every "
        "call (system prompt, tools, shared context) and stays cached between calls",
        f"cache reads at ${rates.cache_read_per_mtok:g} per 1M tokens instead of ${rates.input_per_mtok:g}",
    ]
    if prefix < MIN_CACHED_PREFIX:
        assumptions.append(
            f"providers cache only prefixes of about {MIN_CACHED_PREFIX:,} tokens or more: "
            f"a {prefix:,}-token prefix may not be cached at all"
        )
    if writes:
        assumptions.append(
            f"the first call writes the cache at ${rates.cache_write_per_mtok:g} per 1M tokens"
        )
    else:
        assumptions.append("writing the cache costs nothing extra (no cache-write price in the data)")
    if first is None or repeat is None or plain is None:
        return Suggestion("prompt-caching", f"prompt caching: {name} could not be priced with caching")
    if calls < 2:
        per_repeat = plain - repeat
        return Suggestion(
            "prompt-caching",
            f"prompt caching: with one call there is nothing to reuse; each further call that repeats "
            f"the {prefix:,}-token prefix would cost {_usd(repeat)} instead of {_usd(plain)} "
            f"(saves {_usd(per_repeat)} a call)",
            cost=current,
            saving=0.0,
            assumptions=tuple(assumptions),
        )
    cached = first + (calls - 1) * repeat
    saving = current - cached
    return Suggestion(
        "prompt-caching",
        f"prompt caching: {_usd(cached)} instead of {_usd(current)} expected "
        f"(saves {_usd(saving)}, {saving / current * 100:.0f} %)",
        cost=cached,
        saving=saving,
        assumptions=tuple(assumptions),
    )


def _batch_suggestion(
    book: PriceBook,
    model: ModelName,
    name: str,
    input_tokens: int,
    output_tokens: int,
    calls: int,
    current: float,
) -> Suggestion:
    latency = "batch results arrive within 24 h: only for steps nobody waits on"
    batch = book.quote(model, input_tokens, output_tokens, batch=True)
    if batch.price is not None:
        total = batch.price * calls
        saving = current - total
        return Suggestion(
            "batching",
            f"batch API: {_usd(total)} instead of {_usd(current)} expected "
            f"(saves {_usd(saving)}, {saving / current * 100:.0f} %; batch price from {batch.source})",
            cost=total,
            saving=saving,
            assumptions=(latency,),
        )
    total = current * (1 - TYPICAL_BATCH_DISCOUNT)
    return Suggestion(
        "batching",
        f"batch API: about {_usd(total)} instead of {_usd(current)} expected (saves about "
        f"{_usd(current - total)}) if {name} has a batch API at the typical "
        f"{TYPICAL_BATCH_DISCOUNT:.0%} discount",
        cost=total,
        saving=current - total,
        assumptions=(
            f"the price data has no batch price for {name}: the typical {TYPICAL_BATCH_DISCOUNT:.0%} "
            "discount is an assumption",
            latency,
        ),
    )


def estimate(
    model: str,
    input_tokens: int,
    output_tokens: int | None = None,
    calls: int = 1,
    book: PriceBook | None = None,
) -> Estimate:
    """Estimate ``calls`` calls of ``model`` with ``input_tokens`` (and ``output_tokens``) each.

    ``model`` is any model name (``"claude-sonnet-4-5"``, ``"gpt-4o"``) or a factory variant
    (``"gpt5mini"``).  Raises ``ValueError`` for an empty name, negative tokens or ``calls < 1``.
    """
    name = model.strip()
    if not name:
        raise ValueError("the model name is empty")
    if input_tokens < 0 or (output_tokens is not None and output_tokens < 0):
        raise ValueError("token counts must be >= 0")
    if calls < 1:
        raise ValueError("calls must be at least 1")
    book = book or PriceBook.load()
    priced_as: ModelName = name
    recorded: ModelName = name if name in KNOWN_MODELS else detect_model(name)
    shown = _name_of(priced_as)
    assumptions: list[str] = []

    if output_tokens is None:
        outs = tuple(round(input_tokens * ratio) for ratio in OUTPUT_RATIOS)
        low, mid, high = OUTPUT_RATIOS
        assumptions.append(
            f"output tokens not given: {low:g}x to {high:g}x the input (expected {mid:g}x), "
            f"i.e. {outs[0]:,} to {outs[2]:,} a call (expected {outs[1]:,}); give --output-tokens for a "
            "tighter range"
        )
    else:
        outs = (output_tokens, output_tokens, output_tokens)
        assumptions.append("token counts as given, no retries: the range has no width")
    out_min, out_mid, out_max = outs[0], outs[1], outs[2]

    quote = book.quote(priced_as, input_tokens, out_mid)
    list_cost: Range | None = None
    if quote.price is not None:
        prices = [book.quote(priced_as, input_tokens, out).price for out in (out_min, out_mid, out_max)]
        if all(p is not None for p in prices):
            low_p, mid_p, high_p = (float(p or 0.0) * calls for p in prices)
            list_cost = Range(low_p, mid_p, high_p)
    factory = Range(
        *(factory_llm_cost(recorded, input_tokens, out) * calls for out in (out_min, out_mid, out_max))
    )

    variant = factory_variant(recorded)
    table_in, table_out = FACTORY_PRICES[variant]
    if variant == "unknown":
        assumptions.append(
            f"the factory does not recognise '{name}': it will record its fallback price "
            f"(${table_in * 1000:g} in / ${table_out * 1000:g} out per 1M tokens)"
        )
    elif name not in KNOWN_MODELS and FACTORY_MODEL_NAMES[variant] != (quote.matched_model or name):
        assumptions.append(
            f"the factory will record '{name}' as {variant} "
            f"(${table_in * 1000:g} in / ${table_out * 1000:g} out per 1M tokens)"
        )
    if list_cost is None:
        assumptions.append(
            f"no list price for '{shown}' ({quote.note or quote.source}): the range is at the factory's "
            "price; add a price to the override file for a real estimate"
        )
    else:
        as_of = f", as of {quote.as_of}" if quote.as_of else ""
        assumptions.append(f"list price from {quote.source}{as_of}")
    if calls > 1:
        assumptions.append(f"{calls} calls of the same size")

    suggestions: list[Suggestion] = []
    if list_cost is not None and list_cost.expected > 0:
        provider = quote.provider or FACTORY_MODEL_PROVIDERS.get(variant)
        suggestions += _model_suggestions(
            book,
            priced_as,
            shown,
            provider,
            quote.matched_model,
            input_tokens,
            out_mid,
            calls,
            list_cost.expected,
        )
        suggestions.append(
            _caching_suggestion(book, priced_as, shown, input_tokens, out_mid, calls, list_cost.expected)
        )
        suggestions.append(
            _batch_suggestion(book, priced_as, shown, input_tokens, out_mid, calls, list_cost.expected)
        )

    chosen = list_cost if list_cost is not None else factory
    return Estimate(
        model=name,
        factory_model=model_key(recorded),
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=(out_min, out_mid, out_max),
        output_given=output_tokens is not None,
        min=chosen.min,
        expected=chosen.expected,
        max=chosen.max,
        basis="list price" if list_cost is not None else "factory price",
        list_cost=list_cost,
        factory_cost=factory,
        quote=quote,
        assumptions=tuple(assumptions),
        suggestions=tuple(suggestions),
        problems=tuple(book.problems),
    )
