"""PriceBook: genai-prices' bundled data, user overrides, unpriced models, aggregate pricing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from mity_cost.core import paths
from mity_cost.core.factory.documents import KNOWN_MODELS
from mity_cost.core.factory.rules import FACTORY_PRICES, detect_model, factory_llm_cost
from mity_cost.core.pricing.prices import (
    FACTORY_MODEL_NAMES,
    FACTORY_MODEL_PROVIDERS,
    Catalog,
    PriceBook,
    catalog,
    factory_variant,
)

UNKNOWN = "no-such-model-xyz-123"


def _snapshot() -> Any:
    from genai_prices.data import providers

    return data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)


def _library_price(name: str, provider: str | None, tokens_in: int, tokens_out: int, at: datetime) -> float:
    usage = genai_prices.Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    calc = _snapshot().calc(usage, name, provider, None, at)
    return float(calc.total_price)


def _record(model: Any, tokens_in: int, tokens_out: int, cost: float | None = None) -> dict[str, Any]:
    return {
        "id": f"r-{tokens_in}-{tokens_out}",
        "model": model,
        "inputTokens": tokens_in,
        "outputTokens": tokens_out,
        "cost": factory_llm_cost(model, tokens_in, tokens_out) if cost is None else cost,
    }


def _write_overrides(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
    return path


@pytest.mark.parametrize("variant", KNOWN_MODELS)
def test_every_factory_variant_has_a_list_price(variant: str) -> None:
    book = PriceBook.load()
    quote = book.quote(variant, 12_345, 678)
    real = FACTORY_MODEL_NAMES[variant]
    provider = FACTORY_MODEL_PROVIDERS[variant]
    assert quote.priced
    assert quote.price == pytest.approx(_library_price(real, provider, 12_345, 678, book.at), rel=1e-12)
    assert quote.matched_model is not None and quote.matched_model.startswith(real)
    assert quote.provider == provider
    assert quote.source == f"genai-prices {genai_prices.__version__} ({provider})"
    assert quote.as_of is not None
    datetime.strptime(quote.as_of, "%Y-%m-%d")


def test_unknown_record_is_priced_by_the_name_given() -> None:
    book = PriceBook.load()
    quote = book.quote({"unknown": "gpt-4o"}, 1000, 500)
    assert quote.priced
    assert quote.matched_model == "gpt-4o"
    assert quote.price == pytest.approx(_library_price("gpt-4o", None, 1000, 500, book.at))


def test_a_model_genai_prices_does_not_know_is_unpriced_never_zero() -> None:
    book = PriceBook.load()
    for model in ({"unknown": UNKNOWN}, UNKNOWN):
        quote = book.quote(model, 1000, 500)
        assert quote.price is None
        assert not quote.priced
        assert UNKNOWN in quote.note
        assert quote.matched_model is None
        assert book.rates(model) is None


def test_a_provider_prefix_selects_the_provider() -> None:
    book = PriceBook.load()
    plain = book.quote({"unknown": "gpt-4o"}, 1000, 500)
    prefixed = book.quote({"unknown": "openai/gpt-4o"}, 1000, 500)
    assert prefixed.provider == "openai"
    assert prefixed.price == plain.price


def test_quote_rejects_negative_tokens() -> None:
    book = PriceBook.load()
    with pytest.raises(ValueError, match=">= 0"):
        book.quote("gpt5mini", -1, 0)
    with pytest.raises(ValueError, match="cannot exceed"):
        book.quote("gpt5mini", 10, 0, cache_read_tokens=11)


def test_override_file_wins_over_genai_prices() -> None:
    path = _write_overrides(
        paths.price_override_file(),
        {"gpt5mini": {"input_per_mtok": 7, "output_per_mtok": 11, "as_of": "2026-01-02"}},
    )
    book = PriceBook.load()
    quote = book.quote("gpt5mini", 2_000_000, 1_000_000)
    assert quote.price == pytest.approx(2 * 7 + 11)
    assert quote.source == f"user override ({path})"
    assert quote.as_of == "2026-01-02"
    assert book.problems == []
    rates = book.rates("gpt5mini")
    assert rates is not None and (rates.input_per_mtok, rates.output_per_mtok) == (7.0, 11.0)


def test_override_by_name_applies_to_records_and_variants(tmp_path: Path) -> None:
    path = _write_overrides(
        tmp_path / "prices.json",
        {
            "GPT-4o": {"input_per_mtok": 1, "output_per_mtok": 2},
            "gpt-5-mini": {"input_per_mtok": 3, "output_per_mtok": 4},
            UNKNOWN: {"input_per_mtok": 5, "output_per_mtok": 6},
        },
    )
    book = PriceBook.load(path)
    assert book.quote({"unknown": "gpt-4o"}, 1_000_000, 0).price == pytest.approx(1)
    assert book.quote("gpt5mini", 0, 1_000_000).price == pytest.approx(4)
    assert book.quote("gpt-5-mini", 1_000_000, 0).price == pytest.approx(3)
    unknown = book.quote({"unknown": UNKNOWN}, 1_000_000, 1_000_000)
    assert unknown.price == pytest.approx(11)
    assert unknown.source.startswith("user override")


def test_override_without_a_batch_price_gives_no_batch_quote(tmp_path: Path) -> None:
    path = _write_overrides(tmp_path / "p.json", {"gpt5mini": {"input_per_mtok": 1, "output_per_mtok": 1}})
    quote = PriceBook.load(path).quote("gpt5mini", 100, 100, batch=True)
    assert quote.price is None
    assert "batch" in quote.note


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"gpt5mini": 3}', "is not an object"),
        ('{"gpt5mini": {"input_per_mtok": 1}}', "'output_per_mtok' must be a number"),
        ('{"gpt5mini": {"input_per_mtok": -1, "output_per_mtok": 1}}', "finite number >= 0"),
        ('{"gpt5mini": {"input_per_mtok": true, "output_per_mtok": 1}}', "must be a number"),
        ('{"gpt5mini": {"input_per_mtok": NaN, "output_per_mtok": 1}}', "finite number >= 0"),
        ('{"": {"input_per_mtok": 1, "output_per_mtok": 1}}', "empty model name"),
        ("\udcff", "not valid JSON"),
    ],
)
def test_a_broken_override_is_reported_and_ignored(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "prices.json"
    if content == "\udcff":
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        _write_overrides(path, content)
    book = PriceBook.load(path)
    assert any(expected in problem and str(path) in problem for problem in book.problems), book.problems
    quote = book.quote("gpt5mini", 1000, 1000)
    assert quote.priced
    assert quote.source.startswith("genai-prices")


def test_a_bad_entry_does_not_spoil_the_good_ones(tmp_path: Path) -> None:
    path = _write_overrides(
        tmp_path / "prices.json",
        {
            "gpt5mini": {"input_per_mtok": "cheap", "output_per_mtok": 1},
            "gpt41": {"input_per_mtok": 1, "output_per_mtok": 1},
        },
    )
    book = PriceBook.load(path)
    assert len(book.problems) == 1 and "gpt5mini" in book.problems[0]
    assert book.quote("gpt41", 1_000_000, 0).source.startswith("user override")
    assert book.quote("gpt5mini", 1_000_000, 0).source.startswith("genai-prices")


def test_an_unreadable_or_huge_override_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "prices.json"
    folder.mkdir()
    assert "unreadable" in PriceBook.load(folder).problems[0]
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (1024 * 1024 + 1))
    assert "larger than" in PriceBook.load(huge).problems[0]


def test_a_missing_override_file_is_fine(tmp_path: Path) -> None:
    book = PriceBook.load(tmp_path / "absent.json")
    assert book.problems == []
    assert book.override_path == tmp_path / "absent.json"


def test_without_the_catalogue_only_overrides_price(tmp_path: Path) -> None:
    path = _write_overrides(tmp_path / "p.json", {"gpt41": {"input_per_mtok": 2, "output_per_mtok": 8}})
    book = PriceBook.load(path, use_catalog=False)
    assert book.quote("gpt41", 1000, 1000).priced
    assert book.quote("gpt5mini", 1000, 1000).price is None


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 150_000), st.integers(0, 20_000)),
        min_size=1,
        max_size=30,
    )
)
def test_aggregate_pricing_equals_the_per_call_sum(calls: list[tuple[int, int]]) -> None:
    book = PriceBook(at=datetime(2026, 11, 1, tzinfo=UTC))
    for model in ("gpt5mini", "claudeopus45", {"unknown": "gpt-4o"}):
        records = [_record(model, tokens_in, tokens_out) for tokens_in, tokens_out in calls]
        (group,) = book.price_groups(records)
        per_call = [book.quote(model, r["inputTokens"], r["outputTokens"]).price for r in records]
        assert group.current_cost == pytest.approx(sum(p or 0.0 for p in per_call), rel=1e-9, abs=1e-12)
        assert group.calls == len(calls)
        assert group.factory_cost == pytest.approx(sum(r["cost"] for r in records))


def _tier_start(name: str, provider: str, at: datetime) -> int | None:
    _, info = _snapshot().find_provider_model(name, None, provider, None)
    tiers = getattr(info.get_prices(at).input_mtok, "tiers", None)
    return int(tiers[0].start) if tiers else None


def test_tiered_prices_are_applied_per_call_in_aggregate() -> None:
    book = PriceBook.load()
    start = _tier_start("claude-sonnet-4-5", "anthropic", book.at)
    if start is None:
        pytest.skip("claude-sonnet-4-5 has no tiered price in this genai-prices version")
    sizes = [(start - 1000, 2000), (start + 5000, 3000), (1000, 10), (start * 2, 1)]
    records = [_record("claudesonnet45", tokens_in, tokens_out) for tokens_in, tokens_out in sizes]
    (group,) = book.price_groups(records)
    per_call = sum(book.quote("claudesonnet45", i, o).price or 0.0 for i, o in sizes)
    naive = book.quote("claudesonnet45", sum(i for i, _ in sizes), sum(o for _, o in sizes)).price
    assert group.current_cost == pytest.approx(per_call, rel=1e-9)
    assert naive is not None and not math.isclose(naive, per_call, rel_tol=1e-6)
    assert "tiers" in group.note


def test_a_price_per_request_is_charged_per_call() -> None:
    found = None
    for provider in _snapshot().providers:
        for model in provider.models:
            prices = model.prices if not isinstance(model.prices, list) else model.prices[-1].prices
            if getattr(prices, "requests_kcount", None) is not None:
                found = f"{provider.id}/{model.id}"
                break
        if found:
            break
    if found is None:
        pytest.skip("no model with a price per request in this genai-prices version")
    book = PriceBook.load()
    model = {"unknown": found}
    records = [_record(model, 1000 * n, 100 * n) for n in range(1, 6)]
    (group,) = book.price_groups(records)
    per_call = sum(book.quote(model, r["inputTokens"], r["outputTokens"]).price or 0.0 for r in records)
    assert group.current_cost == pytest.approx(per_call, rel=1e-9)


def test_price_groups_report_factory_cost_difference_and_unpriced() -> None:
    book = PriceBook.load()
    records = [
        _record("gpt52", 10_000, 1000),
        _record("gpt52", 5000, 500),
        _record({"unknown": UNKNOWN}, 1000, 100),
        _record({"unknown": "gpt-4o"}, 2000, 200),
    ]
    groups = {g.key: g for g in book.price_groups(records)}
    assert set(groups) == {"gpt52", f"unknown:{UNKNOWN}", "unknown:gpt-4o"}
    gpt52 = groups["gpt52"]
    assert (gpt52.calls, gpt52.input_tokens, gpt52.output_tokens) == (2, 15_000, 1500)
    assert gpt52.current_cost is not None
    assert gpt52.difference == pytest.approx(gpt52.current_cost - gpt52.factory_cost)
    difference = gpt52.current_cost - gpt52.factory_cost
    assert gpt52.difference_percent == pytest.approx(difference / gpt52.factory_cost * 100)
    unpriced = groups[f"unknown:{UNKNOWN}"]
    assert unpriced.current_cost is None and unpriced.difference is None and not unpriced.priced
    assert unpriced.factory_cost > 0
    assert unpriced.label == UNKNOWN
    listed = book.price_groups(records)
    assert [g.factory_cost for g in listed] == sorted((g.factory_cost for g in listed), reverse=True)
    json.dumps([g.to_json() for g in listed])


def test_a_zero_factory_cost_has_no_percentage() -> None:
    book = PriceBook.load()
    (group,) = book.price_groups([_record("gpt41", 1000, 1000, cost=0.0)])
    assert group.difference_percent is None
    assert group.difference == group.current_cost


def test_rates_give_cache_and_batch_prices_when_the_data_has_them() -> None:
    book = PriceBook.load()
    for variant in KNOWN_MODELS:
        rates = book.rates(variant)
        assert rates is not None
        # 100k tokens: below every tier, so the base rates apply (a tenth of the per-1M rates).
        batch = book.quote(variant, 100_000, 100_000, batch=True)
        if rates.batch_input_per_mtok is None:
            assert batch.price is None and "batch" in batch.note
        else:
            assert rates.batch_output_per_mtok is not None
            expected = (rates.batch_input_per_mtok + rates.batch_output_per_mtok) / 10
            assert batch.price == pytest.approx(expected)
        if rates.cache_read_per_mtok is not None:
            cached = book.quote(variant, 100_000, 0, cache_read_tokens=100_000).price
            assert cached == pytest.approx(rates.cache_read_per_mtok / 10)
        json.dumps(rates.to_json())


def test_a_snapshot_from_an_update_thread_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    empty = data_snapshot.DataSnapshot(providers=[], from_auto_update=True)
    monkeypatch.setattr(data_snapshot, "_custom_snapshot", empty)
    quote = PriceBook.load().quote("gpt5mini", 1000, 1000)
    assert quote.priced
    assert not any(t.name.startswith("genai_prices") for t in threading.enumerate())


def test_genai_prices_is_imported_lazily_and_never_reaches_the_network() -> None:
    code = """
