"""The history store: taking records in once, surviving deletions and kills, migrations, retention."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mity_cost.core.factory.loading import LoadedSession, load_session
from mity_cost.core.live.snapshot import SessionView, Snapshot
from mity_cost.core.spending import history as history_module
from mity_cost.core.spending.history import (
    SCHEMA_VERSION,
    AppResolver,
    History,
    HistoryError,
    Totals,
    app_from_runtime,
    migrate,
    parse_timestamp,
    provider_of,
)
from tests.core.history_helpers import NOW, close, open_history, row, session_docs, summed

REPO = Path(__file__).resolve().parents[2]


def _ledger(doc: dict[str, Any]) -> Totals:
    total = doc["sessionCost"]["total"]
    return Totals(total["min"], total["expected"], total["max"])


def _consistent(doc: dict[str, Any]) -> bool:
    records = doc["llmUsage"]
    llm = doc["sessionCost"]["breakdown"]["llm"]["expected"]
    ids = [r["id"] for r in records]
    total = math.fsum(r["cost"] for r in records)
    return len(set(ids)) == len(ids) and math.isclose(total, llm, abs_tol=1e-9)


# --------------------------------------------------------------------------- taking records in


def test_default_path_is_in_the_data_folder(isolated_home: Path) -> None:
    with History() as store:
        assert store.path == isolated_home / "data" / "history.sqlite3"
        assert store.path.exists()
        assert store.query("PRAGMA journal_mode")[0][0] == "wal"
        assert store.query("PRAGMA synchronous")[0][0] == 2  # FULL
        assert store.schema_version == SCHEMA_VERSION


def test_example_root_records_add_up_to_each_ledger(example_root: Path, tmp_path: Path) -> None:
    docs = session_docs(example_root)
    with open_history(tmp_path) as store:
        added, problems = store.ingest_root(example_root, now=NOW)
        assert problems == []
        expected_rows = sum(len(d["llmUsage"]) + len(d["executionCosts"]) for d in docs.values())
        assert added == expected_rows == store.record_count()
        for session_id, doc in docs.items():
            got = store.session_totals(session_id).get("", Totals())
            ledger = _ledger(doc)
            if _consistent(doc):
                assert math.isclose(got.expected, ledger.expected, abs_tol=1e-9)
                assert math.isclose(got.min, ledger.min, abs_tol=1e-9)
                assert math.isclose(got.max, ledger.max, abs_tol=1e-9)
            info = store.session(session_id)
            assert info is not None and math.isclose(info.ledger.expected, ledger.expected)
        overall = store.totals()
        assert overall.calls == expected_rows
        assert math.isclose(overall.expected, math.fsum(_ledger(d).expected for d in docs.values()))


def test_taking_in_again_adds_nothing_even_from_a_copied_root(example_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(example_root, copy)
    with open_history(tmp_path) as store:
        first, _ = store.ingest_root(example_root, now=NOW)
        assert first > 0
        assert store.ingest_root(example_root, now=NOW + timedelta(hours=1)) == (0, [])
        assert store.ingest_root(copy, now=NOW + timedelta(hours=2)) == (0, [])
        assert store.record_count() == first


def test_totals_survive_deleting_the_session_folders(example_root: Path, tmp_path: Path) -> None:
    sessions = set(session_docs(example_root))
    with open_history(tmp_path) as store:
        store.ingest_root(example_root, now=NOW)
        before = store.by_value("model")
    shutil.rmtree(example_root / ".mity")
    with open_history(tmp_path) as store:
        assert store.ingest_root(example_root, now=NOW) == (0, [])
        assert store.by_value("model") == before
        assert {s.session_id for s in store.sessions()} == sessions


def test_executions_are_dated_when_first_seen_and_keep_that_date(example_root: Path, tmp_path: Path) -> None:
    with open_history(tmp_path) as store:
        store.ingest_root(example_root, now=NOW)
        later = NOW + timedelta(days=3)
        store.ingest_root(example_root, now=later)
        executions = [r for r in store.records() if r.kind == "execution"]
        assert executions
        assert {r.timestamp for r in executions} == {NOW}
        assert {r.dated_by for r in executions} == {"first-seen"}
        assert {r.provider for r in executions} == {"compute"}


def test_same_execution_at_two_indexes_counts_twice_but_once_per_index(
    tmp_path: Path, example_root: Path
) -> None:
    docs = session_docs(example_root)
    session_id, doc = next((k, v) for k, v in docs.items() if len(v["executionCosts"]) >= 2)
    doc["executionCosts"] = [doc["executionCosts"][0]] * 3
    doc["llmUsage"] = []
    with open_history(tmp_path) as store:
        assert store.ingest_document(doc, example_root, now=NOW) == 3
        assert store.ingest_document(doc, example_root, now=NOW) == 0
        assert store.session_totals(session_id)[""].calls == 3


def test_records_without_id_are_kept_once_by_content_and_repeated_ids_once(
    tmp_path: Path, example_root: Path
) -> None:
    docs = session_docs(example_root)
    doc = next(d for d in docs.values() if len(d["llmUsage"]) >= 3)
    doc["executionCosts"] = []
    first, second, third = (dict(r) for r in doc["llmUsage"][:3])
    first["id"] = ""
    doc["llmUsage"] = [first, second, dict(second), third]  # the second id repeats
    with open_history(tmp_path) as store:
        assert store.ingest_document(doc, example_root, now=NOW) == 3
        doc["llmUsage"] = [dict(first)]
        assert store.ingest_document(doc, example_root, now=NOW) == 0
        uids = [r.uid for r in store.records()]
        assert len(uids) == 3
        assert sum(uid.startswith("llmh:") for uid in uids) == 1
        assert f"llm:{second['id']}" in uids and f"llm:{third['id']}" in uids


def test_bad_records_are_skipped_not_fatal(tmp_path: Path, example_root: Path) -> None:
    doc = next(d for d in session_docs(example_root).values() if d["llmUsage"])
    good = doc["llmUsage"][0]
    doc["llmUsage"] = [
        good,
        {**good, "id": "neg", "cost": -1},
        {**good, "id": "nan", "cost": float("nan")},
        {**good, "id": "bool", "inputTokens": True},
        {**good, "id": "ts", "timestamp": "yesterday"},
        "not a record",
    ]
    doc["executionCosts"] = [{"executionType": "test-run"}, 7]
    with open_history(tmp_path) as store:
        assert store.ingest_document(doc, example_root, now=NOW) == 1
        assert store.ingest_document({"sessionId": 5}, example_root, now=NOW) == 0


def test_timestamps_with_nine_fraction_digits_and_future_ones(tmp_path: Path, example_root: Path) -> None:
    assert parse_timestamp("2026-02-10T11:43:12.296068900Z") == pytest.approx(
        datetime(2026, 2, 10, 11, 43, 12, 296068, tzinfo=UTC).timestamp()
    )
    assert (
        parse_timestamp("2026-02-10T11:43:12+02:00")
        == datetime(2026, 2, 10, 9, 43, 12, tzinfo=UTC).timestamp()
    )
    assert parse_timestamp("2026-02-10T11:43:12") is None
    assert parse_timestamp(datetime(2026, 1, 1)) is None
    doc = next(d for d in session_docs(example_root).values() if d["llmUsage"])
    doc["executionCosts"] = []
    doc["llmUsage"] = [{**doc["llmUsage"][0], "id": "future", "timestamp": "2099-01-01T00:00:00Z"}]
    with open_history(tmp_path) as store:
        store.ingest_document(doc, example_root, now=NOW)
        (stored,) = list(store.records())
        assert stored.timestamp == NOW and stored.dated_by == "clamped"


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt5mini", "openai"),
        ("gpt52pro", "openai"),
        ("claudeopus45", "anthropic"),
        ("unknown:gpt-4o", "openai"),
        ("unknown:claude-sonnet-4-5-20250929", "anthropic"),
        ("unknown:o3-mini", "openai"),
        ("unknown:llama-3-70b", "other"),
        ("unknown:", "other"),
        (None, "compute"),
    ],
)
def test_provider_is_derived_from_the_model(model: str | None, provider: str) -> None:
    assert provider_of(model) == provider


def test_apps_come_from_feature_files_runtime_or_a_single_app(tmp_path: Path, example_root: Path) -> None:
    resolver = AppResolver.for_root(example_root)
    assert resolver.app_for("User Authentication") == "shop-api"
    assert resolver.app_for("contact form") == "landing"
    assert resolver.app_for("user-auth") is None  # two apps, no match: unknown, never guessed
    runtime = {"readyInfo": {"appPath": "C:\\devenv\\workspaces\\mityfactory\\workspaces\\wine"}}
    assert app_from_runtime(runtime) == "wine"
    assert app_from_runtime({"readyInfo": {"appPath": "/home/u/workspaces/shop-api/"}}) == "shop-api"
    assert app_from_runtime({"readyInfo": {"appPath": ".."}}) is None
    assert AppResolver.for_root(example_root, runtime).app_for("user-auth") == "wine"
    single = tmp_path / "single"
    (single / "workspaces" / "only-app").mkdir(parents=True)
    assert AppResolver.for_root(single).app_for(None) == "only-app"


def test_session_runtime_names_the_app_of_its_records(tmp_path: Path, example_root: Path) -> None:
    docs = session_docs(example_root)
    session_id = next(k for k, d in docs.items() if d["llmUsage"])
    runtime = {"readyInfo": {"appPath": "/x/workspaces/shop-api"}}
    (example_root / ".mity" / "chat" / session_id / "runtime.json").write_text(json.dumps(runtime))
    with open_history(tmp_path) as store:
        store.ingest_root(example_root, now=NOW)
        apps = store.session_totals(session_id, by="app")
        assert list(apps) == ["shop-api"]
        info = store.session(session_id)
        assert info is not None and info.app == "shop-api"


def test_a_growing_session_is_taken_in_from_where_it_stopped(tmp_path: Path, example_root: Path) -> None:
    from mity_cost.core.factory import writing

    session_id = next(k for k, d in session_docs(example_root).items() if d["llmUsage"])
    path = example_root / ".mity" / "chat" / session_id / "cost.json"
    with open_history(tmp_path) as store:
        loaded = load_session(path)
        assert isinstance(loaded, LoadedSession)
        first = store.ingest_session(loaded, example_root, now=NOW)
        assert store.ingest_session(loaded, example_root, now=NOW) == 0  # unchanged: skipped
        writing.record_llm(example_root, session_id, "gpt-5-mini", 1000, 200, agent="Tester", now=NOW)
        writing.record_llm(example_root, session_id, "claude-opus-4.5", 3000, 100, now=NOW)
        grown = load_session(path)
        assert isinstance(grown, LoadedSession)
        assert store.ingest_session(grown, example_root, now=NOW) == 2
        assert store.session_totals(session_id)[""].calls == first + 2
        doc = json.loads(path.read_bytes())
        assert math.isclose(
            store.session_totals(session_id)[""].expected, doc["sessionCost"]["total"]["expected"]
        )


def test_progress_is_remembered_across_handles(
    tmp_path: Path, example_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new process skips an unchanged file and reads a grown one from where the last pass stopped."""
    calls: list[int] = []
    real = history_module.rows_of_document

    def spy(*args: Any, **kwargs: Any) -> list[history_module.RecordRow]:
        calls.append(kwargs["llm_from"])
        return real(*args, **kwargs)

    monkeypatch.setattr(history_module, "rows_of_document", spy)
    session_id, doc = next((k, d) for k, d in session_docs(example_root).items() if len(d["llmUsage"]) > 3)
    with open_history(tmp_path) as store:
        store.ingest_document(doc, example_root, now=NOW, file_stamp=(1, 1))
    with open_history(tmp_path) as store:
        assert store.ingest_document(doc, example_root, now=NOW, file_stamp=(1, 1)) == 0
        assert calls == [0]  # skipped unread
        extra = {**doc["llmUsage"][0], "id": "appended-record"}
        grown = {**doc, "llmUsage": [*doc["llmUsage"], extra]}
        assert store.ingest_document(grown, example_root, now=NOW, file_stamp=(2, 2)) == 1
        assert calls == [0, len(doc["llmUsage"])]
        rewritten = {**doc, "llmUsage": [extra, *doc["llmUsage"]]}  # not a pure append: read it all
        assert store.ingest_document(rewritten, example_root, now=NOW, file_stamp=(3, 3)) == 0
        assert calls[-1] == 0
        assert (
            store.session_totals(session_id)[""].calls
            == len(doc["llmUsage"]) + len(doc["executionCosts"]) + 1
        )


