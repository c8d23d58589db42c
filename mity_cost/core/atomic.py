"""Writing files so that a reader never sees half of one and a kill at any moment loses nothing.

Stdlib only, and not even ``tempfile`` (which pulls in ``shutil``, ``random`` and the compression
modules): ``record-llm`` writes through here on an agent's hot path, so the temporary file is made
with ``os.open(O_CREAT | O_EXCL)`` under a random name, as ``tempfile.mkstemp`` does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, replace.

    The folder is fsynced too (where the platform allows), so the rename itself survives a crash.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


_TEMP_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_TEMP_ATTEMPTS = 100


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, empty ``.<name>.<random>.tmp`` next to ``path``, mode 0600: ``(fd, its path)``.

    The same flags and mode as ``tempfile.mkstemp`` (exclusive create, no symlink followed).
    """
    for _ in range(_TEMP_ATTEMPTS):
        tmp_name = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp_name, _TEMP_FLAGS, 0o600), tmp_name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def write_json_atomic(path: Path, value: Any, mode: int = 0o644) -> None:
    """Write ``value`` as pretty-printed JSON (two-space indent, like serde_json), atomically."""
    write_bytes_atomic(path, json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8"), mode)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``<path>.lock`` (POSIX ``flock``) for the block.

    Writers of one document serialise on it; readers need no lock because writes are atomic.  The
    lock file is never deleted (deleting it would let two writers hold two different locks).
    """
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
