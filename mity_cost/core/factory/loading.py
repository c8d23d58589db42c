"""Bytes in, a checked document or a precise error out; no exception escapes, whatever the bytes."""

from __future__ import annotations

import contextlib
import gc
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from mity_cost.core.factory.documents import (
    FEATURE_ADAPTER,
    SESSION_ADAPTER,
    FeatureCostDelta,
    SessionCostState,
)
from mity_cost.core.factory.figures import Consistency, SessionFigures, session_figures
from mity_cost.core.factory.layout import feature_files, session_files

MAX_FILE_BYTES = 512 * 1024 * 1024
"""Files larger than this are refused unread (a 100,000-call session is about 30 MB)."""

ErrorKind = Literal["incomplete", "invalid", "unreadable", "too-large", "missing"]
_BOM = b"\xef\xbb\xbf"
_INCOMPLETE_HINTS = ("EOF while parsing", "unexpected end")


@dataclass(frozen=True)
class LoadError:
    """Why a file could not be read.

    ``incomplete`` means the file is empty or cut short (probably still being written: try again
    later, keep the last good state); ``invalid`` means it is complete but wrong.
    """

    path: Path | None
    kind: ErrorKind
    message: str
    location: str | None = None

    @property
    def retryable(self) -> bool:
        """True when reading again later may succeed without anyone fixing the file."""
        return self.kind in ("incomplete", "unreadable", "missing")

    def describe(self) -> str:
        """One line for a person: which file, where in it, why."""
        where = f" at {self.location}" if self.location else ""
        name = str(self.path) if self.path else "<data>"
        return f"{name}: {self.kind}{where}: {self.message}"


@dataclass(frozen=True)
class LoadedSession:
    """A checked ``cost.json``."""

    path: Path | None
    doc: SessionCostState
    figures: SessionFigures
    """Computed once, when the document was checked (``factory.figures``)."""
    size: int = 0
    mtime_ns: int = 0

    @property
    def session_id(self) -> str:
        """The session's id as the factory wrote it."""
        return self.doc["sessionId"]

    @property
    def consistency(self) -> Consistency:
        """Whether the ledger agrees with the records (part of the figures)."""
        return self.figures.consistency


@dataclass(frozen=True)
class LoadedFeature:
    """A checked feature cost delta, with the app it belongs to."""

    path: Path | None
    app: str
    doc: FeatureCostDelta


@dataclass(frozen=True)
class _Raw:
    data: bytes
    size: int
    mtime_ns: int


def _error_from_validation(exc: ValidationError, path: Path | None) -> LoadError:
    first = exc.errors(include_url=False)[0]
    message = str(first.get("msg", "invalid"))
    location = ".".join(str(part) for part in first.get("loc", ())) or None
    if first.get("type") == "json_invalid":
        kind: ErrorKind = "incomplete" if any(h in message for h in _INCOMPLETE_HINTS) else "invalid"
        return LoadError(path, kind, message.removeprefix("Invalid JSON: "), None)
    count = exc.error_count()
    if count > 1:
        message += f" (and {count - 1} more problem{'s' if count > 2 else ''})"
    return LoadError(path, "invalid", message, location)


def _strip(data: bytes) -> bytes | None:
    """Drop a UTF-8 byte-order mark; ``None`` for an empty or blank file.

    Trailing NUL bytes are dropped too: a writer that preallocates a file and fills it in place
    leaves them behind the part it has written, so the rest reads as cut short (incomplete).
    """
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    data = data.rstrip(b"\0")
    return data if data.strip() else None


