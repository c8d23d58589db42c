"""``summary``, ``show``, ``features``, ``export``: read the factory's cost files and report them.

A bad file never hides the others: its path and what is wrong go to stderr, every good session is
still printed, and the command then exits 2 (bad input).  A file caught half-written is read again
a few times before it counts as bad.  Amounts are in the display currency (``MITY_COST_CURRENCY``,
converted at the settings' rate, which the output says) except in ``export``, which copies the
files' own figures and names their currency.

JSON schemas (stable; amounts are numbers, ranges are ``{"min", "expected", "max"}`` unless named):

- ``summary --json``: a list, one object per session: the factory's ``RuntimeCostSummary`` keys
  (``totalExpected``, ``totalMin``, ``totalMax``, ``llmCost``, ``computeCost``, ``monthlyInfra``,
  ``currency`` (symbol), ``llmCalls``, ``totalTokens``, ``exceedsThreshold``, ``threshold``,
  ``summary``, ``llmIncluded``) plus ``sessionId`` and ``root``.
- ``show --json``: one object: ``sessionId``, ``root``, ``path``, ``currency`` (code), ``symbol``,
  ``sourceCurrency``, ``conversionNote`` (null when not converted), ``llmIncluded``, ``summary``
  (as in ``summary --json``), ``total``, ``breakdown`` ({category: range + ``notes``}), ``byModel``,
  ``byAgent``, ``byStation``, ``byFeature`` (lists of ``{"key", "label", "unknownModel" (byModel
  only), "calls", "inputTokens", "outputTokens", "cost"}``), ``executions`` (``{"type", "runs",
  "localRuns", "cpuMinutes", "memoryGbMinutes", "cost": range}``), ``monthlyInfra`` (``{"total",
  "breakdown", "assumptions", "confidence"}``), ``featureCosts`` (``{"featureId", "featureName",
  "oneTime", "monthly"}``), ``consistency`` (``{"consistent", "ledgerLlm", "recordsLlm",
  "duplicateIds", "message"}``), ``threshold``, ``factoryThreshold`` (the file's
  ``confirmationThreshold``, shown, not used), ``updatedAt``; with ``--detailed`` also
  ``currentPrices``: ``PriceBook.price_groups`` rows (``ModelPrice.to_json()``, amounts converted
  to the display currency; ``currentCost`` null means unpriced) and ``priceNotes``.
- ``features --json``: a list, one object per app: ``root``, ``app``, ``currency``, ``oneTime``,
  ``monthly`` (ranges summed over the app's features) and ``features`` (``FeatureSummary.to_json()``).
- ``export --format json``: a list of flat records with the CSV's columns (``EXPORT_COLUMNS``):
  ``kind`` is ``llm`` or ``execution``; an execution's ``id`` is ``executionCosts[i]`` and its
  ``timestamp`` is null (the factory does not date executions); missing values are null (empty in
  CSV).  ``--since`` keeps LLM records from that moment on, and a session's executions when the
  session was updated since then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mity_cost.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    add_json,
    add_roots,
    error,
    print_json,
    print_table,
    roots_of,
)
from mity_cost.core.money import format_precise as money

if TYPE_CHECKING:
    from datetime import datetime

    from mity_cost.core.factory.loading import LoadedFeature, LoadedSession, LoadError
    from mity_cost.core.money import Range
    from mity_cost.core.settings import Settings

CATEGORIES = ("llm", "compute", "storage", "network", "misc")
EXPORT_COLUMNS: tuple[str, ...] = (
    "sessionId",
    "root",
    "kind",
    "id",
    "timestamp",
    "model",
    "executionType",
    "agent",
    "station",
    "feature",
    "inputTokens",
    "outputTokens",
    "tokens",
    "costMin",
    "costExpected",
    "costMax",
    "currency",
    "isLocal",
    "cpuMinutes",
    "memoryGbMinutes",
)
RETRY_DELAYS: tuple[float, ...] = (0.05, 0.1, 0.2)
"""Pauses before reading a half-written file again."""


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------


def _since(text: str) -> datetime:
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def register(sub: Any) -> None:
    """Add ``summary``, ``show``, ``features`` and ``export``."""
    summary = sub.add_parser(
        "summary",
        help="RuntimeCostSummary of each session (or one)",
        description="The factory's RuntimeCostSummary of every session under the roots (or one). A bad "
        "file is reported on stderr, the others still print, and the exit code is then 2.",
    )
    summary.add_argument("--session", metavar="ID", help="only this session")
    add_roots(summary)
    add_json(summary)
    summary.set_defaults(handler=run_summary)

    show = sub.add_parser(
        "show",
        help="the breakdown of one session",
        description="One session in full: totals with their ranges, the ledger's categories, LLM calls "
        "by model, agent, station and feature, executions by type, monthly infrastructure with its "
        "assumptions, and whether the ledger agrees with its records.",
    )
    show.add_argument("--session", required=True, metavar="ID", help="the session id")
    show.add_argument(
        "--detailed",
        action="store_true",
        help="add the current list price of each model's calls beside the factory's figure",
    )
    add_roots(show)
    add_json(show)
    show.set_defaults(handler=run_show)

    features = sub.add_parser(
        "features",
        help="feature cost deltas, per app",
        description="Every feature cost file under workspaces/<app>/.mity/cost/features, per app, with "
        "one-time and monthly ranges and the factory's summary line.",
    )
    features.add_argument("--app", metavar="NAME", help="only this app")
    add_roots(features)
    add_json(features)
    features.set_defaults(handler=run_features)

    export = sub.add_parser(
        "export",
        help="every record, flat, as JSON or CSV",
        description="Every LLM record and execution of every session, one flat row each, written "
        "atomically to FILE ('-' for stdout). Figures are the files' own, with their currency.",
    )
    export.add_argument("--format", required=True, choices=("json", "csv"), help="output format")
    export.add_argument("--output", required=True, metavar="FILE", help="where to write ('-': stdout)")
    export.add_argument(
        "--since", type=_since, metavar="DATE", help="only records from this date or time on (UTC if no zone)"
    )
    add_roots(export)
    export.set_defaults(handler=run_export)


# --------------------------------------------------------------------------------------------
# Loading (shared by the commands)
# --------------------------------------------------------------------------------------------


class _Problems:
    """Bad files and roots, reported on stderr as they are found."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        error(message)


