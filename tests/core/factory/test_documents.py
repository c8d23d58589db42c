"""The document models accept the factory's real format and refuse what breaks the rules."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mity_cost.core.factory.documents import (
    EXECUTION_TYPES,
    FEATURE_ADAPTER,
    KNOWN_MODELS,
    SESSION_ADAPTER,
    execution_label,
    is_unknown_model,
    model_key,
    model_label,
    spread_percent,
    zero_item,
)
from tests.conftest import EXAMPLE_ROOT, REAL_SAMPLES

SESSION_FILES = sorted(
    [*EXAMPLE_ROOT.glob(".mity/chat/*/cost.json"), *REAL_SAMPLES.glob(".mity/chat/*/cost.json")]
)
FEATURE_FILES = sorted(EXAMPLE_ROOT.glob("workspaces/*/.mity/cost/features/*.json"))
RICH = EXAMPLE_ROOT / ".mity/chat/5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91/cost.json"


def _raw(path: Path = RICH) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _validate(doc: Any) -> Any:
    return SESSION_ADAPTER.validate_json(json.dumps(doc))


def _error_locations(doc: Any) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as info:
        _validate(doc)
    return [tuple(e["loc"]) for e in info.value.errors()]


# ------------------------------------------------------------------ the real files


@pytest.mark.parametrize("path", SESSION_FILES, ids=lambda p: p.parent.name)
def test_every_real_session_file_validates_with_its_values(path: Path) -> None:
    raw = _raw(path)
    doc = SESSION_ADAPTER.validate_json(path.read_bytes())
    assert doc["sessionId"] == raw["sessionId"] == path.parent.name
    assert doc["sessionCost"]["total"] == {
        k: raw["sessionCost"]["total"][k] for k in ("min", "expected", "max")
    }
    assert [r["model"] for r in doc["llmUsage"]] == [r["model"] for r in raw["llmUsage"]]
    assert [r["cost"] for r in doc["llmUsage"]] == [r["cost"] for r in raw["llmUsage"]]
    assert [e["executionType"] for e in doc["executionCosts"]] == [
        e["executionType"] for e in raw["executionCosts"]
    ]


@pytest.mark.parametrize("path", FEATURE_FILES, ids=lambda p: p.name)
def test_every_feature_file_validates(path: Path) -> None:
    raw = json.loads(path.read_bytes())
    doc = FEATURE_ADAPTER.validate_json(path.read_bytes())
    assert doc["featureId"] == raw["featureId"]
    assert doc["monthlyImpact"]["isMonthly"] is True
    assert doc["oneTimeCost"]["total"]["expected"] == raw["oneTimeCost"]["total"]["expected"]


def test_known_model_spellings_and_unknown_models_are_kept_as_written() -> None:
    raw = _raw()
    for variant in KNOWN_MODELS:
        raw["llmUsage"].append({**raw["llmUsage"][0], "id": f"id-{variant}", "model": variant})
    raw["llmUsage"].append({**raw["llmUsage"][0], "id": "id-x", "model": {"unknown": "gpt-4o"}})
    raw["llmUsage"].append({**raw["llmUsage"][0], "id": "id-y", "model": "brand-new-variant"})
    doc = _validate(raw)
    models = [r["model"] for r in doc["llmUsage"]]
    assert set(KNOWN_MODELS) <= {m for m in models if isinstance(m, str)}
    assert {"unknown": "gpt-4o"} in models
    assert "brand-new-variant" in models


def test_execution_types_including_other_are_accepted() -> None:
    raw = _raw()
    template = raw["executionCosts"][0]
    raw["executionCosts"] = [{**template, "executionType": t} for t in EXECUTION_TYPES]
    raw["executionCosts"].append({**template, "executionType": {"other": "lint"}})
    doc = _validate(raw)
    assert [e["executionType"] for e in doc["executionCosts"]] == [*EXECUTION_TYPES, {"other": "lint"}]


def test_optional_keys_may_be_absent() -> None:
    raw = _raw()
    record = raw["llmUsage"][0]
    for key in ("agent", "station", "feature"):
        record.pop(key, None)
    raw["sessionCost"].pop("isMonthly", None)
    raw["sessionCost"]["total"].pop("unit", None)
    raw["sessionCost"]["total"].pop("notes", None)
    doc = _validate(raw)
    assert "agent" not in doc["llmUsage"][0]
    assert "isMonthly" not in doc["sessionCost"]


def test_unknown_keys_are_kept_not_refused() -> None:
    raw = _raw()
    raw["futureKey"] = {"nested": [1, 2]}
    raw["llmUsage"][0]["cacheTokens"] = 12
    raw["sessionCost"]["breakdown"]["llm"]["source"] = "ledger"
    doc = _validate(raw)
    assert doc["futureKey"] == {"nested": [1, 2]}
    assert doc["llmUsage"][0]["cacheTokens"] == 12
    assert doc["sessionCost"]["breakdown"]["llm"]["source"] == "ledger"


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-22T12:00:00Z",
        "2026-11-22T12:00:00.123Z",
        "2026-11-22T12:00:00.123456Z",
        "2026-11-22T12:00:00.123456789Z",
    ],
)
def test_timestamps_with_0_3_6_9_fraction_digits(stamp: str) -> None:
    raw = _raw()
    raw["llmUsage"][0]["timestamp"] = stamp
    doc = _validate(raw)
    moment = doc["llmUsage"][0]["timestamp"]
    assert isinstance(moment, datetime) and moment.utcoffset() == UTC.utcoffset(None)
    assert moment.replace(microsecond=0, tzinfo=None) == datetime(2026, 11, 22, 12, 0, 0)


def test_a_timestamp_without_a_zone_is_refused() -> None:
    raw = _raw()
    raw["llmUsage"][0]["timestamp"] = "2026-11-22T12:00:00"
    assert ("llmUsage", 0, "timestamp") in _error_locations(raw)


# ------------------------------------------------------------------ the rules


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


AMOUNT_PATHS: list[tuple[Any, ...]] = [
    ("sessionCost", "total", "expected"),
    ("sessionCost", "breakdown", "llm", "min"),
    ("infraCost", "total", "max"),
    ("llmUsage", 0, "cost"),
    ("executionCosts", 0, "cpuMinutes"),
    ("executionCosts", 0, "cost", "max"),
    ("confirmationThreshold",),
]


@pytest.mark.parametrize("path", AMOUNT_PATHS, ids=lambda p: ".".join(map(str, p)))
@pytest.mark.parametrize("bad", [-0.01, -1, None, [], "1.0", True])
def test_negative_or_non_numeric_amounts_are_refused(path: tuple[Any, ...], bad: Any) -> None:
    raw = _set(_raw(), path, bad)
    locations = _error_locations(raw)
    assert any(loc[: len(path)] == path for loc in locations), locations


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_refused(literal: str) -> None:
    text = json.dumps(_raw()).replace('"cost": 0.05861999999999999', f'"cost": {literal}', 1)
    assert literal in text
    with pytest.raises(ValidationError):
        SESSION_ADAPTER.validate_json(text)


@pytest.mark.parametrize(
    "path",
    [("sessionCost", "total"), ("sessionCost", "breakdown", "compute"), ("infraCost", "total"),
     ("executionCosts", 0, "cost")],
    ids=lambda p: ".".join(map(str, p)),
)  # fmt: skip
@pytest.mark.parametrize("triple", [(2.0, 1.0, 3.0), (1.0, 3.0, 2.0), (3.0, 2.0, 1.0)])
def test_out_of_order_ranges_are_refused(path: tuple[Any, ...], triple: tuple[float, float, float]) -> None:
    raw = _raw()
    item = raw
    for part in path:
        item = item[part]
    item.update(min=triple[0], expected=triple[1], max=triple[2])
    locations = _error_locations(raw)
    assert any(loc[: len(path)] == path for loc in locations), locations


def test_an_equal_range_is_fine() -> None:
    raw = _raw()
    raw["sessionCost"]["breakdown"]["misc"].update(min=1.0, expected=1.0, max=1.0)
    assert _validate(raw)["sessionCost"]["breakdown"]["misc"]["expected"] == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        1.5,
        -1,
        None,
        "12",
        1e3,
        True,
    ],
)
def test_token_counts_must_be_non_negative_integers(bad: Any) -> None:
    raw = _raw()
    raw["llmUsage"][0]["inputTokens"] = bad
    assert ("llmUsage", 0, "inputTokens") in _error_locations(raw)


def test_is_local_must_be_a_json_boolean() -> None:
    raw = _raw()
    raw["executionCosts"][0]["isLocal"] = "yes"
    assert ("executionCosts", 0, "isLocal") in _error_locations(raw)


def test_huge_token_counts_stay_exact_integers() -> None:
    raw = _raw()
    raw["llmUsage"][0]["inputTokens"] = 2**64 - 1
    assert _validate(raw)["llmUsage"][0]["inputTokens"] == 2**64 - 1


@pytest.mark.parametrize(
    "key", ["sessionId", "currency", "sessionCost", "infraCost", "llmUsage", "updatedAt"]
)
def test_required_keys_are_required(key: str) -> None:
    raw = _raw()
    del raw[key]
    assert (key,) in _error_locations(raw)


@pytest.mark.parametrize(("key", "value"), [("currency", "GBP"), ("currency", "usd")])
def test_currency_is_usd_or_eur(key: str, value: str) -> None:
    raw = _raw()
    raw[key] = value
    assert (key,) in _error_locations(raw)


def test_confidence_is_between_0_and_1() -> None:
    raw = _raw()
    raw["sessionCost"]["confidence"] = 1.5
    assert ("sessionCost", "confidence") in _error_locations(raw)


def test_feature_needs_both_estimates() -> None:
    raw = json.loads(FEATURE_FILES[0].read_bytes())
    broken = copy.deepcopy(raw)
    del broken["monthlyImpact"]
    with pytest.raises(ValidationError):
        FEATURE_ADAPTER.validate_json(json.dumps(broken))
    raw["oneTimeCost"]["total"]["min"] = -1
    with pytest.raises(ValidationError):
        FEATURE_ADAPTER.validate_json(json.dumps(raw))


# ------------------------------------------------------------------ helpers


def test_model_helpers() -> None:
    assert model_key("gpt5mini") == "gpt5mini"
    assert model_key({"unknown": "gpt-4o"}) == "unknown:gpt-4o"
    assert model_label({"unknown": "gpt-4o"}) == "gpt-4o"
    assert model_label("claudeopus45") == "claudeopus45"
    assert not is_unknown_model("gpt41")
    assert is_unknown_model({"unknown": "gpt-4o"})
    assert is_unknown_model("brand-new-variant")
    assert model_key({}) == "unknown:"
    assert model_label({}) == "unknown"


def test_execution_label() -> None:
    assert execution_label("container-build") == "container-build"
    assert execution_label({"other": "lint"}) == "lint"
    assert execution_label({}) == "other"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"min": 0.0, "expected": 0.0, "max": 0.0}, 0.0),
        ({"min": 26.0, "expected": 47.0, "max": 85.0}, (85.0 - 26.0) / 47.0 * 50),
        ({"min": 1.0, "expected": 1.0, "max": 1.0}, 0.0),
    ],
)
def test_spread_percent_is_the_factorys_formula(item: Any, expected: float) -> None:
    assert spread_percent(item) == expected


def test_zero_item() -> None:
    assert zero_item() == {"min": 0.0, "expected": 0.0, "max": 0.0}
