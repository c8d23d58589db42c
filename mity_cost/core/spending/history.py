"""The spending history: every record the app sees, taken in once, kept after session folders go.

A SQLite database (``data_dir()/history.sqlite3``) in WAL mode with ``synchronous=FULL``: each batch
of records is one transaction, and a commit is on disk (WAL fsynced) before it returns, so neither a
``kill -9`` nor a power cut loses a committed batch, and SQLite's journal means an interrupted batch
leaves no trace.  (``NORMAL`` would already survive a killed process; ``FULL`` also survives an OS
crash for the price of one fsync per batch, which is cheap at our batch rate.)

Records are keyed by a unique ``uid``: ``llm:<record id>``, or a content hash for executions (which
have no id: session + index + content) and for id-less LLM records.  ``INSERT OR IGNORE`` on that
key makes taking in the same session again harmless.  The same transaction adds the new records to
a ``daily`` roll-up (one row per day, dimension, value, kind and currency), so reports and budgets
read a few thousand rows instead of every record.  Days are calendar days in the history's time zone
(the machine's local zone by default).

Stdlib only (``sqlite3``), so the command line's budget check starts fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mity_cost.core import paths
from mity_cost.core.factory.layout import RUNTIME_FILE, WORKSPACES_DIR, feature_files, feature_slug, safe_name

if TYPE_CHECKING:
    from mity_cost.core.factory.loading import LoadedSession
    from mity_cost.core.live.snapshot import Snapshot

HISTORY_FILE = "history.sqlite3"
DIMENSIONS: tuple[str, ...] = ("model", "provider", "agent", "station", "feature", "app")
"""What reports and budgets can group or filter by (besides ``overall`` and ``session``)."""
Dimension = Literal["overall", "model", "provider", "agent", "station", "feature", "app"]
Kind = Literal["llm", "execution"]
CURRENCIES: tuple[str, ...] = ("USD", "EUR")
FUTURE_TOLERANCE = 600.0
"""A record dated more than this many seconds after it was first seen is dated when it was seen."""
BUSY_TIMEOUT_MS = 10_000

_COLUMNS = (
    "uid",
    "kind",
    "session_id",
    "root",
    "app",
    "provider",
    "model",
    "agent",
    "station",
    "feature",
    "execution_type",
    "input_tokens",
    "output_tokens",
    "cost_min",
    "cost_expected",
    "cost_max",
    "currency",
    "ts",
    "day",
    "dated_by",
    "seen_at",
)


_INSERT_SQL = (
    f"INSERT OR IGNORE INTO records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


class HistoryError(Exception):
    """The history database cannot be opened or written (locked, corrupt, from a newer version)."""


# --------------------------------------------------------------------------- schema migrations


def _migration_1(db: sqlite3.Connection) -> None:
    """Records, sessions and settings."""
    db.execute(
        """CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('llm', 'execution')),
            session_id TEXT NOT NULL,
            root TEXT NOT NULL,
            app TEXT,
            provider TEXT NOT NULL,
            model TEXT,
            agent TEXT,
            station TEXT,
            feature TEXT,
            execution_type TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_min REAL NOT NULL,
            cost_expected REAL NOT NULL,
            cost_max REAL NOT NULL,
            currency TEXT NOT NULL,
            ts REAL NOT NULL,
            day TEXT NOT NULL,
            dated_by TEXT NOT NULL,
            seen_at REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX records_session ON records (session_id, ts)")
    db.execute("CREATE INDEX records_model ON records (model, day)")
    db.execute(
        """CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            root TEXT NOT NULL,
            app TEXT,
            currency TEXT NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            ledger_min REAL NOT NULL,
            ledger_expected REAL NOT NULL,
            ledger_max REAL NOT NULL,
            llm_calls INTEGER NOT NULL,
            executions INTEGER NOT NULL,
            monthly_infra REAL NOT NULL,
            updated_at TEXT
        )"""
    )
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


_ROLLUP_DIMS: tuple[tuple[str, str], ...] = (
    ("overall", "''"),
    ("model", "COALESCE(model, '')"),
    ("provider", "provider"),
    ("agent", "COALESCE(agent, '')"),
    ("station", "COALESCE(station, '')"),
    ("feature", "COALESCE(feature, '')"),
    ("app", "COALESCE(app, '')"),
)
"""Each dimension of the roll-up and the record expression that gives its value."""

_ROLLUP_ADD = tuple(
    f"""INSERT INTO daily
        SELECT day, '{dim}', {value}, kind, currency, COUNT(*), SUM(input_tokens), SUM(output_tokens),
               SUM(cost_min), SUM(cost_expected), SUM(cost_max)
        FROM records WHERE id > ? GROUP BY day, {value}, kind, currency
        ON CONFLICT DO UPDATE SET calls = calls + excluded.calls,
            input_tokens = input_tokens + excluded.input_tokens,
            output_tokens = output_tokens + excluded.output_tokens,
            cost_min = cost_min + excluded.cost_min,
            cost_expected = cost_expected + excluded.cost_expected,
            cost_max = cost_max + excluded.cost_max"""
    for dim, value in _ROLLUP_DIMS
)
"""Add the records after a given id to the roll-up (run in the transaction that inserted them)."""


