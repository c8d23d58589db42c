"""docs/cli.md is generated from the command line itself and must be up to date."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mity_cost.cli import COMMANDS

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_cli_docs.py"


def test_docs_cli_md_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("make_cli_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    for command in COMMANDS:
        assert f"$ mity-cost {command} --help" in text
    assert module.TARGET.read_text(encoding="utf-8") == text, "run: python scripts/make_cli_docs.py"
