"""The PyInstaller build, without building: the spec's entry scripts and data files, the frozen-build
support in ``mity_cost.frozen``, and what ``scripts/package`` (run by ``.ci/run``) smoke-tests."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mity_cost import frozen
from mity_cost.core.desktop.doctor import check_versions

REPO = Path(__file__).resolve().parent.parent
PYINSTALLER = REPO / "packaging" / "pyinstaller"
SPEC = PYINSTALLER / "mity-cost.spec"
PACKAGE_SCRIPT = REPO / "scripts" / "package"
CI = REPO / ".ci" / "run"
PACKAGE = REPO / "mity_cost"


def _spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def _spec_constant(name: str) -> Any:
    """The literal value a top-level assignment in the spec gives ``name``."""
    for node in _spec_tree().body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not assigned in {SPEC.name}")


def _spec_calls(function: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(_spec_tree())
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function
    ]


def _pyproject_commands() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {**project["scripts"], **project["gui-scripts"]}


# -- the spec's entry scripts ------------------------------------------------------------------------


def test_spec_builds_one_program_per_installed_command() -> None:
    entries = _spec_constant("ENTRY_SCRIPTS")
    assert set(entries) == set(_pyproject_commands()) == {"mity-cost", "mity-cost-tray"}
    for script in entries.values():
        assert (PYINSTALLER / script).is_file(), script
    # One folder: the programs share COLLECT, nothing is bundled into the executables themselves.
    assert len(_spec_calls("COLLECT")) == 1
    (exe,) = _spec_calls("EXE")
    keywords = {k.arg: k.value for k in exe.keywords}
    assert (
        isinstance(keywords["exclude_binaries"], ast.Constant) and keywords["exclude_binaries"].value is True
    )


@pytest.mark.parametrize("command", ["mity-cost", "mity-cost-tray"])
def test_entry_script_prepares_then_runs_the_installed_commands_main(command: str) -> None:
    script = PYINSTALLER / _spec_constant("ENTRY_SCRIPTS")[command]
    module, _, function = _pyproject_commands()[command].partition(":")
    body = ast.parse(script.read_text(encoding="utf-8")).body
    statements = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    imports = [(s.module, [a.name for a in s.names]) for s in statements if isinstance(s, ast.ImportFrom)]
    assert imports == [("mity_cost.frozen", ["prepare"]), (module, [function])]
    # prepare() runs before the app is imported (it may re-enter as `-m module` and exit) ...
    first_call = next(s for s in statements if isinstance(s, ast.Expr))
    assert ast.unparse(first_call) == "prepare()"
    assert statements.index(first_call) < next(
        i for i, s in enumerate(statements) if isinstance(s, ast.ImportFrom) and s.module == module
    )
    # ... and the exit code is main()'s.
    assert ast.unparse(statements[-1]) == f"raise SystemExit({function}())"


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("mity_cost.demo", "mity_cost/demo.py"),  # the tray's --demo starts it
        ("mity_cost.ui.probe", "mity_cost/core/desktop/doctor.py"),  # doctor's desktop probe
        ("mity_cost.app", "mity_cost/cli/tray.py"),  # `mity-cost tray`, the autostart entry
        ("mity_cost.frozen", "scripts/package"),  # the bundle self-check
    ],
)
def test_modules_run_with_dash_m_can_run_as_main(module: str, source: str) -> None:
    """In the bundle ``sys.executable -m module`` re-enters the entry script, which runs the module
    as ``__main__``: it must exist (the spec collects all of mity_cost) and act when run so."""
    text = (REPO / source).read_text(encoding="utf-8")
    assert module in text
    path = REPO / (module.replace(".", "/") + ".py")
    assert 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")
    assert 'collect_submodules("mity_cost")' in SPEC.read_text(encoding="utf-8")


# -- data files and what is loaded at run time -------------------------------------------------------


def test_spec_collects_every_packaged_asset() -> None:
    (call,) = [c for c in _spec_calls("collect_data_files") if ast.literal_eval(c.args[0]) == "mity_cost"]
    includes = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "includes"))
    on_disk = sorted(
        p.relative_to(PACKAGE).as_posix()
        for p in (PACKAGE / "assets").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert on_disk
    for name in [*on_disk, "py.typed"]:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in includes), name


def test_self_check_covers_every_resource_the_code_reads() -> None:
    """Each ``resources.files("mity_cost...").joinpath("...")`` in the code is in frozen.ASSETS, which
    the bundle's self-check verifies, and exists in the source tree."""
    pattern = re.compile(r'resources\.files\("(mity_cost[\w.]*)"\)\.joinpath\("([^"]+)"\)')
    used = set()
    for source in PACKAGE.rglob("*.py"):
        for package, name in pattern.findall(source.read_text(encoding="utf-8")):
            prefix = "/".join(package.split(".")[1:])
            used.add(f"{prefix}/{name}" if prefix else name)
    assert "assets/demo/workspace.zip" in used
    assert used <= set(frozen.ASSETS)
    for name in frozen.ASSETS:
        assert (PACKAGE / name).is_file(), name


