"""Start the tray with the desktop session: the XDG autostart entry ``mity-cost.desktop``.

Qt-free.  The entry lives in ``$XDG_CONFIG_HOME/autostart`` (``~/.config/autostart``), or in
``$MITY_COST_HOME/autostart`` when that variable is set (tests, portable installs).  Whether autostart
is on is whether the file is there: a user who deletes it by hand has turned it off.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from mity_cost.core.atomic import write_bytes_atomic

ENTRY_NAME = "mity-cost.desktop"
TRAY_COMMAND = "mity-cost-tray"

# Characters that need quoting in an Exec key, and those escaped inside quotes (Desktop Entry spec,
# "The Exec key").
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
_ESCAPED_IN_QUOTES = {'"', "`", "$", "\\"}


def autostart_dir() -> Path:
    """The folder the desktop reads autostart entries from."""
    home = os.environ.get("MITY_COST_HOME")
    if home:
        return Path(home) / "autostart"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "autostart"


def entry_path() -> Path:
    """``<autostart dir>/mity-cost.desktop``."""
    return autostart_dir() / ENTRY_NAME


def supported() -> bool:
    """True where XDG autostart applies (Linux and the BSDs), and always under ``MITY_COST_HOME``."""
    if os.environ.get("MITY_COST_HOME"):
        return True
    return sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd", "dragonfly"))


def quote_arg(arg: str) -> str:
    """One argument of an Exec key, quoted and escaped when it must be; ``%`` doubled."""
    text = arg.replace("%", "%%")
    if text and not any(c in _RESERVED for c in text):
        return text
    escaped = "".join("\\" + c if c in _ESCAPED_IN_QUOTES else c for c in text)
    return f'"{escaped}"'


def default_command() -> list[str]:
    """``mity-cost-tray`` when it is on the PATH, else this Python running ``-m mity_cost.app``."""
    found = shutil.which(TRAY_COMMAND)
    if found:
        return [found]
    return [sys.executable, "-m", "mity_cost.app"]


def desktop_entry(command: Sequence[str]) -> str:
    """The text of the autostart entry that runs ``command``."""
    exec_line = " ".join(quote_arg(a) for a in command)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=mity-cost\n"
        "GenericName=AI cost monitor\n"
        "Comment=Shows what your AI agents cost while they work\n"
        f"Exec={exec_line}\n"
        "Icon=mity-cost\n"
        "Terminal=false\n"
        "StartupNotify=false\n"
        "Categories=Utility;Development;\n"
        "X-GNOME-Autostart-enabled=true\n"
        # Give the panel a moment, so the tray is usually there when we start.
        "X-GNOME-Autostart-Delay=5\n"
    )


def is_enabled() -> bool:
    """True when the autostart entry exists."""
    return entry_path().is_file()


def enable(command: Sequence[str] | None = None) -> Path:
    """Write the autostart entry (atomically); returns its path.  Raises ``OSError`` on failure."""
    path = entry_path()
    write_bytes_atomic(path, desktop_entry(command or default_command()).encode("utf-8"), mode=0o644)
    return path


def disable() -> bool:
    """Remove the autostart entry; True when there was one.  Raises ``OSError`` on failure."""
    try:
        entry_path().unlink()
    except FileNotFoundError:
        return False
    return True


def set_enabled(flag: bool, command: Sequence[str] | None = None) -> None:
    """Write or remove the entry so that autostart is ``flag``."""
    if flag:
        enable(command)
    else:
        disable()
