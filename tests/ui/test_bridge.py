"""ui.bridge: the coalescer's policy, and events -> worker-thread loads -> snapshots on the GUI thread."""

from __future__ import annotations

import gc
import itertools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from mity_cost.core.atomic import write_bytes_atomic
from mity_cost.core.factory.layout import session_files
from mity_cost.core.factory.loading import load_session
from mity_cost.core.live import tracker as tracker_module
from mity_cost.core.live.snapshot import Snapshot, WatchStatus
from mity_cost.ui.bridge import Coalescer, WatchBridge

pytestmark = pytest.mark.gui
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify behaviour")
WAIT = 2000


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Every bridge is stopped and its threads joined by the end of the test."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not leaked, f"threads leaked: {leaked}"


@pytest.fixture
def make_bridge(qtbot: QtBot) -> Iterator[Callable[..., WatchBridge]]:
    bridges: list[WatchBridge] = []

    def make(roots: list[Path], **kwargs: Any) -> WatchBridge:
        bridge = WatchBridge(roots, **kwargs)
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        assert bridge.stop(2.0)


def started(qtbot: QtBot, bridge: WatchBridge) -> Snapshot:
    with qtbot.waitSignal(bridge.snapshot_ready, timeout=WAIT) as blocker:
        bridge.start()
    qtbot.waitUntil(lambda: bridge.loads >= 1 and not bridge.coalescer.busy, timeout=WAIT)
    snapshot = blocker.args[0] if blocker.args else bridge.snapshot
    assert isinstance(snapshot, Snapshot)
    return bridge.snapshot


def bump(path: Path, stamp: str = "2027-03-04T05:06:07Z") -> str:
    """Rewrite a session with a new ``updatedAt`` (atomically, like the factory)."""
    doc = json.loads(path.read_bytes())
    doc["updatedAt"] = stamp
    write_bytes_atomic(path, json.dumps(doc, indent=2).encode())
    return stamp


def updated_at(bridge: WatchBridge, path: Path) -> str | None:
    view = next((v for v in bridge.snapshot.sessions if v.session_dir == path.parent), None)
    if view is None or view.loaded is None:
        return None
    return view.loaded.doc["updatedAt"].strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the coalescer, on a fake clock ----------------------------------------------------------------


P, Q = Path("/r/a/cost.json"), Path("/r/b/cost.json")


def test_first_change_after_quiet_is_due_at_once() -> None:
    c = Coalescer(window=0.1, max_wait=0.3)
    assert c.delay(0.0) is None
    c.add({P}, 10.0)
    assert c.delay(10.0) == 0.0
    assert c.take() == {P}
    assert c.busy and c.delay(10.0) is None


def test_changes_during_a_load_wait_for_it() -> None:
    c = Coalescer(window=0.1, max_wait=0.3)
    c.add({P}, 0.0)
    c.take()
    c.add({Q}, 0.05)
    c.add({Q}, 0.06)
    assert c.delay(0.07) is None  # in flight
    c.done()
    assert c.delay(0.08) == pytest.approx(0.08)  # window after the latest change
    assert c.take() == {Q}


def test_storm_is_coalesced_and_max_wait_honoured() -> None:
    """A write every 10 ms for 3 s, each load taking 20 ms: the first is loaded at once, then a
    load at least every max_wait (+ the load in flight), far fewer loads than changes."""
    c = Coalescer(window=0.1, max_wait=0.3)
    load_time, tick = 0.02, 0.001
    flushes: list[float] = []
    busy_until: float | None = None
    events = [i * 0.01 for i in range(300)]
    now = 0.0
    while now < 4.0:
        while events and events[0] <= now:
            c.add({P}, events.pop(0))
        if busy_until is not None and now >= busy_until:
            c.done()
            busy_until = None
        delay = c.delay(now)
        if delay is not None and delay <= 0:
            c.take()
            flushes.append(now)
            busy_until = now + load_time
        now = round(now + tick, 6)
    assert flushes[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(flushes)]
    assert max(gaps[:-1]) <= 0.3 + load_time + 2 * tick
    assert 3 / 0.32 <= len(flushes) <= 3 / 0.3 + 3
    assert flushes[-1] == pytest.approx(2.99 + 0.1, abs=2 * tick)  # trailing flush after the storm


def test_quiet_spell_makes_the_next_change_leading_again() -> None:
    c = Coalescer(window=0.1, max_wait=0.3)
    c.add({P}, 0.0)
    c.take()
    c.done()
    c.add({P}, 0.05)  # too soon after the last change: coalesced
    assert c.delay(0.05) == pytest.approx(0.1)
    c.take()
    c.done()
    c.add({Q}, 1.0)
    assert c.delay(1.0) == 0.0


# -- the bridge without a watcher (dirt given by hand) ----------------------------------------------