def _roll_up(db: sqlite3.Connection, after_id: int) -> None:
    for statement in _ROLLUP_ADD:
        db.execute(statement, (after_id,))


def _rebuild_rollup(db: sqlite3.Connection) -> None:
    """Recompute the ``daily`` roll-up from the records (migration back-fill, repair)."""
    db.execute("DELETE FROM daily")
    _roll_up(db, -1)


def _migration_2(db: sqlite3.Connection) -> None:
    """The daily roll-up (kept in the transaction that inserts records), back-filled from the records."""
    db.execute(
        """CREATE TABLE daily (
            day TEXT NOT NULL,
            dim TEXT NOT NULL,
            value TEXT NOT NULL,
            kind TEXT NOT NULL,
            currency TEXT NOT NULL,
            calls INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost_min REAL NOT NULL,
            cost_expected REAL NOT NULL,
            cost_max REAL NOT NULL,
            PRIMARY KEY (dim, day, value, kind, currency)
        ) WITHOUT ROWID"""
    )
    _rebuild_rollup(db)


def _migration_3(db: sqlite3.Connection) -> None:
    """Alerts and budget approvals."""
    db.execute(
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            level INTEGER NOT NULL,
            period_key TEXT NOT NULL,
            message TEXT NOT NULL,
            data TEXT NOT NULL,
            created_at REAL NOT NULL,
            resolved_at REAL,
            resolution TEXT,
            notified_at REAL
        )"""
    )
    db.execute("CREATE INDEX alerts_key ON alerts (kind, subject, period_key, level)")
    db.execute("CREATE INDEX alerts_open ON alerts (resolved_at, created_at)")
    db.execute(
        """CREATE TABLE budget_approvals (
            budget_id TEXT NOT NULL,
            period_key TEXT NOT NULL,
            approved_up_to REAL NOT NULL,
            approved_at REAL NOT NULL,
            PRIMARY KEY (budget_id, period_key)
        )"""
    )


def _migration_4(db: sqlite3.Connection) -> None:
    """How far each session file was taken in, so an unchanged file is skipped and a grown one is
    read from where the last pass stopped, from any process."""
    for column in (
        "file_size INTEGER",
        "file_mtime_ns INTEGER",
        "llm_seen INTEGER NOT NULL DEFAULT 0",
        "last_llm_id TEXT",
    ):
        db.execute(f"ALTER TABLE sessions ADD COLUMN {column}")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
)
"""Ordered; ``PRAGMA user_version`` is the number applied.  Never edit one that shipped: append."""
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, upto: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations, each in its own transaction; returns the version reached.

    ``db`` must be in autocommit mode (``isolation_level=None``).  A database from a newer version is
    refused rather than touched.
    """
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    if current > SCHEMA_VERSION:
        raise HistoryError(
            f"the history was written by a newer mity-cost (schema {current}, this one knows "
            f"{SCHEMA_VERSION}); not touching it"
        )
    for number in range(current + 1, upto + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            if int(db.execute("PRAGMA user_version").fetchone()[0]) >= number:
                db.execute("COMMIT")
                continue
            MIGRATIONS[number - 1](db)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return int(db.execute("PRAGMA user_version").fetchone()[0])


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordRow:
    """One record ready to be stored (``ts`` in Unix seconds, UTC)."""

    uid: str
    kind: Kind
    session_id: str
    root: str
    app: str | None
    provider: str
    model: str | None
    agent: str | None
    station: str | None
    feature: str | None
    execution_type: str | None
    input_tokens: int
    output_tokens: int
    cost_min: float
    cost_expected: float
    cost_max: float
    currency: str
    ts: float
    dated_by: Literal["record", "first-seen", "clamped"]


@dataclass(frozen=True)
class Totals:
    """Summed records: a cost range (duck-compatible with ``summary.Range``), calls and tokens."""

    min: float = 0.0
    expected: float = 0.0
    max: float = 0.0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.min + other.min,
            self.expected + other.expected,
            self.max + other.max,
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
        )

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def to_json(self) -> dict[str, Any]:
        """``{"min", "expected", "max", "calls", "inputTokens", "outputTokens"}``."""
        return {
            "min": self.min,
            "expected": self.expected,
            "max": self.max,
            "calls": self.calls,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
        }


ZERO = Totals()


@dataclass(frozen=True)
class StoredRecord:
    """A record as the history holds it."""

    uid: str
    kind: str
    session_id: str
    root: str
    app: str | None
    provider: str
    model: str | None
    agent: str | None
    station: str | None
    feature: str | None
    execution_type: str | None
    input_tokens: int
    output_tokens: int
    cost_min: float
    cost_expected: float
    cost_max: float
    currency: str
    timestamp: datetime
    day: str
    dated_by: str

    def to_json(self) -> dict[str, Any]:
        """Flat camelCase keys, the timestamp in RFC 3339 UTC."""
        return {
            "uid": self.uid,
            "kind": self.kind,
            "sessionId": self.session_id,
            "root": self.root,
            "app": self.app,
            "provider": self.provider,
            "model": self.model,
            "agent": self.agent,
            "station": self.station,
            "feature": self.feature,
            "executionType": self.execution_type,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "costMin": self.cost_min,
            "costExpected": self.cost_expected,
            "costMax": self.cost_max,
            "currency": self.currency,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "day": self.day,
            "datedBy": self.dated_by,
        }


