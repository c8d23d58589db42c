"""Sessions, views and snapshots with chosen totals, for the tray, notification and app tests."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from mity_cost.core.factory.loading import LoadedSession, LoadError, parse_session
from mity_cost.core.live.snapshot import SessionView, Snapshot, WatchStatus
from tests.conftest import EXAMPLE_ROOT

_EMPTY_SESSION = EXAMPLE_ROOT / ".mity" / "chat" / "0d1e2f3a-4b5c-4d6e-8f7a-8b9c0d1e2f3a" / "cost.json"


def session_doc(
    session_id: str, expected: float, spread: float = 0.0, currency: str = "USD"
) -> dict[str, Any]:
    """A valid session document whose total is ``expected`` (± ``spread``), all of it compute."""
    doc: dict[str, Any] = copy.deepcopy(json.loads(_EMPTY_SESSION.read_bytes()))
    doc["sessionId"] = session_id
    doc["currency"] = currency
    doc["sessionCost"]["currency"] = currency
    item = {"min": max(0.0, expected - spread), "expected": expected, "max": expected + spread}
    doc["sessionCost"]["breakdown"]["compute"] = dict(item)
    doc["sessionCost"]["total"] = dict(item)
    return doc


def loaded_session(
    session_id: str, expected: float, spread: float = 0.0, currency: str = "USD"
) -> LoadedSession:
    """The document above, parsed as the watcher would."""
    data = json.dumps(session_doc(session_id, expected, spread, currency)).encode()
    result = parse_session(data, Path(f"/factory/.mity/chat/{session_id}/cost.json"))
    assert isinstance(result, LoadedSession), result
    return result


def view(
    session_id: str,
    expected: float | None,
    *,
    spread: float = 0.0,
    updating: bool = False,
    error: LoadError | None = None,
    currency: str = "USD",
) -> SessionView:
    """A session as the watcher reports it (``expected=None``: never read successfully)."""
    root = Path("/factory")
    loaded = loaded_session(session_id, expected, spread, currency) if expected is not None else None
    return SessionView(
        key=f"{root}:{session_id}",
        root=root,
        session_dir=root / ".mity" / "chat" / session_id,
        loaded=loaded,
        error=error,
        updating=updating,
    )


def snapshot(*views: SessionView, status: WatchStatus | None = None) -> Snapshot:
    """A snapshot with these sessions, the first one active."""
    return Snapshot(sessions=tuple(views), status=status or WatchStatus(), roots=(Path("/factory"),))


def root_snapshot(root: Path) -> Snapshot:
    """Every session and feature under a root, as the watcher would report them (newest first)."""
    from mity_cost.core.factory.layout import feature_files, session_files
    from mity_cost.core.factory.loading import LoadedFeature, load_feature, load_session
    from mity_cost.core.spending.history import read_runtime

    views = []
    for found in session_files(root):
        loaded = load_session(found.path)
        assert isinstance(loaded, LoadedSession), loaded
        views.append(
            SessionView(
                key=f"{root}:{found.folder}",
                root=root,
                session_dir=found.path.parent,
                loaded=loaded,
                runtime=read_runtime(found.path.parent),
            )
        )
    views.sort(key=lambda v: v.loaded.doc["updatedAt"] if v.loaded else 0, reverse=True)
    features = [
        f for ff in feature_files(root) if isinstance(f := load_feature(ff.path, ff.app), LoadedFeature)
    ]
    return Snapshot(sessions=tuple(views), features=tuple(features), roots=(root,))


APP = "shop-api"
BIG_SESSION = "e9f1a3b5-c7d9-4e1f-a3b5-c7d9e1f3a5b7"
"""The example root's largest session (140 LLM calls)."""


def with_app(root: Path, app: str = APP, session: str = BIG_SESSION) -> Path:
    """Name the app of one session, as the factory's runtime.json does (``readyInfo.appPath``)."""
    runtime = {"readyInfo": {"appPath": str(root / "workspaces" / app)}}
    (root / ".mity" / "chat" / session / "runtime.json").write_text(json.dumps(runtime))
    return root


def app_spent(snapshot: Snapshot, folder: Path, now: datetime, app: str = APP) -> float:
    """The app's month-to-date spending, from a separate history that took in the same snapshot."""
    from mity_cost.core.spending.budgets import period_window
    from mity_cost.core.spending.history import History

    with History(folder / "probe.sqlite3") as probe:
        probe.ingest_snapshot(snapshot, now)
        start, end, _ = period_window("month", probe.today(now))
        return probe.totals("app", app, start, end).expected
