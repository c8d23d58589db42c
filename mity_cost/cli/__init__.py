"""The ``mity-cost`` command line.

Each command lives in a small module under this package that imports only the standard library at
module level (heavy imports happen inside the handler), so ``check-threshold``, ``gate`` and
``record-llm`` start in a few tens of milliseconds.  A module registers its commands with
``register(subparsers)`` and sets ``handler`` on each parser: ``handler(args) -> int`` (exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mity_cost import __version__
from mity_cost.cli.common import EXIT_USAGE

COMMAND_MODULES: tuple[str, ...] = (
    "mity_cost.cli.read",  # summary, show, features, export
    "mity_cost.cli.write",  # record-llm, record-execution, update-infra, save-feature
    "mity_cost.cli.threshold",  # check-threshold
    "mity_cost.cli.gate",  # gate
    "mity_cost.cli.pricing",  # estimate, audit, prices
    "mity_cost.cli.history",  # budget, alerts, report, compare, history
    "mity_cost.cli.app",  # tray
    "mity_cost.cli.doctor",  # doctor
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every command registered."""
    parser = argparse.ArgumentParser(
        prog="mity-cost",
        description="What your AI agents cost: reports, recording, budgets and the confirmation gate.",
        epilog="Exit codes: 0 ok, 1 denied or over the threshold, 2 bad usage or bad input, 3 no answer.",
    )
    parser.add_argument("--version", action="version", version=f"mity-cost {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
