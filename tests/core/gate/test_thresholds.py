"""Levels of the badge and the warning latch (once per level per session)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mity_cost.core.gate.thresholds import (
    Level,
    Severity,
    ThresholdWarning,
    WarningLatch,
    clean_levels,
    crossed,
    level_for,
    parse_levels,
    severity_for,
)
from mity_cost.core.settings import DEFAULT_WARNING_LEVELS


@pytest.mark.parametrize(
    ("fraction", "level"),
    [
        (0.0, Level.OK),
        (0.4999, Level.OK),
        (0.5, Level.NOTICE),
        (0.7499, Level.NOTICE),
        (0.75, Level.WARNING),
        (0.8999, Level.WARNING),
        (0.9, Level.CRITICAL),
        (1.0, Level.CRITICAL),  # at the threshold is not over it (the factory's `>`)
        (1.0001, Level.OVER),
        (42.0, Level.OVER),
        (math.inf, Level.OVER),
        (math.nan, Level.OVER),  # never look safe
    ],
)
def test_level_bands(fraction: float, level: Level) -> None:
    assert level_for(fraction) is level


@given(st.floats(min_value=0, max_value=100), st.floats(min_value=0, max_value=100))
def test_level_is_monotonic(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert level_for(lo) <= level_for(hi)


def test_level_labels_are_words() -> None:
    assert [lv.label for lv in Level] == ["ok", "notice", "warning", "critical", "over"]


@pytest.mark.parametrize(
    ("percent", "severity"),
    [
        (50, Severity.INFO),
        (60, Severity.INFO),
        (75, Severity.WARNING),
        (89, Severity.WARNING),
        (90, Severity.CRITICAL),
        (100, Severity.CRITICAL),
        (150, Severity.CRITICAL),
    ],
)
def test_severity_by_level(percent: int, severity: Severity) -> None:
    assert severity_for(percent) is severity


def test_default_levels_fire_once_each_in_order() -> None:
    latch = WarningLatch()
    fired: list[ThresholdWarning] = []
    for total in (0.3, 0.55, 0.55, 0.4, 0.8, 0.8, 0.95, 1.05, 0.2, 1.2, 3.0):
        warning = latch.observe("s1", total, 1.0)
        if warning is not None:
            fired.append(warning)
    assert [w.percent for w in fired] == list(DEFAULT_WARNING_LEVELS)
    assert [w.severity for w in fired] == [
        Severity.INFO,
        Severity.WARNING,
        Severity.CRITICAL,
        Severity.CRITICAL,
    ]
    assert fired[-1].over and fired[-1].total == 1.05
    assert latch.fired("s1") == frozenset(DEFAULT_WARNING_LEVELS)


def test_a_jump_fires_only_the_highest_level_and_latches_the_lower_ones() -> None:
    latch = WarningLatch()
    warning = latch.observe("s1", 0.95, 1.0)
    assert warning is not None
    assert (warning.percent, warning.severity) == (90, Severity.CRITICAL)
    assert latch.fired("s1") == {50, 75, 90}
    assert latch.observe("s1", 0.96, 1.0) is None
    later = latch.observe("s1", 1.5, 1.0)
    assert later is not None and later.percent == 100


def test_sequence_from_the_reliability_notes() -> None:
    """Totals 5, 12, 12, 9, 13 against 10 with only the 100 % level: one warning; a new session, one more."""
    latch = WarningLatch([100])
    fired = [w for t in (5, 12, 12, 9, 13) if (w := latch.observe("run-1", t, 10)) is not None]
    assert len(fired) == 1 and fired[0].total == 12
    again = [w for t in (5, 12) if (w := latch.observe("run-2", t, 10)) is not None]
    assert len(again) == 1 and again[0].session_id == "run-2"


def test_a_new_session_id_is_a_new_latch() -> None:
    latch = WarningLatch()
    assert latch.observe("a", 0.6, 1.0) is not None
    assert latch.observe("a", 0.6, 1.0) is None
    assert latch.observe("b", 0.6, 1.0) is not None
    assert latch.sessions() == ("a", "b")


def test_custom_levels_and_their_severities() -> None:
    latch = WarningLatch([80, 60, 60, 120])
    assert latch.levels == (60, 80, 120)
    first = latch.observe("s", 0.61, 1.0)
    second = latch.observe("s", 0.81, 1.0)
    third = latch.observe("s", 1.21, 1.0)
    assert first is not None and (first.percent, first.severity) == (60, Severity.INFO)
    assert second is not None and (second.percent, second.severity) == (80, Severity.WARNING)
    assert third is not None and (third.percent, third.severity) == (120, Severity.CRITICAL)


def test_changing_levels_keeps_what_fired() -> None:
    latch = WarningLatch()
    latch.observe("s", 0.6, 1.0)
    latch.set_levels([50, 60])
    warning = latch.observe("s", 0.65, 1.0)
    assert warning is not None and warning.percent == 60
    assert latch.observe("s", 0.7, 1.0) is None


def test_threshold_given_in_other_units() -> None:
    latch = WarningLatch()
    assert latch.observe("s", 2.49, 5.0) is None
    warning = latch.observe("s", 2.5, 5.0)
    assert warning is not None and warning.percent == 50 and warning.fraction == 0.5


def test_a_zero_threshold_warns_at_the_first_cent() -> None:
    latch = WarningLatch()
    assert latch.observe("s", 0.0, 0.0) is None
    warning = latch.observe("s", 0.01, 0.0)
    assert warning is not None and warning.percent == 100 and warning.over
    assert math.isinf(warning.fraction)


def test_crossed_tolerates_float_noise() -> None:
    assert crossed(0.1 + 0.2 + 0.45, 1.0, 75)  # 0.7500000000000001 and 0.75 both reach 75 %
    assert crossed(0.75 - 1e-12, 1.0, 75)
    assert not crossed(0.7499, 1.0, 75)
    assert crossed(math.inf, 1.0, 100)


def test_prime_latches_silently() -> None:
    latch = WarningLatch()
    latch.prime("old", 0.8, 1.0)
    assert latch.fired("old") == {50, 75}
    assert latch.observe("old", 0.8, 1.0) is None
    warning = latch.observe("old", 0.92, 1.0)
    assert warning is not None and warning.percent == 90


def test_forget_rearms_one_session() -> None:
    latch = WarningLatch()
    latch.observe("s", 0.6, 1.0)
    latch.forget("s")
    assert latch.observe("s", 0.6, 1.0) is not None


def test_state_round_trip_and_bad_entries() -> None:
    latch = WarningLatch()
    latch.observe("a", 0.8, 1.0)
    latch.observe("b", 1.2, 1.0)
    state = latch.to_state()
    assert state == {"a": [50, 75], "b": [50, 75, 90, 100]}
    other = WarningLatch()
    other.load_state({**state, "bad": "x", "mixed": [50, "75", True, -1, 90], 7: [50]})  # type: ignore[dict-item]
    assert other.fired("a") == {50, 75}
    assert other.fired("mixed") == {50, 90}
    assert other.fired("bad") == frozenset()
    assert other.observe("b", 2.0, 1.0) is None


def test_state_keeps_the_latest_sessions() -> None:
    latch = WarningLatch()
    for n in range(10):
        latch.observe(f"s{n}", 0.6, 1.0)
    assert list(latch.to_state(keep=3)) == ["s7", "s8", "s9"]
    assert latch.to_state(keep=0) == {}


def test_clean_levels() -> None:
    assert clean_levels([100, 50.7, 0, -5, 2000, math.nan, 50]) == (50, 100)
    assert clean_levels([]) == DEFAULT_WARNING_LEVELS


@given(
    st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=30),
    st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=6),
)
def test_each_level_fires_at_most_once_and_only_when_reached(totals: list[float], levels: list[int]) -> None:
    latch = WarningLatch(levels)
    seen: list[int] = []
    peak = 0.0
    for total in totals:
        peak = max(peak, total)
        warning = latch.observe("s", total, 1.0)
        if warning is not None:
            assert crossed(total, 1.0, warning.percent)
            seen.append(warning.percent)
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert latch.fired("s") == {p for p in latch.levels if crossed(peak, 1.0, p)}


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("50, 75, 90, 100", (50, 75, 90, 100)),
        ("100;50 50", (50, 100)),
        ("80%", (80,)),
        ("", "give at least one level, e.g. 50, 75, 90, 100"),
        ("0", "0 is outside 1–1000 %"),
        ("5000", "5000 is outside 1–1000 %"),
        ("1.5", "'1.5' is not a whole percentage"),
    ],
)
def test_parse_levels(text: str, result: object) -> None:
    assert parse_levels(text) == result
