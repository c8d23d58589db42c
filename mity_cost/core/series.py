"""Chart data for the details window as numpy arrays, computed once per update (Qt-free).

Three series: the cumulative cost over time with its min-max band (LLM calls at their timestamps,
executions at the moment they were first seen, since they carry no timestamp), the cost per model,
and every call's cost at its timestamp (the ADR's "event costs").  Long series are thinned so a
100,000-call session still draws at once: the cumulative curves keep evenly spaced points (they are
monotonic, so nothing visible is lost) and the call timeline keeps the most expensive calls plus an
even sample of the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mity_cost.core.documents import model_key, model_label
from mity_cost.core.settings import Settings
from mity_cost.core.state import SessionView
from mity_cost.core.summary import Range, group_records

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_LINE_POINTS = 4000
"""Cumulative curves are thinned to about this many points."""
MAX_SCATTER_POINTS = 20000
"""The call timeline shows at most this many calls."""


def _empty() -> FloatArray:
    return np.zeros(0, dtype=np.float64)


@dataclass(frozen=True)
class CumulativeSeries:
    """Cumulative min / expected / max cost at each time (epoch seconds, ascending)."""

    x: FloatArray
    min: FloatArray
    expected: FloatArray
    max: FloatArray
    threshold: float
    events: int
    """How many cost events (calls and executions) the curves sum, before thinning."""

    @property
    def final(self) -> Range:
        """The last point of the curves (zero when there is none)."""
        if self.x.size == 0:
            return Range(0.0, 0.0, 0.0)
        return Range(float(self.min[-1]), float(self.expected[-1]), float(self.max[-1]))

    @property
    def top(self) -> float:
        """The highest value the chart must show: the max curve or the threshold."""
        peak = float(self.max.max()) if self.max.size else 0.0
        return max(peak, self.threshold)


@dataclass(frozen=True)
class ModelBars:
    """LLM cost per model, most expensive first."""

    keys: tuple[str, ...]
    labels: tuple[str, ...]
    costs: FloatArray
    calls: IntArray
    tokens: IntArray


@dataclass(frozen=True)
class CallTimeline:
    """Each shown call: time, cost, the index of its model in ``models`` and of its record."""

    x: FloatArray
    y: FloatArray
    model: IntArray
    record: IntArray
    models: tuple[str, ...]
    """Model keys, in the order of :class:`ModelBars` (most expensive first)."""
    labels: tuple[str, ...]
    total_calls: int

    @property
    def thinned(self) -> bool:
        """True when only part of the calls is shown."""
        return int(self.x.size) < self.total_calls


@dataclass(frozen=True)
class SessionSeries:
    """All the chart data of one session."""

    cumulative: CumulativeSeries
    bars: ModelBars
    timeline: CallTimeline


def thin_monotonic(n: int, limit: int) -> IntArray:
    """Indices of at most ``limit`` evenly spaced points of ``n``, always with the first and the last."""
    if n <= limit or limit < 2:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def thin_scatter(costs: FloatArray, limit: int) -> IntArray:
    """Indices of at most ``limit`` points: the most expensive quarter plus an even sample of the rest."""
    n = int(costs.size)
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    top_count = limit // 4
    order = np.argsort(-costs, kind="stable")
    top = order[:top_count]
    rest = np.sort(order[top_count:])
    step = rest[np.linspace(0, rest.size - 1, limit - top_count).round().astype(np.int64)]
    return np.unique(np.concatenate([top, step])).astype(np.int64)


def _times(view: SessionView) -> tuple[FloatArray, FloatArray]:
    """Epoch seconds of each LLM call and of each execution (when first seen)."""
    assert view.loaded is not None
    doc = view.loaded.doc
    records = doc["llmUsage"]
    calls = np.fromiter((r["timestamp"].timestamp() for r in records), dtype=np.float64, count=len(records))
    runs = len(doc["executionCosts"])
    fallback = doc["updatedAt"].timestamp()
    seen = view.execution_seen_at
    execs = np.fromiter(
        (seen[i] if i < len(seen) and seen[i] > 0 else fallback for i in range(runs)),
        dtype=np.float64,
        count=runs,
    )
    return calls, execs


def cumulative_series(
    view: SessionView, settings: Settings, times: tuple[FloatArray, FloatArray] | None = None,
    *, limit: int = MAX_LINE_POINTS,
) -> CumulativeSeries:
    """The cumulative cost curves of a session (LLM calls left out when LLM costs are disabled)."""
    if view.loaded is None:
        empty = _empty()
        return CumulativeSeries(empty, empty, empty, empty, settings.threshold, 0)
    doc = view.loaded.doc
    scale = settings.convert(1.0, doc["currency"])
    call_times, exec_times = times if times is not None else _times(view)
    runs = doc["executionCosts"]
    parts_x = [exec_times]
    parts = [
        np.fromiter((r["cost"]["min"] for r in runs), dtype=np.float64, count=len(runs)),
        np.fromiter((r["cost"]["expected"] for r in runs), dtype=np.float64, count=len(runs)),
        np.fromiter((r["cost"]["max"] for r in runs), dtype=np.float64, count=len(runs)),
    ]
    if settings.llm_enabled:
        records = doc["llmUsage"]
        costs = np.fromiter((r["cost"] for r in records), dtype=np.float64, count=len(records))
        parts_x.insert(0, call_times)
        parts = [np.concatenate([costs, p]) for p in parts]
    x = np.concatenate(parts_x)
    if x.size == 0:
        empty = _empty()
        return CumulativeSeries(empty, empty, empty, empty, settings.threshold, 0)
    order = np.argsort(x, kind="stable")
    x = x[order]
    sums = [np.cumsum(p[order]) * scale for p in parts]
    # Start from zero just before the first event, so the curve rises from nothing.
    x = np.concatenate([[x[0]], x])
    sums = [np.concatenate([[0.0], s]) for s in sums]
    keep = thin_monotonic(int(x.size), limit)
    return CumulativeSeries(
        x[keep], sums[0][keep], sums[1][keep], sums[2][keep], settings.threshold, int(order.size)
    )


def model_bars(view: SessionView, settings: Settings) -> ModelBars:
    """LLM cost per model (in the display currency), most expensive first."""
    if view.loaded is None:
        return ModelBars((), (), _empty(), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    doc = view.loaded.doc
    groups = group_records(doc["llmUsage"], "model", settings.convert(1.0, doc["currency"]))
    return ModelBars(
        tuple(g.key for g in groups),
        tuple(g.label for g in groups),
        np.array([g.cost for g in groups], dtype=np.float64),
        np.array([g.calls for g in groups], dtype=np.int64),
        np.array([g.tokens for g in groups], dtype=np.int64),
    )


def call_timeline(
    view: SessionView, settings: Settings, bars: ModelBars | None = None,
    times: tuple[FloatArray, FloatArray] | None = None, *, limit: int = MAX_SCATTER_POINTS,
) -> CallTimeline:
    """Each call's cost at its timestamp, with its model (thinned to ``limit`` calls)."""
    bars = bars if bars is not None else model_bars(view, settings)
    if view.loaded is None:
        return CallTimeline(_empty(), _empty(), np.zeros(0, np.int64), np.zeros(0, np.int64), (), (), 0)
    doc = view.loaded.doc
    records = doc["llmUsage"]
    scale = settings.convert(1.0, doc["currency"])
    call_times = times[0] if times is not None else _times(view)[0]
    costs = np.fromiter((r["cost"] for r in records), dtype=np.float64, count=len(records)) * scale
    index_of = {key: i for i, key in enumerate(bars.keys)}
    models = np.fromiter((index_of[model_key(r["model"])] for r in records), dtype=np.int64, count=len(records))
    keep = thin_scatter(costs, limit)
    keep = keep[np.argsort(call_times[keep], kind="stable")]
    labels = tuple(bars.labels) if bars.labels else tuple(model_label(k) for k in bars.keys)
    return CallTimeline(
        call_times[keep], costs[keep], models[keep], keep, bars.keys, labels, len(records)
    )


def session_series(view: SessionView, settings: Settings) -> SessionSeries:
    """Every chart's data for one session, from one pass over its timestamps."""
    bars = model_bars(view, settings)
    if view.loaded is None:
        return SessionSeries(cumulative_series(view, settings), bars, call_timeline(view, settings, bars))
    times = _times(view)
    return SessionSeries(
        cumulative_series(view, settings, times),
        bars,
        call_timeline(view, settings, bars, times),
    )
