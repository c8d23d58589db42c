"""Keeps the spending history, budgets and alerts current for the tray app, off the GUI thread.

:class:`HistoryWorker` holds one ``core.history.History`` for the app's life, on a single worker
thread: the first pass opens it and applies the retention (again on each new day).  Every snapshot
the bridge emits is handed to :meth:`HistoryWorker.submit`; passes are coalesced (one running, the
latest snapshot waiting, older ones dropped), and each one takes the snapshot's sessions in, lets
``core.alerts.refresh`` evaluate the budgets and raise or resolve alerts, takes the alerts nobody has
shown yet (``alerts.take_unnotified``) and lists the unresolved ones.  The result, a
:class:`HistoryUpdate`, reaches the GUI thread through a queued signal.

A history that cannot be opened or written never stops the app: the update carries the problem (the
tray shows it) and the next pass tries again, at most every ``retry_s`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.settings import Settings
from mity_cost.core.spending import alerts, budgets
from mity_cost.core.spending.alerts import Alert
from mity_cost.core.spending.budgets import BudgetStatus
from mity_cost.core.spending.history import History, HistoryError

log = logging.getLogger(__name__)

MAX_LISTED = 5
"""How many unresolved alerts an update lists (newest first): the tray menu shows these."""
REFRESH_MS = 60_000
"""A pass runs this often even without news: budget periods roll over, other processes raise alerts."""
RETRY_S = 30.0
"""The least time between two attempts to open a history that could not be opened."""


@dataclass(frozen=True)
class HistoryUpdate:
    """What one pass found (built on the worker thread, read on the GUI thread)."""

    statuses: tuple[BudgetStatus, ...] = ()
    """Where every budget stands (empty when the pass could not evaluate them)."""
    forecasts: dict[str, float] = field(default_factory=dict)
    to_notify: tuple[Alert, ...] = ()
    """Alerts taken for notification in this pass (each alert is taken once, by one process)."""
    unresolved: tuple[Alert, ...] = ()
    """The newest unresolved alerts, at most ``MAX_LISTED``."""
    unresolved_count: int = 0
    added: int = 0
    """Records new to the history in this pass."""
    problems: tuple[str, ...] = ()
    """What went wrong: the history cannot be used, the budgets file cannot be read..."""
    evaluated: bool = False
    """True when this pass evaluated the budgets (it had a snapshot and a usable history)."""

    @property
    def ok(self) -> bool:
        """Nothing went wrong."""
        return not self.problems


@dataclass(frozen=True)
class _Job:
    snapshot: Snapshot | None
    settings: Settings
    dismiss: tuple[int, ...] = ()


class HistoryWorker(QObject):
    """Runs history passes on one worker thread, coalesced; see the module docstring.

    Signals:
        updated: a :class:`HistoryUpdate` after each pass (on the GUI thread).
    """

    updated = Signal(object)
    _finished = Signal(object)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        history_path: Path | None = None,
        budget_path: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        retry_s: float = RETRY_S,
        refresh_ms: int = REFRESH_MS,
        max_listed: int = MAX_LISTED,
    ) -> None:
        super().__init__(parent)
        self._history_path = history_path
        self._budget_path = budget_path
        self._clock = clock or (lambda: datetime.now().astimezone())
        self._retry_s = retry_s
        self._max_listed = max_listed
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mity-history")
        self._running: Future[HistoryUpdate] | None = None
        self._pending: _Job | None = None
        self._stopped = False
        self._snapshot: Snapshot | None = None
        self._settings = Settings()
        self.last: HistoryUpdate | None = None
        """The latest update posted (``None`` before the first pass ends)."""
        # Worker-thread state (only touched by jobs, which never run two at a time).
        self._history: History | None = None
        self._open_problem: str | None = None
        self._failed_at: float | None = None
        self._retained_on: date | None = None

        # Queued even when a pass ends before its callback is attached (the callback then runs here).
        self._finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.timer = QTimer(self)
        self.timer.setInterval(max(1000, refresh_ms))
        self.timer.timeout.connect(self.refresh)

    # -- GUI thread -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the history (and apply its retention) now, and refresh periodically from here on."""
        if self._stopped:
            return
        self.timer.start()
        self._queue(_Job(self._snapshot, self._settings))

    @Slot(object, object)
    def submit(self, snapshot: Snapshot, settings: Settings) -> None:
        """Take a snapshot in (the latest one waiting wins)."""
        self._snapshot = snapshot
        self._settings = settings
        self._queue(_Job(snapshot, settings))

    @Slot()
    def refresh(self) -> None:
        """Run a pass again on the latest snapshot (the budgets changed, time passed)."""
        self._queue(_Job(self._snapshot, self._settings))

    def dismiss(self, alert_ids: Iterable[int]) -> None:
        """Resolve these alerts (as dismissed by the user), then post a fresh update."""
        ids = tuple(int(i) for i in alert_ids)
        if ids:
            self._queue(_Job(self._snapshot, self._settings, ids))

    def idle(self) -> bool:
        """True when no pass is running or waiting."""
        return self._running is None and self._pending is None

    def stop(self, wait: bool = True) -> None:
        """Stop: drop the waiting pass, let the running one end, close the history on its thread."""
        if self._stopped:
            return
        self._stopped = True
        self.timer.stop()
        self._pending = None
        with contextlib.suppress(RuntimeError):
            self._executor.submit(self._close)
        self._executor.shutdown(wait=wait)

    def _queue(self, job: _Job) -> None:
        if self._stopped:
            return
        if self._running is not None:
            waiting = self._pending
            dismiss = (waiting.dismiss if waiting is not None else ()) + job.dismiss
            self._pending = _Job(job.snapshot, job.settings, dismiss)
            return
        self._start(job)

    def _start(self, job: _Job) -> None:
        try:
            future = self._executor.submit(self._run, job)
        except RuntimeError:  # shut down
            return
        self._running = future
        future.add_done_callback(self._post)

    def _post(self, future: Future[HistoryUpdate]) -> None:
        """On the worker thread: hand the finished pass to the GUI thread."""
        with contextlib.suppress(RuntimeError):  # the worker object is gone (app shutting down)
            self._finished.emit(future)

    @Slot(object)
    def _on_finished(self, future: Future[HistoryUpdate]) -> None:
        if future is not self._running:
            return
        self._running = None
        try:
            update = future.result()
        except Exception as exc:  # _run catches everything it expects; this is a bug, not a crash
            log.exception("history pass failed")
            update = HistoryUpdate(problems=(f"the spending history could not be updated: {exc}",))
        pending, self._pending = self._pending, None
        if pending is not None and not self._stopped:
            self._start(pending)
        self.last = update
        self.updated.emit(update)

    # -- worker thread ----------------------------------------------------------------------------

    def _open(self) -> History | None:
        if self._history is not None:
            return self._history
        if self._failed_at is not None and time.monotonic() - self._failed_at < self._retry_s:
            return None
        try:
            self._history = History(self._history_path)
        except HistoryError as exc:
            self._failed_at = time.monotonic()
            self._open_problem = f"the spending history cannot be used: {exc}"
            log.warning("%s", self._open_problem)
            return None
        except Exception as exc:  # an OS error the store did not wrap: the app goes on without it
            self._failed_at = time.monotonic()
            self._open_problem = f"the spending history cannot be used: {exc}"
            log.exception("could not open the spending history")
            return None
        self._failed_at = None
        self._open_problem = None
        self._retained_on = None
        log.info("spending history: %s", self._history.path)
        return self._history

    def _drop(self) -> None:
        history, self._history = self._history, None
        if history is not None:
            with contextlib.suppress(Exception):
                history.close()
        self._failed_at = time.monotonic()

    def _close(self) -> None:
        history, self._history = self._history, None
        if history is not None:
            with contextlib.suppress(Exception):
                history.close()

    def _run(self, job: _Job) -> HistoryUpdate:
        history = self._open()
        if history is None:
            return HistoryUpdate(problems=(self._open_problem or "the spending history cannot be used",))
        try:
            return self._pass(history, job)
        except HistoryError as exc:
            log.warning("spending history: %s", exc)
            self._drop()
            self._open_problem = f"the spending history cannot be used: {exc}"
            return HistoryUpdate(problems=(self._open_problem,))
        except Exception as exc:
            log.exception("history pass failed")
            return HistoryUpdate(problems=(f"the spending history could not be updated: {exc}",))

    def _pass(self, history: History, job: _Job) -> HistoryUpdate:
        started = time.monotonic()
        update = self._evaluate(history, job)
        log.debug(
            "history pass: %d new record(s), %d alert(s) to notify, %d unresolved, %.0f ms",
            update.added,
            len(update.to_notify),
            update.unresolved_count,
            (time.monotonic() - started) * 1000,
        )
        return update

    def _evaluate(self, history: History, job: _Job) -> HistoryUpdate:
        now = self._clock()
        today = history.today(now)
        if self._retained_on != today:
            removed = history.apply_retention(now)
            self._retained_on = today
            if removed:
                log.info("history retention: %d old record(s) deleted", removed)
        for alert_id in job.dismiss:
            alerts.resolve(history, alert_id, now)
        problems: list[str] = []
        added = 0
        statuses: tuple[BudgetStatus, ...] = ()
        forecasts: dict[str, float] = {}
        evaluated = False
        snapshot = job.snapshot
        if snapshot is not None:
            added = history.ingest_snapshot(snapshot, now)
            found = budgets.load_budgets(self._budget_path)
            problems.extend(found.problems)
            active = snapshot.active
            result = alerts.refresh(
                history,
                found.budgets,
                job.settings,
                budgets.live_sessions(snapshot, job.settings),
                session_id=active.session_id if active is not None else None,
                now=now,
            )
            statuses, forecasts, evaluated = result.statuses, result.forecasts, True
        to_notify = alerts.take_unnotified(history, now)
        unresolved = alerts.list_alerts(history, unresolved=True)
        return HistoryUpdate(
            statuses=statuses,
            forecasts=forecasts,
            to_notify=tuple(to_notify),
            unresolved=tuple(unresolved[: self._max_listed]),
            unresolved_count=len(unresolved),
            added=added,
            problems=tuple(problems),
            evaluated=evaluated,
        )
