"""The history worker: ingest off the GUI thread, coalesced; alerts taken once; a broken history is a
reported problem, never a crash; retention applied at start; dismissals resolve alerts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.settings import Settings
from mity_cost.core.spending import alerts
from mity_cost.core.spending.budgets import Budget, add_budget
from mity_cost.core.spending.history import History, default_path
from mity_cost.ui.history_worker import HistoryUpdate, HistoryWorker
from mity_cost.ui.notifications import NotificationController
from tests.core.history_helpers import row
from tests.ui.test_notifications import Recorder
from tests.ui.tray_helpers import APP, app_spent, root_snapshot, with_app

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def worker(qtbot: QtBot) -> Iterator[HistoryWorker]:
    made = HistoryWorker(clock=lambda: NOW, retry_s=0.0)
    yield made
    made.stop()


def run(qtbot: QtBot, worker: HistoryWorker, snapshot: Snapshot | None, settings: Settings) -> HistoryUpdate:
    """Submit a snapshot (or refresh) and wait for the pass to be posted."""
    with qtbot.waitSignal(worker.updated, timeout=20_000) as blocker:
        if snapshot is None:
            worker.refresh()
        else:
            worker.submit(snapshot, settings)
    qtbot.waitUntil(worker.idle, timeout=20_000)
    update = worker.last
    assert isinstance(update, HistoryUpdate) and blocker.args
    return update


def test_ingest_runs_off_the_gui_thread(
    qtbot: QtBot, worker: HistoryWorker, example_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    original = History.ingest_snapshot

    def spy(self: History, snapshot: Snapshot, now: datetime | None = None) -> int:
        threads.append(threading.current_thread())
        return original(self, snapshot, now)

    monkeypatch.setattr(History, "ingest_snapshot", spy)
    snap = root_snapshot(example_root)
    update = run(qtbot, worker, snap, Settings())
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert update.ok and update.evaluated
    with History(tmp_path / "probe.sqlite3") as probe:
        expected_records = original(probe, snap, NOW)
    assert update.added == expected_records > 0
    with History() as stored:
        assert stored.record_count() == expected_records
    again = run(qtbot, worker, snap, Settings())
    assert again.added == 0  # taken in once


def test_passes_are_coalesced_the_latest_snapshot_wins(
    qtbot: QtBot, worker: HistoryWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    seen: list[Snapshot] = []

    def slow(self: History, snapshot: Snapshot, now: datetime | None = None) -> int:
        seen.append(snapshot)
        gate.wait(10)
        return 0

    monkeypatch.setattr(History, "ingest_snapshot", slow)
    snaps = [Snapshot(roots=(Path(f"/r{n}"),)) for n in range(5)]
    updates: list[HistoryUpdate] = []
    worker.updated.connect(updates.append)
    for snap in snaps:
        worker.submit(snap, Settings())
    assert not worker.idle()
    gate.set()
    qtbot.waitUntil(worker.idle, timeout=20_000)
    assert seen == [snaps[0], snaps[-1]]
    assert len(updates) == 2


def test_budget_alerts_are_notified_once(
    qtbot: QtBot, worker: HistoryWorker, example_root: Path, tmp_path: Path
) -> None:
    snap = root_snapshot(with_app(example_root))
    spent = app_spent(snap, tmp_path, NOW)
    assert spent > 0
    add_budget(Budget("app", APP, "month", round(spent / 0.8, 2)))  # 80 %: past 75, short of 90
    recorder = Recorder()
    notes = NotificationController(recorder, persist=False)
    settings = Settings()
    worker.updated.connect(lambda u: notes.on_alerts(u.to_notify, settings))
    first = run(qtbot, worker, snap, settings)
    warnings = [a for a in first.to_notify if a.kind == "budget_warning"]
    assert [a.level for a in warnings] == [75]
    assert warnings[0].data["budgetId"] == f"app:{APP}:month"
    assert any(s.budget.target == APP and s.reached[-1] == 75 for s in first.statuses)
    assert first.unresolved_count == len(first.unresolved) >= 1
    assert len(recorder.shown) == 1
    assert "75 %" in recorder.shown[0][0] + recorder.shown[0][1]
    second = run(qtbot, worker, snap, settings)
    third = run(qtbot, worker, None, settings)
    assert second.to_notify == () and third.to_notify == ()
    assert len(recorder.shown) == 1
    assert [a.id for a in third.unresolved] == [a.id for a in first.unresolved]


def test_dismiss_resolves_the_alert(qtbot: QtBot, worker: HistoryWorker) -> None:
    with History() as history:
        raised = alerts.raise_alert(history, "budget_warning", "overall:*:day", 50, "2026-11-23", "at 50 %")
    assert raised is not None
    listed = run(qtbot, worker, None, Settings())
    assert [a.id for a in listed.unresolved] == [raised.id]
    assert [a.id for a in listed.to_notify] == [raised.id]  # raised elsewhere, shown here once
    with qtbot.waitSignal(worker.updated, timeout=20_000):
        worker.dismiss([raised.id])
    qtbot.waitUntil(worker.idle)
    assert worker.last is not None and worker.last.unresolved == ()
    with History() as history:
        stored = alerts.get_alert(history, raised.id)
    assert stored is not None and stored.resolution == "dismissed"


def test_a_broken_history_is_reported_not_raised(
    qtbot: QtBot, worker: HistoryWorker, example_root: Path
) -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database, " * 100)
    update = run(qtbot, worker, root_snapshot(example_root), Settings())
    assert not update.ok and not update.evaluated
    assert "history" in update.problems[0] and update.to_notify == ()
    path.unlink()  # repaired: the next pass opens it (retry_s=0)
    healed = run(qtbot, worker, root_snapshot(example_root), Settings())
    assert healed.ok and healed.added > 0


def test_a_broken_budgets_file_is_a_problem(qtbot: QtBot, worker: HistoryWorker, example_root: Path) -> None:
    from mity_cost.core.spending.budgets import budgets_path

    budgets_path().parent.mkdir(parents=True, exist_ok=True)
    budgets_path().write_text("{ not json")
    update = run(qtbot, worker, root_snapshot(example_root), Settings())
    assert update.evaluated and any("budgets file" in p for p in update.problems)


def test_retention_is_applied_at_start(qtbot: QtBot, worker: HistoryWorker) -> None:
    with History() as history:
        history.ingest_rows(
            [row("old", NOW - timedelta(days=400), 1.0), row("new", NOW - timedelta(days=1), 2.0)], NOW
        )
        history.set_meta("retention_days", "30")  # set, not applied yet
        assert history.record_count() == 2
    with qtbot.waitSignal(worker.updated, timeout=20_000):
        worker.start()
    qtbot.waitUntil(worker.idle)
    with History() as history:
        assert [r.uid for r in history.records()] == ["new"]


def test_stop_closes_and_ignores_later_work(qtbot: QtBot, worker: HistoryWorker) -> None:
    run(qtbot, worker, None, Settings())
    worker.stop()
    worker.submit(Snapshot(), Settings())
    worker.dismiss([1])
    assert worker.idle()
    worker.stop()  # twice is harmless


def test_an_unexpected_error_is_a_problem_not_a_crash(
    qtbot: QtBot, worker: HistoryWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("budget maths went wrong")

    monkeypatch.setattr(alerts, "refresh", boom)
    update = run(qtbot, worker, Snapshot(), Settings())
    assert any("budget maths went wrong" in p for p in update.problems)
