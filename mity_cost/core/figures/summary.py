"""What the app shows of a session: the factory's ``RuntimeCostSummary`` (from its figures), groupings."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from mity_cost.core.factory.documents import (
    FeatureCostDelta,
    LlmUsageRecord,
    execution_label,
    model_key,
    model_label,
)
from mity_cost.core.factory.figures import SessionFigures
from mity_cost.core.factory.loading import LoadedFeature, LoadedSession
from mity_cost.core.figures.totals import in_display_currency, session_total
from mity_cost.core.money import CURRENCY_SYMBOLS, ZERO, Range
from mity_cost.core.settings import Settings

NONE_LABEL = "(none)"


@dataclass(frozen=True)
class RuntimeCostSummary:
    """The factory's per-session summary, with its keys and rules (see the spec)."""

    total_expected: float
    total_min: float
    total_max: float
    llm_cost: float
    compute_cost: float
    monthly_infra: float
    currency: str
    llm_calls: int
    total_tokens: int
    exceeds_threshold: bool
    threshold: float
    summary: str
    monthly: Range = field(default=ZERO, compare=False)
    llm_included: bool = True

    @property
    def total(self) -> Range:
        """The session total as a range."""
        return Range(self.total_min, self.total_expected, self.total_max)

    @property
    def fraction_of_threshold(self) -> float:
        """``total_expected / threshold`` (infinite for a zero threshold and a positive total)."""
        if self.threshold > 0:
            return self.total_expected / self.threshold
        return math.inf if self.total_expected > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The factory's camelCase keys (``costSummary`` in its ``runtime.json``)."""
        return {
            "totalExpected": self.total_expected,
            "totalMin": self.total_min,
            "totalMax": self.total_max,
            "llmCost": self.llm_cost,
            "computeCost": self.compute_cost,
            "monthlyInfra": self.monthly_infra,
            "currency": self.currency,
            "llmCalls": self.llm_calls,
            "totalTokens": self.total_tokens,
            "exceedsThreshold": self.exceeds_threshold,
            "threshold": self.threshold,
            "summary": self.summary,
            "llmIncluded": self.llm_included,
        }


def summary_line(total: Range, monthly: Range, symbol: str) -> str:
    """``Session: $0.18 (±33%) | Monthly: $47.00/mo (±63%)``, to the character."""
    return (
        f"Session: {symbol}{total.expected:.2f} (±{total.spread:.0f}%) | "
        f"Monthly: {symbol}{monthly.expected:.2f}/mo (±{monthly.spread:.0f}%)"
    )


def summarize(figures: SessionFigures, settings: Settings) -> RuntimeCostSummary:
    """The ``RuntimeCostSummary`` of one session under the given settings (no record walk).

    With the defaults and a USD session the figures equal the factory's own ``costSummary``.
    """
    ledger = figures.ledger
    total = session_total(ledger, settings)
    llm = in_display_currency(ledger.llm, ledger.currency, settings)
    compute = in_display_currency(ledger.compute, ledger.currency, settings)
    monthly = in_display_currency(figures.monthly, ledger.currency, settings)
    symbol = CURRENCY_SYMBOLS[settings.currency]
    return RuntimeCostSummary(
        total_expected=total.expected,
        total_min=total.min,
        total_max=total.max,
        llm_cost=llm.expected,
        compute_cost=compute.expected,
        monthly_infra=monthly.expected,
        currency=symbol,
        llm_calls=figures.calls,
        total_tokens=figures.total_tokens,
        exceeds_threshold=total.expected > settings.threshold,
        threshold=settings.threshold,
        summary=summary_line(total, monthly, symbol),
        monthly=monthly,
        llm_included=settings.llm_enabled,
    )


GroupBy = Literal["model", "agent", "station", "feature"]


@dataclass(frozen=True)
class Group:
    """LLM calls grouped by one key."""

    key: str
    label: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def _key_of(by: GroupBy) -> Callable[[LlmUsageRecord], tuple[str, str]]:
    if by == "model":
        return lambda r: (model_key(r["model"]), model_label(r["model"]))

    def optional(record: LlmUsageRecord) -> tuple[str, str]:
        value = record.get(by)
        text = value if isinstance(value, str) and value else NONE_LABEL
        return text, text

    return optional


