"""The watcher's bridge to the GUI: file events in, immutable snapshots out, loading off the GUI thread.

Threads: watchdog's threads only emit dirty paths (a queued ``Signal(object)``) to this object, which
lives in the GUI thread.  Here a coalescer decides when to load: the first change after a quiet spell
at once, a storm in batches (a short window, and a maximum wait so a factory that writes constantly
still shows progress).  One worker thread owns the ``SessionTracker``; at most one load is in flight,
later dirt waits for it.  Results come back by a queued signal and are published as ``snapshot_ready``.
Half-written files are read again after a short delay (a bounded number of times); a rare single-shot
timer rescans everything and checks that the observers still live.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from mity_cost.core.live.snapshot import Snapshot, WatchStatus
from mity_cost.core.live.tracker import SessionTracker, TrackerUpdate
from mity_cost.core.live.watching import WatchService

log = logging.getLogger(__name__)


GIL_SWITCH_INTERVAL = 0.001
"""Seconds a busy thread may hold the GIL while another waits (Python's default is 0.005)."""


def keep_gui_responsive() -> None:
    """Let the GUI thread take the GIL back from a busy worker within a millisecond.

    Every Qt call that releases the GIL (painting, setting a tooltip...) must win it back, and while
    the loader parses a large file each win waits up to the switch interval: at Python's 5 ms, a slot
    making ten such calls stalls for 50 ms.  Process-wide, hence never raised back.  Measured in
    ``bench/bench_watch.py`` (b): median longest stall ~52 ms at 5 ms, ~32 ms at 1 ms.
    """
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)


class Coalescer:
    """When to load pending dirt (pure logic, no Qt, the clock passed in).

    * Leading edge: a change after ``window`` seconds of quiet, with nothing in flight, is due at once.
    * Otherwise it is due ``window`` after the latest change, but never later than ``max_wait`` after
      the oldest pending one, so constant writes still get loaded every ``max_wait``.
    * While a load is in flight (``busy``) nothing is due; when it is ``done`` the rule applies again.
    """

    def __init__(self, window: float = 0.1, max_wait: float = 0.3) -> None:
        self.window = window
        self.max_wait = max_wait
        self._pending: set[Path] = set()
        self._first: float | None = None
        self._last = -math.inf
        self._leading = False
        self.busy = False

    @property
    def pending(self) -> frozenset[Path]:
        """Paths waiting to be loaded."""
        return frozenset(self._pending)

    def add(self, paths: Iterable[Path], now: float) -> None:
        """Record changed paths."""
        paths = set(paths)
        if not paths:
            return
        if not self._pending and not self.busy and now - self._last >= self.window:
            self._leading = True
        if self._first is None:
            self._first = now
        self._pending |= paths
        self._last = now

    def delay(self, now: float) -> float | None:
        """Seconds until the pending dirt is due (0: now), or ``None`` when nothing is to be done."""
        if not self._pending or self.busy:
            return None
        if self._leading:
            return 0.0
        assert self._first is not None
        due = min(self._last + self.window, self._first + self.max_wait)
        return max(0.0, due - now)

    def take(self) -> frozenset[Path]:
        """Hand over the pending dirt to a load (which is then in flight)."""
        batch = frozenset(self._pending)
        self._pending.clear()
        self._first = None
        self._leading = False
        self.busy = True
        return batch

    def done(self) -> None:
        """The load in flight finished."""
        self.busy = False


@dataclass(frozen=True)
class _Job:
    paths: frozenset[Path]
    forced: frozenset[Path]
    full_scan: bool
    roots: tuple[Path, ...] | None
    status: WatchStatus
    always: bool


@dataclass(frozen=True)
class _Result:
    snapshot: Snapshot | None
    retry: frozenset[Path]
    handled: frozenset[Path]


