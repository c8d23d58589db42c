"""The details window: header texts, session picker, errors and "updating", runtime state, live updates."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel
from pytestqt.qtbot import QtBot

from mity_cost.core.factory.loading import LoadError
from mity_cost.core.figures.summary import summarize
from mity_cost.core.gate.thresholds import level_for
from mity_cost.core.live.snapshot import SessionView, Snapshot
from mity_cost.core.money import format_money
from mity_cost.core.pricing.prices import Override, PriceBook
from mity_cost.core.settings import Settings
from mity_cost.core.spending.insights import Insights, trend_series
from mity_cost.ui.badge import LEVEL_COLORS
from mity_cost.ui.breakdown_model import COL_PRICE, UNPRICED
from mity_cost.ui.charts import TREND_TAB
from mity_cost.ui.details import DEFAULT_SIZE, DetailsWindow, humanize, runtime_text
from tests.core.breakdown_helpers import BIGGEST, WITH_INFRA, add_call, rewrite, session_file, snapshot_of
from tests.core.insights_helpers import NOW, World, compute, make_world
from tests.core.insights_helpers import book as insights_book


@pytest.fixture
def window(qtbot: QtBot) -> DetailsWindow:
    book = PriceBook(overrides={"gpt41": Override(2.0, 8.0)}, use_catalog=False)
    details = DetailsWindow(prices=book)
    qtbot.addWidget(details)
    return details


def shown(
    window: DetailsWindow, snapshot: Snapshot, settings: Settings, session_id: str = ""
) -> DetailsWindow:
    window.apply(snapshot, settings)
    window.show_session(session_id)
    return window


def test_header_shows_the_total_range_progress_and_factory_threshold(
    window: DetailsWindow, example_root: Path
) -> None:
    snapshot = snapshot_of(example_root)
    settings = Settings()
    shown(window, snapshot, settings, BIGGEST)
    view = snapshot.find(BIGGEST)
    assert view is not None and view.loaded is not None
    summary = summarize(view.loaded.figures, settings)
    total = summary.total
    assert window.windowTitle() == f"mity-cost — {BIGGEST}"
    assert window.total_label.text() == format_money(total.expected, "$")
    assert f"min {format_money(total.min, '$')}" in window.range_label.text()
    assert f"max {format_money(total.max, '$')}" in window.range_label.text()
    assert f"±{total.spread:.0f} %" in window.range_label.text()
    percent = summary.fraction_of_threshold * 100
    assert (
        f"{percent:.0f} % of the {format_money(settings.threshold, '$')} threshold"
        in window.level_label.text()
    )
    assert "OVER" in window.level_label.text() and window.progress.value() == 100
    assert LEVEL_COLORS[level_for(summary.fraction_of_threshold)] in window.progress.styleSheet()
    monthly = summary.monthly
    assert f"{format_money(monthly.expected, '$')}/mo" in window.monthly_label.text()
    factory = format_money(view.loaded.doc["confirmationThreshold"], "$")
    assert f"Factory's own threshold: {factory}, not used" in window.info_label.text()
    for note in (window.updating_label, window.error_label, window.consistency_label, window.llm_label):
        assert not note.isVisibleTo(window)
    assert window.size() == DEFAULT_SIZE


def test_progress_is_partial_under_the_threshold(window: DetailsWindow, example_root: Path) -> None:
    snapshot = snapshot_of(example_root)
    view = snapshot.find(WITH_INFRA)
    assert view is not None and view.loaded is not None
    settings = Settings(threshold=10.0)
    shown(window, snapshot, settings, WITH_INFRA)
    fraction = summarize(view.loaded.figures, settings).fraction_of_threshold
    assert window.progress.value() == int(fraction * 100)
    assert LEVEL_COLORS[level_for(fraction)] in window.progress.styleSheet()
    assert "OVER" not in window.level_label.text()


def test_picker_lists_sessions_active_first_and_follows_the_choice(
    window: DetailsWindow, example_root: Path, qtbot: QtBot
) -> None:
    snapshot = snapshot_of(example_root)
    settings = Settings()
    shown(window, snapshot, settings)
    picker = window.picker
    assert [picker.itemData(i) for i in range(picker.count())] == [v.session_id for v in snapshot.sessions]
    for i, view in enumerate(snapshot.sessions):
        assert view.loaded is not None
        text = picker.itemText(i)
        assert (
            view.session_id in text
            and format_money(summarize(view.loaded.figures, settings).total_expected, "$") in text
        )
    active = snapshot.active
    assert active is not None and picker.currentData() == active.session_id
    assert window.windowTitle().endswith(active.session_id)
    # The user picks another session: it stays shown when a new snapshot changes the active one.
    other = snapshot.sessions[-1].session_id
    picker.activated.emit(picker.findData(other))
    assert window.current_view() is not None and window.current_view().session_id == other  # type: ignore[union-attr]
    assert window.windowTitle().endswith(other)
    reordered = replace(snapshot, sessions=tuple(reversed(snapshot.sessions)))
    window.apply(reordered, settings)
    assert picker.currentData() == other and window.windowTitle().endswith(other)
    window.show_session("")  # back to following the active session
    assert picker.currentData() == reordered.sessions[0].session_id


def test_updating_keeps_the_last_good_figures(window: DetailsWindow, example_root: Path) -> None:
    snapshot = snapshot_of(example_root)
    view = snapshot.find(BIGGEST)
    assert view is not None and view.loaded is not None
    half = replace(view, updating=True, error=LoadError(view.loaded.path, "incomplete", "EOF while parsing"))
    sessions = tuple(half if v is view else v for v in snapshot.sessions)
    shown(window, replace(snapshot, sessions=sessions), Settings(), BIGGEST)
    assert window.updating_label.isVisibleTo(window) and "Updating" in window.updating_label.text()
    assert not window.error_label.isVisibleTo(window)
    expected = summarize(view.loaded.figures, Settings()).total_expected
    assert window.total_label.text() == format_money(expected, "$")
    assert "updating" in window.picker.currentText()


def test_bad_file_shows_its_error_and_keeps_the_last_good_figures(
    window: DetailsWindow, example_root: Path
) -> None:
    snapshot = snapshot_of(example_root)
    view = snapshot.find(BIGGEST)
    assert view is not None and view.loaded is not None
    error = LoadError(
        view.loaded.path, "invalid", "Input should be greater than or equal to 0", "llmUsage.3.cost"
    )
    sessions = tuple(replace(v, error=error) if v is view else v for v in snapshot.sessions)
    shown(window, replace(snapshot, sessions=sessions), Settings(), BIGGEST)
    text = window.error_label.text()
    assert window.error_label.isVisibleTo(window)
    assert "greater than or equal to 0" in text and "llmUsage.3.cost" in text and "last good" in text
    expected = summarize(view.loaded.figures, Settings()).total_expected
    assert window.total_label.text() == format_money(expected, "$")
    assert window.model.rowCount() > 0


def test_bad_file_without_a_good_state(window: DetailsWindow, tmp_path: Path) -> None:
    session_dir = tmp_path / ".mity" / "chat" / "s1"
    error = LoadError(session_dir / "cost.json", "invalid", "expected value")
    snapshot = Snapshot((SessionView("k", tmp_path, session_dir, None, error=error),), roots=(tmp_path,))
    shown(window, snapshot, Settings(), "s1")
    assert window.total_label.text() == "—"
    assert window.error_label.isVisibleTo(window) and "expected value" in window.error_label.text()
    assert window.model.rowCount() == 0 and "unreadable" in window.picker.currentText()


def test_inconsistent_session_shows_both_numbers(window: DetailsWindow, example_root: Path) -> None:
    path = session_file(example_root, WITH_INFRA)

    def drift(doc: dict[str, Any]) -> None:
        """The ledger says $1 more than its records."""
        ledger = doc["sessionCost"]
        for item in (ledger["breakdown"]["llm"], ledger["total"]):
            for key in ("min", "expected", "max"):
                item[key] += 1.0

    rewrite(path, drift)
    snapshot = snapshot_of(example_root)
    view = snapshot.find(WITH_INFRA)
    assert view is not None and view.loaded is not None and not view.loaded.consistency.consistent
    shown(window, snapshot, Settings(), WITH_INFRA)
    check = view.loaded.consistency
    text = window.consistency_label.text()
    assert window.consistency_label.isVisibleTo(window)
    assert format_money(check.ledger_llm, "$") in text and format_money(check.records_llm, "$") in text


def test_conversion_and_llm_disabled_notes(window: DetailsWindow, example_root: Path) -> None:
    snapshot = snapshot_of(example_root)
    view = snapshot.find(BIGGEST)
    assert view is not None and view.loaded is not None
    settings = Settings(currency="EUR", llm_enabled=False, env_overrides=frozenset({"llm_enabled"}))
    shown(window, snapshot, settings, BIGGEST)
    summary = summarize(view.loaded.figures, settings)
    assert window.total_label.text() == format_money(summary.total_expected, "€")
    assert "converted from USD" in window.info_label.text()
    assert window.llm_label.isVisibleTo(window) and "MITY_COST_LLM_ENABLED" in window.llm_label.text()
    window.apply(snapshot, Settings(llm_enabled=False))
    assert "settings" in window.llm_label.text() and "converted" not in window.info_label.text()


def test_runtime_state_and_station(window: DetailsWindow, real_root: Path, example_root: Path) -> None:
    snapshot = snapshot_of(real_root)
    view = snapshot.sessions[0]
    assert view.runtime is not None
    shown(window, snapshot, Settings(), view.session_id)
    text = window.runtime_label.text()
    assert window.runtime_label.isVisibleTo(window)
    assert humanize(view.runtime["runState"]) in text and view.runtime["currentStation"] in text
    assert text == runtime_text(view.runtime)
    shown(window, snapshot_of(example_root), Settings(), BIGGEST)
    assert not window.runtime_label.isVisibleTo(window)


def test_runtime_text_names_the_station() -> None:
    runtime = {
        "runState": "running",
        "currentStation": "implement",
        "stations": [{"name": "implement", "label": "Implement Code"}],
    }
    assert runtime_text(runtime) == "Factory: running · station: Implement Code (implement)"
    assert runtime_text(None) is None and runtime_text({"unrelated": 1}) is None
    assert humanize("readyToTest") == "ready to test"


def test_closing_hides_the_window(window: DetailsWindow, example_root: Path) -> None:
    shown(window, snapshot_of(example_root), Settings())
    assert window.isVisible()
    assert window.close() is False  # the close is refused ...
    assert window.isHidden()  # ... and the window hidden
    window.show_session(BIGGEST)
    assert window.isVisible()


def test_hidden_window_builds_the_tree_when_shown(window: DetailsWindow, example_root: Path) -> None:
    window.apply(snapshot_of(example_root), Settings())
    assert window.model.rowCount() == 0  # nothing built while hidden
    assert window.total_label.text() != "—"  # the header is cheap and kept current
    window.show()
    assert window.model.rowCount() > 0


def test_live_updates_keep_the_users_tree_state(window: DetailsWindow, example_root: Path) -> None:
    settings = Settings()
    shown(window, snapshot_of(example_root), settings, BIGGEST)
    model, tree = window.model, window.tree
    assert window.keeper.expanded_paths()  # sections open by default
    first_model = model.root.children[0].children[0]
    tree.setExpanded(model.index_for_path(("llm", first_model.key)), True)
    agent = first_model.children[0]
    chosen = ("llm", first_model.key, agent.key)
    tree.selectionModel().setCurrentIndex(
        model.index_for_path(chosen),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    expanded = sorted(window.keeper.expanded_paths())
    rewrite(
        session_file(example_root, BIGGEST), lambda doc: add_call(doc, model=first_model.key, cost=0.0001)
    )
    window.apply(snapshot_of(example_root), settings)
    assert model.root.find(("llm", first_model.key)) is not None
    calls = model.root.find(("llm",))
    assert calls is not None and calls.calls is not None
    assert sorted(window.keeper.expanded_paths()) == expanded
    assert model.path(tree.currentIndex()) == chosen
    # Another session starts with its sections open and nothing selected.
    window.show_session(WITH_INFRA)
    assert sorted(window.keeper.expanded_paths()) == sorted(
        (s.key,) for s in model.root.children if s.children
    )
    assert not tree.selectionModel().selectedRows()


def test_unchanged_snapshots_do_not_rebuild(window: DetailsWindow, example_root: Path, qtbot: QtBot) -> None:
    snapshot = snapshot_of(example_root)
    shown(window, snapshot, Settings(), BIGGEST)
    with qtbot.assertNotEmitted(window.model.modelReset), qtbot.assertNotEmitted(window.model.dataChanged):
        window.apply(replace(snapshot, status=snapshot.status), Settings())


def test_list_prices_in_the_tree(window: DetailsWindow, example_root: Path) -> None:
    shown(window, snapshot_of(example_root), Settings(), BIGGEST)
    model = window.model
    assert model.data(model.index_for_path(("llm", "gpt52"), COL_PRICE)) == UNPRICED
    assert str(model.data(model.index_for_path(("llm", "gpt41"), COL_PRICE))).startswith("$")


def test_empty_snapshot(window: DetailsWindow) -> None:
    shown(window, Snapshot(), Settings())
    assert window.windowTitle() == "mity-cost" and window.picker.count() == 0
    assert "No sessions" in window.range_label.text() and window.model.rowCount() == 0


def test_real_prices_load_lazily(qtbot: QtBot, example_root: Path) -> None:
    details = DetailsWindow()
    qtbot.addWidget(details)
    shown(details, snapshot_of(example_root), Settings(), BIGGEST)
    book = details.price_book()
    assert book is None or isinstance(book, PriceBook)
    text = str(details.model.data(details.model.index_for_path(("llm", "gpt41"), COL_PRICE)))
    assert text == UNPRICED or text.startswith("$")
    assert json.dumps(text)


def test_large_sessions_render_on_a_worker_and_end_on_the_latest(qtbot: QtBot, example_root: Path) -> None:
    book = PriceBook(overrides={}, use_catalog=False)
    details = DetailsWindow(prices=book, background_from=0)  # every session counts as large
    qtbot.addWidget(details)
    details.show()
    settings = Settings()
    details.apply(snapshot_of(example_root), settings)
    details.show_session(BIGGEST)
    qtbot.waitUntil(lambda: details.model.root.label == BIGGEST, timeout=5000)
    llm = details.model.root.child("llm")
    assert llm is not None and llm.calls is not None
    first = llm.calls
    path = session_file(example_root, BIGGEST)
    details.tree.setExpanded(details.model.index_for_path(("llm", "gpt41")), True)

    def latest() -> None:
        node = details.model.root.child("llm")
        assert node is not None and node.calls == first + 3

    # New calls change rows in place: no reset, the user's expanded rows stay.
    with qtbot.assertNotEmitted(details.model.modelReset, wait=0):
        for _ in range(3):  # a file rewritten faster than the worker: the last state wins
            rewrite(path, lambda doc: add_call(doc))
            details.apply(snapshot_of(example_root), settings)
        qtbot.waitUntil(latest, timeout=5000)
        qtbot.waitUntil(details.is_idle, timeout=5000)  # the charts too
    assert details.tree.isExpanded(details.model.index_for_path(("llm", "gpt41")))
    assert details.charts.cumulative.series is not None
    assert details.charts.cumulative.series.events >= first + 3
    # Another session asked for while a job runs: the old session's result never replaces it.
    rewrite(path, lambda doc: add_call(doc))
    details.apply(snapshot_of(example_root), settings)
    details.show_session(WITH_INFRA)
    qtbot.waitUntil(lambda: details.model.root.label == WITH_INFRA, timeout=5000)
    qtbot.waitUntil(details.is_idle, timeout=5000)
    assert details.model.root.label == WITH_INFRA


# --- the budgets & forecast part --------------------------------------------------------------------


@pytest.fixture
def world(example_root: Path, tmp_path: Path) -> Iterator[World]:
    made = make_world(example_root, tmp_path)
    yield made
    made.history.close()


def budget_window(qtbot: QtBot, world: World, **kwargs: Any) -> DetailsWindow:
    details = DetailsWindow(
        prices=insights_book(),
        history=world.history,
        budget_path=world.budget_path,
        clock=lambda: NOW,
        **kwargs,
    )
    qtbot.addWidget(details)
    return details


class _Recorder:
    """Wraps the window's insights engine: which thread ran each job, on which snapshot; can hold jobs."""

    def __init__(self, details: DetailsWindow) -> None:
        self.engine = details._engine
        self.inner = self.engine.run
        self.threads: list[int] = []
        self.snapshots: list[Snapshot] = []
        self.gate = threading.Event()
        self.gate.set()
        self.engine.run = self.run  # type: ignore[method-assign]

    def run(self, snapshot: Snapshot, settings: Settings, session_id: str | None, book: Any) -> Insights:
        self.threads.append(threading.get_ident())
        self.snapshots.append(snapshot)
        assert self.gate.wait(10)
        return self.inner(snapshot, settings, session_id, book)


