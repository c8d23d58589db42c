"""The ``--json`` output of ``estimate``/``audit``/``prices``, the history commands, ``doctor`` and the
writing commands has exactly the keys their module docstrings document (the docs/cli.md text).

The schemas are read from the docstrings themselves, so the documentation and the code cannot drift
apart.  The docstrings follow a few rules for that (see ``parse_schemas``):

- each output is one top-level item "- ``<command> --json``: ..." (or ``--format json``);
- a key is a bare camelCase name in double backticks; JSON string values are quoted inside the
  backticks (``"over"``) and null/true/false are bare, so neither is taken for a key;
- a nested item "  - ``path``[, ``path``]: ..." lists the keys of the objects at that path
  (``a.b`` for an object in an object, ``a[]`` for the objects of a list);
- keys after the word "Only" in an item are optional (present in some objects only).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mity_cost.cli import build_parser
from mity_cost.cli import doctor as doctor_cli
from mity_cost.cli import history as history_cli
from mity_cost.cli import pricing as pricing_cli
from mity_cost.cli import write as write_cli
from tests.cli.cli_helpers import run_cli as run
from tests.core.history_helpers import session_docs

pytestmark = pytest.mark.slow

Keys = tuple[frozenset[str], frozenset[str]]
"""(required keys, optional keys) of the objects at one path."""

_HEADER = re.compile(r"- ``(?P<output>[a-z][a-z -]* (?:--json|--format json))``:(?P<text>.*)")
_NESTED = re.compile(r"  - (?P<paths>``[^`]+``(?:, ``[^`]+``)*):(?P<text>.*)")
_KEY = re.compile(r"``([a-z][A-Za-z0-9]*)``")
_QUOTED_SET = re.compile(r"``\{([^`]*)\}``")


# --------------------------------------------------------------------------- the docstring parser


def _keys(text: str) -> Keys:
    required, *optional = re.split(r"\bOnly\b", text, maxsplit=1)
    return frozenset(_KEY.findall(required)), frozenset(_KEY.findall(" ".join(optional)))


def parse_schemas(doc: str) -> dict[str, dict[str, Keys]]:
    """``{"<command> --json": {path: (required, optional)}}`` from a module docstring; the top-level
    object (or each object of a top-level list) is at path ``""``."""
    found: dict[str, dict[str, list[str]]] = {}
    texts: dict[str, list[str]] | None = None
    current: list[str] = []
    for line in doc.splitlines():
        header = _HEADER.match(line)
        nested = _NESTED.match(line)
        if header:
            current = [header["text"]]
            texts = found[header["output"]] = {"": current}
        elif nested and texts is not None:
            current = [nested["text"]]
            for path in re.findall(r"``([^`]+)``", nested["paths"]):
                texts[path] = current
        elif line.startswith(" ") and texts is not None:
            current.append(line)
        elif line.strip():
            texts = None
    return {
        output: {path: _keys(" ".join(lines)) for path, lines in sections.items()}
        for output, sections in found.items()
    }


def quoted_set(doc: str, marker: str) -> frozenset[str]:
    """The names of the first ````{"a", "b"}```` after ``marker`` in a docstring."""
    found = _QUOTED_SET.search(doc, doc.index(marker))
    assert found, f"no {{...}} after {marker!r}"
    return frozenset(re.findall(r'"([^"]+)"', found[1]))


DOCS = {
    "pricing": pricing_cli.__doc__ or "",
    "history": history_cli.__doc__ or "",
    "doctor": doctor_cli.__doc__ or "",
    "write": write_cli.__doc__ or "",
}
SCHEMAS: dict[str, dict[str, Keys]] = {}
for _doc in DOCS.values():
    SCHEMAS.update(parse_schemas(_doc))
RANGE = quoted_set(DOCS["pricing"], "ranges are")
TOTALS = quoted_set(DOCS["history"], "*totals*")


def objects_at(data: Any, path: str) -> list[Mapping[str, Any]]:
    """The objects at ``path`` (``a.b``, ``a[]``); a top-level list means each of its objects; null
    values (nullable objects) are left out."""
    items: list[Any] = list(data) if isinstance(data, list) else [data]
    for part in path.split(".") if path else []:
        name = part.removesuffix("[]")
        found: list[Any] = []
        for item in items:
            assert name in item, f"no {name!r} in {sorted(item)}"
            value = item[name]
            if value is None:
                continue
            if part.endswith("[]"):
                found.extend(value)
            else:
                found.append(value)
        items = found
    return items


CHECKED: set[str] = set()
"""The outputs ``check`` has seen: each test then makes sure it covered its module's."""


