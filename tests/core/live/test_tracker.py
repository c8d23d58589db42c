"""core.tracker: reloading dirty files, keeping the last good state, snapshots, large sessions."""

from __future__ import annotations

import copy
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mity_cost.core.atomic import write_bytes_atomic
from mity_cost.core.factory.layout import feature_files, session_files
from mity_cost.core.factory.loading import LoadedSession, LoadError, load_session, parse_session
from mity_cost.core.live import tracker as tracker_module
from mity_cost.core.live.snapshot import WatchStatus
from mity_cost.core.live.tracker import SessionTracker, load_large_session, parse_session_sliced


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """The tracker starts no threads."""
    before = threading.active_count()
    yield
    assert threading.active_count() == before


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time() + 1000)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every session parse the tracker does."""
    calls: list[Path] = []

    def spy(path: Path, *args: Any) -> Any:
        calls.append(path)
        return load_session(path, *args)

    monkeypatch.setattr(tracker_module, "load_session", spy)
    return calls


def first_session(root: Path) -> Path:
    return session_files(root)[0].path


def with_records(root: Path) -> Path:
    return next(s.path for s in session_files(root) if raw(s.path)["llmUsage"])


def raw(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(path.read_bytes())
    return value


def write(path: Path, doc: dict[str, Any]) -> None:
    write_bytes_atomic(path, json.dumps(doc, indent=2).encode())


def add_execution(path: Path) -> None:
    doc = raw(path)
    doc["executionCosts"].append(
        {
            "executionType": "test-run",
            "cpuMinutes": 1.0,
            "memoryGbMinutes": 2.0,
            "cost": {"min": 0.0, "expected": 0.005, "max": 0.01},
            "isLocal": True,
        }
    )
    doc["updatedAt"] = "2027-01-01T00:00:00Z"
    write(path, doc)


def test_full_scan_reads_everything(example_root: Path) -> None:
    tracker = SessionTracker([example_root])
    update = tracker.full_scan()
    assert update.changed and not update.retry
    snap = tracker.snapshot(WatchStatus(mode="polling"))
    assert len(snap.sessions) == len(session_files(example_root))
    assert len(snap.features) == len(feature_files(example_root))
    assert snap.status.mode == "polling"
    assert snap.roots == (example_root,)
    times = [s.changed_at for s in snap.sessions]
    assert times == sorted(times, reverse=True)
    assert all(s.loaded is not None and s.error is None and not s.updating for s in snap.sessions)


def test_runtime_is_attached(real_root: Path) -> None:
    tracker = SessionTracker([real_root])
    tracker.full_scan()
    for view in tracker.snapshot().sessions:
        assert view.runtime is not None
        assert view.runtime["sessionId"] == view.session_id


def test_most_recently_changed_session_first(example_root: Path, clock: Clock) -> None:
    tracker = SessionTracker([example_root], clock=clock)
    tracker.full_scan()
    last = tracker.snapshot().sessions[-1]
    assert last.loaded is not None
    add_execution(last.session_dir / "cost.json")
    clock.now += 5
    tracker.update([last.session_dir / "cost.json"])
    snap = tracker.snapshot()
    assert snap.sessions[0].key == last.key
    assert snap.active is not None and snap.active.key == last.key
    assert snap.sessions[0].changed_at == clock.now


def test_unchanged_file_is_not_parsed_again(example_root: Path, loads: list[Path]) -> None:
    tracker = SessionTracker([example_root])
    path = first_session(example_root)
    tracker.update([path])
    for _ in range(5):  # duplicate events for one write
        assert not tracker.update([path]).changed
    assert loads == [path]
    tracker.update([path], force=True)
    assert loads == [path, path]


def test_partial_write_keeps_last_good_and_says_updating(example_root: Path) -> None:
    tracker = SessionTracker([example_root])
    path = first_session(example_root)
    tracker.update([path])
    good = tracker.snapshot().sessions[0].loaded
    assert good is not None
    data = path.read_bytes()
    for partial in (b"", data[:1], data[: len(data) // 2], data[:-2]):
        path.write_bytes(partial)  # an in-place writer caught half-way
        update = tracker.update([path])
        assert update.retry == {path}
        view = tracker.snapshot().find(good.session_id)
        assert view is not None
        assert view.loaded is good
        assert view.updating
        assert view.error is not None and view.error.kind == "incomplete"
    path.write_bytes(data)
    assert not tracker.update([path]).retry
    view = tracker.snapshot().find(good.session_id)
    assert view is not None and not view.updating and view.error is None and view.loaded is not good


def test_invalid_file_keeps_last_good_without_retry(example_root: Path) -> None:
    tracker = SessionTracker([example_root])
    path = first_session(example_root)
    tracker.update([path])
    doc = raw(path)
    doc["sessionCost"]["total"]["expected"] = -1
    write(path, doc)
    update = tracker.update([path])
    assert update.changed and not update.retry
    view = tracker.snapshot().sessions[0]
    assert view.loaded is not None and view.error is not None
    assert view.error.kind == "invalid" and not view.updating


def test_broken_from_the_start_is_listed_with_its_error(empty_root: Path) -> None:
    path = empty_root / ".mity" / "chat" / "s1" / "cost.json"
    path.parent.mkdir(parents=True)
    path.write_text("{ nope")
    tracker = SessionTracker([empty_root])
    tracker.full_scan()
    (view,) = tracker.snapshot().sessions
    assert view.loaded is None and view.error is not None
    assert view.session_id == "s1"
    assert tracker.snapshot().active is None


def test_deleted_session_is_dropped_only_when_really_gone(example_root: Path) -> None:
    tracker = SessionTracker([example_root])
    tracker.full_scan()
    count = len(tracker.snapshot().sessions)
    path = first_session(example_root)
    assert not tracker.update([path]).changed  # an event said "deleted" but the file is there
    assert len(tracker.snapshot().sessions) == count
    path.unlink()
    assert tracker.update([path]).changed
    assert len(tracker.snapshot().sessions) == count - 1


def test_folder_events_scan_new_and_drop_removed(example_root: Path) -> None:
    tracker = SessionTracker([example_root])
    tracker.full_scan()
    count = len(tracker.snapshot().sessions)
    source = first_session(example_root)
    new_dir = example_root / ".mity" / "chat" / "copy"
    new_dir.mkdir()
    shutil.copy(source, new_dir / "cost.json")
    tracker.update([new_dir])
    assert len(tracker.snapshot().sessions) == count + 1
    shutil.rmtree(new_dir)
    tracker.update([new_dir])
    assert len(tracker.snapshot().sessions) == count
    shutil.rmtree(example_root / ".mity")
    tracker.update([example_root / ".mity"])
    assert tracker.snapshot().sessions == ()
    assert tracker.snapshot().features  # features live elsewhere


def test_rescan_finds_changes_behind_the_watchers_back(example_root: Path, clock: Clock) -> None:
    tracker = SessionTracker([example_root], clock=clock)
    tracker.full_scan()
    before = {v.key: v for v in tracker.snapshot().sessions}
    changed, removed = sorted(example_root.glob(".mity/chat/*/cost.json"))[:2]
    add_execution(changed)
    removed.unlink()
    added = example_root / ".mity" / "chat" / "added" / "cost.json"
    added.parent.mkdir()
    shutil.copy(changed, added)
    feature = feature_files(example_root)[0].path
    feature.unlink()
    assert tracker.full_scan().changed
    after = {v.key: v for v in tracker.snapshot().sessions}
    assert str(removed.parent) not in after
    assert str(added.parent) in after
    assert after[str(changed.parent)].loaded is not before[str(changed.parent)].loaded
    assert all(f.path != feature for f in tracker.snapshot().features)
    assert not tracker.full_scan().changed


def test_execution_first_seen_times(example_root: Path, clock: Clock) -> None:
    tracker = SessionTracker([example_root], clock=clock)
    path = next(s.path for s in session_files(example_root) if raw(s.path)["executionCosts"])
    tracker.update([path])
    view = tracker.snapshot().sessions[0]
    existing = len(raw(path)["executionCosts"])
    assert len(view.execution_seen_at) == existing
    assert set(view.execution_seen_at) == {view.changed_at}
    assert view.changed_at <= clock.now  # first sight: dated by the file, not by "now"
    clock.now += 60
    add_execution(path)
    tracker.update([path])
    view = tracker.snapshot().sessions[0]
    assert view.execution_seen_at[:existing] == (view.execution_seen_at[0],) * existing
    assert view.execution_seen_at[-1] == clock.now == view.changed_at


def test_same_content_rewritten_does_not_count_as_change(example_root: Path, clock: Clock) -> None:
    tracker = SessionTracker([example_root], clock=clock)
    path = first_session(example_root)
    tracker.update([path])
    first = tracker.snapshot().sessions[0].changed_at
    clock.now += 30
    write_bytes_atomic(path, path.read_bytes())
    assert tracker.update([path]).changed  # re-read: the stamp moved
    assert tracker.snapshot().sessions[0].changed_at == first


def test_half_written_runtime_keeps_the_last_good_one(real_root: Path) -> None:
    tracker = SessionTracker([real_root])
    tracker.full_scan()
    view = tracker.snapshot().sessions[0]
    runtime_path = view.session_dir / "runtime.json"
    good = view.runtime
    runtime_path.write_text('{"runState": "runn')
    update = tracker.update([runtime_path])
    assert update.retry == {runtime_path}
    assert tracker.snapshot().find(view.session_id).runtime == good  # type: ignore[union-attr]
    runtime_path.write_text(json.dumps({"runState": "running", "currentStation": "test"}))
    assert tracker.update([runtime_path]).changed
    assert tracker.snapshot().find(view.session_id).runtime == {  # type: ignore[union-attr]
        "runState": "running",
        "currentStation": "test",
    }
    runtime_path.unlink()
    tracker.update([runtime_path])
    tracker.update([view.session_dir / "cost.json"], force=True)
    assert tracker.snapshot().find(view.session_id).runtime is None  # type: ignore[union-attr]


def test_feature_errors_keep_last_good_and_drop_when_gone(example_root: Path) -> None:
    tracker = SessionTracker([example_root])
    tracker.full_scan()
    feature = feature_files(example_root)[0].path
    before = len(tracker.snapshot().features)
    feature.write_text('{"featureId": ')
    update = tracker.update([feature])
    assert update.retry == {feature}
    snap = tracker.snapshot()
    assert len(snap.features) == before
    assert [e.path for e in snap.feature_errors] == [feature]
    feature.unlink()
    tracker.update([feature])
    snap = tracker.snapshot()
    assert len(snap.features) == before - 1 and not snap.feature_errors


def test_set_roots_forgets_other_roots(example_root: Path, real_root: Path) -> None:
    tracker = SessionTracker([example_root, real_root])
    tracker.full_scan()
    assert {v.root for v in tracker.snapshot().sessions} == {example_root, real_root}
    assert tracker.set_roots([real_root]).changed
    assert {v.root for v in tracker.snapshot().sessions} == {real_root}
    assert all(f.path is None or real_root in f.path.parents for f in tracker.snapshot().features)


def test_paths_outside_the_roots_or_escaping_are_ignored(example_root: Path, tmp_path: Path) -> None:
    tracker = SessionTracker([example_root])
    outside = tmp_path / "elsewhere" / ".mity" / "chat" / "s" / "cost.json"
    outside.parent.mkdir(parents=True)
    shutil.copy(first_session(example_root), outside)
    link_dir = example_root / ".mity" / "chat" / "linked"
    link_dir.mkdir()
    (link_dir / "cost.json").symlink_to(outside)
    assert not tracker.update([outside, link_dir / "cost.json", tmp_path / "x.json"]).changed
    assert tracker.snapshot().sessions == ()


def test_unreadable_file_keeps_last_good(example_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = SessionTracker([example_root])
    path = first_session(example_root)
    tracker.update([path])
    monkeypatch.setattr(
        tracker_module, "load_session", lambda p, *a: LoadError(p, "unreadable", "Permission denied")
    )
    update = tracker.update([path], force=True)
    assert update.retry == {path}
    view = tracker.snapshot().sessions[0]
    assert view.loaded is not None and view.error is not None and view.error.kind == "unreadable"


# -- large sessions ---------------------------------------------------------------------------------


def big_session(template: Path, records: int) -> bytes:
    doc = raw(template)
    base = doc["llmUsage"][0]
    doc["llmUsage"] = [dict(copy.deepcopy(base), id=str(uuid.UUID(int=i + 1))) for i in range(records)]
    total = sum(r["cost"] for r in doc["llmUsage"])
    doc["sessionCost"]["breakdown"]["llm"] = {"min": total, "expected": total, "max": total}
    return json.dumps(doc, indent=2).encode()


def same(a: LoadedSession | LoadError | None, b: LoadedSession | LoadError) -> bool:
    if isinstance(a, LoadedSession) and isinstance(b, LoadedSession):
        return a.doc == b.doc and a.consistency == b.consistency
    return a == b


@pytest.mark.parametrize("kind", ["example", "real"])
def test_sliced_parse_equals_the_plain_one(example_root: Path, real_root: Path, kind: str) -> None:
    root = example_root if kind == "example" else real_root
    for sf in session_files(root):
        data = sf.path.read_bytes()
        sliced = parse_session_sliced(data, sf.path)
        assert sliced is None or same(sliced, parse_session(data, sf.path))


def test_sliced_parse_of_a_big_session(example_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker_module, "_SLICE_BYTES", 2048)  # many slices
    data = big_session(with_records(example_root), 300)
    sliced = parse_session_sliced(data)
    assert isinstance(sliced, LoadedSession)
    assert same(sliced, parse_session(data))
    assert len(sliced.doc["llmUsage"]) == 300
    zones = {id(r["timestamp"].tzinfo) for r in sliced.doc["llmUsage"]}
    assert len(zones) == 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: json.dumps(json.loads(d)).encode(),  # not pretty-printed: plain parse
        lambda d: d.replace(b'"inputTokens": ', b'"inputTokens": -', 1),  # invalid record
        lambda d: d.replace(b'"sessionId"', b'"sessionid"', 1),  # invalid outer document
        lambda d: d.replace(b"\n    },\n    {", b"\n    },\n    {", 1) + b" x",  # trailing garbage
        lambda d: b"\xef\xbb\xbf" + d,  # a byte-order mark
    ],
)
def test_sliced_parse_falls_back_or_agrees(example_root: Path, mangle: Any) -> None:
    data = mangle(big_session(with_records(example_root), 40))
    sliced = parse_session_sliced(data)
    plain = parse_session(data)
    if sliced is not None and not (isinstance(sliced, LoadError) and sliced.kind == "incomplete"):
        assert same(sliced, plain)
    assert same(load_large_session_from(data, example_root), plain)


def load_large_session_from(data: bytes, folder: Path) -> LoadedSession | LoadError:
    path = folder / "big-cost.json"
    path.write_bytes(data)
    result = load_large_session(path)
    if isinstance(result, LoadError):
        return LoadError(None, result.kind, result.message, result.location)
    return result


def test_truncated_big_session_is_incomplete(example_root: Path) -> None:
    data = big_session(with_records(example_root), 40)
    for cut in (len(data) // 3, len(data) - 1):
        result = parse_session_sliced(data[:cut])
        assert isinstance(result, LoadError) and result.kind == "incomplete"


def test_big_files_take_the_sliced_path(example_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker_module, "LARGE_FILE_BYTES", 1)
    sliced_calls: list[bytes] = []
    real = tracker_module.parse_session_sliced

    def spy(data: bytes, path: Path | None = None) -> Any:
        sliced_calls.append(data)
        return real(data, path)

    monkeypatch.setattr(tracker_module, "parse_session_sliced", spy)
    tracker = SessionTracker([example_root])
    tracker.full_scan()
    assert len(sliced_calls) == len(session_files(example_root))
    for view in tracker.snapshot().sessions:
        assert view.loaded is not None
        plain = load_session(view.session_dir / "cost.json")
        assert same(view.loaded, plain)
        assert (view.loaded.size, view.loaded.mtime_ns) == (plain.size, plain.mtime_ns)  # type: ignore[union-attr]


def test_replaced_big_documents_are_freed_only_when_nobody_holds_them(
    example_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracker_module, "BIG_DOCUMENT_RECORDS", 1)
    tracker = SessionTracker([example_root])
    path = with_records(example_root)
    tracker.update([path])
    held = tracker.snapshot()
    records = held.sessions[0].loaded.doc["llmUsage"]  # type: ignore[union-attr]
    count = len(records)
    add_execution(path)
    tracker.update([path])
    assert tracker.garbage == 1
    assert tracker.release_garbage()  # still held by the old snapshot: untouched
    assert len(records) == count
    del held
    assert tracker.release_garbage()  # the records list itself is still held here
    assert len(records) == count
    del records
    assert not tracker.release_garbage()
    assert tracker.garbage == 0


def test_stamp_includes_inode(example_root: Path, loads: list[Path]) -> None:
    tracker = SessionTracker([example_root])
    path = first_session(example_root)
    tracker.update([path])
    info = path.stat()
    data = path.read_bytes()
    write_bytes_atomic(path, data)  # same size; a new inode even if mtime did not tick
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    tracker.update([path])
    assert loads == [path, path]


@pytest.mark.parametrize("window", [1, 3, 4, 7, 64])
def test_windowed_search_finds_what_find_finds(monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    monkeypatch.setattr(tracker_module, "_SEARCH_WINDOW", window)
    data = b'{\n  "a": 1,\n  "llmUsage": [\n    {\n    }\n  ]\n}'
    for sub in (b'\n  "llmUsage": [', b"\n  ]", b"\n}", b"missing", b"{"):
        for start in range(0, len(data), 5):
            assert tracker_module._find(data, sub, start, len(data)) == data.find(sub, start)