def read_bounded(path: Path, max_bytes: int = MAX_FILE_BYTES) -> _Raw | LoadError:
    """Read a regular file of at most ``max_bytes``; anything else is a ``LoadError``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return LoadError(path, "missing", "the file is gone")
    except OSError as exc:
        return LoadError(path, "unreadable", exc.strerror or str(exc))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return LoadError(path, "invalid", "not a regular file")
        if info.st_size > max_bytes:
            return LoadError(path, "too-large", f"{info.st_size} bytes, the limit is {max_bytes}")
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 4 * 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            return LoadError(path, "too-large", f"more than {max_bytes} bytes")
        return _Raw(data, len(data), info.st_mtime_ns)
    except OSError as exc:
        return LoadError(path, "unreadable", exc.strerror or str(exc))
    finally:
        os.close(fd)


_GC_PAUSE_BYTES = 1024 * 1024


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection inside (reference counting goes on); the collector is
    switched back on only if it was on (a caller that turned it off keeps it off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_session(data: bytes, path: Path | None = None) -> LoadedSession | LoadError:
    """Parse and check a ``cost.json``; never raises."""
    try:
        body = _strip(data)
        if body is None:
            return LoadError(path, "incomplete", "the file is empty (still being written?)")
        # A 100,000-record session allocates about a million dicts, strings and datetimes, none of
        # them garbage: left on, the collector would run a thousand times over the growing tree,
        # about a fifth of the parse time.  The young collection left to do runs at the next
        # allocation.  (The tray's large files take ``tracker.load_large_session``, which collects
        # slice by slice.)
        with gc_paused() if len(body) >= _GC_PAUSE_BYTES else contextlib.nullcontext():
            doc = SESSION_ADAPTER.validate_json(body)
        return LoadedSession(path, doc, session_figures(doc), size=len(data))
    except ValidationError as exc:
        return _error_from_validation(exc, path)
    except Exception as exc:  # noqa: BLE001 - the boundary: no exception escapes, whatever the bytes
        return LoadError(path, "invalid", f"{type(exc).__name__}: {exc}")


def parse_feature(data: bytes, app: str, path: Path | None = None) -> LoadedFeature | LoadError:
    """Parse and check a feature cost delta; never raises."""
    try:
        body = _strip(data)
        if body is None:
            return LoadError(path, "incomplete", "the file is empty (still being written?)")
        return LoadedFeature(path, app, FEATURE_ADAPTER.validate_json(body))
    except ValidationError as exc:
        return _error_from_validation(exc, path)
    except Exception as exc:  # noqa: BLE001 - the boundary: no exception escapes, whatever the bytes
        return LoadError(path, "invalid", f"{type(exc).__name__}: {exc}")


def load_session(path: Path, max_bytes: int = MAX_FILE_BYTES) -> LoadedSession | LoadError:
    """Read and check one ``cost.json``."""
    raw = read_bounded(path, max_bytes)
    if isinstance(raw, LoadError):
        return raw
    result = parse_session(raw.data, path)
    if isinstance(result, LoadError):
        return result
    return LoadedSession(path, result.doc, result.figures, raw.size, raw.mtime_ns)


def load_feature(path: Path, app: str, max_bytes: int = MAX_FILE_BYTES) -> LoadedFeature | LoadError:
    """Read and check one feature cost file."""
    raw = read_bounded(path, max_bytes)
    if isinstance(raw, LoadError):
        return raw
    return parse_feature(raw.data, app, path)


@dataclass(frozen=True)
class RootSnapshot:
    """Everything read from one root: good documents and the errors of the bad ones."""

    root: Path
    sessions: tuple[LoadedSession, ...]
    features: tuple[LoadedFeature, ...]
    errors: tuple[LoadError, ...]


def load_root(root: Path) -> RootSnapshot:
    """Load every session and feature file under the root; bad files become errors, not crashes."""
    sessions: list[LoadedSession] = []
    features: list[LoadedFeature] = []
    errors: list[LoadError] = []
    for sf in session_files(root):
        result = load_session(sf.path)
        (errors if isinstance(result, LoadError) else sessions).append(result)  # type: ignore[arg-type]
    for ff in feature_files(root):
        feature = load_feature(ff.path, ff.app)
        (errors if isinstance(feature, LoadError) else features).append(feature)  # type: ignore[arg-type]
    return RootSnapshot(root, tuple(sessions), tuple(features), tuple(errors))
