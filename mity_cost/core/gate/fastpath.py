"""The fast path for the hot commands (``check-threshold``, ``gate`` under the threshold).

Stdlib only, so that a command an agent runs before every step starts in a few tens of milliseconds.
It reads a session's ``cost.json`` with ``json.loads`` and takes only what the decision needs
(``sessionCost.total``, ``sessionCost.breakdown.llm``, ``currency``), with cheap but real checks:
finite, non-negative numbers with min <= expected <= max.  Anything off raises :class:`QuickError`
(which file, why) and callers fail closed on it.  The user's answer in ``cost.decision.json`` is read
with ``core/gate/decisions.py`` (stdlib too); a refused decision file approves nothing.  The full check of
every record is ``core/factory/loading.py``'s job.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from mity_cost.core.factory.figures import CATEGORIES, Ledger
from mity_cost.core.factory.layout import session_path
from mity_cost.core.figures.totals import session_total
from mity_cost.core.gate import decisions
from mity_cost.core.gate.decisions import Decision
from mity_cost.core.money import CURRENCIES, Range
from mity_cost.core.settings import Settings

MAX_FILE_BYTES = 512 * 1024 * 1024
"""Same limit as ``core/factory/loading.py``: larger files are refused unread."""
_BOM = b"\xef\xbb\xbf"

QuickKind = Literal["incomplete", "invalid", "unreadable", "too-large", "missing"]


class QuickError(Exception):
    """A file the fast path cannot trust: which one, what kind of problem, why."""

    def __init__(self, path: Path | None, kind: QuickKind, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind
        self.message = message

    @property
    def retryable(self) -> bool:
        """True when reading again later may succeed (the file is being written, or not there yet)."""
        return self.kind in ("incomplete", "unreadable", "missing")

    def describe(self) -> str:
        """One line for a person: ``<file>: <kind>: <why>``."""
        name = str(self.path) if self.path else "<data>"
        return f"{name}: {self.kind}: {self.message}"


# --------------------------------------------------------------------------------------------
# Reading bytes and JSON
# --------------------------------------------------------------------------------------------


def read_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (never blocks on a FIFO or a device)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise QuickError(path, "missing", "no such file") from None
    except (OSError, ValueError) as exc:
        raise QuickError(path, "unreadable", _why(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise QuickError(path, "invalid", "not a regular file")
        if info.st_size > max_bytes:
            raise QuickError(path, "too-large", f"{info.st_size} bytes, the limit is {max_bytes}")
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 4 * 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise QuickError(path, "unreadable", _why(exc)) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise QuickError(path, "too-large", f"more than {max_bytes} bytes")
    return data


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def parse_json(data: bytes, path: Path | None = None) -> Any:
    """UTF-8 JSON (a leading BOM allowed); empty or cut short is ``incomplete``, never a value."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QuickError(path, "invalid", f"not UTF-8 (byte {exc.start})") from None
    body = text.rstrip()
    if not body.strip():
        raise QuickError(path, "incomplete", "the file is empty (still being written?)")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        if _cut_short(body, exc):
            raise QuickError(path, "incomplete", f"cut short: {exc.msg} (still being written?)") from None
        raise QuickError(path, "invalid", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise QuickError(path, "invalid", "nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with too many digits
        raise QuickError(path, "invalid", str(exc)) from None


_LITERALS = ("true", "false", "null")
_NUMBER_CHARS = frozenset("-+.eE0123456789")


def _cut_short(body: str, exc: json.JSONDecodeError) -> bool:
    """True when the text is a prefix of some JSON (the error is at its very end)."""
    if exc.pos >= len(body) or exc.msg.startswith("Unterminated string"):
        return True
    rest = body[exc.pos :]
    if len(rest) > 8:
        return False
    return any(word.startswith(rest) for word in _LITERALS) or all(c in _NUMBER_CHARS for c in rest)


# --------------------------------------------------------------------------------------------
# Checks on the few values read
# --------------------------------------------------------------------------------------------


def _field(doc: Any, dotted: str, path: Path | None) -> Any:
    value = doc
    for part in dotted.split("."):
        if not isinstance(value, dict):
            raise QuickError(path, "invalid", f"{dotted}: expected an object above {part!r}")
        if part not in value:
            raise QuickError(path, "invalid", f"{dotted}: missing")
        value = value[part]
    return value


def _amount(value: Any, where: str, path: Path | None) -> float:
    """A finite, non-negative JSON number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QuickError(path, "invalid", f"{where}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise QuickError(path, "invalid", f"{where}: number too large") from None
    if not math.isfinite(number):
        raise QuickError(path, "invalid", f"{where}: not a finite number")
    if number < 0:
        raise QuickError(path, "invalid", f"{where}: negative ({number})")
    return number


def _range(doc: Any, dotted: str, path: Path | None) -> tuple[float, float, float]:
    item = _field(doc, dotted, path)
    if not isinstance(item, dict):
        raise QuickError(path, "invalid", f"{dotted}: expected an object")
    low, mid, high = (
        _amount(_field(item, k, path), f"{dotted}.{k}", path) for k in ("min", "expected", "max")
    )
    if not low <= mid <= high:
        raise QuickError(
            path, "invalid", f"{dotted}: range out of order (min {low}, expected {mid}, max {high})"
        )
    return low, mid, high


def _currency(value: Any, where: str, path: Path | None) -> str:
    if value not in CURRENCIES:
        raise QuickError(path, "invalid", f"{where}: {value!r} is not USD or EUR")
    return str(value)


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------

Triple = tuple[float, float, float]


class QuickSession(NamedTuple):
    """The figures of one ``cost.json`` a threshold decision needs: its ledger, in the file's currency."""

    session_id: str
    path: Path | None
    ledger: Ledger

    @property
    def currency(self) -> str:
        """The document's currency."""
        return self.ledger.currency

    @property
    def total(self) -> Triple:
        """The ledger's total (min, expected, max) as written."""
        return _triple(self.ledger.total)

    @property
    def llm(self) -> Triple:
        """The ledger's LLM part (min, expected, max) as written."""
        return _triple(self.ledger.llm)

    def display_total(self, settings: Settings) -> Triple:
        """min / expected / max in the display currency, by the one rule (``figures.totals``)."""
        return _triple(session_total(self.ledger, settings))


def _triple(value: Range) -> Triple:
    return value.min, value.expected, value.max


def parse_session(data: bytes, path: Path | None = None) -> QuickSession:
    """The ledger of a ``cost.json``; raises :class:`QuickError`."""
    doc = parse_json(data, path)
    if not isinstance(doc, dict):
        raise QuickError(path, "invalid", f"expected a JSON object, got {type(doc).__name__}")
    session_id = _field(doc, "sessionId", path)
    if not isinstance(session_id, str):
        raise QuickError(path, "invalid", "sessionId: expected a string")
    currency = _currency(_field(doc, "currency", path), "currency", path)
    ledger_currency = _field(doc, "sessionCost.currency", path)
    _currency(ledger_currency, "sessionCost.currency", path)
    total = _range(doc, "sessionCost.total", path)
    parts = [_range(doc, f"sessionCost.breakdown.{name}", path) for name in CATEGORIES]
    ledger = Ledger(currency, Range(*total), *(Range(*part) for part in parts))
    return QuickSession(session_id, path, ledger)


def read_session(path: Path, attempts: int = 5, pause: float = 0.02) -> QuickSession:
    """Read a ``cost.json``, trying again a few times while it is cut short (being written)."""
    for attempt in range(attempts):
        try:
            return parse_session(read_bytes(path), path)
        except QuickError as exc:
            if exc.kind != "incomplete" or attempt == attempts - 1:
                raise
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def find_session(roots: Iterable[Path], session_id: str) -> Path:
    """The ``cost.json`` of a session under the first root that has it; raises :class:`QuickError`."""
    candidates: list[Path] = []
    for root in roots:
        try:
            path = session_path(root, session_id)
        except ValueError as exc:
            raise QuickError(None, "invalid", str(exc)) from None
        if path.exists() or path.is_symlink():
            return path
        candidates.append(path)
    where = ", ".join(str(c) for c in candidates) or "(no root given)"
    raise QuickError(None, "missing", f"no session {session_id!r} (looked for {where})")


# --------------------------------------------------------------------------------------------
# Decisions and the check
# --------------------------------------------------------------------------------------------


def read_decision(session_dir: Path, session_id: str) -> tuple[Decision | None, str | None]:
    """The session's decision (``core/gate/decisions.py``), and a note when a file is there but refused.

    A refused file (broken, hostile, for another session) approves nothing: fail closed.
    """
    decision = decisions.read_decision(session_dir, session_id)
    if decision is None:
        decision = decisions.read_decision(session_dir, session_dir.name)
    if decision is not None:
        return decision, None
    path = decisions.decision_path(session_dir)
    if os.path.lexists(path):
        return None, f"{path}: ignored (not a valid decision for session {session_id!r}); it approves nothing"
    return None, None


class QuickCheck(NamedTuple):
    """A session's total against the threshold and what the user approved, in the display currency."""

    session: QuickSession
    decision: Decision | None
    """The decision, its amount converted to the display currency."""
    total: Triple
    extra: float
    threshold: float
    currency: str
    notes: tuple[str, ...] = ()

    @property
    def limit(self) -> float:
        """How far the session may go without asking: the threshold, or what a ``continue`` approved."""
        return decisions.allowed_limit(self.threshold, self.decision)

    @property
    def paused(self) -> bool:
        """The user paused the session: nothing may go on until they continue it."""
        return self.decision is not None and self.decision.decision == "pause"

    @property
    def projected(self) -> float:
        """The expected total plus the extra amount asked about."""
        return self.total[1] + self.extra

    @property
    def within(self) -> bool:
        """Not paused, and the projected total not over the limit (strictly over, as the factory says)."""
        return not decisions.needs_confirmation(self.projected, self.threshold, self.decision)

    @property
    def status(self) -> str:
        """``ok``, ``over`` or ``paused``."""
        if self.paused:
            return "paused"
        return "ok" if self.within else "over"

    def describe(self, symbol: str) -> str:
        """One line for a person."""
        sid = self.session.session_id
        amount = f"{symbol}{self.total[1]:.2f}"
        if self.extra:
            amount += f" + {symbol}{self.extra:.2f}"
        if self.paused and self.decision is not None:
            when = decisions.format_timestamp(self.decision.decided_at)
            return f"session {sid}: {amount}; paused by the user at {when}"
        limit = self.limit
        if limit > self.threshold:
            bound = f"approved limit {symbol}{limit:.2f} (threshold {symbol}{self.threshold:.2f})"
        else:
            bound = f"threshold {symbol}{self.threshold:.2f}"
        word = "within" if self.within else "over"
        return f"session {sid}: {amount} is {word} the {bound}"

    def to_json(self) -> dict[str, Any]:
        """Stable JSON for ``check-threshold --json`` (amounts in ``currency``, the display currency)."""
        decision = self.decision
        return {
            "sessionId": self.session.session_id,
            "path": str(self.session.path) if self.session.path else None,
            "status": self.status,
            "within": self.within,
            "totalExpected": self.total[1],
            "totalMin": self.total[0],
            "totalMax": self.total[2],
            "extra": self.extra,
            "threshold": self.threshold,
            "limit": self.limit,
            "decision": decision.decision if decision else None,
            "approvedUpTo": decision.approved_up_to if decision else None,
            "decidedAt": decisions.format_timestamp(decision.decided_at) if decision else None,
            "currency": self.currency,
            "notes": list(self.notes),
        }


def evaluate(
    session: QuickSession,
    decision: Decision | None,
    settings: Settings,
    extra: float = 0.0,
    notes: tuple[str, ...] = (),
) -> QuickCheck:
    """Compare a session (plus ``extra``, already in the display currency) with the allowed limit."""
    if decision is not None:
        decision = decisions.in_currency(decision, settings.currency, settings.convert)
    total = session.display_total(settings)
    return QuickCheck(session, decision, total, extra, settings.threshold, settings.currency, notes)


def check(roots: Iterable[Path], session_id: str, settings: Settings, extra: float = 0.0) -> QuickCheck:
    """Find, read and evaluate a session; raises :class:`QuickError` on anything that is off."""
    path = find_session(roots, session_id)
    session = read_session(path)
    decision, note = read_decision(path.parent, session.session_id)
    return evaluate(session, decision, settings, extra, (note,) if note else ())