@dataclass(frozen=True)
class SessionInfo:
    """What the history remembers of a session (its ledger as last seen)."""

    session_id: str
    root: str
    app: str | None
    currency: str
    first_seen: float
    last_seen: float
    ledger: Totals
    executions: int
    monthly_infra: float
    updated_at: str | None


def model_text(model: object) -> str | None:
    """A record's model as text, like ``documents.model_key``: ``"gpt5mini"``, ``"unknown:gpt-4o"``."""
    if isinstance(model, str):
        return model
    if isinstance(model, dict):
        if not model:
            return "unknown:"
        tag, name = next(iter(model.items()))
        return f"{tag}:{name}"
    return None


def model_value(text: str) -> str | dict[str, str]:
    """The factory's model value back from :func:`model_text` (for price look-ups)."""
    tag, sep, name = text.partition(":")
    return {tag: name} if sep else text


def provider_of(model: str | None) -> str:
    """``openai``, ``anthropic`` or ``other`` from a model text; ``compute`` for executions (no model)."""
    if model is None:
        return "compute"
    name = model.partition(":")[2] if ":" in model else model
    lowered = name.lower()
    if "claude" in lowered or "anthropic" in lowered:
        return "anthropic"
    if lowered.startswith(("gpt", "o1", "o3", "o4", "chatgpt", "davinci", "text-embedding")) or (
        "openai" in lowered
    ):
        return "openai"
    return "other"


_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: object) -> float | None:
    """Unix seconds from an aware ``datetime`` or an RFC 3339 string (0-9 fraction digits); else ``None``."""
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo is not None else None
    if not isinstance(value, str):
        return None
    match = _TS.match(value.strip())
    if not match:
        return None
    fraction = (match.group(2) or "")[:7]
    zone = match.group(3)
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(
            match.group(1).replace("t", "T").replace(" ", "T") + fraction + zone
        ).timestamp()
    except ValueError:
        return None