class _Loader:
    """The worker thread: owns the tracker, runs one job at a time, posts each result back."""

    def __init__(self, tracker: SessionTracker, post: Callable[[_Result], None]) -> None:
        self.tracker = tracker
        self._post = post
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="mity-cost-loader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)

    def stop(self, timeout: float) -> bool:
        self._jobs.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=1.0 if self.tracker.garbage else None)
            except queue.Empty:
                self.tracker.release_garbage()
                continue
            if job is None:
                return
            try:
                result = self._do(job)
            except Exception:
                log.exception("loading failed")
                result = _Result(None, frozenset(), job.paths)
            self._post(result)
            self.tracker.release_garbage()

    def _do(self, job: _Job) -> _Result:
        tracker = self.tracker
        changed = job.always
        retry: set[Path] = set()
        steps: list[Callable[[], TrackerUpdate]] = []
        if job.roots is not None:
            roots = job.roots
            steps.append(lambda: tracker.set_roots(roots))
        if job.full_scan:
            steps.append(tracker.full_scan)
        if job.paths - job.forced:
            steps.append(lambda: tracker.update(job.paths - job.forced))
        if job.forced:
            steps.append(lambda: tracker.update(job.forced, force=True))
        for step in steps:
            update = step()
            changed = changed or update.changed
            retry |= update.retry
        snapshot = tracker.snapshot(job.status) if changed else None
        return _Result(snapshot, frozenset(retry), job.paths)


