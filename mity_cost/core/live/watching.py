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

import contextlib
import errno
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

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

from mity_cost.core.desktop.doctor import NO_EVENT_FILESYSTEMS, filesystem_type
from mity_cost.core.factory.layout import (
    CHAT_DIR,
    FEATURES_DIR,
    RUNTIME_FILE,
    SESSION_FILE,
    WORKSPACES_DIR,
    safe_name,
)
from mity_cost.core.live.snapshot import WatchStatus

log = logging.getLogger(__name__)

PathKind = Literal["session", "runtime", "feature", "dir"]
DirtyCallback = Callable[[set[Path]], None]
StatusCallback = Callable[[WatchStatus], None]
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
_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
_MAX_PASSES = 8
_MAX_RETRY_DELAY = 120.0
_CHAT = CHAT_DIR[0], CHAT_DIR[1]
_FEATURES = FEATURES_DIR


def classify(root: Path | str, path: Path | str, *, is_directory: bool = False) -> PathKind | None:
    """What a changed path means for a root: a session, runtime or feature file, a folder that
    matters (one of the cost folders, an ancestor of them or of the root), or ``None`` (ignore).

    Pure string work, no file access: the watchdog thread calls it for every event.
    """
    root_s = os.fspath(root).rstrip(os.sep) or os.sep
    path_s = os.fspath(path)
    if path_s == root_s:
        return "dir" if is_directory else None
    if root_s.startswith(path_s.rstrip(os.sep) + os.sep):
        return "dir" if is_directory else None
    prefix = root_s if root_s.endswith(os.sep) else root_s + os.sep
    if not path_s.startswith(prefix):
        return None
    parts = path_s[len(prefix) :].split(os.sep)
    if not all(safe_name(p) for p in parts):
        return None
    if is_directory:
        return "dir" if _structural(parts) else None
    n = len(parts)
    if n == 4 and (parts[0], parts[1]) == _CHAT:
        if parts[3] == SESSION_FILE:
            return "session"
        if parts[3] == RUNTIME_FILE:
            return "runtime"
        return None
    if (
        n == 6
        and parts[0] == WORKSPACES_DIR
        and tuple(parts[2:5]) == _FEATURES
        and parts[5].endswith(".json")
        and not parts[5].startswith(".")
    ):
        return "feature"
    return None


def _structural(parts: list[str]) -> bool:
    """A folder on the way to the cost files (``.mity``, ``.mity/chat/<s>``, ``workspaces/<a>/...``)."""
    n = len(parts)
    if parts[0] == CHAT_DIR[0]:
        return n <= 3 and (n == 1 or parts[1] == CHAT_DIR[1])
    if parts[0] == WORKSPACES_DIR:
        return n <= 2 or (n <= 5 and tuple(parts[2:]) == _FEATURES[: n - 2])
    return False


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


@dataclass(frozen=True)
class WatchSpec:
    """One folder to schedule, recursively or not."""

    path: Path
    recursive: bool = False


def _existing(target: Path, recursive: bool) -> WatchSpec:
    """The folder itself if it exists, else its nearest existing ancestor (not recursive)."""
    if target.is_dir():
        return WatchSpec(target, recursive)
    for parent in target.parents:
        if parent.is_dir():
            return WatchSpec(parent, False)
    return WatchSpec(Path(target.anchor or os.sep), False)


def plan_watches(root: Path) -> set[WatchSpec]:
    """The folders to watch for one root, as the filesystem is now (a few stats, one listing)."""
    targets = [
        WatchSpec(root),
        WatchSpec(root / CHAT_DIR[0]),
        WatchSpec(root.joinpath(*CHAT_DIR), recursive=True),
        WatchSpec(root / WORKSPACES_DIR),
    ]
    workspaces = root / WORKSPACES_DIR
    try:
        with os.scandir(workspaces) as entries:
            apps = sorted(e.name for e in entries if safe_name(e.name) and e.is_dir(follow_symlinks=False))
    except OSError:
        apps = []
    targets += [WatchSpec(workspaces / app / Path(*FEATURES_DIR)) for app in apps]
    specs = {_existing(t.path, t.recursive) for t in targets}
    recursive = {s.path for s in specs if s.recursive}
    return {s for s in specs if s.recursive or s.path not in recursive}


def network_filesystem(path: Path, mounts: str | None = None) -> str | None:
    """The filesystem type when the path (or its nearest existing ancestor) is on one that sends no
    change events (NFS, SMB, sshfs, 9p...), else ``None``."""
    existing = _existing(path, False).path
    fstype = filesystem_type(existing, mounts)
    if fstype is None:
        return None
    return fstype if fstype in NO_EVENT_FILESYSTEMS or fstype in ("drvfs", "v9fs") else None


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
        self._roots = _normalise(roots)
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
        self._roots = _normalise(roots)
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


def _normalise(roots: Iterable[Path]) -> tuple[Path, ...]:
    seen: dict[Path, None] = {}
    for root in roots:
        seen.setdefault(Path(os.path.abspath(root)), None)
    return tuple(seen)


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


__all__ = [
    "EVENT_TYPES",
    "RootWatcher",
    "WatchHandler",
    "WatchService",
    "WatchSpec",
    "classify",
    "event_paths",
    "network_filesystem",
    "plan_watches",
]
