"""Chart data for the details window as numpy arrays, computed once per update (Qt-free).

Three series: the cumulative cost over time with its min-max band (LLM calls at their timestamps,
executions at the moment they were first seen, since they carry no timestamp), the cost per model,
and every call's cost at its timestamp (the ADR's "event costs").  Long series are thinned so a
100,000-call session still draws at once: the cumulative curves keep evenly spaced points (they are
monotonic, so nothing visible is lost) and the call timeline keeps the most expensive calls plus an
even sample of the others.
"""

from __future__ import annotations

import functools
import operator
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mity_cost.core.factory.documents import LlmUsageRecord, ModelName, model_key, model_label
from mity_cost.core.factory.loading import LoadedSession
from mity_cost.core.figures.summary import NONE_LABEL
from mity_cost.core.live.snapshot import SessionView
from mity_cost.core.money import Range
from mity_cost.core.settings import Settings

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CallColumns:
    """A session's LLM records as columns (one entry per record, in file order).

    ``model`` and ``agent`` are codes into ``model_keys`` / ``agents`` (by first appearance).
    Built once per loaded session (:func:`call_columns` caches it), shared by the breakdown tree and
    the charts, so grouping a 100,000-call session is a few numpy operations.
    """

    time: FloatArray
    cost: FloatArray
    input_tokens: IntArray
    output_tokens: IntArray
    model: IntArray
    agent: IntArray
    model_keys: tuple[str, ...]
    models: tuple[ModelName, ...]
    agents: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.cost.size)


def _codes(values: list[str]) -> tuple[IntArray, tuple[str, ...]]:
    index: dict[str, int] = {}
    codes = [index.setdefault(v, len(index)) for v in values]
    return np.array(codes, dtype=np.int64), tuple(index)


_CHUNK = 16_384
"""Records read per C-level pass: each pass holds the interpreter for a few milliseconds only."""


