"""Atomic writes: the whole file or the old one, a private temporary file, nothing left behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mity_cost.core import atomic
from mity_cost.core.atomic import locked, write_bytes_atomic, write_json_atomic


def test_writes_replace_the_file_with_the_mode_asked(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cost.json"
    write_bytes_atomic(path, b"one")
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    write_bytes_atomic(path, b"two", mode=0o600)
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["cost.json"]


def test_json_is_pretty_like_serde(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_json_atomic(path, {"b": [1, "é"]})
    assert path.read_text("utf-8") == json.dumps({"b": [1, "é"]}, indent=2, ensure_ascii=False)


def test_the_temporary_file_is_private_exclusive_and_hidden(tmp_path: Path) -> None:
    target = tmp_path / "cost.json"
    fd, name = atomic._create_temp(target)
    try:
        info = os.fstat(fd)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert os.path.dirname(name) == str(tmp_path)
        base = os.path.basename(name)
        assert base.startswith(".cost.json.") and base.endswith(".tmp")
        fd2, name2 = atomic._create_temp(target)
        os.close(fd2)
        assert name2 != name
    finally:
        os.close(fd)


def test_a_taken_name_is_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "urandom", lambda n: b"\x00" * n)
    target = tmp_path / "x.json"
    fd, _ = atomic._create_temp(target)
    os.close(fd)
    with pytest.raises(FileExistsError):
        atomic._create_temp(target)


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_planted_symlink_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "urandom", lambda n: b"\x01" * n)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / f".x.json.{'01' * 6}.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError):
        atomic._create_temp(tmp_path / "x.json")
    assert victim.read_text() == "keep"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cost.json"
    path.write_bytes(b"old")

    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["cost.json"]


def test_locked_creates_the_lock_file_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "budgets.json"
    with locked(path):
        assert (tmp_path / "budgets.json.lock").exists()
    assert (tmp_path / "budgets.json.lock").exists()
