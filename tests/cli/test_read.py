"""``summary``, ``show``, ``features``, ``export`` as real subprocesses on copies of the sample roots."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_helpers import run_cli as run
from tests.conftest import EXAMPLES

EXPECTED = {
    item["sessionId"]: item
    for item in map(json.loads, (EXAMPLES / "expected-summaries.jsonl").read_text().splitlines())
}
EXPECTED_FEATURES = [
    json.loads(line) for line in (EXAMPLES / "expected-features.jsonl").read_text().splitlines()
]
RICH = "5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91"
SMALL = "c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81"
SUMMARY_KEYS = {
    "totalExpected", "totalMin", "totalMax", "llmCost", "computeCost", "monthlyInfra", "currency", "llmCalls",
    "totalTokens", "exceedsThreshold", "threshold", "summary", "llmIncluded", "sessionId", "root",
}  # fmt: skip


def run_json(*args: str, env: dict[str, str] | None = None, code: int = 0) -> Any:
    done = run(*args, "--json", env=env)
    assert done.returncode == code, done.stderr
    return json.loads(done.stdout)


def _session_file(root: Path, session_id: str) -> Path:
    return root / ".mity" / "chat" / session_id / "cost.json"


# ------------------------------------------------------------------ summary


def test_summary_json_matches_expected_summaries_figure_for_figure(example_root: Path) -> None:
    items = run_json("summary", "--root", str(example_root))
    assert sorted(i["sessionId"] for i in items) == sorted(EXPECTED)
    for item in items:
        assert set(item) == SUMMARY_KEYS
        assert item["root"] == str(example_root)
        expected = EXPECTED[item["sessionId"]]
        assert {k: item[k] for k in expected} == expected
        assert item["threshold"] == 1.0
        assert item["exceedsThreshold"] == (item["totalExpected"] > 1.0)


def test_summary_json_matches_the_factorys_runtime_json(real_root: Path) -> None:
    items = run_json("summary", "--root", str(real_root))
    assert len(items) == 4
    for item in items:
        runtime = json.loads((real_root / ".mity/chat" / item["sessionId"] / "runtime.json").read_bytes())
        factory = runtime["costSummary"]
        assert {k: item[k] for k in factory if k not in ("threshold", "exceedsThreshold")} == {
            k: v for k, v in factory.items() if k not in ("threshold", "exceedsThreshold")
        }


def test_summary_of_one_session_and_of_several_roots(example_root: Path, real_root: Path) -> None:
    items = run_json("summary", "--root", str(example_root), "--session", SMALL)
    assert [i["sessionId"] for i in items] == [SMALL]
    both = run_json("summary", "--root", str(real_root), "--root", str(example_root))
    assert len(both) == 10
    assert {i["root"] for i in both} == {str(real_root), str(example_root)}


def test_summary_table_is_readable(example_root: Path) -> None:
    done = run("summary", "--root", str(example_root), env={"MITY_COST_THRESHOLD": "3"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["session", "min", "expected", "max"]
    rich = next(line for line in lines if line.startswith(RICH))
    assert "$2.93" in rich and "$2.95" in rich and "$2.97" in rich and "$47.00/mo" in rich
    assert rich.split()[-1] == "ok"
    big = next(line for line in lines if line.startswith("e9f1a3b5"))
    assert big.split()[-1] == "OVER"
    assert "threshold $3.00" in done.stdout


def test_summary_uses_the_environment(example_root: Path) -> None:
    env = {"MITY_COST_CURRENCY": "eur", "MITY_COST_THRESHOLD": "2.6", "MITY_COST_LLM_ENABLED": "YES"}
    items = {i["sessionId"]: i for i in run_json("summary", "--root", str(example_root), env=env)}
    rich = items[RICH]
    assert rich["currency"] == "€"
    assert rich["totalExpected"] == pytest.approx(EXPECTED[RICH]["totalExpected"] * 0.86)
    assert rich["threshold"] == 2.6
    assert rich["exceedsThreshold"] is False  # 2.54 EUR
    assert rich["summary"].startswith("Session: €2.54 ")
    done = run("summary", "--root", str(example_root), env={"MITY_COST_CURRENCY": "eur"})
    assert "note: converted from USD at 1 USD = 0.86 EUR (settings)" in done.stdout


def test_llm_costs_can_be_left_out(example_root: Path) -> None:
    items = {
        i["sessionId"]: i
        for i in run_json("summary", "--root", str(example_root), env={"MITY_COST_LLM_ENABLED": "0"})
    }
    assert items[RICH]["totalExpected"] == pytest.approx(EXPECTED[RICH]["computeCost"])
    assert items[RICH]["llmIncluded"] is False
    done = run("summary", "--root", str(example_root), env={"MITY_COST_LLM_ENABLED": "off"})
    assert "LLM costs are left out" in done.stdout


def test_invalid_settings_are_reported_and_defaults_used(example_root: Path) -> None:
    done = run("summary", "--root", str(example_root), "--json", env={"MITY_COST_THRESHOLD": "lots"})
    assert done.returncode == 0
    assert "MITY_COST_THRESHOLD='lots'" in done.stderr
    assert {i["threshold"] for i in json.loads(done.stdout)} == {1.0}


def test_bad_files_are_named_and_the_others_still_print(example_root: Path) -> None:
    cut = _session_file(example_root, SMALL)
    cut.write_bytes(cut.read_bytes()[:300])
    wrong = _session_file(example_root, RICH)
    doc = json.loads(wrong.read_bytes())
    doc["llmUsage"][3]["cost"] = -1
    wrong.write_text(json.dumps(doc))
    done = run("summary", "--root", str(example_root), "--json")
    assert done.returncode == 2
    items = json.loads(done.stdout)
    assert sorted(i["sessionId"] for i in items) == sorted(set(EXPECTED) - {SMALL, RICH})
    assert f"{cut}: incomplete" in done.stderr
    assert f"{wrong}: invalid at llmUsage.3.cost" in done.stderr
    table = run("summary", "--root", str(example_root))
    assert table.returncode == 2
    assert "e9f1a3b5-c7d9-4e1f-a3b5-c7d9e1f3a5b7" in table.stdout


def test_a_missing_root_or_session_is_bad_input(example_root: Path, tmp_path: Path) -> None:
    done = run("summary", "--root", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "not an existing folder" in done.stderr
    done = run("summary", "--root", str(example_root), "--session", "nope")
    assert done.returncode == 2 and "no session 'nope'" in done.stderr
    done = run("summary", "--root", str(example_root), "--session", "../etc")
    assert done.returncode == 2


def test_an_empty_root_has_no_sessions(empty_root: Path) -> None:
    assert run_json("summary", "--root", str(empty_root)) == []
    done = run("summary", "--root", str(empty_root))
    assert done.returncode == 0 and "no sessions" in done.stdout


def test_the_current_folder_is_the_default_root(example_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mity_cost", "summary", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=example_root,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == len(EXPECTED)


# ------------------------------------------------------------------ show


def test_show_json_has_the_whole_breakdown(example_root: Path) -> None:
    data = run_json("show", "--root", str(example_root), "--session", RICH)
    raw = json.loads(_session_file(example_root, RICH).read_bytes())
    ledger = raw["sessionCost"]
    assert data["sessionId"] == RICH and data["currency"] == "USD" and data["conversionNote"] is None
    assert data["total"] == {k: ledger["total"][k] for k in ("min", "expected", "max")}
    assert data["total"]["min"] < data["total"]["expected"] < data["total"]["max"]  # never collapsed
    assert data["breakdown"]["compute"]["max"] == ledger["breakdown"]["compute"]["max"]
    assert {k: v for k, v in data["summary"].items() if k in EXPECTED[RICH]} == EXPECTED[RICH]
    assert sum(g["calls"] for g in data["byModel"]) == len(raw["llmUsage"])
    assert math.fsum(g["cost"] for g in data["byAgent"]) == pytest.approx(
        ledger["breakdown"]["llm"]["expected"]
    )
    unknown = {g["label"] for g in data["byModel"] if g["unknownModel"]}
    assert unknown == {"gpt-4o", "llama-3-70b"}
    assert {g["key"] for g in data["byStation"]} >= {"(none)", "design"}
    assert sum(e["runs"] for e in data["executions"]) == len(raw["executionCosts"])
    infra = data["monthlyInfra"]
    assert infra["total"] == {"min": 26.0, "expected": 47.0, "max": 85.0}
    assert infra["assumptions"] == raw["infraCost"]["assumptions"]
    assert data["consistency"]["consistent"] is True
    assert data["factoryThreshold"] == 5.0 and data["threshold"] == 1.0
    assert "currentPrices" not in data


def test_show_text_has_every_section(example_root: Path) -> None:
    done = run("show", "--root", str(example_root), "--session", RICH)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in (
        "Ledger (min / expected / max)",
        "LLM calls by model",
        "LLM calls by agent",
        "LLM calls by station",
        "LLM calls by feature",
        "Executions by type",
        "Monthly infrastructure",
    ):
        assert heading in out
    assert "Session: $2.95 (±1%) | Monthly: $47.00/mo (±63%)" in out
    assert "gpt-4o (unknown to the factory)" in out
    assert "$2.93 / $2.95 / $2.97 (min / expected / max)" in out
    assert "Small managed database (e.g., Azure SQL Basic)" in out
    assert "confirmationThreshold: $5.00 (shown, not used)" in out


def test_show_flags_an_inconsistent_ledger_with_both_numbers(example_root: Path) -> None:
    path = _session_file(example_root, SMALL)
    doc = json.loads(path.read_bytes())
    records = math.fsum(r["cost"] for r in doc["llmUsage"])
    doc["sessionCost"]["breakdown"]["llm"].update(min=1.0, expected=1.0, max=1.0)
    doc["sessionCost"]["total"].update(min=1.025, expected=1.05, max=1.075)
    doc["llmUsage"].append(doc["llmUsage"][0])
    path.write_text(json.dumps(doc))
    data = run_json("show", "--root", str(example_root), "--session", SMALL)
    consistency = data["consistency"]
    assert consistency["consistent"] is False
    assert consistency["ledgerLlm"] == 1.0
    assert consistency["recordsLlm"] == pytest.approx(records + doc["llmUsage"][0]["cost"])
    assert consistency["duplicateIds"] == [doc["llmUsage"][0]["id"]]
    assert data["total"]["expected"] == 1.05  # the ledger's figure is shown
    text = run("show", "--root", str(example_root), "--session", SMALL).stdout
    assert "INCONSISTENT: ledger LLM cost 1.000000 but its records sum to" in text
    summary = run("summary", "--root", str(example_root)).stdout
    assert f"{SMALL}: inconsistent" in summary


def test_show_in_euros_without_llm_says_so(example_root: Path) -> None:
    env = {"MITY_COST_CURRENCY": "EUR", "MITY_COST_LLM_ENABLED": "false"}
    done = run("show", "--root", str(example_root), "--session", RICH, env=env)
    assert done.returncode == 0
    assert "converted from USD at 1 USD = 0.86 EUR" in done.stdout
    assert "LLM costs are left out of the totals" in done.stdout
    assert "llm (left out)" in done.stdout
    assert "€" in done.stdout and "$" not in done.stdout.replace("MITY_COST", "")


def test_show_detailed_puts_current_prices_beside_the_factorys(example_root: Path) -> None:
    path = _session_file(example_root, SMALL)
    doc = json.loads(path.read_bytes())
    odd = {**doc["llmUsage"][0], "id": "odd-1", "model": {"unknown": "no-such-model-zz9"}, "cost": 0.5}
    doc["llmUsage"].append(odd)
    for item in (doc["sessionCost"]["breakdown"]["llm"], doc["sessionCost"]["total"]):
        for key in ("min", "expected", "max"):
            item[key] += 0.5
    path.write_text(json.dumps(doc))
    data = run_json("show", "--root", str(example_root), "--session", SMALL, "--detailed")
    prices = {p["label"]: p for p in data["currentPrices"]}
    assert set(prices) == {g["label"] for g in data["byModel"]}, data.get("priceNotes")
    by_model = {g["label"]: g for g in data["byModel"]}
    for label, price in prices.items():
        assert price["factoryCost"] == pytest.approx(by_model[label]["cost"])
        assert price["source"]
        if price["currentCost"] is not None:
            assert price["currentCost"] > 0 and price["asOf"]
            assert price["difference"] == pytest.approx(price["currentCost"] - price["factoryCost"])
    assert prices["gpt52"]["currentCost"] is not None
    odd_price = prices["no-such-model-zz9"]
    assert (
        odd_price["currentCost"] is None and odd_price["priced"] is False and odd_price["difference"] is None
    )
    text = run("show", "--root", str(example_root), "--session", SMALL, "--detailed").stdout
    section = text.split("Current list prices")[1]
    row = next(line for line in section.splitlines() if line.startswith("no-such-model-zz9 "))
    assert row.split()[1:4] == ["1", "$0.50", "unpriced"]
    assert "unpriced: no current list price is known" in section


def test_show_a_missing_session_is_bad_input(example_root: Path) -> None:
    done = run("show", "--root", str(example_root), "--session", "nope")
    assert done.returncode == 2 and "no session 'nope'" in done.stderr and done.stdout == ""


def test_show_a_session_whose_file_is_a_folder(example_root: Path) -> None:
    folder = example_root / ".mity/chat/odd"
    (folder / "cost.json").mkdir(parents=True)
    done = run("show", "--root", str(example_root), "--session", "odd")
    assert done.returncode == 2 and "not a regular file" in done.stderr


# ------------------------------------------------------------------ features


def test_features_json_matches_expected_features(example_root: Path) -> None:
    apps = run_json("features", "--root", str(example_root))
    flat = {(f["app"], f["featureId"]): f for app in apps for f in app["features"]}
    for expected in EXPECTED_FEATURES:
        assert {k: flat[(expected["app"], expected["featureId"])][k] for k in expected} == expected
    shop = next(a for a in apps if a["app"] == "shop-api")
    assert shop["oneTime"]["expected"] == pytest.approx(0.0641 + 0.315)
    assert shop["monthly"]["min"] <= shop["monthly"]["expected"] <= shop["monthly"]["max"]


def test_features_of_one_app_as_a_table(example_root: Path) -> None:
    done = run("features", "--root", str(example_root), "--app", "landing")
    assert done.returncode == 0
    assert "Feature 'Contact form': ~$0.01 one-time cost" in done.stdout
    assert "shop-api" not in done.stdout
    assert run_json("features", "--root", str(example_root), "--app", "nope") == []


def test_a_bad_feature_file_is_named(example_root: Path) -> None:
    bad = example_root / "workspaces/landing/.mity/cost/features/contact-form.json"
    bad.write_text("{")
    done = run("features", "--root", str(example_root), "--json")
    assert done.returncode == 2
    assert f"{bad}: incomplete" in done.stderr
    assert {a["app"] for a in json.loads(done.stdout)} == {"shop-api"}


# ------------------------------------------------------------------ export


def _counts(root: Path) -> tuple[int, int]:
    llm = runs = 0
    for path in root.glob(".mity/chat/*/cost.json"):
        doc = json.loads(path.read_bytes())
        llm += len(doc["llmUsage"])
        runs += len(doc["executionCosts"])
    return llm, runs


def test_export_json_has_every_record_flat(example_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "export.json"
    done = run("export", "--root", str(example_root), "--format", "json", "--output", str(out))
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_bytes())
    llm, runs = _counts(example_root)
    assert len(rows) == llm + runs
    assert sum(r["kind"] == "llm" for r in rows) == llm
    first = next(r for r in rows if r["sessionId"] == RICH and r["kind"] == "llm")
    raw = json.loads(_session_file(example_root, RICH).read_bytes())["llmUsage"][0]
    assert first["id"] == raw["id"] and first["timestamp"] == raw["timestamp"]
    assert first["costMin"] == first["costExpected"] == first["costMax"] == raw["cost"]
    assert first["tokens"] == raw["inputTokens"] + raw["outputTokens"]
    execution = next(r for r in rows if r["kind"] == "execution")
    assert execution["timestamp"] is None and execution["id"].startswith("executionCosts[")
    assert execution["costMin"] <= execution["costExpected"] <= execution["costMax"]
    assert any(r["model"] == "unknown:gpt-4o" for r in rows)
    assert list(out.parent.iterdir()) == [out]  # written atomically: no temporary file left


def test_export_csv_and_since(example_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    done = run(
        "export",
        "--root",
        str(example_root),
        "--format",
        "csv",
        "--output",
        str(out),
        "--since",
        "2026-11-22T12:02:00Z",
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows and all(r["kind"] in ("llm", "execution") for r in rows)
    assert all(r["timestamp"] >= "2026-11-22T12:02:00" for r in rows if r["kind"] == "llm")
    assert {r["isLocal"] for r in rows if r["kind"] == "execution"} <= {"true", "false"}
    everything = run("export", "--root", str(example_root), "--format", "csv", "--output", "-")
    all_rows = list(csv.DictReader(io.StringIO(everything.stdout)))
    assert len(all_rows) == sum(_counts(example_root))
    assert len(rows) < len(all_rows)


def test_export_with_a_bad_file_writes_the_rest_and_exits_2(example_root: Path, tmp_path: Path) -> None:
    bad = _session_file(example_root, RICH)
    bad.write_bytes(b"")
    out = tmp_path / "export.json"
    done = run("export", "--root", str(example_root), "--format", "json", "--output", str(out))
    assert done.returncode == 2
    assert f"{bad}: incomplete" in done.stderr
    rows = json.loads(out.read_bytes())
    assert rows and RICH not in {r["sessionId"] for r in rows}


def test_export_refuses_a_bad_date(example_root: Path, tmp_path: Path) -> None:
    done = run(
        "export",
        "--root",
        str(example_root),
        "--format",
        "json",
        "--output",
        str(tmp_path / "x"),
        "--since",
        "soon",
    )
    assert done.returncode == 2 and "soon" in done.stderr
    assert not (tmp_path / "x").exists()
