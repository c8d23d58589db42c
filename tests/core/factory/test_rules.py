"""The factory's naming, prices, presets and templates, checked against the spec and its sample files."""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mity_cost.core.factory import rules
from mity_cost.core.factory.documents import EXECUTION_TYPES, KNOWN_MODELS
from tests.conftest import EXAMPLE_ROOT, REAL_SAMPLES, SPEC

SAMPLE_FILES = sorted(EXAMPLE_ROOT.glob(".mity/chat/*/cost.json")) + sorted(
    REAL_SAMPLES.glob(".mity/chat/*/cost.json")
)
SPEC_TEXT = (SPEC / "README.md").read_text(encoding="utf-8")
KIND_OF_TYPE = {
    "container-build": "build",
    "test-run": "test",
    "security-scan": "scan",
    "iac-validation": "iac",
}


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parents[3].name}/{p.parent.name[:8]}" for p in paths]


def _spec_prices() -> dict[str, tuple[float, float]]:
    sentence = SPEC_TEXT[SPEC_TEXT.index("Prices in USD per 1,000 tokens") :]
    sentence = sentence[: sentence.index("Execution")]
    return {
        name: (float(a), float(b))
        for name, a, b in re.findall(r"(\w+)\s+(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)", sentence)
    }


def _spec_templates() -> dict[str, tuple[float, float, float]]:
    found = re.findall(r"`(\w+)`\s+(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)", SPEC_TEXT)
    return {name: (float(a), float(b), float(c)) for name, a, b, c in found}


# ------------------------------------------------------------------ detection


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-5.2", "gpt52"),
        ("GPT-5.2", "gpt52"),
        ("gpt-5.2-pro", "gpt52pro"),
        ("openai/gpt-5.2-pro-2026-01-01", "gpt52pro"),
        ("gpt-5-nano", "gpt5nano"),
        ("GPT-5 Nano", "gpt5nano"),
        ("gpt-5-mini", "gpt5mini"),
        ("gpt-5 mini", "gpt5mini"),
        ("gpt-5-mini-2025-08-07", "gpt5mini"),
        ("gpt-4.1-nano", "gpt41nano"),
        ("gpt-4.1-mini", "gpt41mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt41mini"),
        ("gpt-4.1", "gpt41"),
        ("azure/gpt-4.1-2025", "gpt41"),
        ("claude-opus-4.5", "claudeopus45"),
        ("anthropic/opus-4.5", "claudeopus45"),
        ("claude-opus-4.1", "claudeopus41"),
        ("Opus-4.1", "claudeopus41"),
        ("claude-sonnet-4.5", "claudesonnet45"),
        ("Claude-Sonnet-4.5", "claudesonnet45"),
        ("sonnet-4.5", "claudesonnet45"),
        ("claude-sonnet-4", "claudesonnet4"),
        ("claude-sonnet-4-20250514", "claudesonnet4"),
        # Dated names with dashes are filed under Sonnet 4 (the spec's warning), not Sonnet 4.5.
        ("claude-sonnet-4-5-20250929", "claudesonnet4"),
        # The first match in the factory's order wins.
        ("claude-opus-4.5 via sonnet-4", "claudeopus45"),
        ("gpt-5-nano-or-gpt-5-mini", "gpt5nano"),
    ],
)
def test_detect_known_models(name: str, expected: str) -> None:
    assert rules.detect_model(name) == expected


@pytest.mark.parametrize(
    "name",
    ["gpt-4o", "GPT-4o", "gpt-5", "gpt-5.1", "claude-opus-4-5", "claude-3-5-sonnet", "llama-3-70b", "", " "],
)
def test_unrecognised_names_are_unknown_and_kept_as_given(name: str) -> None:
    assert rules.detect_model(name) == {"unknown": name}


@given(st.text(max_size=40))
def test_detection_is_a_known_variant_or_the_name_as_given(name: str) -> None:
    model = rules.detect_model(name)
    if isinstance(model, dict):
        assert model == {"unknown": name}
    else:
        assert model in KNOWN_MODELS
        assert rules.detect_model(name.upper()) == model


def test_every_variant_has_a_price_and_the_spec_table_matches() -> None:
    assert set(rules.FACTORY_PRICES) == {*KNOWN_MODELS, "unknown"}
    assert _spec_prices() == rules.FACTORY_PRICES


