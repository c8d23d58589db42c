"""Where mity-cost keeps its own files (settings, history, logs, the confirmation socket).

``MITY_COST_HOME`` moves all of them under one folder (tests, portable installs); otherwise the
platformdirs locations are used.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "mity-cost"


def _home() -> Path | None:
    home = os.environ.get("MITY_COST_HOME")
    return Path(home) if home else None


def _platform(kind: str) -> Path:
    import platformdirs

    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    folders = {
        "config": dirs.user_config_dir,
        "data": dirs.user_data_dir,
        "log": dirs.user_log_dir,
        "state": dirs.user_state_dir,
    }
    return Path(folders[kind])


def config_dir() -> Path:
    """Settings and the price override file."""
    home = _home()
    return home / "config" if home else _platform("config")


def data_dir() -> Path:
    """The history database."""
    home = _home()
    return home / "data" if home else _platform("data")


def log_dir() -> Path:
    """The rotating log."""
    home = _home()
    return home / "log" if home else _platform("log")


def runtime_dir() -> Path:
    """A folder only this user can enter, for the confirmation socket and the instance lock.

    ``$XDG_RUNTIME_DIR`` when set (it is 0700 by specification), else a per-user folder in the
    temporary directory.  Callers must still check its owner and mode before trusting it.
    """
    home = _home()
    if home:
        return home / "run"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / APP_NAME
    import tempfile  # only here: a hot command that never needs it does not pay for it

    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"{APP_NAME}-{uid}"


def settings_file() -> Path:
    """The saved settings (JSON)."""
    return config_dir() / "settings.json"


def budgets_file() -> Path:
    """The user's budgets (JSON); a stat of it is all a hot command spends when there are none."""
    return config_dir() / "budgets.json"


def price_override_file() -> Path:
    """The user's price overrides (JSON), which win over every other price."""
    return config_dir() / "prices.json"