import socket, sys, threading
def refuse(*args, **kwargs):
    raise AssertionError("network access")
socket.socket.connect = refuse
socket.create_connection = refuse
from mity_cost.core.pricing.prices import PriceBook
book = PriceBook.load()
assert "genai_prices" not in sys.modules, "imported too early"
quote = book.quote("gpt5mini", 1000, 1000)
assert quote.priced, quote
assert "genai_prices" in sys.modules
assert not any(t.name.startswith("genai_prices") for t in threading.enumerate())
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_catalog_reports_its_version_and_date() -> None:
    cat = catalog()
    assert isinstance(cat, Catalog)
    assert cat.label == f"genai-prices {genai_prices.__version__}"
    assert cat.import_seconds >= 0
    as_of = cat.as_of(datetime.now(UTC))
    assert as_of is not None and as_of <= datetime.now(UTC).date().isoformat()
    assert cat.as_of(datetime(1990, 1, 1, tzinfo=UTC)) is None


def test_factory_variant_is_the_factory_table_key() -> None:
    for variant in KNOWN_MODELS:
        assert factory_variant(variant) == variant
        assert variant in FACTORY_PRICES
    assert factory_variant({"unknown": "gpt-4o"}) == "unknown"
    assert factory_variant("gpt-4o") == "unknown"
    assert factory_variant(detect_model("claude-sonnet-4-5-20250929")) == "claudesonnet4"


def test_quote_to_json_marks_unpriced() -> None:
    book = PriceBook.load()
    data = book.quote(UNKNOWN, 1, 1).to_json()
    assert data["price"] is None and data["priced"] is False
    assert json.loads(json.dumps(data)) == data
