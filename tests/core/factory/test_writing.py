"""Writing sessions and feature files as the factory would: content, refusals, concurrency, crashes."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mity_cost.core.factory import layout, rules, writing
from mity_cost.core.factory.loading import LoadedSession, LoadError, parse_feature, parse_session
from mity_cost.core.factory.writing import WriteError
from tests.conftest import EXAMPLE_ROOT, EXAMPLES, REAL_SAMPLES

NOW = datetime(2026, 11, 23, 9, 30, 15, 250000, tzinfo=UTC)
STAMP = rules.rfc3339(NOW)
SAMPLE_IDS = sorted(p.parent.name for p in REAL_SAMPLES.glob(".mity/chat/*/cost.json"))
EXAMPLE_IDS = sorted(p.parent.name for p in EXAMPLE_ROOT.glob(".mity/chat/*/cost.json"))
REPO = Path(__file__).resolve().parents[2]


def _raw(root: Path, session_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(layout.session_path(root, session_id).read_bytes())
    return doc


def _valid(root: Path, session_id: str) -> LoadedSession:
    path = layout.session_path(root, session_id)
    loaded = parse_session(path.read_bytes(), path)
    assert isinstance(loaded, LoadedSession), loaded.describe()
    return loaded


def _fold(records: list[dict[str, Any]]) -> float:
    """The ledger as the factory builds it: 0.0 plus each record's cost, in file order."""
    return reduce(lambda total, record: total + record["cost"], records, 0.0)


def _assert_ledger(doc: dict[str, Any]) -> None:
    """breakdown.llm is the fold of the records and the total is the sum of the five."""
    ledger = doc["sessionCost"]
    llm = ledger["breakdown"]["llm"]
    assert llm["min"] == llm["expected"] == llm["max"] == _fold(doc["llmUsage"])
    for key in ("min", "expected", "max"):
        parts = [ledger["breakdown"][name][key] for name in rules.CATEGORIES]
        assert ledger["total"][key] == reduce(lambda a, b: a + b, parts, 0.0)


# ------------------------------------------------------------------ a new session


def test_record_llm_starts_a_session_like_the_factory(empty_root: Path) -> None:
    record = writing.record_llm(empty_root, "s-1", "GPT-5-mini", 1200, 340, agent="Analyst", now=NOW)
    doc = _raw(empty_root, "s-1")
    assert list(doc) == list(rules.new_session("s-1", NOW))
    assert doc["llmUsage"] == [record]
    assert record["model"] == "gpt5mini"
    assert record["cost"] == rules.factory_llm_cost("gpt5mini", 1200, 340)
    assert record["timestamp"] == doc["updatedAt"] == doc["sessionCost"]["updatedAt"] == STAMP
    assert uuid.UUID(record["id"]).version == 4 and str(uuid.UUID(record["id"])) == record["id"]
    assert "station" not in record and "feature" not in record
    assert doc["sessionCost"]["assumptions"] == list(rules.SESSION_ASSUMPTIONS)
    assert doc["infraCost"]["assumptions"] == list(rules.INITIAL_INFRA_ASSUMPTIONS)
    assert doc["confirmationThreshold"] == 5.0
    _assert_ledger(doc)
    loaded = _valid(empty_root, "s-1")
    assert loaded.consistency.consistent and loaded.session_id == "s-1"


def test_written_file_is_pretty_printed_like_serde(empty_root: Path) -> None:
    writing.record_execution(empty_root, "s", "build", now=NOW)
    text = layout.session_path(empty_root, "s").read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    assert '\n  "sessionId": "s",\n' in text and not text.endswith("\n")


def test_unknown_model_is_kept_as_given_and_charged_the_fallback(empty_root: Path) -> None:
    record = writing.record_llm(empty_root, "s", "GPT-4o", 1000, 1000, station="design", feature="f", now=NOW)
    assert record["model"] == {"unknown": "GPT-4o"}
    assert record["cost"] == rules.factory_llm_cost({"unknown": "GPT-4o"}, 1000, 1000)
    assert list(record) == [
        "id",
        "model",
        "inputTokens",
        "outputTokens",
        "cost",
        "station",
        "feature",
        "timestamp",
    ]
    assert _raw(empty_root, "s")["featureCosts"] == {}  # no delta for "f" in the session: nothing to add to


