"""PyInstaller entry point for ``mity-cost``."""

from mity_cost.frozen import handle_module_reentry

handle_module_reentry()

from mity_cost.cli import main  # noqa: E402

raise SystemExit(main())