def check(output: str, data: Any) -> None:
    """Every documented path of ``output`` holds objects with exactly the documented keys."""
    assert output in SCHEMAS, f"{output!r} is not documented"
    CHECKED.add(output)
    for path, (required, optional) in SCHEMAS[output].items():
        objects = objects_at(data, path)
        assert objects, f"{output}: nothing at {path or 'the top'} to check"
        for obj in objects:
            keys = set(obj)
            where = f"{output} at {path or 'the top'}"
            assert required <= keys, f"{where}: missing {sorted(required - keys)}"
            assert keys <= required | optional, f"{where}: undocumented {sorted(keys - required - optional)}"


def check_ranges(data: Any, *paths: str, keys: frozenset[str] = RANGE) -> None:
    for path in paths:
        objects = objects_at(data, path)
        assert objects, f"nothing at {path}"
        assert all(set(obj) == keys for obj in objects), path


# --------------------------------------------------------------------------- running the commands


def run_json(*args: str) -> Any:
    done = run(*args, "--json")
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return json.loads(done.stdout)


def busiest_sessions(root: Path) -> list[str]:
    """The example root's session ids, most LLM records first."""
    docs = session_docs(root)
    return sorted(docs, key=lambda sid: (-len(docs[sid]["llmUsage"]), sid))


# --------------------------------------------------------------------------- the parser itself


def test_the_parser_reads_items_nested_items_and_optional_keys() -> None:
    doc = (
        "Intro ``notAKey``.\n\n"
        '- ``thing --json``: one object: ``alpha`` (``"value"`` or null), ``beta``\n'
        "  (``gamma`` too), ``--flag`` and ``RuntimeName`` are not keys.  Only sometimes: ``delta``.\n\n"
        "  - ``beta``, ``gamma[]``: ``x``, ``y``.\n"
        "- ``other thing --format json``: ``z``.\n\n"
        "After ``outside``.\n"
    )
    assert parse_schemas(doc) == {
        "thing --json": {
            "": (frozenset({"alpha", "beta", "gamma"}), frozenset({"delta"})),
            "beta": (frozenset({"x", "y"}), frozenset()),
            "gamma[]": (frozenset({"x", "y"}), frozenset()),
        },
        "other thing --format json": {"": (frozenset({"z"}), frozenset())},
    }
    assert {"min", "expected", "max"} == RANGE
    assert RANGE | {"calls", "inputTokens", "outputTokens"} == TOTALS


