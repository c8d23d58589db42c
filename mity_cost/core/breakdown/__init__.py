"""The shapes the windows draw, computed off the GUI thread: the breakdown tree and the chart series."""
