"""Which folders to watch for a root, and which filesystems send no change events (stdlib only).

Per root a handful of folders (the root, ``.mity``, ``.mity/chat`` recursively, ``workspaces`` and each
app's ``features`` folder), or the nearest existing ancestor of any that does not exist yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mity_cost.core.factory.layout import CHAT_DIR, FEATURES_DIR, WORKSPACES_DIR, safe_name

# Filesystems on which inotify sees no changes made by other machines (or none at all).
NO_EVENT_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smbfs", "smb3", "fuse.sshfs", "9p", "fuse.gcsfuse", "fuse.rclone", "davfs"}
)


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The filesystem type of the mount holding ``path`` (Linux ``/proc/mounts``), if known."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    real = os.path.realpath(path)
    best, best_type = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fields[2]
    return best_type


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
