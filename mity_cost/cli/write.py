"""``record-llm``, ``record-execution``, ``update-infra``, ``save-feature``: write as the factory would.

Each command writes under one ``--root`` (default the current folder), with the factory's model
detection, prices, presets and templates.  A write is locked against other writers and atomic (a
reader never sees half a file), and keeps every key of the file it does not touch.  Without
``--json`` a command prints one line.

JSON schemas (stable; ranges are ``{"min", "expected", "max"}``; what is printed is what was written,
in the factory's own format):

- ``record-llm --json``: one object, the record appended to the session's ``"llmUsage"``: ``id`` (a new
  UUID), ``model`` (the factory's variant, e.g. ``"gpt5mini"``, or ``{"unknown": "<name given>"}``
  when the factory does not know it), ``inputTokens``, ``outputTokens``, ``cost`` (USD, at the
  factory's table price), ``timestamp`` (RFC 3339, UTC).  Only when given: ``agent``, ``station``,
  ``feature``.
- ``record-execution --json``: one object, the execution appended to ``"executionCosts"``:
  ``executionType`` (``"container-build"``, ``"test-run"``, ``"security-scan"`` or
  ``"iac-validation"``), ``cpuMinutes``, ``memoryGbMinutes``, ``cost``, ``isLocal`` (false with
  ``--cloud``).

  - ``cost``: a range in USD with a note: ``min``, ``expected``, ``max``, ``notes``.
- ``update-infra --json``: one object, the session's new ``"infraCost"``: a monthly cost estimate in
  USD: ``currency``, ``scope``, ``confidence`` (0 to 1), ``breakdown``, ``total`` (a range: the sum
  of the five categories), ``assumptions`` (list of text), ``updatedAt``, ``isMonthly`` (true).

  - ``breakdown``: one range per category, with ``"unit"`` and ``"notes"`` text where the template
    gives them: ``llm``, ``compute``, ``storage``, ``network``, ``misc``.
- ``save-feature --json``: one object: ``path`` (the file written,
  ``workspaces/<app>/.mity/cost/features/<slug>.json``) and ``feature`` (its content).

  - ``feature``: ``featureId``, ``featureName``, ``oneTimeCost``, ``monthlyImpact``,
    ``calculatedAt``.
  - ``feature.oneTimeCost``, ``feature.monthlyImpact``: cost estimates in ``--currency``:
    ``currency``, ``scope`` (``"feature"``), ``confidence``, ``breakdown`` (a range per category, as
    above; zero when not given), ``total``, ``assumptions``, ``updatedAt``, ``isMonthly`` (false for
    the one-time cost, true for the monthly impact).

On an error (a bad argument, a session file that cannot be trusted) nothing is written and nothing is
printed on stdout: the message goes to stderr and the exit code is 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mity_cost.cli.common import EXIT_OK, EXIT_USAGE, add_json, add_roots, error, print_json

TEMPLATES_HELP = "backend_api_small, backend_api_with_db, frontend_spa or fullstack_small"
CATEGORIES_HELP = "llm, compute, storage, network or misc"


def register(sub: Any) -> None:
    """Add the four writing commands."""
    llm = sub.add_parser(
        "record-llm",
        help="append an LLM call as the factory would (model detection, its prices, ledger update)",
        description="Append one LLM usage record to the session's cost.json exactly as mITyFactory "
        "would: its model detection and price table, its ledger update; locked and atomic. The "
        "session is started (as the factory starts one) when it has no cost.json yet.",
    )
    _session(llm)
    llm.add_argument("--model", required=True, metavar="NAME", help="model name as given, e.g. gpt-5-mini")
    llm.add_argument("--input-tokens", required=True, type=int, metavar="N", help="input tokens")
    llm.add_argument("--output-tokens", required=True, type=int, metavar="N", help="output tokens")
    llm.add_argument("--agent", metavar="A", help="the agent that made the call")
    llm.add_argument("--station", metavar="S", help="the factory station")
    llm.add_argument("--feature", metavar="F", help="the feature the call was for")
    llm.set_defaults(handler=run_record_llm)

    execution = sub.add_parser(
        "record-execution",
        help="append a build/test/scan/IaC run with the factory's presets",
        description="Append one execution with the factory's preset cost (local by default; --cloud "
        "prices it from CPU and memory minutes); its range is added to the ledger's compute item.",
    )
    _session(execution)
    execution.add_argument(
        "--type", required=True, dest="kind", choices=("build", "test", "scan", "iac"), help="what ran"
    )
    execution.add_argument("--cloud", action="store_true", help="a cloud run (default: local)")
    execution.set_defaults(handler=run_record_execution)

    infra = sub.add_parser(
        "update-infra",
        help="set the session's monthly infrastructure estimate from a template",
        description="Replace the session's monthly infraCost with one of the factory's templates: "
        f"{TEMPLATES_HELP}.",
    )
    _session(infra)
    infra.add_argument("--template", required=True, metavar="NAME", help=TEMPLATES_HELP)
    infra.set_defaults(handler=run_update_infra)

    feature = sub.add_parser(
        "save-feature",
        help="write a feature cost delta (workspaces/<app>/.mity/cost/features/<slug>.json)",
        description="Write one feature's cost delta as the factory names and shapes it. Ranges are "
        "CATEGORY=AMOUNT or CATEGORY=MIN,EXPECTED,MAX, categories "
        f"{CATEGORIES_HELP}; categories not given are zero; totals are their sum. Replaces the file.",
    )
    add_roots(feature)
    add_json(feature)
    feature.add_argument("--app", required=True, metavar="A", help="the app (folder under workspaces/)")
    feature.add_argument("--feature", required=True, metavar="ID", help="the feature id (names the file)")
    feature.add_argument("--name", required=True, metavar="TEXT", help="the feature's name")
    feature.add_argument(
        "--one-time", action="append", default=[], metavar="CATEGORY=RANGE", help="one-time cost (repeatable)"
    )
    feature.add_argument(
        "--monthly", action="append", default=[], metavar="CATEGORY=RANGE", help="monthly cost (repeatable)"
    )
    feature.add_argument(
        "--assumption", action="append", default=[], metavar="TEXT", help="one-time assumption (repeatable)"
    )
    feature.add_argument(
        "--monthly-assumption", action="append", default=[], metavar="TEXT", help="monthly assumption"
    )
    feature.add_argument("--confidence", type=float, default=0.5, help="0..1 (default 0.5)")
    feature.add_argument("--currency", default="USD", help="USD or EUR (default USD)")
    feature.set_defaults(handler=run_save_feature)


def _session(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", required=True, metavar="ID", help="the session id (its folder name)")
    add_roots(parser)
    add_json(parser)


def _root(args: argparse.Namespace) -> Path | None:
    roots: list[Path] | None = args.roots
    if roots and len(roots) > 1:
        error("give one --root to write to")
        return None
    return roots[0] if roots else Path.cwd()


def _ranges(values: list[str], option: str) -> dict[str, tuple[float, float, float]] | None:
    from mity_cost.core.factory.writing import WriteError, parse_range

    ranges: dict[str, tuple[float, float, float]] = {}
    for value in values:
        category, sep, spec = value.partition("=")
        category = category.strip().lower()
        if not sep or not category or not spec.strip():
            error(f"{option} {value!r}: expected CATEGORY=AMOUNT or CATEGORY=MIN,EXPECTED,MAX")
            return None
        if category in ranges:
            error(f"{option}: {category} given twice")
            return None
        try:
            ranges[category] = parse_range(spec)
        except WriteError as exc:
            error(f"{option} {category}: {exc.message}")
            return None
    return ranges


def run_record_llm(args: argparse.Namespace) -> int:
    """Append an LLM record."""
    from mity_cost.core.factory import writing

    root = _root(args)
    if root is None:
        return EXIT_USAGE
    try:
        record = writing.record_llm(
            root,
            args.session,
            args.model,
            args.input_tokens,
            args.output_tokens,
            agent=args.agent,
            station=args.station,
            feature=args.feature,
        )
    except writing.WriteError as exc:
        error(exc.message)
        return EXIT_USAGE
    if args.json:
        print_json(record)
    else:
        model = record["model"]
        name = (
            model if isinstance(model, str) else f"{next(iter(model.values()), '?')} (unknown to the factory)"
        )
        sys.stdout.write(
            f"recorded {name}: {record['inputTokens']} in + {record['outputTokens']} out tokens, "
            f"${record['cost']:.6f} (session {args.session})\n"
        )
    return EXIT_OK


def run_record_execution(args: argparse.Namespace) -> int:
    """Append an execution."""
    from mity_cost.core.factory import writing

    root = _root(args)
    if root is None:
        return EXIT_USAGE
    try:
        execution = writing.record_execution(root, args.session, args.kind, cloud=args.cloud)
    except writing.WriteError as exc:
        error(exc.message)
        return EXIT_USAGE
    if args.json:
        print_json(execution)
    else:
        cost = execution["cost"]
        where = "local" if execution["isLocal"] else "cloud"
        sys.stdout.write(
            f"recorded {where} {execution['executionType']}: ${cost['min']:.4f} / ${cost['expected']:.4f} / "
            f"${cost['max']:.4f} (min / expected / max, session {args.session})\n"
        )
    return EXIT_OK


def run_update_infra(args: argparse.Namespace) -> int:
    """Set the monthly infrastructure estimate."""
    from mity_cost.core.factory import writing

    root = _root(args)
    if root is None:
        return EXIT_USAGE
    try:
        infra = writing.update_infra(root, args.session, args.template)
    except writing.WriteError as exc:
        error(exc.message)
        return EXIT_USAGE
    if args.json:
        print_json(infra)
    else:
        total = infra["total"]
        sys.stdout.write(
            f"monthly infrastructure of session {args.session}: ${total['min']:.2f} / "
            f"${total['expected']:.2f} / ${total['max']:.2f} per month (min / expected / max)\n"
        )
    return EXIT_OK


def run_save_feature(args: argparse.Namespace) -> int:
    """Write a feature cost delta."""
    import json

    from mity_cost.core.factory import writing

    root = _root(args)
    one_time = _ranges(args.one_time, "--one-time")
    monthly = _ranges(args.monthly, "--monthly")
    if root is None or one_time is None or monthly is None:
        return EXIT_USAGE
    try:
        path = writing.save_feature(
            root,
            args.app,
            args.feature,
            args.name,
            one_time,
            monthly,
            assumptions=args.assumption,
            monthly_assumptions=args.monthly_assumption,
            confidence=args.confidence,
            currency=args.currency,
        )
    except writing.WriteError as exc:
        error(exc.message)
        return EXIT_USAGE
    if args.json:
        print_json({"path": str(path), "feature": json.loads(path.read_bytes())})
    else:
        sys.stdout.write(f"saved feature {args.feature!r} of {args.app} to {path}\n")
    return EXIT_OK