def test_budgets_and_forecast_are_computed_off_the_gui_thread(qtbot: QtBot, world: World) -> None:
    details = budget_window(qtbot, world)
    recorder = _Recorder(details)
    with qtbot.waitSignal(details.insights_ready, timeout=10000) as ready:
        shown(details, world.snapshot, Settings(), BIGGEST)
    insights = ready.args[0]
    assert isinstance(insights, Insights)
    assert recorder.threads and threading.get_ident() not in recorder.threads
    assert details.budget_panel.insights is insights and insights.session_id == BIGGEST
    # The figures are the core's on the same history (the window took the sessions in).
    again = compute(world, raise_alerts=False)
    assert again.ingested == 0
    assert [(line.status.key, line.status.spent) for line in insights.budgets] == [
        (line.status.key, line.status.spent) for line in again.budgets
    ]
    assert insights.month == again.month and insights.daily == again.daily
    assert len(details.budget_panel.rows) == len(insights.budgets) > 0
    # The daily trend tab draws the same days and the month projection.
    details.charts.setCurrentIndex(TREND_TAB)
    trend = details.charts.trend
    assert trend.series == trend_series(insights)
    heights = trend.bars.opts["height"]
    assert list(heights) == [p.cost.expected for p in insights.daily]
    _, y = trend.projection_curve.getData()
    assert insights.month is not None and y[-1] == insights.month.projected
    assert "month end" in trend.getPlotItem().titleLabel.text