def _amount(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _range(item: object) -> tuple[float, float, float] | None:
    if not isinstance(item, Mapping):
        return None
    low, mid, high = _amount(item.get("min")), _amount(item.get("expected")), _amount(item.get("max"))
    if low is None or mid is None or high is None or not low <= mid <= high:
        return None
    return low, mid, high


def _digest(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _label(value: object, tag: str) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(next(iter(value.values()), tag)) if value else tag
    return None


@dataclass(frozen=True)
class AppResolver:
    """Which app a record belongs to, from what the root shows.

    In order: the record's ``feature`` matches a feature file of an app; the session's
    ``runtime.json`` names its app folder (``readyInfo.appPath``); the root has a single app.
    Otherwise the app is unknown (``None``), never guessed.
    """

    feature_apps: Mapping[str, str]
    session_app: str | None = None
    only_app: str | None = None

    def app_for(self, feature: str | None) -> str | None:
        """The app of a record with this ``feature``."""
        if feature:
            app = self.feature_apps.get(feature_slug(feature))
            if app:
                return app
        return self.session_app or self.only_app

    @classmethod
    def for_root(cls, root: Path, runtime: Mapping[str, Any] | None = None) -> AppResolver:
        """Read the root's feature files (names only) and the session's runtime document."""
        mapping: dict[str, str] = {}
        for found in feature_files(root):
            mapping.setdefault(found.path.stem, found.app)
        apps: list[str] = []
        with contextlib.suppress(OSError), os.scandir(root / WORKSPACES_DIR) as entries:
            apps = sorted(e.name for e in entries if safe_name(e.name) and e.is_dir())
        return cls(mapping, app_from_runtime(runtime), apps[0] if len(apps) == 1 else None)


def app_from_runtime(runtime: Mapping[str, Any] | None) -> str | None:
    """The app folder named by a ``runtime.json`` (``readyInfo.appPath``'s last part), if usable."""
    if not isinstance(runtime, Mapping):
        return None
    info = runtime.get("readyInfo")
    path = info.get("appPath") if isinstance(info, Mapping) else None
    if not isinstance(path, str):
        return None
    name = re.split(r"[\\/]+", path.strip().rstrip("\\/"))[-1]
    return name if safe_name(name) else None


def read_runtime(session_dir: Path) -> dict[str, Any] | None:
    """The session's ``runtime.json`` (bounded read), or ``None``."""
    try:
        with open(session_dir / RUNTIME_FILE, "rb") as handle:
            data = handle.read(4 * 1024 * 1024 + 1)
        value = json.loads(data) if len(data) <= 4 * 1024 * 1024 else None
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def rows_of_document(
    doc: Mapping[str, Any],
    root: Path | str,
    apps: AppResolver,
    *,
    seen_at: float,
    execution_seen_at: Sequence[float] = (),
    llm_from: int = 0,
) -> list[RecordRow]:
    """The records of one session document (validated, or raw JSON: bad records are skipped).

    ``llm_from`` skips the LLM records before that index (already taken in).
    """
    session_id = _text(doc.get("sessionId"))
    currency = doc.get("currency")
    if session_id is None or currency not in CURRENCIES:
        return []
    root_text = str(root)
    rows: list[RecordRow] = []
    records = doc.get("llmUsage")
    for index, record in enumerate(records if isinstance(records, list) else []):
        if index < llm_from or not isinstance(record, Mapping):
            continue
        row = _llm_row(record, index, session_id, root_text, str(currency), apps, seen_at)
        if row is not None:
            rows.append(row)
    executions = doc.get("executionCosts")
    for index, execution in enumerate(executions if isinstance(executions, list) else []):
        if not isinstance(execution, Mapping):
            continue
        first = execution_seen_at[index] if index < len(execution_seen_at) else seen_at
        row = _execution_row(execution, index, session_id, root_text, str(currency), apps, first)
        if row is not None:
            rows.append(row)
    return rows


def _dated(ts: float | None, seen_at: float) -> tuple[float, Literal["record", "first-seen", "clamped"]]:
    if ts is None:
        return seen_at, "first-seen"
    if ts > seen_at + FUTURE_TOLERANCE:
        return seen_at, "clamped"
    return ts, "record"


def _llm_row(
    record: Mapping[str, Any],
    index: int,
    session_id: str,
    root: str,
    currency: str,
    apps: AppResolver,
    seen_at: float,
) -> RecordRow | None:
    model = model_text(record.get("model"))
    tokens_in, tokens_out = _count(record.get("inputTokens")), _count(record.get("outputTokens"))
    cost = _amount(record.get("cost"))
    ts = parse_timestamp(record.get("timestamp"))
    if model is None or tokens_in is None or tokens_out is None or cost is None or ts is None:
        return None
    agent, station, feature = (_text(record.get(k)) for k in ("agent", "station", "feature"))
    record_id = _text(record.get("id"))
    uid = (
        f"llm:{record_id}"
        if record_id
        else "llmh:"
        + _digest(session_id, index, model, tokens_in, tokens_out, cost, ts, agent, station, feature)
    )
    when, dated_by = _dated(ts, seen_at)
    return RecordRow(
        uid,
        "llm",
        session_id,
        root,
        apps.app_for(feature),
        provider_of(model),
        model,
        agent,
        station,
        feature,
        None,
        tokens_in,
        tokens_out,
        cost,
        cost,
        cost,
        currency,
        when,
        dated_by,
    )


def _execution_row(
    execution: Mapping[str, Any],
    index: int,
    session_id: str,
    root: str,
    currency: str,
    apps: AppResolver,
    first_seen: float,
) -> RecordRow | None:
    kind = _label(execution.get("executionType"), "other")
    cost = _range(execution.get("cost"))
    cpu, memory = _amount(execution.get("cpuMinutes")), _amount(execution.get("memoryGbMinutes"))
    local = execution.get("isLocal")
    if kind is None or cost is None or cpu is None or memory is None or not isinstance(local, bool):
        return None
    uid = "exec:" + _digest(session_id, index, kind, cpu, memory, cost, local)
    return RecordRow(
        uid,
        "execution",
        session_id,
        root,
        apps.app_for(None),
        provider_of(None),
        None,
        None,
        None,
        None,
        kind,
        0,
        0,
        *cost,
        currency,
        first_seen,
        "first-seen",
    )


# --------------------------------------------------------------------------- the store


def default_path() -> Path:
    """``data_dir()/history.sqlite3``."""
    return paths.data_dir() / HISTORY_FILE


def rates_for(target: str, eur_per_usd: float) -> dict[str, float]:
    """Multipliers from each stored currency to ``target``."""
    if target == "EUR":
        return {"USD": eur_per_usd, "EUR": 1.0}
    return {"USD": 1.0, "EUR": 1.0 / eur_per_usd if eur_per_usd > 0 else 1.0}


_SAME = {"USD": 1.0, "EUR": 1.0}


def _iso(day: date | str | None) -> str | None:
    return day.isoformat() if isinstance(day, date) else day


class History:
    """The history database.  Thread-safe (one connection behind a lock); cheap to keep open.

    ``path`` defaults to :func:`default_path`; ``tz`` is the zone that defines calendar days (the
    machine's local zone when ``None``).  Raises :class:`HistoryError` when the file cannot be used.
    """

    def __init__(self, path: Path | None = None, *, tz: tzinfo | None = None) -> None:
        self.path = path or default_path()
        self.tz = tz
        self._lock = threading.RLock()
        self._days: dict[int, str] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the history {self.path}: {exc}") from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise HistoryError(f"the history {self.path} cannot use WAL (journal mode {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            migrate(self._db)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise HistoryError(f"the history {self.path} is not usable: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        """Close the connection (further calls fail)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``); rolled back on any error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise HistoryError(f"the history is busy or unusable: {exc}") from exc
            try:
                yield self._db
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise HistoryError(f"could not write to the history: {exc}") from exc
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise HistoryError(f"could not commit to the history: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Run a read query; every row."""
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise HistoryError(f"history query failed: {exc}") from exc

    @property
    def schema_version(self) -> int:
        """The applied schema version (``PRAGMA user_version``)."""
        return int(self.query("PRAGMA user_version")[0][0])

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says ``ok``."""
        return [tuple(r) for r in self.query("PRAGMA integrity_check")] == [("ok",)]

    # ------------------------------------------------------------------ days

    def day_of(self, ts: float) -> date:
        """The calendar day of a Unix time in the history's zone."""
        if self.tz is None:
            return datetime.fromtimestamp(ts).date()
        return datetime.fromtimestamp(ts, self.tz).date()

    def _day_text(self, ts: float) -> str:
        """:meth:`day_of` as ``YYYY-MM-DD``, cached per quarter hour (every zone offset is a multiple
        of 15 minutes, so a day never changes inside one)."""
        bucket = int(ts // 900)
        found = self._days.get(bucket)
        if found is None:
            if len(self._days) > 100_000:
                self._days.clear()
            found = self._days[bucket] = self.day_of(bucket * 900.0).isoformat()
        return found

    def today(self, now: datetime | None = None) -> date:
        """Today in the history's zone."""
        return self.day_of((now or datetime.now().astimezone()).timestamp())

    # ------------------------------------------------------------------ settings

    def get_meta(self, key: str) -> str | None:
        """A stored setting."""
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Store (or with ``None`` remove) a setting."""
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def retention_days(self) -> int | None:
        """Records older than this many days are deleted (``None``: keep everything, the default)."""
        value = self.get_meta("retention_days")
        return int(value) if value and value.isdigit() and int(value) > 0 else None

    def set_retention(self, days: int | None, now: datetime | None = None) -> int:
        """Change the retention and apply it at once; returns the number of records deleted."""
        if days is not None and days <= 0:
            raise ValueError("retention must be a positive number of days, or None to keep all")
        self.set_meta("retention_days", None if days is None else str(days))
        return self.apply_retention(now)

    def retention_cutoff(self, now: datetime | None = None) -> date | None:
        """The first day kept, or ``None`` when everything is kept."""
        days = self.retention_days
        return None if days is None else self.today(now) - timedelta(days=days - 1)

    def apply_retention(self, now: datetime | None = None) -> int:
        """Delete records (and roll-up days) before the retention cutoff; returns records deleted."""
        cutoff = self.retention_cutoff(now)
        if cutoff is None:
            return 0
        with self.transaction() as db:
            deleted = db.execute("DELETE FROM records WHERE day < ?", (cutoff.isoformat(),)).rowcount
            db.execute("DELETE FROM daily WHERE day < ?", (cutoff.isoformat(),))
            db.execute("DELETE FROM sessions WHERE last_seen < ?", (_midnight(cutoff, self.tz),))
        return int(deleted)

    # ------------------------------------------------------------------ taking records in

    def ingest_rows(self, rows: Iterable[RecordRow], now: datetime | None = None) -> int:
        """Store records not seen before, in one transaction; returns how many were new."""
        seen_at = (now or datetime.now().astimezone()).timestamp()
        cutoff = self.retention_cutoff(now)
        limit = cutoff.isoformat() if cutoff else ""
        values = []
        for row in rows:
            day = self._day_text(row.ts)
            if day < limit:
                continue
            values.append((*_row_values(row), day, row.dated_by, seen_at))
        if not values:
            return 0
        with self.transaction() as db:
            return self._insert(db, values)

    def _insert(self, db: sqlite3.Connection, values: list[tuple[Any, ...]]) -> int:
        """Insert the new ones among ``values`` and add them to the roll-up; returns how many.

        New rows get ids above the current maximum (``INTEGER PRIMARY KEY`` without AUTOINCREMENT),
        and the transaction is the only writer, so ``id > before`` is exactly this batch.
        """
        before = db.execute("SELECT COALESCE(MAX(id), 0) FROM records").fetchone()[0]
        db.executemany(_INSERT_SQL, values)
        added = int(db.execute("SELECT COUNT(*) FROM records WHERE id > ?", (before,)).fetchone()[0])
        if added:
            _roll_up(db, before)
        return added

    def ingest_document(
        self,
        doc: Mapping[str, Any],
        root: Path,
        *,
        apps: AppResolver | None = None,
        execution_seen_at: Sequence[float] = (),
        now: datetime | None = None,
        file_stamp: tuple[int, int] | None = None,
    ) -> int:
        """Take in one session document (validated or raw JSON); returns the number of new records.

        With ``file_stamp`` (the file's ``(size, mtime_ns)``, taken *before* reading it) a file that
        has not changed since it was last taken in is skipped.  Either way, when the records the last
        pass ended with are still in place, only the records after them are looked at.
        """
        session_id = _text(doc.get("sessionId"))
        if session_id is None:
            return 0
        records = doc.get("llmUsage")
        executions = doc.get("executionCosts")
        n_llm = len(records) if isinstance(records, list) else 0
        n_exec = len(executions) if isinstance(executions, list) else 0
        known = self.query(
            "SELECT file_size, file_mtime_ns, llm_seen, last_llm_id FROM sessions WHERE session_id = ?",
            (session_id,),
        )
        llm_from = 0
        if known:
            size, mtime_ns, seen, last = known[0]
            if file_stamp is not None and (size, mtime_ns) == tuple(file_stamp):
                return 0
            if 0 < seen <= n_llm and isinstance(records, list):
                previous = records[seen - 1]
                if isinstance(previous, Mapping) and last is not None and previous.get("id") == last:
                    llm_from = seen
        when = now or datetime.now().astimezone()
        seen_at = when.timestamp()
        resolver = apps or AppResolver.for_root(root, read_runtime(_session_dir(doc, root)))
        rows = rows_of_document(
            doc, root, resolver, seen_at=seen_at, execution_seen_at=execution_seen_at, llm_from=llm_from
        )
        cutoff = self.retention_cutoff(now)
        limit = cutoff.isoformat() if cutoff else ""
        values = []
        for row in rows:
            day = self._day_text(row.ts)
            if day >= limit:
                values.append((*_row_values(row), day, row.dated_by, seen_at))
        with self.transaction() as db:
            added = self._insert(db, values) if values else 0
            self._upsert_session(db, doc, session_id, root, resolver.app_for(None), seen_at, n_llm, n_exec)
            db.execute(
                """UPDATE sessions SET file_size = ?, file_mtime_ns = ?, llm_seen = ?, last_llm_id = ?
                   WHERE session_id = ?""",
                (*(file_stamp or (None, None)), n_llm, _last_id(records), session_id),
            )
        return added

    def _upsert_session(
        self,
        db: sqlite3.Connection,
        doc: Mapping[str, Any],
        session_id: str,
        root: Path,
        app: str | None,
        seen_at: float,
        n_llm: int,
        n_exec: int,
    ) -> None:
        ledger = doc.get("sessionCost")
        total = _range(ledger.get("total")) if isinstance(ledger, Mapping) else None
        infra = doc.get("infraCost")
        monthly = _range(infra.get("total")) if isinstance(infra, Mapping) else None
        updated = doc.get("updatedAt")
        updated_text = updated.isoformat() if isinstance(updated, datetime) else _text(updated)
        low, mid, high = total or (0.0, 0.0, 0.0)
        db.execute(
            f"""INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (session_id) DO UPDATE SET root = excluded.root,
                   app = COALESCE(excluded.app, sessions.app), currency = excluded.currency,
                   last_seen = excluded.last_seen, ledger_min = excluded.ledger_min,
                   ledger_expected = excluded.ledger_expected, ledger_max = excluded.ledger_max,
                   llm_calls = excluded.llm_calls, executions = excluded.executions,
                   monthly_infra = excluded.monthly_infra, updated_at = excluded.updated_at""",
            (
                session_id,
                str(root),
                app,
                str(doc.get("currency")),
                seen_at,
                seen_at,
                low,
                mid,
                high,
                n_llm,
                n_exec,
                monthly[1] if monthly else 0.0,
                updated_text,
            ),
        )

    def _unchanged(self, session_id: str, stamp: tuple[int, int]) -> bool:
        """The session's file was taken in at exactly this ``(size, mtime_ns)``."""
        rows = self.query("SELECT file_size, file_mtime_ns FROM sessions WHERE session_id = ?", (session_id,))
        return bool(rows) and tuple(rows[0]) == tuple(stamp)

    def ingest_session(
        self,
        loaded: LoadedSession,
        root: Path,
        *,
        execution_seen_at: Sequence[float] = (),
        runtime: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> int:
        """Take in a loaded session's records (once each); returns how many were new."""
        stamp = (loaded.size, loaded.mtime_ns) if loaded.mtime_ns else None
        if stamp is not None and self._unchanged(loaded.session_id, stamp):
            return 0
        session_dir = loaded.path.parent if loaded.path else _session_dir(loaded.doc, root)
        apps = AppResolver.for_root(root, runtime if runtime is not None else read_runtime(session_dir))
        return self.ingest_document(
            loaded.doc, root, apps=apps, execution_seen_at=execution_seen_at, now=now, file_stamp=stamp
        )

    def ingest_snapshot(self, snapshot: Snapshot, now: datetime | None = None) -> int:
        """Take in every loaded session of a watcher snapshot; returns how many records were new."""
        added = 0
        for view in snapshot.sessions:
            if view.loaded is None:
                continue
            added += self.ingest_session(
                view.loaded,
                view.root,
                execution_seen_at=view.execution_seen_at,
                runtime=view.runtime,
                now=now,
            )
        return added

    def ingest_root(self, root: Path, now: datetime | None = None) -> tuple[int, list[str]]:
        """Load and take in every session under a root; returns (new records, problems)."""
        from mity_cost.core.factory.layout import session_files
        from mity_cost.core.factory.loading import LoadError, load_session

        added = 0
        problems: list[str] = []
        for found in session_files(root):
            try:
                info = found.path.stat()
            except OSError:
                continue
            if self._unchanged(found.folder, (info.st_size, info.st_mtime_ns)):
                continue
            loaded = load_session(found.path)
            if isinstance(loaded, LoadError):
                problems.append(loaded.describe())
                continue
            added += self.ingest_session(loaded, root, now=now)
        return added, problems

    # ------------------------------------------------------------------ queries

    def totals(
        self,
        dim: Dimension = "overall",
        value: str | None = None,
        since: date | str | None = None,
        until: date | str | None = None,
        *,
        rates: Mapping[str, float] = _SAME,
        kinds: Sequence[str] = ("llm", "execution"),
    ) -> Totals:
        """Summed records between two days (inclusive), for one dimension value (or all)."""
        rows = self._daily_rows(dim, value, since, until, rates, kinds, group="")
        return rows[0][1] if rows else ZERO

    def by_value(
        self,
        dim: Dimension,
        since: date | str | None = None,
        until: date | str | None = None,
        *,
        rates: Mapping[str, float] = _SAME,
        kinds: Sequence[str] = ("llm", "execution"),
    ) -> dict[str, Totals]:
        """Totals per value of a dimension (``""`` for records without one) between two days."""
        return dict(self._daily_rows(dim, None, since, until, rates, kinds, group="value"))

    def by_day(
        self,
        dim: Dimension = "overall",
        value: str | None = None,
        since: date | str | None = None,
        until: date | str | None = None,
        *,
        rates: Mapping[str, float] = _SAME,
        kinds: Sequence[str] = ("llm", "execution"),
    ) -> dict[str, Totals]:
        """Totals per day (``YYYY-MM-DD``; days without records are absent)."""
        return dict(self._daily_rows(dim, value, since, until, rates, kinds, group="day"))

    def by_day_and_value(
        self,
        dim: Dimension,
        since: date | str | None = None,
        until: date | str | None = None,
        *,
        rates: Mapping[str, float] = _SAME,
        kinds: Sequence[str] = ("llm", "execution"),
    ) -> list[tuple[str, str, Totals]]:
        """``(day, value, totals)`` for every day and value with records."""
        rows = self._daily_rows(dim, None, since, until, rates, kinds, group="day, value")
        return [(str(key[0]), str(key[1]), totals) for key, totals in rows]

    def _daily_rows(
        self,
        dim: Dimension,
        value: str | None,
        since: date | str | None,
        until: date | str | None,
        rates: Mapping[str, float],
        kinds: Sequence[str],
        group: str,
    ) -> list[tuple[Any, Totals]]:
        if dim not in ("overall", *DIMENSIONS):
            raise ValueError(f"unknown dimension {dim!r}")
        where = ["dim = ?"]
        params: list[Any] = [dim]
        if value is not None:
            where.append("value = ?")
            params.append(value)
        if since is not None:
            where.append("day >= ?")
            params.append(_iso(since))
        if until is not None:
            where.append("day <= ?")
            params.append(_iso(until))
        where.append(f"kind IN ({', '.join('?' * len(kinds))})")
        params.extend(kinds)
        rate = "(CASE currency WHEN 'USD' THEN ? ELSE ? END)"
        rate_params = [rates.get("USD", 1.0), rates.get("EUR", 1.0)]
        select = f"{group}, " if group else ""
        sql = (
            f"SELECT {select}SUM(cost_min * {rate}), SUM(cost_expected * {rate}), SUM(cost_max * {rate}), "
            f"SUM(calls), SUM(input_tokens), SUM(output_tokens) FROM daily WHERE {' AND '.join(where)}"
            + (f" GROUP BY {group} ORDER BY {group}" if group else "")
        )
        rows = self.query(sql, rate_params * 3 + params)
        width = len(group.split(",")) if group else 0
        out: list[tuple[Any, Totals]] = []
        for row in rows:
            if row[width + 3] is None:
                continue
            key = row[0] if width == 1 else tuple(row[:width])
            out.append((key, Totals(row[width], row[width + 1], row[width + 2], *map(int, row[width + 3 :]))))
        return out

    def session_totals(
        self,
        session_id: str,
        since: date | str | None = None,
        until: date | str | None = None,
        *,
        rates: Mapping[str, float] = _SAME,
        kinds: Sequence[str] = ("llm", "execution"),
        by: str | None = None,
    ) -> dict[str, Totals]:
        """One session's records summed (key ``""``), or per value of ``by`` (a record column)."""
        if by is not None and by not in DIMENSIONS:
            raise ValueError(f"unknown dimension {by!r}")
        column = f"COALESCE({by}, '')" if by else "''"
        where = ["session_id = ?", f"kind IN ({', '.join('?' * len(kinds))})"]
        params: list[Any] = [session_id, *kinds]
        if since is not None:
            where.append("day >= ?")
            params.append(_iso(since))
        if until is not None:
            where.append("day <= ?")
            params.append(_iso(until))
        rate = "(CASE currency WHEN 'USD' THEN ? ELSE ? END)"
        rate_params = [rates.get("USD", 1.0), rates.get("EUR", 1.0)]
        rows = self.query(
            f"""SELECT {column}, SUM(cost_min * {rate}), SUM(cost_expected * {rate}), SUM(cost_max * {rate}),
                       COUNT(*), SUM(input_tokens), SUM(output_tokens)
                FROM records WHERE {" AND ".join(where)} GROUP BY 1 ORDER BY 1""",
            rate_params * 3 + params,
        )
        return {str(r[0]): Totals(r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6])) for r in rows}

    def session(self, session_id: str) -> SessionInfo | None:
        """What the history remembers of one session."""
        rows = self.query(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,))
        return _session_info(rows[0]) if rows else None

    def sessions(self) -> list[SessionInfo]:
        """Every session the history has seen, most recently seen first."""
        rows = self.query(f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY last_seen DESC")
        return [_session_info(r) for r in rows]

    def first_day(self) -> date | None:
        """The first day with a record."""
        rows = self.query("SELECT MIN(day) FROM daily WHERE dim = 'overall'")
        return date.fromisoformat(rows[0][0]) if rows and rows[0][0] else None

    def record_count(self) -> int:
        """How many records the history holds."""
        return int(self.query("SELECT COUNT(*) FROM records")[0][0])

    def models_used(
        self,
        since: date | str | None = None,
        until: date | str | None = None,
        *,
        dim: Dimension = "overall",
        value: str | None = None,
        session_id: str | None = None,
    ) -> set[str]:
        """The models of the LLM records between two days, filtered by one dimension value or a session."""
        if session_id is None and dim == "overall":
            return {k for k in self.by_value("model", since, until, kinds=("llm",)) if k}
        where = ["kind = 'llm'"]
        params: list[Any] = []
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        if dim != "overall":
            if dim not in DIMENSIONS:
                raise ValueError(f"unknown dimension {dim!r}")
            where.append(f"COALESCE({dim}, '') = ?")
            params.append(value or "")
        if since is not None:
            where.append("day >= ?")
            params.append(_iso(since))
        if until is not None:
            where.append("day <= ?")
            params.append(_iso(until))
        models = {
            str(r[0])
            for r in self.query("SELECT DISTINCT model FROM records WHERE " + " AND ".join(where), params)
        }
        return {m for m in models if m}

    def records(
        self,
        since: date | str | None = None,
        until: date | str | None = None,
        session_id: str | None = None,
        batch: int = 5000,
    ) -> Iterator[StoredRecord]:
        """Every record between two days (oldest first), streamed in batches."""
        where = ["id > ?"]
        params: list[Any] = []
        if since is not None:
            where.append("day >= ?")
            params.append(_iso(since))
        if until is not None:
            where.append("day <= ?")
            params.append(_iso(until))
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        columns = ", ".join(c for c in _COLUMNS if c != "seen_at")
        last = 0
        while True:
            rows = self.query(
                f"SELECT id, {columns} FROM records WHERE {' AND '.join(where)} "
                f"ORDER BY id LIMIT {int(batch)}",
                [last, *params],
            )
            if not rows:
                return
            for row in rows:
                yield _stored(row[1:])
            last = rows[-1][0]

    def rebuild_rollup(self) -> None:
        """Recompute the daily roll-up from the records (repair; normally never needed)."""
        with self.transaction() as db:
            _rebuild_rollup(db)


def _row_values(row: RecordRow) -> tuple[Any, ...]:
    return (
        row.uid,
        row.kind,
        row.session_id,
        row.root,
        row.app,
        row.provider,
        row.model,
        row.agent,
        row.station,
        row.feature,
        row.execution_type,
        row.input_tokens,
        row.output_tokens,
        row.cost_min,
        row.cost_expected,
        row.cost_max,
        row.currency,
        row.ts,
    )


def _stored(row: Sequence[Any]) -> StoredRecord:
    from datetime import UTC

    values = list(row)
    ts = values[17]
    values[17] = datetime.fromtimestamp(ts, UTC)
    return StoredRecord(*values)


_SESSION_COLUMNS = (
    "session_id, root, app, currency, first_seen, last_seen, ledger_min, ledger_expected, ledger_max, "
    "llm_calls, executions, monthly_infra, updated_at"
)


def _session_info(row: Sequence[Any]) -> SessionInfo:
    return SessionInfo(
        session_id=row[0],
        root=row[1],
        app=row[2],
        currency=row[3],
        first_seen=row[4],
        last_seen=row[5],
        ledger=Totals(row[6], row[7], row[8], int(row[9])),
        executions=int(row[10]),
        monthly_infra=row[11],
        updated_at=row[12],
    )


def _last_id(records: object) -> str | None:
    if isinstance(records, list) and records and isinstance(records[-1], Mapping):
        value = records[-1].get("id")
        return value if isinstance(value, str) else None
    return None


def _session_dir(doc: Mapping[str, Any], root: Path) -> Path:
    session_id = _text(doc.get("sessionId")) or ""
    return root.joinpath(".mity", "chat", session_id if safe_name(session_id) else "_")


def _midnight(day: date, tz: tzinfo | None) -> float:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return start.timestamp() if tz is not None else time.mktime(start.timetuple())