def test_a_snapshot_is_taken_in_with_execution_first_seen_times(tmp_path: Path, example_root: Path) -> None:
    views = []
    for path in sorted(example_root.glob(".mity/chat/*/cost.json")):
        loaded = load_session(path)
        assert isinstance(loaded, LoadedSession)
        seen = tuple(NOW.timestamp() - 3600 * (i + 1) for i in range(len(loaded.doc["executionCosts"])))
        views.append(SessionView(path.parent.name, example_root, path.parent, loaded, execution_seen_at=seen))
    views.append(SessionView("broken", example_root, example_root / "x", None))
    with open_history(tmp_path) as store:
        added = store.ingest_snapshot(Snapshot(tuple(views)), now=NOW)
        assert added == store.record_count() > 0
        stamps = sorted(r.timestamp for r in store.records() if r.kind == "execution")
        assert stamps[0] < NOW - timedelta(minutes=59)
        assert store.ingest_snapshot(Snapshot(tuple(views)), now=NOW) == 0


# --------------------------------------------------------------------------- queries and retention


def test_queries_group_by_day_value_and_convert_currency(tmp_path: Path) -> None:
    day1, day2 = NOW - timedelta(days=1), NOW
    rows = [
        row("llm:a", day1, 0.5, model="gpt5mini", agent="A"),
        row("llm:b", day2, 1.0, model="claudeopus45", agent="B"),
        row("llm:c", day2, 2.0, model="claudeopus45", currency="EUR"),
        row("exec:d", day2, 0.1, model=None, spread=0.05),
    ]
    with open_history(tmp_path) as store:
        assert store.ingest_rows(rows, now=NOW) == 4
        assert close(store.totals(), summed(rows))
        by_day = store.by_day()
        assert close(by_day[day1.date().isoformat()], summed(rows[:1]))
        assert close(by_day[day2.date().isoformat()], summed(rows[1:]))
        by_agent = store.by_value("agent")
        assert set(by_agent) == {"A", "B", ""}
        assert close(by_agent[""], summed(rows[2:]))
        assert store.totals("model", "claudeopus45", kinds=("llm",)).calls == 2
        rate = 0.9
        converted = store.totals("model", "claudeopus45", rates=history_module.rates_for("USD", rate))
        assert math.isclose(converted.expected, 1.0 + 2.0 / rate)
        assert store.models_used() == {"gpt5mini", "claudeopus45"}
        assert store.models_used(dim="agent", value="A") == {"gpt5mini"}
        assert store.first_day() == day1.date()