def test_budget_jobs_never_block_and_the_latest_snapshot_wins(qtbot: QtBot, world: World) -> None:
    details = budget_window(qtbot, world)
    recorder = _Recorder(details)
    recorder.gate.clear()  # the worker holds its first job until released
    shown(details, world.snapshot, Settings(), BIGGEST)
    qtbot.waitUntil(lambda: len(recorder.snapshots) == 1, timeout=5000)
    newer = [
        replace(world.snapshot, status=replace(world.snapshot.status, messages=(str(i),))) for i in range(3)
    ]
    for snapshot in newer:
        details.apply(snapshot, Settings())  # returns at once while the worker is busy
    assert not details.insights_idle() and details.budget_panel.insights is None
    recorder.gate.set()
    qtbot.waitUntil(details.insights_idle, timeout=10000)
    assert len(recorder.snapshots) == 2 and recorder.snapshots[-1] is newer[-1]
    assert details.budget_panel.insights is not None


def test_the_panel_follows_the_session_on_screen(qtbot: QtBot, world: World) -> None:
    details = budget_window(qtbot, world)
    shown(details, world.snapshot, Settings(), BIGGEST)
    qtbot.waitUntil(lambda: details.budget_panel.insights is not None, timeout=10000)
    details.show_session(WITH_INFRA)

    def follows() -> None:
        insights = details.budget_panel.insights
        assert insights is not None and insights.session_id == WITH_INFRA
        per_session = [line for line in insights.budgets if line.status.budget.scope == "session"]
        assert [line.status.session_id for line in per_session] == [WITH_INFRA]

    qtbot.waitUntil(follows, timeout=10000)


def test_a_hidden_window_computes_no_budgets_until_shown(qtbot: QtBot, world: World) -> None:
    details = budget_window(qtbot, world)
    recorder = _Recorder(details)
    details.apply(world.snapshot, Settings())
    assert recorder.snapshots == [] and details.insights_idle()
    details.show()
    qtbot.waitUntil(lambda: details.budget_panel.insights is not None, timeout=10000)
    assert recorder.snapshots == [world.snapshot]


def test_the_panel_refreshes_on_its_own_while_visible(qtbot: QtBot, world: World) -> None:
    details = budget_window(qtbot, world, refresh_ms=0)  # clamped to the pause between jobs
    recorder = _Recorder(details)
    shown(details, world.snapshot, Settings(), BIGGEST)
    qtbot.waitUntil(lambda: len(recorder.snapshots) >= 2, timeout=10000)
    details.hide()
    qtbot.waitUntil(details.insights_idle, timeout=10000)
    count = len(recorder.snapshots)
    qtbot.wait(1200)
    assert len(recorder.snapshots) == count  # nothing while hidden
