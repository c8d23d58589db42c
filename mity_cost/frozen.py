"""Support for the PyInstaller build, where ``sys.executable`` is our own program, not Python.

The entry scripts in ``packaging/pyinstaller`` call :func:`prepare` before anything else.
``<program> -m mity_cost.frozen`` checks that the bundle holds what the app loads at run time (the
packaged assets, the distributions' metadata, watchdog's native backend, pydantic's compiled core and
genai-prices' data) and prints the findings as JSON; ``scripts/package`` runs it after each build.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import MutableMapping
from importlib import resources

# Files the app reads with importlib.resources (relative to the mity_cost package).
ASSETS = (
    "py.typed",
    "assets/icons/mity-cost-256.png",
    "assets/icons/mity-cost.svg",
    "assets/demo/workspace.zip",
    "assets/demo/expected-summaries.jsonl",
    "assets/demo/expected-features.jsonl",
)
# watchdog's observer per platform; anything else means it fell back to polling.
NATIVE_OBSERVERS = {"linux": "InotifyObserver", "darwin": "FSEventsObserver", "win32": "WindowsApiObserver"}

# PyInstaller's bootloader prepends the bundle to these search paths (for the bundled libraries) and
# saves what the user had in ``<name>_ORIG``.
_LIBRARY_PATH_VARIABLES = ("LD_LIBRARY_PATH", "LIBPATH")


def is_frozen() -> bool:
    """True in the PyInstaller build."""
    return bool(getattr(sys, "frozen", False))


def restore_library_path(environ: MutableMapping[str, str] | None = None) -> None:
    """Give child processes the user's library search path, not the bundle's.

    Programs the app starts (``xdg-open`` for "Open log folder", a file manager, a browser) must load
    the system's libraries; with the bundle first on ``LD_LIBRARY_PATH`` they would pick up our copies
    of GLib, OpenSSL... and may fail.  This process is not affected: its libraries are found already.
    Our own helpers (``<program> -m ...``) pass through the bootloader again, which sets it anew.
    Call it in the frozen build only (:func:`prepare` does): there the variable without a saved
    original is the bootloader's alone.
    """
    env = os.environ if environ is None else environ
    for name in _LIBRARY_PATH_VARIABLES:
        original = env.pop(f"{name}_ORIG", None)
        if original is not None:
            env[name] = original
        else:
            env.pop(name, None)


def handle_module_reentry() -> None:
    """Run ``<program> -m module args...`` as Python would, then exit (frozen builds only).

    The app starts helpers as ``sys.executable -m mity_cost.demo`` (the simulated factory),
    ``-m mity_cost.ui.probe`` (doctor's desktop probe) and ``-m mity_cost.app`` (``mity-cost tray``,
    the autostart entry); in a frozen build that re-enters here.
    """
    if is_frozen() and len(sys.argv) > 2 and sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        if module == __name__:  # imported already: runpy would warn and run a second copy
            raise SystemExit(main())
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        raise SystemExit(0)


def prepare() -> None:
    """What each frozen entry point does first: fix the environment, then serve ``-m`` re-entry."""
    if is_frozen():
        restore_library_path()
        handle_module_reentry()


def self_check() -> dict[str, object]:
    """What the app needs at run time, as found in this interpreter (or bundle); ``problems`` lists
    what is missing."""
    from pydantic import TypeAdapter
    from watchdog.observers import Observer

    from mity_cost.core.desktop.doctor import check_versions
    from mity_cost.core.pricing import prices

    problems: list[str] = []
    package = resources.files("mity_cost")
    missing = [name for name in ASSETS if not package.joinpath(name).is_file()]
    problems += [f"asset missing: {name}" for name in missing]
    versions = check_versions()
    if "missing" in versions.detail:
        problems.append(f"distribution metadata missing: {versions.detail}")
    observer = str(getattr(Observer, "__name__", Observer))
    expected = next((v for k, v in NATIVE_OBSERVERS.items() if sys.platform.startswith(k)), None)
    if expected is not None and observer != expected:
        problems.append(f"watchdog uses {observer}, not {expected}")
    try:
        validated = TypeAdapter(int).validate_python("3") == 3
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        validated = False
        problems.append(f"pydantic does not validate: {exc!r}")
    catalog = prices.catalog()
    if isinstance(catalog, str):
        problems.append(catalog)
    return {
        "frozen": is_frozen(),
        "executable": sys.executable,
        "assets": len(ASSETS) - len(missing),
        "versions": versions.detail,
        "observer": observer,
        "pydantic": validated,
        "genai_prices": catalog if isinstance(catalog, str) else catalog.version,
        "problems": problems,
    }


def main() -> int:
    """Print :func:`self_check` as JSON; exit 1 when something is missing."""
    report = self_check()
    print(json.dumps(report, indent=2))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