def test_results_arrive_on_the_gui_thread(qtbot: QtBot, example_root: Path, make_bridge: Any) -> None:
    bridge = make_bridge([example_root], watch=False)
    threads: list[bool] = []
    bridge.snapshot_ready.connect(
        lambda s: threads.append(threading.current_thread() is threading.main_thread())
    )
    snapshot = started(qtbot, bridge)
    assert len(snapshot.sessions) == len(session_files(example_root))
    path = session_files(example_root)[0].path
    stamp = bump(path)
    worker = threading.Thread(target=lambda: bridge.notify_dirty([path]))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: updated_at(bridge, path) == stamp, timeout=WAIT)
    assert threads and all(threads)


def test_first_change_is_loaded_at_once_later_ones_wait(
    qtbot: QtBot, example_root: Path, make_bridge: Any
) -> None:
    bridge = make_bridge([example_root], watch=False, window_ms=60_000, max_wait_ms=60_000)
    started(qtbot, bridge)
    first, second = (s.path for s in session_files(example_root)[:2])
    stamp = bump(first)
    bridge.notify_dirty([first])  # leading edge: no window to wait for
    qtbot.waitUntil(lambda: updated_at(bridge, first) == stamp, timeout=WAIT)
    bump(second)
    bridge.notify_dirty([second])
    qtbot.waitUntil(lambda: bridge.coalescer.pending == {second}, timeout=WAIT)
    assert bridge.loads == 2  # coalesced: waits for the (long) window, not loaded yet


