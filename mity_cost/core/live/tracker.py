"""The per-file state of every watched session and feature: reload what is dirty, keep the last good
state when a read fails, build immutable snapshots for the UI.

A ``SessionTracker`` is driven by one worker thread (it is not thread-safe itself): ``update(paths)``
with the watcher's dirty paths, ``full_scan()`` for the periodic reconcile, ``snapshot(status)`` for
the UI.  A file whose (size, mtime_ns, inode) did not change is not read again.  Large sessions are
parsed in slices so that a 30 MB ``cost.json`` never holds the GIL (and so the GUI) for long, and the
big documents it replaces are freed in slices too (``release_garbage``).  Qt-free.
"""

from __future__ import annotations

import gc
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from mity_cost.core.factory import layout
from mity_cost.core.factory.documents import SESSION_ADAPTER, LlmUsageRecord, SessionCostState
from mity_cost.core.factory.figures import session_figures
from mity_cost.core.factory.layout import classify, normalise_roots
from mity_cost.core.factory.loading import (
    LoadedFeature,
    LoadedSession,
    LoadError,
    gc_paused,
    load_feature,
    load_session,
    parse_session,
    read_bounded,
)
from mity_cost.core.live.snapshot import SessionView, Snapshot, WatchStatus

LARGE_FILE_BYTES = 1024 * 1024
"""Sessions at least this big are parsed in slices (about 4,000 LLM records)."""
RUNTIME_MAX_BYTES = 4 * 1024 * 1024
"""``runtime.json`` larger than this is not read."""
BIG_DOCUMENT_RECORDS = 5000
"""Replaced documents with at least this many records are freed in slices by ``release_garbage``."""
_SLICE_BYTES = 256 * 1024
_FREE_SLICE = 2000
_RECORDS_ADAPTER: TypeAdapter[list[LlmUsageRecord]] = TypeAdapter(list[LlmUsageRecord])
_BOM = b"\xef\xbb\xbf"
_LLM_KEY = b'\n  "llmUsage": ['
_SEARCH_WINDOW = 1024 * 1024
_YIELD_SECONDS = 0.0005
"""Pause between slices.  ``sleep(0)`` is not enough: releasing and retaking the GIL at once resets
CPython's switch request, and a waiting GUI thread can then starve for tens of milliseconds."""
_LLM_END = b"\n  ]"
_RECORD_GAP = b"\n    },"

Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class TrackerUpdate:
    """What an ``update`` / ``full_scan`` did: whether the snapshot changed, and which files should
    be read again soon (half-written or momentarily unreadable)."""

    changed: bool = False
    retry: frozenset[Path] = frozenset()


@dataclass
class _Session:
    root: Path
    path: Path
    loaded: LoadedSession | None = None
    error: LoadError | None = None
    updating: bool = False
    changed_at: float = 0.0
    seen: list[float] = field(default_factory=list)
    stamp: Stamp | None = None
    fingerprint: tuple[Any, ...] | None = None
    runtime: dict[str, Any] | None = None
    runtime_stamp: Stamp | None = None


@dataclass
class _Feature:
    root: Path
    app: str
    path: Path
    loaded: LoadedFeature | None = None
    error: LoadError | None = None
    stamp: Stamp | None = None


def _stamp(info: os.stat_result) -> Stamp:
    return info.st_size, info.st_mtime_ns, info.st_ino


