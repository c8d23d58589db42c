"""The details window's pyqtgraph charts: cumulative cost, cost by model, the calls timeline and the
daily trend.

The data comes precomputed from ``core.series`` (numpy arrays, thinned for long sessions) and
``core.insights`` (the history's daily totals and the month projection); the charts only hand it to
existing plot items (``setData``), so an update stays cheap.  Backgrounds follow the window palette.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QPainterPath, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QTabWidget, QVBoxLayout, QWidget

import pyqtgraph as pg  # isort: skip - after PySide6, so pyqtgraph binds to it

from mity_cost.core.breakdown.series import CallTimeline, CumulativeSeries, ModelBars, SessionSeries
from mity_cost.core.factory.documents import LlmUsageRecord
from mity_cost.core.money import format_money
from mity_cost.core.spending.insights import Insights, TrendSeries, trend_series
from mity_cost.ui.breakdown_model import format_amount

MODEL_COLORS: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#3949ab",
    "#00897b",
)
"""One colour per model, by its rank in the cost-by-model chart (the same in every chart)."""
EXPECTED_COLOR = "#1e88e5"
BAND_COLOR = (30, 136, 229, 60)
THRESHOLD_COLOR = "#d32f2f"
DAY_COLOR = "#90caf9"
MONTH_COLOR = "#6a1b9a"
PROJECTION_BAND = (106, 27, 154, 45)
DAY_SECONDS = 86400.0


def model_color(rank: int) -> QColor:
    """The colour of the model at this rank (most expensive first)."""
    return QColor(MODEL_COLORS[rank % len(MODEL_COLORS)])


def _palette() -> QPalette:
    app = QApplication.instance()
    return app.palette() if isinstance(app, QApplication) else QPalette()


class _Plot(pg.PlotWidget):  # type: ignore[misc]
    """A plot widget whose background and axes follow the application palette."""

    def __init__(self, parent: QWidget | None = None, **kwargs: Any) -> None:
        self._ready = False
        super().__init__(parent, **kwargs)
        self._ready = True
        self.setMinimumHeight(160)
        self.apply_palette()

    def apply_palette(self) -> None:
        """Use the palette's base colour as background and its text colour for the axes."""
        palette = _palette()
        self.setBackground(palette.color(QPalette.ColorRole.Base))
        text = palette.color(QPalette.ColorRole.Text)
        grid = palette.color(QPalette.ColorRole.Mid)
        for name in ("left", "bottom"):
            axis = self.getPlotItem().getAxis(name)
            axis.setPen(pg.mkPen(grid))
            axis.setTextPen(pg.mkPen(text))
            axis.enableAutoSIPrefix(False)  # "0.0006", not "600 (x0.001)", for amounts of money

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange and self._ready:
            self.apply_palette()
        super().changeEvent(event)


def band_path(series: CumulativeSeries) -> QPainterPath:
    """The min-max band as one closed polygon: along the min curve, back along the max curve."""
    if series.x.size == 0:
        return QPainterPath()
    xs = np.concatenate([series.x, series.x[::-1]])
    ys = np.concatenate([series.min, series.max[::-1]])
    path: QPainterPath = pg.arrayToQPath(xs, ys, connect="all")
    path.closeSubpath()
    return path


