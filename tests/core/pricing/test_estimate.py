"""Pre-flight estimates: ranges, assumptions, factory price, suggestions with numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mity_cost.core.factory.rules import detect_model, factory_llm_cost
from mity_cost.core.pricing.estimate import (
    CACHED_PREFIX_SHARE,
    OUTPUT_RATIOS,
    TYPICAL_BATCH_DISCOUNT,
    estimate,
)
from mity_cost.core.pricing.prices import (
    FACTORY_MODEL_NAMES,
    FACTORY_MODEL_PROVIDERS,
    PriceBook,
)

UNKNOWN = "no-such-model-xyz-123"


def test_given_output_tokens_make_a_point_estimate() -> None:
    book = PriceBook.load()
    result = estimate("gpt-5-mini", 10_000, 2000, calls=3, book=book)
    per_call = book.quote("gpt-5-mini", 10_000, 2000).price
    assert per_call is not None
    assert result.min == result.expected == result.max == pytest.approx(per_call * 3)
    assert result.basis == "list price" and result.priced
    assert result.output_tokens == (2000, 2000, 2000) and result.output_given
    assert result.factory_model == "gpt5mini"
    assert result.factory_cost.expected == pytest.approx(factory_llm_cost("gpt5mini", 10_000, 2000) * 3)
    assert any("as given" in a for a in result.assumptions)
    assert any("3 calls" in a for a in result.assumptions)


def test_unknown_output_gives_a_stated_range() -> None:
    book = PriceBook.load()
    result = estimate("gpt5mini", 40_000, book=book)
    expected_outs = tuple(round(40_000 * r) for r in OUTPUT_RATIOS)
    assert result.output_tokens == expected_outs
    assert result.min < result.expected < result.max
    for value, out in zip((result.min, result.expected, result.max), expected_outs, strict=True):
        assert value == pytest.approx(book.quote("gpt5mini", 40_000, out).price)
    assert any("output tokens not given" in a for a in result.assumptions)
    assert result.factory_cost.min < result.factory_cost.max


def test_an_unpriced_model_falls_back_to_the_factory_price_never_zero() -> None:
    result = estimate(UNKNOWN, 1000, 500, book=PriceBook.load())
    assert not result.priced and result.list_cost is None
    assert result.basis == "factory price"
    assert result.expected == pytest.approx(factory_llm_cost({"unknown": UNKNOWN}, 1000, 500))
    assert result.expected > 0
    assert result.factory_model == f"unknown:{UNKNOWN}"
    assert any("no list price" in a for a in result.assumptions)
    assert any("fallback price" in a for a in result.assumptions)
    assert result.suggestions == ()


def test_the_factory_model_follows_its_detection() -> None:
    name = "claude-sonnet-4-5-20250929"
    result = estimate(name, 1000, 100, book=PriceBook.load())
    detected = detect_model(name)
    assert result.factory_model == detected
    assert result.factory_cost.expected == pytest.approx(factory_llm_cost(detected, 1000, 100))
    assert result.quote.matched_model is not None


def test_cheaper_model_suggestions_carry_their_saving() -> None:
    book = PriceBook.load()
    result = estimate("claude-opus-4-1", 20_000, 5000, calls=4, book=book)
    kinds = {s.kind: s for s in result.suggestions}
    assert {"prompt-caching", "batching"} <= set(kinds)
    for kind in ("cheaper-model", "other-provider"):
        if kind not in kinds:
            continue
        suggestion = kinds[kind]
        assert suggestion.model is not None and suggestion.cost is not None and suggestion.saving is not None
        assert suggestion.cost < result.expected
        assert suggestion.saving == pytest.approx(result.expected - suggestion.cost)
        variant = next(v for v, name in FACTORY_MODEL_NAMES.items() if name == suggestion.model)
        assert suggestion.cost == pytest.approx((book.quote(variant, 20_000, 5000).price or 0) * 4)
        same = FACTORY_MODEL_PROVIDERS[variant] == "anthropic"
        assert same == (kind == "cheaper-model")
        assert any("quality" in a for a in suggestion.assumptions)


def test_caching_saving_uses_the_cache_read_price() -> None:
    book = PriceBook.load()
    rates = book.rates("gpt5mini")
    assert rates is not None
    if rates.cache_read_per_mtok is None:
        pytest.skip("no cache-read price for gpt-5-mini in this genai-prices version")
    calls, tokens_in, tokens_out = 5, 10_000, 1000
    result = estimate("gpt5mini", tokens_in, tokens_out, calls=calls, book=book)
    caching = next(s for s in result.suggestions if s.kind == "prompt-caching")
    prefix = int(tokens_in * CACHED_PREFIX_SHARE)
    first = book.quote(
        "gpt5mini",
        tokens_in,
        tokens_out,
        cache_write_tokens=prefix if rates.cache_write_per_mtok is not None else 0,
    ).price
    repeat = book.quote("gpt5mini", tokens_in, tokens_out, cache_read_tokens=prefix).price
    assert first is not None and repeat is not None
    assert caching.cost == pytest.approx(first + (calls - 1) * repeat)
    assert caching.saving == pytest.approx(result.expected - (first + (calls - 1) * repeat))
    assert any(f"{prefix:,}" in a for a in caching.assumptions)


def test_one_call_has_nothing_to_cache() -> None:
    result = estimate("gpt5mini", 10_000, 1000, book=PriceBook.load())
    caching = next(s for s in result.suggestions if s.kind == "prompt-caching")
    assert caching.saving in (0.0, None)
    assert "one call" in caching.text or "unknown" in caching.text


@pytest.mark.parametrize("variant", list(FACTORY_MODEL_NAMES))
def test_batching_uses_the_batch_price_or_states_the_typical_discount(variant: str) -> None:
    book = PriceBook.load()
    rates = book.rates(variant)
    assert rates is not None
    result = estimate(variant, 10_000, 1000, book=book)
    batching = next(s for s in result.suggestions if s.kind == "batching")
    assert batching.cost is not None
    if rates.batch_input_per_mtok is None:
        assert batching.cost == pytest.approx(result.expected * (1 - TYPICAL_BATCH_DISCOUNT))
        assert any("assumption" in a for a in batching.assumptions)
    else:
        batch = book.quote(variant, 10_000, 1000, batch=True).price
        assert batching.cost == pytest.approx(batch)
        assert not any("typical" in a for a in batching.assumptions)


def test_an_override_prices_the_estimate(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({UNKNOWN: {"input_per_mtok": 1, "output_per_mtok": 2}}), encoding="utf-8")
    result = estimate(UNKNOWN, 1_000_000, 1_000_000, book=PriceBook.load(path))
    assert result.basis == "list price"
    assert result.expected == pytest.approx(3.0)
    assert result.quote.source == f"user override ({path})"


def test_broken_overrides_travel_with_the_estimate(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text("{", encoding="utf-8")
    result = estimate("gpt5mini", 100, 10, book=PriceBook.load(path))
    assert result.problems and "not valid JSON" in result.problems[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 10), "empty"),
        (("gpt5mini", -1), ">= 0"),
        (("gpt5mini", 1, -1), ">= 0"),
        (("gpt5mini", 1, 1, 0), "calls"),
    ],
)
def test_bad_input_raises(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate(*args)  # type: ignore[arg-type]


def test_to_json_is_plain_json() -> None:
    result = estimate("gpt5mini", 10_000, book=PriceBook.load())
    data = result.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["expected"] == result.expected
    assert set(data["outputTokens"]) == {"min", "expected", "max"}
    assert result.range.expected == result.expected
