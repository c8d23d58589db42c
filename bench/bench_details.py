"""GUI stalls with the details window open on a 100,000-record session rewritten 5 times a second.

Goal (issue 3): no stall of the GUI event loop over 50 ms, with the details window open too.

    QT_QPA_PLATFORM=offscreen /work/venv/bin/python bench/bench_details.py [--records 100000]
        [--seconds 20] [--rate 5] [--only closed,open] [--catalog]
        [--profile FILE] [--trace] [--switch-interval S] [--json FILE]

A ``--records`` session (``bench_watch.session_bytes``: factory-shaped, pretty JSON) is rewritten
``--rate`` times a second for ``--seconds`` (tmp file + ``os.replace`` from another thread), each
version with one more call than the one before, as a factory appends them (so the calls listed under
an agent change with every write).  The real path is used: ``WatchBridge`` -> ``snapshot_ready`` ->
a badge slot and ``DetailsWindow.apply`` (as ``app.App`` does; its history worker is not running:
the window's first budget job, which takes the whole session into the history, ends before the
storm, as the history worker would have done it).
A 5 ms ``QTimer`` in the GUI thread records the gaps between its ticks: the longest is the longest
the event loop was blocked.

Two runs in the same process: ``closed`` (the details window exists but is hidden: it still gets
every snapshot, as in the app once it was opened and closed) and ``open`` (shown on the session,
with the LLM section, a model and an agent expanded, a call selected and the view scrolled, then
the same storm).  ``--profile FILE`` writes cProfile statistics of the GUI thread during the
``open`` storm; ``--trace`` records what ran when (the window's GUI-thread slots, the worker jobs,
the loads, every garbage collection and its thread) and lists what overlapped each stall over
50 ms.  ``--catalog`` uses the real price catalog (genai-prices) instead of an empty price book;
``--switch-interval S`` sets ``sys.setswitchinterval`` (the app keeps Python's 0.005 s) and
``--freeze-loads`` calls ``gc.freeze()`` after each big load (experiments, not what the app does:
how much of the stalls the interpreter's switching and full garbage collections account for).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import itertools
import json
import os
import pstats
import re
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench_watch import (
    BASE,
    GOAL_STALL_MS,
    Relay,
    percentile,
    run_until,
    session_bytes,
    version_of,
    wait_snapshot,
)
from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtWidgets import QApplication

from mity_cost.core.factory.loading import LoadedSession
from mity_cost.core.factory.rules import rfc3339
from mity_cost.core.live import tracker as tracker_module
from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.pricing.prices import PriceBook
from mity_cost.core.settings import Settings
from mity_cost.ui import details as details_module
from mity_cost.ui.bridge import WatchBridge
from mity_cost.ui.details import DetailsWindow


class Heartbeat:
    """A 5 ms precise timer in the GUI thread; ``gaps`` are the times between its ticks (ms), and
    ``spans`` the same gaps as (start, end) moments (``perf_counter`` seconds)."""

    def __init__(self, interval_ms: int = 5) -> None:
        self.spans: list[tuple[float, float]] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.spans.append((self._last, now))
        self._last = now

    def start(self) -> None:
        self.spans.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> list[float]:
        """Stop; the gaps (ms) but the first (which includes the start-up)."""
        self._timer.stop()
        del self.spans[:1]
        return [(end - start) * 1000 for start, end in self.spans]


class Timeline:
    """What ran when (``--trace``): slots of the window, worker jobs and garbage collections, each as
    (start, end, label); ``blame`` lists what overlapped each long stall."""

    def __init__(self) -> None:
        self.events: list[tuple[float, float, str]] = []
        self._gc_started: dict[int, float] = {}

    def gc_callback(self, phase: str, info: dict[str, int]) -> None:
        """For ``gc.callbacks``: every collection, with its generation and thread."""
        ident = threading.get_ident()
        if phase == "start":
            self._gc_started[ident] = time.perf_counter()
        elif ident in self._gc_started:
            name = threading.current_thread().name
            label = f"gc gen{info['generation']} ({name})"
            self.events.append((self._gc_started.pop(ident), time.perf_counter(), label))

    def wrap(self, owner: Any, name: str, label: str) -> None:
        """Replace ``owner.name`` by a timed call of it."""
        inner = getattr(owner, name)
        events = self.events

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                events.append((started, time.perf_counter(), label))

        setattr(owner, name, timed)

    def clear(self) -> None:
        self.events.clear()

    def summary(self) -> dict[str, dict[str, float]]:
        """Per label: how many, the longest, the median and the total (ms)."""
        by_label: dict[str, list[float]] = defaultdict(list)
        for start, end, label in self.events:
            by_label[re.sub(r"gc gen(\d).*", r"gc gen\1", label)].append((end - start) * 1000)
        return {
            label: {
                "n": len(values),
                "max_ms": round(max(values), 1),
                "p50_ms": round(percentile(values, 50), 1),
                "total_ms": round(sum(values), 1),
            }
            for label, values in sorted(by_label.items())
        }

    def blame(self, spans: list[tuple[float, float]], over_ms: float, top: int = 8) -> list[str]:
        """The ``top`` longest gaps over ``over_ms``, each with what overlapped it (ms of overlap)."""
        long = sorted((s for s in spans if (s[1] - s[0]) * 1000 > over_ms), key=lambda s: s[0] - s[1])
        lines = []
        for start, end in long[:top]:
            parts = []
            for e_start, e_end, label in self.events:
                overlap = min(end, e_end) - max(start, e_start)
                if overlap > 0.001:
                    parts.append(f"{label} {overlap * 1000:.0f}")
            lines.append(f"{(end - start) * 1000:.0f} ms: " + (", ".join(parts) or "(nothing traced)"))
        return lines


def tracked_objects() -> dict[str, int]:
    """How many objects the cyclic collector tracks (what a full collection walks), and how many
    loaded sessions are alive."""
    objects = gc.get_objects()
    sessions = [o for o in objects if isinstance(o, LoadedSession)]
    return {"tracked": len(objects), "loaded_sessions": len(sessions)}


def prepare_view(details: DetailsWindow) -> None:
    """Expand LLM > first model > first agent, select a call and scroll a little (a user's state)."""
    model, tree = details.model, details.tree
    llm = model.index_for_path(("llm",))
    tree.setExpanded(llm, True)
    first_model = model.index(0, 0, llm)
    tree.setExpanded(first_model, True)
    agent = model.index(0, 0, first_model)
    tree.setExpanded(agent, True)
    call = model.index(5, 0, agent)
    selection = tree.selectionModel()
    selection.setCurrentIndex(call, QItemSelectionModel.SelectionFlag.ClearAndSelect)
    selection.select(call, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    tree.verticalScrollBar().setValue(tree.verticalScrollBar().maximum() // 3)


class GrowingSession:
    """A session that gains one LLM call per write, as a factory appends them.

    The records come from ``bench_watch.session_bytes`` (the same 100,000-record document), pretty
    printed once; each version is the document's head and tail (its totals and ``updatedAt`` set
    for that version) around the first ``records + version`` records, written in pieces so the
    writer never builds a 30 MB string (which would hold the GIL, stalling the GUI, itself).
    """

    _MARK = "@@records@@"

    def __init__(self, records: int, extra: int) -> None:
        full = json.loads(session_bytes(records + extra, 0))
        calls = full["llmUsage"]
        blocks = [
            "\n".join("    " + line for line in json.dumps(r, indent=2).splitlines()).encode() for r in calls
        ]
        self.body = b",\n".join(blocks)
        self.ends = list(itertools.accumulate(len(b) + 2 for b in blocks))  # each block's end + ",\n"
        self.costs = list(itertools.accumulate(r["cost"] for r in calls))
        self.records = records
        self.skeleton = {**full, "llmUsage": [self._MARK]}

    def pieces(self, version: int) -> tuple[bytes, memoryview, bytes]:
        """Head, records and tail of a version (``version`` more records than the first)."""
        n = min(self.records + version, len(self.costs))
        total = self.costs[n - 1] if n else 0.0
        doc = dict(self.skeleton)
        doc["sessionCost"] = json.loads(json.dumps(doc["sessionCost"]))
        doc["sessionCost"]["breakdown"]["llm"] = {"min": total, "expected": total, "max": total}
        doc["sessionCost"]["total"] = {"min": total, "expected": total, "max": total}
        doc["updatedAt"] = rfc3339(BASE + timedelta(days=1, seconds=version))
        text = json.dumps(doc, indent=2).encode()
        head, tail = text.split(f'    "{self._MARK}"'.encode())
        return head, memoryview(self.body)[: self.ends[n - 1] - 2], tail

    def write(self, path: Path, version: int) -> None:
        """Replace ``path`` by this version (temporary file + rename, as ``bench_watch.replace``)."""
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as out:
            for piece in self.pieces(version):
                out.write(piece)
        os.replace(tmp, path)


def storm(
    path: Path,
    session: GrowingSession,
    first: int,
    seconds: float,
    rate: float,
    heartbeat: Heartbeat,
    profile: cProfile.Profile | None = None,
) -> tuple[list[float], int]:
    """Rewrite ``path`` ``rate`` times a second for ``seconds`` (versions from ``first`` on, one more
    call each); the heartbeat's gaps and the number of writes."""
    writes = [0]

    def writer(_: Relay) -> None:
        interval = 1.0 / rate
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            writes[0] += 1
            session.write(path, first + writes[0])
            time.sleep(max(0.0, interval - 0.002))
        time.sleep(3.0)  # let the last write show

    heartbeat.start()
    if profile is not None:
        profile.enable()
    try:
        run_until(writer, seconds + 30)
    finally:
        if profile is not None:
            profile.disable()
    return heartbeat.stop(), writes[0]


def figures(gaps: list[float], writes: int, shown: int) -> dict[str, Any]:
    return {
        "writes": writes,
        "snapshots": shown,
        "ticks": len(gaps),
        "max_gap_ms": round(max(gaps), 1) if gaps else None,
        "p99_gap_ms": round(percentile(gaps, 99), 1),
        "p999_gap_ms": round(percentile(gaps, 99.9), 1),
        "gaps_over_50ms": sum(1 for g in gaps if g > GOAL_STALL_MS),
        "longest_5_ms": [round(g, 1) for g in sorted(gaps)[-5:][::-1]],
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    root = workdir / "root"
    path = root / ".mity" / "chat" / "big" / "cost.json"
    path.parent.mkdir(parents=True)
    started = time.perf_counter()
    per_run = int(args.seconds * args.rate) + 20
    session = GrowingSession(args.records, 2 * per_run)
    generate_s = time.perf_counter() - started
    session.write(path, 0)

    settings = Settings()
    book = PriceBook.load() if args.catalog else PriceBook(overrides={}, use_catalog=False)
    details = DetailsWindow(
        prices=book,
        history_path=workdir / "history.sqlite3",
        budget_path=workdir / "budgets.toml",
    )
    bridge = WatchBridge([root])
    shown: list[int] = []
    # as app.main does once everything is set up, before the first session is loaded
    gc.collect()
    gc.freeze()

    def on_snapshot(snapshot: Snapshot) -> None:  # what the app does: the badge, then the window
        active = snapshot.active
        if active is not None and active.loaded is not None:
            _ = active.loaded.doc["sessionCost"]["total"]["expected"]
            shown.append(version_of(active.loaded))
        details.apply(snapshot, settings)

    bridge.snapshot_ready.connect(on_snapshot)
    bridge.start()
    assert wait_snapshot(bridge, lambda s: s.active is not None, 60), "the big session never loaded"
    assert wait_snapshot(bridge, lambda s: s.status.mode == "events", 10), "no event watching"
    heartbeat = Heartbeat()
    timeline = Timeline()
    if args.freeze_loads:
        load = tracker_module.load_large_session

        def load_and_freeze(path: Path) -> Any:
            result = load(path)
            gc.freeze()  # the new document out of the collector's generations
            return result

        tracker_module.load_large_session = load_and_freeze  # type: ignore[assignment]
    if args.trace:
        gc.callbacks.append(timeline.gc_callback)
        timeline.wrap(details, "apply", "apply")
        timeline.wrap(details, "_show_result", "show result")
        timeline.wrap(details.model, "set_tree", "model.set_tree")
        timeline.wrap(details.charts, "set_series", "charts.set_series")
        timeline.wrap(details._engine, "run", "insights job (worker)")
        timeline.wrap(details_module._Job, "run", "tree+series job (worker)")
        timeline.wrap(tracker_module, "load_large_session", "load (loader)")
    phases = {p.strip() for p in args.only.split(",")}
    results: dict[str, Any] = {
        "records": args.records,
        "file_bytes": path.stat().st_size,
        "generate_s": round(generate_s, 1),
        "rate_per_s": args.rate,
        "seconds": args.seconds,
    }

    # the idle ticker alone, for reference
    heartbeat.start()
    run_until(lambda _: time.sleep(1.0), 5)
    idle = heartbeat.stop()
    results["idle_max_gap_ms"] = round(max(idle), 1) if idle else None

    if "closed" in phases:
        shown.clear()
        timeline.clear()
        gaps, writes = storm(path, session, 0, args.seconds, args.rate, heartbeat)
        results["closed"] = figures(gaps, writes, len(shown))
        if args.trace:
            results["closed"]["traced"] = timeline.summary()
            results["closed"]["longest_stalls"] = timeline.blame(heartbeat.spans, GOAL_STALL_MS)
        print(f"closed: {results['closed']}", file=sys.stderr, flush=True)
    if "open" in phases:
        details.show_session("big")
        app = QApplication.instance()
        assert app is not None

        def on_screen() -> bool:
            return details.model.root.child("llm") is not None and details.is_idle()

        deadline = time.monotonic() + 60
        while not on_screen() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        assert on_screen(), "the details window never showed the session"
        # The app's history worker keeps the history current while the window is closed: bring it
        # up to date too, so the window's budget jobs take in only new calls, as they would there.
        deadline = time.monotonic() + 120
        while not details.insights_idle() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        prepare_view(details)
        app.processEvents()
        timeline.clear()
        rendered = [0]
        details.rendered.connect(lambda: rendered.__setitem__(0, rendered[0] + 1))
        shown.clear()
        profile = cProfile.Profile() if args.profile else None
        gaps, writes = storm(path, session, per_run, args.seconds, args.rate, heartbeat, profile)
        results["open"] = figures(gaps, writes, len(shown))
        results["open"]["renders"] = rendered[0]
        results["open"]["expanded_kept"] = len(details.keeper.expanded_paths())
        if args.trace:
            results["open"]["tracked_objects_after"] = tracked_objects()
            results["open"]["traced"] = timeline.summary()
            results["open"]["longest_stalls"] = timeline.blame(heartbeat.spans, GOAL_STALL_MS)
        if profile is not None:
            profile.dump_stats(args.profile)
            stats = pstats.Stats(profile)
            stats.sort_stats("cumulative").print_stats(30)
        details.hide()
    if args.trace:
        gc.callbacks.remove(timeline.gc_callback)
    bridge.stop()
    details.deleteLater()
    return results


def report(results: dict[str, Any]) -> None:
    print(json.dumps(results, indent=2))
    for phase in ("closed", "open"):
        if phase in results:
            stall = results[phase]["max_gap_ms"]
            verdict = "PASS" if stall is not None and stall <= GOAL_STALL_MS else "FAIL"
            p99 = results[phase]["p99_gap_ms"]
            print(
                f"window {phase}: longest GUI stall {stall} ms, p99 {p99} ms "
                f"(goal <= {GOAL_STALL_MS:g}): {verdict}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--only", default="closed,open", help="which runs (closed, open)")
    parser.add_argument("--catalog", action="store_true", help="the real price catalog")
    parser.add_argument("--profile", type=Path, help="cProfile the GUI thread (open run) into FILE")
    parser.add_argument("--trace", action="store_true", help="time the window's GUI-thread slots")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval (seconds)")
    parser.add_argument(
        "--freeze-loads", action="store_true", help="experiment: gc.freeze() after each big load"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert app is not None
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": QApplication.platformName(),
        "switch_interval_s": sys.getswitchinterval(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-details-") as tmp:
        results.update(run(args, Path(tmp)))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
