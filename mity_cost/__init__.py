"""mity-cost: what your AI agents cost while they work."""

__version__ = "0.1.0"
