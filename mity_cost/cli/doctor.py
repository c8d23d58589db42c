"""``mity-cost doctor``: explain what around the app is missing or wrong.

It checks the desktop (system tray and notifications, through a short Qt probe that ``--no-probe``
skips), file watching (``"file watching"`` off Linux, ``"inotify watches"`` on it), each root, the
socket folder and the versions, then the settings.  Exit 0 when every check is ok, 1 when one needs
attention.

JSON schema (stable):

- ``doctor --json``: a list, one object per check, in the order they are printed: ``name`` (what was
  checked: ``"system tray"``, ``"notifications"``, ``"inotify watches"``, ``"root <path>"``,
  ``"socket folder"``, ``"versions"``, ``"settings"``...), ``status`` (``"ok"``, ``"warn"`` or
  ``"fail"``), ``detail`` (what was found), ``advice`` (what to do about it; ``""`` when nothing).
  Each problem with the settings (``MITY_COST_*`` variables, the settings file) is a
  ``"settings"`` check with status ``"warn"``.  The exit code is 1 exactly when some status is not
  ``"ok"``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mity_cost.cli.common import EXIT_DENIED, EXIT_OK, add_json, add_roots, print_json, roots_of

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def register(sub: Any) -> None:
    """Add the ``doctor`` command."""
    parser = sub.add_parser(
        "doctor",
        help="check the tray, notifications, file watching, the socket folder and versions",
        description="Checks what mity-cost needs around it and explains any missing piece. "
        "Exit 0 when all is well, 1 when something needs attention.",
    )
    add_roots(parser)
    add_json(parser)
    parser.add_argument("--no-probe", action="store_true", help="skip the Qt tray/notification probe")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run every check and print them."""
    from mity_cost.core import settings
    from mity_cost.core.desktop import doctor

    configured = settings.load_settings()
    roots = roots_of(args) if args.roots else [Path(r) for r in configured.roots] or roots_of(args)
    probe = "skipped (--no-probe)" if args.no_probe else None
    checks = doctor.run_checks(roots, probe=probe)
    if args.no_probe:
        checks = [c for c in checks if c.name not in ("system tray", "notifications")]
    # Settings problems are checks too, so that --json shows why the exit code is 1.
    checks += [doctor.Check("settings", "warn", problem) for problem in configured.problems]
    if args.json:
        print_json([c.to_json() for c in checks])
    else:
        for check in checks:
            sys.stdout.write(f"[{_MARK[check.status]}] {check.name}: {check.detail}\n")
            if check.advice and check.status != "ok":
                sys.stdout.write(f"       -> {check.advice}\n")
    bad = any(c.status != "ok" for c in checks)
    return EXIT_DENIED if bad else EXIT_OK
