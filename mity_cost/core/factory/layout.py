"""Where the factory's cost files are under a root, without trusting names other programs chose.

Stdlib only: the fast command-line paths import it.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

CHAT_DIR = (".mity", "chat")
SESSION_FILE = "cost.json"
DECISION_FILE = "cost.decision.json"
RUNTIME_FILE = "runtime.json"
WORKSPACES_DIR = "workspaces"
FEATURES_DIR = (".mity", "cost", "features")

_SLUG_RUN = re.compile(r"[^A-Za-z0-9]+")


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