class CumulativeChart(_Plot):
    """Cumulative expected cost over time, the min-max band around it and the threshold line.

    Without grid lines: they cost most of a repaint (the chart is redrawn on every update of the
    session, and a busy session is updated every second or so)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"bottom": pg.DateAxisItem()})
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        # Bottom right: a cumulative curve rises to the right, and the threshold's label sits top left.
        self.legend = item.addLegend(offset=(-10, -10))
        band_pen = pg.mkPen(QColor(*BAND_COLOR[:3], 140), width=1)
        self.min_curve = item.plot(pen=band_pen, name=None)
        self.max_curve = item.plot(pen=band_pen, name=None)
        self.band = pg.FillBetweenItem(self.min_curve, self.max_curve, brush=pg.mkBrush(*BAND_COLOR))
        # ``set_series`` gives the band its outline straight from the arrays (one polygon); left
        # to follow its curves, it would rebuild it from their painter paths, twice per update.
        for curve in (self.min_curve, self.max_curve):
            curve.sigPlotChanged.disconnect(self.band.curveChanged)
        item.addItem(self.band)
        self.expected_curve = item.plot(
            pen=pg.mkPen(EXPECTED_COLOR, width=2), name="expected", antialias=True
        )
        # A stand-in for the band in the legend (a legend cannot draw a FillBetweenItem).
        self._band_sample = pg.BarGraphItem(
            x=[0.0], height=[0.0], width=1.0, pen=band_pen, brush=pg.mkBrush(*BAND_COLOR)
        )
        self.legend.addItem(self._band_sample, "min – max")
        self.threshold_line = pg.InfiniteLine(
            pos=1.0,
            angle=0,
            pen=pg.mkPen(THRESHOLD_COLOR, width=1.5, style=Qt.PenStyle.DashLine),
            label="threshold",
            labelOpts={"position": 0.05, "color": THRESHOLD_COLOR, "anchors": [(0, 1), (0, 1)]},
        )
        item.addItem(self.threshold_line)
        self.series: CumulativeSeries | None = None

    def set_series(self, series: CumulativeSeries, symbol: str, note: str = "") -> None:
        """Show new curves (the arrays are used as they are)."""
        self.series = series
        self.min_curve.setData(series.x, series.min)
        self.max_curve.setData(series.x, series.max)
        self.expected_curve.setData(series.x, series.expected)
        self.band.setPath(band_path(series))
        self.threshold_line.setValue(series.threshold)
        self.threshold_line.label.setFormat(f"threshold {format_amount(series.threshold, symbol)}")
        item = self.getPlotItem()
        item.setLabel("left", f"cumulative cost ({symbol})")
        title = note or (f"{series.events:,} cost events" if series.events else "no costs yet")
        item.setTitle(title, size="9pt")
        item.setYRange(0.0, max(series.top, 1e-6) * 1.15, padding=0)  # room for the line's label
        if series.x.size:
            item.enableAutoRange(axis="x")


class ModelBarChart(_Plot):
    """LLM cost per model: horizontal bars with their labels, most expensive at the top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        item = self.getPlotItem()
        item.showGrid(x=True, y=False, alpha=0.2)
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.6, width=[])
        item.addItem(self.bars)
        self.labels: list[pg.TextItem] = []
        self.data: ModelBars | None = None

    def set_bars(self, bars: ModelBars, symbol: str) -> None:
        """Show new bars."""
        self.data = bars
        item = self.getPlotItem()
        count = len(bars.keys)
        ys = [count - 1 - i for i in range(count)]
        brushes = [pg.mkBrush(model_color(i)) for i in range(count)]
        pens = [pg.mkPen(model_color(i).darker(130)) for i in range(count)]
        self.bars.setOpts(
            x0=[0.0] * count, y=ys, height=0.6, width=list(bars.costs), brushes=brushes, pens=pens
        )
        item.getAxis("left").setTicks([[(y, label) for y, label in zip(ys, bars.labels, strict=True)]])
        # Text items are reused, never removed: removing pyqtgraph items and dropping them corrupts
        # memory under PySide6 6.12 (seen as a crash at exit).
        color = _palette().color(QPalette.ColorRole.Text)
        while len(self.labels) < count:
            text = pg.TextItem("", color=color, anchor=(0, 0.5))
            item.addItem(text)
            self.labels.append(text)
        for index, text in enumerate(self.labels):
            if index >= count:
                text.setVisible(False)
                continue
            cost, calls = float(bars.costs[index]), int(bars.calls[index])
            text.setText(f" {format_amount(cost, symbol)} · {calls:,} call{'s' if calls != 1 else ''}")
            text.setColor(color)
            text.setPos(cost, ys[index])
            text.setVisible(True)
        item.setLabel("bottom", f"LLM cost ({symbol})")
        top = float(bars.costs.max()) if count else 1.0
        item.setXRange(0.0, max(top, 1e-6) * 1.35, padding=0)
        item.setYRange(-0.6, max(count, 1) - 0.4, padding=0)


