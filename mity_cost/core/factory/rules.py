"""How mITyFactory names, prices and estimates things, so that what we write is what it would write.

Transcribed from the factory's own cost code (``mity_chat/src/cost.rs``): model detection, its price
table, execution presets, infrastructure templates, the initial session state and the way its
ledger adds up.  Stdlib only: ``mity-cost record-llm`` imports it and must start fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

_T = TypeVar("_T")

CATEGORIES: tuple[str, ...] = ("llm", "compute", "storage", "network", "misc")
"""The five breakdown categories, in the factory's order (its totals add them in this order)."""

FACTORY_PRICES: dict[str, tuple[float, float]] = {
    "gpt52": (0.005, 0.015),
    "gpt52pro": (0.01, 0.03),
    "gpt5mini": (0.0003, 0.0012),
    "gpt5nano": (0.0001, 0.0004),
    "gpt41": (0.002, 0.008),
    "gpt41mini": (0.0004, 0.0016),
    "gpt41nano": (0.0001, 0.0004),
    "claudeopus45": (0.015, 0.075),
    "claudeopus41": (0.012, 0.06),
    "claudesonnet45": (0.003, 0.015),
    "claudesonnet4": (0.003, 0.015),
    "unknown": (0.01, 0.03),
}
"""USD per 1,000 tokens (input, output) for each factory model variant; ``"unknown"`` is the fallback."""

_DETECTION: tuple[tuple[tuple[str, ...], str], ...] = (
    (("gpt-5.2-pro",), "gpt52pro"),
    (("gpt-5.2",), "gpt52"),
    (("gpt-5-nano", "gpt-5 nano"), "gpt5nano"),
    (("gpt-5-mini", "gpt-5 mini"), "gpt5mini"),
    (("gpt-4.1-nano",), "gpt41nano"),
    (("gpt-4.1-mini",), "gpt41mini"),
    (("gpt-4.1",), "gpt41"),
    (("claude-opus-4.5", "opus-4.5"), "claudeopus45"),
    (("claude-opus-4.1", "opus-4.1"), "claudeopus41"),
    (("claude-sonnet-4.5", "sonnet-4.5"), "claudesonnet45"),
    (("claude-sonnet-4", "sonnet-4"), "claudesonnet4"),
)

SESSION_ASSUMPTIONS: tuple[str, ...] = (
    "Using conservative LLM pricing estimates",
    "Local execution costs are indicative only",
)
INITIAL_INFRA_ASSUMPTIONS: tuple[str, ...] = (
    "Single-region deployment",
    "Low traffic assumed",
    "No high availability",
    "Minimum resource allocation",
)
CONFIRMATION_THRESHOLD = 5.0
"""What the factory stores as ``confirmationThreshold`` (shown, never used by mity-cost)."""

ModelName = str | dict[str, str]


def detect_model(name: str) -> ModelName:
    """The factory's variant for a model name (first matching substring, case-insensitive).

    Anything it does not recognise is ``{"unknown": name}`` with the name exactly as given: note that
    ``gpt-4o`` and ``gpt-5`` are unknown, and ``claude-sonnet-4-5-20250929`` is ``claudesonnet4``.
    """
    lower = name.lower()
    for needles, variant in _DETECTION:
        if any(needle in lower for needle in needles):
            return variant
    return {"unknown": name}


def factory_price(model: ModelName) -> tuple[float, float]:
    """USD per 1,000 tokens (input, output) the factory charges for a model.

    ``model`` is a variant (``"gpt5mini"``), an ``{"unknown": ...}`` dict, or a raw model name, which
    is detected first (variant keys contain no ``-`` or ``.``, so the two cannot be confused).
    """
    if isinstance(model, str):
        if model not in FACTORY_PRICES:
            model = detect_model(model)
        if isinstance(model, str):
            return FACTORY_PRICES[model]
    return FACTORY_PRICES["unknown"]