def test_spec_copies_the_metadata_doctor_reports() -> None:
    (loop,) = [
        node
        for node in ast.walk(_spec_tree())
        if isinstance(node, ast.For) and "copy_metadata" in ast.unparse(node)
    ]
    copied = set(ast.literal_eval(loop.iter))
    reported = {part.split(" ")[0] for part in check_versions().detail.split(", ")[1:]}
    assert reported == copied


def test_spec_imports_what_is_loaded_dynamically() -> None:
    text = SPEC.read_text(encoding="utf-8")
    assert (
        'collect_submodules("genai_prices"' in text
    )  # core/pricing/prices.py imports genai_prices.data lazily
    hidden = next(
        ast.literal_eval(node.value)
        for node in ast.walk(_spec_tree())
        if isinstance(node, ast.AugAssign) and isinstance(node.value, ast.List)
    )
    assert "watchdog.observers.inotify" in hidden


def test_spec_excludes_nothing_the_app_imports() -> None:
    excludes = _spec_constant("excludes")
    assert {"mypy", "pydantic.mypy", "PySide6.QtTest"} <= set(excludes)
    imported = set()
    for source in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    clash = {m for m in imported for x in excludes if m == x or m.startswith(x + ".")}
    assert not clash


def test_spec_keeps_the_qt_plugins_a_desktop_and_a_headless_run_need() -> None:
    (call,) = [
        node
        for node in ast.walk(_spec_tree())
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "re.compile"
    ]
    unused = re.compile(ast.literal_eval(call.args[0]))
    plugins = "PySide6/Qt/plugins/"
    for kept in ("platforms/libqxcb.so", "platforms/libqwayland.so", "platforms/libqoffscreen.so"):
        assert not unused.match(plugins + kept), kept
    for kept in ("xcbglintegrations/libqxcb-glx-integration.so", "imageformats/libqico.so"):
        assert not unused.match(plugins + kept), kept
    for dropped in ("platformthemes/libqgtk3.so", "platforms/libqvnc.so", "platforms/libqeglfs.so"):
        assert unused.match(plugins + dropped), dropped


# -- mity_cost.frozen --------------------------------------------------------------------------------


def test_self_check_passes_in_the_development_install(capsys: pytest.CaptureFixture[str]) -> None:
    assert frozen.main() == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == []
    assert report["frozen"] is False
    assert report["assets"] == len(frozen.ASSETS)
    if sys.platform.startswith("linux"):
        assert report["observer"] == "InotifyObserver"