def test_records_accumulate_and_ids_are_unique(empty_root: Path) -> None:
    models = ["gpt-5.2", "claude-opus-4.1", "gpt-4o", "claude-sonnet-4-5-20250929", "gpt-4.1-nano"]
    records = [writing.record_llm(empty_root, "s", m, 100 * i, 7 * i) for i, m in enumerate(models * 3)]
    doc = _raw(empty_root, "s")
    assert doc["llmUsage"] == records
    assert len({r["id"] for r in records}) == len(records)
    _assert_ledger(doc)
    assert _valid(empty_root, "s").consistency.consistent


# ------------------------------------------------------------------ appending to real files


def _decorate(doc: dict[str, Any]) -> None:
    """Unknown keys at every level a newer factory might add."""
    doc["schemaVersion"] = 7
    doc["sessionCost"]["origin"] = {"tool": "factory", "nested": [1, 2.5, None]}
    doc["sessionCost"]["breakdown"]["llm"]["unit"] = "USD"
    doc["sessionCost"]["breakdown"]["llm"]["provider"] = "mixed"
    doc["sessionCost"]["total"]["notes"] = "kept"
    doc["infraCost"]["region"] = "eu-west"
    for record in doc["llmUsage"]:
        record["cacheReadTokens"] = 12
    doc["runtimeHint"] = "readyToTest"


@pytest.mark.parametrize("session_id", SAMPLE_IDS)
def test_append_to_a_real_sample_keeps_everything_else(real_root: Path, session_id: str) -> None:
    path = layout.session_path(real_root, session_id)
    before = json.loads(path.read_bytes())
    _decorate(before)
    path.write_text(json.dumps(before, indent=2), encoding="utf-8")

    record = writing.record_llm(real_root, session_id, "claude-opus-4.5", 2048, 512, agent="Tester", now=NOW)
    after = _raw(real_root, session_id)

    assert list(after) == list(before)
    assert after["llmUsage"] == [*before["llmUsage"], record]
    assert after["infraCost"] == before["infraCost"]  # 9-digit timestamps and unknown keys included
    assert after["executionCosts"] == before["executionCosts"]
    assert after["featureCosts"] == before["featureCosts"]
    assert after["schemaVersion"] == 7 and after["runtimeHint"] == "readyToTest"
    old, new = before["sessionCost"], after["sessionCost"]
    assert new["origin"] == old["origin"] and new["total"]["notes"] == "kept"
    assert new["breakdown"]["llm"]["provider"] == "mixed" and new["breakdown"]["llm"]["unit"] == "USD"
    for key in ("min", "expected", "max"):
        assert new["breakdown"]["llm"][key] == old["breakdown"]["llm"][key] + record["cost"]
    for name in ("compute", "storage", "network", "misc"):
        assert new["breakdown"][name] == old["breakdown"][name]
    assert {k: v for k, v in new.items() if k not in ("breakdown", "total", "updatedAt")} == {
        k: v for k, v in old.items() if k not in ("breakdown", "total", "updatedAt")
    }
    assert new["updatedAt"] == after["updatedAt"] == STAMP
    _assert_ledger(after)
    assert _valid(real_root, session_id).consistency.consistent


@pytest.mark.parametrize("session_id", EXAMPLE_IDS)
def test_every_kind_of_write_on_every_example_stays_valid(example_root: Path, session_id: str) -> None:
    before = _raw(example_root, session_id)
    writing.record_llm(
        example_root, session_id, "gpt-5.2-pro", 3000, 900, agent="Architect", station="design"
    )
    scan = writing.record_execution(example_root, session_id, "scan", cloud=True)
    build = writing.record_execution(example_root, session_id, "build")
    writing.update_infra(example_root, session_id, "fullstack_small")
    after = _raw(example_root, session_id)
    assert after["executionCosts"] == [*before["executionCosts"], scan, build]
    compute = before["sessionCost"]["breakdown"]["compute"]
    for key in ("min", "expected", "max"):
        expected = compute[key] + scan["cost"][key] + build["cost"][key]
        assert after["sessionCost"]["breakdown"]["compute"][key] == expected
    _assert_ledger(after)
    loaded = _valid(example_root, session_id)
    assert loaded.consistency.consistent
    assert (
        loaded.doc["infraCost"]["total"]["expected"]
        == rules.INFRA_TEMPLATES["fullstack_small"]["total"]["expected"]
    )


