"""``estimate``, ``audit`` and ``prices``: list prices beside the factory's, before and after the calls.

A list price is today's price of a model: your override (the price override file, which wins), else
genai-prices' bundled data (offline).  The factory's price is what mITyFactory records, from its own
table (its fallback price for a model it does not know).  A model without a list price is *unpriced*:
its list-price figures are null, never 0.  Amounts here are in USD, as both price tables are (they
are not converted to the display currency); per-token prices are USD per 1M tokens.

JSON schemas (stable; ranges are ``{"min", "expected", "max"}``; text that says nothing is ``""``):

- ``estimate --json``: one object, amounts in USD for all the calls together: ``model`` (the name
  given), ``factoryModel`` (what the factory files it as: its variant, e.g. ``"gpt5mini"``, or
  ``"unknown:<name>"``, priced at its fallback), ``calls``, ``inputTokens`` (per call),
  ``outputTokens`` (a range of tokens per call), ``outputGiven`` (false: the output range was
  assumed from the input), ``min``, ``expected``, ``max`` (at the list price, else at the factory's
  price: see ``basis``), ``basis`` (``"list price"`` or ``"factory price"``), ``priced``,
  ``listCost`` (a range; null when unpriced), ``factoryCost`` (a range: what the factory will
  record), ``source`` (where the list price comes from), ``asOf`` (the price data's date, or null),
  ``matchedModel`` (the price data's model, or null), ``provider`` (or null), ``note``,
  ``assumptions`` (list of text), ``suggestions``, ``problems`` (list of text: price data that could
  not be read, also on stderr).

  - ``suggestions[]``: ways to spend less: ``kind`` (``"cheaper-model"``, ``"other-provider"``,
    ``"prompt-caching"`` or ``"batching"``), ``text`` (one sentence with the numbers), ``cost`` (the
    expected cost that way) and ``saving`` (the expected saving), null when not known, ``model`` (the
    model to use instead, or null), ``assumptions`` (list of text).
- ``audit --json``: one object: ``tolerancePercent``, ``priceSource`` (the bundled price data, e.g.
  ``"genai-prices 0.2.3"``, or why it is missing), ``asOf`` (the newest price date in it, or null),
  ``overrideFile`` (path of your price overrides, or null), ``moneyAtStake`` (USD: the sum of the
  sessions' ``moneyAtStake``), ``sessions``, ``problems`` (list of text: unreadable files and price
  data, also on stderr).

  - ``sessions[]``: one per readable session: ``sessionId``, ``path`` (its cost.json), ``currency``
    (the file's currency code; its figures come from the factory's USD table and are compared as they
    are), ``tolerancePercent``, ``factoryTotal`` (what the factory recorded for every LLM call),
    ``factoryPricedTotal`` (the same for the models that have a list price), ``currentPricedTotal``
    (those calls at the list price; null when no model is priced), ``unpricedCalls``,
    ``moneyAtStake`` (the sum of the flagged models' differences, absolute), ``flagged`` (keys of the
    models off by more than the tolerance, most money at stake first), ``unpriced`` (keys of the
    unpriced models), ``models``, ``notes`` (list of text).
  - ``sessions[].models[]``: one per model of the session, most recorded cost first: ``model`` (its
    key: the factory's variant, or ``"unknown:<name>"``), ``label`` (how to show it), ``name`` (the
    model's real name), ``calls``, ``inputTokens``, ``outputTokens``, ``factoryCost`` (recorded),
    ``currentCost`` (at the list price; null when unpriced), ``difference`` (``currentCost`` minus
    ``factoryCost``: positive when the factory records less; null when unpriced),
    ``differencePercent`` (of ``factoryCost``; null when unpriced or nothing was recorded),
    ``priced``, ``source``, ``asOf``, ``matchedModel``, ``provider``, ``note`` (as for
    ``estimate --json``), ``flagged``, ``moneyAtStake`` (the difference, absolute; null when unpriced),
    ``direction`` (``"over"``: the factory records more than the list price, ``"under"``: less,
    ``"match"``, or null when unpriced), ``offTableRecords`` (records whose cost is not what the
    factory's own table gives), ``reasons`` (list of text: why it differs).
- ``prices --json``: one object: ``overrideFile`` (path of your price overrides) and ``models``.

  - ``models[]``: one per model the factory knows (or the one ``--model`` names), prices in USD per
    1M tokens: ``model`` (the name), ``name`` (the real model name of a factory variant),
    ``factoryModel`` (what the factory files it as: its variant, or ``"unknown:<name>"``),
    ``factoryInputPerMtok``, ``factoryOutputPerMtok`` (the factory's table), ``factoryFallback``
    (true: the factory does not know the model and records its fallback price), ``listInputPerMtok``,
    ``listOutputPerMtok`` (the list price; null when unpriced), ``cacheReadPerMtok``,
    ``batchInputPerMtok``, ``batchOutputPerMtok``, ``tierNote`` (null when the price data has none),
    ``priced``, ``matchedModel`` (the price data's model, or null), ``source``, ``asOf`` (or null),
    ``note``.

On an error (bad usage, no such session) nothing is printed on stdout: the message goes to stderr
and the exit code is 2.  ``audit`` exits 0 whatever it finds.

The price data is loaded only by the commands that use it, so it costs the others nothing.
"""

