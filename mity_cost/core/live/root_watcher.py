"""The watches of one root on one observer: its event handler and its scheduling.

The handler runs on the watchdog thread: it classifies, maps moves to their destination and emits,
with no I/O.  :class:`RootWatcher` (re)schedules the root's folders as they appear and vanish,
reschedules zombie watches and falls back to polling where inotify cannot be used.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from mity_cost.core.factory.layout import classify
from mity_cost.core.live.watch_plan import WatchSpec, network_filesystem, plan_watches

log = logging.getLogger(__name__)

DirtyCallback = Callable[[set[Path]], None]
ObserverFactory = Callable[[], BaseObserver]

EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
"""What is scheduled: no opened / closed-without-write events, so our own reads make no events."""

LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})
INOTIFY_HINT = "raise fs.inotify.max_user_watches / max_user_instances"

_MAX_PASSES = 8


def event_paths(event: FileSystemEvent) -> list[str]:
    """The paths an event may have changed: a move changes both ends (the destination is the one
    an atomic save produces); opened / closed-without-write / attribute events change nothing."""
    if event.event_type in ("opened", "closed_no_write", "attrib"):
        return []
    if event.is_directory and event.event_type == "modified":
        return []
    src = os.fsdecode(event.src_path)
    if event.event_type == "moved":
        dest = os.fsdecode(event.dest_path)
        return [p for p in (dest, src) if p]
    return [src] if src else []


class WatchHandler(FileSystemEventHandler):
    """The watchdog-thread side: classify, map moves to their destination, emit.  No I/O, never
    raises, never blocks (the observer holds its lock while calling us)."""

    def __init__(
        self,
        root: Path,
        emit: DirtyCallback,
        request_sync: Callable[[], None],
        invalidate: Callable[[Path], None] | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self._root_s = os.fspath(root)
        self._emit = emit
        self._request_sync = request_sync
        self._invalidate = invalidate
        self.errors = 0

    def dispatch(self, event: FileSystemEvent) -> None:
        """Called by the observer thread for every event."""
        try:
            dirty: set[Path] = set()
            structural = False
            for path in event_paths(event):
                kind = classify(self._root_s, path, is_directory=event.is_directory)
                if kind is None:
                    continue
                dirty.add(Path(path))
                structural = structural or kind == "dir"
            if structural and self._invalidate is not None and event.event_type in ("deleted", "moved"):
                self._invalidate(Path(os.fsdecode(event.src_path)))  # watches on it are dead or elsewhere
            if dirty:
                self._emit(dirty)
            if structural:
                self._request_sync()
        except Exception:
            self.errors += 1
            log.exception("watch handler failed on %r", event)


@dataclass
class _Scheduled:
    watch: ObservedWatch
    identity: tuple[int, int]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class RootWatcher:
    """The watches of one root on one observer (events, or polling as a fallback).

    Only the service's maintenance thread calls :meth:`sync` and :meth:`stop`.
    """

    def __init__(
        self,
        root: Path,
        emit: DirtyCallback,
        request_sync: Callable[[], None],
        *,
        force_polling: bool = False,
        poll_interval: float = 2.0,
        observer_factory: ObserverFactory | None = None,
        polling_factory: ObserverFactory | None = None,
    ) -> None:
        self.root = root
        self.poll_interval = poll_interval
        self.handler = WatchHandler(root, emit, request_sync, self._invalidate)
        self._invalid: set[Path] = set()
        self._invalid_lock = threading.Lock()
        self._observer_factory: ObserverFactory = observer_factory or Observer
        self._polling_factory: ObserverFactory = polling_factory or (
            lambda: PollingObserver(timeout=self.poll_interval)
        )
        self.observer: BaseObserver | None = None
        self.mode: Literal["events", "polling"] = "events"
        self.reason = ""
        self.restarts = 0
        self.failures: dict[Path, str] = {}
        self.scheduled: dict[WatchSpec, _Scheduled] = {}
        if force_polling:
            self._use_polling("polling was asked for")

    # -- what the status says ---------------------------------------------------------------------

    def messages(self) -> list[str]:
        """Lines for the tray tooltip: degraded mode, missing root, restarts, failures."""
        lines = []
        if self.mode == "polling":
            lines.append(f"{self.root}: polling every {self.poll_interval:g} s ({self.reason})")
        if not self.root.is_dir():
            lines.append(f"{self.root}: does not exist yet; waiting for it to appear")
        if self.restarts:
            lines.append(f"{self.root}: the watcher stopped and was restarted ({self.restarts}x)")
        lines += [f"{path}: cannot watch ({why}); will retry" for path, why in sorted(self.failures.items())]
        return lines

    def _invalidate(self, path: Path) -> None:
        """A folder was deleted or moved away: watches on or under it must be scheduled again even
        if a folder with the same name (and inode number) is back before the emitter noticed."""
        with self._invalid_lock:
            self._invalid.add(path)

    def _use_polling(self, reason: str) -> None:
        self.mode = "polling"
        self.reason = reason
        log.warning("%s: falling back to polling: %s", self.root, reason)

    # -- maintenance ------------------------------------------------------------------------------

    def healthy(self) -> bool:
        """The observer runs and every scheduled watch still has a live emitter on the same folder."""
        if self.observer is None or not self.observer.is_alive():
            return False
        return not self._stale()

    def _stale(self) -> list[WatchSpec]:
        """Scheduled watches that are dead (emitter stopped) or point at a folder that is gone or was
        replaced (a zombie inotify watch after the folder was deleted and created again)."""
        assert self.observer is not None
        alive = {e.watch for e in self.observer.emitters if e.is_alive() and not e.stopped_event.is_set()}
        with self._invalid_lock:
            invalid = set(self._invalid)
        return [
            spec
            for spec, s in self.scheduled.items()
            if s.watch not in alive
            or _identity(spec.path) != s.identity
            or any(spec.path == gone or gone in spec.path.parents for gone in invalid)
        ]

    def sync(self) -> set[Path]:
        """Bring the watches in line with the filesystem; returns folders to rescan (newly watched
        ones, or the whole root after a restart).  Never raises."""
        rescan: set[Path] = set()
        try:
            if self.observer is not None and not self.observer.is_alive():
                self.restarts += 1
                log.warning("%s: the observer thread died; restarting it", self.root)
                self._drop_observer()
                rescan.add(self.root)
            if self.observer is None and not self._start_observer():
                return rescan
            rescan |= self._reschedule()
        except Exception:
            log.exception("%s: watch maintenance failed", self.root)
        return rescan

    def _start_observer(self) -> bool:
        self.scheduled.clear()
        if self.mode == "events":
            fstype = network_filesystem(self.root)
            if fstype:
                self._use_polling(f"{fstype} network filesystem: no change events")
        factory = self._polling_factory if self.mode == "polling" else self._observer_factory
        try:
            observer = factory()
            observer.start()
        except OSError as exc:
            if self.mode == "events" and exc.errno in LIMIT_ERRNOS:
                self._use_polling(f"{exc.strerror or exc}: {INOTIFY_HINT}")
                return self._start_observer()
            self.failures[self.root] = exc.strerror or str(exc)
            return False
        self.observer = observer
        return True

    def _reschedule(self) -> set[Path]:
        """Schedule what the plan wants, drop what it no longer wants or what went stale; plan again
        afterwards, as a folder made between planning and scheduling sends no event to anyone."""
        added: set[Path] = set()
        for _ in range(_MAX_PASSES):
            if self.observer is None:
                break  # the polling observer could not start either: retried later
            desired = plan_watches(self.root)
            stale = set(self._stale())
            with self._invalid_lock:
                self._invalid.clear()
            dropped = stale | {s for s in self.scheduled if s not in desired}
            for spec in dropped:
                self._unschedule(spec)
            self.failures.clear()
            progress = bool(dropped)
            for spec in sorted(desired - set(self.scheduled), key=lambda s: (len(s.path.parts), str(s.path))):
                mode = self.mode
                if self._schedule(spec):
                    added.add(spec.path)
                    progress = True
                elif self.mode != mode:  # switched to polling: start over on the new observer
                    added.add(self.root)
                    progress = True
                    break
            if not progress:
                break
        return added

    def _schedule(self, spec: WatchSpec) -> bool:
        """Schedule one watch; on an inotify limit switch this root to polling.  False if not done."""
        assert self.observer is not None
        identity = _identity(spec.path)
        if identity is None:
            return False  # gone since planning: the next pass plans again
        try:
            watch = self.observer.schedule(
                self.handler, os.fspath(spec.path), recursive=spec.recursive, event_filter=EVENT_TYPES
            )
        except OSError as exc:
            if self.mode == "events" and exc.errno in LIMIT_ERRNOS:
                self._use_polling(f"{exc.strerror or exc}: {INOTIFY_HINT}")
                self._drop_observer()
                self._start_observer()
                return False
            self.failures[spec.path] = exc.strerror or str(exc)
            return False
        self.scheduled[spec] = _Scheduled(watch, identity)
        return True

    def _unschedule(self, spec: WatchSpec) -> None:
        scheduled = self.scheduled.pop(spec)
        if self.observer is not None:
            with contextlib.suppress(KeyError, RuntimeError, OSError):
                self.observer.unschedule(scheduled.watch)

    def _drop_observer(self, timeout: float = 1.0) -> bool:
        observer, self.observer = self.observer, None
        self.scheduled.clear()
        if observer is None:
            return True
        with contextlib.suppress(Exception):
            observer.stop()
        with contextlib.suppress(RuntimeError):
            observer.join(timeout)
        return not observer.is_alive()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop the observer and its threads; True when they all ended in time."""
        return self._drop_observer(timeout)