# ------------------------------------------------------------------ prices


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=_ids(SAMPLE_FILES))
def test_price_of_every_sample_record(path: Path) -> None:
    records = _load(path)["llmUsage"]
    for record in records:
        cost = rules.factory_llm_cost(record["model"], record["inputTokens"], record["outputTokens"])
        assert math.isclose(cost, record["cost"], rel_tol=1e-12, abs_tol=1e-15), record["id"]
        assert cost == record["cost"]  # the same float arithmetic as the factory: bit-for-bit


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=_ids(SAMPLE_FILES))
def test_ledger_arithmetic_reproduces_every_sample(path: Path) -> None:
    doc = _load(path)
    ledger = copy.deepcopy(doc["sessionCost"])
    for name in rules.CATEGORIES:
        ledger["breakdown"][name] = rules.cost_item(0.0, 0.0, 0.0)
    for record in doc["llmUsage"]:
        cost = record["cost"]
        rules.add_to_item(ledger["breakdown"]["llm"], cost, cost, cost)
    for execution in doc["executionCosts"]:
        item = execution["cost"]
        rules.add_to_item(ledger["breakdown"]["compute"], item["min"], item["expected"], item["max"])
    rules.recalculate_total(ledger)
    assert ledger == doc["sessionCost"]


def test_price_accepts_raw_names_variants_and_unknown() -> None:
    assert rules.factory_price("gpt-5-mini") == rules.FACTORY_PRICES["gpt5mini"]
    assert rules.factory_price("gpt5mini") == rules.FACTORY_PRICES["gpt5mini"]
    assert rules.factory_price({"unknown": "gpt-5-mini"}) == rules.FACTORY_PRICES["unknown"]
    assert rules.factory_price("gpt-4o") == rules.FACTORY_PRICES["unknown"]
    p_in, p_out = rules.FACTORY_PRICES["claudeopus45"]
    assert rules.factory_llm_cost("claudeopus45", 2000, 1000) == pytest.approx(2 * p_in + p_out)
    assert rules.factory_llm_cost("gpt41", 0, 0) == 0.0


# ------------------------------------------------------------------ executions

SPEC_LOCAL = {"build": (0.0, 0.01, 0.02), "test": (0.0, 0.005, 0.01), "scan": (0.0, 0.002, 0.005)}
SPEC_LOCAL["iac"] = (0.0, 0.001, 0.003)
SPEC_MINUTES = {"build": (3.5, 7.0), "test": (2.0, 4.0), "scan": (1.0, 2.0), "iac": (0.5, 1.0)}


@pytest.mark.parametrize("kind", rules.EXECUTION_KINDS)
def test_local_presets(kind: str) -> None:
    preset = rules.execution_preset(kind, cloud=False)
    assert list(preset) == ["executionType", "cpuMinutes", "memoryGbMinutes", "cost", "isLocal"]
    assert preset["executionType"] in EXECUTION_TYPES
    assert KIND_OF_TYPE[preset["executionType"]] == kind
    assert (preset["cpuMinutes"], preset["memoryGbMinutes"]) == SPEC_MINUTES[kind]
    cost = preset["cost"]
    assert (cost["min"], cost["expected"], cost["max"]) == SPEC_LOCAL[kind]
    assert cost["notes"].startswith("Local ") and cost["notes"].endswith("(indicative only)")
    assert preset["isLocal"] is True


@pytest.mark.parametrize("kind", rules.EXECUTION_KINDS)
def test_cloud_presets(kind: str) -> None:
    preset = rules.execution_preset(kind, cloud=True)
    cpu, memory = SPEC_MINUTES[kind]
    expected = cpu * 0.04 + memory * 0.005
    cost = preset["cost"]
    assert (cost["min"], cost["expected"], cost["max"]) == (expected * 0.5, expected, expected * 1.5)
    assert cost["notes"].startswith("Cloud ") and cost["notes"].endswith(" estimate")
    assert preset["isLocal"] is False


def test_presets_match_every_sample_execution() -> None:
    seen = 0
    for path in SAMPLE_FILES:
        for execution in _load(path)["executionCosts"]:
            kind = KIND_OF_TYPE[execution["executionType"]]
            assert rules.execution_preset(kind, cloud=not execution["isLocal"]) == execution
            seen += 1
    assert seen > 0


def test_preset_aliases_and_unknown_kinds() -> None:
    assert rules.execution_preset("Container-Build") == rules.execution_preset("build")
    assert rules.execution_preset("security_scan", True) == rules.execution_preset("scan", True)
    with pytest.raises(ValueError, match="unknown execution kind"):
        rules.execution_preset("deploy")


def test_presets_are_fresh_copies() -> None:
    first = rules.execution_preset("build")
    first["cost"]["expected"] = 99.0
    assert rules.execution_preset("build")["cost"]["expected"] != 99.0


# ------------------------------------------------------------------ infrastructure templates


def _example_infra() -> list[dict[str, Any]]:
    return [doc["infraCost"] for doc in map(_load, SAMPLE_FILES) if doc["infraCost"]["total"]["expected"]]


def test_template_totals_match_the_spec_and_their_breakdowns() -> None:
    spec = _spec_templates()
    assert set(spec) == set(rules.INFRA_TEMPLATES)
    for name, template in rules.INFRA_TEMPLATES.items():
        total = template["total"]
        assert (total["min"], total["expected"], total["max"]) == spec[name]
        for key in ("min", "expected", "max"):
            assert math.fsum(template["breakdown"][c][key] for c in rules.CATEGORIES) == total[key]
        assert template["isMonthly"] is True and template["scope"] == "app"
        assert "updatedAt" not in template


