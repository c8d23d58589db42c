"""core.watching: event filtering, watch planning, and the watch service on a real filesystem."""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)
from watchdog.observers.polling import PollingObserver

from mity_cost.core.atomic import write_bytes_atomic
from mity_cost.core.factory.layout import classify
from mity_cost.core.factory.loading import load_session
from mity_cost.core.live.root_watcher import WatchHandler, event_paths
from mity_cost.core.live.snapshot import WatchStatus
from mity_cost.core.live.watch_plan import WatchSpec, network_filesystem, plan_watches
from mity_cost.core.live.watching import WatchService

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify behaviour")
WAIT = 2.0


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Every test ends with the threads it started joined."""
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.01)
    raise AssertionError(f"threads leaked: {leaked}")


class Collector:
    """Receives ``on_dirty`` / ``on_status`` from the service's threads."""

    def __init__(self) -> None:
        self.dirty: queue.Queue[set[Path]] = queue.Queue()
        self.seen: set[Path] = set()
        self.statuses: list[WatchStatus] = []

    def on_dirty(self, paths: set[Path]) -> None:
        self.dirty.put(set(paths))

    def wait_for(self, predicate: object, timeout: float = WAIT) -> set[Path]:
        """Collect dirty paths until ``predicate(seen)`` holds (or fail after ``timeout``)."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while not predicate(self.seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"never happened; seen {sorted(map(str, self.seen))}")
            try:
                self.seen |= self.dirty.get(timeout=remaining)
            except queue.Empty:
                continue
        return self.seen

    def drain(self) -> None:
        while True:
            try:
                self.dirty.get_nowait()
            except queue.Empty:
                break
        self.seen = set()


def covers(path: Path) -> object:
    """Predicate: the path, or a folder holding it, was reported dirty."""
    return lambda seen: any(path == p or p in path.parents for p in seen)


def session_doc(total: float = 0.5) -> bytes:
    return json.dumps({"sessionId": "s", "total": total}, indent=2).encode()


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def service_factory(collector: Collector) -> Iterator[object]:
    services: list[WatchService] = []

    def make(roots: list[Path], **kwargs: object) -> WatchService:
        service = WatchService(roots, collector.on_dirty, collector.statuses.append, **kwargs)  # type: ignore[arg-type]
        services.append(service)
        service.start()
        assert service.wait_idle(WAIT)
        return service

    yield make
    for service in services:
        assert service.stop(2.0)


# -- pure functions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "is_dir", "expected"),
    [
        (".mity/chat/s1/cost.json", False, "session"),
        (".mity/chat/s1/runtime.json", False, "runtime"),
        ("workspaces/shop/.mity/cost/features/login.json", False, "feature"),
        (".mity/chat/s1/.cost.json.abc.tmp", False, None),
        (".mity/chat/s1/cost.json.lock", False, None),
        (".mity/chat/s1/messages.jsonl", False, None),
        (".mity/chat/s1/cost.decision.json", False, None),
        ("workspaces/shop/.mity/cost/features/.login.json.x.tmp", False, None),
        ("workspaces/shop/src/app.json", False, None),
        (".mity/chat/cost.json", False, None),
        ("", True, "dir"),
        (".mity", True, "dir"),
        (".mity/chat", True, "dir"),
        (".mity/chat/s1", True, "dir"),
        (".mity/chat/s1/sub", True, None),
        ("workspaces", True, "dir"),
        ("workspaces/shop", True, "dir"),
        ("workspaces/shop/.mity/cost/features", True, "dir"),
        ("workspaces/shop/node_modules", True, None),
        ("src", True, None),
    ],
)
def test_classify_only_the_paths_that_matter(
    tmp_path: Path, rel: str, is_dir: bool, expected: str | None
) -> None:
    root = tmp_path / "root"
    path = root / rel if rel else root
    assert classify(root, path, is_directory=is_dir) == expected


def test_classify_ancestors_of_the_root_and_outsiders(tmp_path: Path) -> None:
    root = tmp_path / "a" / "root"
    assert classify(root, tmp_path / "a", is_directory=True) == "dir"
    assert classify(root, tmp_path / "a", is_directory=False) is None
    assert classify(root, tmp_path / "other", is_directory=True) is None
    assert classify(root, tmp_path / "a" / "root2" / ".mity", is_directory=True) is None


def test_event_paths_map_moves_to_their_destination_and_ignore_reads() -> None:
    assert event_paths(FileMovedEvent("/r/.tmp", "/r/cost.json")) == ["/r/cost.json", "/r/.tmp"]
    assert event_paths(FileOpenedEvent("/r/cost.json")) == []
    assert event_paths(FileClosedNoWriteEvent("/r/cost.json")) == []
    assert event_paths(DirModifiedEvent("/r")) == []
    assert event_paths(FileClosedEvent("/r/cost.json")) == ["/r/cost.json"]


def test_handler_atomic_save_reports_the_destination_only(tmp_path: Path) -> None:
    emitted: list[set[Path]] = []
    syncs: list[int] = []
    handler = WatchHandler(tmp_path, emitted.append, lambda: syncs.append(1))
    folder = tmp_path / ".mity" / "chat" / "s1"
    tmp, dest = str(folder / ".cost.json.x.tmp"), str(folder / "cost.json")
    for event in (
        FileCreatedEvent(tmp),
        FileModifiedEvent(tmp),
        FileClosedEvent(tmp),
        FileMovedEvent(tmp, dest),
        FileOpenedEvent(dest),
        FileClosedNoWriteEvent(dest),
    ):
        handler.dispatch(event)
    assert emitted == [{Path(dest)}]
    assert syncs == []


def test_handler_duplicate_events_name_one_path(tmp_path: Path) -> None:
    emitted: list[set[Path]] = []
    handler = WatchHandler(tmp_path, emitted.append, lambda: None)
    dest = str(tmp_path / ".mity" / "chat" / "s1" / "cost.json")
    for event in (
        FileCreatedEvent(dest),
        FileModifiedEvent(dest),
        FileModifiedEvent(dest),
        FileClosedEvent(dest),
    ):
        handler.dispatch(event)
    assert set().union(*emitted) == {Path(dest)}


def test_handler_directory_events_ask_for_a_resync(tmp_path: Path) -> None:
    emitted: list[set[Path]] = []
    syncs: list[int] = []
    handler = WatchHandler(tmp_path, emitted.append, lambda: syncs.append(1))
    handler.dispatch(DirCreatedEvent(str(tmp_path / ".mity")))
    handler.dispatch(DirDeletedEvent(str(tmp_path / ".mity" / "chat" / "s1")))
    handler.dispatch(DirCreatedEvent(str(tmp_path / "src")))
    assert emitted == [{tmp_path / ".mity"}, {tmp_path / ".mity" / "chat" / "s1"}]
    assert len(syncs) == 2


def test_handler_never_raises_and_keeps_working(tmp_path: Path) -> None:
    calls: list[set[Path]] = []

    def emit(paths: set[Path]) -> None:
        calls.append(paths)
        if len(calls) == 1:
            raise RuntimeError("listener broke")

    handler = WatchHandler(tmp_path, emit, lambda: None)
    path = str(tmp_path / ".mity" / "chat" / "s1" / "cost.json")
    handler.dispatch(FileModifiedEvent(path))
    handler.dispatch(FileDeletedEvent(path))
    assert handler.errors == 1
    assert len(calls) == 2


def test_plan_watches_missing_root_watches_nearest_ancestor(tmp_path: Path) -> None:
    assert plan_watches(tmp_path / "a" / "b" / "root") == {WatchSpec(tmp_path)}


def test_plan_watches_full_tree(example_root: Path) -> None:
    (example_root / "workspaces" / "empty-app").mkdir()
    plan = plan_watches(example_root)
    assert plan == {
        WatchSpec(example_root),
        WatchSpec(example_root / ".mity"),
        WatchSpec(example_root / ".mity" / "chat", recursive=True),
        WatchSpec(example_root / "workspaces"),
        WatchSpec(example_root / "workspaces" / "landing" / ".mity" / "cost" / "features"),
        WatchSpec(example_root / "workspaces" / "shop-api" / ".mity" / "cost" / "features"),
        WatchSpec(example_root / "workspaces" / "empty-app"),
    }


def test_network_filesystems_are_polled(tmp_path: Path) -> None:
    mounts = f"server:/share {tmp_path} cifs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"
    assert network_filesystem(tmp_path / "root", mounts) == "cifs"
    assert network_filesystem(Path("/usr"), mounts) is None


# -- the service on a real filesystem --------------------------------------------------------------


@linux_only
def test_missing_root_is_watched_once_it_appears(
    tmp_path: Path, service_factory: object, collector: Collector
) -> None:
    root = tmp_path / "later" / "root"
    service = service_factory([root])  # type: ignore[operator]
    assert any("does not exist yet" in m for m in service.status.messages)
    cost = root / ".mity" / "chat" / "s1" / "cost.json"
    write_bytes_atomic(cost, session_doc())
    collector.wait_for(covers(cost))
    assert service.wait_idle(WAIT)
    assert WatchSpec(root / ".mity" / "chat", recursive=True) in service.watchers[root].scheduled
    assert not any("does not exist" in m for m in service.status.messages)
    collector.drain()
    write_bytes_atomic(cost, session_doc(0.75))
    assert cost in collector.wait_for(lambda seen: cost in seen)


@linux_only
def test_atomic_save_reports_the_file_never_its_temporary(
    example_root: Path, service_factory: object, collector: Collector
) -> None:
    service_factory([example_root])  # type: ignore[operator]
    cost = next(example_root.glob(".mity/chat/*/cost.json"))
    write_bytes_atomic(cost, cost.read_bytes())
    seen = collector.wait_for(lambda s: cost in s)
    assert all(p.name in ("cost.json", "runtime.json") or p.is_dir() for p in seen)


@linux_only
def test_new_session_folder_is_scanned(
    empty_root: Path, service_factory: object, collector: Collector
) -> None:
    (empty_root / ".mity" / "chat").mkdir(parents=True)
    service_factory([empty_root])  # type: ignore[operator]
    cost = empty_root / ".mity" / "chat" / "new" / "cost.json"
    cost.parent.mkdir()
    cost.write_bytes(session_doc())
    collector.wait_for(covers(cost))


@linux_only
def test_new_app_feature_folder_is_picked_up(
    example_root: Path, service_factory: object, collector: Collector
) -> None:
    service = service_factory([example_root])  # type: ignore[operator]
    feature = example_root / "workspaces" / "blog" / ".mity" / "cost" / "features" / "posts.json"
    write_bytes_atomic(feature, b"{}")
    collector.wait_for(covers(feature))
    assert service.wait_idle(WAIT)
    collector.drain()
    write_bytes_atomic(feature, b"{ }")
    collector.wait_for(lambda seen: feature in seen)


@linux_only
@pytest.mark.parametrize("removed", [".mity", ".mity/chat", ""])
def test_folder_deleted_and_created_again_is_watched_again(
    tmp_path: Path, service_factory: object, collector: Collector, removed: str
) -> None:
    root = tmp_path / "root"
    cost = root / ".mity" / "chat" / "s1" / "cost.json"
    write_bytes_atomic(cost, session_doc())
    service = service_factory([root])  # type: ignore[operator]
    shutil.rmtree(root / removed if removed else root)
    collector.wait_for(lambda seen: any(not p.exists() for p in seen))
    assert service.wait_idle(WAIT)
    collector.drain()
    write_bytes_atomic(cost, session_doc(0.9))
    collector.wait_for(covers(cost))
    assert service.wait_idle(WAIT)
    collector.drain()
    write_bytes_atomic(cost, session_doc(1.2))  # no zombie watch: the recreated folder reports
    collector.wait_for(lambda seen: cost in seen)


@linux_only
def test_replaced_folder_with_live_watch_is_rescheduled(
    tmp_path: Path, service_factory: object, collector: Collector
) -> None:
    root = tmp_path / "root"
    cost = root / ".mity" / "chat" / "s1" / "cost.json"
    write_bytes_atomic(cost, session_doc())
    service = service_factory([root])  # type: ignore[operator]
    os.rename(root / ".mity", tmp_path / "old-mity")  # the watches follow the moved folders
    write_bytes_atomic(cost, session_doc(0.3))
    collector.wait_for(covers(cost))
    assert service.wait_idle(WAIT)
    collector.drain()
    write_bytes_atomic(cost, session_doc(0.4))
    write_bytes_atomic(tmp_path / "old-mity" / "chat" / "s1" / "cost.json", session_doc(9))
    seen = collector.wait_for(lambda s: cost in s)
    assert not any("old-mity" in str(p) for p in seen)


@linux_only
def test_dead_observer_is_restarted(
    example_root: Path, service_factory: object, collector: Collector
) -> None:
    service = service_factory([example_root])  # type: ignore[operator]
    watcher = service.watchers[example_root]
    observer = watcher.observer
    assert observer is not None
    observer.stop()
    observer.join(WAIT)
    service.check()
    assert service.wait_idle(WAIT)
    assert service.restarts == 1
    assert watcher.observer is not observer and watcher.observer is not None and watcher.observer.is_alive()
    assert any("restarted" in m for m in service.status.messages)
    collector.wait_for(lambda seen: example_root in seen)  # events may have been lost: rescan the root
    cost = next(example_root.glob(".mity/chat/*/cost.json"))
    write_bytes_atomic(cost, cost.read_bytes())
    collector.wait_for(lambda seen: cost in seen)


@linux_only
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EMFILE])
def test_inotify_limit_falls_back_to_polling(
    example_root: Path,
    service_factory: object,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    from watchdog.observers import inotify_c

    def refuse(*args: object, **kwargs: object) -> object:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(inotify_c.InotifyFD, "add_callback", refuse)
    service = service_factory([example_root], poll_interval=0.05)  # type: ignore[operator]
    assert service.status.mode == "polling"
    assert any("max_user_watches" in m for m in service.status.messages)
    assert isinstance(service.watchers[example_root].observer, PollingObserver)
    assert collector.statuses[-1].mode == "polling"
    cost = next(example_root.glob(".mity/chat/*/cost.json"))
    write_bytes_atomic(cost, session_doc(3))
    collector.wait_for(lambda seen: cost in seen)


def test_force_polling_says_so(example_root: Path, service_factory: object, collector: Collector) -> None:
    service = service_factory([example_root], force_polling=True, poll_interval=0.05)  # type: ignore[operator]
    assert service.status.mode == "polling"
    assert any("polling every 0.05 s" in m for m in service.status.messages)
    cost = next(example_root.glob(".mity/chat/*/cost.json"))
    write_bytes_atomic(cost, session_doc(2))
    collector.wait_for(lambda seen: cost in seen)


@linux_only
def test_own_reads_trigger_nothing(example_root: Path, service_factory: object, collector: Collector) -> None:
    service_factory([example_root])  # type: ignore[operator]
    first, second = sorted(example_root.glob(".mity/chat/*/cost.json"))[:2]
    collector.drain()
    for _ in range(50):
        first.read_bytes()
        load_session(first)
    write_bytes_atomic(second, second.read_bytes())  # a sentinel: events arrive in order
    seen = collector.wait_for(lambda s: second in s)
    assert seen == {second}


@linux_only
def test_irrelevant_files_are_not_reported(
    example_root: Path, service_factory: object, collector: Collector
) -> None:
    service_factory([example_root])  # type: ignore[operator]
    session_dir = next(example_root.glob(".mity/chat/*"))
    collector.drain()
    (session_dir / "messages.jsonl").write_text("{}\n")
    (example_root / "README.md").write_text("hello")
    (session_dir / "cost.decision.json").write_text("{}")
    sentinel = session_dir / "cost.json"
    write_bytes_atomic(sentinel, sentinel.read_bytes())
    assert collector.wait_for(lambda s: sentinel in s) == {sentinel}


@linux_only
def test_queue_overflow_asks_for_a_rescan(
    example_root: Path, service_factory: object, collector: Collector
) -> None:
    service_factory([example_root])  # type: ignore[operator]
    collector.drain()
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost"
    )
    collector.wait_for(lambda seen: example_root in seen)


def test_stop_reports_stopped_and_set_roots_switches(
    example_root: Path, empty_root: Path, service_factory: object, collector: Collector
) -> None:
    service = service_factory([example_root])  # type: ignore[operator]
    service.set_roots([empty_root])
    assert service.wait_idle(WAIT)
    assert list(service.watchers) == [empty_root]
    assert service.stop(2.0)
    assert service.status.mode == "stopped"
    assert collector.statuses[-1].mode == "stopped"


@linux_only
def test_unwatchable_folder_is_retried(
    example_root: Path, service_factory: object, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchdog.observers import inotify_c

    def refuse(*args: object, **kwargs: object) -> object:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(inotify_c.InotifyFD, "add_callback", refuse)
    service = service_factory([example_root], retry_delay=0.05)  # type: ignore[operator]
    watcher = service.watchers[example_root]
    assert watcher.failures and service.status.mode == "events"
    assert any("cannot watch" in m for m in service.status.messages)
    monkeypatch.undo()
    deadline = time.monotonic() + WAIT
    while not watcher.scheduled and time.monotonic() < deadline:
        service.wait_idle(0.1)
    assert service.wait_idle(WAIT)
    assert not watcher.failures and watcher.scheduled
    assert not any("cannot watch" in m for m in service.status.messages)
    cost = next(example_root.glob(".mity/chat/*/cost.json"))
    write_bytes_atomic(cost, session_doc(4))
    collector.wait_for(lambda seen: cost in seen)