from __future__ import annotations

import argparse
import sys
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

if TYPE_CHECKING:
    from mity_cost.core.pricing.audit import AuditReport, SessionAudit
    from mity_cost.core.pricing.estimate import Estimate
    from mity_cost.core.pricing.prices import PriceBook


def _count(text: str) -> int:
    """A token or call count: a whole number >= 0 (``_`` and ``,`` separators allowed)."""
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def add_estimate_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--model``, ``--input-tokens``, ``--output-tokens``, ``--calls`` (``gate`` may reuse them)."""
    parser.add_argument("--model", required=required, metavar="NAME", help="model name or factory variant")
    parser.add_argument(
        "--input-tokens", type=_count, required=required, metavar="N", help="input tokens per call"
    )
    parser.add_argument(
        "--output-tokens",
        type=_count,
        metavar="N",
        help="output tokens per call (default: a range from the input, stated in the output)",
    )
    parser.add_argument("--calls", type=_positive, default=1, metavar="K", help="number of calls (default 1)")


def register(sub: Any) -> None:
    """Add ``estimate``, ``audit`` and ``prices``."""
    parser = sub.add_parser(
        "estimate",
        help="what LLM calls will cost, before they run (a range, with its assumptions)",
        description="Pre-flight estimate at the current list price and at the factory's price, with "
        "suggestions that carry numbers (cheaper model, prompt caching, batching).",
    )
    add_estimate_options(parser)
    add_json(parser)
    parser.set_defaults(handler=run_estimate)

    parser = sub.add_parser(
        "audit",
        help="recorded LLM costs against today's list prices",
        description="Recomputes every session's LLM calls at current list prices (genai-prices' bundled "
        "data, or your overrides) and lists models whose recorded cost differs by more than the "
        "tolerance, with the money at stake. Unpriced models are listed, never counted as $0. Exit 0.",
    )
    parser.add_argument("--session", metavar="ID", help="only this session")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=10.0,
        metavar="PERCENT",
        help="flag models whose recorded cost is off by more than this (default 10)",
    )
    add_roots(parser)
    add_json(parser)
    parser.set_defaults(handler=run_audit)

    parser = sub.add_parser(
        "prices",
        help="the factory's price table beside current list prices",
        description="For each model the factory knows (or --model NAME): its table price and the current "
        "list price per 1M tokens, with the list price's source and date.",
    )
    parser.add_argument("--model", metavar="NAME", help="one model name or factory variant")
    add_json(parser)
    parser.set_defaults(handler=run_prices)


def _usd(amount: float | None) -> str:
    if amount is None:
        return "unpriced"
    if amount == 0:
        return "$0"
    if abs(amount) < 0.01:
        return f"${amount:.5f}"
    return f"${amount:.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


def _warn_problems(problems: Any) -> None:
    for problem in problems:
        error(f"warning: {problem}")


# --- estimate ----------------------------------------------------------------------------------


def _print_estimate(result: Estimate) -> None:
    out = sys.stdout.write
    low, mid, high = result.output_tokens
    calls = f"{result.calls} call{'s' if result.calls != 1 else ''}"
    output = f"{mid:,} output" if result.output_given else f"{low:,} to {high:,} output, expected {mid:,}"
    out(f"Estimate: {result.model}, {calls} of {result.input_tokens:,} input tokens ({output})\n")
    if result.list_cost is not None:
        span = result.list_cost
        as_of = f", as of {result.quote.as_of}" if result.quote.as_of else ""
        out(
            f"  list price:      {_usd(span.expected)} expected (min {_usd(span.min)}, max {_usd(span.max)})"
            f"  [{result.quote.source}{as_of}]\n"
        )
    else:
        out(f"  list price:      unpriced ({result.quote.note or result.quote.source})\n")
    span = result.factory_cost
    out(
        f"  factory records: {_usd(span.expected)} expected (min {_usd(span.min)}, max {_usd(span.max)})"
        f"  [as {result.factory_model}]\n"
    )
    out("Assumptions:\n")
    for line in result.assumptions:
        out(f"  - {line}\n")
    if result.suggestions:
        out("Suggestions:\n")
        for suggestion in result.suggestions:
            out(f"  - {suggestion.text}\n")
            for line in suggestion.assumptions:
                out(f"      ({line})\n")


def run_estimate(args: argparse.Namespace) -> int:
    """Print the estimate."""
    from mity_cost.core.pricing.estimate import estimate

    try:
        result = estimate(args.model, args.input_tokens, args.output_tokens, args.calls)
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    _warn_problems(result.problems)
    if args.json:
        print_json(result.to_json())
    else:
        _print_estimate(result)
    return EXIT_OK


# --- audit -------------------------------------------------------------------------------------


def _print_session(audit: SessionAudit) -> None:
    out = sys.stdout.write
    current = audit.current_priced_total
    out(f"Session {audit.session_id}\n")
    out(
        f"  recorded by the factory: {_usd(audit.factory_total)}; at list prices: {_usd(current)} "
        f"for the priced models (recorded {_usd(audit.factory_priced_total)} for them)\n"
    )
    rows = []
    for line in audit.lines:
        price = line.price
        pct = price.difference_percent
        rows.append(
            (
                price.label,
                price.calls,
                f"{price.input_tokens + price.output_tokens:,}",
                _usd(price.factory_cost),
                _usd(price.current_cost),
                "" if price.difference is None else f"{price.difference:+.4f}",
                "" if pct is None else f"{pct:+.0f}%",
                "FLAG" if line.flagged else ("unpriced" if not price.priced else ""),
            )
        )
    if rows:
        print_table(
            ("model", "calls", "tokens", "recorded", "list price", "diff $", "diff %", ""),
            rows,
            right=(1, 2, 3, 4, 5, 6),
        )
    else:
        out("  no LLM calls\n")
    tolerance = f"{audit.tolerance * 100:g} %"
    for line in audit.flagged:
        verb = "more" if line.direction == "over" else "less"
        out(
            f"  ! {line.price.label}: the factory recorded {_usd(line.money_at_stake)} {verb} than the list "
            f"price (over {tolerance})\n"
        )
        for reason in line.reasons:
            out(f"      - {reason}\n")
    for line in audit.unpriced:
        out(
            f"  ? {line.price.label}: {line.price.calls} call(s), recorded {_usd(line.price.factory_cost)}; "
            "not counted at list price\n"
        )
        for reason in line.reasons:
            out(f"      - {reason}\n")
    for line in audit.lines:
        if not line.flagged and line.price.priced and line.reasons:
            out(f"  - {line.price.label}: {'; '.join(line.reasons)}\n")
    for note in audit.notes:
        out(f"  note: {note}\n")
    if audit.flagged:
        out(f"  money at stake (flagged models): {_usd(audit.money_at_stake)}\n")
    out("\n")


def _print_audit(report: AuditReport) -> None:
    out = sys.stdout.write
    as_of = f", newest price in it {report.as_of}" if report.as_of else ""
    out(
        f"List prices: {report.price_source} bundled data{as_of} (offline); "
        f"your overrides: {report.override_path}\n\n"
    )
    if not report.sessions:
        out("No sessions found.\n")
    for audit in report.sessions:
        _print_session(audit)


def run_audit(args: argparse.Namespace) -> int:
    """Print the audit; exit 0 whatever it finds (2 for bad usage or a session that is not there)."""
    from mity_cost.core.pricing.audit import audit_roots

    if not 0 <= args.tolerance < 1e6:
        error("--tolerance must be a percentage >= 0")
        return EXIT_USAGE
    report = audit_roots(roots_of(args), args.session, tolerance=args.tolerance / 100.0)
    _warn_problems(report.problems)
    if args.session is not None and not report.sessions:
        error(f"no readable session {args.session!r} under {', '.join(str(r) for r in roots_of(args))}")
        return EXIT_USAGE
    if args.json:
        print_json(report.to_json())
    else:
        _print_audit(report)
    return EXIT_OK


# --- prices ------------------------------------------------------------------------------------


def _price_row(book: PriceBook, model: str, factory_model: Any) -> dict[str, Any]:
    from mity_cost.core.factory.documents import model_key
    from mity_cost.core.factory.rules import FACTORY_PRICES
    from mity_cost.core.pricing.prices import FACTORY_MODEL_NAMES, factory_variant

    variant = factory_variant(factory_model)
    table_in, table_out = FACTORY_PRICES[variant]
    rates = book.rates(model)
    described = book.describe(model)
    factory_in, factory_out = table_in * 1000, table_out * 1000
    return {
        "model": model,
        "name": FACTORY_MODEL_NAMES.get(model, model),
        "factoryModel": model_key(factory_model),
        "factoryInputPerMtok": factory_in,
        "factoryOutputPerMtok": factory_out,
        "factoryFallback": variant == "unknown",
        "listInputPerMtok": rates.input_per_mtok if rates else None,
        "listOutputPerMtok": rates.output_per_mtok if rates else None,
        "cacheReadPerMtok": rates.cache_read_per_mtok if rates else None,
        "batchInputPerMtok": rates.batch_input_per_mtok if rates else None,
        "batchOutputPerMtok": rates.batch_output_per_mtok if rates else None,
        "tierNote": rates.tier_note if rates else None,
        "priced": rates is not None,
        "matchedModel": described.matched_model,
        "source": described.source,
        "asOf": described.as_of,
        "note": described.note,
    }


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:g}"


def _change(factory: float, current: float | None) -> str:
    if current is None or factory == 0:
        return "-"
    return f"{(current - factory) / factory * 100:+.0f}%"


def run_prices(args: argparse.Namespace) -> int:
    """Print the factory's table beside the list prices."""
    from mity_cost.core.factory.documents import KNOWN_MODELS
    from mity_cost.core.factory.rules import detect_model
    from mity_cost.core.pricing.prices import PriceBook

    book = PriceBook.load()
    _warn_problems(book.problems)
    if args.model is not None:
        name = args.model.strip()
        if not name:
            error("--model is empty")
            return EXIT_USAGE
        rows = [_price_row(book, name, name if name in KNOWN_MODELS else detect_model(name))]
    else:
        rows = [_price_row(book, variant, variant) for variant in KNOWN_MODELS]
    if args.json:
        print_json({"overrideFile": str(book.override_path), "models": rows})
        return EXIT_OK
    out = sys.stdout.write
    out("Prices in USD per 1M tokens (input / output). The factory's table beside the list price now.\n")
    table = [
        (
            row["model"],
            row["matchedModel"] or "-",
            f"{_money(row['factoryInputPerMtok'])} / {_money(row['factoryOutputPerMtok'])}",
            f"{_money(row['listInputPerMtok'])} / {_money(row['listOutputPerMtok'])}"
            if row["priced"]
            else "unpriced",
            f"{_change(row['factoryInputPerMtok'], row['listInputPerMtok'])} / "
            f"{_change(row['factoryOutputPerMtok'], row['listOutputPerMtok'])}",
            row["source"],
            row["asOf"] or "-",
        )
        for row in rows
    ]
    print_table(("model", "list model", "factory", "list price", "list vs factory", "source", "as of"), table)
    for row in rows:
        extra = []
        if row["factoryFallback"]:
            extra.append(
                f"the factory does not recognise it: it records its fallback price ({row['factoryModel']})"
            )
        elif row["model"] != row["factoryModel"]:
            extra.append(f"the factory records it as {row['factoryModel']}")
        if row["cacheReadPerMtok"] is not None:
            extra.append(f"cache read ${row['cacheReadPerMtok']:g}")
        if row["batchInputPerMtok"] is not None:
            extra.append(f"batch ${row['batchInputPerMtok']:g} / ${row['batchOutputPerMtok']:g}")
        if row["tierNote"]:
            extra.append(row["tierNote"])
        if row["note"]:
            extra.append(row["note"])
        if extra:
            out(f"  {row['model']}: {'; '.join(extra)}\n")
    if args.model is None:
        fallback_in, fallback_out = (v * 1000 for v in _fallback())
        out(
            f"  any other name: the factory records its fallback price ${fallback_in:g} / ${fallback_out:g}; "
            "see `mity-cost prices --model NAME`\n"
        )
    out(f"Your overrides (win over the list price): {book.override_path}\n")
    return EXIT_OK


def _fallback() -> tuple[float, float]:
    from mity_cost.core.factory.rules import FACTORY_PRICES

    return FACTORY_PRICES["unknown"]