def _fingerprint(doc: SessionCostState) -> tuple[Any, ...]:
    """Cheap stand-in for "the content changed" (comparing 100,000 records would not be cheap)."""
    total = doc["sessionCost"]["total"]
    return (
        doc["updatedAt"],
        len(doc["llmUsage"]),
        len(doc["executionCosts"]),
        len(doc["featureCosts"]),
        total["min"],
        total["expected"],
        total["max"],
        doc["infraCost"]["total"]["expected"],
    )


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class SessionTracker:
    """Every session and feature file under the roots, as last read."""

    def __init__(self, roots: Iterable[Path] = (), *, clock: Callable[[], float] = time.time) -> None:
        self._roots = normalise_roots(roots)
        self._clock = clock
        self._sessions: dict[Path, _Session] = {}
        self._features: dict[Path, _Feature] = {}
        self._graveyard: list[LoadedSession] = []
        self._changed = False
        self._retry: set[Path] = set()

    # -- inputs ---------------------------------------------------------------------------------

    @property
    def roots(self) -> tuple[Path, ...]:
        """The roots tracked (absolute)."""
        return self._roots

    def set_roots(self, roots: Iterable[Path]) -> TrackerUpdate:
        """Track these roots; forget what lies outside them (call ``full_scan`` to read the new ones)."""
        self._begin()
        self._roots = normalise_roots(roots)
        for key, entry in list(self._sessions.items()):
            if entry.root not in self._roots:
                self._drop_session(key)
        for key, feature in list(self._features.items()):
            if feature.root not in self._roots:
                self._drop_feature(key)
        return self._end()

    def update(self, paths: Iterable[Path], *, force: bool = False) -> TrackerUpdate:
        """(Re)read what these dirty paths may have changed: a session, runtime or feature file, or
        every such file under a folder.  ``force`` reads even when the file's stamp is unchanged."""
        self._begin()
        for path in paths:
            self._dirty(Path(path), force)
        return self._end()

    def full_scan(self, roots: Iterable[Path] | None = None) -> TrackerUpdate:
        """Reconcile with the disk: find files added, changed or removed behind the watcher's back."""
        self._begin()
        for root in normalise_roots(roots) if roots is not None else self._roots:
            if root in self._roots:
                self._scan(root, None)
        return self._end()

    def pending_retries(self) -> frozenset[Path]:
        """Files whose latest read failed in a way that may pass (half-written, unreadable)."""
        entries: list[_Session | _Feature] = [*self._sessions.values(), *self._features.values()]
        return frozenset(e.path for e in entries if e.error is not None and e.error.retryable)

    # -- output ---------------------------------------------------------------------------------

    def snapshot(self, status: WatchStatus | None = None) -> Snapshot:
        """An immutable view of everything, the most recently changed session first."""
        entries = sorted(self._sessions.values(), key=lambda e: (-e.changed_at, str(e.path)))
        views = tuple(
            SessionView(
                key=str(e.path.parent),
                root=e.root,
                session_dir=e.path.parent,
                loaded=e.loaded,
                error=e.error,
                updating=e.updating,
                changed_at=e.changed_at,
                execution_seen_at=tuple(e.seen),
                runtime=e.runtime,
            )
            for e in entries
        )
        features = sorted(self._features.values(), key=lambda f: (f.app, str(f.path)))
        return Snapshot(
            sessions=views,
            features=tuple(f.loaded for f in features if f.loaded is not None),
            feature_errors=tuple(f.error for f in features if f.error is not None),
            status=status if status is not None else WatchStatus(),
            roots=self._roots,
        )

    def release_garbage(self, max_seconds: float = 0.05) -> bool:
        """Free replaced big documents that nobody else holds any more, a slice at a time (freeing
        100,000 records in one go would hold the GIL for ~100 ms).  True while some remain."""
        deadline = time.perf_counter() + max_seconds
        kept: list[LoadedSession] = []
        while self._graveyard and time.perf_counter() < deadline:
            item = self._graveyard.pop()
            if sys.getrefcount(item) > 2:  # this local + the call's argument
                kept.append(item)
                continue
            doc = item.doc
            records = doc["llmUsage"]
            if sys.getrefcount(doc) > 3 or sys.getrefcount(records) > 3:
                kept.append(item)
                continue
            while records:
                del records[-_FREE_SLICE:]
            del records, doc, item
        self._graveyard.extend(kept)
        return bool(self._graveyard)

    @property
    def garbage(self) -> int:
        """How many replaced big documents wait to be freed."""
        return len(self._graveyard)

    # -- internals ------------------------------------------------------------------------------

    def _begin(self) -> None:
        self._changed = False
        self._retry = set()

    def _end(self) -> TrackerUpdate:
        return TrackerUpdate(self._changed, frozenset(self._retry))

    def _dirty(self, path: Path, force: bool) -> None:
        for root in self._roots:
            kind = classify(root, path) or classify(root, path, is_directory=True)
            if kind == "session":
                self._refresh_session(root, path, force)
            elif kind == "runtime":
                entry = self._sessions.get(path.with_name(layout.SESSION_FILE))
                if entry is not None:
                    self._refresh_runtime(entry, force)
            elif kind == "feature":
                self._refresh_feature(root, path.relative_to(root).parts[1], path, force)
            elif kind == "dir":
                self._scan(root, None if _inside(root, path) else path)

    def _scan(self, root: Path, under: Path | None) -> None:
        """Read every session and feature file under ``under`` (the whole root when ``None``) and
        forget the ones that are gone."""
        sessions = [s.path for s in layout.session_files(root)]
        features = [(f.app, f.path) for f in layout.feature_files(root)]
        if under is not None:
            sessions = [p for p in sessions if _inside(p, under)]
            features = [(a, p) for a, p in features if _inside(p, under)]
        for path in sessions:
            self._refresh_session(root, path, False)
        for app, path in features:
            self._refresh_feature(root, app, path, False)
        listed = set(sessions) | {p for _, p in features}
        for key, entry in list(self._sessions.items()):
            if entry.root == root and key not in listed and (under is None or _inside(key, under)):
                self._refresh_session(root, key, False)  # stat confirms it is gone (or now refused)
        for key, feature in list(self._features.items()):
            if feature.root == root and key not in listed and (under is None or _inside(key, under)):
                self._refresh_feature(root, feature.app, key, False)

    def _acceptable(self, root: Path, path: Path, info: os.stat_result) -> bool:
        """A regular file whose real path stays inside the root (as ``core.layout`` requires)."""
        if not stat.S_ISREG(info.st_mode):
            return False
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        return real.startswith(real_root.rstrip(os.sep) + os.sep)

    def _refresh_session(self, root: Path, path: Path, force: bool) -> None:
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._drop_session(path)
            return
        except OSError as exc:
            entry = self._sessions.setdefault(path, _Session(root, path, changed_at=self._clock()))
            self._set_error(entry, LoadError(path, "unreadable", exc.strerror or str(exc)))
            return
        if not self._acceptable(root, path, info):
            self._drop_session(path)
            return
        known = self._sessions.get(path)
        is_new = known is None
        entry = known or _Session(root, path, changed_at=min(info.st_mtime_ns / 1e9, self._clock()))
        self._refresh_runtime(entry, force)
        stamp = _stamp(info)
        if entry.stamp == stamp and not force:
            return
        result = load_large_session(path) if info.st_size >= LARGE_FILE_BYTES else load_session(path)
        if isinstance(result, LoadError) and result.kind == "missing" and not path.exists():
            self._drop_session(path)
            return
        entry.stamp = stamp
        if is_new:
            self._sessions[path] = entry
            self._changed = True
        if isinstance(result, LoadError):
            self._set_error(entry, result)
            return
        self._set_loaded(entry, result, first=entry.loaded is None, is_new=is_new)

    def _set_error(self, entry: _Session, error: LoadError) -> None:
        updating = error.kind == "incomplete"
        if entry.error != error or entry.updating != updating:
            self._changed = True
        entry.error, entry.updating = error, updating
        if error.retryable:
            self._retry.add(entry.path)

    def _set_loaded(self, entry: _Session, loaded: LoadedSession, *, first: bool, is_new: bool) -> None:
        now = self._clock()
        fingerprint = _fingerprint(loaded.doc)
        if first and not is_new:
            entry.changed_at = now  # good at last after failed reads
        elif not first and fingerprint != entry.fingerprint:
            entry.changed_at = now
        count = len(loaded.doc["executionCosts"])
        if count < len(entry.seen):
            del entry.seen[count:]
        else:
            entry.seen += [entry.changed_at if first else now] * (count - len(entry.seen))
        if entry.loaded is not None:
            self._bury(entry.loaded)
        entry.loaded, entry.error, entry.updating, entry.fingerprint = loaded, None, False, fingerprint
        self._changed = True

    def _drop_session(self, path: Path) -> None:
        entry = self._sessions.pop(path, None)
        if entry is None:
            return
        if entry.loaded is not None:
            self._bury(entry.loaded)
        self._changed = True

    def _bury(self, loaded: LoadedSession) -> None:
        if len(loaded.doc["llmUsage"]) >= BIG_DOCUMENT_RECORDS:
            self._graveyard.append(loaded)

    def _refresh_runtime(self, entry: _Session, force: bool) -> None:
        path = entry.path.with_name(layout.RUNTIME_FILE)
        try:
            info = os.stat(path)
        except OSError:
            if entry.runtime is not None:
                entry.runtime, entry.runtime_stamp = None, None
                self._changed = True
            return
        stamp = _stamp(info)
        if stamp == entry.runtime_stamp and not force:
            return
        raw = read_bounded(path, RUNTIME_MAX_BYTES)
        value: Any = None
        if not isinstance(raw, LoadError):
            try:
                value = json.loads(raw.data)
            except (ValueError, RecursionError):
                value = None
        if not isinstance(value, dict):
            if not isinstance(raw, LoadError) or raw.retryable:
                self._retry.add(path)  # half-written: keep the last good one, read again soon
            return
        entry.runtime_stamp = stamp
        if value != entry.runtime:
            entry.runtime = value
            self._changed = True

    def _refresh_feature(self, root: Path, app: str, path: Path, force: bool) -> None:
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._drop_feature(path)
            return
        except OSError as exc:
            entry = self._feature_entry(root, app, path)
            self._set_feature_error(entry, LoadError(path, "unreadable", exc.strerror or str(exc)))
            return
        if not self._acceptable(root, path, info):
            self._drop_feature(path)
            return
        entry = self._feature_entry(root, app, path)
        stamp = _stamp(info)
        if entry.stamp == stamp and not force:
            return
        entry.stamp = stamp
        result = load_feature(path, app)
        if isinstance(result, LoadError):
            self._set_feature_error(entry, result)
            return
        entry.loaded, entry.error = result, None
        self._changed = True

    def _feature_entry(self, root: Path, app: str, path: Path) -> _Feature:
        entry = self._features.get(path)
        if entry is None:
            entry = self._features[path] = _Feature(root, app, path)
            self._changed = True
        return entry

    def _set_feature_error(self, entry: _Feature, error: LoadError) -> None:
        if entry.error != error:
            entry.error = error
            self._changed = True
        if error.retryable:
            self._retry.add(entry.path)

    def _drop_feature(self, path: Path) -> None:
        if self._features.pop(path, None) is not None:
            self._changed = True


