"""PyInstaller entry point for ``mity-cost-tray``."""

from mity_cost.frozen import prepare

prepare()

from mity_cost.app import main  # noqa: E402

raise SystemExit(main())
