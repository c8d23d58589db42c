"""How close a session is to the threshold, and which desktop warnings that deserves.

Qt-free.  :func:`level_for` colours the badge; :class:`WarningLatch` decides when a warning fires:
once per configured level per session, latched (a decrease, a duplicate event or a repeated snapshot
never re-arms it; only a new session id starts a new latch).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mity_cost.core.settings import DEFAULT_WARNING_LEVELS


class Level(enum.IntEnum):
    """The badge's colour band, by the fraction of the threshold reached (ordered)."""

    OK = 0
    """Under 50 %."""
    NOTICE = 1
    """50 % to under 75 %."""
    WARNING = 2
    """75 % to under 90 %."""
    CRITICAL = 3
    """90 % up to and including 100 %."""
    OVER = 4
    """Over 100 %."""

    @property
    def label(self) -> str:
        """A word for people: ``ok``, ``notice``, ``warning``, ``critical``, ``over``."""
        return self.name.lower()


def level_for(fraction: float) -> Level:
    """The level for ``total / threshold``.

    Boundaries belong to the higher band (exactly 50 % is NOTICE) except 100 %, which is still
    CRITICAL: a session is over the threshold only when its total is greater than it, as the factory
    says.  Infinity (a positive total against a zero threshold) and NaN are OVER: an amount we cannot
    compare must never look safe.
    """
    if math.isnan(fraction) or fraction > 1.0:
        return Level.OVER
    if fraction >= 0.9:
        return Level.CRITICAL
    if fraction >= 0.75:
        return Level.WARNING
    if fraction >= 0.5:
        return Level.NOTICE
    return Level.OK


class Severity(enum.Enum):
    """How loud a desktop warning is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def severity_for(percent: int) -> Severity:
    """Info under 75 %, warning under 90 %, critical from 90 % (so 50 info, 75 warning, 90/100 critical)."""
    if percent >= 90:
        return Severity.CRITICAL
    if percent >= 75:
        return Severity.WARNING
    return Severity.INFO


def clean_levels(levels: Iterable[int | float]) -> tuple[int, ...]:
    """Whole percentages in (0, 1000], sorted, without duplicates; the defaults when none is left."""
    clean = sorted(
        {int(v) for v in levels if isinstance(v, int | float) and math.isfinite(v) and 0 < v <= 1000}
    )
    return tuple(clean) or DEFAULT_WARNING_LEVELS


def parse_levels(text: str) -> tuple[int, ...] | str:
    """``"50, 75, 90, 100"`` as sorted whole percentages, or a message saying what is wrong."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    if not parts:
        return "give at least one level, e.g. 50, 75, 90, 100"
    levels: set[int] = set()
    for part in parts:
        try:
            value = int(part.strip().rstrip("%"))
        except ValueError:
            return f"{part!r} is not a whole percentage"
        if not 0 < value <= 1000:
            return f"{value} is outside 1–1000 %"
        levels.add(value)
    return tuple(sorted(levels))


@dataclass(frozen=True)
class ThresholdWarning:
    """One warning to show: ``session_id`` reached ``percent`` % of the threshold."""

    session_id: str
    percent: int
    severity: Severity
    total: float
    threshold: float

    @property
    def fraction(self) -> float:
        """``total / threshold`` (infinite for a zero threshold)."""
        if self.threshold > 0:
            return self.total / self.threshold
        return math.inf

    @property
    def over(self) -> bool:
        """True when the total is past the threshold itself."""
        return self.total > self.threshold


def crossed(total: float, threshold: float, percent: int) -> bool:
    """True when ``total`` has reached ``percent`` % of ``threshold`` (a zero threshold: any spend)."""
    if not math.isfinite(total):
        return True
    if threshold <= 0:
        return total > 0
    # A small tolerance so 0.75 of 1.00 counts as 75 % despite binary floating point.
    return total >= threshold * percent / 100.0 * (1 - 1e-9)


class WarningLatch:
    """Remembers which warning levels already fired for which session.

    ``observe`` returns at most one warning per call: the highest level newly reached.  Lower levels
    reached at the same time are latched silently (one notification, not four, when the app first
    sees a session that is already at 95 %).
    """

    def __init__(self, levels: Iterable[int | float] = DEFAULT_WARNING_LEVELS) -> None:
        self._levels = clean_levels(levels)
        self._fired: dict[str, set[int]] = {}

    @property
    def levels(self) -> tuple[int, ...]:
        """The configured levels, in percent, ascending."""
        return self._levels

    def set_levels(self, levels: Iterable[int | float]) -> None:
        """Change the levels; what already fired stays fired."""
        self._levels = clean_levels(levels)

    def fired(self, session_id: str) -> frozenset[int]:
        """The levels already fired (or latched) for this session."""
        return frozenset(self._fired.get(session_id, ()))

    def sessions(self) -> tuple[str, ...]:
        """Every session with a latch, oldest first."""
        return tuple(self._fired)

    def _due(self, session_id: str, total: float, threshold: float) -> list[int]:
        done = self._fired.get(session_id, set())
        return [p for p in self._levels if p not in done and crossed(total, threshold, p)]

    def observe(self, session_id: str, total: float, threshold: float) -> ThresholdWarning | None:
        """Record the session's current total; the warning to show now, if one is due."""
        due = self._due(session_id, total, threshold)
        if not due:
            return None
        self._fired.setdefault(session_id, set()).update(due)
        top = due[-1]
        return ThresholdWarning(session_id, top, severity_for(top), total, threshold)

    def prime(self, session_id: str, total: float, threshold: float) -> None:
        """Latch every level the session has already reached, without warning (sessions seen at start)."""
        due = self._due(session_id, total, threshold)
        if due:
            self._fired.setdefault(session_id, set()).update(due)

    def forget(self, session_id: str) -> None:
        """Drop one session's latch (its levels can fire again)."""
        self._fired.pop(session_id, None)

    def to_state(self, keep: int = 500) -> dict[str, list[int]]:
        """A JSON-able copy of what fired, for the ``keep`` most recently added sessions."""
        items = list(self._fired.items())[-keep:] if keep > 0 else []
        return {sid: sorted(levels) for sid, levels in items}

    def load_state(self, state: Mapping[str, object]) -> None:
        """Merge a state saved by :meth:`to_state`; malformed entries are skipped."""
        for sid, levels in state.items():
            if not isinstance(sid, str) or not isinstance(levels, list):
                continue
            clean = {int(v) for v in levels if isinstance(v, int) and not isinstance(v, bool) and v > 0}
            if clean:
                self._fired.setdefault(sid, set()).update(clean)