def test_retention_deletes_old_days_and_skips_old_records(tmp_path: Path) -> None:
    rows = [row(f"llm:{i}", NOW - timedelta(days=i), 1.0 + i) for i in range(10)]
    with open_history(tmp_path) as store:
        store.ingest_rows(rows, now=NOW)
        assert store.get_meta("retention_days") is None
        assert store.apply_retention(NOW) == 0
        assert store.set_retention(3, NOW) == 7
        kept = store.retention_days
        assert kept == 3
        assert close(store.totals(), summed(rows[:3]))
        assert store.ingest_rows(rows, now=NOW) == 0  # the old ones are not taken back in
        store.rebuild_rollup()
        assert close(store.totals(), summed(rows[:3]))
        with pytest.raises(ValueError):
            store.set_retention(0)
        store.set_retention(None)
        assert store.retention_days is None


# --------------------------------------------------------------------------- schema


def test_a_version_1_database_is_migrated_and_its_rollup_back_filled(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, upto=1) == 1
    rows = [
        row(f"llm:{i}", NOW - timedelta(days=i % 3), 0.25 * (i + 1), agent="A" if i % 2 else None)
        for i in range(6)
    ]
    with db:
        db.executemany(
            f"INSERT INTO records ({', '.join(history_module._COLUMNS)}) VALUES ({', '.join('?' * 21)})",
            [
                (
                    *history_module._row_values(r),
                    datetime.fromtimestamp(r.ts, UTC).date().isoformat(),
                    "record",
                    r.ts,
                )
                for r in rows
            ],
        )
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'daily'").fetchone() is None
    db.close()
    with History(path, tz=UTC) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert close(store.totals(), summed(rows))
        assert close(store.by_value("agent")["A"], summed(r for r in rows if r.agent == "A"))
        assert store.query("SELECT COUNT(*) FROM alerts")[0][0] == 0
        more = row("llm:new", NOW, 9.0)
        assert store.ingest_rows([more], now=NOW) == 1  # the trigger works after migrating
        assert close(store.totals(), summed([*rows, more]))


