"""Where the factory's cost files are under a root, and what a changed path there means, without
trusting names other programs chose.

Stdlib only: the fast command-line paths import it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CHAT_DIR = (".mity", "chat")
SESSION_FILE = "cost.json"
DECISION_FILE = "cost.decision.json"
RUNTIME_FILE = "runtime.json"
WORKSPACES_DIR = "workspaces"
FEATURES_DIR = (".mity", "cost", "features")

_SLUG_RUN = re.compile(r"[^A-Za-z0-9]+")

PathKind = Literal["session", "runtime", "feature", "dir"]
"""What a changed path means for a root (see :func:`classify`)."""


def feature_slug(feature_id: str) -> str:
    """The factory's file name for a feature: ``"User Authentication"`` -> ``user-authentication``."""
    return _SLUG_RUN.sub("-", feature_id.lower()).strip("-")


def safe_name(name: str) -> bool:
    """A folder or file name that is one plain path component (no separators, no ``..``)."""
    return (
        bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name
    )


def _is_regular_inside(path: Path, root_real: str) -> bool:
    """A regular file (links followed) whose real path stays inside the root."""
    try:
        info = os.stat(path)
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(info.st_mode) and (real == root_real or real.startswith(root_real + os.sep))


def _subdirs(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if safe_name(e.name) and e.is_dir())
    except OSError:
        return []


@dataclass(frozen=True)
class SessionFile:
    """Where one session's ``cost.json`` is."""

    root: Path
    folder: str
    path: Path

    @property
    def session_dir(self) -> Path:
        """The session's folder (``cost.decision.json`` and ``runtime.json`` live here)."""
        return self.path.parent


@dataclass(frozen=True)
class FeatureFile:
    """Where one feature cost file is, and which app it belongs to."""

    root: Path
    app: str
    path: Path


def chat_dir(root: Path) -> Path:
    """``<root>/.mity/chat``."""
    return root.joinpath(*CHAT_DIR)


def features_dir(root: Path, app: str) -> Path:
    """``<root>/workspaces/<app>/.mity/cost/features``."""
    return root / WORKSPACES_DIR / app / Path(*FEATURES_DIR)


def session_files(root: Path) -> list[SessionFile]:
    """Every ``.mity/chat/<session>/cost.json`` under the root."""
    base = chat_dir(root)
    root_real = os.path.realpath(root)
    found = []
    for name in _subdirs(base):
        path = base / name / SESSION_FILE
        if _is_regular_inside(path, root_real):
            found.append(SessionFile(root, name, path))
    return found


def feature_files(root: Path) -> list[FeatureFile]:
    """Every ``workspaces/<app>/.mity/cost/features/<slug>.json`` under the root."""
    root_real = os.path.realpath(root)
    found = []
    for app in _subdirs(root / WORKSPACES_DIR):
        folder = features_dir(root, app)
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if safe_name(e.name) and e.name.endswith(".json"))
        except OSError:
            continue
        for name in names:
            if name.startswith("."):
                continue
            path = folder / name
            if _is_regular_inside(path, root_real):
                found.append(FeatureFile(root, app, path))
    return found


def session_path(root: Path, session_id: str) -> Path:
    """Where a session's ``cost.json`` is (or would be); refuses ids that are not plain names."""
    if not safe_name(session_id) or session_id.startswith("."):
        raise ValueError(f"not a usable session id: {session_id!r}")
    return chat_dir(root) / session_id / SESSION_FILE


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
    if n == 4 and (parts[0], parts[1]) == CHAT_DIR:
        if parts[3] == SESSION_FILE:
            return "session"
        if parts[3] == RUNTIME_FILE:
            return "runtime"
        return None
    if (
        n == 6
        and parts[0] == WORKSPACES_DIR
        and tuple(parts[2:5]) == FEATURES_DIR
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
        return n <= 2 or (n <= 5 and tuple(parts[2:]) == FEATURES_DIR[: n - 2])
    return False


def normalise_roots(roots: Iterable[Path | str]) -> tuple[Path, ...]:
    """Absolute roots, each once, in the order given."""
    seen: dict[Path, None] = {}
    for root in roots:
        seen.setdefault(Path(os.path.abspath(root)), None)
    return tuple(seen)
