"""``mity-cost tray``: start the tray app.

The command line never imports the GUI (not even inside a handler: the boundary test and the
import contract count that too).  The handler runs ``python -m mity_cost.app`` instead: on POSIX it
*replaces* this process (``os.execv``), so there is one process, its exit code is the app's and
signals reach the app directly; elsewhere (Windows, where ``execv`` does not replace the process)
it runs the app as a child and returns its exit code.  Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

APP_MODULE = "mity_cost.app"


def register(sub: Any) -> None:
    """Add the ``tray`` command."""
    parser = sub.add_parser(
        "tray",
        help="start the tray app (also installed as mity-cost-tray)",
        description="Start the tray app: a live cost badge, the details window, warnings and the "
        "confirmation dialog.  A second start shows the running app's details window.",
    )
    parser.add_argument(
        "--demo", action="store_true", help="watch a copy of the example workspace with a simulated factory"
    )
    parser.add_argument(
        "--root",
        dest="roots",
        action="append",
        default=None,
        metavar="DIR",
        help="factory root to watch (repeatable; default: the settings' roots, else the current folder)",
    )
    parser.add_argument("--no-dialogs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quit-after", type=float, default=None, metavar="SECONDS", help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    parser.set_defaults(handler=run)


def app_argv(args: argparse.Namespace) -> list[str]:
    """The app's own arguments for these options."""
    argv: list[str] = []
    if args.demo:
        argv.append("--demo")
    for root in args.roots or []:
        argv += ["--root", os.path.abspath(os.path.expanduser(str(root)))]
    if args.no_dialogs:
        argv.append("--no-dialogs")
    if args.quit_after is not None:
        argv += ["--quit-after", str(args.quit_after)]
    if args.verbose:
        argv.append("--verbose")
    return argv


def command(args: argparse.Namespace) -> list[str]:
    """The full command line that starts the app."""
    return [sys.executable, "-m", APP_MODULE, *app_argv(args)]


def run(args: argparse.Namespace) -> int:
    """Start the app (replacing this process where the platform can)."""
    argv = command(args)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    if os.name == "posix":
        os.execv(argv[0], argv)  # does not return
    import subprocess  # pragma: no cover - Windows (imported here: --help registers this module)

    return subprocess.call(argv)  # pragma: no cover - Windows
