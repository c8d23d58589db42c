"""``mity-cost check-threshold``: may this session go on?  Exit 0 yes, 1 no, 2 bad input.

Fast path: only the standard library and stdlib-only core modules are imported (``core/gate/fastpath.py``).

- 0: the session's expected total (display currency, LLM costs left out when disabled) is not over
  the threshold, or not over what a ``continue`` in ``cost.decision.json`` approved;
- 1: it is over, or the user paused the session, or a budget stops it (an exceeded ``hard_stop``
  budget, or a ``require_confirmation`` one: ask with ``gate``);
- 2: bad usage, no such session, or a file that cannot be trusted (fail closed).

``--json`` prints one object: ``sessionId``, ``path``, ``status`` (``ok``/``over``/``paused``),
``within``, ``totalExpected``, ``totalMin``, ``totalMax``, ``extra`` (0), ``threshold``, ``limit``,
``decision``, ``approvedUpTo``, ``decidedAt``, ``currency`` (display currency code), ``notes``,
``budget`` (null, or ``{"action", "reason"}`` when a budget has a say: action ``"pass"`` with a
warning, ``"ask"`` or ``"refuse"``; ``status`` is then ``"budget"`` unless the budget passes).
On bad input it prints ``{"sessionId", "status": "error", "error"}`` instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mity_cost.cli.common import (
    EXIT_DENIED,
    EXIT_OK,
    EXIT_USAGE,
    add_json,
    add_roots,
    budgets_say,
    error,
    print_json,
)


def register(sub: Any) -> None:
    """Add ``check-threshold``."""
    parser = sub.add_parser(
        "check-threshold",
        help="exit 0 under the threshold (or what was approved), 1 over it or paused",
        description="Compare a session's expected total with MITY_COST_THRESHOLD (display currency) and "
        "with what the user approved in cost.decision.json, and with the budgets. Exit 0 when it may go "
        "on, 1 when it is over the threshold, paused, or stopped by a budget (hard_stop, or "
        "require_confirmation: ask with gate), 2 on bad input (a file that cannot be trusted never lets "
        "it go on).",
    )
    parser.add_argument("--session", required=True, metavar="ID", help="the session id (its folder name)")
    add_roots(parser)
    add_json(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``check-threshold``."""
    from mity_cost.cli.common import roots_of
    from mity_cost.core.gate import fastpath
    from mity_cost.core.settings import load_settings

    settings = load_settings()
    for problem in settings.problems:
        error(f"settings: {problem}")
    try:
        result = fastpath.check(roots_of(args), args.session, settings)
    except fastpath.QuickError as exc:
        error(exc.describe() if exc.path else exc.message)
        if args.json:
            print_json({"sessionId": args.session, "status": "error", "error": exc.describe()})
        return EXIT_USAGE
    for note in result.notes:
        error(note)
    # Nobody is asked here: an exceeded hard_stop budget refuses, and a require_confirmation one (or
    # one that cannot be judged) stops the caller too, which may then ask with ``gate``.
    action, reason = budgets_say(args.session, result.session.path) if result.within else ("pass", "")
    if args.json:
        payload = result.to_json()
        if action != "pass":
            payload.update(status="budget", within=False)
        print_json({**payload, "budget": {"action": action, "reason": reason} if reason else None})
    else:
        line = result.describe(settings.symbol)
        if action != "pass":
            line += (
                f"; but {reason}" if action == "refuse" else f"; but a budget needs a confirmation: {reason}"
            )
        sys.stdout.write(line + "\n")
    return EXIT_OK if result.within and action == "pass" else EXIT_DENIED
