"""Support for the PyInstaller build, where ``sys.executable`` is our own program, not Python."""

from __future__ import annotations

import runpy
import sys


def handle_module_reentry() -> None:
    """Run ``<program> -m module args...`` as Python would, then exit (frozen builds only).

    The app starts helpers as ``sys.executable -m mity_cost.demo`` (the simulated factory) and
    ``-m mity_cost.ui.probe`` (doctor's desktop probe); in a frozen build that re-enters here.
    """
    if getattr(sys, "frozen", False) and len(sys.argv) > 2 and sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        raise SystemExit(0)
