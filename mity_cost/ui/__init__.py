"""The Qt side of mity-cost: the only package (with ``mity_cost.app``) that imports PySide6.

pyqtgraph picks its Qt binding from what is already imported, else from ``PYQTGRAPH_QT_LIB``: make
sure it is always PySide6, whichever ui module imports it first.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
