"""PyInstaller entry point for ``mity-cost``."""

from mity_cost.frozen import prepare

prepare()

from mity_cost.cli import main  # noqa: E402

raise SystemExit(main())
