"""What the watcher hands to the UI: an immutable snapshot of every watched session and feature.

Built off the GUI thread, carried to it by the bridge's signal, read by the badge, the details window
and the confirmation controller.  Qt-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mity_cost.core.factory.loading import LoadedFeature, LoadedSession, LoadError


@dataclass(frozen=True)
class SessionView:
    """One session as the app knows it: its last good state, and what is wrong right now.

    ``loaded`` is the last good read and is never dropped because a later read failed; ``error`` is
    the latest failure (``None`` once a read succeeds again); ``updating`` is true while the file is
    half-written (an ``incomplete`` read), so the UI says "updating" instead of showing a wrong number.
    """

    key: str
    root: Path
    session_dir: Path
    loaded: LoadedSession | None
    error: LoadError | None = None
    updating: bool = False
    changed_at: float = 0.0
    """Wall-clock time (``time.time()``) when the last good state last changed."""
    execution_seen_at: tuple[float, ...] = ()
    """Wall-clock time each execution (by index) was first seen: executions carry no timestamp."""
    runtime: dict[str, Any] | None = None
    """The factory's ``runtime.json`` next to ``cost.json`` (run state, current station), if any."""

    @property
    def session_id(self) -> str:
        """The session id from the document, else the folder name."""
        return self.loaded.session_id if self.loaded else self.session_dir.name


@dataclass(frozen=True)
class WatchStatus:
    """How the watching goes: by events, or degraded to polling, and why."""

    mode: Literal["events", "polling", "stopped"] = "events"
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Everything watched, the most recently changed session first."""

    sessions: tuple[SessionView, ...] = ()
    features: tuple[LoadedFeature, ...] = ()
    feature_errors: tuple[LoadError, ...] = ()
    status: WatchStatus = field(default_factory=WatchStatus)
    roots: tuple[Path, ...] = ()

    @property
    def active(self) -> SessionView | None:
        """The most recently updated session with a good state, if any."""
        return next((s for s in self.sessions if s.loaded is not None), None)

    def find(self, session_id: str) -> SessionView | None:
        """The session with this id, if watched."""
        return next((s for s in self.sessions if s.session_id == session_id), None)