def test_update_infra_replaces_only_the_estimate(example_root: Path) -> None:
    session_id = EXAMPLE_IDS[0]
    before = _raw(example_root, session_id)
    estimate = writing.update_infra(example_root, session_id, "frontend_spa", now=NOW)
    after = _raw(example_root, session_id)
    assert estimate == rules.infra_estimate("frontend_spa", NOW) == after["infraCost"]
    assert after["updatedAt"] == STAMP
    assert {k: v for k, v in after.items() if k not in ("infraCost", "updatedAt")} == {
        k: v for k, v in before.items() if k not in ("infraCost", "updatedAt")
    }


def test_feature_delta_in_the_session_gets_the_llm_cost(example_root: Path) -> None:
    session_id = EXAMPLE_IDS[0]
    path = layout.session_path(example_root, session_id)
    doc = json.loads(path.read_bytes())
    feature_file = EXAMPLE_ROOT / "workspaces/shop-api/.mity/cost/features/user-authentication.json"
    doc["featureCosts"]["user-auth"] = json.loads(feature_file.read_bytes())
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    old = doc["featureCosts"]["user-auth"]["oneTimeCost"]

    record = writing.record_llm(example_root, session_id, "gpt-4.1", 5000, 800, feature="user-auth", now=NOW)
    writing.record_llm(example_root, session_id, "gpt-4.1", 5000, 800, feature="other", now=NOW)

    after = _raw(example_root, session_id)
    delta = after["featureCosts"]["user-auth"]["oneTimeCost"]
    for key in ("min", "expected", "max"):
        assert delta["breakdown"]["llm"][key] == old["breakdown"]["llm"][key] + record["cost"]
        parts = [delta["breakdown"][name][key] for name in rules.CATEGORIES]
        assert delta["total"][key] == reduce(lambda a, b: a + b, parts, 0.0)
    assert delta["updatedAt"] == STAMP
    assert (
        after["featureCosts"]["user-auth"]["monthlyImpact"]
        == doc["featureCosts"]["user-auth"]["monthlyImpact"]
    )
    assert set(after["featureCosts"]) == {"user-auth"}
    assert _valid(example_root, session_id).consistency.consistent


# ------------------------------------------------------------------ feature files


def _specs(estimate: dict[str, Any]) -> dict[str, Any]:
    """The non-zero breakdown items of an estimate, as ``save_feature`` takes them."""
    return {
        n: i for n, i in estimate["breakdown"].items() if i["max"] > 0 or set(i) - {"min", "expected", "max"}
    }


@pytest.mark.parametrize("path", sorted(EXAMPLE_ROOT.glob("workspaces/*/.mity/cost/features/*.json")))
def test_save_feature_reproduces_the_example_files(empty_root: Path, path: Path) -> None:
    example = json.loads(path.read_bytes())
    app = path.parents[3].name
    moment = datetime.fromisoformat(example["calculatedAt"].replace("Z", "+00:00"))
    written = writing.save_feature(
        empty_root,
        app,
        example["featureId"],
        example["featureName"],
        one_time=_specs(example["oneTimeCost"]),
        monthly=_specs(example["monthlyImpact"]),
        now=moment,
    )
    assert written == layout.features_dir(empty_root, app) / path.name
    doc = json.loads(written.read_bytes())
    for estimate in (example["oneTimeCost"], example["monthlyImpact"], example):
        key = "calculatedAt" if estimate is example else "updatedAt"
        estimate[key] = rules.rfc3339(moment)  # the examples print .000000; chrono prints none
    assert doc == example
    assert json.dumps(doc) == json.dumps(example)
    loaded = parse_feature(written.read_bytes(), app, written)
    assert not isinstance(loaded, LoadError)
    expected = [json.loads(line) for line in (EXAMPLES / "expected-features.jsonl").read_text().splitlines()]
    [row] = [row for row in expected if row["featureId"] == example["featureId"]]
    assert doc["oneTimeCost"]["total"]["expected"] == row["oneTimeExpected"]
    assert doc["monthlyImpact"]["total"]["expected"] == row["monthlyExpected"]


