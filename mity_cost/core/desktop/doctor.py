"""Health checks for ``mity-cost doctor``: what around the app is missing or wrong, and what to do.

Qt-free: the tray and notification checks run a probe in a child process (``mity_cost.ui.probe``)
and read its JSON answer, so neither the core nor the command line imports Qt.
"""

from __future__ import annotations

import json
import os
import platform
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from mity_cost.core import paths
from mity_cost.core.factory import layout
from mity_cost.core.live.watch_plan import NO_EVENT_FILESYSTEMS, filesystem_type

Status = Literal["ok", "warn", "fail"]

INOTIFY_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
GNOME_TRAY_HINT = (
    "GNOME shows no tray icons by default: install the AppIndicator extension "
    "(Debian/Ubuntu: `sudo apt install gnome-shell-extension-appindicator`, then log out and in). "
    "Until then mity-cost shows a small window instead."
)


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, and what to do about it."""

    name: str
    status: Status
    detail: str
    advice: str = ""

    def to_json(self) -> dict[str, str]:
        """Stable JSON for ``doctor --json``."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "advice": self.advice}


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def count_watch_dirs(root: Path, limit: int = 200_000) -> int:
    """How many folders a recursive watch of the root's cost folders needs (stops at ``limit``)."""
    count = 0
    starts = [root / ".mity"] + [d / ".mity" for d in _dirs(root / layout.WORKSPACES_DIR)]
    for start in starts:
        for _walked in os.walk(start):
            count += 1
            if count >= limit:
                return count
    return count


