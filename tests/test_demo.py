from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mity_cost import demo
from mity_cost.core.factory import layout
from mity_cost.core.factory.loading import LoadedSession, load_root, load_session
from tests.conftest import EXAMPLE_ROOT


def test_extracted_workspace_equals_the_spec_examples(tmp_path: Path) -> None:
    root = demo.extract_workspace(tmp_path / "demo")
    extracted = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    expected = sorted(p.relative_to(EXAMPLE_ROOT) for p in EXAMPLE_ROOT.rglob("*") if p.is_file())
    assert extracted == expected
    for rel in expected:
        assert (root / rel).read_bytes() == (EXAMPLE_ROOT / rel).read_bytes()
    snapshot = load_root(root)
    assert len(snapshot.sessions) == 6 and len(snapshot.features) == 3 and not snapshot.errors


def test_simulator_writes_a_growing_consistent_session(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    sim = demo.Simulator(root, interval=0, plain_write_every=3, rng=random.Random(7))
    totals = []
    for _ in range(12):
        sim.step()
        loaded = load_session(layout.session_path(root, sim.session_id))
        assert isinstance(loaded, LoadedSession), loaded
        assert loaded.consistency.consistent, loaded.consistency.describe()
        totals.append(loaded.doc["sessionCost"]["total"]["expected"])
    assert totals == sorted(totals) and totals[-1] > 0
    doc = json.loads(layout.session_path(root, sim.session_id).read_text())
    assert doc["infraCost"]["total"] == {"min": 26.0, "expected": 47.0, "max": 85.0}
    assert len(doc["llmUsage"]) + len(doc["executionCosts"]) == 11


def test_simulator_stops_spending_while_paused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    sim = demo.Simulator(root, interval=0, rng=random.Random(1))
    sim.step()
    session_dir = layout.session_path(root, sim.session_id).parent
    (session_dir / layout.DECISION_FILE).write_text(json.dumps({"decision": "pause"}))
    assert demo._paused(session_dir)
    (session_dir / layout.DECISION_FILE).write_text(json.dumps({"decision": "continue"}))
    assert not demo._paused(session_dir)
    (session_dir / layout.DECISION_FILE).write_text("{half")
    assert not demo._paused(session_dir)


@pytest.mark.slow
def test_demo_process_runs_steps_then_exits(tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mity_cost.demo",
            "--root",
            str(root),
            "--extract",
            "--interval",
            "0",
            "--steps",
            "5",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("[demo factory]") == 6
    assert len(load_root(root).sessions) == 7
