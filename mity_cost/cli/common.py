"""What every command shares: exit codes, ``--root``/``--json`` options, tables and errors.

Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3


def add_roots(parser: argparse.ArgumentParser) -> None:
    """``--root DIR`` (repeatable; default the current folder)."""
    parser.add_argument(
        "--root",
        dest="roots",
        action="append",
        type=Path,
        metavar="DIR",
        help="factory root to read (repeatable; default: the current folder)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    """``--json``: print data as JSON (a documented, stable schema)."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def roots_of(args: argparse.Namespace) -> list[Path]:
    """The roots given, else the current folder."""
    roots: list[Path] | None = getattr(args, "roots", None)
    return roots or [Path.cwd()]


def budgets_say(
    session_id: str,
    session_file: Path | None,
    extra: float = 0.0,
    *,
    currency: str | None = None,
    operation: str | None = None,
) -> tuple[str, str]:
    """What the user's budgets say about spending ``extra`` more in a session whose ``cost.json`` is
    ``session_file`` (``<root>/.mity/chat/<id>/cost.json``): ``("pass" | "ask" | "refuse", reason)``.

    Without a budgets file: ``("pass", "")`` for the price of one ``stat`` (``gate`` and
    ``check-threshold`` are on an agent's hot path); otherwise ``cli/history.py: budget_gate`` judges,
    and only then are the budgets' modules imported.
    """
    from mity_cost.core.paths import budgets_file

    if not budgets_file().exists():
        return "pass", ""
    from mity_cost.cli.history import budget_gate

    root = session_file.parent.parent.parent.parent if session_file is not None else None
    return budget_gate(session_id, root, extra, currency=currency, operation=operation)


def print_json(value: Any) -> None:
    """Pretty JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def error(message: str) -> None:
    """A message on stderr, prefixed with the program name."""
    sys.stderr.write(f"mity-cost: {message}\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> None:
    """A plain aligned table; columns whose index is in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)
        )
        sys.stdout.write(line.rstrip() + "\n")
        if n == 0:
            sys.stdout.write("  ".join("-" * w for w in widths) + "\n")
