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