def test_migrations_are_ordered_and_each_sets_the_version(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "steps.sqlite3", isolation_level=None)
    for version in range(1, SCHEMA_VERSION + 1):
        assert migrate(db, upto=version) == version
    assert migrate(db) == SCHEMA_VERSION  # nothing left to do
    db.close()


def test_a_newer_or_foreign_database_is_refused_not_touched(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(HistoryError, match="newer"):
        History(newer)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryError):
        History(garbage)
    assert garbage.read_bytes().startswith(b"this is not a database")


def test_two_handles_on_one_file_both_write(tmp_path: Path) -> None:
    with open_history(tmp_path) as first, open_history(tmp_path) as second:
        first.ingest_rows([row("llm:1", NOW, 1.0)], now=NOW)
        second.ingest_rows([row("llm:2", NOW, 2.0), row("llm:1", NOW, 1.0)], now=NOW)
        assert first.record_count() == second.record_count() == 2
        assert first.integrity_ok()


# --------------------------------------------------------------------------- kill -9


_CHILD = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from mity_cost.core.spending.history import History, RecordRow

    db, log, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = History(db, tz=UTC)
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    while True:
        rows = [
            RecordRow(f"llm:b{batch}-{i}", "llm", f"s{batch % 5}", "/root", None, "openai", "gpt5mini",
                      "agent", None, None, None, 10, 20, 0.001, 0.001, 0.001, "USD",
                      1_790_000_000.0 + batch * 600 + i, "record")
            for i in range(BATCH)
        ]
        store.ingest_rows(rows)
        os.write(out, f"{batch}\\n".encode())
        os.fsync(out)
        batch += 1
    """
)
BATCH = 250


def _reported(log: Path) -> list[int]:
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    return [int(line) for line in text.splitlines() if line.strip().isdigit()]


@pytest.mark.slow
def test_kill_9_while_taking_records_in_loses_nothing_committed(tmp_path: Path) -> None:
    """A child takes in batches in a loop and reports each committed one (fsynced) to a log; it is
    killed with SIGKILL at random moments, again and again.  Afterwards the database is intact,
    every reported batch is there in full, no batch is there in part, and the roll-up agrees."""
    db_path, log = tmp_path / "killed.sqlite3", tmp_path / "committed.log"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.replace("BATCH", str(BATCH)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    chooser = random.Random(20261123)
    next_batch = 0
    for _round in range(6):
        already = len(_reported(log))
        child = subprocess.Popen(
            [sys.executable, str(script), str(db_path), str(log), str(next_batch)], env=env
        )
        try:
            deadline = time.monotonic() + 60
            while len(_reported(log)) < already + 2 and time.monotonic() < deadline:
                assert child.poll() is None, "the child died on its own"
                time.sleep(0.005)
            time.sleep(chooser.uniform(0.0, 0.03))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        reported = _reported(log)
        assert len(reported) >= already + 2
        next_batch = max(reported) + 1

    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    counts = dict(
        db.execute("SELECT substr(uid, 1, instr(uid, '-') - 1), COUNT(*) FROM records GROUP BY 1").fetchall()
    )
    for batch in _reported(log):
        assert counts.get(f"llm:b{batch}") == BATCH, f"committed batch {batch} is missing or partial"
    assert set(counts.values()) == {BATCH}, "a batch is there in part"
    total = db.execute("SELECT COUNT(*), SUM(cost_expected) FROM records").fetchone()
    rollup = db.execute("SELECT SUM(calls), SUM(cost_expected) FROM daily WHERE dim = 'overall'").fetchone()
    assert rollup[0] == total[0] and math.isclose(rollup[1], total[1])
    db.close()
    with History(db_path, tz=UTC) as store:  # and it is still usable
        assert store.integrity_ok()
        assert store.ingest_rows([row("llm:after", NOW, 1.0)], now=NOW) == 1
