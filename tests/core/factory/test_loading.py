"""Loading: bytes in, a checked session or a precise error out; no exception escapes, whatever the bytes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mity_cost.core.factory.figures import Consistency, session_figures
from mity_cost.core.factory.loading import (
    LoadedFeature,
    LoadedSession,
    LoadError,
    load_feature,
    load_root,
    load_session,
    parse_feature,
    parse_session,
    read_bounded,
)
from tests.conftest import EXAMPLE_ROOT, REAL_SAMPLES

SESSION_FILES = sorted(
    [*EXAMPLE_ROOT.glob(".mity/chat/*/cost.json"), *REAL_SAMPLES.glob(".mity/chat/*/cost.json")]
)
FEATURE_FILES = sorted(EXAMPLE_ROOT.glob("workspaces/*/.mity/cost/features/*.json"))
SMALL = EXAMPLE_ROOT / ".mity/chat/c2d4f6a8-1b3d-4f5e-8a7c-9e0b2d4f6a81/cost.json"
RICH = EXAMPLE_ROOT / ".mity/chat/5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91/cost.json"


def _error(result: LoadedSession | LoadedFeature | LoadError) -> LoadError:
    assert isinstance(result, LoadError), f"expected an error, got {type(result).__name__}"
    return result


def _raw(path: Path = SMALL) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc, indent=2).encode()


# ------------------------------------------------------------------ good files


@pytest.mark.parametrize("path", SESSION_FILES, ids=lambda p: p.parent.name)
def test_real_sessions_load_and_are_consistent(path: Path) -> None:
    result = load_session(path)
    assert isinstance(result, LoadedSession), result.describe()
    assert result.session_id == path.parent.name
    assert result.path == path
    assert result.size == path.stat().st_size
    assert result.mtime_ns == path.stat().st_mtime_ns
    assert result.consistency.consistent, result.consistency.describe()
    assert result.consistency.describe() == "consistent"


@pytest.mark.parametrize("path", FEATURE_FILES, ids=lambda p: p.name)
def test_feature_files_load(path: Path) -> None:
    app = path.parents[3].name
    result = load_feature(path, app)
    assert isinstance(result, LoadedFeature)
    assert result.app == app
    assert result.doc["featureId"] == json.loads(path.read_bytes())["featureId"]


def test_a_byte_order_mark_is_accepted() -> None:
    data = SMALL.read_bytes()
    with_bom = parse_session(b"\xef\xbb\xbf" + data, SMALL)
    plain = parse_session(data, SMALL)
    assert isinstance(with_bom, LoadedSession) and isinstance(plain, LoadedSession)
    assert with_bom.doc == plain.doc


def test_trailing_whitespace_is_fine() -> None:
    assert isinstance(parse_session(SMALL.read_bytes() + b"\n\n  \n"), LoadedSession)


# ------------------------------------------------------------------ incomplete: try again later


@pytest.mark.parametrize("data", [b"", b"   ", b"\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_files_are_incomplete_never_zero(data: bytes) -> None:
    error = _error(parse_session(data, SMALL))
    assert error.kind == "incomplete"
    assert error.retryable
    assert str(SMALL) in error.describe()


def test_every_truncation_of_a_real_file_is_incomplete() -> None:
    data = SMALL.read_bytes().rstrip()
    kinds = {_error(parse_session(data[:n])).kind for n in range(len(data))}
    assert kinds == {"incomplete"}


@pytest.mark.parametrize("path", SESSION_FILES[:3], ids=lambda p: p.parent.name)
def test_truncations_of_other_files_are_incomplete(path: Path) -> None:
    data = path.read_bytes().rstrip()
    cuts = range(1, len(data), max(1, len(data) // 200))
    assert {_error(parse_session(data[:n])).kind for n in cuts} == {"incomplete"}


def test_a_prefix_padded_with_nul_bytes_is_incomplete() -> None:
    data = SMALL.read_bytes()
    assert _error(parse_session(data[:500] + b"\0" * (len(data) - 500))).kind == "incomplete"


def test_a_truncated_feature_file_is_incomplete() -> None:
    data = FEATURE_FILES[0].read_bytes()
    assert _error(parse_feature(data[: len(data) // 2], "app")).kind == "incomplete"
    assert _error(parse_feature(b"", "app")).kind == "incomplete"


# ------------------------------------------------------------------ invalid: complete but wrong


@pytest.mark.parametrize("data", [b"[]", b"null", b'"text"', b"1", b"true", b"[1, 2]"])
def test_json_that_is_not_an_object_is_invalid(data: bytes) -> None:
    error = _error(parse_session(data))
    assert error.kind == "invalid"
    assert not error.retryable


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe{}",
        b'{"sessionId": "\xff"}',
        "{}".encode("utf-16"),
        b"{\x00}",
    ],
    ids=["utf16-bom", "bad-utf8", "utf16", "nul"],
)
def test_non_utf8_is_invalid(data: bytes) -> None:
    assert _error(parse_session(data)).kind == "invalid"


@pytest.mark.parametrize("opener", [b"[", b"{", b'{"a":'])
def test_deep_nesting_is_an_error_not_a_crash(opener: bytes) -> None:
    error = _error(parse_session(opener * 100_000))
    assert error.kind in ("invalid", "incomplete")


def test_deep_nesting_closed_is_invalid() -> None:
    assert _error(parse_session(b"[" * 50_000 + b"]" * 50_000)).kind == "invalid"


def test_huge_integers_are_errors_not_crashes() -> None:
    text = SMALL.read_text()
    for old, new in [
        ('"inputTokens": 19353', '"inputTokens": 1' + "0" * 5000),
        ('"cost": 0.095499', '"cost": 1' + "0" * 400),
        ('"cost": 0.095499', '"cost": 1' + "0" * 5000),
        ('"cost": 0.095499', '"cost": 1e400'),
    ]:
        assert old in text
        error = _error(parse_session(text.replace(old, new, 1).encode()))
        assert error.kind == "invalid"


def test_trailing_garbage_is_invalid() -> None:
    assert _error(parse_session(SMALL.read_bytes() + b"garbage")).kind == "invalid"


def test_duplicate_keys_keep_the_last_value() -> None:
    """Policy: like json.loads and serde_json, the last of repeated keys wins (documented, tested)."""
    text = SMALL.read_text().replace(
        '"confirmationThreshold": 5.0', '"confirmationThreshold": 5.0, "confirmationThreshold": 7.0'
    )
    result = parse_session(text.encode())
    assert isinstance(result, LoadedSession)
    assert result.doc["confirmationThreshold"] == 7.0


def test_an_invalid_value_names_where_it_is() -> None:
    doc = _raw()
    doc["llmUsage"][2]["cost"] = -1
    error = _error(parse_session(_bytes(doc), SMALL))
    assert error.kind == "invalid"
    assert error.location == "llmUsage.2.cost"
    assert error.describe().startswith(f"{SMALL}: invalid at llmUsage.2.cost: ")


def test_several_problems_are_counted() -> None:
    doc = _raw()
    doc["llmUsage"][0]["cost"] = -1
    doc["llmUsage"][1]["cost"] = -1
    doc["llmUsage"][2]["cost"] = -1
    error = _error(parse_session(_bytes(doc)))
    assert "2 more problems" in error.message


def test_an_out_of_order_ledger_is_invalid() -> None:
    doc = _raw()
    doc["sessionCost"]["total"]["min"] = doc["sessionCost"]["total"]["max"] + 1
    error = _error(parse_session(_bytes(doc)))
    assert error.location is not None and error.location.startswith("sessionCost.total")
    assert "out of order" in error.message


def test_a_feature_in_a_session_file_is_invalid() -> None:
    assert _error(parse_session(FEATURE_FILES[0].read_bytes())).kind == "invalid"
    assert _error(parse_feature(SMALL.read_bytes(), "app")).kind == "invalid"


# ------------------------------------------------------------------ files that are not files


def test_a_missing_file(tmp_path: Path) -> None:
    error = _error(load_session(tmp_path / "cost.json"))
    assert error.kind == "missing" and error.retryable


def test_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "cost.json"
    folder.mkdir()
    assert _error(load_session(folder)).kind == "invalid"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "cost.json"
    os.mkfifo(fifo)
    assert _error(load_session(fifo)).kind == "invalid"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_symlink_to_dev_zero_is_not_read_forever(tmp_path: Path) -> None:
    link = tmp_path / "cost.json"
    link.symlink_to("/dev/zero")
    assert _error(load_session(link)).kind == "invalid"


def test_a_symlink_loop(tmp_path: Path) -> None:
    link = tmp_path / "cost.json"
    link.symlink_to(link)
    assert _error(load_session(link)).kind == "unreadable"


def test_a_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "cost.json"
    path.write_bytes(SMALL.read_bytes())
    error = _error(load_session(path, max_bytes=100))
    assert error.kind == "too-large"
    assert isinstance(read_bounded(path, max_bytes=100), LoadError)


def test_permission_denied_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cost.json"
    path.write_bytes(SMALL.read_bytes())

    def denied(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    error = _error(load_session(path))
    assert error.kind == "unreadable"
    assert "Permission denied" in error.describe()


def test_a_read_error_midway_is_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cost.json"
    path.write_bytes(SMALL.read_bytes())

    def broken(fd: int, n: int) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "read", broken)
    assert _error(load_session(path)).kind == "unreadable"


# ------------------------------------------------------------------ consistency


def test_a_ledger_that_disagrees_with_its_records_is_flagged_with_both_numbers() -> None:
    doc = _raw()
    records = math.fsum(r["cost"] for r in doc["llmUsage"])
    doc["sessionCost"]["breakdown"]["llm"].update(min=1.0, expected=1.0, max=1.0)
    doc["sessionCost"]["total"].update(min=2.0, expected=2.0, max=2.0)
    result = parse_session(_bytes(doc))
    assert isinstance(result, LoadedSession)
    consistency = result.consistency
    assert not consistency.consistent
    assert consistency.ledger_llm == 1.0
    assert consistency.records_llm == records
    text = consistency.describe()
    assert "1.000000" in text and f"{records:.6f}" in text


def test_a_repeated_record_id_is_flagged() -> None:
    doc = _raw()
    doc["llmUsage"].append(dict(doc["llmUsage"][0]))
    cost = doc["llmUsage"][0]["cost"]
    for key in ("min", "expected", "max"):
        doc["sessionCost"]["breakdown"]["llm"][key] += cost
        doc["sessionCost"]["total"][key] += cost
    result = parse_session(_bytes(doc))
    assert isinstance(result, LoadedSession)
    assert result.consistency.duplicate_ids == (doc["llmUsage"][0]["id"],)
    assert not result.consistency.consistent
    assert "1 repeated record id(s)" in result.consistency.describe()


def test_many_repeated_ids_are_summarised() -> None:
    consistency = Consistency(1.0, 1.0, tuple(f"id-{n}" for n in range(5)))
    assert "5 repeated record id(s): id-0, id-1, id-2 (+2 more)" in consistency.describe()


def test_float_noise_is_not_an_inconsistency() -> None:
    assert Consistency(0.1 + 0.2, 0.3).consistent


def test_check_consistency_on_a_validated_document() -> None:
    result = load_session(RICH)
    assert isinstance(result, LoadedSession)
    again = session_figures(result.doc).consistency
    assert again == result.consistency
    assert again.records_llm == pytest.approx(again.ledger_llm)


# ------------------------------------------------------------------ a whole root


def test_load_root_reports_bad_files_and_keeps_the_good_ones(example_root: Path) -> None:
    bad = example_root / ".mity/chat/f0e1d2c3-b4a5-4968-8776-655443322110/cost.json"
    bad.write_bytes(bad.read_bytes()[:100])
    feature = next(example_root.glob("workspaces/*/.mity/cost/features/*.json"))
    feature.write_text("[]")
    snapshot = load_root(example_root)
    assert len(snapshot.sessions) == 5
    assert len(snapshot.features) == 2
    assert sorted((e.path, e.kind) for e in snapshot.errors) == sorted(
        [(bad, "incomplete"), (feature, "invalid")]
    )


def test_load_root_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    snapshot = load_root(tmp_path / "nowhere")
    assert snapshot.sessions == () and snapshot.features == () and snapshot.errors == ()


# ------------------------------------------------------------------ no bytes crash the loader

REAL_BYTES = [p.read_bytes() for p in SESSION_FILES if p.stat().st_size < 12_000]


def _assert_sound(result: object) -> None:
    """Either a precise error or a document whose figures obey every rule."""
    if isinstance(result, LoadError):
        assert result.kind in ("incomplete", "invalid", "unreadable", "too-large", "missing")
        assert isinstance(result.describe(), str)
        return
    assert isinstance(result, LoadedSession)
    for estimate in (result.doc["sessionCost"], result.doc["infraCost"]):
        total = estimate["total"]
        assert all(math.isfinite(total[k]) and total[k] >= 0 for k in ("min", "expected", "max"))
        assert total["min"] <= total["expected"] <= total["max"]
    for record in result.doc["llmUsage"]:
        assert math.isfinite(record["cost"]) and record["cost"] >= 0
        assert record["inputTokens"] >= 0 and record["outputTokens"] >= 0


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(REAL_BYTES)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        elif action == "truncate":
            del data[position:]
        else:
            token = draw(
                st.sampled_from([b"-1", b"NaN", b"1e999", b"null", b'"x"', b"[]", b"{}", b"true", b"0"])
            )
            data[position : position + draw(st.integers(0, 6))] = token
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_no_mutation_of_a_real_file_crashes_the_loader(data: bytes) -> None:
    _assert_sound(parse_session(data))
    feature = parse_feature(data, "app")
    assert isinstance(feature, LoadedFeature | LoadError)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(JSON_VALUES)
def test_no_generated_json_crashes_the_loader(value: Any) -> None:
    _assert_sound(parse_session(json.dumps(value).encode()))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_no_random_bytes_crash_the_loader(data: bytes) -> None:
    _assert_sound(parse_session(data))


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from(["min", "expected", "max"]),
    value=st.one_of(
        st.floats(), st.integers(-(10**400), 10**400), st.text(max_size=4), st.none(), st.booleans()
    ),
)
def test_any_value_in_the_ledger_total_is_checked(key: str, value: Any) -> None:
    doc = _raw()
    doc["sessionCost"]["total"][key] = value
    try:
        data = json.dumps(doc).encode()
    except ValueError:
        return
    _assert_sound(parse_session(data))


# ------------------------------------------------------------------ large documents


def _big_session(records: int) -> bytes:
    doc = _raw(RICH)
    template = doc["llmUsage"][0]
    usage = [{**template, "id": f"big-{n}", "cost": 0.001} for n in range(records)]
    doc["llmUsage"] = usage
    total = math.fsum(r["cost"] for r in usage)
    doc["sessionCost"]["breakdown"]["llm"] = {"min": total, "expected": total, "max": total}
    return _bytes(doc)


def test_the_collector_is_paused_for_a_large_document_and_switched_back_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from mity_cost.core.factory import loading

    data = _big_session(6000)
    assert len(data) > loading._GC_PAUSE_BYTES
    seen: list[bool] = []
    validate = loading.SESSION_ADAPTER.validate_json

    def spy(body: bytes) -> Any:
        seen.append(gc.isenabled())
        return validate(body)

    monkeypatch.setattr(loading, "SESSION_ADAPTER", type("A", (), {"validate_json": staticmethod(spy)}))
    assert gc.isenabled()
    result = parse_session(data)
    assert isinstance(result, LoadedSession) and result.consistency.consistent
    assert seen == [False] and gc.isenabled()
    broken = json.loads(data)
    broken["llmUsage"][5000]["cost"] = -1
    bad = parse_session(_bytes(broken))
    assert isinstance(bad, LoadError) and bad.location == "llmUsage.5000.cost"
    assert gc.isenabled()
    parse_session(SMALL.read_bytes())
    assert seen[-1] is True  # small files: left alone
    gc.disable()
    try:
        parse_session(data)
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()


def test_a_large_document_with_a_repeated_id_and_a_wrong_ledger() -> None:
    doc = json.loads(_big_session(4000))
    doc["llmUsage"][3999]["id"] = "big-7"
    doc["sessionCost"]["breakdown"]["llm"] = {"min": 1.0, "expected": 1.0, "max": 1.0}
    result = parse_session(_bytes(doc))
    assert isinstance(result, LoadedSession)
    assert result.consistency.duplicate_ids == ("big-7",)
    assert result.consistency.records_llm == pytest.approx(4.0)
    assert not result.consistency.consistent
