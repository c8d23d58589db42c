"""The Qt-free core: documents, loading, prices, summaries, writing, thresholds.

Nothing under this package may import Qt or print to a terminal; ``tests/core/test_boundary.py``
enforces it.
"""