def test_duplicate_notifications_make_one_parse(
    qtbot: QtBot, example_root: Path, make_bridge: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[Path] = []

    def spy(path: Path, *args: Any) -> Any:
        parses.append(path)
        return load_session(path, *args)

    monkeypatch.setattr(tracker_module, "load_session", spy)
    bridge = make_bridge([example_root], watch=False)
    started(qtbot, bridge)
    path = session_files(example_root)[0].path
    parses.clear()
    stamp = bump(path)
    threads = [threading.Thread(target=lambda: bridge.notify_dirty([path])) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    qtbot.waitUntil(lambda: updated_at(bridge, path) == stamp, timeout=WAIT)
    qtbot.waitUntil(lambda: not bridge.coalescer.busy and not bridge.coalescer.pending, timeout=WAIT)
    assert parses == [path]


def test_half_written_file_says_updating_then_is_retried(
    qtbot: QtBot, example_root: Path, make_bridge: Any
) -> None:
    bridge = make_bridge([example_root], watch=False, retry_ms=20, max_retries=50)
    started(qtbot, bridge)
    path = session_files(example_root)[0].path
    data = path.read_bytes()
    good = next(v.loaded for v in bridge.snapshot.sessions if v.session_dir == path.parent)
    path.write_bytes(data[: len(data) // 2])
    bridge.notify_dirty([path])

    def updating() -> bool:
        view = next(v for v in bridge.snapshot.sessions if v.session_dir == path.parent)
        return view.updating and view.loaded is good

    qtbot.waitUntil(updating, timeout=WAIT)
    stamp = "2027-09-09T09:09:09Z"
    path.write_bytes(data.replace(json.loads(data)["updatedAt"].encode(), stamp.encode()))  # no event
    qtbot.waitUntil(lambda: updated_at(bridge, path) == stamp, timeout=WAIT)
    view = next(v for v in bridge.snapshot.sessions if v.session_dir == path.parent)
    assert not view.updating and view.error is None


def test_retries_are_bounded(qtbot: QtBot, example_root: Path, make_bridge: Any) -> None:
    bridge = make_bridge([example_root], watch=False, retry_ms=10, max_retries=3)
    started(qtbot, bridge)
    path = session_files(example_root)[0].path
    path.write_bytes(path.read_bytes()[:100])
    bridge.notify_dirty([path])
    qtbot.waitUntil(lambda: bridge.loads >= 1 + 1 + 3 and not bridge.retrying, timeout=WAIT)
    qtbot.waitUntil(lambda: not bridge.coalescer.busy, timeout=WAIT)
    loads = bridge.loads
    assert loads == 5  # the first read and three retries
    view = next(v for v in bridge.snapshot.sessions if v.session_dir == path.parent)
    assert view.updating and view.loaded is not None


def test_rescan_finds_changes_behind_the_watchers_back(
    qtbot: QtBot, example_root: Path, make_bridge: Any
) -> None:
    bridge = make_bridge([example_root], watch=False)
    started(qtbot, bridge)
    path = session_files(example_root)[0].path
    stamp = bump(path)
    extra = example_root / ".mity" / "chat" / "extra" / "cost.json"
    extra.parent.mkdir()
    extra.write_bytes(path.read_bytes())
    bridge.rescan()
    qtbot.waitUntil(
        lambda: updated_at(bridge, path) == stamp and updated_at(bridge, extra) == stamp, timeout=WAIT
    )


def test_periodic_rescan_is_the_safety_net(qtbot: QtBot, example_root: Path, make_bridge: Any) -> None:
    bridge = make_bridge([example_root], watch=False, rescan_ms=30)
    started(qtbot, bridge)
    path = session_files(example_root)[0].path
    stamp = bump(path)
    qtbot.waitUntil(lambda: updated_at(bridge, path) == stamp, timeout=WAIT)


def test_set_roots_switches(qtbot: QtBot, example_root: Path, real_root: Path, make_bridge: Any) -> None:
    bridge = make_bridge([example_root], watch=False)
    started(qtbot, bridge)
    bridge.set_roots([real_root])
    qtbot.waitUntil(
        lambda: (
            bridge.snapshot.roots == (real_root,)
            and {v.root for v in bridge.snapshot.sessions} == {real_root}
        ),
        timeout=WAIT,
    )


# -- the bridge with a real watcher -----------------------------------------------------------------


@linux_only
def test_atomic_save_reaches_the_gui(qtbot: QtBot, example_root: Path, make_bridge: Any) -> None:
    bridge = make_bridge([example_root])
    started(qtbot, bridge)
    qtbot.waitUntil(lambda: bridge.status.mode == "events", timeout=WAIT)
    path = session_files(example_root)[-1].path
    stamp = bump(path)
    qtbot.waitUntil(lambda: updated_at(bridge, path) == stamp, timeout=WAIT)
    active = bridge.snapshot.active
    assert active is not None and active.session_dir == path.parent


@linux_only
def test_new_root_appears_while_running(
    qtbot: QtBot, tmp_path: Path, example_root: Path, make_bridge: Any
) -> None:
    root = tmp_path / "later"
    bridge = make_bridge([root])
    started(qtbot, bridge)
    assert bridge.snapshot.sessions == ()
    source = session_files(example_root)[0].path
    target = root / ".mity" / "chat" / source.parent.name / "cost.json"
    write_bytes_atomic(target, source.read_bytes())
    qtbot.waitUntil(lambda: len(bridge.snapshot.sessions) == 1, timeout=WAIT)


@linux_only
def test_dead_observer_is_restarted_by_the_check(qtbot: QtBot, example_root: Path, make_bridge: Any) -> None:
    bridge = make_bridge([example_root])
    started(qtbot, bridge)
    service = bridge.service
    assert service is not None and service.wait_idle(2.0)
    observer = service.watchers[example_root].observer
    assert observer is not None
    observer.stop()
    observer.join(2.0)
    bridge.check()
    qtbot.waitUntil(lambda: service.restarts == 1, timeout=WAIT)
    assert service.wait_idle(2.0)
    path = session_files(example_root)[0].path
    stamp = bump(path)
    qtbot.waitUntil(lambda: updated_at(bridge, path) == stamp, timeout=WAIT)
    assert any("restarted" in m for m in bridge.snapshot.status.messages)


def test_polling_is_reported(qtbot: QtBot, example_root: Path, make_bridge: Any) -> None:
    bridge = make_bridge([example_root], force_polling=True, poll_interval=0.05)
    statuses: list[WatchStatus] = []
    bridge.status_changed.connect(statuses.append)
    started(qtbot, bridge)
    qtbot.waitUntil(lambda: bridge.snapshot.status.mode == "polling", timeout=WAIT)
    assert statuses and statuses[-1].mode == "polling"
    path = session_files(example_root)[0].path
    stamp = bump(path)
    qtbot.waitUntil(lambda: updated_at(bridge, path) == stamp, timeout=WAIT)
    assert bridge.stop(2.0)
    final: list[WatchStatus] = [statuses[-1], bridge.status]
    assert [s.mode for s in final] == ["stopped", "stopped"]


def test_stop_is_idempotent_and_late_results_are_ignored(
    qtbot: QtBot, example_root: Path, make_bridge: Any
) -> None:
    bridge = make_bridge([example_root], watch=False)
    started(qtbot, bridge)
    before = bridge.snapshot
    assert bridge.stop(2.0)
    assert bridge.stop(2.0)
    bridge.notify_dirty([session_files(example_root)[0].path])
    qtbot.wait(10)  # let a queued signal be delivered (it must be ignored)
    assert bridge.snapshot.sessions == before.sessions
    assert not bridge.running and bridge.coalescer.pending == frozenset()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None, True and False are immortal from 3.12")
def test_emits_and_timer_calls_cannot_use_up_none_or_true(
    qtbot: QtBot, example_root: Path, make_bridge: Any
) -> None:
    """A binding that drops a reference per emit or void call (PySide6 6.12) would show here."""
    bridge = make_bridge([example_root], watch=False)
    started(qtbot, bridge)
    path = session_files(example_root)[0].path
    gc.collect()
    before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(200):
        bridge.notify_dirty([path])
    qtbot.waitUntil(lambda: not bridge.coalescer.pending and not bridge.coalescer.busy, timeout=WAIT)
    gc.collect()
    after = sys.getrefcount(True), sys.getrefcount(None)
    assert after[0] - before[0] > -100 and after[1] - before[1] > -100


def test_starting_lets_the_gui_take_the_gil_back_within_a_millisecond(
    qtbot: QtBot, example_root: Path, make_bridge: Any
) -> None:
    sys.setswitchinterval(0.005)
    bridge = make_bridge([example_root], watch=False)
    started(qtbot, bridge)
    assert sys.getswitchinterval() <= 0.001
