"""Append to a session's ``cost.json`` and save feature files exactly as the factory would, safely.

Every change is read -> modify -> write under the document's lock (``atomic.locked``) and written
atomically, so concurrent writers never lose a record and a reader (or a kill) never sees half a file.
The file is edited as the raw ``json.loads`` dict: keys we do not touch, unknown keys and timestamps
with 9 fraction digits come back as they were.  An existing file that is broken is refused, never
overwritten.  Stdlib only (no pydantic): ``mity-cost record-llm`` must start fast.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeGuard

from mity_cost.core import atomic
from mity_cost.core.factory import layout, rules

MAX_TOKENS = 2**64 - 1
"""The factory stores token counts as ``u64``."""
MAX_FILE_BYTES = 512 * 1024 * 1024
RETRY_DELAYS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2)
"""Pauses before reading an empty or cut-short file again (another writer may be finishing it)."""

_sleep = time.sleep  # a seam for tests that play the other writer

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_BOM = b"\xef\xbb\xbf"

RangeSpec = float | str | Sequence[float] | Mapping[str, Any]
"""A cost range for ``save_feature``: ``0.31`` (fixed), ``"1,2,5"``, ``(min, expected, max)``, or a dict with
``min``/``expected``/``max`` and optional ``unit``/``notes``."""


class WriteError(Exception):
    """Bad input, or an existing file we refuse to touch; ``message`` says which and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def record_llm(
    root: Path,
    session_id: str,
    model_name: str,
    input_tokens: int,
    output_tokens: int,
    agent: str | None = None,
    station: str | None = None,
    feature: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Append one LLM call (model detection, the factory's price, ledger update); returns the record."""
    path = _session_path(root, session_id)
    if not _text("the model name", model_name).strip():
        raise WriteError("the model name is empty")
    inputs = _tokens("input tokens", input_tokens)
    outputs = _tokens("output tokens", output_tokens)
    for label, value in (("agent", agent), ("station", station), ("feature", feature)):
        if value is not None:
            _text(label, value)
    moment = _moment(now)
    record = rules.llm_record(
        _uuid4(),
        rules.detect_model(model_name),
        inputs,
        outputs,
        moment,
        agent=agent,
        station=station,
        feature=feature,
    )
    cost = record["cost"]

    def change(doc: dict[str, Any]) -> None:
        stamp = rules.rfc3339(moment)
        ledger = doc["sessionCost"]
        rules.add_to_item(ledger["breakdown"]["llm"], cost, cost, cost)
        rules.recalculate_total(ledger)
        ledger["updatedAt"] = stamp
        if feature is not None:
            delta = doc["featureCosts"].get(feature)
            if isinstance(delta, dict):
                one_time = delta["oneTimeCost"]
                rules.add_to_item(one_time["breakdown"]["llm"], cost, cost, cost)
                rules.recalculate_total(one_time)
                one_time["updatedAt"] = stamp
        doc["llmUsage"].append(record)
        doc["updatedAt"] = stamp

    _update_session(path, session_id, moment, change)
    return rules.clone(record)


def record_execution(
    root: Path, session_id: str, kind: str, cloud: bool = False, now: datetime | None = None
) -> dict[str, Any]:
    """Append one execution with the factory's preset (its range goes to ``compute``); returns it."""
    path = _session_path(root, session_id)
    try:
        execution = rules.execution_preset(kind, bool(cloud))
    except (ValueError, AttributeError) as exc:
        raise WriteError(str(exc)) from None
    moment = _moment(now)
    cost = execution["cost"]

    def change(doc: dict[str, Any]) -> None:
        stamp = rules.rfc3339(moment)
        ledger = doc["sessionCost"]
        rules.add_to_item(ledger["breakdown"]["compute"], cost["min"], cost["expected"], cost["max"])
        rules.recalculate_total(ledger)
        ledger["updatedAt"] = stamp
        doc["executionCosts"].append(execution)
        doc["updatedAt"] = stamp

    _update_session(path, session_id, moment, change)
    return rules.clone(execution)


def update_infra(root: Path, session_id: str, template: str, now: datetime | None = None) -> dict[str, Any]:
    """Replace the session's monthly ``infraCost`` with a template; returns the new estimate."""
    path = _session_path(root, session_id)
    moment = _moment(now)
    try:
        infra = rules.infra_estimate(template, moment)
    except (ValueError, AttributeError) as exc:
        raise WriteError(str(exc)) from None

    def change(doc: dict[str, Any]) -> None:
        doc["infraCost"] = infra
        doc["updatedAt"] = rules.rfc3339(moment)

    _update_session(path, session_id, moment, change)
    return rules.clone(infra)


def save_feature(
    root: Path,
    app: str,
    feature_id: str,
    name: str,
    one_time: Mapping[str, RangeSpec] | None = None,
    monthly: Mapping[str, RangeSpec] | None = None,
    *,
    assumptions: Iterable[str] = (),
    monthly_assumptions: Iterable[str] = (),
    confidence: float = 0.5,
    currency: str = "USD",
    now: datetime | None = None,
) -> Path:
    """Write ``workspaces/<app>/.mity/cost/features/<slug>.json`` (``FeatureCostDelta``); returns its path.

    ``one_time`` and ``monthly`` map categories (``llm``, ``compute``, ``storage``, ``network``,
    ``misc``) to ranges (see ``RangeSpec``); categories left out are zero.  Totals are the factory's
    sum of the five.  Like the factory, a save replaces the whole file; an existing file that is not
    a valid feature cost file is refused, never overwritten (remove it first).
    """
    folder = _root(root)
    if not layout.safe_name(_text("the app name", app)) or app.startswith("."):
        raise WriteError(f"not a usable app name: {app!r}")
    if not _text("the feature id", feature_id).strip():
        raise WriteError("the feature id is empty")
    slug = layout.feature_slug(feature_id)
    if not slug:
        raise WriteError(f"the feature id {feature_id!r} has no letters or digits to name its file")
    _text("the feature name", name)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise WriteError(f"confidence must be between 0 and 1, not {confidence!r}")
    unit = currency.strip().upper() if isinstance(currency, str) else ""
    if unit not in ("USD", "EUR"):
        raise WriteError(f"currency must be USD or EUR, not {currency!r}")
    moment = _moment(now)
    first = rules.estimate(
        "feature", confidence=float(confidence), assumptions=_texts(assumptions), now=moment, currency=unit
    )
    second = rules.estimate(
        "feature",
        confidence=float(confidence),
        assumptions=_texts(monthly_assumptions),
        is_monthly=True,
        now=moment,
        currency=unit,
    )
    for target, ranges in ((first, one_time), (second, monthly)):
        for category, spec in (ranges or {}).items():
            if category not in rules.CATEGORIES:
                raise WriteError(f"unknown cost category {category!r}: use {', '.join(rules.CATEGORIES)}")
            target["breakdown"][category] = _range_item(category, spec)
        rules.recalculate_total(target)
    doc = {
        "featureId": feature_id,
        "featureName": name,
        "oneTimeCost": first,
        "monthlyImpact": second,
        "calculatedAt": rules.rfc3339(moment),
    }
    path = layout.features_dir(folder, app) / f"{slug}.json"
    with _locked(path):
        existing = _read_json(path)
        problem = None if existing is _MISSING else feature_problem(existing)
        if problem:
            raise WriteError(f"{path}: {problem}; refusing to replace it (remove it first)")
        _write(path, doc)
    return path


def parse_range(text: str) -> tuple[float, float, float]:
    """``"0.31"`` -> (0.31, 0.31, 0.31); ``"1,2,5"`` -> (1.0, 2.0, 5.0).  For command lines."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) not in (1, 3):
        raise WriteError(f"a cost range is AMOUNT or MIN,EXPECTED,MAX, not {text!r}")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise WriteError(f"not a number in the cost range {text!r}") from None
    low, expected, high = values * 3 if len(values) == 1 else values
    _check_range(str(text), low, expected, high)
    return low, expected, high


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _root(root: Path) -> Path:
    folder = Path(root)
    if not folder.is_dir():
        raise WriteError(f"the factory root {str(folder)!r} is not an existing folder")
    return folder


def _session_path(root: Path, session_id: str) -> Path:
    folder = _root(root)
    try:
        return layout.session_path(folder, _text("the session id", session_id))
    except ValueError as exc:
        raise WriteError(str(exc)) from None


def _text(label: str, value: object) -> str:
    """Text that can be written as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        raise WriteError(f"{label} must be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise WriteError(f"{label} is not valid Unicode text") from None
    return value


def _tokens(label: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WriteError(f"{label} must be a whole number, not {value!r}")
    if not 0 <= value <= MAX_TOKENS:
        raise WriteError(f"{label} must be between 0 and {MAX_TOKENS}, not {value}")
    return value


def _moment(now: datetime | None) -> datetime:
    if now is None:
        return rules.utc_now()
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise WriteError("the time must be a datetime with a time zone")
    return now


def _texts(values: Iterable[str]) -> list[str]:
    if isinstance(values, str):
        values = [values]
    return [_text("an assumption", value) for value in values]


def _number(value: object) -> TypeGuard[float]:
    """A finite JSON number (``bool`` is not one)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _amount(value: object) -> TypeGuard[float]:
    """A finite number >= 0."""
    return _number(value) and value >= 0


def _ordered(low: object, expected: object, high: object) -> bool:
    """Three amounts with ``min <= expected <= max``."""
    return _amount(low) and _amount(expected) and _amount(high) and low <= expected <= high


def _check_range(label: str, low: object, expected: object, high: object) -> None:
    if not all(_number(v) for v in (low, expected, high)):
        raise WriteError(f"{label}: amounts must be finite numbers")
    if not _ordered(low, expected, high):
        raise WriteError(f"{label}: need 0 <= min <= expected <= max, got {low}, {expected}, {high}")


def _range_item(category: str, spec: RangeSpec) -> dict[str, Any]:
    unit: object = None
    notes: object = None
    values: tuple[object, ...]
    if isinstance(spec, Mapping):
        missing = [key for key in ("min", "expected", "max") if key not in spec]
        if missing:
            raise WriteError(f"{category}: missing {', '.join(missing)}")
        values = (spec["min"], spec["expected"], spec["max"])
        unit, notes = spec.get("unit"), spec.get("notes")
    elif isinstance(spec, str):
        values = parse_range(spec)
    elif isinstance(spec, Sequence):
        values = tuple(spec)
    else:
        values = (spec, spec, spec)
    if len(values) != 3:
        raise WriteError(f"{category}: a range is (min, expected, max)")
    low, expected, high = values
    _check_range(category, low, expected, high)
    unit = None if unit is None else _text(f"{category} unit", unit)
    notes = None if notes is None else _text(f"{category} notes", notes)
    assert _number(low) and _number(expected) and _number(high)
    return rules.cost_item(float(low), float(expected), float(high), unit=unit, notes=notes)


def _uuid4() -> str:
    """A random (version 4) UUID, without importing ``uuid`` (it costs start-up time)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# --------------------------------------------------------------------------------------------
# Reading, checking and writing the session file
# --------------------------------------------------------------------------------------------


class _Unfinished(Exception):
    """The file is empty or not JSON yet: maybe a writer that does not replace atomically is at it."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


_MISSING: Any = object()
"""What ``_read_json`` returns for a file that does not exist (a file may hold ``null``)."""


def _read_json(path: Path) -> Any:
    """The parsed file, ``_MISSING`` when there is none; retries briefly while it looks half-written."""
    for delay in (*RETRY_DELAYS, None):
        try:
            return _read_once(path)
        except _Unfinished as exc:
            if delay is None:
                raise WriteError(f"{path}: {exc}; refusing to touch it") from None
            _sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_once(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return _MISSING
    except OSError as exc:
        raise WriteError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise WriteError(f"{path}: larger than {MAX_FILE_BYTES} bytes; refusing to touch it")
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if not data.strip():
        raise _Unfinished("the file is empty")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        # A cut-short file fails anywhere (an unterminated string reports where it starts), so every
        # syntax error is worth another look before giving up.
        raise _Unfinished(f"broken JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise _Unfinished("not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise WriteError(f"{path}: not usable JSON: {exc}; refusing to touch it") from None


def _update_session(
    path: Path, session_id: str, now: datetime, change: Callable[[dict[str, Any]], None]
) -> None:
    """Under the lock: read (or start the session as the factory would), check, change, write."""
    with _locked(path):
        doc = _read_json(path)
        if doc is _MISSING:
            doc = rules.new_session(session_id, now)
        problem = session_problem(doc, session_id)
        if problem:
            raise WriteError(f"{path}: {problem}; refusing to touch it")
        change(doc)
        _write(path, doc)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """``atomic.locked``, with a lock that cannot be taken reported as a ``WriteError``."""
    try:
        lock = atomic.locked(path)
        lock.__enter__()
    except OSError as exc:
        raise WriteError(f"{path}: cannot lock it: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _write(path: Path, doc: Any) -> None:
    try:
        atomic.write_json_atomic(path, doc)
    except OSError as exc:
        raise WriteError(f"{path}: cannot write it: {exc.strerror or exc}") from None
    except ValueError as exc:  # text the file already held that is not valid Unicode
        raise WriteError(f"{path}: cannot write it back: {exc}") from None


def session_problem(doc: object, session_id: str | None = None) -> str | None:
    """Why a parsed ``cost.json`` is not fit to append to (``None`` when it is); stdlib and cheap.

    Checks what the factory needs to read the file back: every field of ``SessionCostState``, the two
    estimates, every record, execution and feature delta (amounts finite, >= 0, ranges ordered).
    """
    if not isinstance(doc, dict):
        return "not a JSON object"
    for key, kind in (
        ("sessionId", str),
        ("sessionCost", dict),
        ("infraCost", dict),
        ("llmUsage", list),
        ("executionCosts", list),
        ("featureCosts", dict),
    ):
        if key not in doc:
            return f"{key} is missing"
        if not isinstance(doc[key], kind):
            return f"{key} is not {'text' if kind is str else 'an ' + kind.__name__}"
    if session_id is not None and doc["sessionId"] != session_id:
        return f"it belongs to session {doc['sessionId']!r}, not {session_id!r}"
    if doc.get("currency") not in ("USD", "EUR"):
        return "currency is not USD or EUR"
    if not _amount(doc.get("confirmationThreshold")):
        return "confirmationThreshold is not a non-negative number"
    problem = _timestamp_problem("updatedAt", doc.get("updatedAt"))
    for key in ("sessionCost", "infraCost"):
        problem = problem or _estimate_problem(key, doc[key])
    if problem:
        return problem
    for index, record in enumerate(doc["llmUsage"]):
        problem = _record_problem(f"llmUsage[{index}]", record)
        if problem:
            return problem
    for index, execution in enumerate(doc["executionCosts"]):
        problem = _execution_problem(f"executionCosts[{index}]", execution)
        if problem:
            return problem
    for key, delta in doc["featureCosts"].items():
        problem = feature_problem(delta, f"featureCosts[{key!r}]")
        if problem:
            return problem
    return None


def _timestamp_problem(where: str, value: object) -> str | None:
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        return None
    return f"{where} is not an RFC 3339 timestamp"


def _item_problem(where: str, item: object) -> str | None:
    if not isinstance(item, dict):
        return f"{where} is not a cost item"
    low, expected, high = (item.get(key) for key in ("min", "expected", "max"))
    if not (_amount(low) and _amount(expected) and _amount(high)):
        return f"{where} needs finite, non-negative min/expected/max"
    if not _ordered(low, expected, high):
        return f"{where} has min > expected or expected > max"
    for key in ("unit", "notes"):
        if key in item and not isinstance(item[key], str):
            return f"{where}.{key} is not text"
    return None


def _estimate_problem(where: str, estimate: object) -> str | None:
    if not isinstance(estimate, dict):
        return f"{where} is not an object"
    breakdown = estimate.get("breakdown")
    if not isinstance(breakdown, dict):
        return f"{where}.breakdown is missing"
    for name in rules.CATEGORIES:
        problem = _item_problem(f"{where}.breakdown.{name}", breakdown.get(name))
        if problem:
            return problem
    problem = _item_problem(f"{where}.total", estimate.get("total"))
    if problem:
        return problem
    if estimate.get("currency") not in ("USD", "EUR"):
        return f"{where}.currency is not USD or EUR"
    if estimate.get("scope") not in ("session", "app", "feature", "station", "llmcall"):
        return f"{where}.scope is not a known scope"
    confidence = estimate.get("confidence")
    if not _amount(confidence) or confidence > 1:
        return f"{where}.confidence is not between 0 and 1"
    assumptions = estimate.get("assumptions")
    if not isinstance(assumptions, list) or not all(isinstance(a, str) for a in assumptions):
        return f"{where}.assumptions is not a list of text"
    if "isMonthly" in estimate and not isinstance(estimate["isMonthly"], bool):
        return f"{where}.isMonthly is not true or false"
    return _timestamp_problem(f"{where}.updatedAt", estimate.get("updatedAt"))


def _tagged(value: object) -> bool:
    """A variant name, or a one-key ``{"unknown"|"other": "<name>"}`` dict."""
    if isinstance(value, str):
        return True
    return isinstance(value, dict) and len(value) == 1 and all(isinstance(v, str) for v in value.values())


def _record_problem(where: str, record: object) -> str | None:
    if not isinstance(record, dict):
        return f"{where} is not an object"
    if not isinstance(record.get("id"), str):
        return f"{where}.id is not text"
    if not _tagged(record.get("model")):
        return f"{where}.model is not a model name"
    for key in ("inputTokens", "outputTokens"):
        count = record.get(key)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return f"{where}.{key} is not a whole number >= 0"
    cost = record.get("cost")
    if not _amount(cost):
        return f"{where}.cost is not a finite number >= 0"
    for key in ("agent", "station", "feature"):
        if key in record and not isinstance(record[key], str):
            return f"{where}.{key} is not text"
    return _timestamp_problem(f"{where}.timestamp", record.get("timestamp"))


def _execution_problem(where: str, execution: object) -> str | None:
    if not isinstance(execution, dict):
        return f"{where} is not an object"
    if not _tagged(execution.get("executionType")):
        return f"{where}.executionType is not an execution type"
    for key in ("cpuMinutes", "memoryGbMinutes"):
        value = execution.get(key)
        if not _amount(value):
            return f"{where}.{key} is not a finite number >= 0"
    if not isinstance(execution.get("isLocal"), bool):
        return f"{where}.isLocal is not true or false"
    return _item_problem(f"{where}.cost", execution.get("cost"))


def feature_problem(delta: object, where: str = "the feature") -> str | None:
    """Why a parsed feature cost file is not a ``FeatureCostDelta`` (``None`` when it is)."""
    if not isinstance(delta, dict):
        return f"{where} is not an object"
    for key in ("featureId", "featureName"):
        if not isinstance(delta.get(key), str):
            return f"{where}.{key} is not text"
    for key in ("oneTimeCost", "monthlyImpact"):
        problem = _estimate_problem(f"{where}.{key}", delta.get(key))
        if problem:
            return problem
    return _timestamp_problem(f"{where}.calculatedAt", delta.get("calculatedAt"))
