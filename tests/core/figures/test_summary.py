"""Summing: the factory's RuntimeCostSummary to the character, breakdowns, features, settings, currency."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mity_cost.core.factory.documents import model_key
from mity_cost.core.factory.loading import (
    LoadedFeature,
    LoadedSession,
    load_feature,
    load_session,
    parse_session,
)
from mity_cost.core.figures.summary import (
    NONE_LABEL,
    features_by_app,
    group_executions,
    group_records,
    summarize,
    summary_line,
)
from mity_cost.core.money import Range
from mity_cost.core.settings import DEFAULT_EUR_PER_USD, DisplayCurrency, Settings, load_settings
from tests.conftest import EXAMPLE_ROOT, EXAMPLES, REAL_SAMPLES

EXPECTED = [
    json.loads(line) for line in (EXAMPLES / "expected-summaries.jsonl").read_text().splitlines() if line
]
EXPECTED_FEATURES = [
    json.loads(line) for line in (EXAMPLES / "expected-features.jsonl").read_text().splitlines() if line
]
REAL_DIRS = sorted(p.parent for p in REAL_SAMPLES.glob(".mity/chat/*/runtime.json"))
RICH = EXAMPLE_ROOT / ".mity/chat/5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91/cost.json"
FACTORY_KEYS = (
    "totalExpected",
    "totalMin",
    "totalMax",
    "llmCost",
    "computeCost",
    "monthlyInfra",
    "currency",
    "llmCalls",
    "totalTokens",
    "summary",
)


def _load(path: Path) -> LoadedSession:
    result = load_session(path)
    assert isinstance(result, LoadedSession), result.describe()
    return result


def _parse(doc: dict[str, Any]) -> LoadedSession:
    result = parse_session(json.dumps(doc).encode())
    assert isinstance(result, LoadedSession), result.describe()
    return result


# ------------------------------------------------------------------ the factory's own figures


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: e["sessionId"])
def test_summary_equals_expected_summaries_figure_for_figure(expected: dict[str, Any]) -> None:
    session = _load(EXAMPLE_ROOT / ".mity/chat" / expected["sessionId"] / "cost.json")
    got = summarize(session.figures, Settings()).to_json()
    assert {k: got[k] for k in expected if k != "sessionId"} == {
        k: v for k, v in expected.items() if k != "sessionId"
    }
    assert set(expected) - {"sessionId"} == set(FACTORY_KEYS)


def test_every_example_session_has_an_expected_summary() -> None:
    assert sorted(e["sessionId"] for e in EXPECTED) == sorted(
        p.name for p in (EXAMPLE_ROOT / ".mity/chat").iterdir()
    )


@pytest.mark.parametrize("folder", REAL_DIRS, ids=lambda p: p.name)
def test_summary_equals_the_factorys_runtime_cost_summary(folder: Path) -> None:
    factory = json.loads((folder / "runtime.json").read_bytes())["costSummary"]
    got = summarize(_load(folder / "cost.json").figures, Settings()).to_json()
    assert {k: got[k] for k in FACTORY_KEYS} == {k: factory[k] for k in FACTORY_KEYS}
    assert set(factory) == {*FACTORY_KEYS, "threshold", "exceedsThreshold"}


@pytest.mark.parametrize("folder", REAL_DIRS, ids=lambda p: p.name)
def test_with_the_factorys_threshold_even_exceeds_matches(folder: Path) -> None:
    factory = json.loads((folder / "runtime.json").read_bytes())["costSummary"]
    got = summarize(_load(folder / "cost.json").figures, Settings(threshold=factory["threshold"])).to_json()
    assert got["exceedsThreshold"] == factory["exceedsThreshold"]
    assert got["threshold"] == factory["threshold"]


def test_features_equal_expected_features() -> None:
    loaded = []
    for path in sorted(EXAMPLE_ROOT.glob("workspaces/*/.mity/cost/features/*.json")):
        result = load_feature(path, path.parents[3].name)
        assert isinstance(result, LoadedFeature)
        loaded.append(result)
    got = {
        (f.app, f.feature_id): f.to_json()
        for group in features_by_app(loaded, Settings())
        for f in group.features
    }
    assert len(got) == len(EXPECTED_FEATURES)
    for expected in EXPECTED_FEATURES:
        item = got[(expected["app"], expected["featureId"])]
        assert {k: item[k] for k in expected} == expected


def test_features_are_grouped_per_app_with_totals() -> None:
    loaded = [
        result
        for path in EXAMPLE_ROOT.glob("workspaces/*/.mity/cost/features/*.json")
        if isinstance(result := load_feature(path, path.parents[3].name), LoadedFeature)
    ]
    groups = features_by_app(loaded, Settings())
    assert [g.app for g in groups] == sorted({f.app for f in loaded})
    for group in groups:
        assert group.one_time.expected == pytest.approx(sum(f.one_time.expected for f in group.features))
        assert group.monthly.max == pytest.approx(sum(f.monthly.max for f in group.features))
        assert group.one_time.min <= group.one_time.expected <= group.one_time.max


# ------------------------------------------------------------------ rules


def test_exceeds_threshold_is_strict_on_the_expected_value() -> None:
    session = _load(RICH)
    total = session.doc["sessionCost"]["total"]["expected"]
    assert not summarize(session.figures, Settings(threshold=total)).exceeds_threshold
    assert summarize(session.figures, Settings(threshold=math.nextafter(total, 0))).exceeds_threshold
    over_max_only = Settings(threshold=(total + session.doc["sessionCost"]["total"]["max"]) / 2)
    assert not summarize(session.figures, over_max_only).exceeds_threshold


def test_fraction_of_threshold() -> None:
    session = _load(RICH)
    summary = summarize(session.figures, Settings(threshold=2.0))
    assert summary.fraction_of_threshold == summary.total_expected / 2.0
    assert summarize(session.figures, Settings(threshold=0.0)).fraction_of_threshold == math.inf


@pytest.mark.parametrize(
    ("total", "monthly", "line"),
    [
        (
            Range(0.12, 0.18, 0.24),
            Range(26.0, 47.0, 85.0),
            "Session: $0.18 (±33%) | Monthly: $47.00/mo (±63%)",
        ),
        (Range(0, 0, 0), Range(0, 0, 0), "Session: $0.00 (±0%) | Monthly: $0.00/mo (±0%)"),
        (Range(1, 1, 1), Range(1.5, 4, 13), "Session: $1.00 (±0%) | Monthly: $4.00/mo (±144%)"),
    ],
)
def test_summary_line_to_the_character(total: Range, monthly: Range, line: str) -> None:
    assert summary_line(total, monthly, "$") == line


def test_llm_costs_left_out_when_disabled() -> None:
    session = _load(RICH)
    ledger = session.doc["sessionCost"]
    summary = summarize(session.figures, Settings(llm_enabled=False))
    llm = ledger["breakdown"]["llm"]
    assert summary.total_expected == pytest.approx(ledger["total"]["expected"] - llm["expected"])
    assert summary.total_min == pytest.approx(ledger["total"]["min"] - llm["min"])
    assert summary.total_max == pytest.approx(ledger["total"]["max"] - llm["max"])
    assert summary.llm_cost == llm["expected"]
    assert summary.to_json()["llmIncluded"] is False
    assert not summary.exceeds_threshold


def test_eur_display_converts_every_amount_with_the_settings_rate() -> None:
    session = _load(RICH)
    usd = summarize(session.figures, Settings())
    eur = summarize(session.figures, Settings(currency="EUR"))
    rate = DEFAULT_EUR_PER_USD
    for key in ("total_expected", "total_min", "total_max", "llm_cost", "compute_cost", "monthly_infra"):
        assert getattr(eur, key) == pytest.approx(getattr(usd, key) * rate)
    assert eur.currency == "€"
    assert eur.summary.startswith(f"Session: €{usd.total_expected * rate:.2f} ")
    assert eur.llm_calls == usd.llm_calls and eur.total_tokens == usd.total_tokens
    assert (
        Settings(currency="EUR").conversion_note("USD")
        == f"converted from USD at 1 USD = {rate:g} EUR (settings)"
    )
    assert Settings().conversion_note("USD") is None


def test_a_eur_session_shown_in_usd_is_converted_back() -> None:
    doc = json.loads(RICH.read_bytes())
    doc["currency"] = "EUR"
    for key in ("sessionCost", "infraCost"):
        doc[key]["currency"] = "EUR"
    summary = summarize(_parse(doc).figures, Settings(eur_per_usd=0.5))
    assert summary.total_expected == pytest.approx(doc["sessionCost"]["total"]["expected"] * 2)
    assert summary.currency == "$"
    assert Settings(eur_per_usd=0.5).conversion_note("EUR") is not None


def test_the_threshold_is_compared_in_the_display_currency() -> None:
    session = _load(RICH)
    expected = session.doc["sessionCost"]["total"]["expected"]
    between = expected * (DEFAULT_EUR_PER_USD + 1) / 2  # over the EUR total, under the USD one
    assert summarize(session.figures, Settings(threshold=between)).exceeds_threshold
    assert not summarize(session.figures, Settings(threshold=between, currency="EUR")).exceeds_threshold


# ------------------------------------------------------------------ settings from the environment


@pytest.mark.parametrize(("text", "value"), [("2.5", 2.5), (" 10 ", 10.0), ("0", 0.0), ("1e1", 10.0)])
def test_threshold_from_the_environment(text: str, value: float, tmp_path: Path) -> None:
    configured = load_settings({"MITY_COST_THRESHOLD": text}, tmp_path / "none.json")
    assert configured.threshold == value
    assert configured.problems == ()
    assert "threshold" in configured.env_overrides


@pytest.mark.parametrize("text", ["lots", "-1", "nan", "inf", "", "1,5"])
def test_an_invalid_threshold_is_reported_and_the_default_used(text: str, tmp_path: Path) -> None:
    configured = load_settings({"MITY_COST_THRESHOLD": text}, tmp_path / "none.json")
    assert configured.threshold == 1.0
    assert len(configured.problems) == 1
    assert "MITY_COST_THRESHOLD" in configured.problems[0] and repr(text) in configured.problems[0]


@pytest.mark.parametrize(
    ("text", "code"), [("eur", "EUR"), ("EUR", "EUR"), ("Eur", "EUR"), ("usd", "USD"), (" EUR ", "EUR")]
)
def test_currency_in_any_case(text: str, code: str, tmp_path: Path) -> None:
    configured = load_settings({"MITY_COST_CURRENCY": text}, tmp_path / "none.json")
    assert configured.currency == code
    assert configured.problems == ()


@pytest.mark.parametrize("text", ["GBP", "€", "", "dollars"])
def test_an_invalid_currency_is_reported_and_usd_used(text: str, tmp_path: Path) -> None:
    configured = load_settings({"MITY_COST_CURRENCY": text}, tmp_path / "none.json")
    assert configured.currency == "USD"
    assert any("MITY_COST_CURRENCY" in p for p in configured.problems)


@pytest.mark.parametrize(
    ("text", "flag"),
    [(t, True) for t in ("true", "TRUE", "True", "1", "yes", "YES", "on")]
    + [(f, False) for f in ("false", "FALSE", "False", "0", "no", "No", "off")],
)
def test_llm_flag_in_every_spelling(text: str, flag: bool, tmp_path: Path) -> None:
    configured = load_settings({"MITY_COST_LLM_ENABLED": text}, tmp_path / "none.json")
    assert configured.llm_enabled is flag
    assert configured.problems == ()


@pytest.mark.parametrize("text", ["maybe", "2", "", "nein"])
def test_an_invalid_llm_flag_is_reported_and_true_used(text: str, tmp_path: Path) -> None:
    configured = load_settings({"MITY_COST_LLM_ENABLED": text}, tmp_path / "none.json")
    assert configured.llm_enabled is True
    assert any("MITY_COST_LLM_ENABLED" in p for p in configured.problems)


def test_the_environment_wins_over_saved_settings(tmp_path: Path) -> None:
    saved = tmp_path / "settings.json"
    saved.write_text(json.dumps({"threshold": 3.0, "currency": "EUR", "llm_enabled": False}))
    assert load_settings({}, saved).threshold == 3.0
    configured = load_settings({"MITY_COST_THRESHOLD": "7", "MITY_COST_CURRENCY": "usd"}, saved)
    assert (configured.threshold, configured.currency, configured.llm_enabled) == (7.0, "USD", False)


def test_a_broken_settings_file_is_reported_and_defaults_used(tmp_path: Path) -> None:
    saved = tmp_path / "settings.json"
    saved.write_bytes(b"{broken")
    configured = load_settings({}, saved)
    assert configured.threshold == 1.0
    assert configured.problems and str(saved) in configured.problems[0]


# ------------------------------------------------------------------ breakdowns


def test_groups_by_model_agent_station_feature_add_up() -> None:
    session = _load(RICH)
    records = session.doc["llmUsage"]
    for by in ("model", "agent", "station", "feature"):
        groups = group_records(records, by)
        assert sum(g.calls for g in groups) == len(records)
        assert sum(g.tokens for g in groups) == sum(r["inputTokens"] + r["outputTokens"] for r in records)
        assert sum(g.cost for g in groups) == pytest.approx(math.fsum(r["cost"] for r in records))
        assert [g.cost for g in groups] == sorted((g.cost for g in groups), reverse=True)
    stations = {g.key for g in group_records(records, "station")}
    assert NONE_LABEL in stations
    models = {g.key: g.label for g in group_records(records, "model")}
    assert models["unknown:gpt-4o"] == "gpt-4o"


def test_groups_are_converted_by_scale() -> None:
    records = _load(RICH).doc["llmUsage"]
    plain = {g.key: g.cost for g in group_records(records, "model")}
    scaled = {g.key: g.cost for g in group_records(records, "model", 0.5)}
    assert scaled == pytest.approx({k: v * 0.5 for k, v in plain.items()})


def test_executions_by_type_keep_their_ranges() -> None:
    session = _load(RICH)
    groups = group_executions(session)
    runs = session.doc["executionCosts"]
    assert sum(g.runs for g in groups) == len(runs)
    for group in groups:
        mine = [r for r in runs if r["executionType"] == group.kind]
        assert group.runs == len(mine)
        assert group.local_runs == sum(r["isLocal"] for r in mine)
        assert group.cost.min == pytest.approx(sum(r["cost"]["min"] for r in mine))
        assert group.cost.expected == pytest.approx(sum(r["cost"]["expected"] for r in mine))
        assert group.cost.max == pytest.approx(sum(r["cost"]["max"] for r in mine))
        assert group.cost.min <= group.cost.expected <= group.cost.max


def test_an_other_execution_type_is_grouped_by_its_name() -> None:
    doc = json.loads(RICH.read_bytes())
    doc["executionCosts"][0]["executionType"] = {"other": "lint"}
    assert "lint" in {g.kind for g in group_executions(_parse(doc))}


# ------------------------------------------------------------------ property: a plain recomputation

MODELS = st.sampled_from(["gpt5mini", "claudeopus45", "gpt41", {"unknown": "gpt-4o"}, {"unknown": "llama"}])
RECORD = st.fixed_dictionaries(
    {
        "model": MODELS,
        "inputTokens": st.integers(0, 10**7),
        "outputTokens": st.integers(0, 10**6),
        "cost": st.floats(0, 100, allow_nan=False, allow_infinity=False),
        "agent": st.sampled_from(["Analyst", "Tester", "Reviewer"]),
    }
)
RANGE = st.tuples(*[st.floats(0, 1000, allow_nan=False)] * 3).map(lambda t: tuple(sorted(t)))


def _item(triple: tuple[float, ...]) -> dict[str, float]:
    return {"min": triple[0], "expected": triple[1], "max": triple[2]}


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(RECORD, max_size=25),
    compute=RANGE,
    infra=RANGE,
    threshold=st.floats(0, 500, allow_nan=False),
    llm_enabled=st.booleans(),
    currency=st.sampled_from(["USD", "EUR"]),
)
def test_summary_equals_a_plain_recomputation(
    records: list[dict[str, Any]],
    compute: tuple[float, float, float],
    infra: tuple[float, float, float],
    threshold: float,
    llm_enabled: bool,
    currency: DisplayCurrency,
) -> None:
    doc = json.loads(RICH.read_bytes())
    llm = 0.0
    for n, record in enumerate(records):
        record.update(id=f"id-{n}", timestamp="2026-11-22T10:00:00Z")
        llm += record["cost"]
    ledger = doc["sessionCost"]
    ledger["breakdown"]["llm"] = _item((llm, llm, llm))
    ledger["breakdown"]["compute"] = _item(compute)
    for name in ("storage", "network", "misc"):
        ledger["breakdown"][name] = _item((0.0, 0.0, 0.0))
    ledger["total"] = _item(tuple(llm + c for c in compute))
    doc["infraCost"]["total"] = _item(infra)
    doc["llmUsage"] = records
    session = _parse(doc)
    chosen = replace(Settings(), threshold=threshold, llm_enabled=llm_enabled, currency=currency)
    got = summarize(session.figures, chosen)

    rate = DEFAULT_EUR_PER_USD if currency == "EUR" else 1.0
    total = [(llm + c) * rate for c in compute]
    if not llm_enabled:
        total = [t - llm * rate for t in total]
    assert got.total_min == pytest.approx(total[0], abs=1e-9)
    assert got.total_expected == pytest.approx(total[1], abs=1e-9)
    assert got.total_max == pytest.approx(total[2], abs=1e-9)
    assert got.llm_calls == len(records)
    assert got.total_tokens == sum(r["inputTokens"] + r["outputTokens"] for r in records)
    assert got.monthly_infra == pytest.approx(infra[1] * rate)
    assert got.exceeds_threshold == (got.total_expected > threshold)
    symbol = "€" if currency == "EUR" else "$"
    assert got.summary.startswith(f"Session: {symbol}{got.total_expected:.2f} (±")
    assert got.summary.endswith(f"Monthly: {symbol}{infra[1] * rate:.2f}/mo (±{got.monthly.spread:.0f}%)")

    by_model: dict[str, float] = defaultdict(float)
    for record in records:
        by_model[model_key(record["model"])] += record["cost"]
    groups = {g.key: g.cost for g in group_records(session.doc["llmUsage"], "model")}
    assert groups == pytest.approx(dict(by_model))


def test_groups_by_model_match_model_key_and_label() -> None:
    records: list[Any] = [
        {"id": "a", "model": "gpt5mini", "inputTokens": 1, "outputTokens": 2, "cost": 0.5},
        {"id": "b", "model": {"unknown": "gpt-4o"}, "inputTokens": 3, "outputTokens": 4, "cost": 0.25},
        {"id": "c", "model": "gpt5mini", "inputTokens": 5, "outputTokens": 6, "cost": 0.5},
        {"id": "d", "model": {"unknown": "gpt-4o"}, "inputTokens": 7, "outputTokens": 8, "cost": 2.0},
        {"id": "e", "model": {}, "inputTokens": 0, "outputTokens": 0, "cost": 0.0},
        {"id": "f", "model": "not-a-factory-name", "inputTokens": 1, "outputTokens": 1, "cost": 1.0},
    ]
    groups = group_records(records, "model")
    assert [(g.key, g.label, g.calls, g.input_tokens, g.output_tokens, g.cost) for g in groups] == [
        ("unknown:gpt-4o", "gpt-4o", 2, 10, 12, 2.25),
        ("gpt5mini", "gpt5mini", 2, 6, 8, 1.0),
        ("not-a-factory-name", "not-a-factory-name", 1, 1, 1, 1.0),
        ("unknown:", "unknown", 1, 0, 0, 0.0),
    ]
