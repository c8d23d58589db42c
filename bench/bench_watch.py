"""From a cost.json write to the badge: latency, GUI stalls under heavy rewriting, idle CPU.

Goals (issue 3, point 10): p95 <= 50 ms; no GUI stall over 50 ms; near-zero idle CPU.

    QT_QPA_PLATFORM=offscreen /work/venv/bin/python bench/bench_watch.py [--only a,b,c]
        [--writes 200] [--poll-writes 200] [--records 1000] [--spacing 0.15]
        [--big-records 100000] [--storm-seconds 10] [--storm-rate 5] [--idle-seconds 60] [--json FILE]

(a) latency: ``--writes`` atomic replaces (tmp file + ``os.replace``, from another thread, each
    after the previous one was shown and ``--spacing`` s (+ jitter) of quiet) of a session with
    ``--records`` LLM calls; the time from the replace to the moment a slot connected to
    ``WatchBridge.snapshot_ready`` (the badge's update, in the GUI thread) sees that version.
    Baseline, same process, measured the same way: a 1-second ``QTimer`` in the GUI thread that
    stats the file and, when it changed, loads it (what the ADR's UI does).
(b) stalls: a ``--big-records`` session rewritten ``--storm-rate`` times a second for
    ``--storm-seconds`` while the bridge follows it; a 5 ms ``QTimer`` in the GUI thread records the
    longest gap between its ticks (the longest the event loop was blocked).
(c) idle CPU: process CPU time (``time.process_time``) over ``--idle-seconds`` of the bridge
    watching a root where nothing changes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

from mity_cost.core.factory.loading import LoadedSession, load_session
from mity_cost.core.factory.rules import new_session, rfc3339
from mity_cost.core.live.snapshot import Snapshot
from mity_cost.ui.bridge import WatchBridge

GOAL_P95_MS = 50.0
GOAL_STALL_MS = 50.0
BASE = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
MODELS = ["gpt41", "gpt5mini", "claudesonnet45", {"unknown": "gpt-4o"}]


def session_bytes(records: int, version: int, seed: int = 7) -> bytes:
    """A factory-shaped session (serde-style pretty JSON) whose ``updatedAt`` encodes ``version``."""
    rng = random.Random(seed)
    doc = new_session("bench-00000000-0000-4000-8000-000000000000", BASE)
    total = 0.0
    for n in range(records):
        cost = round(rng.uniform(0.0001, 0.05), 6)
        doc["llmUsage"].append(
            {
                "id": f"{n:08x}-0000-4000-8000-{rng.getrandbits(48):012x}",
                "model": MODELS[n % len(MODELS)],
                "inputTokens": rng.randint(200, 40_000),
                "outputTokens": rng.randint(20, 6_000),
                "cost": cost,
                "agent": "Implementer",
                "station": "implement",
                "timestamp": rfc3339(BASE + timedelta(seconds=n)),
            }
        )
        total += cost
    total += version * 1e-6  # every version changes the total too
    doc["sessionCost"]["breakdown"]["llm"] = {"min": total, "expected": total, "max": total}
    doc["sessionCost"]["total"] = {"min": total, "expected": total, "max": total}
    doc["updatedAt"] = rfc3339(BASE + timedelta(days=1, seconds=version))
    return json.dumps(doc, indent=2).encode()


def version_of(loaded: LoadedSession) -> int:
    """Which write a loaded document came from."""
    return int((loaded.doc["updatedAt"] - (BASE + timedelta(days=1))).total_seconds())


def replace(path: Path, data: bytes, note: Callable[[float], None]) -> None:
    """Write like most writers do (temporary file + rename, no fsync); ``note`` gets the moment of
    the rename, before it happens (so a fast reader can never be seen before its write)."""
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    note(time.perf_counter())
    os.replace(tmp, path)


def _note(writes: list[tuple[float, int]], version: int, moment: float) -> None:
    writes.append((moment, version))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


class Relay(QObject):
    """Lets a plain thread end an event loop (queued into the GUI thread)."""

    done = Signal()


def run_until(loop_body: Callable[[Relay], None], timeout_s: float) -> None:
    """Run the GUI event loop while ``loop_body`` runs in a thread; stop when it returns."""
    loop = QEventLoop()
    relay = Relay()
    relay.done.connect(loop.quit, Qt.ConnectionType.QueuedConnection)

    def body() -> None:
        try:
            loop_body(relay)
        finally:
            relay.done.emit()

    thread = threading.Thread(target=body, name="bench-writer")
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(int(timeout_s * 1000))
    thread.start()
    loop.exec()
    thread.join()


def wait_snapshot(bridge: WatchBridge, predicate: Callable[[Snapshot], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    app = QApplication.instance()
    assert app is not None
    while time.monotonic() < deadline:
        if predicate(bridge.snapshot):
            return True
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.002)
    return predicate(bridge.snapshot)


# -- (a) latency ------------------------------------------------------------------------------------


def measure_latency(
    path: Path,
    variants: dict[int, bytes],
    spacing: float,
    jitter: float,
    subscribe: Callable[[Callable[[LoadedSession], None]], None],
    per_write_timeout: float,
) -> tuple[list[float], int]:
    """Write each version in turn, record write -> badge latency (ms); returns (latencies, missed)."""
    written: dict[int, float] = {}
    arrived: dict[int, float] = {}
    events = {version: threading.Event() for version in variants}

    def badge(loaded: LoadedSession) -> None:  # the GUI thread
        now = time.perf_counter()
        version = version_of(loaded)
        _ = loaded.doc["sessionCost"]["total"]["expected"]  # what the badge shows
        if version in written and version not in arrived:
            arrived[version] = now
            events[version].set()

    subscribe(badge)
    rng = random.Random(3)

    def writer(_: Relay) -> None:
        for version, data in variants.items():
            time.sleep(spacing + rng.uniform(0, jitter))  # after the previous one was shown
            replace(path, data, functools.partial(written.__setitem__, version))
            events[version].wait(per_write_timeout)

    run_until(writer, timeout_s=len(variants) * (spacing + jitter + per_write_timeout) + 10)
    latencies = [(arrived[v] - written[v]) * 1000 for v in written if v in arrived]
    return latencies, len(written) - len(latencies)


def phase_a(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    root = workdir / "latency-root"
    path = root / ".mity" / "chat" / "bench" / "cost.json"
    path.parent.mkdir(parents=True)
    total = max(args.writes, args.poll_writes)
    template = session_bytes(args.records, 0)
    old = b'"updatedAt": "' + rfc3339(BASE + timedelta(days=1)).encode() + b'"\n}'
    variants = [template.replace(old, old.replace(b"T10:00:00Z", _clock(i))) for i in range(total + 1)]
    assert all(v != template for v in variants[1:])
    path.write_bytes(variants[0])

    bridge = WatchBridge([root])
    bridge.start()
    assert wait_snapshot(bridge, lambda s: s.active is not None, 10), "the bridge never loaded"
    assert wait_snapshot(bridge, lambda s: s.status.mode == "events", 10), "no event watching"

    def via_bridge(badge: Callable[[LoadedSession], None]) -> None:
        def on_snapshot(snapshot: Snapshot) -> None:
            if snapshot.active is not None and snapshot.active.loaded is not None:
                badge(snapshot.active.loaded)

        bridge.snapshot_ready.connect(on_snapshot)

    ours_variants = {v: variants[v] for v in range(1, args.writes + 1)}
    ours, ours_missed = measure_latency(path, ours_variants, args.spacing, args.spacing / 2, via_bridge, 3.0)
    bridge.stop()

    timer = QTimer()
    timer.setInterval(1000)

    def via_poller(badge: Callable[[LoadedSession], None]) -> None:
        last = [path.stat().st_mtime_ns]

        def poll() -> None:
            info = path.stat()
            if info.st_mtime_ns != last[0]:
                last[0] = info.st_mtime_ns
                loaded = load_session(path)
                if isinstance(loaded, LoadedSession):
                    badge(loaded)

        timer.timeout.connect(poll)
        timer.start()

    path.write_bytes(variants[0])
    poll_variants = {v: variants[v] for v in range(1, args.poll_writes + 1)}
    # a write at a uniformly random phase of the poller's second (it polls once a second)
    theirs, theirs_missed = measure_latency(path, poll_variants, 0.05, 1.0, via_poller, 2.5)
    timer.stop()
    return {
        "records": args.records,
        "file_bytes": len(template),
        "bridge": summary(ours, ours_missed),
        "poller_1s": summary(theirs, theirs_missed),
    }


def _clock(i: int) -> bytes:
    moment = BASE + timedelta(days=1, seconds=i)
    return moment.strftime("T%H:%M:%SZ").encode()


def summary(values: list[float], missed: int) -> dict[str, Any]:
    return {
        "n": len(values),
        "missed": missed,
        "p50_ms": round(percentile(values, 50), 1),
        "p95_ms": round(percentile(values, 95), 1),
        "max_ms": round(max(values), 1) if values else None,
        "mean_ms": round(statistics.fmean(values), 1) if values else None,
    }


# -- (b) stalls -------------------------------------------------------------------------------------


def phase_b(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    root = workdir / "storm-root"
    path = root / ".mity" / "chat" / "big" / "cost.json"
    path.parent.mkdir(parents=True)
    versions = [session_bytes(args.big_records, v) for v in range(3)]
    path.write_bytes(versions[0])
    started = time.perf_counter()
    reference = load_session(path)
    plain_load_ms = (time.perf_counter() - started) * 1000
    assert isinstance(reference, LoadedSession)
    del reference

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(5)
    ticker.timeout.connect(tick)

    bridge = WatchBridge([root])
    shown: list[tuple[float, int]] = []

    def badge(snapshot: Snapshot) -> None:
        active = snapshot.active
        if active is not None and active.loaded is not None:
            _ = active.loaded.doc["sessionCost"]["total"]["expected"]
            shown.append((time.perf_counter(), version_of(active.loaded)))

    bridge.snapshot_ready.connect(badge)
    bridge.start()
    assert wait_snapshot(bridge, lambda s: s.active is not None, 30), "the big session never loaded"

    # the idle ticker alone, for reference
    gaps.clear()
    last[0] = time.perf_counter()
    ticker.start()
    run_until(lambda _: time.sleep(1.0), 5)
    idle_gaps = list(gaps[1:])

    gaps.clear()
    shown.clear()
    writes: list[tuple[float, int]] = []

    def writer(_: Relay) -> None:
        interval = 1.0 / args.storm_rate
        end = time.perf_counter() + args.storm_seconds
        n = 0
        while time.perf_counter() < end:
            n += 1
            version = 1 + n % 2
            replace(path, versions[version], functools.partial(_note, writes, version))
            time.sleep(max(0.0, interval - 0.002))
        time.sleep(3.0)  # let the last write show

    last[0] = time.perf_counter()
    run_until(writer, args.storm_seconds + 30)
    ticker.stop()
    storm_gaps = list(gaps[1:])
    bridge.snapshot_ready.disconnect(badge)
    bridge.stop()
    ages = []
    for moment, version in shown:
        before = [w for w, v in writes if v == version and w <= moment]
        if before:
            ages.append((moment - before[-1]) * 1000)
    return {
        "records": args.big_records,
        "file_bytes": len(versions[0]),
        "writes": len(writes),
        "snapshots_shown": len(shown),
        "plain_load_in_gui_thread_ms": round(plain_load_ms, 1),
        "idle_ticker_max_gap_ms": round(max(idle_gaps), 1) if idle_gaps else None,
        "max_gap_ms": round(max(storm_gaps), 1) if storm_gaps else None,
        "p99_gap_ms": round(percentile(storm_gaps, 99), 1),
        "gaps_over_50ms": sum(1 for g in storm_gaps if g > GOAL_STALL_MS),
        "ticks": len(storm_gaps),
        "shown_age_p50_ms": round(percentile(ages, 50), 1),
        "shown_age_max_ms": round(max(ages), 1) if ages else None,
    }


# -- (c) idle CPU -----------------------------------------------------------------------------------


def phase_c(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    root = workdir / "idle-root"
    spec = Path(__file__).resolve().parent.parent.parent / "shared" / "spec" / "examples" / "workspace"
    if spec.is_dir():
        shutil.copytree(spec, root)
    else:
        path = root / ".mity" / "chat" / "idle" / "cost.json"
        path.parent.mkdir(parents=True)
        path.write_bytes(session_bytes(100, 0))
    bridge = WatchBridge([root])
    bridge.start()
    assert wait_snapshot(bridge, lambda s: s.active is not None and s.status.mode == "events", 10)
    threads = threading.active_count()
    loads = bridge.loads
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run_until(lambda _: time.sleep(args.idle_seconds), args.idle_seconds + 10)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    loads = bridge.loads - loads
    bridge.stop()
    return {
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 4),
        "cpu_percent": round(100 * cpu / wall, 3),
        "threads": threads,
        "loads_while_idle": loads,
    }


# -- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="a,b,c", help="which phases (a latency, b stalls, c idle CPU)")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--poll-writes", type=int, default=200)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--spacing", type=float, default=0.15, help="quiet before each write in (a)")
    parser.add_argument("--big-records", type=int, default=100_000)
    parser.add_argument("--storm-seconds", type=float, default=10.0)
    parser.add_argument("--storm-rate", type=float, default=5.0)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    phases = {p.strip() for p in args.only.split(",")}

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert app is not None
    results: dict[str, Any] = {"python": sys.version.split()[0], "platform": QApplication.platformName()}
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        workdir = Path(tmp)
        if "a" in phases:
            results["a_latency"] = phase_a(args, workdir)
        if "b" in phases:
            results["b_stalls"] = phase_b(args, workdir)
        if "c" in phases:
            results["c_idle"] = phase_c(args, workdir)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def report(results: dict[str, Any]) -> None:
    print(json.dumps(results, indent=2))
    lines = []
    if "a_latency" in results:
        p95 = results["a_latency"]["bridge"]["p95_ms"]
        verdict = "PASS" if p95 <= GOAL_P95_MS else "FAIL"
        lines.append(f"(a) p95 {p95} ms (goal <= {GOAL_P95_MS:g}): {verdict}")
    if "b_stalls" in results:
        stall = results["b_stalls"]["max_gap_ms"]
        verdict = "PASS" if stall is not None and stall <= GOAL_STALL_MS else "FAIL"
        lines.append(f"(b) longest GUI stall {stall} ms (goal <= {GOAL_STALL_MS:g}): {verdict}")
    if "c_idle" in results:
        idle = results["c_idle"]
        lines.append(f"(c) idle CPU {idle['cpu_seconds']} s in {idle['seconds']} s ({idle['cpu_percent']} %)")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
