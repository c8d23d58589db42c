"""Fixtures shared by every test: an isolated home, copies of the spec's sample roots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for _name in ("MITY_COST_THRESHOLD", "MITY_COST_CURRENCY", "MITY_COST_LLM_ENABLED"):
    os.environ.pop(_name, None)

REPO = Path(__file__).resolve().parent.parent


SPEC_COPY = REPO / "tests" / "data" / "spec"
"""The spec's sample roots, copied from ``../shared/spec`` so a clean checkout tests on its own
(``tests/test_spec_copy.py`` checks the copy still equals the original where that is present)."""


def _find_spec() -> Path:
    chosen = os.environ.get("MITY_COST_SPEC", "")
    spec = Path(chosen) if chosen else SPEC_COPY
    if not (spec / "examples").is_dir():
        raise RuntimeError(f"no spec samples in {spec} (set MITY_COST_SPEC to a copy of shared/spec)")
    return spec


SPEC = _find_spec()
EXAMPLES = SPEC / "examples"
EXAMPLE_ROOT = EXAMPLES / "workspace"
REAL_SAMPLES = SPEC / "real-samples"


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test gets its own MITY_COST_HOME (settings, history, logs, socket)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MITY_COST_HOME", str(home))
    for name in ("MITY_COST_THRESHOLD", "MITY_COST_CURRENCY", "MITY_COST_LLM_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    yield home


def _copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for folder, dirs, files in os.walk(dst):
        for name in dirs + files:
            os.chmod(os.path.join(folder, name), 0o755 if name in dirs else 0o644)
    os.chmod(dst, 0o755)
    return dst


@pytest.fixture
def example_root(tmp_path: Path) -> Path:
    """A writable copy of the spec's example factory root (6 sessions, 3 features)."""
    return _copy_tree(EXAMPLE_ROOT, tmp_path / "example-root")


@pytest.fixture
def real_root(tmp_path: Path) -> Path:
    """A writable copy of the four real sessions (with the factory's runtime.json)."""
    return _copy_tree(REAL_SAMPLES, tmp_path / "real-root")


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    """An empty factory root."""
    root = tmp_path / "empty-root"
    root.mkdir()
    return root