def _settings() -> Settings:
    from mity_cost.core.settings import load_settings

    settings = load_settings()
    for problem in settings.problems:
        error(f"settings: {problem}")
    return settings


def _load_with_retry(path: Path) -> tuple[LoadedSession | LoadError, bytes | None]:
    """Load a session, reading again while it is cut short; also returns the bytes it was read from."""
    import time

    from mity_cost.core.factory.loading import LoadError, parse_session, read_bounded

    result: LoadedSession | LoadError = LoadError(path, "missing", "not read")
    for delay in (*RETRY_DELAYS, None):
        raw = read_bounded(path)
        if isinstance(raw, LoadError):
            result = raw
        else:
            parsed = parse_session(raw.data, path)
            if not isinstance(parsed, LoadError):
                from mity_cost.core.factory.loading import LoadedSession

                loaded = LoadedSession(path, parsed.doc, parsed.figures, raw.size, raw.mtime_ns)
                return loaded, raw.data
            result = parsed
        if result.kind != "incomplete" or delay is None:
            break
        time.sleep(delay)
    return result, None


def _check_root(root: Path, problems: _Problems) -> bool:
    if not root.is_dir():
        problems.add(f"{root}: not an existing folder")
        return False
    return True


def _sessions(
    roots: Sequence[Path], session_id: str | None, problems: _Problems
) -> Iterator[tuple[Path, LoadedSession, bytes]]:
    """Every good session under the roots (or the one asked for); bad files go to ``problems``."""
    import os

    from mity_cost.core.factory.layout import session_files, session_path
    from mity_cost.core.factory.loading import LoadError

    found = False
    for root in roots:
        if not _check_root(root, problems):
            continue
        files = session_files(root)
        if session_id is not None:
            try:
                wanted = session_path(root, session_id)
            except ValueError as exc:
                problems.add(str(exc))
                return
            files = [f for f in files if f.folder == session_id]
            if not files and os.path.lexists(wanted):
                found = True
                problems.add(
                    f"{wanted}: not a regular file inside the root (a folder, a device or a link out)"
                )
                continue
        for file in files:
            found = True
            result, data = _load_with_retry(file.path)
            if isinstance(result, LoadError) or data is None:
                problems.add(result.describe() if isinstance(result, LoadError) else f"{file.path}: not read")
                continue
            yield root, result, data
    if session_id is not None and not found:
        where = ", ".join(str(r) for r in roots)
        problems.add(f"no session {session_id!r} under {where}")


