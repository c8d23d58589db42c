"""Load + check + summary of a 100,000-call session, against stdlib ``json.loads`` and a plain loop.

Goal (issue 2, point 9): at most 0.5x the baseline while still checking every record.

    /work/venv/bin/python bench/bench_load.py [--records 100000] [--repeats 7] [--profile]

- candidate: ``loading.parse_session(bytes)`` (pydantic ``TypeAdapter`` over the TypedDicts: every
  record checked, the ledger compared with its records), ``summary.summarize`` and
  ``summary.group_records(..., "model")``;
- baseline: ``json.loads(bytes)`` and a plain ``for`` loop summing ``cost`` (no checks at all).

Both run in this process on the same bytes (already in memory), alternately, ``--repeats`` times;
the medians and their ratio are printed.  ``--profile`` adds a cProfile of one candidate run.
``--breakdown`` also times the parts, each against the same baseline (round-robin): stdlib
``json.loads`` alone, pydantic-core's bare JSON parser (``from_json``: no checks at all), the checked
parse (``SESSION_ADAPTER.validate_json``) with the cycle collector on and paused (``parse_session``
pauses it for large files), and the Python passes (``session_figures``, ``summarize``,
``group_records``): where the floor of the candidate is.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mity_cost.core.factory.documents import SESSION_ADAPTER
from mity_cost.core.factory.figures import session_figures
from mity_cost.core.factory.loading import LoadedSession, parse_session
from mity_cost.core.factory.rules import FACTORY_PRICES, new_session, rfc3339
from mity_cost.core.figures.summary import group_records, summarize
from mity_cost.core.settings import Settings

GOAL = 0.5
MODELS: list[Any] = [
    *[m for m in FACTORY_PRICES if m != "unknown"],
    {"unknown": "gpt-4o"},
    {"unknown": "llama-3-70b"},
    {"unknown": "gemini-2.5-pro"},
]
AGENTS = [
    "Analyst",
    "Architect",
    "Implementer",
    "Implementer (AutoFix)",
    "Tester",
    "Reviewer",
    "Security Engineer",
]
STATIONS = ["intake", "analyze", "architect", "scaffold", "implement", "test", "review", "secure"]
FEATURES = ["user-auth", "checkout", "search", "reports"]


def make_session(records: int, seed: int = 7) -> bytes:
    """A session as the factory writes it (serde's pretty JSON) with ``records`` LLM calls."""
    from datetime import UTC, datetime, timedelta

    rng = random.Random(seed)
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    doc = new_session("bench-00000000-0000-4000-8000-000000000000", start)
    usage = doc["llmUsage"]
    total = 0.0
    for n in range(records):
        model = rng.choice(MODELS)
        price_in, price_out = FACTORY_PRICES[model if isinstance(model, str) else "unknown"]
        tokens_in, tokens_out = rng.randint(200, 40_000), rng.randint(20, 6_000)
        cost = (tokens_in / 1000.0) * price_in + (tokens_out / 1000.0) * price_out
        record: dict[str, Any] = {
            "id": f"{rng.getrandbits(32):08x}-{n % 65536:04x}-4{rng.getrandbits(12):03x}-"
            f"8{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}",
            "model": model,
            "inputTokens": tokens_in,
            "outputTokens": tokens_out,
            "cost": cost,
            "agent": rng.choice(AGENTS),
        }
        if rng.random() < 0.6:
            record["station"] = rng.choice(STATIONS)
        if rng.random() < 0.3:
            record["feature"] = rng.choice(FEATURES)
        record["timestamp"] = rfc3339(start + timedelta(seconds=n, microseconds=rng.randint(0, 999_999)))
        usage.append(record)
        total += cost
    ledger = doc["sessionCost"]
    ledger["breakdown"]["llm"] = {"min": total, "expected": total, "max": total}
    ledger["total"] = {"min": total, "expected": total, "max": total}
    return json.dumps(doc, indent=2).encode()


def candidate(data: bytes) -> float:
    """Load, check every record, compare ledger and records, summarise, group by model."""
    loaded = parse_session(data)
    if not isinstance(loaded, LoadedSession):
        raise SystemExit(f"the generated session does not load: {loaded.describe()}")
    summary = summarize(loaded.figures, Settings())
    groups = group_records(loaded.doc["llmUsage"], "model")
    assert loaded.consistency.consistent and groups
    return summary.total_expected


def baseline(data: bytes) -> float:
    """Stdlib json.loads plus a plain loop summing cost."""
    doc = json.loads(data)
    total = 0.0
    for record in doc["llmUsage"]:
        total += record["cost"]
    return total


def _time(func: Callable[[bytes], Any], data: bytes) -> float:
    gc.collect()
    start = time.perf_counter()
    func(data)
    return time.perf_counter() - start


def _gc_off(func: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def run(data: bytes) -> Any:
        gc.disable()
        try:
            return func(data)
        finally:
            gc.enable()

    return run


def breakdown(data: bytes, repeats: int) -> list[dict[str, Any]]:
    """The parts of the candidate (and what no checks at all would cost), each against the baseline."""
    import pydantic_core

    loaded = parse_session(data)
    assert isinstance(loaded, LoadedSession)
    settings = Settings()
    parts: dict[str, Callable[[bytes], Any]] = {
        "baseline: json.loads + loop": baseline,
        "json.loads alone": json.loads,
        "pydantic_core.from_json (no checks)": pydantic_core.from_json,
        "from_json, keys cached only, GC paused": _gc_off(
            lambda d: pydantic_core.from_json(d, cache_strings="keys")
        ),
        "validate_json (every check), GC on": SESSION_ADAPTER.validate_json,
        "validate_json (every check), GC paused": _gc_off(SESSION_ADAPTER.validate_json),
        "session_figures (fsum, repeated ids, tokens)": lambda _: session_figures(loaded.doc),
        "summarize": lambda _: summarize(loaded.figures, settings),
        "group_records by model": lambda _: group_records(loaded.doc["llmUsage"], "model"),
        "candidate (all of it)": candidate,
    }
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(repeats):
        for name, func in parts.items():
            samples[name].append(_time(func, data))
    base = statistics.median(samples["baseline: json.loads + loop"])
    return [
        {"part": name, "median_ms": statistics.median(times) * 1000, "ratio": statistics.median(times) / base}
        for name, times in samples.items()
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when the goal is missed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000, help="LLM records in the session (100000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each (7)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one candidate run")
    parser.add_argument("--breakdown", action="store_true", help="also time the parts against the baseline")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    data = make_session(args.records)
    assert candidate(data) == baseline(data) or abs(candidate(data) - baseline(data)) < 1e-6
    cand: list[float] = []
    base: list[float] = []
    for _ in range(args.repeats):
        base.append(_time(baseline, data))
        cand.append(_time(candidate, data))
    ratio = statistics.median(cand) / statistics.median(base)
    figures = {
        "records": args.records,
        "bytes": len(data),
        "repeats": args.repeats,
        "candidate_ms": statistics.median(cand) * 1000,
        "baseline_ms": statistics.median(base) * 1000,
        "ratio": ratio,
        "goal": GOAL,
        "ok": ratio <= GOAL,
    }
    if args.breakdown:
        figures["breakdown"] = breakdown(data, args.repeats)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"{args.records} records ({len(data) / 1e6:.1f} MB), median of {args.repeats}:\n"
            f"  load + check + summary + by model: {figures['candidate_ms']:8.1f} ms\n"
            f"  json.loads + loop summing cost:    {figures['baseline_ms']:8.1f} ms\n"
            f"  ratio {ratio:.2f}x (goal <= {GOAL}x): {'met' if figures['ok'] else 'MISSED'}"
        )
        for part in figures.get("breakdown", []):
            print(f"    {part['part']:<42} {part['median_ms']:8.1f} ms  {part['ratio']:5.2f}x")
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(candidate, data)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
