"""Running the command line as a real subprocess, the way an agent or a script does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m mity_cost ARGS`` with this process's environment (plus ``env``); never raises."""
    return subprocess.run(
        [sys.executable, "-m", "mity_cost", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