def test_save_feature_options_and_replacement(empty_root: Path) -> None:
    path = writing.save_feature(
        empty_root,
        "shop",
        "Search: v2!",
        "Search v2",
        one_time={"llm": "0.25", "misc": [0.0, 0.1, 0.3]},
        monthly={"network": {"min": 1, "expected": 2, "max": 4, "notes": "egress"}},
        assumptions=["Indexing once"],
        monthly_assumptions=("Low traffic",),
        confidence=0.25,
        currency="eur",
        now=NOW,
    )
    assert path.name == "search-v2.json"
    doc = json.loads(path.read_bytes())
    assert doc["oneTimeCost"]["currency"] == doc["monthlyImpact"]["currency"] == "EUR"
    assert doc["oneTimeCost"]["confidence"] == 0.25
    assert doc["oneTimeCost"]["assumptions"] == ["Indexing once"]
    assert doc["monthlyImpact"]["assumptions"] == ["Low traffic"]
    assert doc["oneTimeCost"]["total"] == {"min": 0.25, "expected": 0.35, "max": 0.55}
    assert doc["monthlyImpact"]["breakdown"]["network"] == {
        "min": 1.0,
        "expected": 2.0,
        "max": 4.0,
        "notes": "egress",
    }
    assert doc["monthlyImpact"]["isMonthly"] is True and doc["oneTimeCost"]["isMonthly"] is False
    again = writing.save_feature(empty_root, "shop", "search v2", "Search v2 (again)", now=NOW)
    assert again == path
    replaced = json.loads(path.read_bytes())
    assert replaced["featureName"] == "Search v2 (again)"
    assert replaced["oneTimeCost"]["total"] == {"min": 0.0, "expected": 0.0, "max": 0.0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"app": "../evil"},
        {"app": ".hidden"},
        {"app": ""},
        {"feature_id": "!!!"},
        {"feature_id": "  "},
        {"one_time": {"gpu": 1.0}},
        {"one_time": {"llm": (2.0, 1.0, 3.0)}},
        {"one_time": {"llm": -1.0}},
        {"one_time": {"llm": float("nan")}},
        {"one_time": {"llm": (1.0, 2.0)}},
        {"one_time": {"llm": True}},
        {"one_time": {"llm": "1,2"}},
        {"monthly": {"storage": {"min": 1, "max": 2}}},
        {"monthly": {"storage": {"min": 1, "expected": 1, "max": 2, "unit": 5}}},
        {"currency": "GBP"},
        {"confidence": 1.5},
        {"assumptions": [3]},
        {"name": "bad \ud800 text"},
    ],
)
def test_save_feature_refuses_bad_input_and_writes_nothing(empty_root: Path, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"app": "shop", "feature_id": "Login", "name": "Login", **kwargs}
    with pytest.raises(WriteError):
        writing.save_feature(empty_root, now=NOW, **args)
    assert list(empty_root.rglob("*.json")) == []


def test_save_feature_refuses_to_replace_a_broken_file(
    empty_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing, "RETRY_DELAYS", ())
    folder = layout.features_dir(empty_root, "shop")
    folder.mkdir(parents=True)
    broken = folder / "login.json"
    broken.write_bytes(b'{"featureId": "Login", "oneTime')
    with pytest.raises(WriteError, match="refusing"):
        writing.save_feature(empty_root, "shop", "Login", "Login", now=NOW)
    assert broken.read_bytes() == b'{"featureId": "Login", "oneTime'