def test_self_check_reports_a_missing_asset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frozen, "ASSETS", (*frozen.ASSETS, "assets/nowhere.png"))
    assert frozen.self_check()["problems"] == ["asset missing: assets/nowhere.png"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"LD_LIBRARY_PATH": "/app/_internal:/opt/lib", "LD_LIBRARY_PATH_ORIG": "/opt/lib"},
            {"LD_LIBRARY_PATH": "/opt/lib"},
        ),
        ({"LD_LIBRARY_PATH": "/app/_internal"}, {}),
        ({"LD_LIBRARY_PATH": "/app/_internal:", "LD_LIBRARY_PATH_ORIG": ""}, {"LD_LIBRARY_PATH": ""}),
        ({"HOME": "/home/me"}, {"HOME": "/home/me"}),
    ],
)
def test_restore_library_path_gives_children_the_users_path(
    environ: dict[str, str], expected: dict[str, str]
) -> None:
    frozen.restore_library_path(environ)
    assert environ == expected


def test_prepare_and_reentry_do_nothing_outside_the_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(sys, "frozen", raising=False)
    monkeypatch.setattr(sys, "argv", ["mity-cost", "-m", "mity_cost.frozen"])
    monkeypatch.setenv("LD_LIBRARY_PATH", "/somewhere")
    frozen.prepare()
    frozen.handle_module_reentry()
    assert sys.argv == ["mity-cost", "-m", "mity_cost.frozen"]
    assert frozen.is_frozen() is False


def test_reentry_runs_the_module_as_main_with_its_arguments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "reentry_probe.py").write_text(
        "import pathlib, sys\n"
        "if __name__ == '__main__':\n"
        "    pathlib.Path(sys.argv[1]).write_text(repr(sys.argv))\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "argv.txt"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "argv", ["/app/mity-cost-tray", "-m", "reentry_probe", str(out)])
    monkeypatch.delitem(sys.modules, "reentry_probe", raising=False)
    with pytest.raises(SystemExit) as done:
        frozen.handle_module_reentry()
    assert done.value.code == 0
    argv = ast.literal_eval(out.read_text(encoding="utf-8"))
    assert argv[1:] == [str(out)]  # `-m module` consumed; argv[0] is the module's file, as with python -m
    assert argv[0].endswith("reentry_probe.py")


def test_reentry_leaves_a_normal_command_line_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "argv", ["/app/mity-cost", "summary", "-m"])
    frozen.handle_module_reentry()
    assert sys.argv == ["/app/mity-cost", "summary", "-m"]


# -- scripts/package and CI --------------------------------------------------------------------------


def test_package_script_builds_the_spec_and_smoke_tests_what_the_issue_asks() -> None:
    text = PACKAGE_SCRIPT.read_text(encoding="utf-8")
    commands = [
        line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[0] == 'source "$(dirname "$0")/_venv.sh" test'  # set -euo pipefail, repo root
    assert "packaging/pyinstaller/mity-cost.spec" in text
    assert "--distpath build/dist" in text
    assert '"$app/mity-cost" --version' in text
    assert '"$app/mity-cost" -m mity_cost.frozen' in text
    assert '"$app/mity-cost" doctor --root' in text
    assert "QT_QPA_PLATFORM=offscreen" in text
    assert '"$app/mity-cost-tray" --demo --no-dialogs --quit-after 4' in text
    # Not only the exit code: tracebacks and errors on stderr or in the tray log fail the build.
    assert "Traceback" in text and "mity-cost.log" in text
    assert PACKAGE_SCRIPT.stat().st_mode & 0o111


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("script", [PACKAGE_SCRIPT, CI], ids=["scripts/package", ".ci/run"])
def test_shell_scripts_parse(script: Path) -> None:
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_ci_runs_the_tests_then_the_package_build() -> None:
    lines = [line.strip() for line in CI.read_text(encoding="utf-8").splitlines()]
    assert "set -euo pipefail" in lines  # either step failing fails CI
    assert not any(line.startswith("exec ") for line in lines)  # exec would end the script there
    assert lines.index("./scripts/test") < lines.index("./scripts/package")


def test_build_output_is_ignored_by_git() -> None:
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    assert "build/" in ignored
