"""The details window: one session's total range, progress to the threshold, breakdown and charts,
and beside them the "Budgets & forecast" panel.

``DetailsWindow.apply(snapshot, settings)`` takes every snapshot the bridge emits; the header is
updated at once (from the ledger: cheap), the tree and the charts only while the window is visible
and only when the session's data really changed.  For a large session they are computed on a worker
thread (``core.breakdown`` and ``core.series`` are Qt-free) and only put on screen by the GUI thread:
the tree model takes the finished tree and changes only the rows that changed; the charts follow on
a later turn of the event loop, at most every ``CHARTS_INTERVAL_MS``.  A file rewritten faster than
that is coalesced, the newest state winning, with a pause after each computation of at least twice
its duration.

The budgets panel and the daily trend chart come from ``core.insights`` (the history in SQLite,
budgets, alerts, forecasts, the price audit), always computed on a second worker thread: the same
job first takes the snapshot into the history, so it stays current while the window is open.  Jobs
are coalesced (one running, the latest waiting) and repeated every ``INSIGHTS_REFRESH_MS`` while the
window is visible (burn rates decay, budget files change).  The two workers take turns (the tree's
waits at most ``TURN_MS``), and the one waiting starts only after the other's result is drawn: every
Python thread that wants the interpreter slows the GUI thread's drawing (each of its calls into
Python must win the interpreter back), and a 100,000-call session keeps the file loader busy
already.  Closing the window hides it.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal, SignalInstance
from PySide6.QtGui import QCloseEvent, QFont, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QSizePolicy,
    QSplitter,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from mity_cost.core.breakdown.calls import CallCache
from mity_cost.core.breakdown.nodes import Node
from mity_cost.core.breakdown.series import SessionSeries, session_series
from mity_cost.core.breakdown.tree import build_tree
from mity_cost.core.factory.documents import LlmUsageRecord
from mity_cost.core.factory.loading import LoadedFeature
from mity_cost.core.figures.summary import RuntimeCostSummary, summarize
from mity_cost.core.gate.thresholds import Level, level_for
from mity_cost.core.live.snapshot import SessionView, Snapshot
from mity_cost.core.money import CURRENCY_SYMBOLS, format_money
from mity_cost.core.pricing import prices as prices_module
from mity_cost.core.pricing.prices import PriceBook
from mity_cost.core.settings import ENV_LLM, Settings
from mity_cost.core.spending.history import History
from mity_cost.core.spending.insights import Insights, InsightsEngine
from mity_cost.ui.badge import LEVEL_COLORS
from mity_cost.ui.breakdown_model import (
    COL_CALLS,
    COL_EXPECTED,
    COL_ITEM,
    COL_MAX,
    COL_MIN,
    COL_PRICE,
    COL_TOKENS,
    BreakdownModel,
    ViewStateKeeper,
)
from mity_cost.ui.budget_panel import BudgetPanel
from mity_cost.ui.charts import CostCharts

DEFAULT_SIZE = QSize(1280, 760)
BACKGROUND_FROM = 5000
"""Sessions with at least this many LLM calls have their tree and charts computed on a worker thread
(the GUI thread only puts the result on screen); smaller ones are quicker done at once."""
BACKGROUND_PAUSE_MS = 400
"""The least pause between two background computations of the same window."""
BACKGROUND_PAUSE_FACTOR = 2.0
"""The pause is also at least this many times as long as the last computation took, so a worker busy
with a huge session shares the interpreter with the GUI thread (at most a third of the time)."""
TURN_MS = 1500
"""The tree's computation waits for the budgets worker's (see ``_kick``) at most this long."""
CHARTS_INTERVAL_MS = 1500
"""A large session's charts are redrawn at most this often (its tree after every computation)."""
AFTER_RENDER_MS = 100
"""A computation waiting for the other worker starts this long after a result was put on screen (so
it does not compete with the drawing of that result)."""
INSIGHTS_PAUSE_MS = 1000
"""The least time between two budget and forecast computations (a busy file is not re-read faster)."""
INSIGHTS_PAUSE_FACTOR = 2.0
"""The pause after a budget and forecast computation is also at least this many times as long as the
computation took (taking a 100,000-call session into the history takes seconds)."""
INSIGHTS_REFRESH_MS = 30_000
"""Budgets and forecasts are recomputed this often while the window is visible, even without news."""
PANEL_WIDTH = 380
TITLE = "mity-cost"
_NOWHERE = Path("/nonexistent")
_EMPTY_VIEW = SessionView("", _NOWHERE, _NOWHERE, None)
_NOTE_STYLES: dict[str, str] = {
    "info": "color: palette(text); background: palette(alternate-base); border: 1px solid palette(mid);",
    "updating": "color: #0d47a1; background: #e3f2fd; border: 1px solid #90caf9;",
    "warning": "color: #5d3a00; background: #fff3e0; border: 1px solid #ffb74d;",
    "error": "color: #7f0000; background: #ffebee; border: 1px solid #ef9a9a;",
}
_LEVEL_WORDS: dict[Level, str] = {
    Level.OK: "ok",
    Level.NOTICE: "notice",
    Level.WARNING: "warning",
    Level.CRITICAL: "critical",
    Level.OVER: "OVER the threshold",
}
_COLUMN_WIDTHS: dict[int, int] = {  # room for "$1,234.56/mo" and "$0.822  Δ-23%"; the rest to the names
    COL_MIN: 84,
    COL_EXPECTED: 84,
    COL_MAX: 84,
    COL_TOKENS: 78,
    COL_CALLS: 50,
    COL_PRICE: 140,
}


