"""``estimate``, ``audit`` and ``prices`` run as real subprocesses on copies of the sample roots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mity_cost.core import paths
from mity_cost.core.factory.documents import KNOWN_MODELS
from mity_cost.core.factory.layout import session_files
from mity_cost.core.pricing.estimate import estimate
from mity_cost.core.pricing.prices import PriceBook
from tests.cli.cli_helpers import run_cli as run

pytestmark = pytest.mark.slow

UNKNOWN = "no-such-model-xyz-123"


def test_estimate_json_matches_the_core_estimate() -> None:
    done = run("estimate", "--model", "gpt-5-mini", "--input-tokens", "12,000", "--calls", "3", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    expected = estimate("gpt-5-mini", 12_000, None, 3, PriceBook.load())
    assert data["expected"] == pytest.approx(expected.expected)
    assert (data["min"], data["max"]) == pytest.approx((expected.min, expected.max))
    assert data["basis"] == "list price"
    assert data["calls"] == 3 and data["inputTokens"] == 12_000
    assert {s["kind"] for s in data["suggestions"]} >= {"prompt-caching", "batching"}


def test_estimate_text_states_assumptions_and_unpriced() -> None:
    done = run("estimate", "--model", UNKNOWN, "--input-tokens", "1000")
    assert done.returncode == 0, done.stderr
    assert "unpriced" in done.stdout
    assert "Assumptions:" in done.stdout
    assert "output tokens not given" in done.stdout
    assert "fallback price" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--model", "gpt5mini", "--input-tokens", "-5"),
        ("--model", "gpt5mini", "--input-tokens", "lots"),
        ("--model", "gpt5mini", "--input-tokens", "10", "--calls", "0"),
        ("--model", " ", "--input-tokens", "10"),
        ("--input-tokens", "10"),
    ],
)
def test_estimate_bad_usage_exits_2(args: tuple[str, ...]) -> None:
    done = run("estimate", *args)
    assert done.returncode == 2
    assert done.stderr


def test_audit_json_covers_every_session(example_root: Path) -> None:
    done = run("audit", "--root", str(example_root), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert len(data["sessions"]) == len(session_files(example_root))
    assert data["priceSource"].startswith("genai-prices")
    for session in data["sessions"]:
        for model in session["models"]:
            if not model["priced"]:
                assert model["currentCost"] is None and not model["flagged"]
                assert model["model"] in session["unpriced"]
            if model["flagged"]:
                assert abs(model["differencePercent"] or float("inf")) > 10


def test_audit_text_flags_and_lists_unpriced(example_root: Path) -> None:
    done = run("audit", "--root", str(example_root))
    assert done.returncode == 0, done.stderr
    data = json.loads(run("audit", "--root", str(example_root), "--json").stdout)
    for session in data["sessions"]:
        assert f"Session {session['sessionId']}" in done.stdout
        for key in session["unpriced"]:
            label = next(m["label"] for m in session["models"] if m["model"] == key)
            assert f"? {label}:" in done.stdout
        for key in session["flagged"]:
            label = next(m["label"] for m in session["models"] if m["model"] == key)
            assert f"! {label}:" in done.stdout


def test_audit_one_session_and_a_missing_one(example_root: Path) -> None:
    wanted = session_files(example_root)[0].folder
    done = run("audit", "--root", str(example_root), "--session", wanted, "--json")
    assert done.returncode == 0, done.stderr
    assert [s["sessionId"] for s in json.loads(done.stdout)["sessions"]] == [wanted]
    missing = run("audit", "--root", str(example_root), "--session", "not-there")
    assert missing.returncode == 2
    assert "not-there" in missing.stderr


def test_audit_with_an_override_and_a_broken_override(example_root: Path) -> None:
    override = paths.price_override_file()
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(json.dumps({UNKNOWN: {"input_per_mtok": 1, "output_per_mtok": 1}}), encoding="utf-8")
    done = run("audit", "--root", str(example_root), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["overrideFile"] == str(override)
    override.write_text("{oops", encoding="utf-8")
    done = run("audit", "--root", str(example_root))
    assert done.returncode == 0
    assert "warning" in done.stderr and "not valid JSON" in done.stderr


def test_prices_json_lists_every_factory_model() -> None:
    done = run("prices", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["models"]
    assert [row["model"] for row in rows] == list(KNOWN_MODELS)
    book = PriceBook.load()
    for row in rows:
        rates = book.rates(row["model"])
        assert rates is not None and row["priced"]
        assert row["listInputPerMtok"] == pytest.approx(rates.input_per_mtok)
        assert row["source"].startswith("genai-prices") and row["asOf"]
        assert row["factoryInputPerMtok"] > 0


def test_prices_for_one_name_shows_the_factory_fallback() -> None:
    done = run("prices", "--model", UNKNOWN)
    assert done.returncode == 0, done.stderr
    assert "unpriced" in done.stdout
    assert "fallback price" in done.stdout
    text = run("prices")
    assert text.returncode == 0
    for variant in KNOWN_MODELS:
        assert variant in text.stdout


def test_the_module_imports_only_the_standard_library_at_top_level() -> None:
    code = (
        "import sys; import mity_cost.cli.pricing; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pydantic', 'genai_prices', 'PySide6')]; "
        "print(bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
