"""The installed app on a real X server with a real tray host: badge, dialog, answer, decision file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mity_cost.core.factory import layout, writing
from tests.e2e.conftest import XServer

pytestmark = [pytest.mark.xserver, pytest.mark.slow]
DIALOG_TITLE = "mity-cost: confirm spending"


def wait_for(what: str, probe: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def tray_command() -> list[str]:
    installed = shutil.which("mity-cost-tray", path=os.path.dirname(sys.executable))
    return [installed] if installed else [sys.executable, "-m", "mity_cost.app"]


@pytest.fixture
def app(
    xserver: XServer, tmp_path: Path, isolated_home: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    root = tmp_path / "factory"
    root.mkdir()
    env = {**xserver.env, "MITY_COST_HOME": str(isolated_home), "MITY_COST_THRESHOLD": "1.00"}
    log = (tmp_path / "app.log").open("wb")
    process = subprocess.Popen([*tray_command(), "--root", str(root)], env=env, stdout=log, stderr=log)
    try:
        yield process, root
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def windows_of(xserver: XServer, pid: int) -> list[str]:
    return xserver.run("xdotool", "search", "--pid", str(pid)).stdout.split()


def tray_icon_embedded(xserver: XServer, pid: int) -> bool:
    """One of the app's windows is a descendant of trayer's window (the XEmbed tray icon)."""
    trayer = xserver.run("xdotool", "search", "--class", "trayer").stdout.split()
    if not trayer:
        return False
    tree = " ".join(xserver.run("xwininfo", "-tree", "-id", wid).stdout for wid in trayer)
    return any(f"{int(wid):#x}" in tree for wid in windows_of(xserver, pid))


def test_tray_badge_dialog_and_decision(xserver: XServer, app: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, root = app
    wait_for("the tray icon inside trayer", lambda: tray_icon_embedded(xserver, process.pid), timeout=30)
    xserver.screenshot("e2e-1-tray")

    # An agent's call pushes a new session over the $1.00 threshold.
    session_id = "e2e00000-0000-4000-8000-000000000001"
    writing.record_llm(root, session_id, "claude-opus-4.5", 20_000, 10_000, agent="Implementer")
    dialog = wait_for(
        "the confirmation dialog",
        lambda: xserver.run("xdotool", "search", "--onlyvisible", "--name", DIALOG_TITLE).stdout.split(),
    )
    assert isinstance(dialog, list) and len(dialog) == 1, "exactly one dialog"
    time.sleep(0.5)
    xserver.screenshot("e2e-2-dialog")

    # Continue (Alt+C): approves the next step, twice the threshold.
    xserver.run("xdotool", "windowactivate", "--sync", dialog[0])
    xserver.run("xdotool", "key", "--window", dialog[0], "alt+c")
    decision_file = layout.session_path(root, session_id).parent / layout.DECISION_FILE
    wait_for("cost.decision.json", decision_file.exists)
    decision = json.loads(decision_file.read_text())
    assert decision["sessionId"] == session_id
    assert decision["decision"] == "continue"
    assert decision["approvedUpTo"] == pytest.approx(2.0)
    assert decision["currency"] == "USD"
    assert decision["decidedAt"].endswith("Z")
    wait_for(
        "the dialog to close",
        lambda: not xserver.run("xdotool", "search", "--onlyvisible", "--name", DIALOG_TITLE).stdout.strip(),
    )
    assert process.poll() is None, "the app keeps running after the answer"
