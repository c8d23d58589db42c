"""The charts show the series' data: cumulative curves with their band, threshold line, bars, calls."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from mity_cost.core.breakdown.series import session_series
from mity_cost.core.figures.summary import group_records
from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.settings import Settings
from mity_cost.core.spending.history import History
from mity_cost.core.spending.insights import compute_insights, trend_series
from mity_cost.ui.breakdown_model import format_amount
from mity_cost.ui.charts import TREND_TAB, CostCharts, model_color
from tests.core.breakdown_helpers import BIGGEST, WITH_INFRA, session_file, view_of
from tests.core.insights_helpers import NOW, make_world


def charts_for(qtbot: QtBot, root: Path, session_id: str, settings: Settings) -> CostCharts:
    view = view_of(session_file(root, session_id), root)
    assert view.loaded is not None
    charts = CostCharts()
    qtbot.addWidget(charts)
    charts.set_series(session_series(view, settings), settings.symbol, view.loaded.doc["llmUsage"])
    charts.refresh_all()
    charts.show()
    return charts


def test_cumulative_curves_band_and_threshold_line(qtbot: QtBot, example_root: Path) -> None:
    settings = Settings(threshold=2.5)
    view = view_of(session_file(example_root, WITH_INFRA), example_root)
    assert view.loaded is not None
    charts = charts_for(qtbot, example_root, WITH_INFRA, settings)
    chart = charts.cumulative
    x, expected = chart.expected_curve.getData()
    _, low = chart.min_curve.getData()
    _, high = chart.max_curve.getData()
    doc = view.loaded.doc
    # The curves are cumulative sums of every call and execution, in time order.
    events = sorted(
        [(r["timestamp"].timestamp(), r["cost"], r["cost"], r["cost"]) for r in doc["llmUsage"]]
        + [
            (seen, run["cost"]["min"], run["cost"]["expected"], run["cost"]["max"])
            for seen, run in zip(view.execution_seen_at, doc["executionCosts"], strict=True)
        ],
        key=lambda event: event[0],
    )
    assert np.allclose(x[1:], [e[0] for e in events])
    assert np.allclose(expected[1:], np.cumsum([e[2] for e in events]))
    assert np.allclose(low[1:], np.cumsum([e[1] for e in events]))
    assert np.allclose(high[1:], np.cumsum([e[3] for e in events]))
    assert expected[0] == low[0] == high[0] == 0.0
    assert np.all(low <= expected + 1e-12) and np.all(expected <= high + 1e-12)
    # The band is filled between the min and max curves.
    assert chart.band.curves == [chart.min_curve, chart.max_curve]
    outline = chart.band.path().toFillPolygon()
    band_x = [point.x() for point in outline]
    band_y = [point.y() for point in outline]
    assert min(band_x) == x[0] and max(band_x) == x[-1]
    assert min(band_y) == 0.0 and np.isclose(max(band_y), high.max())
    assert chart.threshold_line.value() == 2.5 and chart.threshold_line.angle == 0
    assert format_amount(2.5, "$") in chart.threshold_line.label.format
    y_range = chart.getPlotItem().viewRange()[1]
    assert y_range[1] >= max(float(high.max()), 2.5)


def test_bars_are_the_cost_per_model_with_labels(qtbot: QtBot, example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    charts = charts_for(qtbot, example_root, BIGGEST, Settings())
    groups = group_records(view.loaded.doc["llmUsage"], "model")
    bars = charts.by_model.bars.opts
    assert np.allclose(bars["width"], [g.cost for g in groups])
    assert list(bars["x0"]) == [0.0] * len(groups)
    ys = list(bars["y"])
    assert ys == sorted(ys, reverse=True)  # the most expensive at the top
    ticks = dict(charts.by_model.getPlotItem().getAxis("left")._tickLevels[0])
    assert [ticks[y] for y in ys] == [g.label for g in groups]
    shown = [t for t in charts.by_model.labels if t.isVisible()]
    assert len(shown) == len(groups)
    assert format_amount(groups[0].cost, "$") in shown[0].toPlainText()


def test_bars_shrink_without_dropping_items(qtbot: QtBot, example_root: Path) -> None:
    charts = charts_for(qtbot, example_root, BIGGEST, Settings())
    before = len(charts.by_model.labels)
    small = view_of(session_file(example_root, "f0e1d2c3-b4a5-4968-8776-655443322110"), example_root)
    assert small.loaded is not None
    charts.set_series(session_series(small, Settings()), "$", small.loaded.doc["llmUsage"])
    charts.refresh_all()
    assert len(charts.by_model.labels) == before
    assert sum(t.isVisible() for t in charts.by_model.labels) == 2
    assert sum(s.isVisible() for s in charts.timeline.scatters) == 2


def test_timeline_points_per_model_and_tooltip(qtbot: QtBot, example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    records = view.loaded.doc["llmUsage"]
    charts = charts_for(qtbot, example_root, BIGGEST, Settings())
    timeline = charts.timeline.timeline
    assert timeline is not None
    groups = group_records(records, "model")
    assert timeline.models == tuple(g.key for g in groups)
    total = 0
    for rank, group in enumerate(groups):
        scatter = charts.timeline.scatters[rank]
        x, y = scatter.getData()
        assert len(x) == group.calls
        assert math.isclose(float(np.sum(y)), group.cost)
        assert scatter.opts["brush"].color() == model_color(rank)
        total += len(x)
    assert total == len(records)
    first = charts.timeline.scatters[0].points()[0]
    tip = charts.timeline.describe(first.pos().x(), first.pos().y(), first.data())
    record = records[int(first.data())]
    assert (
        record.get("agent") or "(no agent)"
    ) in tip and f"{record['inputTokens'] + record['outputTokens']:,}" in tip
    assert groups[0].label in charts.timeline_legend.text()


def test_background_follows_the_palette(qtbot: QtBot, example_root: Path) -> None:
    charts = charts_for(qtbot, example_root, BIGGEST, Settings())
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    base = app.palette().color(QPalette.ColorRole.Base)
    assert charts.cumulative.backgroundBrush().color() == base


def test_only_the_visible_chart_is_updated_at_once(qtbot: QtBot, example_root: Path) -> None:
    view = view_of(session_file(example_root, BIGGEST), example_root)
    assert view.loaded is not None
    charts = CostCharts()
    qtbot.addWidget(charts)
    series = session_series(view, Settings())
    charts.set_series(series, "$", view.loaded.doc["llmUsage"])

    def drawn() -> tuple[object, object, object]:
        return charts.cumulative.series, charts.by_model.data, charts.timeline.timeline

    assert drawn() == (series.cumulative, None, None)  # only the visible chart is drawn
    charts.setCurrentIndex(2)
    assert drawn() == (series.cumulative, None, series.timeline)
    charts.setCurrentIndex(1)
    assert drawn() == (series.cumulative, series.bars, series.timeline)


def test_daily_trend_bars_ranges_and_month_projection(
    qtbot: QtBot, example_root: Path, tmp_path: Path
) -> None:
    world = make_world(example_root, tmp_path)
    try:
        insights = compute_insights(
            world.snapshot, Settings(), None, world.history, now=NOW, budget_path=world.budget_path
        )
    finally:
        world.history.close()
    charts = CostCharts()
    qtbot.addWidget(charts)
    charts.set_trend(insights)
    assert charts.trend.insights is None  # drawn when its tab is opened
    charts.setCurrentIndex(TREND_TAB)
    chart = charts.trend
    series = trend_series(insights)
    assert chart.series == series
    assert np.allclose(chart.bars.opts["x"], series.x)
    assert np.allclose(chart.bars.opts["height"], [p.cost.expected for p in insights.daily])
    assert np.allclose(chart.errors.opts["top"], np.subtract(series.high, series.expected))
    assert np.allclose(chart.errors.opts["bottom"], np.subtract(series.expected, series.low))
    month_x, month_y = chart.month_curve.getData()
    assert np.allclose(month_x, series.month_x) and np.allclose(month_y, series.month_y)
    _, low = chart.projection_low.getData()
    _, high = chart.projection_high.getData()
    assert insights.month is not None
    assert (low[-1], high[-1]) == (insights.month.low, insights.month.high)
    assert format_amount(insights.month.projected, "$") in chart.getPlotItem().titleLabel.text
    # The month line has its own scale on the right: its top fits the projection's range.
    assert chart.month_view.viewRange()[1][1] >= insights.month.high


def test_daily_trend_without_history(qtbot: QtBot, tmp_path: Path) -> None:
    with History(tmp_path / "h.sqlite3") as history:
        insights = compute_insights(Snapshot(), Settings(), None, history)
    charts = CostCharts()
    qtbot.addWidget(charts)
    charts.setCurrentIndex(TREND_TAB)
    charts.set_trend(insights)
    assert len(charts.trend.bars.opts["height"]) == len(insights.daily)
    assert charts.trend.projection_curve.getData()[0] is None or not len(
        charts.trend.projection_curve.getData()[0]
    )
    assert "no projection" in charts.trend.getPlotItem().titleLabel.text
