"""A real X server (Xvfb) with a real tray host (trayer), for the end-to-end test."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TOOLS = ("Xvfb", "trayer", "xdotool", "xwininfo", "import")


@dataclass
class XServer:
    """A running virtual display with a tray host."""

    display: str

    @property
    def env(self) -> dict[str, str]:
        """The environment a program on this display needs."""
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
        return {**env, "DISPLAY": self.display, "QT_QPA_PLATFORM": "xcb"}

    def run(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        """Run an X client on this display."""
        return subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def screenshot(self, name: str) -> Path:
        """Save the whole screen as ``artifacts/<name>.png``."""
        ARTIFACTS.mkdir(exist_ok=True)
        target = ARTIFACTS / f"{name}.png"
        self.run("import", "-window", "root", str(target), timeout=30)
        return target


def _missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@pytest.fixture
def xserver() -> Iterator[XServer]:
    """Xvfb on a free display number, with trayer docked at the top right."""
    missing = _missing_tools()
    if missing:
        message = f"needs {', '.join(missing)} (Debian: xvfb trayer xdotool x11-utils imagemagick)"
        if os.environ.get("MITY_COST_REQUIRE_X") == "1":
            pytest.fail(message)
        pytest.skip(message)
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    server = XServer(f":{number}")
    tray = subprocess.Popen(
        [
            "trayer",
            "--edge",
            "top",
            "--align",
            "right",
            "--widthtype",
            "request",
            "--height",
            "32",
            "--transparent",
            "false",
            "--tint",
            "0x303030",
            "--SetDockType",
            "true",
        ],
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not server.run("xdotool", "search", "--class", "trayer").stdout:
        time.sleep(0.1)
    try:
        yield server
    finally:
        for process in (tray, xvfb):
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
