"""The ``mity-cost`` command line.

Each command lives in a small module under this package that imports only the standard library at
module level (heavy imports happen inside the handler), so ``check-threshold``, ``gate`` and
``record-llm`` start in a few tens of milliseconds.  A module registers its commands with
``register(subparsers)`` and sets ``handler`` on each parser: ``handler(args) -> int`` (exit code).

When the first argument names a command (``COMMANDS``), only that command's module is imported and
registered: the other modules (and what they import) cost nothing on an agent's hot path.  Anything
else (``--help``, ``--version``, no command, a misspelt one) builds the full parser, so the help and
the errors list every command.  The result is the same either way: a sub-command's options, help
and errors belong to its own parser.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from mity_cost import __version__
from mity_cost.cli.common import EXIT_USAGE

COMMAND_MODULES: tuple[str, ...] = (
    "mity_cost.cli.read",  # summary, show, features, export
    "mity_cost.cli.write",  # record-llm, record-execution, update-infra, save-feature
    "mity_cost.cli.threshold",  # check-threshold
    "mity_cost.cli.gate",  # gate
    "mity_cost.cli.pricing",  # estimate, audit, prices
    "mity_cost.cli.history",  # budget, alerts, report, compare, history, forecast
    "mity_cost.cli.tray",  # tray
    "mity_cost.cli.doctor",  # doctor
)

COMMANDS: dict[str, str] = {
    "summary": "mity_cost.cli.read",
    "show": "mity_cost.cli.read",
    "features": "mity_cost.cli.read",
    "export": "mity_cost.cli.read",
    "record-llm": "mity_cost.cli.write",
    "record-execution": "mity_cost.cli.write",
    "update-infra": "mity_cost.cli.write",
    "save-feature": "mity_cost.cli.write",
    "check-threshold": "mity_cost.cli.threshold",
    "gate": "mity_cost.cli.gate",
    "estimate": "mity_cost.cli.pricing",
    "audit": "mity_cost.cli.pricing",
    "prices": "mity_cost.cli.pricing",
    "budget": "mity_cost.cli.history",
    "alerts": "mity_cost.cli.history",
    "report": "mity_cost.cli.history",
    "compare": "mity_cost.cli.history",
    "history": "mity_cost.cli.history",
    "forecast": "mity_cost.cli.history",
    "tray": "mity_cost.cli.tray",
    "doctor": "mity_cost.cli.doctor",
}
"""Which module registers each command (a test checks this against what the modules register)."""


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, without importing ``shutil``.

    argparse makes a help formatter for every option it adds (to check the metavar), and its
    formatter imports ``shutil`` (and with it ``bz2``, ``lzma``, ``fnmatch``) just for this: a few
    milliseconds on every start of a hot command.  Same rules: ``COLUMNS`` when it is a positive
    integer, else the terminal on ``sys.__stdout__``, else 80.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    try:
        lines = int(os.environ["LINES"])
    except (KeyError, ValueError):
        lines = 0
    if columns <= 0 or lines <= 0:
        try:
            size = os.get_terminal_size(sys.__stdout__.fileno())  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            size = os.terminal_size((80, 24))
        if columns <= 0:
            columns = size.columns or 80
    return columns


class _Formatter(argparse.HelpFormatter):
    """argparse's default formatter, its width found without ``shutil`` (same width)."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose default formatter is :class:`_Formatter`; sub-parsers inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    """The parser with the commands of ``modules`` registered (default: every command).

    A module that is not part of this build (``ModuleNotFoundError`` for the module itself) is
    skipped.
    """
    return _build(modules)[0]


def _build(modules: Sequence[str]) -> tuple[argparse.ArgumentParser, set[str]]:
    """The parser and the names of the commands registered on it."""
    parser = _Parser(
        prog="mity-cost",
        description="What your AI agents cost: reports, recording, budgets and the confirmation gate.",
        epilog="Exit codes: 0 ok, 1 denied or over the threshold, 2 bad usage or bad input, 3 no answer.",
    )
    parser.add_argument("--version", action="version", version=f"mity-cost {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser, set(sub.choices)


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Only the named command's module when the first argument is a known command, else all."""
    module = COMMANDS.get(argv[0]) if argv else None
    if module is not None:
        parser, registered = _build((module,))
        if argv[0] in registered:
            return parser
    return build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser_for(arguments)
    args = parser.parse_args(arguments)
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