class CallTimelineChart(_Plot):
    """Each call's cost at its timestamp, one colour per model, with a tooltip per point.

    The model colours are explained by ``legend_text()`` (shown beside the chart by the window) and
    by the cost-by-model chart, which uses the same colours.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"bottom": pg.DateAxisItem()})
        item = self.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setMenuEnabled(False)
        self.scatters: list[pg.ScatterPlotItem] = []
        """One scatter item per model rank, reused across updates (never removed, see set_bars)."""
        self.timeline: CallTimeline | None = None
        self._records: Sequence[LlmUsageRecord] = ()
        self._symbol = "$"

    def set_timeline(self, timeline: CallTimeline, symbol: str, records: Sequence[LlmUsageRecord]) -> None:
        """Show new points (one scatter item per model)."""
        self.timeline = timeline
        self._records = records
        self._symbol = symbol
        item = self.getPlotItem()
        count = len(timeline.models)
        while len(self.scatters) < count:
            scatter = pg.ScatterPlotItem(size=7, pen=None, hoverable=True, hoverSize=11, tip=self.describe)
            item.addItem(scatter)
            self.scatters.append(scatter)
        for rank, scatter in enumerate(self.scatters):
            mask = timeline.model == rank
            if rank >= count or not mask.any():
                scatter.setData(x=[], y=[])
                scatter.setVisible(False)
                continue
            scatter.setData(
                x=timeline.x[mask],
                y=timeline.y[mask],
                data=timeline.record[mask],
                brush=pg.mkBrush(model_color(rank)),
                size=7,
                pen=None,
            )
            scatter.setVisible(True)
        item.setLabel("left", f"cost per call ({symbol})")
        shown = int(timeline.x.size)
        if timeline.thinned:
            title = f"{shown:,} of {timeline.total_calls:,} calls (the most expensive and an even sample)"
        else:
            title = f"{shown:,} calls" if shown else "no LLM calls yet"
        item.setTitle(title, size="9pt")
        if shown:
            item.enableAutoRange()

    def legend_text(self) -> str:
        """Rich text naming each model in its colour."""
        timeline = self.timeline
        if timeline is None:
            return ""
        return "&nbsp;&nbsp; ".join(
            f"<span style='color:{model_color(rank).name()}'>●</span>&nbsp;{escape(label)}"
            for rank, label in enumerate(timeline.labels)
        )

    def describe(self, x: float, y: float, data: Any) -> str:
        """The tooltip of one point: model, agent, time, tokens and cost."""
        try:
            record = self._records[int(data)]
        except (IndexError, TypeError, ValueError):
            return f"{format_amount(y, self._symbol)}"
        when = datetime.fromtimestamp(x).strftime("%Y-%m-%d %H:%M:%S")
        model = record["model"]
        label = model if isinstance(model, str) else next(iter(model.values()), "unknown")
        agent = record.get("agent") or "(no agent)"
        tokens = record["inputTokens"] + record["outputTokens"]
        return f"{label} · {agent}\n{when}\n{tokens:,} tokens · {format_amount(y, self._symbol)}"


class DailyTrendChart(_Plot):
    """Spending per day (bars, expected with its min-max) over the last days, and this month's
    cumulative spending with its projected month end (line, right axis).

    The two share the time axis but not the scale: a month's total dwarfs a day's.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, axisItems={"bottom": pg.DateAxisItem()})
        item = self.getPlotItem()
        item.showGrid(x=False, y=True, alpha=0.2)
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        self.legend = item.addLegend(offset=(10, 10))
        self.bars = pg.BarGraphItem(
            x=[],
            height=[],
            width=DAY_SECONDS * 0.7,
            brush=pg.mkBrush(DAY_COLOR),
            pen=pg.mkPen(EXPECTED_COLOR),
        )
        item.addItem(self.bars)
        self.errors = pg.ErrorBarItem(
            x=np.zeros(0),
            y=np.zeros(0),
            top=np.zeros(0),
            bottom=np.zeros(0),
            beam=DAY_SECONDS * 0.25,
            pen=pg.mkPen(EXPECTED_COLOR, width=1),
        )
        item.addItem(self.errors)
        self.legend.addItem(self.bars, "per day (min – max)")
        # The month line lives in a second view box on the right axis, linked on x.
        self.month_view = pg.ViewBox()
        self.month_view.setMouseEnabled(x=False, y=False)
        item.showAxis("right")
        item.scene().addItem(self.month_view)
        right = item.getAxis("right")
        right.linkToView(self.month_view)
        self.month_view.setXLink(item.vb)
        item.vb.sigResized.connect(self._sync_views)
        self.month_curve = pg.PlotDataItem(pen=pg.mkPen(MONTH_COLOR, width=2), antialias=True)
        dash = pg.mkPen(MONTH_COLOR, width=2, style=Qt.PenStyle.DashLine)
        self.projection_curve = pg.PlotDataItem(pen=dash, antialias=True)
        band_pen = pg.mkPen(QColor(*PROJECTION_BAND[:3], 110), width=1)
        self.projection_low = pg.PlotDataItem(pen=band_pen)
        self.projection_high = pg.PlotDataItem(pen=band_pen)
        self.projection_band = pg.FillBetweenItem(
            self.projection_low, self.projection_high, brush=pg.mkBrush(*PROJECTION_BAND)
        )
        for curve in (self.projection_band, self.projection_low, self.projection_high):
            self.month_view.addItem(curve)
        self.month_view.addItem(self.month_curve)
        self.month_view.addItem(self.projection_curve)
        self.legend.addItem(self.month_curve, "this month so far")
        self.legend.addItem(self.projection_curve, "projected month end (90 % range)")
        self.series: TrendSeries | None = None
        self.insights: Insights | None = None
        self.apply_palette()

    def apply_palette(self) -> None:
        super().apply_palette()
        if getattr(self, "month_view", None) is None:
            return
        palette = _palette()
        axis = self.getPlotItem().getAxis("right")
        axis.setPen(pg.mkPen(palette.color(QPalette.ColorRole.Mid)))
        axis.setTextPen(pg.mkPen(MONTH_COLOR))
        axis.enableAutoSIPrefix(False)

    def _sync_views(self) -> None:
        vb = self.getPlotItem().vb
        self.month_view.setGeometry(vb.sceneBoundingRect())
        self.month_view.linkedViewChanged(vb, self.month_view.XAxis)

    def set_trend(self, insights: Insights) -> None:
        """Show the daily series and the month projection of one computation."""
        self.insights = insights
        series = self.series = trend_series(insights)
        symbol = insights.symbol
        x = np.asarray(series.x, dtype=float)
        expected = np.asarray(series.expected, dtype=float)
        low = np.asarray(series.low, dtype=float)
        high = np.asarray(series.high, dtype=float)
        self.bars.setOpts(x=x, height=expected, width=DAY_SECONDS * 0.7)
        self.errors.setData(x=x, y=expected, top=high - expected, bottom=expected - low)
        self.month_curve.setData(
            np.asarray(series.month_x, dtype=float), np.asarray(series.month_y, dtype=float)
        )
        for curve, values in (
            (self.projection_curve, series.projection_y),
            (self.projection_low, series.projection_low),
            (self.projection_high, series.projection_high),
        ):
            curve.setData(np.asarray(series.projection_x, dtype=float), np.asarray(values, dtype=float))
        item = self.getPlotItem()
        item.setLabel("left", f"per day ({symbol})")
        item.setLabel("right", f"this month ({symbol})", color=MONTH_COLOR)
        month = insights.month
        if month is None:
            title = "no spending history yet"
        elif month.method == "none":
            title = f"{format_money(month.spent, symbol)} this month so far · no projection yet"
        else:
            title = (
                f"month end ≈ {format_money(month.projected, symbol)} "
                f"({format_money(month.low, symbol)}–{format_money(month.high, symbol)}), "
                f"confidence {month.confidence_label}"
            )
        item.setTitle(title, size="9pt")
        top = float(high.max()) if high.size else 0.0
        item.setYRange(0.0, max(top, 1e-6) * 1.25, padding=0)
        month_top = max([*series.month_y, *series.projection_high, 0.0])
        self.month_view.setYRange(0.0, max(month_top, 1e-6) * 1.1, padding=0)
        ends = [v for v in (*series.x, *series.month_x, *series.projection_x) if np.isfinite(v)]
        if ends:
            item.setXRange(min(ends) - DAY_SECONDS * 0.6, max(ends) + DAY_SECONDS * 0.6, padding=0)
        self._sync_views()