def _exit(problems: _Problems) -> int:
    return EXIT_USAGE if problems.count else EXIT_OK


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def _signed(amount: float, symbol: str) -> str:
    return ("-" if amount < 0 else "+") + money(abs(amount), symbol)


def _range_json(value: Range) -> dict[str, float]:
    return {"min": value.min, "expected": value.expected, "max": value.max}


def _range_cells(value: Range, symbol: str) -> list[str]:
    return [money(value.min, symbol), money(value.expected, symbol), money(value.max, symbol)]


def _heading(text: str) -> None:
    sys.stdout.write(f"\n{text}\n")


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------


def run_summary(args: argparse.Namespace) -> int:
    """Print the RuntimeCostSummary of each session."""
    from mity_cost.core.figures.summary import summarize

    settings = _settings()
    problems = _Problems()
    items: list[dict[str, Any]] = []
    rows: list[list[str]] = []
    notes: list[str] = []
    sym = settings.symbol
    for root, loaded, _ in _sessions(roots_of(args), args.session, problems):
        result = summarize(loaded.figures, settings)
        items.append({**result.to_json(), "sessionId": loaded.session_id, "root": str(root)})
        rows.append(
            [
                loaded.session_id,
                *_range_cells(result.total, sym),
                money(result.llm_cost, sym),
                money(result.compute_cost, sym),
                money(result.monthly_infra, sym) + "/mo",
                str(result.llm_calls),
                str(result.total_tokens),
                "OVER" if result.exceeds_threshold else "ok",
            ]
        )
        if not loaded.consistency.consistent:
            notes.append(f"{loaded.session_id}: inconsistent: {loaded.consistency.describe()}")
        note = settings.conversion_note(loaded.doc["currency"])
        if note and note not in notes:
            notes.append(note)
    if args.json:
        print_json(items)
        return _exit(problems)
    if not rows:
        sys.stdout.write("no sessions\n")
    else:
        headers = [
            "session",
            "min",
            "expected",
            "max",
            "LLM",
            "compute",
            "monthly",
            "calls",
            "tokens",
            "status",
        ]
        print_table(headers, rows, right=range(1, 9))
        sys.stdout.write(f"threshold {money(settings.threshold, sym)} on the expected total\n")
        if not settings.llm_enabled:
            sys.stdout.write("LLM costs are left out of the totals (MITY_COST_LLM_ENABLED)\n")
        for note in notes:
            sys.stdout.write(f"note: {note}\n")
    return _exit(problems)


# --------------------------------------------------------------------------------------------
# show
# --------------------------------------------------------------------------------------------