def humanize(state: str) -> str:
    """``readyToTest`` -> ``ready to test``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r" \1", state).replace("_", " ").replace("-", " ").lower()


def runtime_text(runtime: dict[str, Any] | None) -> str | None:
    """The factory's run state and current station from its ``runtime.json`` (None when absent)."""
    if not isinstance(runtime, dict):
        return None
    parts = []
    state = runtime.get("runState")
    if isinstance(state, str) and state:
        parts.append(f"Factory: {humanize(state)}")
    station = runtime.get("currentStation")
    if isinstance(station, str) and station:
        label = station
        for entry in runtime.get("stations") or ():
            if isinstance(entry, dict) and entry.get("name") == station and entry.get("label"):
                label = f"{entry['label']} ({station})"
                break
        parts.append(f"station: {label}")
    return " · ".join(parts) or None


def _note(kind: str) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setStyleSheet(f"QLabel {{ {_NOTE_STYLES[kind]} border-radius: 4px; padding: 4px 8px; }}")
    label.setVisible(False)
    return label


def _set_note(label: QLabel, text: str | None, tooltip: str = "") -> None:
    label.setText(text or "")
    label.setToolTip(tooltip)
    label.setVisible(bool(text))


class DetailsWindow(QWidget):
    """Per-session details: a picker, a header with the total and its notes, the tree and charts.

    Attributes:
        picker: the session combo box (active session first, each with its total).
        model: the breakdown tree's model; ``tree`` its view; ``charts`` the chart tabs.
    """

    rendered = Signal()
    """Emitted each time a new tree and charts are on screen."""
    insights_ready = Signal(object)
    """Emitted with each ``core.insights.Insights`` put on screen (budgets panel and daily trend)."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        prices: PriceBook | None = None,
        load_prices: bool = True,
        background_from: int = BACKGROUND_FROM,
        history: History | None = None,
        history_path: Path | None = None,
        budget_path: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        refresh_ms: int = INSIGHTS_REFRESH_MS,
    ) -> None:
        """``history`` (else one opened at ``history_path``, the default store when ``None``) and
        ``budget_path`` feed the budgets panel; ``clock`` gives "now" to its forecasts."""
        super().__init__(parent)
        self.setWindowTitle(TITLE)
        self.resize(DEFAULT_SIZE)
        self.setMinimumSize(720, 480)
        self._snapshot = Snapshot()
        self._settings = Settings()
        self._pinned: str | None = None
        self._prices = prices
        self._load_prices = load_prices and prices is None
        self._body_key: tuple[Any, ...] | None = None
        self._body_session: str | None = None
        self._call_cache = CallCache()
        self._background_from = background_from
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mity-details")
        self._pending: _Job | None = None
        self._running: _Job | None = None
        self._started = 0.0
        self._body_job: _Job | None = None
        # Worker threads reach the window only through this child object: a closure holding the
        # window itself could drop its last reference on a worker, and Qt would destroy it there.
        self._relay = _Relay(self)
        self._relay.computed.connect(self._on_computed)
        self._relay.insights.connect(self._on_insights)
        self._pause = QTimer(self)
        self._pause.setSingleShot(True)
        self._pause.setInterval(BACKGROUND_PAUSE_MS)
        self._pause.timeout.connect(self._resume)
        self._charts_due: tuple[SessionSeries, str, Sequence[LlmUsageRecord], str] | None = None
        self._charts_timer = QTimer(self)
        self._charts_timer.setSingleShot(True)
        self._charts_timer.setInterval(0)
        self._charts_timer.timeout.connect(self._show_charts)
        self._charts_shown = 0.0
        self._after_render = QTimer(self)
        self._after_render.setSingleShot(True)
        self._after_render.setInterval(AFTER_RENDER_MS)
        self._after_render.timeout.connect(self._kick)
        executor = self._executor
        self.destroyed.connect(lambda *_: executor.shutdown(wait=False, cancel_futures=True))
        if self._load_prices:
            # genai-prices takes a few tenths of a second to import: do it before the first showing.
            executor.submit(prices_module.catalog)
        engine = self._engine = InsightsEngine(
            history, history_path=history_path, budget_path=budget_path, clock=clock
        )
        insights_executor = self._insights_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mity-insights"
        )
        self._insights_running: _InsightsJob | None = None
        self._insights_started = 0.0
        self._insights_pending: _InsightsJob | None = None
        self._insights_wanted = False
        self._insights_pause = QTimer(self)
        self._insights_pause.setSingleShot(True)
        self._insights_pause.setInterval(INSIGHTS_PAUSE_MS)
        self._insights_pause.timeout.connect(self._resume_insights)
        self._insights_timer = QTimer(self)
        self._insights_timer.setInterval(max(refresh_ms, INSIGHTS_PAUSE_MS))
        self._insights_timer.timeout.connect(self.refresh_insights)

        def stop_insights(*_: object) -> None:
            # Only one job is ever queued, so the history is closed after it, on its own thread.
            with contextlib.suppress(RuntimeError):
                insights_executor.submit(engine.close)
            insights_executor.shutdown(wait=False)

        self.destroyed.connect(stop_insights)
        self._dirty = True
        self._build()

    # --- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 12, 12, 12)
        outer.setSpacing(10)

        top = QHBoxLayout()
        top.setSpacing(8)
        caption = QLabel("Session")
        caption.setStyleSheet("font-weight: 600;")
        self.picker = QComboBox()
        self.picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.picker.setMinimumContentsLength(40)
        self.picker.setToolTip("Sessions, the most recently updated first")
        self.picker.activated.connect(self._picked)
        self.picker.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
        self.runtime_label = QLabel()
        self.runtime_label.setVisible(False)
        self.runtime_label.setStyleSheet(
            "QLabel { color: palette(text); background: palette(alternate-base); "
            "border: 1px solid palette(mid); border-radius: 9px; padding: 2px 10px; }"
        )
        self.updated_label = QLabel()
        self.updated_label.setStyleSheet("color: palette(dark);")
        top.addWidget(caption)
        top.addWidget(self.picker)
        top.addStretch(1)
        top.addWidget(self.runtime_label)
        outer.addLayout(top)

        header = QFrame()
        header.setObjectName("header")
        header.setFrameShape(QFrame.Shape.StyledPanel)
        grid = QVBoxLayout(header)
        grid.setContentsMargins(12, 10, 12, 10)
        grid.setSpacing(6)

        figures = QHBoxLayout()
        figures.setSpacing(12)
        self.total_label = QLabel("—")
        big = QFont(self.font())
        big.setPointSizeF(max(self.font().pointSizeF(), 9.0) * 2.0)
        big.setBold(True)
        self.total_label.setFont(big)
        self.total_label.setToolTip("Expected session total")
        self.range_label = QLabel()
        self.range_label.setToolTip("The session total is a range: lowest and highest estimate")
        figures.addWidget(self.total_label, 0, Qt.AlignmentFlag.AlignBottom)
        figures.addWidget(self.range_label, 0, Qt.AlignmentFlag.AlignBottom)
        figures.addStretch(1)
        self.monthly_label = QLabel()
        self.monthly_label.setToolTip(
            "Estimated recurring infrastructure bill (not part of the session total)"
        )
        figures.addWidget(self.monthly_label, 0, Qt.AlignmentFlag.AlignBottom)
        grid.addLayout(figures)

        progress_row = QHBoxLayout()
        progress_row.setSpacing(10)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(12)
        self.level_label = QLabel()
        self.level_label.setMinimumWidth(260)
        self.level_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.level_label)
        grid.addLayout(progress_row)

        self.info_label = QLabel()
        self.info_label.setWordWrap(True)
        self.info_label.setStyleSheet("color: palette(dark);")
        info_row = QHBoxLayout()
        info_row.addWidget(self.info_label, 1)
        info_row.addWidget(self.updated_label, 0, Qt.AlignmentFlag.AlignRight)
        grid.addLayout(info_row)
        outer.addWidget(header)

        self.updating_label = _note("updating")
        self.error_label = _note("error")
        self.consistency_label = _note("warning")
        self.llm_label = _note("info")
        for label in (self.updating_label, self.error_label, self.consistency_label, self.llm_label):
            outer.addWidget(label)

        self.model = BreakdownModel(self)
        self.tree = QTreeView()
        self.tree.setModel(self.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.tree.setAnimated(False)
        header_view = self.tree.header()
        header_view.setStretchLastSection(False)
        header_view.setSectionResizeMode(COL_ITEM, QHeaderView.ResizeMode.Stretch)
        for column, width in _COLUMN_WIDTHS.items():
            header_view.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header_view.resizeSection(column, width)
        self.keeper = ViewStateKeeper(self.tree, self.model)

        self.charts = CostCharts()
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(self.charts)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([330, 250])
        self.splitter.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self.budget_panel = BudgetPanel()
        self.side_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.side_splitter.addWidget(self.splitter)
        self.side_splitter.addWidget(self.budget_panel)
        self.side_splitter.setStretchFactor(0, 1)
        self.side_splitter.setStretchFactor(1, 0)
        self.side_splitter.setCollapsible(0, False)
        self.side_splitter.setSizes([DEFAULT_SIZE.width() - PANEL_WIDTH, PANEL_WIDTH])
        outer.addWidget(self.side_splitter, 1)

    # --- public API -----------------------------------------------------------------------------

    def apply(self, snapshot: Snapshot, settings: Settings) -> None:
        """Show a new snapshot under these settings (the tree and charts only while visible)."""
        self._snapshot = snapshot
        if settings != self._settings:
            self._body_key = None
        self._settings = settings
        self._render()

    def show_session(self, session_id: str | None = None) -> None:
        """Show the window on this session ("" or None: follow the active session), and raise it."""
        self._pinned = session_id or None
        self._render()
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.show()
        self.raise_()
        self.activateWindow()

    def current_view(self) -> SessionView | None:
        """The session shown: the one picked, else the active one."""
        snapshot = self._snapshot
        if self._pinned is not None:
            found = snapshot.find(self._pinned)
            if found is not None:
                return found
        return snapshot.active or (snapshot.sessions[0] if snapshot.sessions else None)

    def is_idle(self) -> bool:
        """True when no tree or chart computation is running or waiting."""
        return (
            self._running is None
            and self._pending is None
            and not self._pause.isActive()
            and self._charts_due is None
        )

    def insights_idle(self) -> bool:
        """True when no budgets and forecast computation is running or waiting."""
        return (
            self._insights_running is None
            and self._insights_pending is None
            and not self._insights_pause.isActive()
        )

    def refresh_insights(self) -> None:
        """Recompute the budgets panel and the daily trend on the worker (now, or once the running
        job ends; only while the window is visible)."""
        if not self.isVisible():
            self._insights_wanted = True
            return
        self._insights_wanted = False
        view = self.current_view()
        job = _InsightsJob(
            self._snapshot, self._settings, view.session_id if view is not None else None, self.price_book()
        )
        if self._insights_running is not None or self._insights_pause.isActive():
            self._insights_pending = job  # the latest wins
        else:
            self._start_insights(job)

    def price_book(self) -> PriceBook | None:
        """The price book for the list-price column, loaded on first use (None if it cannot be)."""
        if self._prices is None and self._load_prices:
            self._load_prices = False
            try:
                self._prices = PriceBook.load()
            except Exception:  # noqa: BLE001 - without prices the column says "unpriced"
                self._prices = None
        return self._prices

    # --- events ---------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing hides the window; the app keeps running in the tray."""
        event.ignore()
        self.hide()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._dirty:
            self._render_body(self.current_view())
        if self._insights_wanted or self.budget_panel.insights is None:
            self.refresh_insights()
        self._insights_timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._insights_timer.stop()

    def sizeHint(self) -> QSize:
        return DEFAULT_SIZE

    # --- rendering -----------------------------------------------------------------------------

    def _picked(self, index: int) -> None:
        session_id = self.picker.itemData(index)
        if isinstance(session_id, str):
            self._pinned = session_id
            self._render()

    def _summary(self, view: SessionView) -> RuntimeCostSummary | None:
        if view.loaded is None:
            return None
        return summarize(view.loaded.figures, self._settings)

    def _render(self) -> None:
        view = self.current_view()
        self._refresh_picker(view)
        self._render_header(view)
        if self.isVisible():
            self._render_body(view)
        else:
            self._dirty = True
        self.refresh_insights()

    def _picker_text(self, view: SessionView) -> str:
        summary = self._summary(view)
        if summary is None:
            state = "updating…" if view.updating else "unreadable"
            return f"{view.session_id}   ({state})"
        text = f"{view.session_id}   {format_money(summary.total_expected, summary.currency)}"
        if view.updating:
            text += "   (updating…)"
        elif view.error is not None:
            text += "   (read error)"
        return text

    def _refresh_picker(self, current: SessionView | None) -> None:
        picker = self.picker
        sessions = self._snapshot.sessions
        ids = [v.session_id for v in sessions]
        picker.blockSignals(True)
        try:
            if [picker.itemData(i) for i in range(picker.count())] != ids:
                picker.clear()
                for view in sessions:
                    picker.addItem(self._picker_text(view), view.session_id)
            else:
                for i, view in enumerate(sessions):
                    picker.setItemText(i, self._picker_text(view))
            for i, view in enumerate(sessions):
                tip = str(view.session_dir)
                if i == 0 and view.loaded is not None:
                    tip = f"the most recently updated session\n{tip}"
                picker.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
            picker.setCurrentIndex(ids.index(current.session_id) if current is not None else -1)
        finally:
            picker.blockSignals(False)
        picker.setEnabled(bool(ids))

    def _render_header(self, view: SessionView | None) -> None:
        settings = self._settings
        symbol = settings.symbol
        if view is None:
            self.setWindowTitle(TITLE)
            self.total_label.setText("—")
            self.range_label.setText("No sessions yet: mity-cost is watching for cost files")
            self.monthly_label.clear()
            self.progress.setValue(0)
            self.progress.setFormat(f"threshold {format_money(settings.threshold, symbol)}")
            self._color_progress(None)
            self.level_label.setText(f"threshold {format_money(settings.threshold, symbol)}")
            self.info_label.clear()
            self.updated_label.clear()
            _set_note(self.runtime_label, None)
            for label in (self.updating_label, self.error_label, self.consistency_label, self.llm_label):
                _set_note(label, None)
            return
        self.setWindowTitle(f"{TITLE} — {view.session_id}")
        summary = self._summary(view)
        self._render_figures(view, summary)
        self._render_notes(view)
        runtime = runtime_text(view.runtime)
        self.runtime_label.setText(runtime or "")
        last_event = view.runtime.get("lastEvent") if isinstance(view.runtime, dict) else None
        self.runtime_label.setToolTip(f"Last event: {last_event}" if isinstance(last_event, str) else "")
        self.runtime_label.setVisible(runtime is not None)

    def _render_figures(self, view: SessionView, summary: RuntimeCostSummary | None) -> None:
        settings = self._settings
        symbol = settings.symbol
        threshold = format_money(settings.threshold, symbol)
        if summary is None:
            self.total_label.setText("—")
            self.range_label.setText("no good state of this session yet")
            self.monthly_label.clear()
            self.progress.setValue(0)
            self.progress.setFormat(f"threshold {threshold}")
            self._color_progress(None)
            self.level_label.setText(f"threshold {threshold}")
            self.info_label.clear()
            self.updated_label.clear()
            return
        total = summary.total
        self.total_label.setText(format_money(total.expected, symbol))
        self.range_label.setText(
            f"expected  ·  min {format_money(total.min, symbol)}  ·  max {format_money(total.max, symbol)}"
            f"  ·  ±{total.spread:.0f} %"
        )
        monthly = summary.monthly
        self.monthly_label.setText(
            f"Monthly infrastructure: {format_money(monthly.expected, symbol)}/mo "
            f"(min {format_money(monthly.min, symbol)} – max {format_money(monthly.max, symbol)}, "
            f"±{monthly.spread:.0f} %)"
        )
        fraction = summary.fraction_of_threshold
        level = level_for(fraction)
        percent = fraction * 100
        shown = "over 9999" if percent > 9999 else f"{percent:.0f}"
        self.progress.setValue(int(min(100.0, max(0.0, percent))))
        self.progress.setFormat(f"{shown} % of the {threshold} threshold")
        self.level_label.setText(f"{shown} % of the {threshold} threshold · {_LEVEL_WORDS[level]}")
        self.progress.setToolTip(
            f"Expected total {format_money(total.expected, symbol)} against the threshold {threshold}"
            + (" (MITY_COST_THRESHOLD)" if "threshold" in settings.env_overrides else "")
        )
        self._color_progress(level)
        assert view.loaded is not None
        doc = view.loaded.doc
        factory = doc["confirmationThreshold"]
        factory_symbol = CURRENCY_SYMBOLS.get(doc["currency"], "$")
        info = [f"Factory's own threshold: {format_money(factory, factory_symbol)}, not used"]
        conversion = settings.conversion_note(doc["currency"])
        if conversion:
            info.append(f"Amounts {conversion}")
        self.info_label.setText("   ·   ".join(info))
        updated = doc["updatedAt"].astimezone()
        self.updated_label.setText(f"updated {updated:%Y-%m-%d %H:%M:%S}")

    def _color_progress(self, level: Level | None) -> None:
        color = LEVEL_COLORS[level] if level is not None else "#9e9e9e"
        self.progress.setStyleSheet(
            "QProgressBar { border: 1px solid palette(mid); border-radius: 5px; background: palette(base); }"
            f"QProgressBar::chunk {{ background-color: {color}; border-radius: 4px; }}"
        )
        self.level_label.setStyleSheet(f"color: {color}; font-weight: 600;")

    def _render_notes(self, view: SessionView) -> None:
        settings = self._settings
        symbol = settings.symbol
        has_good = view.loaded is not None
        _set_note(
            self.updating_label,
            "Updating… the cost file is being written; showing the last good figures."
            if view.updating
            else None,
        )
        error_text = None
        if view.error is not None and not view.updating:
            where = f" at {view.error.location}" if view.error.location else ""
            keep = "showing the last good figures" if has_good else "no good state to show yet"
            error_text = (
                f"Could not read the latest cost.json ({view.error.kind}{where}): {view.error.message}. "
                f"{keep.capitalize()}."
            )
        _set_note(self.error_label, error_text, view.error.describe() if view.error else "")
        consistency_text = None
        if view.loaded is not None and not view.loaded.consistency.consistent:
            check = view.loaded.consistency
            scale = settings.convert(1.0, view.loaded.doc["currency"])
            ledger = format_money(check.ledger_llm * scale, symbol)
            records = format_money(check.records_llm * scale, symbol)
            consistency_text = (
                f"Inconsistent session: the ledger's LLM cost is {ledger} but its records sum to {records}"
            )
            if check.duplicate_ids:
                consistency_text += f"; {len(check.duplicate_ids)} record id(s) repeat"
            consistency_text += ". The totals use the ledger's figure."
        _set_note(
            self.consistency_label,
            consistency_text,
            view.loaded.consistency.describe() if view.loaded else "",
        )
        llm_text = None
        if not settings.llm_enabled:
            where = (
                f"{ENV_LLM} is false"
                if "llm_enabled" in settings.env_overrides
                else "turned off in the settings"
            )
            llm_text = (
                f"LLM costs are not counted in the totals ({where}); they still appear in the breakdown."
            )
        _set_note(self.llm_label, llm_text)

    def _render_body(self, view: SessionView | None) -> None:
        self._dirty = False
        settings = self._settings
        snapshot = self._snapshot
        prices = self.price_book()
        key: tuple[Any, ...] = (
            view.key if view else None,
            id(view.loaded) if view else None,
            view.execution_seen_at if view else (),
            settings,
            tuple(id(f) for f in snapshot.features),
            len(snapshot.feature_errors),
            id(prices),
        )
        if key == self._body_key:
            return
        self._body_key = key
        job = _Job(
            key,
            view if view is not None else _EMPTY_VIEW,
            snapshot.features,
            len(snapshot.feature_errors),
            settings,
            prices,
        )
        self._body_job = job  # keeps what the ids in the key point at alive
        records = len(view.loaded.doc["llmUsage"]) if view is not None and view.loaded is not None else 0
        if records < self._background_from:
            self._pending = None
            self._show_result(job, job.run(self._call_cache))
        elif self._running is None and not self._pause.isActive():
            self._start(job)
        else:
            self._pending = job  # started when the worker is free; older pending ones are dropped

    def _resume(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and self._running is None:
            self._start(pending)
        elif pending is not None:
            self._pending = pending

    def _start(self, job: _Job) -> None:
        """Compute a job on the worker thread; its result comes back through the relay (or, while
        the budgets worker is busy, once it is done or ``TURN_MS`` after it started)."""
        waited_ms = (time.monotonic() - self._insights_started) * 1000
        if self._insights_running is not None and waited_ms < TURN_MS:
            self._pending = job  # started by _kick, or by the pause once the turn is over
            self._pause.setInterval(int(TURN_MS - waited_ms) + 1)
            self._pause.start()
            return
        self._running = job
        self._started = time.monotonic()
        future = self._executor.submit(job.run, self._call_cache)
        relay = self._relay
        future.add_done_callback(lambda done: _deliver(relay.computed, job, done))

    def _on_computed(self, payload: tuple[_Job, _Result | None]) -> None:
        job, result = payload
        self._running = None
        took_ms = (time.monotonic() - self._started) * 1000
        self._pause.setInterval(max(BACKGROUND_PAUSE_MS, int(took_ms * BACKGROUND_PAUSE_FACTOR)))
        pending, self._pending = self._pending, None
        if pending is not None:
            # A newer snapshot arrived meanwhile: compute it after a pause, so a file rewritten many
            # times a second keeps the worker (and its hold on the interpreter) busy only part time.
            self._pending = pending
            self._pause.start()
        # Show this result unless another session was put on screen since it was asked for; it
        # is never older than what is shown, and skipping it would starve a constantly written file.
        if result is not None and self._body_key is not None and job.key[0] == self._body_key[0]:
            self._show_result(job, result, charts_later=True)
        else:
            self._after_render.start()

    def _show_result(self, job: _Job, result: _Result, *, charts_later: bool = False) -> None:
        """Put a computed tree and chart data on screen (GUI thread).

        With ``charts_later`` (a large session's result, from the worker) the charts are drawn on a
        later turn of the event loop, at most every ``CHARTS_INTERVAL_MS`` and while neither worker
        runs: the tree's and the charts' updates are each short, but in one go, or against a busy
        worker (which takes the interpreter from this thread every few milliseconds), they can
        hold the loop up for long."""
        tree, series = result
        view, settings = job.view, job.settings
        switched = view.key != self._body_session
        self._body_session = view.key
        if switched:
            self.keeper.skip_next()
        reset = self.model.set_tree(tree, settings.symbol, incremental=not switched)
        self.keeper.skip_next(False)
        if switched and reset:
            self.tree.expandToDepth(0)
            self.tree.scrollToTop()
        records = view.loaded.doc["llmUsage"] if view.loaded is not None else []
        note = "" if settings.llm_enabled else "LLM costs are not counted"
        self._charts_due = (series, settings.symbol, records, note)
        if charts_later:
            self._schedule_charts()
            self._after_render.start()
        else:
            self._charts_timer.stop()
            self._show_charts(now=True)

    def _schedule_charts(self) -> None:
        since_ms = (time.monotonic() - self._charts_shown) * 1000
        self._charts_timer.setInterval(max(0, int(CHARTS_INTERVAL_MS - since_ms)))
        self._charts_timer.start()

    def _show_charts(self, now: bool = False) -> None:
        """Draw the charts of the newest result (unless ``now``, only while neither worker runs:
        ``_kick`` draws them after the running one's result)."""
        if self._charts_due is None:
            return
        if not now and (self._running is not None or self._insights_running is not None):
            return
        due, self._charts_due = self._charts_due, None
        self._charts_shown = time.monotonic()
        self.charts.set_series(*due)
        self.rendered.emit()
        self._after_render.start()

    def _kick(self) -> None:
        """After a result was drawn: draw the charts if they are due, else start whichever
        computation waits (the tree's first).  The two workers take turns, and nothing is computed
        while the GUI thread draws (each Python thread that wants the interpreter slows every call
        into Python that the drawing makes)."""
        if self._charts_due is not None and self._running is None and self._insights_running is None:
            if (time.monotonic() - self._charts_shown) * 1000 >= CHARTS_INTERVAL_MS:
                self._show_charts()  # and kicks again once drawn
                return
            self._schedule_charts()
        if self._pending is not None and self._running is None and not self._pause.isActive():
            self._resume()
        if (
            self._insights_pending is not None
            and self._insights_running is None
            and not self._insights_pause.isActive()
        ):
            self._resume_insights()

    # --- budgets and forecast (always on the insights worker) ------------------------------------

    def _start_insights(self, job: _InsightsJob) -> None:
        if self._running is not None:
            self._insights_pending = job  # after the tree is on screen (see _kick)
            return
        self._insights_running = job
        self._insights_started = time.monotonic()
        engine = self._engine
        try:
            future = self._insights_executor.submit(
                engine.run, job.snapshot, job.settings, job.session_id, job.prices
            )
        except RuntimeError:  # shut down: the window is going away
            self._insights_running = None
            return
        relay = self._relay
        future.add_done_callback(lambda done: _deliver(relay.insights, job, done))

    def _on_insights(self, payload: tuple[_InsightsJob, Insights | None]) -> None:
        job, result = payload
        self._insights_running = None
        # A job that took long (a big session being taken into the history) waits longer before
        # the next: the worker then holds the interpreter (and can stall this thread) part time only.
        took_ms = (time.monotonic() - self._insights_started) * 1000
        self._insights_pause.setInterval(max(INSIGHTS_PAUSE_MS, int(took_ms * INSIGHTS_PAUSE_FACTOR)))
        if self._insights_pending is not None:
            self._insights_pause.start()
        view = self.current_view()
        current = view.session_id if view is not None else None
        if result is not None and (job.session_id == current or self._insights_pending is None):
            self.budget_panel.set_insights(result)
            self.charts.set_trend(result)
            self.insights_ready.emit(result)
        self._after_render.start()

    def _resume_insights(self) -> None:
        pending, self._insights_pending = self._insights_pending, None
        if pending is None:
            return
        if self._insights_running is None:
            self._start_insights(pending)
        else:
            self._insights_pending = pending


class _Relay(QObject):
    """Carries worker results to the GUI thread (queued signals); a child of the window, so only
    Qt deletes it, on the GUI thread."""

    computed = Signal(object)
    insights = Signal(object)


def _deliver(signal: SignalInstance, job: object, done: Future[Any]) -> None:
    """Runs on a worker thread: hand ``(job, result or None)`` to the GUI thread."""
    try:
        result = done.result()
    except Exception:  # noqa: BLE001 - never lose the window over a bad document
        result = None
    with contextlib.suppress(RuntimeError):  # the window (and its relay) is already gone
        signal.emit((job, result))


@dataclass(frozen=True)
class _InsightsJob:
    """What one budgets and forecast computation needs."""

    snapshot: Snapshot
    settings: Settings
    session_id: str | None
    prices: PriceBook | None


_Result = tuple[Node, SessionSeries]


@dataclass(frozen=True)
class _Job:
    """What one rendering of the tree and the charts needs (pure data: it may run on a worker)."""

    key: tuple[Any, ...]
    view: SessionView
    features: tuple[LoadedFeature, ...]
    feature_errors: int
    settings: Settings
    prices: PriceBook | None

    def run(self, cache: CallCache) -> _Result:
        """Build the tree and the chart series (Qt-free)."""
        tree = build_tree(
            self.view,
            self.features,
            self.settings,
            self.prices,
            feature_errors=self.feature_errors,
            cache=cache,
        )
        return tree, session_series(self.view, self.settings)
