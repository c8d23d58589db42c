"""Snapshots built from real files for the breakdown, series and details-window tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mity_cost.core.factory.layout import feature_files, session_files
from mity_cost.core.factory.loading import LoadedFeature, LoadedSession, LoadError, load_feature, load_session
from mity_cost.core.live.snapshot import SessionView, Snapshot

BIGGEST = "e9f1a3b5-c7d9-4e1f-a3b5-c7d9e1f3a5b7"
"""The example workspace's biggest session (140 calls, 2 executions)."""
WITH_INFRA = "5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91"
"""An example session with a monthly infrastructure estimate, executions and unknown models."""


def loaded(path: Path) -> LoadedSession:
    """Load a cost.json that must be good."""
    result = load_session(path)
    assert isinstance(result, LoadedSession), result
    return result


def view_of(path: Path, root: Path, **changes: Any) -> SessionView:
    """A SessionView of one cost.json, its executions first seen one minute apart before updatedAt."""
    session = loaded(path)
    runs = len(session.doc["executionCosts"])
    updated = session.doc["updatedAt"].timestamp()
    values: dict[str, Any] = {
        "key": str(path),
        "root": root,
        "session_dir": path.parent,
        "loaded": session,
        "changed_at": updated,
        "execution_seen_at": tuple(updated - 60.0 * (runs - i) for i in range(runs)),
    }
    runtime = path.parent / "runtime.json"
    if runtime.exists():
        values["runtime"] = json.loads(runtime.read_text())
    values.update(changes)
    return SessionView(**values)


def features_of(root: Path) -> tuple[LoadedFeature, ...]:
    """Every good feature file under the root."""
    found = []
    for entry in feature_files(root):
        feature = load_feature(entry.path, entry.app)
        assert not isinstance(feature, LoadError), feature
        found.append(feature)
    return tuple(found)


def snapshot_of(root: Path) -> Snapshot:
    """Every session under the root, the most recently updated first, with the feature files."""
    views = [view_of(entry.path, root) for entry in session_files(root)]
    views.sort(key=lambda v: -v.changed_at)
    return Snapshot(tuple(views), features_of(root), (), roots=(root,))


def session_file(root: Path, session_id: str) -> Path:
    """The cost.json of a session under the root."""
    return root / ".mity" / "chat" / session_id / "cost.json"


def rewrite(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    """Apply ``change`` to the raw JSON of a file and write it back."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def add_call(
    doc: dict[str, Any],
    model: str | dict[str, str] = "gpt41",
    input_tokens: int = 1000,
    output_tokens: int = 500,
    cost: float = 0.006,
    agent: str | None = "Tester",
    timestamp: str = "2026-11-22T15:30:00.000000Z",
    record_id: str | None = None,
) -> dict[str, Any]:
    """Append an LLM record and add its cost to the ledger, as the factory does."""
    record: dict[str, Any] = {
        "id": record_id or str(uuid.uuid4()),
        "model": model,
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "cost": cost,
        "timestamp": timestamp,
    }
    if agent is not None:
        record["agent"] = agent
    doc["llmUsage"].append(record)
    ledger = doc["sessionCost"]
    for item in (ledger["breakdown"]["llm"], ledger["total"]):
        for key in ("min", "expected", "max"):
            item[key] += cost
    return record