# -- large sessions, parsed in slices ----------------------------------------------------------------


def load_large_session(path: Path) -> LoadedSession | LoadError:
    """``load_session`` for big files: same result, but parsed in slices that each hold the GIL for
    a few milliseconds (falls back to ``parse_session`` for anything unusual)."""
    raw = read_bounded(path)
    if isinstance(raw, LoadError):
        return raw
    with gc_paused():  # automatic collections mid-slice would stall every thread; the slicer collects
        result = parse_session_sliced(raw.data, path)
    if result is None:
        result = parse_session(raw.data, path)
    if isinstance(result, LoadError):
        return result
    return LoadedSession(path, result.doc, result.figures, raw.size, raw.mtime_ns)


def parse_session_sliced(data: bytes, path: Path | None = None) -> LoadedSession | LoadError | None:
    """Parse a pretty-printed ``cost.json`` (serde's or ``json.dumps(indent=2)`` layout) with its
    ``llmUsage`` records validated a slice at a time.

    Returns ``None`` when the layout is not the expected one or anything fails, so the caller falls
    back to ``parse_session`` (which then gives the exact error).  Splits are only made at newlines
    (never inside a JSON string); a split at a wrong depth leaves an unbalanced slice that fails to
    parse, so a success is the same document ``parse_session`` returns.
    """
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    head = body.lstrip()[:1]
    if head == b"{" and not body.rstrip().endswith(b"}"):
        if _find(body, b"\n}", 0, len(body)) >= 0:
            return None  # the top-level object closed, then garbage: let the full parse say where
        return LoadError(path, "incomplete", "the file ends early (still being written?)")
    found = _find(body, _LLM_KEY, 0, len(body))
    if head != b"{" or found < 0 or _find(body, _LLM_KEY, found + 1, len(body)) >= 0:
        return None  # not the layout we split (or a duplicated key): the full parse decides
    start = found + len(_LLM_KEY)
    end = _find(body, _LLM_END, start, len(body))
    if end < 0:
        return None
    view = memoryview(body)
    try:
        doc = SESSION_ADAPTER.validate_json(bytes(view[:start]) + bytes(view[end + len(_LLM_END) - 1 :]))
        if doc["llmUsage"]:
            return None
        records: list[LlmUsageRecord] = []
        zones: dict[timedelta | None, tzinfo] = {}
        pos, slices = start, 0
        while pos < end:
            cut = body.find(_RECORD_GAP, pos + _SLICE_BYTES, end) if pos + _SLICE_BYTES < end else -1
            stop = end if cut < 0 else cut + len(_RECORD_GAP) - 1
            chunk = _RECORDS_ADAPTER.validate_json(b"[" + view[pos:stop] + b"]")
            _share_zones(chunk, zones)
            records.extend(chunk)
            pos, slices = stop + 1, slices + 1
            if not gc.isenabled():
                # records with a dict inside (unknown models) are tracked by the collector: age them
                # a slice at a time rather than all 100,000 in one long young collection later
                gc.collect(1 if slices % 8 == 0 else 0)
            time.sleep(_YIELD_SECONDS)  # really let go of the GIL: a thread waiting for it runs now
    except Exception:  # noqa: BLE001 - anything unusual: the caller parses the whole file instead
        return None
    finally:
        view.release()
    doc["llmUsage"] = records
    return LoadedSession(path, doc, session_figures(doc), size=len(data))


def _share_zones(records: list[LlmUsageRecord], zones: dict[timedelta | None, tzinfo]) -> None:
    """Give every timestamp a shared ``timezone`` instead of its own pydantic ``TzInfo``: 100,000
    garbage-collected tzinfo objects per document make every full collection crawl (the same
    instants, compared and printed the same)."""
    for record in records:
        stamp = record["timestamp"]
        offset = stamp.utcoffset()
        zone = zones.get(offset)
        if zone is None:
            zone = zones[offset] = UTC if not offset else timezone(offset)
        record["timestamp"] = stamp.replace(tzinfo=zone)


def _find(data: bytes, sub: bytes, start: int, end: int) -> int:
    """``data.find(sub, start, end)`` a megabyte at a time, so other threads get the GIL between
    windows (one search through 30 MB holds it for ~25 ms)."""
    pos = start
    while pos < end:
        stop = min(end, pos + _SEARCH_WINDOW + len(sub) - 1)
        hit = data.find(sub, pos, stop)
        if hit >= 0:
            return hit
        pos += _SEARCH_WINDOW
    return -1
