"""Render ``resources/mity-cost.svg`` to PNG icons at the usual sizes (hicolor theme layout).

Run: ``python packaging/make_icons.py`` (needs PySide6; offscreen is fine).  The PNGs are committed
under ``packaging/icons/`` so that packaging needs no renderer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
HERE = Path(__file__).resolve().parent


def main() -> int:
    """Render every size."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(HERE.parent / "resources" / "mity-cost.svg"))
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        target = HERE / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "mity-cost.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(target))
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