def show_data(
    root: Path, loaded: LoadedSession, settings: Settings, detailed: bool = False
) -> dict[str, Any]:
    """Everything ``show`` prints, as its JSON document (amounts in the display currency)."""
    from mity_cost.core.factory.documents import is_unknown_model, model_key
    from mity_cost.core.figures.summary import group_executions, group_records, summarize
    from mity_cost.core.money import Range

    doc = loaded.doc
    scale = settings.convert(1.0, doc["currency"])
    ledger = doc["sessionCost"]
    summary = summarize(loaded.figures, settings)
    unknown = {model_key(r["model"]): is_unknown_model(r["model"]) for r in doc["llmUsage"]}

    def groups(by: Any) -> list[dict[str, Any]]:
        out = []
        for g in group_records(doc["llmUsage"], by, scale):
            item: dict[str, Any] = {"key": g.key, "label": g.label}
            if by == "model":
                item["unknownModel"] = unknown.get(g.key, False)
            item.update(calls=g.calls, inputTokens=g.input_tokens, outputTokens=g.output_tokens, cost=g.cost)
            out.append(item)
        return out

    def breakdown(estimate: Any) -> dict[str, Any]:
        out = {}
        for name in CATEGORIES:
            item = estimate["breakdown"][name]
            out[name] = {**_range_json(Range.of(item, scale)), "notes": item.get("notes")}
        return out

    infra = doc["infraCost"]
    data: dict[str, Any] = {
        "sessionId": loaded.session_id,
        "root": str(root),
        "path": str(loaded.path),
        "currency": settings.currency,
        "symbol": settings.symbol,
        "sourceCurrency": doc["currency"],
        "conversionNote": settings.conversion_note(doc["currency"]),
        "llmIncluded": settings.llm_enabled,
        "summary": {**summary.to_json(), "sessionId": loaded.session_id, "root": str(root)},
        "total": _range_json(summary.total),
        "breakdown": breakdown(ledger),
        "byModel": groups("model"),
        "byAgent": groups("agent"),
        "byStation": groups("station"),
        "byFeature": groups("feature"),
        "executions": [
            {
                "type": g.kind,
                "runs": g.runs,
                "localRuns": g.local_runs,
                "cpuMinutes": g.cpu_minutes,
                "memoryGbMinutes": g.memory_gb_minutes,
                "cost": _range_json(g.cost),
            }
            for g in group_executions(loaded, scale)
        ],
        "monthlyInfra": {
            "total": _range_json(Range.of(infra["total"], settings.convert(1.0, infra["currency"]))),
            "breakdown": breakdown(infra),
            "assumptions": list(infra["assumptions"]),
            "confidence": infra["confidence"],
        },
        "featureCosts": [
            {
                "featureId": delta["featureId"],
                "featureName": delta["featureName"],
                "oneTime": _range_json(
                    Range.of(
                        delta["oneTimeCost"]["total"], settings.convert(1.0, delta["oneTimeCost"]["currency"])
                    )
                ),
                "monthly": _range_json(
                    Range.of(
                        delta["monthlyImpact"]["total"],
                        settings.convert(1.0, delta["monthlyImpact"]["currency"]),
                    )
                ),
            }
            for delta in doc["featureCosts"].values()
        ],
        "consistency": {
            "consistent": loaded.consistency.consistent,
            "ledgerLlm": loaded.consistency.ledger_llm * scale,
            "recordsLlm": loaded.consistency.records_llm * scale,
            "duplicateIds": list(loaded.consistency.duplicate_ids),
            "message": loaded.consistency.describe(),
        },
        "threshold": settings.threshold,
        "factoryThreshold": doc["confirmationThreshold"] * scale,
        "updatedAt": doc["updatedAt"].isoformat().replace("+00:00", "Z"),
    }
    if detailed:
        data["currentPrices"], data["priceNotes"] = _current_prices(loaded, settings, scale)
    return data


