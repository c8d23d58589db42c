"""`pip install .` gives working commands whose assets come from the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (found,) = out.glob("mity_cost-*.whl")
    return found


def test_wheel_carries_the_runtime_assets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mity_cost/assets/demo/workspace.zip" in names
    assert "mity_cost/assets/icons/mity-cost.svg" in names
    assert "mity_cost/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mity-cost = mity_cost.cli:main" in text
    assert "[gui_scripts]" in text and "mity-cost-tray = mity_cost.app:main" in text


def test_installed_commands_work_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # Reuse this environment's dependencies; install only our wheel, so the test needs no network.
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": "", "PYTHONSAFEPATH": "1"}
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    where = run(str(python), "-c", "import mity_cost, sys; print(mity_cost.__file__)")
    assert str(venv) in where.stdout, where.stdout + where.stderr
    assert run(str(venv / "bin" / "mity-cost"), "--version").stdout.strip() == "mity-cost 0.1.0"
    demo_root = workdir / "demo"
    extracted = run(
        str(python), "-m", "mity_cost.demo", "--root", str(demo_root), "--extract", "--steps", "0"
    )
    assert extracted.returncode == 0, extracted.stderr
    summary = run(str(venv / "bin" / "mity-cost"), "summary", "--json", "--root", str(demo_root))
    assert summary.returncode == 0, summary.stderr
    assert len(json.loads(summary.stdout)) == 6
    assert (venv / "bin" / "mity-cost-tray").exists()
