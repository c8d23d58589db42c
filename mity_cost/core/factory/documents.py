"""The factory's cost documents, in its real on-disk format (camelCase, serde enum spellings).

The documents are TypedDicts validated by pydantic ``TypeAdapter``s: the whole file is parsed and
checked in Rust (jiter + pydantic-core), several times faster than building ``BaseModel`` objects, and
what comes out is plain dicts that can be written back without losing a key.  Unknown keys are kept
(``extra="allow"``); unknown model names and execution types are kept as given.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from mity_cost.core.factory.figures import model_key as model_key
from mity_cost.core.money import CURRENCY_SYMBOLS as CURRENCY_SYMBOLS
from mity_cost.core.money import Range

Amount = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
"""A finite, non-negative amount of money (a JSON number: never a string or a boolean)."""

TokenCount = Annotated[int, Field(ge=0, strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]
Currency = Literal["USD", "EUR"]
Scope = Literal["session", "app", "feature", "station", "llmcall"]

KNOWN_MODELS: tuple[str, ...] = (
    "gpt52",
    "gpt52pro",
    "gpt5mini",
    "gpt5nano",
    "gpt41",
    "gpt41mini",
    "gpt41nano",
    "claudeopus45",
    "claudeopus41",
    "claudesonnet45",
    "claudesonnet4",
)
EXECUTION_TYPES: tuple[str, ...] = (
    "container-build",
    "test-run",
    "security-scan",
    "iac-validation",
    "code-generation",
)

_EXTRA = ConfigDict(extra="allow")


def _ordered(item: CostItem) -> CostItem:
    if not item["min"] <= item["expected"] <= item["max"]:
        raise ValueError(
            f"range out of order: min {item['min']}, expected {item['expected']}, max {item['max']}"
        )
    return item


@with_config(_EXTRA)
class CostItem(TypedDict):
    """A cost range: ``min <= expected <= max``, all finite and non-negative."""

    min: Amount
    expected: Amount
    max: Amount
    unit: NotRequired[str]
    notes: NotRequired[str]


OrderedCostItem = Annotated[CostItem, AfterValidator(_ordered)]


@with_config(_EXTRA)
class CostBreakdown(TypedDict):
    """The five categories of a ``CostEstimate``."""

    llm: OrderedCostItem
    compute: OrderedCostItem
    storage: OrderedCostItem
    network: OrderedCostItem
    misc: OrderedCostItem


@with_config(_EXTRA)
class CostEstimate(TypedDict):
    """An estimate with its breakdown, total, confidence and assumptions."""

    currency: Currency
    scope: Scope
    confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]
    breakdown: CostBreakdown
    total: OrderedCostItem
    assumptions: list[str]
    updatedAt: AwareDatetime
    isMonthly: NotRequired[StrictBool]


ModelName = str | dict[str, str]
"""``"gpt5mini"`` for a model the factory knows, ``{"unknown": "gpt-4o"}`` for one it does not."""

ExecutionType = str | dict[str, str]
"""``"container-build"`` ... or ``{"other": "<name>"}``."""


@with_config(_EXTRA)
class LlmUsageRecord(TypedDict):
    """One LLM call: its model, tokens and the factory's cost for it (a plain number)."""

    id: str
    model: ModelName
    inputTokens: TokenCount
    outputTokens: TokenCount
    cost: Amount
    agent: NotRequired[str]
    station: NotRequired[str]
    feature: NotRequired[str]
    timestamp: AwareDatetime


@with_config(_EXTRA)
class ExecutionCostEstimate(TypedDict):
    """One compute execution (no timestamp: date it by when it was first seen)."""

    executionType: ExecutionType
    cpuMinutes: Amount
    memoryGbMinutes: Amount
    cost: OrderedCostItem
    isLocal: StrictBool


@with_config(_EXTRA)
class FeatureCostDelta(TypedDict):
    """The cost delta of one feature: one-time and monthly."""

    featureId: str
    featureName: str
    oneTimeCost: CostEstimate
    monthlyImpact: CostEstimate
    calculatedAt: AwareDatetime


@with_config(_EXTRA)
class SessionCostState(TypedDict):
    """One session's ``cost.json``."""

    sessionId: str
    currency: Currency
    sessionCost: CostEstimate
    infraCost: CostEstimate
    llmUsage: list[LlmUsageRecord]
    executionCosts: list[ExecutionCostEstimate]
    featureCosts: dict[str, FeatureCostDelta]
    confirmationThreshold: Amount
    updatedAt: AwareDatetime


SESSION_ADAPTER: TypeAdapter[SessionCostState] = TypeAdapter(SessionCostState)
FEATURE_ADAPTER: TypeAdapter[FeatureCostDelta] = TypeAdapter(FeatureCostDelta)


def model_label(model: ModelName) -> str:
    """What to show a person: the factory's variant, or the name it did not recognise."""
    if isinstance(model, str):
        return model
    return next(iter(model.values()), "unknown") if model else "unknown"


def is_unknown_model(model: ModelName) -> bool:
    """True when the factory did not recognise the model (charged at its fallback price)."""
    return not isinstance(model, str) or model not in KNOWN_MODELS


def execution_label(kind: ExecutionType) -> str:
    """``"container-build"`` or the name inside ``{"other": ...}``."""
    if isinstance(kind, str):
        return kind
    return next(iter(kind.values()), "other") if kind else "other"


def zero_item() -> CostItem:
    """A zero cost range."""
    return {"min": 0.0, "expected": 0.0, "max": 0.0}


def spread_percent(item: CostItem) -> float:
    """The factory's ± figure: (max - min) / expected x 50, 0 when expected is 0."""
    return Range.of(item).spread