def _column(
    records: Sequence[LlmUsageRecord], read: Callable[[LlmUsageRecord], Any], dtype: type[Any]
) -> npt.NDArray[Any]:
    """One field of every record as an array, read ``_CHUNK`` records at a time."""
    parts = [
        np.fromiter(map(read, records[start : start + _CHUNK]), dtype=dtype)
        for start in range(0, len(records), _CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _timestamp(record: LlmUsageRecord) -> float:
    return record["timestamp"].timestamp()


def _build_columns(records: Sequence[LlmUsageRecord]) -> CallColumns:
    n = len(records)
    raw_models = list(map(operator.itemgetter("model"), records))
    keys = [m if m.__class__ is str else model_key(m) for m in raw_models]
    model_codes, model_keys = _codes(keys)
    first = dict(zip(keys, raw_models, strict=True)) if n else {}
    agent_names = [a if isinstance(a := r.get("agent"), str) and a else NONE_LABEL for r in records]
    agent_codes, agents = _codes(agent_names)
    return CallColumns(
        time=_column(records, _timestamp, np.float64),
        cost=_column(records, operator.itemgetter("cost"), np.float64),
        input_tokens=_column(records, operator.itemgetter("inputTokens"), np.int64),
        output_tokens=_column(records, operator.itemgetter("outputTokens"), np.int64),
        model=model_codes,
        agent=agent_codes,
        model_keys=model_keys,
        models=tuple(first[k] for k in model_keys),
        agents=agents,
    )


_cache: dict[int, tuple[weakref.ref[LoadedSession], CallColumns]] = {}
_cache_lock = threading.RLock()  # re-entrant: a session freed while it is held calls _forget


def _forget(key: int, ref: weakref.ref[LoadedSession]) -> None:
    """A cached session was freed: drop its columns (only if the entry is still that session's)."""
    with _cache_lock:
        if key in _cache and _cache[key][0] is ref:
            del _cache[key]


def call_columns(session: LoadedSession) -> CallColumns:
    """The session's records as columns, computed once per loaded session.

    Cached by identity with a weak reference: the cache never keeps a session alive, so a replaced
    100,000-record document is freed as soon as its last user lets go of it (a long-lived copy would
    add its records to every full garbage collection, which stalls every thread, the GUI's too).
    """
    key = id(session)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0]() is session:
            return hit[1]
    columns = _build_columns(session.doc["llmUsage"])
    ref = weakref.ref(session, functools.partial(_forget, key))
    with _cache_lock:
        _cache[key] = (ref, columns)
    return columns


MAX_LINE_POINTS = 2000
"""Cumulative curves are thinned to about this many points."""
MAX_SCATTER_POINTS = 5000
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


def execution_times(view: SessionView) -> FloatArray:
    """Epoch seconds of each execution: when it was first seen (else the file's ``updatedAt``)."""
    assert view.loaded is not None
    doc = view.loaded.doc
    runs = len(doc["executionCosts"])
    fallback = doc["updatedAt"].timestamp()
    seen = view.execution_seen_at
    return np.fromiter(
        (seen[i] if i < len(seen) and seen[i] > 0 else fallback for i in range(runs)),
        dtype=np.float64,
        count=runs,
    )


def cumulative_series(
    view: SessionView, settings: Settings, *, limit: int = MAX_LINE_POINTS
) -> CumulativeSeries:
    """The cumulative cost curves of a session (LLM calls left out when LLM costs are disabled)."""
    if view.loaded is None:
        empty = _empty()
        return CumulativeSeries(empty, empty, empty, empty, settings.threshold, 0)
    doc = view.loaded.doc
    scale = settings.convert(1.0, doc["currency"])
    runs = doc["executionCosts"]
    parts_x = [execution_times(view)]
    parts = [
        np.fromiter((r["cost"]["min"] for r in runs), dtype=np.float64, count=len(runs)),
        np.fromiter((r["cost"]["expected"] for r in runs), dtype=np.float64, count=len(runs)),
        np.fromiter((r["cost"]["max"] for r in runs), dtype=np.float64, count=len(runs)),
    ]
    if settings.llm_enabled:
        columns = call_columns(view.loaded)
        parts_x.insert(0, columns.time)
        parts = [np.concatenate([columns.cost, p]) for p in parts]
    x = np.concatenate(parts_x)
    if x.size == 0:
        empty = _empty()
        return CumulativeSeries(empty, empty, empty, empty, settings.threshold, 0)
    order = np.argsort(x, kind="stable")
    x = x[order]
    sums = [np.cumsum(p[order]) * scale for p in parts]
    # Start from zero at the first event, so the curve rises from nothing.
    x = np.concatenate([[x[0]], x])
    sums = [np.concatenate([[0.0], s]) for s in sums]
    keep = thin_monotonic(int(x.size), limit)
    return CumulativeSeries(
        x[keep], sums[0][keep], sums[1][keep], sums[2][keep], settings.threshold, int(order.size)
    )


def model_bars(view: SessionView, settings: Settings) -> ModelBars:
    """LLM cost per model (in the display currency), most expensive first (as ``group_records``)."""
    if view.loaded is None:
        return ModelBars((), (), _empty(), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    columns = call_columns(view.loaded)
    count = len(columns.model_keys)
    scale = settings.convert(1.0, view.loaded.doc["currency"])
    costs = (np.bincount(columns.model, weights=columns.cost, minlength=count) * scale).astype(np.float64)
    calls = np.bincount(columns.model, minlength=count).astype(np.int64)
    tokens = np.bincount(
        columns.model,
        weights=(columns.input_tokens + columns.output_tokens).astype(np.float64),
        minlength=count,
    ).astype(np.int64)
    labels = [model_label(m) for m in columns.models]
    order = sorted(range(count), key=lambda i: (-costs[i], labels[i]))
    return ModelBars(
        tuple(columns.model_keys[i] for i in order),
        tuple(labels[i] for i in order),
        costs[order] if count else _empty(),
        calls[order] if count else np.zeros(0, dtype=np.int64),
        tokens[order] if count else np.zeros(0, dtype=np.int64),
    )


def call_timeline(
    view: SessionView, settings: Settings, bars: ModelBars | None = None, *, limit: int = MAX_SCATTER_POINTS
) -> CallTimeline:
    """Each call's cost at its timestamp, with its model's rank in ``bars`` (thinned to ``limit`` calls)."""
    bars = bars if bars is not None else model_bars(view, settings)
    if view.loaded is None:
        return CallTimeline(_empty(), _empty(), np.zeros(0, np.int64), np.zeros(0, np.int64), (), (), 0)
    columns = call_columns(view.loaded)
    scale = settings.convert(1.0, view.loaded.doc["currency"])
    costs = columns.cost * scale
    rank = {key: i for i, key in enumerate(bars.keys)}
    ranks = np.array([rank[key] for key in columns.model_keys], dtype=np.int64)
    models = ranks[columns.model] if len(columns) else np.zeros(0, dtype=np.int64)
    keep = thin_scatter(costs, limit)
    keep = keep[np.argsort(columns.time[keep], kind="stable")]
    return CallTimeline(
        columns.time[keep], costs[keep], models[keep], keep, bars.keys, bars.labels, len(columns)
    )


def session_series(view: SessionView, settings: Settings) -> SessionSeries:
    """Every chart's data for one session."""
    bars = model_bars(view, settings)
    return SessionSeries(cumulative_series(view, settings), bars, call_timeline(view, settings, bars))
