"""The Qt binding must not leak references to None/True/False.

PySide6-Essentials 6.12.0 on Python 3.11 decrements None on every void call (``setText``) and True on
every ``Signal.emit``; a tray app that runs for hours then aborts with ``none_dealloc``.  pyproject
pins the binding below 6.12; this test catches any binding with the bug.
"""

from __future__ import annotations

import gc
import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot


class _Emitter(QObject):
    fired = Signal(object)


def test_void_calls_keep_none_alive(qtbot: QtBot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")
    assert sys.getrefcount(None) - before > -100


def test_emit_keeps_booleans_alive(qtbot: QtBot) -> None:
    emitter = _Emitter()
    seen: list[object] = []
    emitter.fired.connect(seen.append)
    gc.collect()
    before = sys.getrefcount(True), sys.getrefcount(False)
    for n in range(2000):
        emitter.fired.emit(n)
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert len(seen) == 2000
    assert after[0] - before[0] > -100 and after[1] - before[1] > -100
