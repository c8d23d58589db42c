"""``mity-cost gate``: may this operation spend AMOUNT more on the session?  Ask the user if needed.

Exit 0 at once when the session's expected total plus AMOUNT stays within the threshold (or what a
``continue`` approved, and the session is not paused): the fast path reads the session with
``core/gate/fastpath.py`` (stdlib only).  Otherwise the running tray app is asked over the confirmation
socket (``core/gate/protocol.py``) and shows its dialog: exit 0 approved, 1 denied (paused); 3 when
nobody answers in time or no app runs (fail closed); 2 on bad usage or a missing session.

AMOUNT is in the display currency (``MITY_COST_CURRENCY``), like the threshold.  Instead of
``--estimate``, ``--model M --input-tokens N [--output-tokens N] [--calls K]`` prices the calls
(``core/pricing/estimate.py``); the gate then counts the larger of the list price and what the factory
will record, so it never asks too late.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from mity_cost.cli.common import (
    EXIT_DENIED,
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_USAGE,
    add_json,
    add_roots,
    budgets_say,
    error,
    print_json,
)

DEFAULT_TIMEOUT = 120.0


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount >= 0")
    return value


def _seconds(text: str) -> float:
    value = _amount(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("the timeout must be more than 0 seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def register(sub: Any) -> None:
    """Add ``gate``."""
    parser = sub.add_parser(
        "gate",
        help="exit 0 if an operation may spend AMOUNT more (asking the tray app when over the threshold)",
        description="If the session's expected total plus AMOUNT stays within the threshold (or what the "
        "user approved), exit 0 at once. Otherwise ask the running mity-cost tray app, which shows its "
        "confirmation dialog, and wait: exit 0 approved, 1 denied (paused), 3 timeout or no app running "
        "(never approved by default), 2 bad usage or no such session.",
    )
    parser.add_argument("--session", required=True, metavar="ID", help="the session id (its folder name)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--estimate", type=_amount, metavar="AMOUNT", help="what the operation will cost")
    what.add_argument("--model", metavar="M", help="price LLM calls of this model instead of --estimate")
    parser.add_argument(
        "--input-tokens", type=_count, metavar="N", help="input tokens per call (with --model)"
    )
    parser.add_argument(
        "--output-tokens", type=_count, metavar="N", help="output tokens per call (with --model)"
    )
    parser.add_argument("--calls", type=_count, default=1, metavar="K", help="number of calls (with --model)")
    parser.add_argument("--operation", default="", metavar="TEXT", help="what asks, shown in the dialog")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECS",
        help=f"how long to wait for the user (default {DEFAULT_TIMEOUT:g})",
    )
    add_roots(parser)
    add_json(parser)
    parser.set_defaults(handler=run)


def _estimate_from_tokens(args: argparse.Namespace) -> float:
    """The calls' cost in USD; raises ``ValueError`` with a message for people."""
    if args.input_tokens is None:
        raise ValueError("--model needs --input-tokens")
    if args.calls < 1:
        raise ValueError("--calls must be at least 1")
    try:
        from mity_cost.core.pricing.estimate import estimate
    except ImportError as exc:
        raise ValueError(f"token-based estimates are not available ({exc}); use --estimate") from None
    result = estimate(args.model, args.input_tokens, args.output_tokens, args.calls)
    expected = float(result.expected)
    factory = getattr(result, "factory_cost", None)
    if factory is not None:
        expected = max(expected, float(factory.expected))
    return expected


def _budget_approved(session_id: str, root: Path, extra: float, currency: str) -> None:
    """After the user approved what a budget asked about: record it (HISTORY owner's hook)."""
    try:
        from mity_cost.cli.history import budget_approved
    except ImportError:
        return
    budget_approved(session_id, root, extra, currency=currency)


def _result(args: argparse.Namespace, payload: dict[str, Any], code: int, message: str | None) -> int:
    if message:
        error(message)
    if args.json:
        print_json({**payload, "exitCode": code})
    return code


def run(args: argparse.Namespace) -> int:
    """Run ``gate``."""
    from mity_cost.cli.common import roots_of
    from mity_cost.core.gate import fastpath
    from mity_cost.core.settings import load_settings

    settings = load_settings()
    for problem in settings.problems:
        error(f"settings: {problem}")
    sym = settings.symbol
    if args.model is not None:
        try:
            extra = settings.convert(_estimate_from_tokens(args), "USD")
        except ValueError as exc:
            error(str(exc))
            return EXIT_USAGE
    else:
        if args.input_tokens is not None or args.output_tokens is not None:
            error("--input-tokens and --output-tokens go with --model, not with --estimate")
            return EXIT_USAGE
        extra = float(args.estimate)
    roots = roots_of(args)
    payload: dict[str, Any] = {
        "sessionId": args.session,
        "estimate": extra,
        "currency": settings.currency,
        "threshold": settings.threshold,
    }

    try:
        found = fastpath.find_session(roots, args.session)
    except fastpath.QuickError as exc:
        return _result(args, {**payload, "answer": "error", "error": exc.message}, EXIT_USAGE, exc.message)
    root = found.parent.parent.parent.parent  # <root>/.mity/chat/<id>/cost.json

    # A hard_stop budget that would be exceeded refuses (nobody is asked); a require_confirmation
    # one makes the gate ask the app even under the threshold.
    budget, budget_reason = budgets_say(
        args.session, found, extra, currency=settings.currency, operation=args.operation or None
    )
    if budget == "refuse":
        payload.update(answer="denied", reason=budget_reason)
        return _result(args, payload, EXIT_DENIED, f"refused by a budget: {budget_reason}")
    why: str
    try:
        result = fastpath.check([root], args.session, settings, extra)
    except fastpath.QuickError as exc:
        why = f"{exc.describe()}: cannot tell the total, asking the app"
        payload["error"] = exc.describe()
    else:
        payload.update(result.to_json())
        for note in result.notes:
            error(note)
        if result.within and budget != "ask":
            return _result(args, {**payload, "answer": "approved", "reason": "within"}, EXIT_OK, None)
        why = result.describe(sym)
    reason = ""
    if budget == "ask":
        why = budget_reason if payload.get("within") is True else f"{why}; {budget_reason}"
        reason = budget_reason

    from mity_cost.core.gate import protocol

    outcome = protocol.ask_detailed(
        args.session, root, extra, args.operation, args.timeout, currency=settings.currency, reason=reason
    )
    payload.update(answer=outcome.result, reason=outcome.message)
    if outcome.approved_up_to is not None:
        payload["approvedUpTo"] = outcome.approved_up_to
    if outcome.result == "approved":
        if budget == "ask":
            _budget_approved(args.session, root, extra, settings.currency)
        return _result(args, payload, EXIT_OK, None)
    if outcome.result == "denied":
        return _result(args, payload, EXIT_DENIED, f"denied: {why}; {outcome.message}")
    if outcome.result == "timeout":
        message = f"no answer within {args.timeout:g} s ({outcome.message}); not approved: {why}"
    else:
        message = f"{outcome.message}; not approved (start it with `mity-cost tray`): {why}"
    return _result(args, payload, EXIT_NO_ANSWER, message)
