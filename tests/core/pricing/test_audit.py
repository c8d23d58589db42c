"""Price audit: recorded LLM costs against list prices, flagged models, unpriced models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mity_cost.core.factory.layout import session_files
from mity_cost.core.factory.rules import factory_llm_cost
from mity_cost.core.pricing.audit import DEFAULT_TOLERANCE, SessionAudit, audit_records, audit_roots
from mity_cost.core.pricing.prices import PriceBook

UNKNOWN = "no-such-model-xyz-123"


def _records(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["llmUsage"]
    return records


def _record(model: Any, tokens_in: int, tokens_out: int, cost: float | None = None) -> dict[str, Any]:
    return {
        "id": f"r{tokens_in}",
        "model": model,
        "inputTokens": tokens_in,
        "outputTokens": tokens_out,
        "cost": factory_llm_cost(model, tokens_in, tokens_out) if cost is None else cost,
    }


def test_every_example_session_is_audited(example_root: Path) -> None:
    report = audit_roots([example_root])
    files = session_files(example_root)
    assert len(report.sessions) == len(files)
    assert report.problems == ()
    assert report.price_source.startswith("genai-prices")
    by_id = {s.session_id: s for s in report.sessions}
    for found in files:
        records = _records(found.path)
        audit = by_id[found.folder]
        assert audit.factory_total == pytest.approx(sum(r["cost"] for r in records))
        assert sum(line.price.calls for line in audit.lines) == len(records)
        for line in audit.lines:
            pct = line.price.difference_percent
            if not line.price.priced:
                assert not line.flagged and line.money_at_stake is None
                assert line.reasons
            elif pct is not None:
                assert line.flagged == (abs(pct) > DEFAULT_TOLERANCE * 100)
        priced = [line.price.current_cost for line in audit.lines if line.price.priced]
        if priced:
            assert audit.current_priced_total == pytest.approx(sum(p or 0.0 for p in priced))
        json.dumps(audit.to_json())
    json.dumps(report.to_json())


def test_unpriced_models_are_listed_and_never_counted_as_zero() -> None:
    book = PriceBook.load()
    records = [_record("gpt41", 10_000, 1000), _record({"unknown": UNKNOWN}, 5000, 500)]
    lines = audit_records(records, book)
    (priced,) = [line for line in lines if line.price.priced]
    (unpriced,) = [line for line in lines if not line.price.priced]
    assert unpriced.price.current_cost is None
    assert any("no list price" in reason for reason in unpriced.reasons)
    assert any("fallback price" in reason for reason in unpriced.reasons)
    audit = SessionAudit("s", None, "USD", (priced, unpriced))
    assert audit.unpriced_calls == 1
    assert audit.current_priced_total == priced.price.current_cost
    assert audit.factory_priced_total == pytest.approx(records[0]["cost"])
    assert audit.factory_total == pytest.approx(records[0]["cost"] + records[1]["cost"])


def test_an_unknown_name_charged_at_the_fallback_is_flagged_with_the_reason() -> None:
    book = PriceBook.load()
    list_price = book.quote({"unknown": "gpt-4o"}, 10_000, 1000).price
    factory = factory_llm_cost({"unknown": "gpt-4o"}, 10_000, 1000)
    assert list_price is not None
    (line,) = audit_records([_record({"unknown": "gpt-4o"}, 10_000, 1000)], book)
    assert line.flagged == (abs(list_price - factory) > DEFAULT_TOLERANCE * factory)
    if line.flagged:
        assert line.money_at_stake == pytest.approx(abs(list_price - factory))
        assert line.direction == ("over" if factory > list_price else "under")
        assert any("did not recognise 'gpt-4o'" in reason for reason in line.reasons)


def test_a_stale_table_is_named(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"gpt41": {"input_per_mtok": 20, "output_per_mtok": 80}}), encoding="utf-8")
    book = PriceBook.load(path)
    (line,) = audit_records([_record("gpt41", 10_000, 1000)], book)
    assert line.flagged and line.direction == "under"
    assert line.price.difference_percent == pytest.approx(900)
    assert any("its table is stale" in reason and "$20" in reason for reason in line.reasons)


def test_an_override_that_matches_the_factory_clears_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"gpt-4o": {"input_per_mtok": 10, "output_per_mtok": 30}}), encoding="utf-8")
    (line,) = audit_records([_record({"unknown": "gpt-4o"}, 10_000, 1000)], PriceBook.load(path))
    assert not line.flagged
    assert line.direction == "match"
    assert line.price.source.startswith("user override")


def test_records_off_the_factory_table_are_counted() -> None:
    book = PriceBook.load()
    good = _record("gpt41", 1000, 100)
    edited = _record("gpt41", 2000, 100, cost=5.0)
    (line,) = audit_records([good, edited], book)
    assert line.off_table_records == 1
    assert any("1 of 2 record(s) do not match" in reason for reason in line.reasons)


def test_tolerance_controls_the_flag() -> None:
    book = PriceBook.load()
    records = [_record({"unknown": "gpt-4o"}, 10_000, 1000)]
    assert not audit_records(records, book, tolerance=1e9)[0].flagged
    (line,) = audit_records(records, book, tolerance=0.0)
    assert line.flagged == (line.price.difference != 0)


def test_one_session_a_missing_one_and_a_broken_file(example_root: Path) -> None:
    files = session_files(example_root)
    wanted = files[0].folder
    report = audit_roots([example_root], wanted)
    assert [s.session_id for s in report.sessions] == [wanted]
    assert audit_roots([example_root], "not-there").sessions == ()
    files[1].path.write_text("{broken", encoding="utf-8")
    report = audit_roots([example_root])
    assert len(report.sessions) == len(files) - 1
    assert len(report.problems) == 1 and str(files[1].path) in report.problems[0]


def test_a_renamed_folder_is_found_by_its_session_id(example_root: Path) -> None:
    first = session_files(example_root)[0]
    session_id = json.loads(first.path.read_text(encoding="utf-8"))["sessionId"]
    first.path.parent.rename(first.path.parent.with_name("renamed"))
    report = audit_roots([example_root], session_id)
    assert [s.session_id for s in report.sessions] == [session_id]


def test_a_eur_session_says_how_it_was_compared(example_root: Path) -> None:
    found = next(f for f in session_files(example_root) if _records(f.path))
    doc = json.loads(found.path.read_text(encoding="utf-8"))
    doc["currency"] = "EUR"
    found.path.write_text(json.dumps(doc), encoding="utf-8")
    (audit,) = audit_roots([example_root], found.folder).sessions
    assert audit.currency == "EUR"
    assert any("EUR" in note for note in audit.notes)


def test_broken_overrides_reach_the_report(example_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text("nope", encoding="utf-8")
    report = audit_roots([example_root], book=PriceBook.load(path))
    assert any("not valid JSON" in problem for problem in report.problems)
    assert report.sessions
