"""``mity_cost.cli``: the registry imports only the command being run; help and errors unchanged."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from mity_cost import cli


def _registered(module: str) -> list[str]:
    parser = argparse.ArgumentParser(prog="probe")
    sub = parser.add_subparsers(dest="command")
    __import__(module, fromlist=["register"]).register(sub)
    return list(sub.choices)


def test_the_command_table_matches_what_the_modules_register() -> None:
    table: dict[str, str] = {}
    for module in cli.COMMAND_MODULES:
        for command in _registered(module):
            table[command] = module
    assert table == cli.COMMANDS
    assert set(cli.COMMANDS.values()) == set(cli.COMMAND_MODULES)


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_a_command_alone_parses_as_with_every_command(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    alone = _run([command, "--help"])
    full = cli.build_parser()
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as stop:
        full.parse_args([command, "--help"])
    assert alone == (stop.value.code, out.getvalue(), "")
    assert _run([command, "--no-such-option"])[0] == 2


def test_no_command_or_an_unknown_one_lists_every_command() -> None:
    code, out, err = _run([])
    assert code == 2 and out == ""
    assert all(name in err for name in cli.COMMANDS)
    code, _, err = _run(["no-such-command"])
    assert code == 2 and "invalid choice: 'no-such-command'" in err
    code, out, _ = _run(["--help"])
    assert code == 0 and all(name in out for name in cli.COMMANDS)
    code, out, _ = _run(["--version"])
    assert code == 0 and out.startswith("mity-cost ")


_PROBE = r"""
import json, sys
from mity_cost.cli import main
sys.stdout = sys.stderr
code = main(sys.argv[1:])
sys.stdout = sys.__stdout__
print("RESULT " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _probe(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, done.stderr
    result: dict[str, object] = json.loads(line.removeprefix("RESULT "))
    return result


def test_hot_commands_import_only_their_own_module(tmp_path: Path) -> None:
    where = ["--root", str(tmp_path), "--session", "s1"]
    recorded = _probe(
        "record-llm", *where, "--model", "gpt-5-mini", "--input-tokens", "10", "--output-tokens", "5"
    )
    assert recorded["code"] == 0
    checked = _probe("check-threshold", *where)
    assert checked["code"] == 0
    for result, own in ((recorded, "mity_cost.cli.write"), (checked, "mity_cost.cli.threshold")):
        modules = set(result["modules"])  # type: ignore[call-overload]
        assert own in modules
        others = {m for m in cli.COMMAND_MODULES if m != own} & modules
        assert others == set()
        assert "subprocess" not in modules


def test_record_llm_pulls_in_neither_shutil_nor_tempfile(tmp_path: Path) -> None:
    result = _probe(
        "record-llm", "--root", str(tmp_path), "--session", "s1", "--model", "gpt-5-mini",
        "--input-tokens", "10", "--output-tokens", "5",
    )  # fmt: skip
    assert result["code"] == 0
    modules = set(result["modules"])  # type: ignore[call-overload]
    assert not {"shutil", "tempfile", "subprocess", "random"} & modules


@pytest.mark.parametrize(
    ("columns", "lines"), [(None, None), ("57", None), ("0", "10"), ("abc", None), ("120", "40")]
)
def test_terminal_width_is_shutils(
    columns: str | None, lines: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("COLUMNS", columns), ("LINES", lines)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert cli._terminal_columns() == shutil.get_terminal_size().columns


def test_terminal_width_without_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "__stdout__", None)
    assert cli._terminal_columns() == shutil.get_terminal_size().columns == 80


def test_help_width_follows_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    narrow = _run(["check-threshold", "--help"])[1]
    monkeypatch.setenv("COLUMNS", "200")
    wide = _run(["check-threshold", "--help"])[1]
    assert max(map(len, narrow.splitlines())) <= 40 < max(map(len, wide.splitlines()))
