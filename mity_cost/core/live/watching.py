"""Watch factory roots with watchdog and report which cost files may have changed; never parse.

Events are hints, not facts: the watcher only says "these paths are dirty" (``on_dirty``) and how the
watching goes (``on_status``); the tracker reads the files.  Per root it watches a handful of folders
(the root, ``.mity``, ``.mity/chat`` recursively, ``workspaces`` and each app's ``features`` folder),
or the nearest existing ancestor of any that does not exist yet, so folders may appear, vanish and
come back.  A maintenance thread (re)schedules watches when folders change, restarts a dead observer,
reschedules zombie watches (a deleted and recreated folder) and falls back to polling where inotify
cannot be used (watch limit reached, network filesystems).  Qt-free.
"""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, Literal

from mity_cost.core.factory.layout import normalise_roots
from mity_cost.core.live.root_watcher import DirtyCallback, ObserverFactory, RootWatcher
from mity_cost.core.live.snapshot import WatchStatus

log = logging.getLogger(__name__)

StatusCallback = Callable[[WatchStatus], None]

_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
_MAX_RETRY_DELAY = 120.0


class WatchService:
    """Watch several roots; call ``on_dirty(paths)`` (any thread) when files or folders that matter
    may have changed, and ``on_status(status)`` when the way of watching changes.

    A path in the dirty set is a session / runtime / feature file, or a folder to rescan (a root
    after an inotify queue overflow or a restart).  ``check()`` asks the maintenance thread to verify
    the observers (call it from a rare timer); ``stop()`` joins every thread it started.
    """

    def __init__(
        self,
        roots: Iterable[Path],
        on_dirty: DirtyCallback,
        on_status: StatusCallback | None = None,
        *,
        force_polling: bool = False,
        poll_interval: float = 2.0,
        retry_delay: float = 2.0,
        observer_factory: ObserverFactory | None = None,
        polling_factory: ObserverFactory | None = None,
    ) -> None:
        self._roots = normalise_roots(roots)
        self._on_dirty = on_dirty
        self._on_status = on_status
        self._options = {"force_polling": force_polling, "poll_interval": poll_interval}
        self._observer_factory = observer_factory
        self._polling_factory = polling_factory
        self.retry_delay = retry_delay
        self.watchers: dict[Path, RootWatcher] = {}
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._requested = 0
        self._handled = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = WatchStatus(mode="stopped")

    @property
    def roots(self) -> tuple[Path, ...]:
        """The roots watched (absolute)."""
        return self._roots

    @property
    def status(self) -> WatchStatus:
        """The latest status."""
        return self._status

    @property
    def restarts(self) -> int:
        """How many times a dead observer was restarted, over all roots."""
        return sum(w.restarts for w in list(self.watchers.values()))

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the maintenance thread; it schedules the watches (the caller does not wait)."""
        if self.running:
            return
        self._stopping.clear()
        _OverflowRelay.attach(self)
        _quiet_duplicate_callback_warning()
        self._thread = threading.Thread(target=self._run, name="mity-cost-watch", daemon=True)
        self._thread.start()
        self.request_sync()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop watching and join every thread (each wait bounded); True when all ended in time."""
        _OverflowRelay.detach(self)
        self._stopping.set()
        self._wake.set()
        ended = True
        if self._thread is not None:
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
            self._thread = None
        for watcher in list(self.watchers.values()):
            ended = watcher.stop(timeout / 2) and ended
        self.watchers.clear()
        self._publish(WatchStatus(mode="stopped"))
        return ended

    def set_roots(self, roots: Iterable[Path]) -> None:
        """Watch these roots instead (applied by the maintenance thread)."""
        self._roots = normalise_roots(roots)
        self.request_sync()

    def check(self) -> None:
        """Ask for a supervision pass: restart dead observers, reschedule zombie watches."""
        self.request_sync()

    def request_sync(self) -> None:
        """Wake the maintenance thread (thread-safe, never blocks long)."""
        with self._idle:
            self._requested += 1
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the maintenance thread has handled every request made so far (for tests)."""
        with self._idle:
            target = self._requested
            return self._idle.wait_for(lambda: self._handled >= target or self._stopping.is_set(), timeout)

    def request_rescan(self) -> None:
        """Events were lost (queue overflow): report every root dirty so it is rescanned."""
        self._emit(set(self._roots))

    # -- the maintenance thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.retry_delay
        while not self._stopping.is_set():
            retry = any(w.failures or w.observer is None for w in self.watchers.values())
            delay = min(delay * 2, _MAX_RETRY_DELAY) if retry else self.retry_delay
            if not self._wake.wait(delay / 2 if retry else None):  # backs off: 1, 2, 4 ... 60 s
                with self._idle:
                    self._requested += 1  # a retry pass counts as a request (for wait_idle)
            if self._stopping.is_set():
                break
            self._wake.clear()
            with self._idle:
                requested = self._requested
            self._sync_all()
            with self._idle:
                self._handled = requested
                self._idle.notify_all()
        with self._idle:
            self._idle.notify_all()

    def _sync_all(self) -> None:
        try:
            roots = self._roots
            for gone in [r for r in self.watchers if r not in roots]:
                self.watchers.pop(gone).stop()
            rescan: set[Path] = set()
            for root in roots:
                watcher = self.watchers.get(root)
                if watcher is None:
                    watcher = self.watchers[root] = RootWatcher(
                        root,
                        self._emit,
                        self.request_sync,
                        force_polling=bool(self._options["force_polling"]),
                        poll_interval=float(self._options["poll_interval"]),
                        observer_factory=self._observer_factory,
                        polling_factory=self._polling_factory,
                    )
                rescan |= watcher.sync()
            if rescan:
                self._emit(rescan)
            self._publish(self._compute_status())
        except Exception:
            log.exception("watch maintenance failed")

    def _compute_status(self) -> WatchStatus:
        watchers = list(self.watchers.values())
        mode: Literal["events", "polling"] = (
            "polling" if any(w.mode == "polling" for w in watchers) else "events"
        )
        return WatchStatus(mode=mode, messages=tuple(m for w in watchers for m in w.messages()))

    def _publish(self, status: WatchStatus) -> None:
        if status == self._status:
            return
        self._status = status
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:
                log.exception("status callback failed")

    def _emit(self, paths: set[Path]) -> None:
        if self._stopping.is_set() or not paths:
            return
        try:
            self._on_dirty(paths)
        except Exception:
            log.exception("dirty callback failed")


def _quiet_duplicate_callback_warning() -> None:
    """watchdog warns when a fast ``mkdir -p`` makes it add the same inotify callback twice; that is
    harmless, and under ``-W error`` the warning would kill its inotify thread."""
    warnings.filterwarnings("ignore", message=r"Callback with id .* already exists", category=RuntimeWarning)


class _OverflowRelay(logging.Handler):
    """watchdog only logs an inotify queue overflow; turn that log line into a rescan request."""

    _services: ClassVar[weakref.WeakSet[WatchService]] = weakref.WeakSet()
    _instance: ClassVar[_OverflowRelay | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" not in record.getMessage().lower():
                return
            for service in list(self._services):
                service.request_rescan()
        except Exception:  # noqa: BLE001 - logging handlers must not raise
            self.handleError(record)

    @classmethod
    def attach(cls, service: WatchService) -> None:
        with cls._lock:
            cls._services.add(service)
            if cls._instance is None:
                cls._instance = cls(level=logging.WARNING)
                logging.getLogger(_OVERFLOW_LOGGER).addHandler(cls._instance)

    @classmethod
    def detach(cls, service: WatchService) -> None:
        with cls._lock:
            cls._services.discard(service)