def _current_prices(
    loaded: LoadedSession, settings: Settings, scale: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each model's calls priced now (``PriceBook``), in aggregate, beside the factory's figure."""
    try:
        from mity_cost.core.pricing.prices import PriceBook

        book = PriceBook.load()
        groups = book.price_groups(loaded.doc["llmUsage"])
        notes = list(book.problems)
    except Exception as exc:  # noqa: BLE001 - prices are extra information: never lose the breakdown
        return [], [f"current prices are not available: {type(exc).__name__}: {exc}"]
    rows = []
    for group in groups:
        item = group.to_json()
        item["factoryCost"] = group.factory_cost * scale
        current = group.current_cost
        item["currentCost"] = None if current is None else settings.convert(current, "USD")
        item["difference"] = None if current is None else item["currentCost"] - item["factoryCost"]
        percent = None
        if item["difference"] is not None and item["factoryCost"] > 0:
            percent = item["difference"] / item["factoryCost"] * 100
        item["differencePercent"] = percent
        rows.append(item)
    if any(row["currentCost"] is None for row in rows):
        notes.append("unpriced: no current list price is known for that model (not zero)")
    return rows, notes


def _print_show(data: dict[str, Any]) -> None:
    sym = data["symbol"]
    out = sys.stdout.write
    total = data["total"]
    summary = data["summary"]
    out(f"Session {data['sessionId']}\n")
    out(f"  file     {data['path']}\n")
    out(f"  updated  {data['updatedAt']}\n")
    out(f"  {summary['summary']}\n")
    status = "OVER the threshold" if summary["exceedsThreshold"] else "within the threshold"
    low, mid, high = (money(total[k], sym) for k in ("min", "expected", "max"))
    limit = money(data["threshold"], sym)
    out(f"  total    {low} / {mid} / {high} (min / expected / max), {status} {limit}\n")
    factory_threshold = money(data["factoryThreshold"], sym)
    out(f"  the factory's own confirmationThreshold: {factory_threshold} (shown, not used)\n")
    if data["conversionNote"]:
        out(f"  amounts {data['conversionNote']}\n")
    if not data["llmIncluded"]:
        out("  LLM costs are left out of the totals (MITY_COST_LLM_ENABLED is false)\n")
    consistency = data["consistency"]
    if not consistency["consistent"]:
        out(f"  INCONSISTENT: {consistency['message']} (the ledger's figure is used)\n")

    _heading("Ledger (min / expected / max)")
    rows = []
    for name, item in data["breakdown"].items():
        label = f"{name} (left out)" if name == "llm" and not data["llmIncluded"] else name
        rows.append([label, *(money(item[k], sym) for k in ("min", "expected", "max")), item["notes"] or ""])
    rows.append(["total", *(money(total[k], sym) for k in ("min", "expected", "max")), ""])
    print_table(["category", "min", "expected", "max", "notes"], rows, right=(1, 2, 3))

    titles = (("byModel", "model"), ("byAgent", "agent"), ("byStation", "station"), ("byFeature", "feature"))
    for key, title in titles:
        groups = data[key]
        if not groups:
            continue
        _heading(f"LLM calls by {title}")
        rows = []
        for g in groups:
            label = g["label"] + (" (unknown to the factory)" if g.get("unknownModel") else "")
            rows.append([label, g["calls"], g["inputTokens"], g["outputTokens"], money(g["cost"], sym)])
        print_table([title, "calls", "input", "output", "cost"], rows, right=(1, 2, 3, 4))
    if not data["byModel"]:
        out("\nno LLM calls\n")

    if "currentPrices" in data:
        _heading("Current list prices (each model's calls priced together)")
        rows = []
        for p in data["currentPrices"]:
            current = "unpriced" if p["currentCost"] is None else money(p["currentCost"], sym)
            diff = ""
            if p["difference"] is not None:
                diff = _signed(p["difference"], sym)
                if p["differencePercent"] is not None:
                    diff += f" ({p['differencePercent']:+.0f}%)"
            rows.append(
                [
                    p["label"],
                    p["calls"],
                    money(p["factoryCost"], sym),
                    current,
                    diff,
                    p["source"],
                    p["asOf"] or "?",
                ]
            )
        headers = ["model", "calls", "factory", "list price now", "difference", "source", "as of"]
        print_table(headers, rows, right=(1, 2, 3, 4))
        for note in data["priceNotes"]:
            out(f"note: {note}\n")

    _heading("Executions by type (min / expected / max)")
    if data["executions"]:
        rows = [
            [e["type"], e["runs"], e["localRuns"], f"{e['cpuMinutes']:g}", f"{e['memoryGbMinutes']:g}",
             *(money(e["cost"][k], sym) for k in ("min", "expected", "max"))]
            for e in data["executions"]
        ]  # fmt: skip
        headers = ["type", "runs", "local", "CPU min", "memory GB-min", "min", "expected", "max"]
        print_table(headers, rows, right=range(1, 8))
    else:
        out("no executions\n")

    infra = data["monthlyInfra"]
    _heading("Monthly infrastructure (recurring, not part of the session total)")
    rows = [
        [name, *(money(item[k], sym) for k in ("min", "expected", "max")), item["notes"] or ""]
        for name, item in infra["breakdown"].items()
    ]
    rows.append(["total /mo", *(money(infra["total"][k], sym) for k in ("min", "expected", "max")), ""])
    print_table(["category", "min", "expected", "max", "notes"], rows, right=(1, 2, 3))
    out(f"confidence {infra['confidence']:g}\n")
    for assumption in infra["assumptions"]:
        out(f"  - {assumption}\n")

    if data["featureCosts"]:
        _heading("Feature costs recorded in the session")
        rows = [
            [f["featureId"], f["featureName"], *(money(f["oneTime"][k], sym) for k in ("min", "expected",
             "max")), money(f["monthly"]["expected"], sym) + "/mo"]
            for f in data["featureCosts"]
        ]  # fmt: skip
        print_table(["feature", "name", "min", "expected", "max", "monthly"], rows, right=(2, 3, 4, 5))


def run_show(args: argparse.Namespace) -> int:
    """Print one session's breakdown."""
    settings = _settings()
    problems = _Problems()
    found = list(_sessions(roots_of(args), args.session, problems))
    if len(found) > 1:
        error(f"session {args.session!r} is under several roots; showing the one in {found[0][0]}")
    if found:
        root, loaded, _ = found[0]
        data = show_data(root, loaded, settings, args.detailed)
        if args.json:
            print_json(data)
        else:
            _print_show(data)
    return _exit(problems)


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------


def _features(
    roots: Sequence[Path], app: str | None, problems: _Problems
) -> list[tuple[Path, LoadedFeature]]:
    from mity_cost.core.factory.layout import feature_files
    from mity_cost.core.factory.loading import LoadError, load_feature

    found = []
    for root in roots:
        if not _check_root(root, problems):
            continue
        for file in feature_files(root):
            if app is not None and file.app != app:
                continue
            result = load_feature(file.path, file.app)
            if isinstance(result, LoadError):
                problems.add(result.describe())
            else:
                found.append((root, result))
    return found


def run_features(args: argparse.Namespace) -> int:
    """Print feature cost deltas per app."""
    from mity_cost.core.figures.summary import AppFeatures, features_by_app

    settings = _settings()
    problems = _Problems()
    roots = roots_of(args)
    loaded = _features(roots, args.app, problems)
    apps: list[tuple[Path, AppFeatures]] = []
    for root in roots:
        apps.extend((root, group) for group in features_by_app([f for r, f in loaded if r == root], settings))
    if args.json:
        print_json(
            [
                {
                    "root": str(root),
                    "app": group.app,
                    "currency": settings.currency,
                    "oneTime": _range_json(group.one_time),
                    "monthly": _range_json(group.monthly),
                    "features": [f.to_json() for f in group.features],
                }
                for root, group in apps
            ]
        )
        return _exit(problems)
    sym = settings.symbol
    if not apps:
        sys.stdout.write("no features" + (f" for app {args.app!r}" if args.app else "") + "\n")
    for n, (root, group) in enumerate(apps):
        if n:
            sys.stdout.write("\n")
        where = f" ({root})" if len(roots) > 1 else ""
        sys.stdout.write(f"{group.app}{where}\n")
        rows = [
            [f.feature_id, *_range_cells(f.one_time, sym), *_range_cells(f.monthly, sym)]
            for f in group.features
        ]
        rows.append(["total", *_range_cells(group.one_time, sym), *_range_cells(group.monthly, sym)])
        headers = ["feature", "one-time min", "expected", "max", "monthly min", "expected", "max"]
        print_table(headers, rows, right=range(1, 7))
        for feature in group.features:
            sys.stdout.write(f"  {feature.summary}\n")
    notes = {settings.conversion_note(f.doc["oneTimeCost"]["currency"]) for _, f in loaded}
    for note in sorted(n for n in notes if n):
        sys.stdout.write(f"note: amounts {note}\n")
    return _exit(problems)


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------


def export_rows(
    root: Path, loaded: LoadedSession, data: bytes, since: datetime | None
) -> list[dict[str, Any]]:
    """The flat export rows of one session (its own figures; timestamps exactly as written)."""
    import json

    from mity_cost.core.factory.documents import execution_label, model_key

    doc = loaded.doc
    raw = json.loads(data)  # the same bytes the checked document came from
    currency = doc["currency"]
    base: dict[str, Any] = dict.fromkeys(EXPORT_COLUMNS)
    rows: list[dict[str, Any]] = []
    for record, raw_record in zip(doc["llmUsage"], raw["llmUsage"], strict=True):
        if since is not None and record["timestamp"] < since:
            continue
        cost = record["cost"]
        rows.append(
            {
                **base,
                "sessionId": loaded.session_id,
                "root": str(root),
                "kind": "llm",
                "id": record["id"],
                "timestamp": raw_record["timestamp"],
                "model": model_key(record["model"]),
                "agent": record.get("agent"),
                "station": record.get("station"),
                "feature": record.get("feature"),
                "inputTokens": record["inputTokens"],
                "outputTokens": record["outputTokens"],
                "tokens": record["inputTokens"] + record["outputTokens"],
                "costMin": cost,
                "costExpected": cost,
                "costMax": cost,
                "currency": currency,
            }
        )
    if since is None or doc["updatedAt"] >= since:
        for index, run in enumerate(doc["executionCosts"]):
            rows.append(
                {
                    **base,
                    "sessionId": loaded.session_id,
                    "root": str(root),
                    "kind": "execution",
                    "id": f"executionCosts[{index}]",
                    "executionType": execution_label(run["executionType"]),
                    "costMin": run["cost"]["min"],
                    "costExpected": run["cost"]["expected"],
                    "costMax": run["cost"]["max"],
                    "currency": currency,
                    "isLocal": run["isLocal"],
                    "cpuMinutes": run["cpuMinutes"],
                    "memoryGbMinutes": run["memoryGbMinutes"],
                }
            )
    return rows


def render_export(rows: list[dict[str, Any]], fmt: str) -> bytes:
    """The export file's bytes: a JSON list, or CSV with a header row."""
    if fmt == "json":
        import json

        return (json.dumps(rows, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue().encode("utf-8")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def run_export(args: argparse.Namespace) -> int:
    """Write every record, flat."""
    from mity_cost.core.atomic import write_bytes_atomic

    problems = _Problems()
    rows: list[dict[str, Any]] = []
    for root, loaded, data in _sessions(roots_of(args), None, problems):
        rows.extend(export_rows(root, loaded, data, args.since))
    payload = render_export(rows, args.format)
    if args.output == "-":
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
    else:
        target = Path(args.output)
        try:
            write_bytes_atomic(target, payload)
        except OSError as exc:
            error(f"{target}: cannot write it: {exc.strerror or exc}")
            return EXIT_USAGE
        left_out = f" ({problems.count} bad file(s) left out)" if problems.count else ""
        sys.stdout.write(f"wrote {len(rows)} record(s) to {target}{left_out}\n")
    return _exit(problems)
