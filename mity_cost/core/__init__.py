"""The Qt-free core, in subpackages by subsystem (lowest first; a package imports only those before it):

- ``core`` itself: the base every subsystem stands on: ``atomic`` (atomic writes, locks), ``money``
  (currencies, ranges), ``paths`` (where mity-cost keeps its files), ``settings`` (what the user chose).
- ``factory``: the factory's files: their format, where they are, reading and writing them, its rules.
- ``pricing``: current list prices, price audits, pre-flight estimates.
- ``figures``: what a session adds up to, computed once, and the one rule for its total.
- ``gate``: thresholds, the user's decisions, the confirmation policy, the socket, the hot fast path.
- ``live``: watching roots live: the watcher, the tracker, the immutable snapshot.
- ``breakdown``: the shapes the windows draw: the breakdown tree and the chart series.
- ``spending``: spending over time: history, budgets, alerts, forecasts, reports.
- ``desktop``: the desktop around the app: start at login, the health check.

Nothing under this package may import Qt or print to a terminal; ``tests/core/test_boundary.py``
enforces it.
"""
