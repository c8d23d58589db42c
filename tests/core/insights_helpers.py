"""A world for the insights, budgets-panel and details-window tests: the example sessions (two of them
in the app ``shop-api``), ten earlier days of history, three budgets that nest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.pricing.prices import Override, PriceBook
from mity_cost.core.settings import Settings
from mity_cost.core.spending.budgets import Budget, save_budgets
from mity_cost.core.spending.history import History
from mity_cost.core.spending.insights import Insights, compute_insights
from tests.core.breakdown_helpers import BIGGEST, WITH_INFRA, snapshot_of
from tests.core.history_helpers import row

NOW = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
"""The afternoon of the example sessions' day (their records are dated 2026-11-22)."""
APP = "shop-api"
BUDGETS = (
    Budget("app", APP, "month", 40.0),
    Budget("overall", None, "day", 18.0, enforcement="hard_stop"),
    Budget("session", None, "session", 3.0),
)
EARLIER_DAYS = 10


class World(NamedTuple):
    snapshot: Snapshot
    history: History
    budget_path: Path


def book() -> PriceBook:
    """A price book without the catalogue: gpt41 at 1.5x the factory's table, the rest unpriced."""
    return PriceBook(overrides={"gpt41": Override(3.0, 12.0)}, use_catalog=False)


def shop_api_root(root: Path) -> Path:
    """Name shop-api in the runtime.json of two example sessions (the factory's readyInfo.appPath)."""
    for session_id in (BIGGEST, WITH_INFRA):
        runtime = {"runState": "readyToTest", "readyInfo": {"appPath": f"C:\\work\\workspaces\\{APP}"}}
        (root / ".mity" / "chat" / session_id / "runtime.json").write_text(json.dumps(runtime))
    return root


def make_world(example_root: Path, folder: Path, budgets: tuple[Budget, ...] = BUDGETS) -> World:
    """The snapshot, a history in ``folder`` (UTC days) with the earlier days, and the budgets file."""
    snapshot = snapshot_of(shop_api_root(example_root))
    history = History(folder / "history.sqlite3", tz=UTC)
    earlier = [
        row(f"llm:old-{i}", NOW - timedelta(days=i), 0.5 + 0.1 * i, session="old", app=APP)
        for i in range(1, EARLIER_DAYS + 1)
    ]
    history.ingest_rows(earlier, now=NOW)
    budget_path = folder / "budgets.json"
    save_budgets(budgets, budget_path)
    return World(snapshot, history, budget_path)


def compute(world: World, session_id: str | None = BIGGEST, **kwargs: object) -> Insights:
    """``compute_insights`` on the world at ``NOW`` with :func:`book` (keyword arguments win)."""
    snapshot, history, budget_path = world
    options: dict[str, object] = {"book": book(), "now": NOW, "budget_path": budget_path, **kwargs}
    return compute_insights(snapshot, Settings(), session_id, history, **options)  # type: ignore[arg-type]