def factory_llm_cost(model: ModelName, input_tokens: int, output_tokens: int) -> float:
    """The cost the factory records for one call, with its exact float arithmetic."""
    price_in, price_out = factory_price(model)
    return (input_tokens / 1000.0) * price_in + (output_tokens / 1000.0) * price_out


# --------------------------------------------------------------------------------------------
# Cost items and estimates
# --------------------------------------------------------------------------------------------


def cost_item(
    low: float, expected: float, high: float, *, unit: str | None = None, notes: str | None = None
) -> dict[str, Any]:
    """A ``CostItem`` dict in the factory's key order (``unit``/``notes`` only when given)."""
    item: dict[str, Any] = {"min": low, "expected": expected, "max": high}
    if unit is not None:
        item["unit"] = unit
    if notes is not None:
        item["notes"] = notes
    return item


def zero_breakdown() -> dict[str, Any]:
    """Five zero items."""
    return {name: cost_item(0.0, 0.0, 0.0) for name in CATEGORIES}


def add_to_item(item: dict[str, Any], low: float, expected: float, high: float) -> None:
    """``CostItem::add``: add a range to an item in place (its unit, notes and other keys stay)."""
    item["min"] = item["min"] + low
    item["expected"] = item["expected"] + expected
    item["max"] = item["max"] + high


def recalculate_total(estimate: dict[str, Any]) -> None:
    """``CostEstimate::recalculate_total``: total = 0.0 + llm + compute + storage + network + misc.

    The sum is folded in the factory's order, so the result is bit-for-bit what it computes.  The
    existing ``total`` dict is updated in place (keys other than min/expected/max are kept);
    ``updatedAt`` is the caller's business.
    """
    breakdown = estimate["breakdown"]
    sums = [0.0, 0.0, 0.0]
    for name in CATEGORIES:
        item = breakdown[name]
        sums[0] += item["min"]
        sums[1] += item["expected"]
        sums[2] += item["max"]
    total = estimate.get("total")
    if not isinstance(total, dict):
        total = estimate["total"] = {}
    total["min"], total["expected"], total["max"] = sums


def estimate(
    scope: str,
    *,
    confidence: float = 0.5,
    assumptions: Sequence[str] = (),
    is_monthly: bool = False,
    now: datetime | None = None,
    currency: str = "USD",
) -> dict[str, Any]:
    """A zero ``CostEstimate`` (``CostEstimate::default()`` with the given fields), key order kept.

    Without ``now`` the ``updatedAt`` key is left out (templates carry no timestamp).
    """
    doc: dict[str, Any] = {
        "currency": currency,
        "scope": scope,
        "confidence": confidence,
        "breakdown": zero_breakdown(),
        "total": cost_item(0.0, 0.0, 0.0),
        "assumptions": list(assumptions),
    }
    if now is not None:
        doc["updatedAt"] = rfc3339(now)
    doc["isMonthly"] = is_monthly
    return doc