class WatchBridge(QObject):
    """Watches the roots and publishes a ``core.state.Snapshot`` whenever something changed.

    Create and use it in the GUI thread; connect to ``snapshot_ready`` (a ``Snapshot``) and
    ``status_changed`` (a ``WatchStatus``).  ``start()`` begins (a full scan, then events),
    ``stop()`` joins every thread it started, ``rescan()`` reconciles now, ``set_roots()`` switches.
    """

    snapshot_ready = Signal(object)
    status_changed = Signal(object)
    _dirty_arrived = Signal(object)
    _status_arrived = Signal(object)
    _load_finished = Signal(object)

    def __init__(
        self,
        roots: Iterable[Path],
        parent: QObject | None = None,
        *,
        watch: bool = True,
        window_ms: int = 100,
        max_wait_ms: int = 300,
        retry_ms: int = 300,
        max_retries: int = 10,
        rescan_ms: int = 45_000,
        force_polling: bool = False,
        poll_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self._roots = _normalise(roots)
        self._watch = watch
        self._force_polling = force_polling
        self._poll_interval = poll_interval
        self._clock = clock
        self.coalescer = Coalescer(window_ms / 1000, max_wait_ms / 1000)
        self.max_retries = max_retries
        self._retry_ms = retry_ms
        self._rescan_ms = rescan_ms
        self._flush_timer = self._single_shot(self._flush)
        self._retry_timer = self._single_shot(self._retry)
        self._rescan_timer = self._single_shot(self._periodic)
        self._dirty_arrived.connect(self._on_dirty, Qt.ConnectionType.QueuedConnection)
        self._status_arrived.connect(self._on_status, Qt.ConnectionType.QueuedConnection)
        self._load_finished.connect(self._on_loaded, Qt.ConnectionType.QueuedConnection)
        self._service: WatchService | None = None
        self._loader: _Loader | None = None
        self._status = WatchStatus(mode="stopped")
        self._snapshot = Snapshot(status=self._status, roots=self._roots)
        self._forced: set[Path] = set()
        self._retry_counts: dict[Path, int] = {}
        self._retry_due: set[Path] = set()
        self._scan_requested = False
        self._new_roots: tuple[Path, ...] | None = None
        self._first = True
        self._running = False
        self.loads = 0
        """Loads finished so far (for tests and the benchmark)."""

    def _single_shot(self, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(slot)
        return timer

    # -- public API -----------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot (empty until the first load)."""
        return self._snapshot

    @property
    def status(self) -> WatchStatus:
        """How the watching goes."""
        return self._status

    @property
    def roots(self) -> tuple[Path, ...]:
        """The roots watched (absolute)."""
        return self._roots

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._running

    @property
    def service(self) -> WatchService | None:
        """The watch service (``None`` when not watching)."""
        return self._service

    def start(self) -> None:
        """Scan every root, then follow changes."""
        if self._running:
            return
        self._running = True
        self._first = True
        self._loader = _Loader(SessionTracker(self._roots), self._load_finished.emit)
        keep_gui_responsive()
        self._loader.start()
        if self._watch:
            self._service = WatchService(
                self._roots,
                self._dirty_arrived.emit,
                self._status_arrived.emit,
                force_polling=self._force_polling,
                poll_interval=self._poll_interval,
            )
            self._service.start()
        self._scan_requested = True
        self._rescan_timer.start(self._rescan_ms)
        self._pump()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop watching and loading; joins the threads (each wait bounded).  True if all ended."""
        if not self._running:
            return True
        self._running = False
        for timer in (self._flush_timer, self._retry_timer, self._rescan_timer):
            timer.stop()
        ended = True
        if self._service is not None:
            ended = self._service.stop(timeout)
            self._service = None
        if self._loader is not None:
            ended = self._loader.stop(timeout) and ended
            self._loader = None
        self.coalescer = Coalescer(self.coalescer.window, self.coalescer.max_wait)
        self._forced.clear()
        self._retry_counts.clear()
        self._retry_due.clear()
        self._scan_requested = False
        self._set_status(WatchStatus(mode="stopped"))
        return ended

    def rescan(self) -> None:
        """Reconcile every root with the disk now (off the GUI thread)."""
        self._scan_requested = True
        self._pump()

    def set_roots(self, roots: Iterable[Path]) -> None:
        """Watch these roots instead."""
        self._roots = _normalise(roots)
        self._new_roots = self._roots
        self._scan_requested = True
        if self._service is not None:
            self._service.set_roots(self._roots)
        self._pump()

    def notify_dirty(self, paths: Iterable[Path]) -> None:
        """Treat these paths as changed, as the watcher does on an event (any thread)."""
        self._dirty_arrived.emit({Path(p) for p in paths})

    def check(self) -> None:
        """Supervise the watcher now: restart a dead observer, reschedule zombie watches."""
        if self._service is not None:
            self._service.check()

    @property
    def retrying(self) -> frozenset[Path]:
        """Files due to be read again because their latest read found them half-written."""
        return frozenset(self._retry_due)

    # -- slots (GUI thread) ---------------------------------------------------------------------

    @Slot(object)
    def _on_dirty(self, paths: object) -> None:
        if not self._running or not isinstance(paths, set | frozenset):
            return
        for path in paths:
            self._retry_counts.pop(path, None)
        self.coalescer.add(paths, self._clock())
        self._pump()

    @Slot(object)
    def _on_status(self, status: object) -> None:
        if self._running and isinstance(status, WatchStatus):
            self._set_status(status)

    @Slot(object)
    def _on_loaded(self, result: object) -> None:
        if not self._running or not isinstance(result, _Result):
            return
        self.coalescer.done()
        self.loads += 1
        for path in result.handled - result.retry:
            self._retry_counts.pop(path, None)
        for path in result.retry:
            count = self._retry_counts.get(path, 0) + 1
            self._retry_counts[path] = count
            if count <= self.max_retries:
                self._retry_due.add(path)
        if self._retry_due and not self._retry_timer.isActive():
            self._retry_timer.start(self._retry_ms)
        if result.snapshot is not None:
            snapshot = result.snapshot
            if snapshot.status != self._status:
                snapshot = dataclasses.replace(snapshot, status=self._status)
            self._snapshot = snapshot
            self.snapshot_ready.emit(snapshot)
        self._pump()

    @Slot()
    def _flush(self) -> None:
        self._pump()

    @Slot()
    def _retry(self) -> None:
        if not self._running or not self._retry_due:
            return
        paths, self._retry_due = self._retry_due, set()
        self._forced |= paths
        self.coalescer.add(paths, self._clock())
        self._pump()

    @Slot()
    def _periodic(self) -> None:
        if not self._running:
            return
        self.check()
        self.rescan()
        self._rescan_timer.start(self._rescan_ms)

    # -- internals ------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Start a load if one is due and none is in flight, else arm the flush timer."""
        if not self._running or self._loader is None or self.coalescer.busy:
            return
        delay = self.coalescer.delay(self._clock())
        if not self._scan_requested and self._new_roots is None and (delay is None or delay > 0):
            if delay is not None:
                self._flush_timer.start(max(1, math.ceil(delay * 1000)))
            return
        self._flush_timer.stop()
        paths = self.coalescer.take()
        forced = frozenset(paths & self._forced)
        self._forced -= paths
        job = _Job(paths, forced, self._scan_requested, self._new_roots, self._status, self._first)
        self._scan_requested = False
        self._new_roots = None
        self._first = False
        self._loader.submit(job)

    def _set_status(self, status: WatchStatus) -> None:
        if status == self._status:
            return
        self._status = status
        self._snapshot = dataclasses.replace(self._snapshot, status=status)
        self.status_changed.emit(status)
        self.snapshot_ready.emit(self._snapshot)


def _normalise(roots: Iterable[Path]) -> tuple[Path, ...]:
    seen: dict[Path, None] = {}
    for root in roots:
        seen.setdefault(Path(os.path.abspath(root)), None)
    return tuple(seen)