def test_parse_range() -> None:
    assert writing.parse_range("0.5") == (0.5, 0.5, 0.5)
    assert writing.parse_range(" 1, 2 ,5") == (1.0, 2.0, 5.0)
    for bad in ("", "1,2", "a,b,c", "3,2,1", "-1", "nan", "inf"):
        with pytest.raises(WriteError):
            writing.parse_range(bad)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs",
    [
        {"session_id": "../escape"},
        {"session_id": "a/b"},
        {"session_id": ".."},
        {"session_id": ".hidden"},
        {"session_id": ""},
        {"session_id": "nul\0byte"},
        {"model_name": ""},
        {"model_name": "   "},
        {"input_tokens": -1},
        {"output_tokens": 1.5},
        {"input_tokens": True},
        {"output_tokens": "12"},
        {"input_tokens": 2**64},
        {"agent": 42},
        {"station": "lone \udc80 surrogate"},
        {"now": datetime(2026, 1, 1)},
    ],
)
def test_record_llm_refuses_bad_input_and_touches_nothing(empty_root: Path, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"session_id": "s", "model_name": "gpt-4.1", "input_tokens": 1, "output_tokens": 1}
    args.update(kwargs)
    with pytest.raises(WriteError):
        writing.record_llm(empty_root, **args)
    assert list(empty_root.iterdir()) == []


def test_other_writers_refuse_bad_input(empty_root: Path) -> None:
    with pytest.raises(WriteError, match="unknown execution kind"):
        writing.record_execution(empty_root, "s", "deploy")
    with pytest.raises(WriteError, match="unknown infrastructure template"):
        writing.update_infra(empty_root, "s", "huge_cluster")
    with pytest.raises(WriteError, match="not an existing folder"):
        writing.record_llm(empty_root / "missing", "s", "gpt-4.1", 1, 1)
    assert list(empty_root.iterdir()) == []


def test_largest_token_counts_are_accepted(empty_root: Path) -> None:
    record = writing.record_llm(empty_root, "s", "gpt-4.1", 2**64 - 1, 0)
    assert record["inputTokens"] == 2**64 - 1
    assert _raw(empty_root, "s")["llmUsage"][0]["inputTokens"] == 2**64 - 1


# ------------------------------------------------------------------ broken files are refused