def _outputs(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[str]:
    """``"<command> --json"`` (and ``--format json``) for every command of a parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _outputs(sub, f"{prefix} {name}".strip())
        elif "--json" in action.option_strings and prefix:
            yield f"{prefix} --json"
        elif "--format" in action.option_strings and "json" in (action.choices or ()) and prefix:
            yield f"{prefix} --format json"


@pytest.mark.parametrize("module", sorted(DOCS))
def test_every_json_output_of_a_module_is_documented(module: str) -> None:
    documented = set(parse_schemas(DOCS[module]))
    assert set(_outputs(build_parser([f"mity_cost.cli.{module}"]))) == documented


# --------------------------------------------------------------------------- the commands


def test_pricing_json_schemas(example_root: Path) -> None:
    data = run_json("estimate", "--model", "gpt-5-mini", "--input-tokens", "20000", "--calls", "10")
    check("estimate --json", data)
    check_ranges(data, "outputTokens", "listCost", "factoryCost")

    data = run_json("audit", "--root", str(example_root))
    check("audit --json", data)

    data = run_json("prices")
    check("prices --json", data)
    assert any(not m["priced"] for m in run_json("prices", "--model", "no-such-model-xyz")["models"])
    assert set(parse_schemas(DOCS["pricing"])) <= CHECKED


def test_write_json_schemas(example_root: Path) -> None:
    session = busiest_sessions(example_root)[0]
    where = ("--root", str(example_root), "--session", session)
    record = run_json(
        "record-llm", *where, "--model", "gpt-5-mini", "--input-tokens", "900", "--output-tokens", "90",
        "--agent", "Coder", "--station", "build", "--feature", "login",
    )  # fmt: skip
    check("record-llm --json", record)
    required, optional = SCHEMAS["record-llm --json"][""]
    assert set(record) == required | optional  # every optional key is there when given

    check("record-execution --json", run_json("record-execution", *where, "--type", "test", "--cloud"))

    infra = run_json("update-infra", *where, "--template", "backend_api_small")
    check("update-infra --json", infra)
    check_ranges(infra, "total")

    feature = run_json(
        "save-feature", "--root", str(example_root), "--app", "shop-api", "--feature", "login",
        "--name", "Login", "--one-time", "llm=1,2,3", "--monthly", "compute=4",
    )  # fmt: skip
    check("save-feature --json", feature)
    check_ranges(feature, "feature.oneTimeCost.total", "feature.monthlyImpact.total")
    assert set(parse_schemas(DOCS["write"])) <= CHECKED


def test_history_json_schemas(example_root: Path, tmp_path: Path) -> None:
    root = ("--root", str(example_root))
    first, second = busiest_sessions(example_root)[:2]
    # Spending today, so that the tiny budgets below raise alerts.
    done = run("record-llm", *root, "--session", first, "--model", "gpt-5-mini", "--input-tokens", "5000",
               "--output-tokens", "500")  # fmt: skip
    assert done.returncode == 0, done.stderr

    ingest = run_json("history", "ingest", *root)
    check("history ingest --json", ingest)

    check("budget add --json", run_json("budget", "add", "--amount", "0.000001", "--period", "day"))
    run_json("budget", "add", "--scope", "session", "--period", "session", "--amount", "0.000001")
    statuses = run_json("budget", "list", *root, "--session", first)
    check("budget list --json", statuses)
    check_ranges(statuses, "spent", keys=TOTALS)

    alerts = run_json("alerts", *root, "--no-ingest")
    check("alerts --json", alerts)
    assert run_json("alerts", "--resolve", str(alerts[0]["id"]), "--no-ingest") == {
        "resolved": alerts[0]["id"]
    }

    report = run_json("report", "month", "--since", "2020-01", *root, "--no-ingest")
    check("report --json", report)
    check_ranges(report, "total", keys=TOTALS)
    assert all(set(totals) == TOTALS for totals in report["periodTotals"].values())

    compared = run_json("compare", "--sessions", f"{first},{second}", *root, "--no-ingest")
    check("compare --json", compared)
    check_ranges(compared, "totalA", "totalB", "ledgerA", "ledgerB", "rows[].a", "rows[].b", keys=TOTALS)

    forecast = run_json("forecast", "--session", first, "--days", "3", *root, "--no-ingest")
    check("forecast --json", forecast)

    check("history info --json", run_json("history", "info"))
    check("history retention --json", run_json("history", "retention"))

    output = tmp_path / "history.json"
    done = run("history", "export", "--format", "json", "--output", str(output), "--no-ingest")
    assert done.returncode == 0, done.stderr
    check("history export --format json", json.loads(output.read_text(encoding="utf-8")))
    assert set(parse_schemas(DOCS["history"])) <= CHECKED


def test_doctor_json_schema_shows_settings_problems(example_root: Path) -> None:
    done = run(
        "doctor", "--no-probe", "--json", "--root", str(example_root), env={"MITY_COST_THRESHOLD": "x"}
    )
    checks = json.loads(done.stdout)
    check("doctor --json", checks)
    assert any(c["name"] == "settings" and c["status"] == "warn" for c in checks)
    assert done.returncode == 1
    assert set(parse_schemas(DOCS["doctor"])) <= CHECKED
