"""Chart series: cumulative sums, the min-max band, per-model bars, the calls timeline, thinning."""

from __future__ import annotations

import gc
import math
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np

from mity_cost.core.breakdown import series as series_module
from mity_cost.core.breakdown.series import (
    call_columns,
    call_timeline,
    cumulative_series,
    model_bars,
    session_series,
    thin_monotonic,
    thin_scatter,
)
from mity_cost.core.figures.summary import group_records, summarize
from mity_cost.core.live.snapshot import SessionView
from mity_cost.core.settings import Settings
from tests.core.breakdown_helpers import BIGGEST, WITH_INFRA, add_call, rewrite, session_file, view_of


def test_cumulative_curves_end_at_the_records_and_executions_totals(example_root: Path) -> None:
    view = view_of(session_file(example_root, WITH_INFRA), example_root)
    assert view.loaded is not None
    doc = view.loaded.doc
    series = cumulative_series(view, Settings())
    llm = math.fsum(r["cost"] for r in doc["llmUsage"])
    runs = doc["executionCosts"]
    final = series.final
    assert math.isclose(final.expected, llm + math.fsum(r["cost"]["expected"] for r in runs))
    assert math.isclose(final.min, llm + math.fsum(r["cost"]["min"] for r in runs))
    assert math.isclose(final.max, llm + math.fsum(r["cost"]["max"] for r in runs))
    total = summarize(view.loaded.figures, Settings()).total  # a consistent session: the ledger agrees
    assert all(
        math.isclose(a, b)
        for a, b in zip(
            (final.min, final.expected, final.max), (total.min, total.expected, total.max), strict=True
        )
    )
    assert series.events == len(doc["llmUsage"]) + len(runs)
    assert np.all(np.diff(series.x) >= 0)
    assert np.all(np.diff(series.expected) >= 0)
    assert np.all(series.min <= series.expected) and np.all(series.expected <= series.max)
    assert series.expected[0] == 0.0 and series.x[0] == series.x[1]  # rises from zero
    assert series.threshold == Settings().threshold


def test_executions_are_dated_when_first_seen(example_root: Path) -> None:
    path = session_file(example_root, WITH_INFRA)
    base = view_of(path, example_root)
    assert base.loaded is not None
    doc = base.loaded.doc
    first_call = min(r["timestamp"].timestamp() for r in doc["llmUsage"])
    seen = tuple(first_call - 1000.0 - i for i in range(len(doc["executionCosts"])))
    series = cumulative_series(replace(base, execution_seen_at=seen), Settings())
    runs = sorted(zip(seen, doc["executionCosts"], strict=True), key=lambda pair: pair[0])
    # Before the first call only the executions count: their band is at the start of the curves.
    before = series.x < first_call
    assert math.isclose(series.max[before][-1], math.fsum(run["cost"]["max"] for _, run in runs))
    assert series.x[1] == min(seen)
    unseen = cumulative_series(replace(base, execution_seen_at=()), Settings())
    assert unseen.x[-1] == max(
        doc["updatedAt"].timestamp(), max(r["timestamp"].timestamp() for r in doc["llmUsage"])
    )


def test_llm_disabled_and_currency(example_root: Path) -> None:
    view = view_of(session_file(example_root, WITH_INFRA), example_root)
    assert view.loaded is not None
    off = cumulative_series(view, Settings(llm_enabled=False))
    assert off.events == len(view.loaded.doc["executionCosts"])
    assert math.isclose(
        off.final.expected, summarize(view.loaded.figures, Settings(llm_enabled=False)).total_expected
    )
    usd = cumulative_series(view, Settings())
    eur = cumulative_series(view, Settings(currency="EUR", eur_per_usd=0.5))
    assert np.allclose(eur.expected, usd.expected * 0.5)


def test_model_bars_equal_group_records(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    bars = model_bars(view, Settings())
    groups = group_records(view.loaded.doc["llmUsage"], "model")
    assert bars.keys == tuple(g.key for g in groups) and bars.labels == tuple(g.label for g in groups)
    assert np.allclose(bars.costs, [g.cost for g in groups])
    assert list(bars.calls) == [g.calls for g in groups] and list(bars.tokens) == [g.tokens for g in groups]


def test_timeline_has_every_call_with_its_model(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    records = view.loaded.doc["llmUsage"]
    timeline = call_timeline(view, Settings())
    assert timeline.x.size == len(records) == timeline.total_calls and not timeline.thinned
    assert np.all(np.diff(timeline.x) >= 0)
    for x, y, model, index in zip(timeline.x, timeline.y, timeline.model, timeline.record, strict=True):
        record = records[int(index)]
        assert x == record["timestamp"].timestamp() and y == record["cost"]
        assert timeline.models[int(model)] == (
            record["model"] if isinstance(record["model"], str) else f"unknown:{record['model']['unknown']}"
        )


def test_long_sessions_are_thinned(example_root: Path) -> None:
    path = session_file(example_root, WITH_INFRA)

    def grow(doc: dict[str, object]) -> None:
        for i in range(3000):
            add_call(
                doc, cost=0.001 * (i % 97), timestamp=f"2026-11-22T16:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
            )

    rewrite(path, grow)
    view = view_of(path, example_root)
    assert view.loaded is not None
    full = cumulative_series(view, Settings())
    thin = cumulative_series(view, Settings(), limit=500)
    assert thin.x.size <= 500 and thin.events == full.events
    assert thin.final == full.final and thin.x[0] == full.x[0]
    assert np.all(np.diff(thin.expected) >= 0)
    timeline = call_timeline(view, Settings(), limit=400)
    assert (
        timeline.x.size <= 400
        and timeline.thinned
        and timeline.total_calls == len(view.loaded.doc["llmUsage"])
    )
    costs = np.array([r["cost"] for r in view.loaded.doc["llmUsage"]])
    assert timeline.y.max() == costs.max()  # the most expensive calls are kept


def test_thinning_helpers() -> None:
    assert list(thin_monotonic(5, 10)) == [0, 1, 2, 3, 4]
    picked = thin_monotonic(10_000, 100)
    assert picked[0] == 0 and picked[-1] == 9_999 and picked.size <= 100
    costs = np.arange(1000, dtype=np.float64)
    kept = thin_scatter(costs, 100)
    assert kept.size <= 100 and set(range(975, 1000)) <= set(kept.tolist())
    assert list(thin_scatter(costs[:50], 100)) == list(range(50))


def test_empty_and_unloaded_sessions(example_root: Path, tmp_path: Path) -> None:
    empty = session_series(
        view_of(session_file(example_root, "0d1e2f3a-4b5c-4d6e-8f7a-8b9c0d1e2f3a"), example_root), Settings()
    )
    assert empty.cumulative.x.size == 0 and empty.cumulative.final.expected == 0
    assert empty.cumulative.top == Settings().threshold
    assert empty.bars.keys == () and empty.timeline.x.size == 0
    none = session_series(SessionView("k", tmp_path, tmp_path, None), Settings())
    assert none.cumulative.events == 0 and none.timeline.total_calls == 0


def test_call_columns_are_cached_without_keeping_the_session_alive(example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    session = view.loaded
    assert session is not None
    columns = call_columns(session)
    assert call_columns(session) is columns  # computed once per loaded session
    assert len(columns) == len(session.doc["llmUsage"])
    alive = weakref.ref(session)
    key = id(session)
    del view, session
    gc.collect()
    assert alive() is None  # the cache held no strong reference
    assert key not in series_module._cache