def test_templates_equal_the_example_infra_estimates_key_for_key() -> None:
    matched = set()
    infra_docs = _example_infra()
    assert infra_docs
    for infra in infra_docs:
        moment = datetime.fromisoformat(infra["updatedAt"].replace("Z", "+00:00"))
        names = [
            name
            for name in rules.INFRA_TEMPLATES
            if rules.infra_estimate(name, moment)["total"] == infra["total"]
        ]
        assert len(names) == 1
        built = rules.infra_estimate(names[0], moment)
        built["updatedAt"] = infra["updatedAt"]  # the examples write 6 fraction digits even for .000000
        assert built == infra
        assert json.dumps(built) == json.dumps(infra)  # same key order too
        matched.add(names[0])
    assert matched == {"backend_api_small", "backend_api_with_db", "frontend_spa"}


def test_fullstack_is_backend_with_db_plus_spa() -> None:
    full = rules.INFRA_TEMPLATES["fullstack_small"]
    backend = rules.INFRA_TEMPLATES["backend_api_with_db"]
    spa = rules.INFRA_TEMPLATES["frontend_spa"]
    for name in rules.CATEGORIES:
        for key in ("min", "expected", "max"):
            assert (
                full["breakdown"][name][key] == backend["breakdown"][name][key] + spa["breakdown"][name][key]
            )
        assert full["breakdown"][name].get("notes") == backend["breakdown"][name].get("notes")
    assumptions = full["assumptions"]
    assert len(set(assumptions)) == len(assumptions)
    assert set(backend["assumptions"]) | set(spa["assumptions"]) < set(assumptions)
    assert assumptions[-1] == "Full-stack deployment"
    assert full["confidence"] == math.sqrt(backend["confidence"] * spa["confidence"])


def test_infra_estimate_is_a_dated_copy() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    estimate = rules.infra_estimate("Backend-API-Small", moment)
    assert estimate["updatedAt"] == "2026-03-04T05:06:07.890Z"
    assert list(estimate)[-2:] == ["updatedAt", "isMonthly"]
    estimate["breakdown"]["compute"]["expected"] = 0.0
    estimate["assumptions"].append("changed")
    again = rules.infra_estimate("backend_api_small", moment)
    assert again["breakdown"]["compute"]["expected"] == 20.0
    assert "changed" not in again["assumptions"]
    with pytest.raises(ValueError, match="unknown infrastructure template"):
        rules.infra_estimate("kubernetes_large", moment)


# ------------------------------------------------------------------ timestamps and the initial session


@pytest.mark.parametrize(
    ("micro", "fraction"), [(0, ""), (120000, ".120"), (5000, ".005"), (123456, ".123456"), (100, ".000100")]
)
def test_rfc3339_fraction_digits_like_chrono(micro: int, fraction: str) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, micro, tzinfo=UTC)
    text = rules.rfc3339(moment)
    assert text == f"2026-01-02T03:04:05{fraction}Z"
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment


def test_rfc3339_converts_to_utc_and_refuses_naive_times() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert rules.rfc3339(moment) == "2026-01-02T01:04:05Z"
    with pytest.raises(ValueError, match="time zone"):
        rules.rfc3339(datetime(2026, 1, 2, 3, 4, 5))


def _zero_sessions() -> list[Path]:
    """Samples still in the state the factory starts a session with."""
    docs = {p: _load(p) for p in SAMPLE_FILES}
    return [
        p
        for p, d in docs.items()
        if not d["llmUsage"] and not d["executionCosts"] and not d["infraCost"]["total"]["max"]
    ]


@pytest.mark.parametrize("path", _zero_sessions(), ids=_ids(_zero_sessions()))
def test_new_session_is_what_the_factory_starts_with(path: Path) -> None:
    sample = _load(path)
    moment = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    built = rules.new_session(sample["sessionId"], moment)
    stamp = rules.rfc3339(moment)
    for doc in (sample["sessionCost"], sample["infraCost"], sample):
        doc["updatedAt"] = stamp
    assert built == sample
    assert json.dumps(built) == json.dumps(sample)  # key order included


def test_llm_record_key_order_matches_the_samples() -> None:
    moment = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    sample_orders = {tuple(r) for p in SAMPLE_FILES for r in _load(p)["llmUsage"]}
    full = rules.llm_record("x", "gpt41", 1, 2, moment, agent="a", station="s", feature="f")
    bare = rules.llm_record("y", {"unknown": "gpt-4o"}, 1, 2, moment)
    with_agent = rules.llm_record("z", "gpt41", 1, 2, moment, agent="a")
    assert tuple(full) in sample_orders and tuple(with_agent) in sample_orders
    assert list(bare) == ["id", "model", "inputTokens", "outputTokens", "cost", "timestamp"]
    assert bare["cost"] == rules.factory_llm_cost({"unknown": "gpt-4o"}, 1, 2)