def _broken_variants() -> dict[str, bytes]:
    sample = (REAL_SAMPLES / ".mity/chat" / SAMPLE_IDS[-1] / "cost.json").read_bytes()
    good = json.loads(sample)

    def changed(edit: Any) -> bytes:
        doc = json.loads(sample)
        edit(doc)
        return json.dumps(doc, indent=2).encode()

    return {
        "empty": b"",
        "blank": b"  \n",
        "open-brace": b"{",
        "half": sample[: len(sample) // 2],
        "all-but-last-byte": sample[:-1],
        "not-utf8": b'{"sessionId": "\xff\xfe"}',
        "array": b"[]",
        "null": b"null",
        "nan": sample.replace(b'"confirmationThreshold": 5.0', b'"confirmationThreshold": NaN'),
        "no-records": changed(lambda d: d.pop("llmUsage")),
        "negative-ledger": changed(lambda d: d["sessionCost"]["breakdown"]["llm"].update(min=-1.0)),
        "unordered-total": changed(lambda d: d["sessionCost"]["total"].update(min=9e9)),
        "string-cost": changed(lambda d: d["llmUsage"][0].update(cost="0.1")),
        "bad-timestamp": changed(lambda d: d.update(updatedAt="yesterday")),
        "float-tokens": changed(lambda d: d["llmUsage"][0].update(inputTokens=1.5)),
        "bad-currency": changed(lambda d: d.update(currency="GBP")),
        "other-session": changed(lambda d: d.update(sessionId="someone-else")),
        "bad-feature": changed(lambda d: d["featureCosts"].update(x={"featureId": "x"})),
        "bad-execution": changed(lambda d: d["executionCosts"].append({"executionType": "test-run"})),
        "lone-surrogate": json.dumps({**good, "note": "\ud800"}).encode(),
    }


BROKEN = _broken_variants()


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_is_refused_and_left_untouched(
    real_root: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing, "RETRY_DELAYS", (0.0,))
    session_id = SAMPLE_IDS[-1]
    path = layout.session_path(real_root, session_id)
    path.write_bytes(BROKEN[name])
    stat = path.stat()
    writes: list[Callable[[], object]] = [
        lambda: writing.record_llm(real_root, session_id, "gpt-4.1", 10, 10),
        lambda: writing.record_execution(real_root, session_id, "test"),
        lambda: writing.update_infra(real_root, session_id, "frontend_spa"),
    ]
    for write in writes:
        with pytest.raises(WriteError) as caught:
            write()
        assert str(path) in caught.value.message
    assert path.read_bytes() == BROKEN[name]
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert sorted(p.name for p in path.parent.iterdir()) == ["cost.json", "cost.json.lock", "runtime.json"]


def test_half_written_file_that_completes_is_appended_to(
    real_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer (one that writes in place) finishes the file while we wait for it."""
    session_id = SAMPLE_IDS[-1]
    path = layout.session_path(real_root, session_id)
    full = path.read_bytes()
    path.write_bytes(full[: len(full) // 3])
    pauses: list[float] = []

    def other_writer_finishes(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            path.write_bytes(full)

    monkeypatch.setattr(writing, "_sleep", other_writer_finishes)
    record = writing.record_llm(real_root, session_id, "gpt-5-nano", 10, 10)
    assert len(pauses) == 2
    doc = _raw(real_root, session_id)
    assert doc["llmUsage"] == [*json.loads(full)["llmUsage"], record]
    _assert_ledger(doc)


def test_session_problem_accepts_every_sample() -> None:
    for path in [*REAL_SAMPLES.glob(".mity/chat/*/cost.json"), *EXAMPLE_ROOT.glob(".mity/chat/*/cost.json")]:
        assert writing.session_problem(json.loads(path.read_bytes()), path.parent.name) is None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(max_size=30),
    tokens=st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)),
    agent=st.none() | st.text(max_size=10),
)
def test_any_text_and_counts_give_a_valid_file_or_a_clear_refusal(
    tmp_path: Path, name: str, tokens: tuple[int, int], agent: str | None
) -> None:
    root = tmp_path / "prop"
    root.mkdir(exist_ok=True)
    try:
        record = writing.record_llm(root, "s", name, *tokens, agent=agent)
    except WriteError:
        assert not name.strip() or any(0xD800 <= ord(c) <= 0xDFFF for c in name + (agent or ""))
        return
    assert record["model"] == rules.detect_model(name)
    assert record["cost"] == rules.factory_llm_cost(record["model"], *tokens)
    loaded = _valid(root, "s")
    assert loaded.consistency.consistent
    assert loaded.doc["llmUsage"][-1]["id"] == record["id"]


# ------------------------------------------------------------------ concurrency and crashes

CHILD_ENV = {**os.environ, "PYTHONPATH": str(REPO)}

WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from mity_cost.core.factory import writing
    root, session_id, name, count, go = Path(sys.argv[1]), *sys.argv[2:4], int(sys.argv[4]), sys.argv[5]
    while not os.path.exists(go):
        time.sleep(0.002)
    for i in range(count):
        writing.record_llm(root, session_id, "gpt-4.1-mini" if i % 2 else "claude-opus-4.5", 1000 + i, 10 * i,
                           agent=name, station=str(i))
    """
)


@pytest.mark.slow
def test_eight_processes_append_200_records_and_a_reader_never_sees_a_bad_file(empty_root: Path) -> None:
    session_id = "concurrent"
    path = layout.session_path(empty_root, session_id)
    go = empty_root / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(empty_root), session_id, f"p{n}", "25", str(go)], env=CHILD_ENV
        )
        for n in range(8)
    ]
    reads: list[int] = []
    bad: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            loaded = parse_session(data, path)
            if isinstance(loaded, LoadError):
                bad.append(loaded.describe())
            else:
                if not loaded.consistency.consistent:
                    bad.append(loaded.consistency.describe())
                reads.append(len(loaded.doc["llmUsage"]))

    thread = threading.Thread(target=reader)
    thread.start()
    go.touch()
    try:
        codes = [w.wait(timeout=90) for w in writers]
    finally:
        stop.set()
        thread.join()
    assert codes == [0] * 8
    assert bad == []
    assert reads and reads == sorted(reads)  # records only ever grow, never a step back
    doc = _raw(empty_root, session_id)
    records = doc["llmUsage"]
    assert len(records) == 200
    assert len({r["id"] for r in records}) == 200
    assert Counter((r["agent"], r["station"]) for r in records) == Counter(
        (f"p{n}", str(i)) for n in range(8) for i in range(25)
    )
    _assert_ledger(doc)
    assert math.isclose(
        doc["sessionCost"]["breakdown"]["llm"]["expected"], math.fsum(r["cost"] for r in records)
    )
    assert _valid(empty_root, session_id).consistency.consistent