def _dirs(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def check_inotify(roots: Iterable[Path]) -> Check:
    """The inotify watch limit against the folders the roots need."""
    if not sys.platform.startswith("linux"):
        return Check("file watching", "ok", f"{platform.system()} change notifications")
    limit = _read_int(INOTIFY_WATCHES)
    needed = sum(count_watch_dirs(r) for r in roots)
    if limit is None:
        return Check("inotify watches", "warn", "cannot read the inotify watch limit", "")
    detail = f"{needed} folder(s) to watch, limit {limit} ({INOTIFY_WATCHES})"
    if needed * 2 > limit:
        return Check(
            "inotify watches",
            "warn" if needed < limit else "fail",
            detail,
            f"raise it: `echo fs.inotify.max_user_watches={max(524288, needed * 4)} | "
            "sudo tee /etc/sysctl.d/90-mity-cost.conf && sudo sysctl --system`; "
            "until then mity-cost falls back to polling",
        )
    return Check("inotify watches", "ok", detail)


def check_roots(roots: Iterable[Path], mounts: str | None = None) -> list[Check]:
    """Every root exists, holds factory files, and sits on a filesystem with change events."""
    checks = []
    for root in roots:
        if not root.is_dir():
            checks.append(
                Check(f"root {root}", "warn", "does not exist (yet)", "it is watched once it appears")
            )
            continue
        fs = filesystem_type(root, mounts)
        sessions = len(layout.session_files(root))
        features = len(layout.feature_files(root))
        detail = f"{sessions} session(s), {features} feature file(s), filesystem {fs or 'unknown'}"
        if fs in NO_EVENT_FILESYSTEMS:
            checks.append(
                Check(
                    f"root {root}",
                    "warn",
                    detail,
                    f"{fs} delivers no change events for writes made elsewhere: mity-cost polls this root",
                )
            )
        elif sessions == 0 and features == 0:
            checks.append(
                Check(
                    f"root {root}", "warn", detail, "no factory cost files here: is this the factory's root?"
                )
            )
        else:
            checks.append(Check(f"root {root}", "ok", detail))
    return checks


def check_socket_folder(folder: Path | None = None) -> Check:
    """The confirmation socket's folder is this user's alone."""
    target = folder or paths.runtime_dir()
    if not target.exists():
        return Check("socket folder", "ok", f"{target} (created 0700 when the tray starts)")
    try:
        info = target.stat()
    except OSError as exc:
        return Check("socket folder", "fail", f"{target}: {exc.strerror}", "check its permissions")
    mode = stat.S_IMODE(info.st_mode)
    uid = os.getuid() if hasattr(os, "getuid") else info.st_uid
    if info.st_uid != uid:
        return Check(
            "socket folder", "fail", f"{target} belongs to uid {info.st_uid}", f"remove it: `rm -r {target}`"
        )
    if mode & 0o077:
        return Check(
            "socket folder",
            "fail",
            f"{target} has mode {mode:o}: other users could reach the confirmation socket",
            f"`chmod 700 {target}`",
        )
    return Check("socket folder", "ok", f"{target} (mode {mode:o}, yours)")


def check_versions() -> Check:
    """The versions in use."""
    parts = [f"python {platform.python_version()}"]
    for dist in ("mity-cost", "PySide6-Essentials", "pyqtgraph", "pydantic", "watchdog", "genai-prices"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} missing")
    missing = [p for p in parts if p.endswith("missing") and not p.startswith("mity-cost")]
    if missing:
        return Check(
            "versions", "fail", ", ".join(parts), "reinstall: `pip install --force-reinstall mity-cost`"
        )
    return Check("versions", "ok", ", ".join(parts))


def probe_desktop(timeout: float = 20.0, env: Mapping[str, str] | None = None) -> dict[str, object] | str:
    """Run the Qt probe in a child process; its JSON answer, or why it failed."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mity_cost.ui.probe"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ if env is None else env),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the Qt probe did not answer ({exc})"
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"Qt could not start: {_qt_failure(done.stderr, env or os.environ)}"
    return answer if isinstance(answer, dict) else "the Qt probe answered nonsense"


def _qt_failure(stderr: str, env: Mapping[str, str]) -> str:
    """The useful line of a failed Qt start."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "could not connect to display" in line or "xcb-cursor" in line or "could not load" in line.lower():
            return line
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return lines[-1] if lines else "no output"


def desktop_checks(probe: dict[str, object] | str, env: Mapping[str, str]) -> list[Check]:
    """Tray and notification checks from the probe's answer."""
    if isinstance(probe, str):
        return [
            Check(
                "system tray",
                "fail",
                probe,
                "on Linux Qt's xcb platform needs libxcb-cursor0 (`sudo apt install libxcb-cursor0`); "
                "is there a display (DISPLAY / WAYLAND_DISPLAY)?",
            )
        ]
    desktop = env.get("XDG_CURRENT_DESKTOP", "")
    checks = []
    if probe.get("tray"):
        checks.append(Check("system tray", "ok", f"available ({probe.get('platform')})"))
    else:
        advice = (
            GNOME_TRAY_HINT
            if "GNOME" in desktop.upper()
            else (
                "no tray host is running: start your panel's tray (system tray / status notifier); "
                "mity-cost shows a small window meanwhile and moves to the tray when one appears"
            )
        )
        checks.append(Check("system tray", "warn", f"not available ({probe.get('platform')})", advice))
    if probe.get("notifications"):
        checks.append(Check("notifications", "ok", str(probe.get("notifications_via", "available"))))
    else:
        checks.append(
            Check(
                "notifications",
                "warn",
                "no notification service found",
                "install a notification daemon (e.g. `dunst` or your desktop's); "
                "warnings still show in the tray menu and the details window",
            )
        )
    return checks


def run_checks(
    roots: Iterable[Path], probe: dict[str, object] | str | None = None, env: Mapping[str, str] | None = None
) -> list[Check]:
    """Every check, in the order ``doctor`` prints them."""
    environment = os.environ if env is None else env
    root_list = list(roots)
    found = probe if probe is not None else probe_desktop(env=environment)
    return [
        *desktop_checks(found, environment),
        check_inotify(root_list),
        *check_roots(root_list),
        check_socket_folder(),
        check_versions(),
    ]
