"""``budget``, ``alerts``, ``report``, ``compare``, ``history`` and ``forecast``: spending over time.

Every command that reads the history first takes in the sessions of the roots (``--root``, else the
roots in the settings, else the current folder) unless ``--no-ingest`` is given, so its figures
include what the factory wrote since the tray last looked.  Amounts are in the display currency
(``MITY_COST_CURRENCY``, converted at the settings' rate) except a budget's, which are in the
budget's own currency, and an export's, which keep each record's currency.  LLM costs are left out
of the figures when ``MITY_COST_LLM_ENABLED`` is false (an export keeps every record).

JSON schemas (stable; dates are ``YYYY-MM-DD``, times ISO 8601; ranges are ``{"min", "expected",
"max"}``; a *totals* object is a range with counts: ``{"min", "expected", "max", "calls",
"inputTokens", "outputTokens"}``, where ``calls`` counts records, LLM calls and executions alike):

- ``budget add --json``: one object, the budget as stored: ``id`` (``"<scope>:<target>:<period>"``,
  ``*`` for no target), ``scope`` (``"overall"``, ``"app"``, ``"session"``, ``"agent"``, ``"model"``
  or ``"provider"``), ``target`` (the app, session id, agent, model or provider; null for an overall
  budget and for a session budget on every session), ``period`` (``"session"``, ``"day"``,
  ``"week"`` or ``"month"``), ``amount``, ``currency`` (``"USD"`` or ``"EUR"``), ``enforcement``
  (``"warn"``, ``"require_confirmation"`` or ``"hard_stop"``), ``warningLevels`` (percentages,
  ascending), ``replaced`` (true when it replaced a budget with the same id).
- ``budget list --json``: a list (empty without budgets), one object per budget, and per session
  for a per-session budget, amounts in the budget's currency: ``budget``, ``key`` (unique: the
  budget id, plus ``@<session id>`` for a per-session budget), ``subject`` (the session id for a
  per-session budget, else the target; null when none), ``sessionId`` (the session measured; null for
  a calendar budget), ``periodKey`` (``"2026-12"``, ``"2026-W49"``, ``"2026-12-02"``, or
  ``"session:<id>"``), ``start``, ``end`` (the period's first and last day; null per session),
  ``spent`` (totals), ``fraction`` (expected spending over the amount; null when infinite: spending
  against an amount of 0), ``remaining`` (the amount minus the expected spending; negative once
  over), ``level`` (``"ok"`` under 50 %, ``"notice"``, ``"warning"`` from 75 %, ``"critical"`` from
  90 % up to 100 %, ``"over"``), ``over``, ``reached`` (the warning levels reached, in percent),
  ``unpricedModels`` (models counted that have no price: the figure cannot be trusted),
  ``bindingId`` (the ``key`` of the budget, this one or an enclosing one, with the least left),
  ``notes`` (list of text).

  - ``budget``: ``id``, ``scope``, ``target``, ``period``, ``amount``, ``currency``,
    ``enforcement``, ``warningLevels`` (as printed by ``budget add --json``).
- ``alerts --json``: a list, newest first (at most ``--limit``): ``id``, ``kind``
  (``"budget_warning"``, ``"budget_exceeded"``, ``"forecast_exceeded"`` or
  ``"task_estimate_high"``), ``severity`` (``"info"``, ``"warning"`` or ``"critical"``), ``subject``
  (the budget's key, as in the budget list), ``level`` (an integer percent of the budget:
  the warning level reached, else 100), ``periodKey``, ``message`` (one sentence), ``data``,
  ``createdAt``, ``resolvedAt`` (null while current), ``resolution`` (null while current, else
  ``"dismissed"``, ``"period ended"``, ``"below level"``, ``"budget removed"`` or
  ``"superseded"``).  With ``--resolve ID``: ``{"resolved": ID}`` (exit 1 and nothing on stdout
  when there is no such current alert).

  - ``data``: the budget when the alert was raised, in its currency: ``budgetId``, ``sessionId``
    (or null), ``spent``, ``spentMin``, ``spentMax``, ``amount``, ``currency``, ``enforcement``,
    ``unpricedModels``.  Only for ``"forecast_exceeded"``: ``projected`` (at the period's end);
    only for ``"task_estimate_high"``: ``estimate``, ``operation`` (or null), ``percent`` (where
    the estimate would take the budget).
- ``report --json``: one object: ``period`` (``"day"``, ``"week"`` or ``"month"``), ``by`` (the
  dimension grouped by: ``"model"``, ``"provider"``, ``"agent"``, ``"station"``, ``"feature"`` or
  ``"app"``), ``since``, ``until`` (the days covered), ``currency`` (display currency code),
  ``rows``, ``periodTotals`` (``{period key: totals}``), ``total`` (totals over every row),
  ``notes`` (list of text: conversions, LLM costs left out).

  - ``rows[]``: one per period and group, newest period first, most spent first: ``period`` (its
    key: ``"2026-12"``, ``"2026-W49"`` or ``"2026-12-02"``), ``start``, ``end``, ``key`` (the group;
    ``""`` for records without one, e.g. executions by model), ``label`` (how to show the group), and
    the totals' ``min``, ``expected``, ``max``, ``calls``, ``inputTokens``, ``outputTokens``.
- ``compare --json``: one object: ``sessionA``, ``sessionB`` (full session ids), ``by``,
  ``currency`` (display currency code), ``totalA``, ``totalB`` (totals), ``difference`` (B minus A,
  expected), ``rows``, ``ledgerA``, ``ledgerB`` (totals of the session's own ledger as last taken in,
  without tokens; null when the session is not in the history), ``notes`` (list of text).

  - ``rows[]``: one per group, most spent first: ``key``, ``label``, ``a``, ``b`` (totals),
    ``difference`` (B minus A, expected).
- ``history ingest --json``: one object: ``added`` (records new to the history), ``records`` (the
  history's records now), ``roots`` (the roots read), ``problems`` (files skipped, also on stderr).
- ``history retention --json``: one object: ``retentionDays`` (days of records kept; null: every
  record), ``deleted`` (records deleted now).
- ``history info --json``: one object: ``path`` (the database file), ``schemaVersion``, ``records``,
  ``sessions``, ``firstDay`` (of the oldest record; null when empty), ``retentionDays``.
- ``history export --format json``: writes to ``--output`` a list of flat records, in the record's
  own currency, with the CSV's columns: ``uid``, ``kind`` (``"llm"`` or ``"execution"``),
  ``sessionId``, ``root``, ``app``, ``provider``, ``model`` (the factory's variant, or
  ``"unknown:<name>"``), ``agent``, ``station``, ``feature``, ``executionType``, ``inputTokens``,
  ``outputTokens``, ``costMin``, ``costExpected``, ``costMax``, ``currency``, ``timestamp`` (UTC),
  ``day`` (the day it counts on), ``datedBy`` (``"record"``: its own timestamp, ``"first-seen"``:
  undated, when it was first taken in, ``"clamped"``: dated in the future, taken as first seen).
  Missing values are null (empty in CSV).
- ``forecast --json``: one object: ``currency`` (display currency code), ``month``, ``session``,
  ``daily``.

  - ``month``: this month's spending and where it is projected to end: ``start``, ``end``,
    ``today``, ``spent`` (month to date), ``projected`` (at the month's end), ``low``, ``high`` (its
    90 % range), ``confidence`` (0 to 1), ``confidenceLabel`` (``"low"``, ``"medium"`` from 0.4,
    ``"high"`` from 0.7), ``basisDays`` (complete days of history used), ``dailyMean``,
    ``slopePerDay``, ``method`` (``"linear"``, ``"mean"`` or ``"none"``), ``currency``,
    ``assumptions`` (list of text).
  - ``session``: ``sessionId`` (``--session``, else the session written last; null when none) and
    ``burn`` (null when the session is not found).
  - ``session.burn``: ``perHour`` (spending per hour over the last hour; null when too few records
    tell, 0 when the session is idle), ``records`` (records in that window), ``windowSeconds``,
    ``total`` (the session's expected total), ``threshold`` (``MITY_COST_THRESHOLD``, or null),
    ``secondsToThreshold`` (at this pace; 0 when already over; null without a rate or a threshold,
    or at a rate of 0), ``projectedAt`` (when it passes the threshold at this pace; null likewise),
    ``note`` (how the rate was measured).
  - ``daily[]``: the last ``--days`` days, oldest first, days without records as zeros: ``day`` and
    the totals' ``min``, ``expected``, ``max``, ``calls``, ``inputTokens``, ``outputTokens``.

Budgets also stop spending: ``gate`` refuses an operation that would exceed a ``hard_stop``
budget and asks the tray app about one that would exceed a ``require_confirmation`` budget.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mity_cost.cli.common import (
    EXIT_DENIED,
    EXIT_OK,
    EXIT_USAGE,
    add_json,
    add_roots,
    error,
    print_json,
    print_table,
)
from mity_cost.core.money import money_in

if TYPE_CHECKING:
    from mity_cost.core.settings import Settings
    from mity_cost.core.spending.history import History

_SCOPES = ("overall", "app", "session", "agent", "model", "provider")
_PERIODS = ("session", "day", "week", "month")
_ENFORCEMENTS = ("warn", "require_confirmation", "hard_stop")
_BY = ("model", "provider", "agent", "station", "feature", "app")


# --------------------------------------------------------------------------- the gate hook


def budget_gate(
    session_id: str,
    root: Path | Sequence[Path] | None,
    extra: float = 0.0,
    *,
    currency: str | None = None,
    operation: str | None = None,
) -> tuple[str, str]:
    """What budgets say about spending ``extra`` more in a session: ``("pass" | "ask" | "refuse", reason)``.

    ``root`` is the session's factory root (or the roots to look in); ``extra`` is in ``currency``
    (default: the display currency of the settings).  ``refuse``: a ``hard_stop`` budget would be
    exceeded (exit 1 without asking).  ``ask``: a ``require_confirmation`` budget would be exceeded,
    or an enforcing budget counts unpriced records, or the budgets cannot be read (ask the tray app;
    after an approval call :func:`budget_approved`).  ``pass``: nothing enforcing is in the way
    (``reason`` then carries any ``warn`` budget's warning).  Never raises; costs nothing without
    budgets.
    """
    from mity_cost.core.spending.budgets import check_session

    roots = [] if root is None else [root] if isinstance(root, Path) else list(root)
    try:
        verdict = check_session(session_id, roots, extra, currency=currency, operation=operation)
    except Exception as exc:  # noqa: BLE001 - the hook must answer, and fail safe
        return "ask", f"budgets could not be checked ({type(exc).__name__}: {exc})"
    return verdict.action, verdict.reason


def budget_approved(
    session_id: str, root: Path | Sequence[Path] | None, extra: float = 0.0, *, currency: str | None = None
) -> int:
    """Record that the user approved what :func:`budget_gate` asked about (so the gate passes until
    a further 10 % of each budget is spent); returns the number of budgets approved.  Never raises."""
    from mity_cost.core.spending.budgets import approve_session

    roots = [] if root is None else [root] if isinstance(root, Path) else list(root)
    try:
        return approve_session(session_id, roots, extra, currency=currency)
    except Exception:  # noqa: BLE001 - an approval that cannot be stored just asks again next time
        return 0


# --------------------------------------------------------------------------- shared helpers


def _add_common(parser: argparse.ArgumentParser, json_option: bool = True) -> None:
    add_roots(parser)
    if json_option:
        add_json(parser)
    parser.add_argument(
        "--no-ingest", action="store_true", help="do not take in the roots' sessions first (history only)"
    )


def _day(text: str, last: bool = False) -> date:
    """``YYYY-MM-DD``, or ``YYYY-MM`` (its first day, or last with ``last``), or ``today``."""
    if text == "today":
        return date.today()
    if len(text) == 7:
        start = date.fromisoformat(text + "-01")
        return (start + timedelta(days=32)).replace(day=1) - timedelta(days=1) if last else start
    return date.fromisoformat(text)


def _days(args: argparse.Namespace) -> tuple[date | None, date | None]:
    since = _day(args.since) if getattr(args, "since", None) else None
    until = _day(args.until, last=True) if getattr(args, "until", None) else None
    if since and until and since > until:
        raise ValueError(f"--since {since} is after --until {until}")
    return since, until


def _roots(args: argparse.Namespace, settings: Settings) -> list[Path]:
    if getattr(args, "roots", None):
        return list(args.roots)
    return [Path(r) for r in settings.roots] or [Path.cwd()]


def _open(args: argparse.Namespace, settings: Settings) -> History:
    """The history, with the roots taken in unless ``--no-ingest``; problems go to stderr."""
    from mity_cost.core.spending.history import History

    history = History()
    history.apply_retention()
    if not getattr(args, "no_ingest", False):
        for root in _roots(args, settings):
            _, problems = history.ingest_root(root)
            for problem in problems:
                error(f"skipped: {problem}")
    return history


def _range(totals: Any, currency: str) -> str:
    if abs(totals.max - totals.min) < 5e-3:
        return money_in(totals.expected, currency)
    low, mid, high = (money_in(v, currency) for v in (totals.min, totals.expected, totals.max))
    return f"{mid} ({low}-{high})"


def _guarded(handler: Any) -> Any:
    """Turn expected failures (bad dates, an unusable history) into a message and exit 2."""

    def run(args: argparse.Namespace) -> int:
        from mity_cost.core.spending.budgets import BudgetError
        from mity_cost.core.spending.history import HistoryError

        try:
            return int(handler(args))
        except (ValueError, HistoryError, BudgetError, OSError) as exc:
            error(str(exc))
            return EXIT_USAGE

    return run


def _settings() -> Settings:
    from mity_cost.core.settings import load_settings

    settings = load_settings()
    for problem in settings.problems:
        error(f"settings: {problem}")
    return settings


# --------------------------------------------------------------------------- registration


def register(sub: Any) -> None:
    """Add ``budget``, ``alerts``, ``report``, ``compare``, ``history`` and ``forecast``."""
    budget = sub.add_parser("budget", help="add, list or remove spending budgets")
    budget_sub = budget.add_subparsers(dest="budget_command", metavar="ACTION", required=True)

    add = budget_sub.add_parser(
        "add",
        help="add a budget (replaces one with the same scope, target and period)",
        description="A budget on everything (overall) or one app, session, agent, model or provider, "
        "per session, day, week or month.  Enforcement: warn (alerts only), require_confirmation (gate "
        "asks, the tray shows its dialog) or hard_stop (gate and check-threshold refuse).",
    )
    add.add_argument("--scope", choices=_SCOPES, default="overall")
    add.add_argument(
        "--target", help="the app, session id, agent, model (e.g. gpt5mini, unknown:gpt-4o) or provider"
    )
    add.add_argument("--period", choices=_PERIODS, default="month")
    add.add_argument("--amount", type=float, required=True)
    add.add_argument(
        "--currency", type=str.upper, choices=("USD", "EUR"), help="default: the display currency"
    )
    add.add_argument("--enforcement", choices=_ENFORCEMENTS, default="warn")
    add.add_argument(
        "--levels", default="50,75,90,100", help="warning levels in percent (default 50,75,90,100)"
    )
    add_json(add)
    add.set_defaults(handler=_guarded(_budget_add))

    listing = budget_sub.add_parser("list", help="every budget and where it stands")
    _add_common(listing)
    listing.add_argument("--session", help="the session for per-session budgets (default: the latest)")
    listing.set_defaults(handler=_guarded(_budget_list))

    remove = budget_sub.add_parser("remove", help="remove a budget by id (as `budget list` shows it)")
    remove.add_argument("budget_id", metavar="ID")
    remove.set_defaults(handler=_guarded(_budget_remove))

    alerts = sub.add_parser("alerts", help="budget alerts (warnings, exceeded, forecasts, high estimates)")
    _add_common(alerts)
    alerts.add_argument("--unresolved", action="store_true", help="only the alerts still current")
    alerts.add_argument("--resolve", type=int, metavar="ID", help="mark one alert resolved")
    alerts.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 for all)")
    alerts.set_defaults(handler=_guarded(_alerts))

    report = sub.add_parser("report", help="spending per day, week or month, by model, agent, app...")
    report.add_argument("period", choices=("day", "week", "month"))
    report.add_argument("--by", choices=_BY, default="model")
    report.add_argument(
        "--since", help="first day, YYYY-MM-DD or YYYY-MM (default: 7 days / 8 weeks / 12 months)"
    )
    report.add_argument("--until", help="last day, YYYY-MM-DD or YYYY-MM (default: today)")
    _add_common(report)
    report.set_defaults(handler=_guarded(_report))

    compare = sub.add_parser("compare", help="two sessions side by side")
    compare.add_argument(
        "--sessions", required=True, metavar="A,B", help="two session ids (or unique prefixes)"
    )
    compare.add_argument("--by", choices=_BY, default="model")
    _add_common(compare)
    compare.set_defaults(handler=_guarded(_compare))

    history = sub.add_parser("history", help="the spending history: take in, export, retention, info")
    history_sub = history.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    ingest = history_sub.add_parser("ingest", help="take in the roots' sessions now")
    add_roots(ingest)
    add_json(ingest)
    ingest.set_defaults(handler=_guarded(_history_ingest))
    export = history_sub.add_parser("export", help="every record in the history, as CSV or JSON")
    export.add_argument("--format", choices=("csv", "json"), required=True)
    export.add_argument("--output", type=Path, required=True, metavar="FILE")
    export.add_argument("--since", help="first day, YYYY-MM-DD or YYYY-MM")
    export.add_argument("--until", help="last day, YYYY-MM-DD or YYYY-MM")
    export.add_argument("--session", help="only this session")
    _add_common(export, json_option=False)
    export.set_defaults(handler=_guarded(_history_export))
    retention = history_sub.add_parser("retention", help="show or set how long records are kept")
    group = retention.add_mutually_exclusive_group()
    group.add_argument("--days", type=int, help="keep records of the last DAYS days (deletes older ones now)")
    group.add_argument("--keep-all", action="store_true", help="keep every record (the default)")
    add_json(retention)
    retention.set_defaults(handler=_guarded(_history_retention))
    info = history_sub.add_parser("info", help="where the history is and what it holds")
    add_json(info)
    info.set_defaults(handler=_guarded(_history_info))

    forecast = sub.add_parser("forecast", help="burn rate of the active session and the month-end forecast")
    forecast.add_argument("--session", help="the session for the burn rate (default: the latest)")
    forecast.add_argument("--days", type=int, default=30, help="days in the daily series (default 30)")
    _add_common(forecast)
    forecast.set_defaults(handler=_guarded(_forecast))


# --------------------------------------------------------------------------- budget


def _budget_add(args: argparse.Namespace) -> int:
    from mity_cost.core.spending.budgets import Budget, add_budget

    settings = _settings()
    from mity_cost.core.gate.thresholds import parse_levels

    levels = parse_levels(args.levels) if args.levels else settings.warning_levels
    if isinstance(levels, str):
        raise ValueError(f"--levels: {levels}")
    target = args.target or None
    if args.scope == "model" and target is not None:
        target = _model_target(target)
    budget = Budget(
        scope=args.scope,
        target=target,
        period=args.period,
        amount=args.amount,
        currency=args.currency or settings.currency,
        enforcement=args.enforcement,
        warning_levels=levels,
    )
    replaced = add_budget(budget)
    if args.json:
        print_json({**budget.to_json(), "replaced": replaced})
    else:
        word = "replaced" if replaced else "added"
        sys.stdout.write(
            f"{word} budget {budget.id}: {money_in(budget.amount, budget.currency)} for {budget.describe()}, "
            f"{budget.enforcement.replace('_', ' ')}\n"
        )
    return EXIT_OK


def _model_target(name: str) -> str:
    """A model budget's target as the history keys it: a factory variant as given, ``tag:name`` as
    given, anything else the way the factory would file it (``claude-opus-4.5`` -> ``claudeopus45``,
    ``gpt-4o`` -> ``unknown:gpt-4o``)."""
    from mity_cost.core.factory.rules import FACTORY_PRICES, detect_model
    from mity_cost.core.spending.history import model_text

    if (name in FACTORY_PRICES and name != "unknown") or ":" in name:
        return name

    return model_text(detect_model(name)) or name


def _latest_session(roots: Sequence[Path]) -> tuple[str, Path] | None:
    """The session whose ``cost.json`` changed last under the roots."""
    from mity_cost.core.factory.layout import session_files

    best: tuple[float, str, Path] | None = None
    for root in roots:
        for found in session_files(root):
            try:
                mtime = found.path.stat().st_mtime
            except OSError:
                continue
            if best is None or mtime > best[0]:
                best = (mtime, found.folder, root)
    return (best[1], best[2]) if best else None


def _live(
    session_id: str | None, roots: Sequence[Path], settings: Settings
) -> tuple[str | None, dict[str, Any]]:
    """(session id, {id: LiveSession}) for the chosen or latest session."""
    from mity_cost.core.spending.budgets import find_session_doc, live_session
    from mity_cost.core.spending.history import AppResolver, read_runtime

    if session_id is None:
        latest = _latest_session(roots)
        if latest is None:
            return None, {}
        session_id = latest[0]
    root, doc, _, _ = find_session_doc(session_id, roots)
    if doc is None or root is None:
        return session_id, {}
    apps = AppResolver.for_root(root, read_runtime(root.joinpath(".mity", "chat", session_id)))
    current = live_session(doc, llm_enabled=settings.llm_enabled, app=apps.app_for(None))
    return session_id, ({session_id: current} if current else {})


def _budget_list(args: argparse.Namespace) -> int:
    from mity_cost.core.spending import alerts, budgets, forecast

    settings = _settings()
    found = budgets.load_budgets()
    for problem in found.problems:
        error(problem)
    if not found.budgets:
        if args.json:
            print_json([])
        else:
            sys.stdout.write("no budgets (add one with: mity-cost budget add --amount N ...)\n")
        return EXIT_OK
    with _open(args, settings) as history:
        session_id, live = _live(args.session, _roots(args, settings), settings)
        statuses = budgets.evaluate(
            found.budgets, history, None, live, session_id=session_id, settings=settings
        )
        alerts.check(history, statuses, forecasts=forecast.budget_forecasts(history, statuses, settings))
        if args.json:
            print_json([s.to_json() for s in statuses])
            return EXIT_OK
        rows = []
        for status in statuses:
            cur = status.budget.currency
            fraction = f"{status.fraction * 100:.0f} %" if status.fraction < 1e6 else "n/a"
            notes = []
            if status.binding_id != status.key:
                notes.append(f"tighter: {status.binding_id}")
            if status.unpriced:
                notes.append("unpriced: " + ", ".join(status.unpriced_models))
            notes.extend(status.notes)
            subject = status.session_id[:8] if status.session_id else ""
            rows.append(
                (
                    status.budget.id,
                    subject,
                    status.period_key.replace("session:", "")[:10] if status.period_key else "",
                    status.budget.enforcement,
                    _range(status.spent, cur),
                    money_in(status.amount, cur),
                    fraction,
                    money_in(status.remaining, cur),
                    status.level.label,
                    "; ".join(notes),
                )
            )
        print_table(
            ("ID", "SESSION", "PERIOD", "ENFORCEMENT", "SPENT", "BUDGET", "USED", "LEFT", "LEVEL", "NOTES"),
            rows,
            right=(4, 5, 6, 7),
        )
    return EXIT_OK


def _budget_remove(args: argparse.Namespace) -> int:
    from mity_cost.core.spending.budgets import load_budgets, remove_budget

    if remove_budget(args.budget_id):
        sys.stdout.write(f"removed budget {args.budget_id}\n")
        return EXIT_OK
    known = ", ".join(b.id for b in load_budgets().budgets) or "none"
    error(f"no budget {args.budget_id!r} (budgets: {known})")
    return EXIT_DENIED


# --------------------------------------------------------------------------- alerts


def _alerts(args: argparse.Namespace) -> int:
    from mity_cost.core.spending import alerts, budgets, forecast

    settings = _settings()
    with _open(args, settings) as history:
        if args.resolve is not None:
            if not alerts.resolve(history, args.resolve):
                error(f"no unresolved alert {args.resolve}")
                return EXIT_DENIED
            if args.json:
                print_json({"resolved": args.resolve})
            else:
                sys.stdout.write(f"resolved alert {args.resolve}\n")
            return EXIT_OK
        found = budgets.load_budgets()
        if found.budgets:
            session_id, live = _live(None, _roots(args, settings), settings)
            statuses = budgets.evaluate(
                found.budgets, history, None, live, session_id=session_id, settings=settings
            )
            alerts.check(history, statuses, forecasts=forecast.budget_forecasts(history, statuses, settings))
        listed = alerts.list_alerts(history, unresolved=args.unresolved, limit=args.limit or None)
        if args.json:
            print_json([a.to_json() for a in listed])
            return EXIT_OK
        if not listed:
            sys.stdout.write("no alerts\n")
            return EXIT_OK
        rows = [
            (
                a.id,
                a.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                a.severity.value,
                a.kind,
                a.message,
                a.resolution or ("" if a.resolved else "open"),
            )
            for a in listed
        ]
        print_table(("ID", "WHEN", "SEVERITY", "KIND", "MESSAGE", "STATE"), rows, right=(0,))
    return EXIT_OK


# --------------------------------------------------------------------------- report, compare


def _report(args: argparse.Namespace) -> int:
    from mity_cost.core.spending.reports import report

    settings = _settings()
    since, until = _days(args)
    with _open(args, settings) as history:
        result = report(history, args.period, args.by, since, until, settings=settings)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    cur = result.currency
    sys.stdout.write(
        f"Spending per {result.period} by {result.by}, {result.since} to {result.until} ({cur})\n"
    )
    rows = []
    for row in result.rows:
        rows.append((row.period, row.label, row.cost.calls, f"{row.cost.tokens:,}", _range(row.cost, cur)))
    for period, totals in result.period_totals.items():
        rows.append((period, "TOTAL", totals.calls, f"{totals.tokens:,}", _range(totals, cur)))
    rows.sort(key=lambda r: (str(r[0]), r[1] == "TOTAL"), reverse=False)
    if rows:
        print_table(("PERIOD", result.by.upper(), "CALLS", "TOKENS", "COST"), rows, right=(2, 3, 4))
    else:
        sys.stdout.write("no records in this range\n")
    sys.stdout.write(f"total: {_range(result.total, cur)} over {result.total.calls} records\n")
    for note in result.notes:
        sys.stdout.write(f"note: {note}\n")
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from mity_cost.core.spending.reports import compare, resolve_session

    settings = _settings()
    names = [s.strip() for s in args.sessions.split(",") if s.strip()]
    if len(names) != 2:
        error("--sessions takes two session ids separated by a comma")
        return EXIT_USAGE
    with _open(args, settings) as history:
        ids = []
        for name in names:
            sid = resolve_session(history, name)
            if sid is None:
                error(f"no session {name!r} in the history (or the prefix is ambiguous)")
                return EXIT_USAGE
            ids.append(sid)
        result = compare(history, ids[0], ids[1], by=args.by, settings=settings)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    cur = result.currency
    rows = [
        (
            row.label,
            _range(row.a, cur),
            row.a.calls,
            _range(row.b, cur),
            row.b.calls,
            _signed(row.difference, cur),
        )
        for row in result.rows
    ]
    rows.append(
        (
            "TOTAL",
            _range(result.total_a, cur),
            result.total_a.calls,
            _range(result.total_b, cur),
            result.total_b.calls,
            _signed(result.difference, cur),
        )
    )
    print_table(
        (args.by.upper(), f"A {ids[0][:8]}", "CALLS", f"B {ids[1][:8]}", "CALLS", "B - A"),
        rows,
        right=(1, 2, 3, 4, 5),
    )
    for label, ledger in (("A", result.ledger_a), ("B", result.ledger_b)):
        if ledger is not None:
            sys.stdout.write(f"ledger {label}: {_range(ledger, cur)}\n")
    for note in result.notes:
        sys.stdout.write(f"note: {note}\n")
    return EXIT_OK


def _signed(amount: float, currency: str) -> str:
    text = money_in(abs(amount), currency)
    return f"+{text}" if amount > 0 else f"-{text}" if amount < 0 else text


# --------------------------------------------------------------------------- history


def _history_ingest(args: argparse.Namespace) -> int:
    from mity_cost.core.spending.history import History

    settings = _settings()
    roots = _roots(args, settings)
    added = 0
    all_problems: list[str] = []
    with History() as history:
        history.apply_retention()
        for root in roots:
            count, problems = history.ingest_root(root)
            added += count
            all_problems.extend(problems)
        total = history.record_count()
    for problem in all_problems:
        error(f"skipped: {problem}")
    if args.json:
        print_json(
            {"added": added, "records": total, "roots": [str(r) for r in roots], "problems": all_problems}
        )
    else:
        sys.stdout.write(f"took in {added} new record(s); the history holds {total}\n")
    return EXIT_OK


def _history_export(args: argparse.Namespace) -> int:
    from mity_cost.core.spending.reports import export_history

    settings = _settings()
    since, until = _days(args)
    with _open(args, settings) as history:
        count = export_history(history, args.format, args.output, since, until, session_id=args.session)
    sys.stdout.write(f"wrote {count} record(s) to {args.output}\n")
    return EXIT_OK


def _history_retention(args: argparse.Namespace) -> int:
    from mity_cost.core.spending.history import History

    with History() as history:
        deleted = 0
        if args.keep_all:
            history.set_retention(None)
        elif args.days is not None:
            if args.days <= 0:
                raise ValueError("--days must be at least 1")
            deleted = history.set_retention(args.days)
        days = history.retention_days
    if args.json:
        print_json({"retentionDays": days, "deleted": deleted})
    else:
        sys.stdout.write(f"keeping {'every record' if days is None else f'the last {days} day(s)'}")
        sys.stdout.write(f"; deleted {deleted} record(s)\n" if deleted else "\n")
    return EXIT_OK


def _history_info(args: argparse.Namespace) -> int:
    from mity_cost.core.spending.history import History

    with History() as history:
        first = history.first_day()
        info = {
            "path": str(history.path),
            "schemaVersion": history.schema_version,
            "records": history.record_count(),
            "sessions": len(history.sessions()),
            "firstDay": first.isoformat() if first else None,
            "retentionDays": history.retention_days,
        }
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            sys.stdout.write(f"{key}: {value}\n")
    return EXIT_OK


# --------------------------------------------------------------------------- forecast


def _forecast(args: argparse.Namespace) -> int:
    from mity_cost.core.spending import forecast
    from mity_cost.core.spending.budgets import find_session_doc

    settings = _settings()
    cur = settings.currency
    now = datetime.now().astimezone()
    roots = _roots(args, settings)
    with _open(args, settings) as history:
        month = forecast.month_forecast(history, settings, now)
        series = forecast.daily_series(
            history,
            args.days,
            now,
            currency=cur,
            eur_per_usd=settings.eur_per_usd,
            kinds=("llm", "execution") if settings.llm_enabled else ("execution",),
        )
    session_id = args.session or (latest[0] if (latest := _latest_session(roots)) else None)
    burn = None
    if session_id is not None:
        _, doc, problem, _ = find_session_doc(session_id, roots)
        if doc is not None:
            burn = forecast.session_burn(doc, now, settings)
        elif problem:
            error(problem)
    if args.json:
        print_json(
            {
                "currency": cur,
                "month": month.to_json(),
                "session": {"sessionId": session_id, "burn": burn.to_json() if burn else None},
                "daily": [p.to_json() for p in series],
            }
        )
        return EXIT_OK
    sys.stdout.write(
        f"month to date ({month.start} to {month.today}): {money_in(month.spent, cur)}\n"
        f"projected month end ({month.end}): {money_in(month.projected, cur)} "
        f"(90 % range {money_in(month.low, cur)}-{money_in(month.high, cur)}, "
        f"confidence {month.confidence_label} {month.confidence:.2f}, {month.method}, "
        f"{month.basis_days} day(s) of history)\n"
    )
    for assumption in month.assumptions:
        sys.stdout.write(f"  assumes: {assumption}\n")
    if burn is not None:
        rate = "unknown" if burn.per_hour is None else f"{money_in(burn.per_hour, cur)}/h"
        sys.stdout.write(f"session {session_id}: burn {rate} ({burn.note})")
        if burn.time_to_threshold is not None and burn.threshold is not None:
            if burn.time_to_threshold.total_seconds() == 0:
                sys.stdout.write(f"; over the threshold {money_in(burn.threshold, cur)}")
            else:
                minutes = burn.time_to_threshold.total_seconds() / 60
                sys.stdout.write(f"; threshold {money_in(burn.threshold, cur)} in about {_duration(minutes)}")
        sys.stdout.write("\n")
    peak = max((p.cost.expected for p in series), default=0.0)
    sys.stdout.write(f"last {len(series)} days:\n")
    for point in series:
        bar = "#" * (round(point.cost.expected / peak * 40) if peak > 0 else 0)
        sys.stdout.write(f"  {point.day}  {money_in(point.cost.expected, cur):>10}  {bar}\n")
    return EXIT_OK


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"