KILLED_AT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from mity_cost.core import atomic
    from mity_cost.core.factory import writing
    root, session_id, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    die = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
    if point == "before-write":      # holding the lock, new document built, nothing written
        atomic.write_json_atomic = die
    elif point == "temp-written":    # the temporary file is full but not yet renamed
        os.fsync = die
    elif point == "renamed":         # renamed into place, folder not yet synced
        atomic._fsync_dir = die
    writing.record_llm(root, session_id, "gpt-5.2", 100, 100, agent="doomed")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "lands"), [("before-write", False), ("temp-written", False), ("renamed", True)]
)
def test_killed_while_writing_leaves_a_valid_file(real_root: Path, point: str, lands: bool) -> None:
    session_id = SAMPLE_IDS[-1]
    before = _raw(real_root, session_id)
    child = subprocess.run(
        [sys.executable, "-c", KILLED_AT, str(real_root), session_id, point],
        env=CHILD_ENV,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL
    after = _raw(real_root, session_id)
    assert len(after["llmUsage"]) == len(before["llmUsage"]) + (1 if lands else 0)
    if not lands:
        assert after == before
    assert _valid(real_root, session_id).consistency.consistent
    # The dead process's lock is gone with it: the next writer goes straight on.
    writing.record_llm(real_root, session_id, "gpt-5.2", 1, 1)
    assert _valid(real_root, session_id).consistency.consistent
    assert [f.path.parent.name for f in layout.session_files(real_root)].count(session_id) == 1


LOOPER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mity_cost.core.factory import writing
    root, session_id = Path(sys.argv[1]), sys.argv[2]
    i = 0
    while True:
        writing.record_llm(root, session_id, "claude-sonnet-4.5", 100 + i, 50, agent="looper")
        writing.record_execution(root, session_id, ("build", "test", "scan", "iac")[i % 4], cloud=bool(i % 3))
        i += 1
    """
)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_broken_file(empty_root: Path) -> None:
    session_id = "killed"
    path = layout.session_path(empty_root, session_id)
    rng = random.Random(20261123)
    counts: list[int] = []
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", LOOPER, str(empty_root), session_id], env=CHILD_ENV)
        deadline = time.monotonic() + 60
        start = len(_raw(empty_root, session_id)["llmUsage"]) if path.exists() else 0
        while time.monotonic() < deadline:  # wait until it is really writing
            if path.exists() and len(json.loads(path.read_bytes())["llmUsage"]) > start:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        loaded = _valid(empty_root, session_id)
        assert loaded.consistency.consistent
        doc = _raw(empty_root, session_id)
        _assert_ledger(doc)
        compute = doc["sessionCost"]["breakdown"]["compute"]
        assert compute["expected"] == pytest.approx(
            math.fsum(e["cost"]["expected"] for e in doc["executionCosts"])
        )
        counts.append(len(doc["llmUsage"]))
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_now_defaults_to_the_current_utc_time(empty_root: Path) -> None:
    before = datetime.now(UTC)
    record = writing.record_llm(empty_root, "s", "gpt-4.1", 1, 1)
    stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)