def group_records(records: Iterable[LlmUsageRecord], by: GroupBy, scale: float = 1.0) -> list[Group]:
    """LLM records grouped by model, agent, station or feature; most expensive first."""
    acc: dict[str, list[Any]] = {}
    if by == "model":
        # One loop without a call per record (a 100,000-call session is grouped on every open):
        # a known model's key is its own text, its label the same; others go through model_key.
        for record in records:
            model = record["model"]
            key = model if isinstance(model, str) else model_key(model)
            slot = acc.get(key)
            if slot is None:
                slot = acc[key] = [model_label(model), 0, 0, 0, 0.0]
            slot[1] += 1
            slot[2] += record["inputTokens"]
            slot[3] += record["outputTokens"]
            slot[4] += record["cost"]
    else:
        key_of = _key_of(by)
        for record in records:
            key, label = key_of(record)
            slot = acc.setdefault(key, [label, 0, 0, 0, 0.0])
            slot[1] += 1
            slot[2] += record["inputTokens"]
            slot[3] += record["outputTokens"]
            slot[4] += record["cost"]
    groups = [Group(k, v[0], v[1], v[2], v[3], v[4] * scale) for k, v in acc.items()]
    return sorted(groups, key=lambda g: (-g.cost, g.label))


@dataclass(frozen=True)
class ExecutionGroup:
    """Compute executions of one type."""

    kind: str
    runs: int
    local_runs: int
    cpu_minutes: float
    memory_gb_minutes: float
    cost: Range


def group_executions(session: LoadedSession, scale: float = 1.0) -> list[ExecutionGroup]:
    """Executions grouped by type, with their summed cost range; most expensive first."""
    acc: dict[str, ExecutionGroup] = {}
    for run in session.doc["executionCosts"]:
        kind = execution_label(run["executionType"])
        prev = acc.get(kind, ExecutionGroup(kind, 0, 0, 0.0, 0.0, ZERO))
        acc[kind] = ExecutionGroup(
            kind,
            prev.runs + 1,
            prev.local_runs + (1 if run["isLocal"] else 0),
            prev.cpu_minutes + run["cpuMinutes"],
            prev.memory_gb_minutes + run["memoryGbMinutes"],
            prev.cost + Range.of(run["cost"], scale),
        )
    return sorted(acc.values(), key=lambda g: (-g.cost.expected, g.kind))


@dataclass(frozen=True)
class FeatureSummary:
    """A feature's cost delta, with the app it belongs to."""

    app: str
    feature_id: str
    name: str
    one_time: Range
    monthly: Range
    currency: str

    @property
    def summary(self) -> str:
        """``Feature 'X': ~$0.06 one-time + ~$2.00/month`` (the factory's wording)."""
        symbol = CURRENCY_SYMBOLS.get(self.currency, "$")
        head = f"Feature '{self.feature_id}': ~{symbol}{self.one_time.expected:.2f} one-time"
        if self.monthly.expected > 0:
            return f"{head} + ~{symbol}{self.monthly.expected:.2f}/month"
        return f"{head} cost"

    def to_json(self) -> dict[str, Any]:
        """Stable JSON for ``features --json``."""
        return {
            "app": self.app,
            "featureId": self.feature_id,
            "featureName": self.name,
            "oneTimeMin": self.one_time.min,
            "oneTimeExpected": self.one_time.expected,
            "oneTimeMax": self.one_time.max,
            "monthlyMin": self.monthly.min,
            "monthlyExpected": self.monthly.expected,
            "monthlyMax": self.monthly.max,
            "currency": self.currency,
            "summary": self.summary,
        }


def summarize_feature(app: str, doc: FeatureCostDelta, settings: Settings | None = None) -> FeatureSummary:
    """One feature's one-time and monthly ranges (converted when settings are given)."""
    source = doc["oneTimeCost"]["currency"]
    scale = settings.convert(1.0, source) if settings else 1.0
    currency = settings.currency if settings else source
    return FeatureSummary(
        app,
        doc["featureId"],
        doc["featureName"],
        Range.of(doc["oneTimeCost"]["total"], scale),
        Range.of(doc["monthlyImpact"]["total"], scale),
        currency,
    )


@dataclass(frozen=True)
class AppFeatures:
    """All features of one app, with their totals."""

    app: str
    features: tuple[FeatureSummary, ...]

    @property
    def one_time(self) -> Range:
        """Sum of the features' one-time ranges."""
        return sum((f.one_time for f in self.features), ZERO)

    @property
    def monthly(self) -> Range:
        """Sum of the features' monthly ranges."""
        return sum((f.monthly for f in self.features), ZERO)


def features_by_app(features: Iterable[LoadedFeature], settings: Settings | None = None) -> list[AppFeatures]:
    """Feature files grouped per app (sorted by app, then feature id)."""
    acc: dict[str, list[FeatureSummary]] = {}
    for feature in features:
        acc.setdefault(feature.app, []).append(summarize_feature(feature.app, feature.doc, settings))
    return [
        AppFeatures(app, tuple(sorted(items, key=lambda f: f.feature_id)))
        for app, items in sorted(acc.items())
    ]
