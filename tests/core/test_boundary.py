"""The layering holds: core and the command line never need Qt, and never import what stands on them.

- A subprocess where PySide6, shiboken6 and pyqtgraph cannot be imported imports every module under
  ``mity_cost/core`` and ``mity_cost/cli`` and runs ``--help`` of every command.
- A static check (``ast``, function-level imports included): core imports neither ``mity_cost.ui``,
  ``mity_cost.cli``, ``mity_cost.app`` nor Qt, and never prints; cli imports neither ``mity_cost.ui``
  nor ``mity_cost.app``.
- The command modules import at top level only the standard library, ``cli.common`` and the
  stdlib-only core modules (they are all imported for every command, so this keeps start-up fast),
  and the hot commands run without pydantic, genai-prices, watchdog or Qt ever being imported.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mity_cost"
CORE = sorted((PACKAGE / "core").rglob("*.py"))
CLI = sorted((PACKAGE / "cli").glob("*.py"))
QT = ("PySide6", "shiboken6", "pyqtgraph")
STDLIB_CORE = {
    "mity_cost.core.money",
    "mity_cost.core.factory.layout",
    "mity_cost.core.atomic",
    "mity_cost.core.paths",
    "mity_cost.core.settings",
}
"""Core modules a command module may import at its top level (stdlib only themselves)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    """Every module a file imports (absolute names), with line numbers; relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    nodes: list[ast.AST] = list(tree.body) if top_level_only else list(ast.walk(tree))
    found: list[tuple[int, str]] = []
    for node in nodes:
        if top_level_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if top_level_only and isinstance(node, ast.Try):
            nodes.extend(node.body)
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            name = ast.unparse(func)
            if name in ("importlib.import_module", "import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append((node.lineno, first.value))
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# ------------------------------------------------------------------ static


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_imports_neither_ui_cli_app_nor_qt(path: Path) -> None:
    banned = ("mity_cost.ui", "mity_cost.cli", "mity_cost.app", *QT)
    bad = [(line, name) for line, name in _imports(path) if _under(name, banned)]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_never_prints(path: Path) -> None:
    tree = ast.parse(path.read_text())
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("print", "input")
    ]
    assert not calls, f"{path.name} prints on lines {calls}"


@pytest.mark.parametrize("path", CLI, ids=lambda p: p.name)
def test_cli_imports_neither_ui_nor_app(path: Path) -> None:
    bad = [
        (line, name) for line, name in _imports(path) if _under(name, ("mity_cost.ui", "mity_cost.app", *QT))
    ]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", CLI, ids=lambda p: p.name)
def test_command_modules_import_only_cheap_things_at_top_level(path: Path) -> None:
    allowed_own = {
        "mity_cost",
        "mity_cost.__version__",
        "mity_cost.cli",
        "mity_cost.cli.common",
        *STDLIB_CORE,
    }
    bad = []
    for line, name in _imports(path, top_level_only=True):
        root = name.split(".")[0]
        if root == "mity_cost":
            owner = name if name in allowed_own else name.rpartition(".")[0]
            if name not in allowed_own and owner not in allowed_own:
                bad.append((line, name))
        elif root not in sys.stdlib_module_names and root != "__future__":
            bad.append((line, name))
    assert not bad, f"{path.name} imports at top level: {bad} (import them inside the handler)"


def test_the_static_check_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    sample = PACKAGE / "cli" / "read.py"
    names = {name for _, name in _imports(sample)}
    assert "mity_cost.core.figures.summary" in names  # imported inside a handler
    assert "mity_cost.cli.common" in names


# ------------------------------------------------------------------ dynamic, without Qt

_PROBE = r"""
import importlib, json, pkgutil, sys
for name in ("PySide6", "shiboken6", "pyqtgraph"):
    sys.modules[name] = None
import mity_cost
imported, failed = [], []
for package in ("mity_cost.core", "mity_cost.cli"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        try:
            importlib.import_module(info.name)
            imported.append(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
from mity_cost.cli import build_parser, main
helps = {}
commands = sorted(build_parser()._subparsers._group_actions[0].choices)
for command in [None, *commands]:
    argv = ["--help"] if command is None else [command, "--help"]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    helps[command or "(main)"] = code
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph")
            and sys.modules[m] is not None)
sys.stdout = sys.__stdout__
print("RESULT " + json.dumps({"imported": imported, "failed": failed, "helps": helps, "qt": qt}))
"""


def test_core_and_cli_import_and_help_without_qt() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, done.stderr
    result = json.loads(line.removeprefix("RESULT "))
    assert result["failed"] == []
    assert {"mity_cost.core.gate.fastpath", "mity_cost.core.factory.loading", "mity_cost.cli.read"} <= set(
        result["imported"]
    )
    assert len(result["imported"]) >= len(CORE) + len(CLI) - 2
    assert result["qt"] == []
    assert set(result["helps"].values()) == {0}, result["helps"]
    assert {"summary", "show", "features", "export", "record-llm", "check-threshold"} <= set(result["helps"])


_HOT = r"""
import json, sys
from mity_cost.cli import main
root, session = sys.argv[1], sys.argv[2]
codes = [
    main(["record-llm", "--root", root, "--session", session, "--model", "gpt-5-mini",
          "--input-tokens", "10", "--output-tokens", "5"]),
    main(["check-threshold", "--root", root, "--session", session]),
    main(["record-execution", "--root", root, "--session", session, "--type", "test"]),
]
heavy = {"pydantic", "pydantic_core", "genai_prices", "watchdog", "PySide6", "pyqtgraph"}
heavy = sorted({m.split(".")[0] for m in sys.modules} & heavy)
sys.stdout = sys.__stdout__
print("RESULT " + json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_hot_commands_never_import_heavy_packages(empty_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _HOT, str(empty_root), "hot-session"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, done.stderr
    result = json.loads(line.removeprefix("RESULT "))
    assert result["codes"] == [0, 0, 0]
    assert result["heavy"] == []