TREND_TAB = 3
"""The index of the daily trend tab."""


class CostCharts(QTabWidget):
    """The charts as tabs: three of the session on screen, and the daily trend of the history."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDocumentMode(True)
        self.cumulative = CumulativeChart()
        self.by_model = ModelBarChart()
        self.timeline = CallTimelineChart()
        self.addTab(self.cumulative, "Cumulative cost")
        self.addTab(self.by_model, "Cost by model")
        timeline_tab = QWidget()
        layout = QVBoxLayout(timeline_tab)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.setSpacing(2)
        layout.addWidget(self.timeline, 1)
        self.timeline_legend = QLabel()
        self.timeline_legend.setTextFormat(Qt.TextFormat.RichText)
        self.timeline_legend.setWordWrap(True)
        self.timeline_legend.setContentsMargins(8, 0, 8, 0)
        layout.addWidget(self.timeline_legend)
        self.addTab(timeline_tab, "Calls timeline")
        self.setTabToolTip(0, "Cost so far over time, with its min-max band and the threshold")
        self.setTabToolTip(1, "LLM cost per model")
        self.trend = DailyTrendChart()
        self.addTab(self.trend, "Daily trend")
        self.setTabToolTip(2, "Each LLM call's cost at its time (hover a point for details)")
        self.setTabToolTip(
            TREND_TAB, "Spending per day over the last 30 days (every session), and this month's projection"
        )
        self._data: tuple[SessionSeries, str, Sequence[LlmUsageRecord], str] | None = None
        self._trend: Insights | None = None
        self._stale: set[int] = set()
        self.currentChanged.connect(self._refresh)

    def set_series(
        self, series: SessionSeries, symbol: str, records: Sequence[LlmUsageRecord], note: str = ""
    ) -> None:
        """Show new data: the visible chart at once, the others when their tab is opened."""
        self._data = (series, symbol, records, note)
        self._stale |= {0, 1, 2}
        self._refresh(self.currentIndex())

    def set_trend(self, insights: Insights) -> None:
        """Show the history's daily trend (drawn now if its tab is open, else when it is opened)."""
        self._trend = insights
        self._stale.add(TREND_TAB)
        self._refresh(self.currentIndex())

    def refresh_all(self) -> None:
        """Bring every chart up to date now (not only the visible one)."""
        for index in range(self.count()):
            self._refresh(index)

    def _refresh(self, index: int) -> None:
        if index not in self._stale:
            return
        if index == TREND_TAB:
            if self._trend is not None:
                self._stale.discard(index)
                self.trend.set_trend(self._trend)
            return
        if self._data is None:
            return
        self._stale.discard(index)
        series, symbol, records, note = self._data
        if index == 0:
            self.cumulative.set_series(series.cumulative, symbol, note)
        elif index == 1:
            self.by_model.set_bars(series.bars, symbol)
        elif index == 2:
            self.timeline.set_timeline(series.timeline, symbol, records)
            self.timeline_legend.setText(self.timeline.legend_text())