def stamp(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A copy of a timestamp-less estimate with ``updatedAt`` put back in its place (before ``isMonthly``)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "isMonthly":
            out["updatedAt"] = rfc3339(now)
        out[key] = clone(value)
    if "updatedAt" not in out:
        out["updatedAt"] = rfc3339(now)
    return out


def clone(value: _T) -> _T:
    """A deep copy of a JSON value (dicts and lists copied, key order kept)."""
    return cast(_T, _clone(value))


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp the way the factory (chrono) writes it: ``Z``, and 0, 3 or 6 fraction digits.

    chrono prints no fraction for a whole second, 3 digits for whole milliseconds, 6 for whole
    microseconds (9 for nanoseconds, which Python does not have).  A naive datetime is refused.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a timestamp needs a time zone (use datetime.now(UTC))")
    moment = moment.astimezone(UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micro = moment.microsecond
    if micro == 0:
        return base + "Z"
    if micro % 1000 == 0:
        return f"{base}.{micro // 1000:03d}Z"
    return f"{base}.{micro:06d}Z"


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


def new_session(session_id: str, now: datetime) -> dict[str, Any]:
    """``SessionCostState::new``: the state the factory writes when a session's costs start."""
    return {
        "sessionId": session_id,
        "currency": "USD",
        "sessionCost": estimate("session", assumptions=SESSION_ASSUMPTIONS, now=now),
        "infraCost": estimate(
            "app", confidence=0.3, assumptions=INITIAL_INFRA_ASSUMPTIONS, is_monthly=True, now=now
        ),
        "llmUsage": [],
        "executionCosts": [],
        "featureCosts": {},
        "confirmationThreshold": CONFIRMATION_THRESHOLD,
        "updatedAt": rfc3339(now),
    }


def llm_record(
    record_id: str,
    model: ModelName,
    input_tokens: int,
    output_tokens: int,
    now: datetime,
    *,
    agent: str | None = None,
    station: str | None = None,
    feature: str | None = None,
) -> dict[str, Any]:
    """``LlmUsageRecord::new`` (+ ``with_agent``/``with_station``/``with_feature``), key order kept."""
    record: dict[str, Any] = {
        "id": record_id,
        "model": model if isinstance(model, str) else dict(model),
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "cost": factory_llm_cost(model, input_tokens, output_tokens),
    }
    for key, value in (("agent", agent), ("station", station), ("feature", feature)):
        if value is not None:
            record[key] = value
    record["timestamp"] = rfc3339(now)
    return record


# --------------------------------------------------------------------------------------------
# Executions
# --------------------------------------------------------------------------------------------

EXECUTION_KINDS: tuple[str, ...] = ("build", "test", "scan", "iac")

_EXECUTIONS: dict[str, tuple[str, float, float, tuple[float, float, float], str, str]] = {
    # kind: (executionType, cpuMinutes, memoryGbMinutes, local range, local notes, cloud notes)
    "build": (
        "container-build",
        3.5,
        7.0,
        (0.0, 0.01, 0.02),
        "Local container build (indicative only)",
        "Cloud container build estimate",
    ),
    "test": (
        "test-run",
        2.0,
        4.0,
        (0.0, 0.005, 0.01),
        "Local test execution (indicative only)",
        "Cloud test execution estimate",
    ),
    "scan": (
        "security-scan",
        1.0,
        2.0,
        (0.0, 0.002, 0.005),
        "Local security scan (indicative only)",
        "Cloud security scan estimate",
    ),
    "iac": (
        "iac-validation",
        0.5,
        1.0,
        (0.0, 0.001, 0.003),
        "Local IaC validation (indicative only)",
        "Cloud IaC validation estimate",
    ),
}
_KIND_ALIASES = {
    "container_build": "build",
    "container-build": "build",
    "test_run": "test",
    "test-run": "test",
    "security_scan": "scan",
    "security-scan": "scan",
    "iac_validation": "iac",
    "iac-validation": "iac",
}
CLOUD_CPU_PER_MINUTE = 0.04
CLOUD_MEMORY_PER_GB_MINUTE = 0.005


def execution_preset(kind: str, cloud: bool = False) -> dict[str, Any]:
    """The factory's ``ExecutionCostEstimate`` for a build, test, scan or IaC run (local or cloud).

    ``kind`` is ``build``/``test``/``scan``/``iac`` (or the factory's long names, any case); anything
    else raises ``ValueError`` (the factory would silently file it as a test run).
    """
    key = kind.strip().lower()
    key = _KIND_ALIASES.get(key, key)
    if key not in _EXECUTIONS:
        raise ValueError(f"unknown execution kind {kind!r}: use one of {', '.join(EXECUTION_KINDS)}")
    execution_type, cpu, memory, local, local_notes, cloud_notes = _EXECUTIONS[key]
    if cloud:
        expected = cpu * CLOUD_CPU_PER_MINUTE + memory * CLOUD_MEMORY_PER_GB_MINUTE
        cost = cost_item(expected * 0.5, expected, expected * 1.5, notes=cloud_notes)
    else:
        cost = cost_item(*local, notes=local_notes)
    return {
        "executionType": execution_type,
        "cpuMinutes": cpu,
        "memoryGbMinutes": memory,
        "cost": cost,
        "isLocal": not cloud,
    }


# --------------------------------------------------------------------------------------------
# Monthly infrastructure templates (``infra_estimates`` in the factory)
# --------------------------------------------------------------------------------------------


def _backend_api_small() -> dict[str, Any]:
    doc = estimate("app", confidence=0.3, assumptions=INITIAL_INFRA_ASSUMPTIONS, is_monthly=True)
    doc["breakdown"]["compute"] = cost_item(10.0, 20.0, 30.0, notes="Small container/VM instance")
    doc["breakdown"]["storage"] = cost_item(1.0, 2.0, 5.0, notes="Minimal storage for logs/data")
    doc["breakdown"]["network"] = cost_item(1.0, 2.0, 5.0, notes="Low traffic egress")
    doc["assumptions"] = [
        "Single-region deployment",
        "Low traffic (<1000 req/day)",
        "Minimum resource allocation",
        "No high availability",
        "Basic logging only",
    ]
    recalculate_total(doc)
    return doc


def _backend_api_with_db() -> dict[str, Any]:
    doc = _backend_api_small()
    doc["breakdown"]["storage"] = cost_item(15.0, 25.0, 50.0, notes="Small managed database + storage")
    doc["assumptions"].append("Small managed database (e.g., Azure SQL Basic)")
    recalculate_total(doc)
    return doc


def _frontend_spa() -> dict[str, Any]:
    doc = estimate("app", confidence=0.3, assumptions=INITIAL_INFRA_ASSUMPTIONS, is_monthly=True)
    doc["breakdown"]["storage"] = cost_item(0.5, 1.0, 3.0, notes="Static file storage")
    doc["breakdown"]["network"] = cost_item(1.0, 3.0, 10.0, notes="CDN distribution")
    doc["assumptions"] = ["Static SPA hosting", "CDN for global distribution", "Low-medium traffic"]
    doc["confidence"] = 0.5
    recalculate_total(doc)
    return doc


def _fullstack_small() -> dict[str, Any]:
    # No example shows this one; it is the factory's own recipe (``fullstack_small``): the backend
    # with a database plus the SPA via ``CostEstimate::add`` (items add up and keep the backend's
    # notes, assumptions merge without repeats, confidence becomes sqrt(0.3 x 0.5)), then one more
    # assumption.  Its total is 27.5/51/98 as the spec says.
    doc = _backend_api_with_db()
    other = _frontend_spa()
    for name in CATEGORIES:
        item = other["breakdown"][name]
        add_to_item(doc["breakdown"][name], item["min"], item["expected"], item["max"])
    recalculate_total(doc)
    for assumption in other["assumptions"]:
        if assumption not in doc["assumptions"]:
            doc["assumptions"].append(assumption)
    doc["confidence"] = math.sqrt(doc["confidence"] * other["confidence"])
    doc["assumptions"].append("Full-stack deployment")
    return doc


INFRA_TEMPLATES: dict[str, dict[str, Any]] = {
    "backend_api_small": _backend_api_small(),
    "backend_api_with_db": _backend_api_with_db(),
    "frontend_spa": _frontend_spa(),
    "fullstack_small": _fullstack_small(),
}
"""Template name -> the factory's monthly ``CostEstimate`` without ``updatedAt`` (do not mutate)."""


def template_name(name: str) -> str:
    """The template key for a name given on a command line (``Backend-API-Small`` works too)."""
    key = name.strip().lower().replace("-", "_")
    if key not in INFRA_TEMPLATES:
        raise ValueError(f"unknown infrastructure template {name!r}: use one of {', '.join(INFRA_TEMPLATES)}")
    return key


def infra_estimate(name: str, now: datetime) -> dict[str, Any]:
    """A fresh copy of a template, dated ``now``, ready to be a session's ``infraCost``."""
    return stamp(INFRA_TEMPLATES[template_name(name)], now)
