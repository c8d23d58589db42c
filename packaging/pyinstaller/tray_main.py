"""PyInstaller entry point for ``mity-cost-tray``."""

from mity_cost.frozen import handle_module_reentry

handle_module_reentry()

from mity_cost.app import main  # noqa: E402

raise SystemExit(main())
