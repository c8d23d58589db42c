"""The stdlib fast path: the same figures as the full loader, stricter never looser, fail closed."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mity_cost.core.factory.loading import LoadedSession, parse_session
from mity_cost.core.gate import fastpath
from mity_cost.core.gate.decisions import Decision, write_decision
from mity_cost.core.gate.fastpath import QuickError
from mity_cost.core.settings import DEFAULT_EUR_PER_USD, Settings
from tests.conftest import EXAMPLE_ROOT, REAL_SAMPLES

SESSION_FILES = sorted(
    [*EXAMPLE_ROOT.glob(".mity/chat/*/cost.json"), *REAL_SAMPLES.glob(".mity/chat/*/cost.json")]
)
SMALL = EXAMPLE_ROOT / ".mity/chat/c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81/cost.json"
SMALL_ID = SMALL.parent.name
WHEN = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)


def _kind(data: bytes) -> str:
    with pytest.raises(QuickError) as info:
        fastpath.parse_session(data)
    return info.value.kind


def _triple(item: Any) -> tuple[float, float, float]:
    return item["min"], item["expected"], item["max"]


# ------------------------------------------------------------------ same figures as the loader


@pytest.mark.parametrize("path", SESSION_FILES, ids=lambda p: p.parent.name)
def test_quick_figures_equal_the_loaders(path: Path) -> None:
    fast = fastpath.read_session(path)
    full = parse_session(path.read_bytes(), path)
    assert isinstance(full, LoadedSession)
    assert fast.session_id == full.session_id
    assert fast.currency == full.doc["currency"]
    assert fast.total == _triple(full.doc["sessionCost"]["total"])
    assert fast.llm == _triple(full.doc["sessionCost"]["breakdown"]["llm"])
    assert fast.path == path


def test_every_truncation_is_incomplete() -> None:
    data = SMALL.read_bytes().rstrip()
    assert {_kind(data[:n]) for n in range(len(data))} == {"incomplete"}


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "incomplete"),
        (b" \n", "incomplete"),
        (b"\xef\xbb\xbf", "incomplete"),
        (b"[]", "invalid"),
        (b"null", "invalid"),
        (b'"x"', "invalid"),
        (b"\xff\xfe{}", "invalid"),
        ("{}".encode("utf-16"), "invalid"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid"),
        (b"{}", "invalid"),
        (b'{"a": 1} trailing', "invalid"),
    ],
)
def test_bad_bytes_are_precise_errors(data: bytes, kind: str) -> None:
    assert _kind(data) == kind


def test_a_byte_order_mark_is_accepted() -> None:
    assert fastpath.parse_session(b"\xef\xbb\xbf" + SMALL.read_bytes()).session_id == SMALL_ID


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"max": 0.5982883000000001', '"max": NaN'),
        ('"max": 0.5982883000000001', '"max": Infinity'),
        ('"max": 0.5982883000000001', '"max": 1e999'),
        ('"max": 0.5982883000000001', '"max": 1' + "0" * 400),
        ('"max": 0.5982883000000001', '"max": 1' + "0" * 5000),
        ('"max": 0.5982883000000001', '"max": -1'),
        ('"max": 0.5982883000000001', '"max": 0.1'),
        ('"max": 0.5982883000000001', '"max": "0.6"'),
        ('"max": 0.5982883000000001', '"max": true'),
        ('"max": 0.5982883000000001', '"max": null'),
        ('"currency": "USD",\n  "sessionCost"', '"currency": "GBP",\n  "sessionCost"'),
        ('"sessionId": "c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81"', '"sessionId": 7'),
    ],
)
def test_bad_figures_are_refused(old: str, new: str) -> None:
    text = SMALL.read_text()
    assert old in text
    with pytest.raises(QuickError) as info:
        fastpath.parse_session(text.replace(old, new, 1).encode(), SMALL)
    assert info.value.kind == "invalid"
    assert info.value.describe().startswith(f"{SMALL}: invalid: ")


@pytest.mark.parametrize("key", ["sessionCost", "total", "llm", "currency"])
def test_missing_pieces_are_named(key: str) -> None:
    doc = json.loads(SMALL.read_bytes())
    if key == "total":
        del doc["sessionCost"]["total"]
    elif key == "llm":
        del doc["sessionCost"]["breakdown"]["llm"]
    else:
        del doc[key]
    with pytest.raises(QuickError) as info:
        fastpath.parse_session(json.dumps(doc).encode())
    assert key in info.value.message


FIELDS = [("total", "min"), ("total", "expected"), ("total", "max"), ("llm", "min"), ("llm", "expected")]


@settings(max_examples=120, deadline=None)
@given(
    field=st.sampled_from(FIELDS),
    value=st.one_of(
        st.floats(),
        st.integers(-5, 10**30),
        st.text(max_size=3),
        st.none(),
        st.booleans(),
        st.lists(st.none()),
    ),
)
def test_quick_is_never_looser_than_the_loader(field: tuple[str, str], value: Any) -> None:
    doc = json.loads(SMALL.read_bytes())
    ledger = doc["sessionCost"]
    target = ledger["total"] if field[0] == "total" else ledger["breakdown"]["llm"]
    target[field[1]] = value
    try:
        data = json.dumps(doc).encode()
    except ValueError:
        return
    full = parse_session(data)
    try:
        fast = fastpath.parse_session(data)
    except QuickError:
        return
    assert isinstance(full, LoadedSession), "quick accepted what the loader refuses"
    assert fast.total == _triple(full.doc["sessionCost"]["total"])
    assert fast.llm == _triple(full.doc["sessionCost"]["breakdown"]["llm"])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2000))
def test_no_bytes_crash_the_fast_path(noise: bytes, cut: int) -> None:
    for data in (noise, SMALL.read_bytes()[:cut] + noise):
        try:
            fastpath.parse_session(data)
        except QuickError as exc:
            assert exc.kind in ("incomplete", "invalid")


# ------------------------------------------------------------------ files that are not files


def test_reading_odd_files(tmp_path: Path) -> None:
    with pytest.raises(QuickError) as info:
        fastpath.read_bytes(tmp_path / "missing.json")
    assert info.value.kind == "missing" and info.value.retryable
    folder = tmp_path / "dir"
    folder.mkdir()
    with pytest.raises(QuickError) as info:
        fastpath.read_bytes(folder)
    assert info.value.kind == "invalid"
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 200)
    with pytest.raises(QuickError) as info:
        fastpath.read_bytes(big, max_bytes=100)
    assert info.value.kind == "too-large"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "cost.json"
    os.mkfifo(fifo)
    with pytest.raises(QuickError) as info:
        fastpath.read_bytes(fifo)
    assert info.value.kind == "invalid"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_link_to_dev_zero_is_not_read(tmp_path: Path) -> None:
    link = tmp_path / "cost.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(QuickError):
        fastpath.read_bytes(link)


def test_permission_denied_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cost.json"
    path.write_bytes(SMALL.read_bytes())

    def denied(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(QuickError) as info:
        fastpath.read_bytes(path)
    assert info.value.kind == "unreadable"
    assert "Permission denied" in info.value.message


def test_a_half_written_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cost.json"
    data = SMALL.read_bytes()
    path.write_bytes(data[:40])
    reads = []
    real = fastpath.read_bytes

    def finishing(target: Path, max_bytes: int = fastpath.MAX_FILE_BYTES) -> bytes:
        reads.append(target)
        if len(reads) == 2:
            path.write_bytes(data)
        return real(target, max_bytes)

    monkeypatch.setattr(fastpath, "read_bytes", finishing)
    assert fastpath.read_session(path, pause=0).session_id == SMALL_ID
    assert len(reads) == 2  # cut short, then (after a pause) complete


def test_a_file_that_stays_cut_short_is_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "cost.json"
    path.write_bytes(SMALL.read_bytes()[:40])
    with pytest.raises(QuickError) as info:
        fastpath.read_session(path, attempts=2, pause=0)
    assert info.value.kind == "incomplete"


# ------------------------------------------------------------------ finding a session


def test_find_session_looks_in_every_root(example_root: Path, empty_root: Path) -> None:
    assert (
        fastpath.find_session([empty_root, example_root], SMALL_ID)
        == example_root / ".mity/chat" / SMALL_ID / "cost.json"
    )
    with pytest.raises(QuickError) as info:
        fastpath.find_session([empty_root], SMALL_ID)
    assert info.value.kind == "missing"
    assert str(empty_root) in info.value.message


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "..", ".hidden"])
def test_find_session_refuses_ids_that_are_not_plain_names(bad: str, example_root: Path) -> None:
    with pytest.raises(QuickError) as info:
        fastpath.find_session([example_root], bad)
    assert info.value.kind == "invalid"


# ------------------------------------------------------------------ totals and decisions


def test_display_total_converts_and_leaves_out_llm() -> None:
    session = fastpath.parse_session(SMALL.read_bytes())
    assert session.display_total(Settings()) == session.total
    eur = session.display_total(Settings(currency="EUR"))
    assert eur == pytest.approx(tuple(v * DEFAULT_EUR_PER_USD for v in session.total))
    without = session.display_total(Settings(llm_enabled=False))
    assert without == pytest.approx(tuple(t - x for t, x in zip(session.total, session.llm, strict=True)))
    assert min(without) >= 0


def _check(root: Path, threshold: float, extra: float = 0.0, **kw: Any) -> fastpath.QuickCheck:
    return fastpath.check([root], SMALL_ID, Settings(threshold=threshold, **kw), extra)


def test_under_at_and_over_the_threshold(example_root: Path) -> None:
    total = fastpath.parse_session(SMALL.read_bytes()).total[1]
    assert _check(example_root, total + 0.01).status == "ok"
    assert _check(example_root, total).within  # at the threshold is not over it
    over = _check(example_root, math.nextafter(total, 0))
    assert over.status == "over" and not over.within
    assert _check(example_root, total, extra=0.001).status == "over"
    assert _check(example_root, total + 1, extra=1.0).within


def test_a_continue_approves_up_to_its_amount(example_root: Path) -> None:
    write_decision(example_root / ".mity/chat" / SMALL_ID, Decision(SMALL_ID, "continue", 2.0, WHEN, "USD"))
    result = _check(example_root, 0.5)
    assert result.within and result.limit == 2.0
    assert "approved limit $2.00" in result.describe("$")
    assert not _check(example_root, 0.5, extra=1.5).within
    assert result.to_json()["decision"] == "continue"


def test_a_continue_never_lowers_the_threshold(example_root: Path) -> None:
    write_decision(example_root / ".mity/chat" / SMALL_ID, Decision(SMALL_ID, "continue", 0.1, WHEN, "USD"))
    assert _check(example_root, 1.0).limit == 1.0


def test_a_pause_denies_even_under_the_threshold(example_root: Path) -> None:
    write_decision(example_root / ".mity/chat" / SMALL_ID, Decision(SMALL_ID, "pause", 0.0, WHEN, "USD"))
    result = _check(example_root, 100.0)
    assert result.paused and not result.within and result.status == "paused"
    assert "paused by the user" in result.describe("$")


def test_a_decision_in_another_currency_is_converted(example_root: Path) -> None:
    write_decision(example_root / ".mity/chat" / SMALL_ID, Decision(SMALL_ID, "continue", 0.86, WHEN, "EUR"))
    result = _check(example_root, 0.1)
    assert result.limit == pytest.approx(1.0)
    assert result.decision is not None and result.decision.currency == "USD"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{broken",
        b'{"sessionId": "other", "decision": "continue", "approvedUpTo": 100, '
        b'"decidedAt": "2026-11-22T13:00:00Z", "currency": "USD"}',
        b'{"sessionId": "c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81", "decision": "continue", "approvedUpTo": NaN, '
        b'"decidedAt": "2026-11-22T13:00:00Z", "currency": "USD"}',
    ],
    ids=["empty", "broken", "other-session", "nan"],
)
def test_a_refused_decision_approves_nothing_and_says_so(example_root: Path, content: bytes) -> None:
    (example_root / ".mity/chat" / SMALL_ID / "cost.decision.json").write_bytes(content)
    result = _check(example_root, 0.1)
    assert not result.within and result.limit == 0.1
    assert result.notes and "approves nothing" in result.notes[0]


def test_no_decision_no_note(example_root: Path) -> None:
    result = _check(example_root, 10.0)
    assert result.decision is None and result.notes == ()
    keys = "sessionId path status within totalExpected totalMin totalMax extra threshold limit decision"
    assert set(result.to_json()) == {*keys.split(), "approvedUpTo", "decidedAt", "currency", "notes"}


def test_check_raises_on_a_broken_session(example_root: Path) -> None:
    (example_root / ".mity/chat" / SMALL_ID / "cost.json").write_text("[]")
    with pytest.raises(QuickError) as info:
        _check(example_root, 1.0)
    assert info.value.kind == "invalid"
