"""``python -m mity_cost``: the command line."""

from mity_cost.cli import main

raise SystemExit(main())
