"""The spec and its samples in ``tests/data/spec`` equal ``../shared/spec`` (where it exists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, SPEC_COPY

SHARED = REPO.parent / "shared" / "spec"


def _files(root: Path) -> dict[str, bytes]:
    files = {
        str(path.relative_to(root)): path.read_bytes()
        for part in ("examples", "real-samples")
        for path in sorted((root / part).rglob("*"))
        if path.is_file()
    }
    files["README.md"] = (root / "README.md").read_bytes()
    return files


def test_the_copy_has_the_samples() -> None:
    files = _files(SPEC_COPY)
    assert "examples/expected-summaries.jsonl" in files
    assert any(name.startswith("real-samples/.mity/chat/") for name in files)


@pytest.mark.skipif(not (SHARED / "examples").is_dir(), reason="no ../shared/spec beside this checkout")
def test_the_copy_equals_the_shared_spec() -> None:
    assert _files(SPEC_COPY) == _files(SHARED)
