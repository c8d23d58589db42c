"""``record-llm``, ``record-execution``, ``update-infra``, ``save-feature`` as real subprocesses."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mity_cost.core.factory import rules
from mity_cost.core.factory.loading import LoadedFeature, LoadedSession, load_feature, load_session
from tests.cli.cli_helpers import run_cli as run

SMALL = "c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81"


def _session(root: Path, session_id: str) -> LoadedSession:
    result = load_session(root / ".mity/chat" / session_id / "cost.json")
    assert isinstance(result, LoadedSession), result.describe()
    return result


def _raw(root: Path, session_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((root / ".mity/chat" / session_id / "cost.json").read_bytes())
    return doc


def test_record_llm_starts_a_session_and_prints_the_record(empty_root: Path) -> None:
    done = run(
        "record-llm", "--root", str(empty_root), "--session", "s1", "--model", "GPT-5-mini",
        "--input-tokens", "1200", "--output-tokens", "340", "--agent", "Analyst", "--station", "design",
        "--feature", "login", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["model"] == "gpt5mini"
    assert record["cost"] == rules.factory_llm_cost("gpt5mini", 1200, 340)
    assert (record["agent"], record["station"], record["feature"]) == ("Analyst", "design", "login")
    session = _session(empty_root, "s1")
    assert session.consistency.consistent
    assert session.doc["sessionCost"]["breakdown"]["llm"]["expected"] == record["cost"]
    assert [r["id"] for r in session.doc["llmUsage"]] == [record["id"]]


def test_record_llm_with_a_model_the_factory_does_not_know(example_root: Path) -> None:
    done = run(
        "record-llm", "--root", str(example_root), "--session", SMALL, "--model", "gpt-4o",
        "--input-tokens", "1000", "--output-tokens", "1000",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "gpt-4o (unknown to the factory)" in done.stdout
    doc = _raw(example_root, SMALL)
    assert doc["llmUsage"][-1]["model"] == {"unknown": "gpt-4o"}
    assert doc["llmUsage"][-1]["cost"] == pytest.approx(0.04)
    assert _session(example_root, SMALL).consistency.consistent
    summary = json.loads(run("summary", "--root", str(example_root), "--session", SMALL, "--json").stdout)[0]
    assert summary["llmCalls"] == 7


@pytest.mark.parametrize(
    "args",
    [
        ["--input-tokens", "-1", "--output-tokens", "5"],
        ["--input-tokens", "abc", "--output-tokens", "5"],
        ["--input-tokens", "1.5", "--output-tokens", "5"],
        ["--input-tokens", str(2**64), "--output-tokens", "5"],
        ["--output-tokens", "5"],
    ],
    ids=["negative", "text", "fraction", "too-big", "missing"],
)
def test_record_llm_refuses_bad_token_counts(empty_root: Path, args: list[str]) -> None:
    done = run("record-llm", "--root", str(empty_root), "--session", "s1", "--model", "gpt-5-mini", *args)
    assert done.returncode == 2
    assert done.stderr.strip()
    assert not (empty_root / ".mity").exists()


@pytest.mark.parametrize("session", ["../escape", "a/b", "..", ""])
def test_record_llm_refuses_session_ids_that_are_not_names(empty_root: Path, session: str) -> None:
    done = run("record-llm", "--root", str(empty_root), "--session", session, "--model", "x",
               "--input-tokens", "1", "--output-tokens", "1")  # fmt: skip
    assert done.returncode == 2 and "session" in done.stderr


def test_a_broken_session_file_is_never_overwritten(example_root: Path) -> None:
    path = example_root / ".mity/chat" / SMALL / "cost.json"
    path.write_text('{"sessionId": "c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81", "llmUsage": "nope"}')
    before = path.read_bytes()
    done = run("record-llm", "--root", str(example_root), "--session", SMALL, "--model", "gpt-5-mini",
               "--input-tokens", "1", "--output-tokens", "1")  # fmt: skip
    assert done.returncode == 2
    assert str(path) in done.stderr
    assert path.read_bytes() == before


def test_a_missing_root_is_refused(tmp_path: Path) -> None:
    done = run("record-execution", "--root", str(tmp_path / "nowhere"), "--session", "s", "--type", "test")
    assert done.returncode == 2 and "nowhere" in done.stderr


def test_two_roots_are_refused_when_writing(example_root: Path, empty_root: Path) -> None:
    done = run("record-execution", "--root", str(example_root), "--root", str(empty_root), "--session", "s",
               "--type", "test")  # fmt: skip
    assert done.returncode == 2 and "one --root" in done.stderr


def test_record_execution_adds_its_range_to_compute(example_root: Path) -> None:
    before = _raw(example_root, SMALL)["sessionCost"]["breakdown"]["compute"]
    done = run(
        "record-execution",
        "--root",
        str(example_root),
        "--session",
        SMALL,
        "--type",
        "build",
        "--cloud",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    execution = json.loads(done.stdout)
    assert execution == rules.execution_preset("build", cloud=True)
    after = _raw(example_root, SMALL)["sessionCost"]["breakdown"]["compute"]
    for key in ("min", "expected", "max"):
        assert after[key] == pytest.approx(before[key] + execution["cost"][key])
    local = run("record-execution", "--root", str(example_root), "--session", SMALL, "--type", "scan")
    assert local.returncode == 0 and "local security-scan" in local.stdout
    assert len(_session(example_root, SMALL).doc["executionCosts"]) == 3


def test_record_execution_refuses_an_unknown_type(example_root: Path) -> None:
    done = run("record-execution", "--root", str(example_root), "--session", SMALL, "--type", "deploy")
    assert done.returncode == 2 and "deploy" in done.stderr


def test_update_infra_sets_the_monthly_estimate(example_root: Path) -> None:
    done = run(
        "update-infra", "--root", str(example_root), "--session", SMALL, "--template", "fullstack_small"
    )
    assert done.returncode == 0, done.stderr
    assert "$27.50 / $51.00 / $98.00 per month" in done.stdout
    infra = _session(example_root, SMALL).doc["infraCost"]
    assert (infra["total"]["min"], infra["total"]["expected"], infra["total"]["max"]) == (27.5, 51.0, 98.0)
    bad = run("update-infra", "--root", str(example_root), "--session", SMALL, "--template", "mainframe")
    assert bad.returncode == 2 and "backend_api_small" in bad.stderr


def test_save_feature_writes_the_factorys_file(example_root: Path) -> None:
    done = run(
        "save-feature", "--root", str(example_root), "--app", "shop-api", "--feature", "Payments & Refunds",
        "--name", "Payments", "--one-time", "llm=0.2", "--one-time", "compute=0,0.01,0.02",
        "--monthly", "storage=1,2,5", "--assumption", "Stripe", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout)
    path = example_root / "workspaces/shop-api/.mity/cost/features/payments-refunds.json"
    assert written["path"] == str(path)
    feature = load_feature(path, "shop-api")
    assert isinstance(feature, LoadedFeature)
    total = feature.doc["oneTimeCost"]["total"]
    assert (total["min"], total["max"]) == (0.2, 0.22) and math.isclose(total["expected"], 0.21)
    assert feature.doc["oneTimeCost"]["assumptions"] == ["Stripe"]
    apps = json.loads(run("features", "--root", str(example_root), "--app", "shop-api", "--json").stdout)
    summaries = [f["summary"] for f in apps[0]["features"]]
    assert "Feature 'Payments & Refunds': ~$0.21 one-time + ~$2.00/month" in summaries


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--one-time", "llm=2,1,3"], "--one-time llm"),
        (["--one-time", "llm"], "CATEGORY=AMOUNT"),
        (["--one-time", "gpu=1"], "gpu"),
        (["--monthly", "storage=-1"], "--monthly storage"),
        (["--one-time", "llm=1", "--one-time", "llm=2"], "twice"),
        (["--currency", "GBP"], "GBP"),
        (["--confidence", "2"], "confidence"),
    ],
)
def test_save_feature_refuses_bad_input(example_root: Path, args: list[str], message: str) -> None:
    done = run(
        "save-feature",
        "--root",
        str(example_root),
        "--app",
        "landing",
        "--feature",
        "X",
        "--name",
        "X",
        *args,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert not (example_root / "workspaces/landing/.mity/cost/features/x.json").exists()


def test_save_feature_refuses_an_app_name_that_is_a_path(example_root: Path) -> None:
    done = run(
        "save-feature", "--root", str(example_root), "--app", "../evil", "--feature", "X", "--name", "X"
    )
    assert done.returncode == 2 and "app name" in done.stderr


def test_concurrent_record_llm_processes_lose_nothing(empty_root: Path) -> None:
    command = [sys.executable, "-m", "mity_cost", "record-llm", "--root", str(empty_root),
               "--session", "busy", "--model", "claude-sonnet-4.5", "--input-tokens", "100",
               "--output-tokens", "10"]  # fmt: skip
    procs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(12)]
    codes = [p.wait(timeout=120) for p in procs]
    for p in procs:
        assert p.stderr is not None
        p.stderr.close()
    assert codes == [0] * 12
    session = _session(empty_root, "busy")
    assert len(session.doc["llmUsage"]) == 12
    assert len({r["id"] for r in session.doc["llmUsage"]}) == 12
    assert session.consistency.consistent


def test_writing_in_the_current_folder_by_default(empty_root: Path) -> None:
    done = run("record-execution", "--session", "here", "--type", "iac", cwd=empty_root)
    assert done.returncode == 0, done.stderr
    assert (empty_root / ".mity/chat/here/cost.json").is_file()
